//! `amcostestimate`: when the planner should use vhnsw, and the cost of
//! a distance for the plans without it.
//!
//! Only for `ORDER BY <distance operator>` or a distance range
//! (`WHERE embedding <<->> sphere(q, r)`): any other use is priced out.
//!
//! A search's work is its visits: each reads a node's slot from shared
//! buffers and measures one distance. A search for `LIMIT k` makes about
//! [`expected_visits`] of them before its first row (the start-up cost);
//! returning every row walks the whole graph (the total), so the
//! planner's `LIMIT` interpolation charges a filter on a heap column that
//! passes few rows nearly all of it, and such queries keep their
//! sequential scan. Conditions on the filter columns of a composite
//! index are checked inside the index: an exact pass over the passing
//! nodes caps the total (see `scan::prefer_exact_pass`).
//!
//! The sequential scan's side is priced by [`vdb_distance_support`]: a
//! distance costs in proportion to the dimensions, and a vector stored
//! out of line (past about 500 dimensions) is fetched from the TOAST
//! table for every row, which PostgreSQL's estimate of the scan does not
//! charge at all. Both are calibrated on this machine's timings (a visit
//! about 0.8 µs at 384 dimensions, one planner unit about 2.5 µs).

use super::options::{ef_search_for, index_options};
use super::validate::RANGE_STRATEGY;
use pgrx::pg_sys;
use pgrx::PgList;

/// Whether a distance range is among the path's index conditions.
///
/// # Safety
/// `path` must be a valid index path of a vhnsw index.
unsafe fn has_range(path: *mut pg_sys::IndexPath) -> bool {
    // SAFETY: (caller) the planner's path, its index info and clauses.
    unsafe {
        let info = &*(*path).indexinfo;
        let clauses = PgList::<pg_sys::IndexClause>::from_pg((*path).indexclauses);
        // Only the vector column's: strategy 3 is `=` on a filter column.
        let found = clauses.iter_ptr().filter(|&c| (*c).indexcol == 0).any(|c| {
            let clause = (*(*c).rinfo).clause.cast::<pg_sys::Node>();
            if !pgrx::is_a(clause, pg_sys::NodeTag::T_OpExpr) {
                return false;
            }
            let opno = (*clause.cast::<pg_sys::OpExpr>()).opno;
            let family = *info.opfamily.add((*c).indexcol as usize);
            pg_sys::get_op_opfamily_strategy(opno, family) == i32::from(RANGE_STRATEGY)
        });
        found
    }
}

/// Index entries one search is expected to examine in an index of `tuples`.
pub fn expected_visits(tuples: f64, m: usize, ef: usize) -> f64 {
    if tuples <= 1.0 {
        return tuples.max(1.0);
    }
    let levels = tuples.ln() / (m.max(2) as f64).ln();
    let level0 = ef as f64 * 2.0 * m as f64 * 0.6;
    (level0 + levels * m as f64).min(tuples)
}

/// `amcostestimate`
#[pgrx::pg_guard]
#[allow(clippy::too_many_arguments)]
pub unsafe extern "C-unwind" fn amcostestimate(
    root: *mut pg_sys::PlannerInfo,
    path: *mut pg_sys::IndexPath,
    loop_count: f64,
    startup: *mut pg_sys::Cost,
    total: *mut pg_sys::Cost,
    selectivity: *mut pg_sys::Selectivity,
    correlation: *mut f64,
    pages: *mut f64,
) {
    // SAFETY: the planner passes a valid path and output pointers.
    unsafe {
        if (*path).indexorderbys.is_null() && !has_range(path) {
            *startup = f64::INFINITY;
            *total = f64::INFINITY;
            *selectivity = 0.0;
            *correlation = 0.0;
            *pages = 0.0;
            return;
        }
        // The vector column's conditions price the scan as before; the
        // filter columns' make it longer by their selectivity.
        let info = &*(*path).indexinfo;
        let all = PgList::<pg_sys::IndexClause>::from_pg((*path).indexclauses);
        let mut vector_clauses = PgList::<pg_sys::IndexClause>::new();
        let mut filter_rinfos = PgList::<pg_sys::RestrictInfo>::new();
        for c in all.iter_ptr() {
            if (*c).indexcol == 0 {
                vector_clauses.push(c);
            } else {
                filter_rinfos.push((*c).rinfo);
            }
        }
        let filter_share = if filter_rinfos.is_empty() {
            1.0
        } else {
            pg_sys::clauselist_selectivity(
                root,
                filter_rinfos.as_ptr(),
                (*info.rel).relid as i32,
                pg_sys::JoinType::JOIN_INNER,
                std::ptr::null_mut(),
            )
            .clamp(1e-9, 1.0)
        };
        let mut vector_path = *path;
        vector_path.indexclauses = vector_clauses.as_ptr();
        let mut costs = pg_sys::GenericCosts::default();
        pg_sys::genericcostestimate(root, &mut vector_path, loop_count, &mut costs);

        let index = pg_sys::index_open(info.indexoid, pg_sys::NoLock as i32);
        let m = index_options(crate::storage::Index::new(index)).m;
        let ef = ef_search_for(crate::storage::Index::new(index));
        let dims = crate::storage::meta::read_meta(crate::storage::Index::new(index))
            .map_or(0, |meta| meta.dims as usize);
        pg_sys::index_close(index, pg_sys::NoLock as i32);

        let tuples = info.tuples.max(1.0);
        // Index pages that are not in memory cost a random read each.
        let index_pages = costs.numIndexPages.max(1.0);
        let missed = (1.0 - pg_sys::effective_cache_size as f64 / index_pages).max(0.0);
        let visit =
            visit_cost(dims) + missed * pg_sys::random_page_cost * (index_pages / tuples).min(1.0);
        *startup = expected_visits(tuples, m, ef) * visit;
        let walk = tuples * visit;
        *total = if filter_share < 1.0 {
            // The exact pass over the passing nodes: a page of the value
            // region holds 1,020 nodes' words of a column, and a candidate
            // costs about a quarter of a visit.
            let pass = tuples / crate::storage::values::VALUES_PER_PAGE as f64
                + 0.25 * filter_share * tuples * visit;
            walk.min(pass)
        } else {
            walk
        }
        .max(*startup);
        *selectivity = costs.indexSelectivity * filter_share;
        *correlation = costs.indexCorrelation;
        *pages = costs.numIndexPages;
    }
}

/// The planner's cost of one visit of a search at `dims` dimensions: a
/// slot read from shared buffers and its distance.
fn visit_cost(dims: usize) -> f64 {
    // SAFETY: a planner GUC, read on the backend's own thread.
    let op = unsafe { pg_sys::cpu_operator_cost };
    op * (80.0 + dims as f64 / 8.0)
}

/// A varlena longer than this goes out of line (PostgreSQL's
/// `TOAST_TUPLE_THRESHOLD` for 8 kB pages, less the row's other columns).
const TOAST_THRESHOLD: usize = 2032;
/// Bytes of one TOAST chunk (`TOAST_MAX_CHUNK_SIZE`).
const TOAST_CHUNK: usize = 1996;

/// The cost of one distance between vectors of `dims` dimensions, `stored`
/// of the two read from a table (columns; a query's vector is in memory).
fn distance_cost(dims: usize, stored: usize) -> f64 {
    // SAFETY: planner GUCs, read on the backend's own thread.
    let (op, page) = unsafe { (pg_sys::cpu_operator_cost, pg_sys::seq_page_cost) };
    let bytes = 8 + 4 * dims;
    // Out of line: a probe of the TOAST table's index and a read of each
    // chunk, per row (measured: 4 µs a row at 1,536 dimensions).
    let fetch = if bytes > TOAST_THRESHOLD {
        page * (0.2 + 0.3 * bytes.div_ceil(TOAST_CHUNK) as f64)
    } else {
        0.0
    };
    op * (1.0 + dims as f64 / 64.0) + stored as f64 * fetch
}

/// The dimensions of a `vector` expression, if the planner can tell: a
/// column's typmod, or a constant's own length.
///
/// # Safety
/// `expr` must be a valid expression node of type `vector`.
unsafe fn expr_dims(expr: *mut pg_sys::Node) -> Option<usize> {
    // SAFETY: (caller) a valid node; a constant's value is a vector datum.
    unsafe {
        let typmod = pg_sys::exprTypmod(expr);
        if typmod > 0 {
            return Some(typmod as usize);
        }
        if pgrx::is_a(expr, pg_sys::NodeTag::T_Const) {
            let c = &*expr.cast::<pg_sys::Const>();
            if !c.constisnull {
                let ptr = pg_sys::pg_detoast_datum(c.constvalue.cast_mut_ptr());
                return crate::fmgr::vector_elements(ptr).ok().map(<[f32]>::len);
            }
        }
        None
    }
}

crate::fmgr::pg_fn! {
    /// The planner support function of the `vector` distance functions
    /// (and so of their operators): a distance costs by its dimensions
    /// and by the TOAST fetch of a stored vector, where PostgreSQL would
    /// charge every distance one operator's cost whatever its size.
    fn vdb_distance_support(args) {
        let req = args.datum(0).cast_mut_ptr::<pg_sys::Node>();
        // SAFETY: a support function gets a support request node.
        unsafe {
            if !pgrx::is_a(req, pg_sys::NodeTag::T_SupportRequestCost) {
                return Ok(pg_sys::Datum::from(0));
            }
            let cost = &mut *req.cast::<pg_sys::SupportRequestCost>();
            let call_args = if pgrx::is_a(cost.node, pg_sys::NodeTag::T_FuncExpr) {
                (*cost.node.cast::<pg_sys::FuncExpr>()).args
            } else if pgrx::is_a(cost.node, pg_sys::NodeTag::T_OpExpr) {
                (*cost.node.cast::<pg_sys::OpExpr>()).args
            } else {
                return Ok(pg_sys::Datum::from(0));
            };
            let list = PgList::<pg_sys::Node>::from_pg(call_args);
            let dims = list.iter_ptr().find_map(|a| expr_dims(a));
            let Some(dims) = dims else {
                return Ok(pg_sys::Datum::from(0));
            };
            let stored = list
                .iter_ptr()
                .filter(|&a| pgrx::is_a(a, pg_sys::NodeTag::T_Var))
                .count();
            cost.startup = 0.0;
            cost.per_tuple = distance_cost(dims, stored);
            Ok(pg_sys::Datum::from(req))
        }
    }
}
