//! Helpers shared by the access-method callbacks.

use crate::error::{SqlError, SqlResult};
use crate::fmgr::raise;
use crate::storage::Index;
use pgrx::pg_sys;
use vdb_core::hnsw::{Metric, Point, Unindexable};

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
