//! Giving back the space of an index VACUUM left empty.
//!
//! When no row is left (every node without heap TIDs, no live pending
//! entry, no unindexed row), VACUUM puts the index back in the state of one
//! built on an empty table and truncates its file to the metapage, as it
//! truncates a table's empty tail. Rows inserted next start afresh in a
//! one-page file instead of beside the old graph's extents, whose slots a
//! pending list cannot use.
//!
//! Only with the index to itself: a conditional `ACCESS EXCLUSIVE` lock,
//! so no scan holds a block number past the new end and no writer (insert
//! or merge worker, which hold weaker locks) is in progress. If another
//! session holds the index, or VACUUM runs in parallel, nothing happens;
//! the next VACUUM tries again.
//!
//! Crash ordering: the fresh metapage is WAL-logged and flushed first, and
//! only then is the file truncated (itself WAL-logged by PostgreSQL). A
//! crash between the two leaves a fresh metapage and pages no extent or
//! list names: space, never a page two owners write; the next VACUUM of the
//! still empty index truncates them. The other order could leave a
//! metapage naming blocks past the end of the file.

use super::buffer::{self, Block, WalBatch};
use super::graph::PageGraph;
use super::layout::{EntryShape, META_BLOCK};
use super::meta::{empty_graph, new_meta, put_meta, read_meta};
use super::pending;
use super::{unindexed, Index};
use crate::error::SqlResult;
use crate::failpoint;
use pgrx::pg_sys;
use vdb_core::hnsw::Metric;

/// The index to ourselves until dropped (an `ACCESS EXCLUSIVE` lock taken
/// without waiting, released before the transaction ends, as VACUUM
/// releases the one it truncates a table under).
struct SoleAccess {
    rel: Index,
}

impl SoleAccess {
    fn try_acquire(rel: Index) -> Option<SoleAccess> {
        // SAFETY: rel is an open relation; a conditional lock never waits,
        // so it cannot deadlock with the weaker lock we already hold.
        let got = unsafe {
            pg_sys::ConditionalLockRelation(rel.raw(), pg_sys::AccessExclusiveLock as i32)
        };
        got.then_some(SoleAccess { rel })
    }
}

impl Drop for SoleAccess {
    fn drop(&mut self) {
        // SAFETY: we took this lock in try_acquire.
        unsafe { pg_sys::UnlockRelation(self.rel.raw(), pg_sys::AccessExclusiveLock as i32) };
    }
}

/// Whether any row is still indexed: a node with heap TIDs, a live
/// pending entry or an unindexed row.
fn holds_rows(rel: Index) -> SqlResult<bool> {
    let graph = PageGraph::open(rel)?;
    for node in 0..graph.node_count() {
        if node % 1024 == 0 {
            pgrx::check_for_interrupts!();
        }
        if !graph.try_tids(node)?.tids.is_empty() {
            return Ok(true);
        }
    }
    if graph.meta.dims != 0 && pending::live_count(rel, EntryShape::of(&graph.meta))? > 0 {
        return Ok(true);
    }
    Ok(!unindexed::all(rel, &graph.meta)?.is_empty())
}

/// Resets an index that holds no row and truncates it to its metapage, if
/// it has pages to give back and no other session has it open. Returns the
/// pages it had and has, or `None` if it was left as it was.
pub fn give_back_if_empty(rel: Index) -> SqlResult<Option<(Block, Block)>> {
    let before = buffer::block_count(rel);
    // SAFETY: reads a backend-local flag.
    if before <= 1 || unsafe { pg_sys::IsInParallelMode() } {
        // A parallel VACUUM (a manual one of a table with several large
        // indexes) can take no ACCESS EXCLUSIVE lock: that needs a
        // transaction id when WAL tells standbys of it. The next VACUUM
        // (autovacuum never runs in parallel) will.
        return Ok(None);
    }
    // A cheap look first, so that VACUUM of an index with rows never asks
    // for the lock: every slot free or flagged deleted.
    let meta = read_meta(rel)?;
    if meta.node_count > meta.free_nodes.saturating_add(meta.deleted_nodes) {
        return Ok(None);
    }
    let Some(_sole) = SoleAccess::try_acquire(rel) else {
        return Ok(None);
    };
    if holds_rows(rel)? {
        return Ok(None);
    }
    let meta = read_meta(rel)?;
    let metric = Metric::from_code(meta.metric)
        .ok_or_else(|| buffer::corrupt(rel, "an unknown metric at block 0"))?;
    let cols = usize::from(meta.filter_cols);
    // The shape it was built with (options and dimensions), and its
    // statistics; an empty graph as CREATE INDEX on an empty table makes it.
    let mut fresh = empty_graph(new_meta(
        meta.dims as usize,
        metric,
        usize::from(meta.m),
        usize::from(meta.ef_construction),
        meta.code_bits,
        &meta.filter_kinds[..cols.min(meta.filter_kinds.len())],
    ));
    fresh.merged_total = meta.merged_total;
    fresh.last_merge = meta.last_merge;
    let mut batch = WalBatch::start(rel);
    let i = batch.page(META_BLOCK, None);
    put_meta(batch.bytes_mut(i), &fresh);
    let lsn = batch.commit();
    if buffer::needs_wal(rel) {
        // SAFETY: flushing WAL up to a record this backend wrote.
        unsafe { pg_sys::XLogFlush(lsn) };
    }
    failpoint::hit("reset_before_truncate");
    // SAFETY: rel is open under our ACCESS EXCLUSIVE lock and this
    // backend holds no pin on its pages past the metapage.
    unsafe { pg_sys::RelationTruncate(rel.raw(), 1) };
    Ok(Some((before, buffer::block_count(rel))))
}
