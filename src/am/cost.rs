//! `amcostestimate`: when the planner should use vhnsw.
//!
//! Only for `ORDER BY <distance operator>` or a distance range
//! (`WHERE embedding <<->> sphere(q, r)`): any other use is priced out.
//! Conditions on the filter columns of a composite index make a search
//! longer: a walk expands about `1 / s` times the nodes for a filter
//! passing a share `s` of the rows, and an exact pass over the passing
//! nodes caps that (see `scan::prefer_exact_pass`). The index returns only
//! passing rows, so the planner's `LIMIT` interpolation over them charges
//! a filter passing few rows nearly the whole pass: above a B-tree on the
//! filter column plus a sort, when there is one, and below the same
//! search through a vector-only index with the filter applied to every
//! row it fetches from the heap.
//! A search examines roughly `ef_search · 2m` entries on level 0 plus a few
//! per upper level; its start-up cost is that fraction of a full index
//! scan, so `ORDER BY ... LIMIT k` on a large table uses the index, while a
//! small table (where one search touches most of the index anyway) keeps
//! its sequential scan and sort.

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
        pg_sys::index_close(index, pg_sys::NoLock as i32);

        // The first search round: what `LIMIT k` without a filter costs.
        let tuples = info.tuples.max(1.0);
        let ratio = (expected_visits(tuples, m, ef) / tuples).min(1.0);
        *startup = costs.indexTotalCost * ratio;
        // Every row that passes the filter: a walk through the whole
        // graph, or the exact pass over the passing nodes when cheaper.
        // The planner's LIMIT interpolation then charges `k / rows` of it,
        // so a filter passing few rows costs nearly all of it.
        // (A page of the value region holds 1,020 nodes' words of a column;
        // a candidate costs about a quarter of an expanded node.)
        let pass =
            tuples / crate::storage::values::VALUES_PER_PAGE as f64 + 0.25 * filter_share * tuples;
        *total = (costs.indexTotalCost * (pass / tuples).min(1.0)).max(*startup);
        *selectivity = costs.indexSelectivity * filter_share;
        *correlation = costs.indexCorrelation;
        *pages = costs.numIndexPages;
    }
}
