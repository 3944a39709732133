//! Helpers shared by the access-method callbacks.

use crate::error::{SqlError, SqlResult};
use crate::fmgr::raise;
use crate::storage::layout::Tid;
use crate::storage::Index;
use pgrx::pg_sys;
use vdb_core::hnsw::{Metric, Point, Unindexable};

/// A heap TID in the index's form.
pub fn tid_of(tid: &pg_sys::ItemPointerData) -> Tid {
    Tid([tid.ip_blkid.bi_hi, tid.ip_blkid.bi_lo, tid.ip_posid])
}

/// A heap TID in Postgres's form.
pub fn item_pointer(tid: Tid) -> pg_sys::ItemPointerData {
    let mut item = pg_sys::ItemPointerData::default();
    item.ip_blkid.bi_hi = tid.0[0];
    item.ip_blkid.bi_lo = tid.0[1];
    item.ip_posid = tid.0[2];
    item
}

/// Tag of the heavyweight page lock that serialises graph changes (it
/// names block 0 but is unrelated to that buffer's content lock).
const GRAPH_LOCK_BLOCK: u32 = 0;

/// Holds the index's graph-change lock: one writer (insert, build tail,
/// vacuum) changes links at a time; scans never take it.
pub struct GraphLock {
    rel: Index,
}

impl GraphLock {
    pub fn acquire(rel: Index) -> GraphLock {
        // SAFETY: rel is an open index; heavyweight locks are released at
        // transaction abort if we never get to Drop.
        unsafe { pg_sys::LockPage(rel.raw(), GRAPH_LOCK_BLOCK, pg_sys::ExclusiveLock as i32) };
        GraphLock { rel }
    }
}

impl GraphLock {
    /// The lock if nobody holds it, else `None` (background merges).
    pub fn try_acquire(rel: Index) -> Option<GraphLock> {
        // SAFETY: as in acquire.
        let got = unsafe {
            pg_sys::ConditionalLockPage(rel.raw(), GRAPH_LOCK_BLOCK, pg_sys::ExclusiveLock as i32)
        };
        got.then_some(GraphLock { rel })
    }
}

impl Drop for GraphLock {
    fn drop(&mut self) {
        // SAFETY: we took this lock in acquire.
        unsafe {
            pg_sys::UnlockPage(
                self.rel.raw(),
                GRAPH_LOCK_BLOCK,
                pg_sys::ExclusiveLock as i32,
            )
        };
    }
}

/// The metric of the index's operator class: support function 1 returns
/// its code.
pub fn opclass_metric(index: Index) -> SqlResult<Metric> {
    // SAFETY: index is open; every vhnsw operator class defines support
    // function 1 as one of the vhnsw_support_* functions, which ignore
    // their argument and return the metric code.
    let code = unsafe {
        let proc = pg_sys::index_getprocinfo(index.raw(), 1, 1);
        pg_sys::FunctionCall1Coll(proc, pg_sys::InvalidOid, pg_sys::Datum::from(0usize)).value()
    };
    u8::try_from(code)
        .ok()
        .and_then(Metric::from_code)
        .ok_or_else(|| SqlError::internal(format!("unknown vhnsw metric code {code}")))
}

/// The `n` of the indexed column's `vector(n)`, if it has one.
pub fn column_dims(index: Index) -> Option<usize> {
    // SAFETY: an index relation has a tuple descriptor with one attribute.
    let typmod = unsafe { (*(*index.raw()).rd_att).attrs.as_slice(1)[0].atttypmod };
    usize::try_from(typmod).ok().filter(|&n| n > 0)
}

/// The stored form of an indexed value, or `None` if it is not indexed
/// (a zero vector under cosine). A Poincaré point outside the unit ball is
/// an error, as its distance is undefined.
pub fn prepare(metric: Metric, raw: &[f32]) -> SqlResult<Option<Point>> {
    match metric.prepare(raw) {
        Ok(p) => Ok(Some(p)),
        Err(Unindexable::ZeroVector) => Ok(None),
        Err(Unindexable::OutsideUnitBall) => Err(SqlError::data(
            "poincare_distance requires points strictly inside the unit ball",
        )
        .with_detail(
            "A vector indexed with vector_poincare_ops must have a Euclidean norm below 1.",
        )),
    }
}

/// Checks a vector's dimensions against the index's.
pub fn check_dims(index_dims: usize, dims: usize) -> SqlResult<()> {
    if index_dims != 0 && index_dims != dims {
        return Err(SqlError::data(format!(
            "expected {index_dims} dimensions, not {dims}"
        )));
    }
    Ok(())
}

/// Unwraps a result inside an AM callback, raising the error.
pub fn or_raise<T>(result: SqlResult<T>) -> T {
    result.unwrap_or_else(|e| raise(e))
}

/// Whether `rel` is an index of the vhnsw access method.
///
/// # Safety
/// `rel` must be an open relation.
pub unsafe fn is_vhnsw(rel: pg_sys::Relation) -> bool {
    // SAFETY: as the caller promises; get_index_am_oid reads the catalog.
    unsafe { (*(*rel).rd_rel).relam == pg_sys::get_index_am_oid(c"vhnsw".as_ptr(), true) }
}

/// Runs `f` on the vhnsw index `oid`, opened with `lock` (errors if `oid`
/// is another kind of relation).
pub fn with_index<R>(
    oid: pg_sys::Oid,
    lock: u32,
    f: impl FnOnce(Index) -> SqlResult<R>,
) -> SqlResult<R> {
    // SAFETY: index_open locks and validates the relation (an ERROR if it
    // is not an index); closed below.
    let raw = unsafe { pg_sys::index_open(oid, lock as i32) };
    // SAFETY: opened above.
    let result = if unsafe { is_vhnsw(raw) } {
        // SAFETY: open until index_close below.
        f(unsafe { Index::new(raw) })
    } else {
        Err(SqlError::invalid_parameter("not a vhnsw index"))
    };
    // SAFETY: opened above.
    unsafe { pg_sys::index_close(raw, lock as i32) };
    result
}
