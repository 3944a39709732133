//! Moving pending entries into the graph, in batches.
//!
//! A batch takes the graph lock, takes up to `vhnsw.merge_batch_size`
//! entries, the oldest half and a sample of the whole pending list (rows
//! arrive grouped, and HNSW links grouped arrivals poorly; pages are
//! recycled only once all their entries are done: see
//! [`pending::collect`]), shuffles them, and inserts each one: the WAL record that publishes
//! its node (or adds its TID to an identical node) also flags the entry
//! merged, so a crash anywhere leaves every row in exactly one place.
//! Fully merged pages are then recycled.
//!
//! Merges run in the background worker, in an inserting backend that hit
//! the hard limit, in VACUUM, and in `vhnsw_merge(regclass)`.

use super::utils::Needs;
use crate::error::SqlResult;
use crate::fmgr::{pg_fn, Args};
use crate::storage::layout::EntryShape;
use crate::storage::meta::read_meta;
use crate::storage::pending;
use crate::storage::writer::{GraphLock, GraphWriter};
use crate::storage::Index;
use pgrx::pg_sys::{self, Datum};
use vdb_core::hnsw::memory::permutation;
use vdb_core::hnsw::search::LayerSearch;

/// Whether a merge waits for the graph lock or gives up when it is taken.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LockMode {
    Wait,
    /// Background workers: another merger is already at work.
    Skip,
}

/// Outcome of one batch.
#[derive(Debug, Clone, Copy, Default)]
pub struct Merged {
    pub entries: usize,
    /// Upper bound of entries still pending afterwards.
    pub remaining: usize,
    /// Bytes of the pages the list spans afterwards (what every scan reads).
    pub remaining_bytes: usize,
    /// The graph lock was taken by someone else (Skip mode only).
    pub busy: bool,
}

/// Merges up to `max` pending entries into the graph.
pub fn merge_batch(index: Index, max: usize, mode: LockMode) -> SqlResult<Merged> {
    let Some(lock) = (match mode {
        LockMode::Wait => Some(GraphLock::acquire(index)),
        LockMode::Skip => GraphLock::try_acquire(index),
    }) else {
        return Ok(Merged {
            busy: true,
            ..Merged::default()
        });
    };
    let mut graph = GraphWriter::open(lock)?;
    let entries = merge_into(&mut graph, index, max)?;
    drop(graph);
    let meta = read_meta(index)?;
    let remaining = pending::estimate(&meta);
    Ok(Merged {
        entries,
        remaining,
        remaining_bytes: pending::bytes(&meta),
        busy: false,
    })
}

/// One batch: up to `max` entries drawn from the whole list, inserted in
/// random order; fully merged head pages recycled.
fn merge_into(graph: &mut GraphWriter, index: Index, max: usize) -> SqlResult<usize> {
    let items = pending::collect(index, graph.shape(), max, u64::from(graph.node_count()))?;
    let mut search = LayerSearch::new();
    let order = permutation(items.len(), graph.node_count().into());
    for (done, i) in order.into_iter().enumerate() {
        if done % 64 == 0 {
            pgrx::check_for_interrupts!();
        }
        let item = &items[i as usize];
        graph.insert_point(
            &mut search,
            &item.point,
            &item.words,
            item.tid,
            Some(item.at),
        )?;
        crate::failpoint::hit("merge_after_insert");
    }
    pending::add_done(index, items.len());
    pending::recycle_head(index)?;
    graph.record_merge(items.len());
    // Inserts can prune away a node's last incoming edge, and a node no
    // path reaches is never found. Checking costs one walk over the
    // graph: done when the batch is large against the graph, and when
    // the list is drained (the end of every burst of writes).
    let drained = pending::estimate(&read_meta(index)?) == 0;
    if drained || items.len() * 16 >= graph.node_count() as usize {
        graph.link_unreachable();
    }
    Ok(items.len())
}

/// Merges what the pending list holds when called (rows that inserters
/// keep adding meanwhile are left to the next merge, so this returns even
/// under a steady stream of inserts), in batches of `batch` under one
/// hold of the graph lock: taking it again per batch would queue this
/// merge behind every inserting backend that waits to merge its own batch
/// (back-pressure), so under heavy inserts it would hardly advance.
pub fn merge_all(index: Index, batch: usize) -> SqlResult<usize> {
    let meta = read_meta(index)?;
    let target = pending::live_count(index, EntryShape::of(&meta))?;
    if target == 0 {
        return Ok(0);
    }
    let mut graph = GraphWriter::open(GraphLock::acquire(index))?;
    let mut total = 0;
    while total < target {
        let n = merge_into(&mut graph, index, batch.min(target - total))?;
        total += n;
        if n == 0 {
            break;
        }
    }
    // Inserts that keep arriving leave the list never drained: the
    // graph is whole when a merge of everything returns.
    graph.link_unreachable();
    Ok(total)
}

fn merge_now(args: &Args) -> SqlResult<Datum> {
    let oid = pg_sys::Oid::from(args.datum(0).value() as u32);
    let merged = super::utils::with_index(
        oid,
        "vhnsw_merge()",
        Needs::OwnerToWrite,
        pg_sys::RowExclusiveLock,
        |index| merge_all(index, super::options::merge_batch_size()),
    )?;
    Ok(Datum::from(merged as i64))
}

pg_fn! {
    /// `vhnsw_merge(regclass) RETURNS bigint`: merges every pending entry now.
    fn vdb_vhnsw_merge(args) { merge_now(&args) }
}
