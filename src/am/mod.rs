//! The `vhnsw` index access method: one module per callback, as in
//! PostgreSQL's `contrib/bloom` and pgvector's `hnsw*.c`. The graph
//! algorithm lives in `vdb_core::hnsw`, the page layout in
//! `crate::storage`; this is the glue.

pub mod build;
pub mod check;
pub mod columns;
pub mod cost;
pub mod insert;
pub mod merge;
pub mod options;
pub mod scan;
pub mod utils;
pub mod vacuum;
pub mod validate;
pub mod worker;

use crate::fmgr::pg_fn;
use pgrx::pg_sys::{self, Datum};
use pgrx::PgBox;
use vdb_core::hnsw::Metric;

pg_fn! {
    /// `vhnsw_handler(internal)`: the access method's callbacks.
    fn vdb_vhnsw_handler(_args) {
        let mut am = unsafe { PgBox::<pg_sys::IndexAmRoutine>::alloc_node(pg_sys::NodeTag::T_IndexAmRoutine) };
        am.amstrategies = 0;
        am.amsupport = 1;
        am.amoptsprocnum = 0;
        am.amcanorder = false;
        am.amcanorderbyop = true;
        am.amcanbackward = false;
        am.amcanunique = false;
        am.amcanmulticol = true;
        am.amoptionalkey = true;
        am.amsearcharray = true;
        am.amsearchnulls = false;
        am.amstorage = false;
        am.amclusterable = false;
        am.ampredlocks = false;
        am.amcanparallel = false;
        am.amcaninclude = false;
        am.amusemaintenanceworkmem = false;
        am.amparallelvacuumoptions = pg_sys::VACUUM_OPTION_PARALLEL_BULKDEL as u8;
        am.amkeytype = pg_sys::InvalidOid;
        am.ambuild = Some(build::ambuild);
        am.ambuildempty = Some(build::ambuildempty);
        am.aminsert = Some(insert::aminsert);
        am.ambulkdelete = Some(vacuum::ambulkdelete);
        am.amvacuumcleanup = Some(vacuum::amvacuumcleanup);
        am.amcostestimate = Some(cost::amcostestimate);
        am.amoptions = Some(options::amoptions);
        am.ambuildphasename = Some(build::ambuildphasename);
        am.amvalidate = Some(validate::amvalidate);
        am.ambeginscan = Some(scan::ambeginscan);
        am.amrescan = Some(scan::amrescan);
        am.amgettuple = Some(scan::amgettuple);
        am.amendscan = Some(scan::amendscan);
        Ok(Datum::from(am.into_pg()))
    }
}

/// Support function 1 of each operator class: tells the index its metric.
macro_rules! metric_support {
    ($($name:ident => $metric:expr),* $(,)?) => {$(
        pg_fn! {
            fn $name(_args) { Ok(Datum::from($metric.code() as usize)) }
        }
    )*};
}

metric_support! {
    vdb_vhnsw_support_l2 => Metric::L2,
    vdb_vhnsw_support_ip => Metric::InnerProduct,
    vdb_vhnsw_support_cosine => Metric::Cosine,
    vdb_vhnsw_support_l1 => Metric::L1,
    vdb_vhnsw_support_poincare => Metric::Poincare,
    vdb_vhnsw_support_halfvec_l2 => Metric::HalfL2,
    vdb_vhnsw_support_halfvec_ip => Metric::HalfInnerProduct,
    vdb_vhnsw_support_halfvec_cosine => Metric::HalfCosine,
    vdb_vhnsw_support_halfvec_l1 => Metric::HalfL1,
    vdb_vhnsw_support_bit_hamming => Metric::Hamming,
    vdb_vhnsw_support_bit_jaccard => Metric::Jaccard,
    vdb_vhnsw_support_sparsevec_l2 => Metric::SparseL2,
    vdb_vhnsw_support_sparsevec_ip => Metric::SparseInnerProduct,
    vdb_vhnsw_support_sparsevec_cosine => Metric::SparseCosine,
    vdb_vhnsw_support_sparsevec_l1 => Metric::SparseL1,
}
