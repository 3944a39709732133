//! Helpers shared by the access-method callbacks.

use crate::error::{SqlError, SqlResult, SqlState};
use crate::fmgr::raise;
use crate::storage::layout::Tid;
use crate::storage::Index;
use pgrx::pg_sys;
use std::borrow::Cow;
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

/// Runs `f` in an internal subtransaction, as a PL/pgSQL exception block
/// does: an `ERROR` inside rolls back what the subtransaction holds
/// (locks, pins, memory; WAL records already written stay, as after any
/// `ERROR`, which the write paths are ordered for) and comes back as
/// `Err(message)` instead of aborting the caller's transaction.
pub fn in_subtransaction<R>(f: impl FnOnce() -> R) -> Result<R, String> {
    // SAFETY: the subtransaction is begun and ended on this thread, and
    // the caller's memory context and resource owner are restored on both
    // paths, as plpgsql's exec_stmt_block does.
    unsafe {
        let context = pg_sys::CurrentMemoryContext;
        let owner = pg_sys::CurrentResourceOwner;
        // An ERROR resets the holdoff count that buffer-lock releases
        // during unwinding then decrement: put back what it was.
        let holdoff = pg_sys::InterruptHoldoffCount;
        pg_sys::BeginInternalSubTransaction(std::ptr::null());
        pg_sys::MemoryContextSwitchTo(context);
        let restore = move || {
            pg_sys::MemoryContextSwitchTo(context);
            pg_sys::CurrentResourceOwner = owner;
        };
        pgrx::PgTryBuilder::new(std::panic::AssertUnwindSafe(|| {
            let result = f();
            pg_sys::ReleaseCurrentSubTransaction();
            restore();
            Ok(result)
        }))
        .catch_others(|e| {
            pg_sys::InterruptHoldoffCount = holdoff;
            pg_sys::RollbackAndReleaseCurrentSubTransaction();
            restore();
            // A cancel or shutdown is for the caller, as in PL/pgSQL.
            let code = match &e {
                pgrx::pg_sys::panic::CaughtError::PostgresError(r)
                | pgrx::pg_sys::panic::CaughtError::ErrorReport(r)
                | pgrx::pg_sys::panic::CaughtError::RustPanic { ereport: r, .. } => {
                    r.sql_error_code()
                }
            };
            if matches!(
                code,
                pgrx::PgSqlErrorCode::ERRCODE_QUERY_CANCELED
                    | pgrx::PgSqlErrorCode::ERRCODE_ADMIN_SHUTDOWN
            ) {
                e.rethrow();
            }
            Err(match e {
                pgrx::pg_sys::panic::CaughtError::PostgresError(r)
                | pgrx::pg_sys::panic::CaughtError::ErrorReport(r)
                | pgrx::pg_sys::panic::CaughtError::RustPanic { ereport: r, .. } => {
                    r.message().to_string()
                }
            })
        })
        .execute()
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

/// How [`raw_of`] packs a value: for the index's rows, or as a query;
/// each with the index's `Meta::dims` (0 when not known yet).
#[derive(Debug, Clone, Copy)]
pub enum Packing {
    /// A row: a sparsevec must fit the index's capacity.
    Row(usize),
    /// A query: a sparsevec with more non-zeros packs to its own size.
    Query(usize),
}

/// An indexed value or a query as the raw elements [`Metric::prepare`]
/// takes: a `vector`'s floats, a `halfvec`'s exact values, or one 0 or 1
/// per bit of a `bit` string (its length is then the SQL dimension
/// count); a `sparsevec` packed into the index's `words`
/// (`vdb_core::distance::sparse`).
///
/// # Safety
/// `datum` must be a non-null value of the type the index's operator
/// class (of `metric`) is for, valid for `'a`.
pub unsafe fn raw_of<'a>(
    metric: Metric,
    datum: pg_sys::Datum,
    packing: Packing,
) -> SqlResult<Cow<'a, [f32]>> {
    let words = match packing {
        Packing::Row(words) | Packing::Query(words) => words,
    };
    // SAFETY: (caller) the datum is of the metric's type.
    unsafe {
        if metric.is_sparse() {
            let s = crate::sparsevec::detoast(datum)?;
            let mut capacity = words.saturating_sub(2) / 2;
            if let Packing::Query(_) = packing {
                // Queries are not held to the index's capacity.
                capacity = capacity.max(s.indices.len());
            }
            let indices: Vec<u32> = s.indices.iter().map(|&i| i as u32).collect();
            let packed = vdb_core::distance::sparse::pack(s.dim as u32, &indices, s.values, capacity)
                .ok_or_else(|| {
                    SqlError::new(
                        SqlState::ProgramLimitExceeded,
                        format!(
                            "sparsevec has {} non-zero elements, more than this index holds ({capacity})",
                            s.indices.len()
                        ),
                    )
                    .with_detail(format!(
                        "A vhnsw index on sparsevec holds max_nnz non-zeros per vector: \
                         rebuild it WITH (max_nnz = ...), up to {}.",
                        crate::sparsevec::MAX_NNZ
                    ))
                })?;
            Ok(Cow::Owned(packed))
        } else if metric.is_half() {
            Ok(Cow::Owned(crate::halfvec::to_f32s(
                crate::halfvec::detoast(datum)?,
            )))
        } else if metric.is_bits() {
            let bits = crate::distance::bits::detoast_bit(datum)?;
            // `words` is the index's bit count: a string of another
            // length is refused before a float per bit is allocated.
            if words != 0 && bits.len != words {
                let len = bits.len;
                return Err(SqlError::data(match packing {
                    Packing::Row(_) => format!("expected {words} dimensions, not {len}"),
                    Packing::Query(_) => format!("different bit lengths {words} and {len}"),
                }));
            }
            Ok(Cow::Owned(bits.elements()?))
        } else {
            Ok(Cow::Borrowed(crate::fmgr::detoast_vector(datum)?))
        }
    }
}

/// The dimensions a new index records: a sparsevec index's packed size
/// (from `max_nnz`, or a page's worth), else the column's `vector(n)`
/// (0 until the first row when it has none).
pub fn index_dims(
    index: Index,
    metric: Metric,
    options: &super::options::IndexOptions,
    filter_words: usize,
) -> usize {
    if metric.is_sparse() {
        let capacity = match options.max_nnz {
            0 => crate::storage::layout::sparse_capacity_for_page(options.m, filter_words),
            n => n,
        };
        vdb_core::distance::sparse::words_for(capacity)
    } else {
        column_dims(index).unwrap_or(0)
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

/// What one of vdb's SQL functions needs on an index's table.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Needs {
    /// Reading the index's shape: `SELECT` on the table.
    Select,
    /// Reading every row or changing the index (`vhnsw_check`,
    /// `vhnsw_merge`): ownership of the table, as `VACUUM`, `REINDEX` and
    /// `amcheck`'s functions require.
    Owner,
    /// [`Needs::Owner`], and the index will be written: refused during
    /// recovery and in read-only transactions, before anything is locked.
    OwnerToWrite,
}

fn rel_name(oid: pg_sys::Oid) -> String {
    // SAFETY: get_rel_name reads the catalog; NULL for a missing relation.
    let name = unsafe { pg_sys::get_rel_name(oid) };
    if name.is_null() {
        return format!("{}", oid.to_u32());
    }
    // SAFETY: a palloc'd NUL-terminated string.
    unsafe { std::ffi::CStr::from_ptr(name) }
        .to_string_lossy()
        .into_owned()
}

/// Runs `f` on the vhnsw index `oid` for SQL function `function`, once
/// the caller's rights on the index's table are checked (before any lock
/// is taken, so that a role without rights cannot make others wait). The
/// table is locked before the index, as every other path does; both with
/// `lock`. An index that is not valid yet (a `CREATE INDEX CONCURRENTLY`
/// in progress or failed) is refused where the function needs every row.
pub fn with_index<R>(
    oid: pg_sys::Oid,
    function: &str,
    needs: Needs,
    lock: u32,
    f: impl FnOnce(Index) -> SqlResult<R>,
) -> SqlResult<R> {
    if needs == Needs::OwnerToWrite {
        // SAFETY: both read backend-local or shared state only.
        let (recovery, read_only) = unsafe { (pg_sys::RecoveryInProgress(), pg_sys::XactReadOnly) };
        if recovery {
            return Err(SqlError::new(
                SqlState::ReadOnlySqlTransaction,
                format!("cannot run {function} during recovery"),
            )
            .with_detail("A standby replays the primary's index; merge on the primary."));
        }
        if read_only {
            return Err(SqlError::new(
                SqlState::ReadOnlySqlTransaction,
                format!("cannot run {function} in a read-only transaction"),
            ));
        }
    }
    // SAFETY: reads the catalog; InvalidOid when oid is no index.
    let heap = unsafe { pg_sys::IndexGetRelation(oid, true) };
    if heap == pg_sys::InvalidOid {
        return Err(SqlError::new(
            SqlState::WrongObjectType,
            format!("\"{}\" is not an index", rel_name(oid)),
        ));
    }
    // SAFETY: GetUserId reads the current role; the checks read the catalog.
    let allowed = unsafe {
        let user = pg_sys::GetUserId();
        match needs {
            Needs::Select => {
                pg_sys::pg_class_aclcheck(heap, user, pg_sys::ACL_SELECT as pg_sys::AclMode)
                    == pg_sys::AclResult::ACLCHECK_OK
            }
            Needs::Owner | Needs::OwnerToWrite => pg_sys::pg_class_ownercheck(heap, user),
        }
    };
    if !allowed {
        let table = rel_name(heap);
        return Err(SqlError::new(
            SqlState::InsufficientPrivilege,
            match needs {
                Needs::Select => format!("permission denied for table {table}"),
                _ => format!("must be owner of table {table}"),
            },
        )
        .with_detail(format!("{function} needs it on the index's table.")));
    }
    // SAFETY: locks the table by oid; held to the end of the transaction.
    unsafe { pg_sys::LockRelationOid(heap, lock as pg_sys::LOCKMODE) };
    // SAFETY: index_open locks and validates the relation (an ERROR if it
    // is not an index); closed below.
    let raw = unsafe { pg_sys::index_open(oid, lock as i32) };
    // SAFETY: opened above; rd_index is set for an index.
    // SAFETY: opened above; rd_rel is always set.
    let relkind = unsafe { (*(*raw).rd_rel).relkind };
    let result =
        if !unsafe { is_vhnsw(raw) } || relkind != pg_sys::RELKIND_INDEX as std::ffi::c_char {
            Err(SqlError::invalid_parameter(format!(
                "\"{}\" is not a vhnsw index",
                rel_name(oid)
            )))
        } else if needs != Needs::Select && !unsafe { (*(*raw).rd_index).indisvalid } {
            Err(SqlError::new(
                SqlState::ObjectNotInPrerequisiteState,
                format!("index \"{}\" is not valid yet", rel_name(oid)),
            )
            .with_detail("It is being built concurrently, or such a build failed: REINDEX it."))
        } else {
            // SAFETY: open until index_close below.
            f(unsafe { Index::new(raw) })
        };
    // SAFETY: opened above.
    unsafe { pg_sys::index_close(raw, lock as i32) };
    result
}
