//! `aminsert`: a new row goes straight into the graph, under the graph lock.

use super::utils::{check_dims, or_raise, prepare, GraphLock};
use crate::error::SqlResult;
use crate::fmgr::detoast_vector;
use crate::storage::graph::PageGraph;
use crate::storage::layout::Tid;
use pgrx::pg_sys;
use vdb_core::hnsw::insert::{link_back, plan, Plan};
use vdb_core::hnsw::search::LayerSearch;
use vdb_core::hnsw::{splitmix64, GraphStore, Point};

pub fn tid_of(tid: &pg_sys::ItemPointerData) -> Tid {
    Tid([tid.ip_blkid.bi_hi, tid.ip_blkid.bi_lo, tid.ip_posid])
}

/// Inserts one prepared point for heap row `tid`: adds the TID to an
/// identical node if the nearest one is identical, else creates and links
/// a new node. The caller holds the graph lock.
pub fn insert_point(
    graph: &mut PageGraph,
    search: &mut LayerSearch,
    point: &Point,
    tid: Tid,
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
        graph.add_node(point, &[tid], &plan)?;
        return Ok(());
    }
    let plan = plan(&*graph, search, point, level, None);
    if let Some(nearest) = plan.nearest {
        if graph.load(nearest.node).vec == point.vec && !graph.tids(nearest.node).deleted {
            graph.add_tid(nearest.node, tid);
            return Ok(());
        }
    }
    let node = graph.add_node(point, &[tid], &plan)?;
    link_back(&*graph, node, &plan);
    Ok(())
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
    // and a valid heap TID.
    let (value, null, tid) = unsafe { (*values, *isnull, tid_of(&*heap_tid)) };
    if null {
        return false;
    }
    // SAFETY: a non-null value of the indexed vector column.
    let raw = or_raise(unsafe { detoast_vector(value) });
    // SAFETY: Postgres keeps the index open for the call.
    let index = unsafe { crate::storage::Index::new(index) };
    let _lock = GraphLock::acquire(index);
    let mut graph = or_raise(PageGraph::open_for_write(index));
    let Some(point) = or_raise(prepare(graph.params().metric, raw)) else {
        return false;
    };
    if graph.dims() == 0 {
        graph.fix_dims(raw.len());
    }
    or_raise(check_dims(graph.dims(), raw.len()));
    or_raise(insert_point(
        &mut graph,
        &mut LayerSearch::new(),
        &point,
        tid,
    ));
    false
}
