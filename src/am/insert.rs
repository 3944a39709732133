//! `aminsert`: a new row is appended to the pending list and acknowledged;
//! a merge moves it into the graph later (see [`super::merge`]).
//!
//! The append locks only the tail page of the list. An append that starts
//! the list or a new page of it asks for a merge worker (see
//! [`super::worker`]); when the list reaches
//! `vhnsw.pending_list_hard_limit` in size the inserting backend merges a batch
//! itself before returning (back-pressure: nothing is ever dropped).

use super::columns::Columns;
use super::merge::{merge_batch, LockMode};
use super::options::{merge_batch_size, pending_hard_limit};
use super::utils::{check_dims, or_raise, prepare, raw_of, tid_of, Packing};
use super::worker;
use crate::error::SqlResult;
use crate::storage::layout::{EntryShape, Tid};
use crate::storage::meta::read_meta;
use crate::storage::pending;
use crate::storage::unindexed::{self, Reason};
use crate::storage::writer::{GraphLock, GraphWriter};
use crate::storage::Index;
use pgrx::pg_sys;
use vdb_core::hnsw::search::LayerSearch;

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
    // SAFETY: Postgres passes a value/isnull pair per index column and a
    // valid heap TID, and keeps the index open for the call.
    let (value, null, tid, index) =
        unsafe { (*values, *isnull, tid_of(&*heap_tid), Index::new(index)) };
    if null {
        or_raise(unindexed::append(index, tid, Reason::Null));
        return false;
    }
    let columns = or_raise(Columns::of(index));
    // SAFETY: as above, one value per column of the index's types.
    let words = unsafe { columns.words(values, isnull) };
    // SAFETY: a non-null value of the indexed column, of the operator
    // class's type.
    or_raise(unsafe { insert(index, value, &words, tid) });
    false
}

/// # Safety
/// `value` must be a non-null value of the indexed column's type.
unsafe fn insert(index: Index, value: pg_sys::Datum, words: &[u64], tid: Tid) -> SqlResult<()> {
    let meta = read_meta(index)?;
    let metric = vdb_core::hnsw::Metric::from_code(meta.metric)
        .ok_or_else(|| crate::error::SqlError::internal("vhnsw metapage has an unknown metric"))?;
    // SAFETY: (caller) a value of the operator class's type.
    let raw = unsafe { raw_of(metric, value, Packing::Row(meta.dims as usize))? };
    let raw = &*raw;
    let Some(point) = prepare(metric, raw)? else {
        // A zero vector under cosine: no place in the graph.
        return unindexed::append(index, tid, Reason::NoDirection);
    };
    let shape = EntryShape {
        dims: point.vec.len(),
        ..EntryShape::of(&meta)
    };
    if meta.dims == 0 || shape.per_page() == 0 {
        // The first row of an index built empty fixes its dimensions; a
        // vector too wide for a pending page goes straight into the graph.
        let mut graph = GraphWriter::open(GraphLock::acquire(index))?;
        if graph.dims() == 0 {
            graph.fix_dims(raw.len());
        }
        check_dims(graph.dims(), raw.len())?;
        return graph.insert_point(&mut LayerSearch::new(), &point, words, tid, None);
    }
    check_dims(meta.dims as usize, raw.len())?;
    let appended = pending::append(
        index,
        pending::NewEntry {
            point: &point,
            tid,
            words,
        },
    )?;
    if appended.bytes >= pending_hard_limit() {
        // Back-pressure: this backend merges a batch before returning.
        merge_batch(index, merge_batch_size(), LockMode::Wait)?;
    }
    if appended.ask_worker {
        // Cheap when a worker already runs (one lock-table probe).
        worker::request_merge(index);
    }
    Ok(())
}
