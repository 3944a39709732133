//! `aminsert`: a new row is appended to the pending list and acknowledged;
//! a merge moves it into the graph later (see [`super::merge`]).
//!
//! The append locks only the tail page of the list. When the list grows
//! past `vhnsw.pending_list_limit` a merge worker is started; when it
//! reaches `vhnsw.pending_list_hard_limit` the inserting backend merges a
//! batch itself before returning (back-pressure: nothing is ever dropped).

use super::merge::{merge_batch, LockMode};
use super::options::{merge_batch_size, pending_hard_limit};
use super::utils::{check_dims, or_raise, prepare, tid_of, GraphLock};
use super::worker;
use crate::error::SqlResult;
use crate::fmgr::detoast_vector;
use crate::storage::graph::{read_meta, PageGraph};
use crate::storage::layout::{pending_per_page, Tid, NODE_IN_USE, NO_NODE};
use crate::storage::pending::{self, EntryRef};
use crate::storage::Index;
use pgrx::pg_sys;
use vdb_core::hnsw::insert::{link_back_with, plan, Plan};
use vdb_core::hnsw::search::LayerSearch;
use vdb_core::hnsw::{splitmix64, GraphStore, Point};

/// Puts one prepared point for heap row `tid` into the graph: adds the TID
/// to an identical node if the nearest one is identical, else creates and
/// links a new node. `merged` is the pending entry it came from, flagged
/// in the same WAL record. The caller holds the graph lock.
pub fn insert_point(
    graph: &mut PageGraph,
    search: &mut LayerSearch,
    point: &Point,
    tid: Tid,
    merged: Option<EntryRef>,
) -> SqlResult<()> {
    let seed = splitmix64(
        (u64::from(tid.block()) << 16 | u64::from(tid.offset())) ^ u64::from(graph.node_count()),
    );
    let level = graph.params().random_level(seed);
    if graph.entry().is_none() {
        let plan = Plan {
            level,
            lists: vec![Vec::new(); usize::from(level) + 1],
            nearest: None,
        };
        graph.add_node(point, &[tid], &plan, merged)?;
        return Ok(());
    }
    let plan = plan(&*graph, search, point, level, None);
    if let Some(nearest) = plan.nearest {
        if graph.load(nearest.node).vec == point.vec && !graph.tids(nearest.node).deleted {
            graph.add_tid(nearest.node, tid, merged);
            return Ok(());
        }
    }
    let node = graph.add_node(point, &[tid], &plan, merged)?;
    link_back_with(&*graph, node, &plan, super::threads::reselect);
    // Written with the next metapage change; until then a crash only
    // means linking this node once more.
    graph.meta.linking = NO_NODE;
    Ok(())
}

/// Opens the graph for changes (the caller holds the graph lock), first
/// finishing the link-back of a node whose insert a crash cut short.
pub fn open_graph_for_write(index: Index) -> SqlResult<PageGraph> {
    let mut graph = PageGraph::open_for_write(index)?;
    let node = graph.meta.linking;
    if node == NO_NODE {
        return Ok(graph);
    }
    if node < graph.node_count() && graph.header(node).flags & NODE_IN_USE != 0 {
        let level = graph.header(node).level;
        let point = graph.load(node);
        let plan = plan(&graph, &mut LayerSearch::new(), &point, level, Some(node));
        link_back_with(&graph, node, &plan, super::threads::reselect);
    }
    graph.meta.linking = NO_NODE;
    graph.flush_meta();
    Ok(graph)
}

/// `aminsert`
#[pgrx::pg_guard]
#[allow(clippy::too_many_arguments)]
pub unsafe extern "C-unwind" fn aminsert(
    index: pg_sys::Relation,
    values: *mut pg_sys::Datum,
    isnull: *mut bool,
    heap_tid: pg_sys::ItemPointer,
    _heap: pg_sys::Relation,
    _check_unique: pg_sys::IndexUniqueCheck::Type,
    _index_unchanged: bool,
    _index_info: *mut pg_sys::IndexInfo,
) -> bool {
    // SAFETY: Postgres passes one value/isnull pair (single-column index)
    // and a valid heap TID, and keeps the index open for the call.
    let (value, null, tid, index) =
        unsafe { (*values, *isnull, tid_of(&*heap_tid), Index::new(index)) };
    if null {
        return false;
    }
    // SAFETY: a non-null value of the indexed vector column.
    let raw = or_raise(unsafe { detoast_vector(value) });
    or_raise(insert(index, raw, tid));
    false
}

fn insert(index: Index, raw: &[f32], tid: Tid) -> SqlResult<()> {
    let meta = read_meta(index)?;
    let metric = vdb_core::hnsw::Metric::from_code(meta.metric)
        .ok_or_else(|| crate::error::SqlError::internal("vhnsw metapage has an unknown metric"))?;
    let Some(point) = prepare(metric, raw)? else {
        return Ok(()); // not indexed (a zero vector under cosine)
    };
    if meta.dims == 0 || pending_per_page(raw.len()) == 0 {
        // The first row of an index built empty fixes its dimensions; a
        // vector too wide for a pending page goes straight into the graph.
        let _lock = GraphLock::acquire(index);
        let mut graph = open_graph_for_write(index)?;
        if graph.dims() == 0 {
            graph.fix_dims(raw.len());
        }
        check_dims(graph.dims(), raw.len())?;
        return insert_point(&mut graph, &mut LayerSearch::new(), &point, tid, None);
    }
    check_dims(meta.dims as usize, raw.len())?;
    let appended = pending::append(index, &point, tid)?;
    if appended.estimate >= pending_hard_limit() {
        // Back-pressure: this backend merges a batch before returning.
        merge_batch(index, merge_batch_size(), LockMode::Wait)?;
    }
    if appended.was_empty || appended.new_page {
        // Cheap when a worker already runs (one lock-table probe per page).
        worker::request_merge(index);
    }
    Ok(())
}
