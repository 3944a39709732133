//! `ambulkdelete` and `amvacuumcleanup`.
//!
//! Bulk delete removes the heap TIDs VACUUM reports dead (from the
//! pending list, the graph and the unindexed rows), before the heap can
//! reuse their slots, so a stale index entry can never point at a new
//! row. A node left without TIDs is flagged deleted: it keeps its links, so
//! searches still pass through it, but it is never returned.
//!
//! Cleanup merges the pending list, unlinks the nodes left without rows
//! (re-selecting the lists that pointed to them, so the graph stays
//! connected and recall does not drift), frees their slots for reuse, and
//! relinks any node no path reaches any more. An index left with no row
//! is reset and its file truncated to the metapage (`storage::reset`).

use super::merge::merge_all;
use super::options::merge_batch_size;
use super::utils::{in_subtransaction, item_pointer, or_raise};
use crate::storage::buffer::block_count;
use crate::storage::graph::PageGraph;
use crate::storage::layout::Tid;
use crate::storage::pending;
use crate::storage::reset;
use crate::storage::unindexed;
use crate::storage::writer::{GraphLock, GraphWriter};
use crate::storage::Index;
use pgrx::pg_sys;

fn stats_or_new(stats: *mut pg_sys::IndexBulkDeleteResult) -> *mut pg_sys::IndexBulkDeleteResult {
    if stats.is_null() {
        // SAFETY: palloc0 returns a zeroed result struct.
        unsafe { pg_sys::palloc0(std::mem::size_of::<pg_sys::IndexBulkDeleteResult>()).cast() }
    } else {
        stats
    }
}

/// `ambulkdelete`
#[pgrx::pg_guard]
pub unsafe extern "C-unwind" fn ambulkdelete(
    info: *mut pg_sys::IndexVacuumInfo,
    stats: *mut pg_sys::IndexBulkDeleteResult,
    callback: pg_sys::IndexBulkDeleteCallback,
    callback_state: *mut std::ffi::c_void,
) -> *mut pg_sys::IndexBulkDeleteResult {
    let stats = stats_or_new(stats);
    // SAFETY: info and its open index are valid for the call.
    let index = unsafe { Index::new((*info).index) };
    let Some(is_dead) = callback else {
        return stats;
    };
    let mut graph = or_raise(GraphWriter::open(GraphLock::acquire(index)));
    let (mut removed, mut kept) = (0f64, 0f64);
    if graph.dims() != 0 {
        // SAFETY: the callback VACUUM gave us, with its state.
        let (gone, live) = or_raise(pending::bulk_delete(index, graph.shape(), |t| unsafe {
            is_dead(&mut item_pointer(t), callback_state)
        }));
        removed += gone as f64;
        kept += live as f64;
    }
    // SAFETY: the callback VACUUM gave us, with its state.
    let (gone, live) = or_raise(unindexed::bulk_delete(index, |t| unsafe {
        is_dead(&mut item_pointer(t), callback_state)
    }));
    removed += gone as f64;
    kept += live as f64;
    for node in 0..graph.node_count() {
        if node % 1024 == 0 {
            pgrx::check_for_interrupts!();
        }
        let current = graph.tids(node);
        if current.tids.is_empty() {
            continue;
        }
        let live: Vec<Tid> = current
            .tids
            .iter()
            .copied()
            // SAFETY: the callback VACUUM gave us, with its state.
            .filter(|&t| !unsafe { is_dead(&mut item_pointer(t), callback_state) })
            .collect();
        kept += live.len() as f64;
        if live.len() < current.tids.len() {
            removed += (current.tids.len() - live.len()) as f64;
            or_raise(graph.set_tids(node, &live));
        }
    }
    graph.write_meta();
    // SAFETY: stats is a valid result struct.
    unsafe {
        (*stats).tuples_removed += removed;
        (*stats).num_index_tuples = kept;
        (*stats).num_pages = block_count(index);
    }
    stats
}

/// Merges the pending list, if it can. Nothing VACUUM must do depends on
/// it (bulk delete already flagged the dead entries), so a failure is a
/// WARNING, never an abort of the VACUUM: that would keep the table's
/// `relfrozenxid` from advancing. In a parallel VACUUM (a manual VACUUM
/// of a table with several large indexes) no subtransaction can start:
/// a merge worker is asked for instead.
fn merge_pending(index: Index) {
    // SAFETY: reads a backend-local flag.
    if unsafe { pg_sys::IsInParallelMode() } {
        super::worker::request_merge(index);
        return;
    }
    let result = in_subtransaction(|| merge_all(index, merge_batch_size()));
    let failed = match result {
        Ok(Ok(_)) => return,
        Ok(Err(e)) => e.to_string(),
        Err(message) => message,
    };
    pgrx::warning!("vhnsw: VACUUM could not merge the pending list: {failed}");
}

/// A line of what cleanup did: INFO under `VACUUM VERBOSE`, else DEBUG2.
fn report(info: *mut pg_sys::IndexVacuumInfo, line: &str) {
    // SAFETY: info is valid for the cleanup call that passes it.
    if unsafe { (*info).message_level } >= pg_sys::INFO as i32 {
        pgrx::info!("{line}");
    } else {
        pgrx::debug2!("{line}");
    }
}

/// `amvacuumcleanup`
#[pgrx::pg_guard]
pub unsafe extern "C-unwind" fn amvacuumcleanup(
    info: *mut pg_sys::IndexVacuumInfo,
    stats: *mut pg_sys::IndexBulkDeleteResult,
) -> *mut pg_sys::IndexBulkDeleteResult {
    // SAFETY: info and its open index are valid for the call.
    let (index, analyze_only) = unsafe { (Index::new((*info).index), (*info).analyze_only) };
    if analyze_only {
        return stats;
    }
    merge_pending(index);
    {
        let started = std::time::Instant::now();
        let threads = crate::threads::maintenance_threads();
        let mut graph = or_raise(GraphWriter::open(GraphLock::acquire(index)));
        let done = or_raise(graph.repair_deleted(threads));
        let linked = graph.link_unreachable();
        let line = format!(
            "vhnsw index \"{}\": {} removed nodes unlinked and their slots freed, {} lists refilled from their neighbours and {} searched again on {threads} threads, {linked} unreachable nodes relinked, in {:.2} s",
            index.name(),
            done.freed,
            done.consolidated,
            done.searched,
            started.elapsed().as_secs_f64()
        );
        report(info, &line);
    }
    // After the repair, whose pins and graph lock are released by now.
    if let Some((before, after)) = or_raise(reset::give_back_if_empty(index)) {
        report(
            info,
            &format!(
                "vhnsw index \"{}\": no row left, reset and truncated from {before} pages to {after}",
                index.name()
            ),
        );
    }
    let had_stats = !stats.is_null();
    let stats = stats_or_new(stats);
    if !had_stats {
        // No bulk delete ran: count the entries.
        let graph = or_raise(PageGraph::open(index));
        let tuples: usize = (0..graph.node_count())
            .map(|n| graph.tids(n).tids.len())
            .sum::<usize>()
            + or_raise(unindexed::all(index, &graph.meta)).len();
        // SAFETY: stats is a valid result struct.
        unsafe { (*stats).num_index_tuples = tuples as f64 };
    }
    // SAFETY: stats is a valid result struct.
    unsafe { (*stats).num_pages = block_count(index) };
    stats
}
