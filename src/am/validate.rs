//! `amvalidate`: checks an operator class against what vhnsw understands.
//! A vector family: ORDER BY operators with strategy 1, the search hint
//! `<^>` with strategy 2, distance ranges (`<<->>` …) with strategy 3,
//! and support function 1 (the metric). A filter family (the columns
//! after the vector in a composite index): comparisons with B-tree's
//! strategies 1–5, `&&` with 6, `@>` with 7, `<@` (in an array) with 8,
//! and no support function.

use pgrx::pg_sys;

/// The fixed part of a catalog tuple (C's `GETSTRUCT`).
///
/// # Safety
/// `tuple` must be a valid catalog heap tuple of a `T` row.
unsafe fn get_struct<T>(tuple: &pg_sys::HeapTupleData) -> &T {
    // SAFETY: (caller) the row data starts t_hoff bytes into t_data.
    unsafe {
        &*tuple
            .t_data
            .cast::<u8>()
            .add(usize::from((*tuple.t_data).t_hoff))
            .cast::<T>()
    }
}

/// Runs `f` on each row of a catalog cache list keyed by `key`.
///
/// # Safety
/// `cache` must be a list cache whose rows are `T`s.
unsafe fn for_each_row<T>(cache: u32, key: pg_sys::Oid, mut f: impl FnMut(&T)) {
    // SAFETY: (caller) the list holds valid catalog tuples until released.
    unsafe {
        let list = pg_sys::SearchSysCacheList(
            cache as i32,
            1,
            pg_sys::Datum::from(key),
            0.into(),
            0.into(),
        );
        for member in (*list).members.as_slice((*list).n_members as usize) {
            f(get_struct::<T>(&(**member).tuple));
        }
        pg_sys::ReleaseCatCacheList(list);
    }
}

/// The distance operator, for `ORDER BY`.
pub const ORDER_BY_STRATEGY: i16 = 1;
/// The search hint `<^>`, in `WHERE`.
pub const HINT_STRATEGY: i16 = 2;
/// A distance range (`<<->>` and its kin), in `WHERE`.
pub const RANGE_STRATEGY: i16 = 3;

/// Filter columns: `<`, `<=`, `=`, `>=`, `>` (B-tree's numbers), `&&`,
/// `@>`, and `<@` (a value in an array).
pub const FILTER_LT: i16 = 1;
pub const FILTER_LE: i16 = 2;
pub const FILTER_EQ: i16 = 3;
pub const FILTER_GE: i16 = 4;
pub const FILTER_GT: i16 = 5;
pub const FILTER_OVERLAPS: i16 = 6;
pub const FILTER_CONTAINS: i16 = 7;
pub const FILTER_MEMBER: i16 = 8;

fn warn(message: String) {
    pgrx::ereport!(
        INFO,
        pgrx::PgSqlErrorCode::ERRCODE_INVALID_OBJECT_DEFINITION,
        message
    );
}

/// `amvalidate`
#[pgrx::pg_guard]
pub unsafe extern "C-unwind" fn amvalidate(opclass: pg_sys::Oid) -> bool {
    // SAFETY: syscache lookups of an existing operator class and its family.
    unsafe {
        let tuple = pg_sys::SearchSysCache1(
            pg_sys::SysCacheIdentifier::CLAOID as i32,
            pg_sys::Datum::from(opclass),
        );
        if tuple.is_null() {
            warn(format!(
                "cache lookup failed for operator class {}",
                opclass.to_u32()
            ));
            return false;
        }
        let family = get_struct::<pg_sys::FormData_pg_opclass>(&*tuple).opcfamily;
        pg_sys::ReleaseSysCache(tuple);

        let mut ok = true;
        let mut vector_family = false;
        for_each_row::<pg_sys::FormData_pg_amproc>(
            pg_sys::SysCacheIdentifier::AMPROCNUM,
            family,
            |proc| vector_family |= proc.amprocnum == 1,
        );
        for_each_row::<pg_sys::FormData_pg_amop>(
            pg_sys::SysCacheIdentifier::AMOPSTRATEGY,
            family,
            |op| {
                let purpose = |p: u8| op.amoppurpose == p as std::ffi::c_char;
                let known = match op.amopstrategy {
                    _ if !vector_family => {
                        (FILTER_LT..=FILTER_MEMBER).contains(&op.amopstrategy)
                            && purpose(pg_sys::AMOP_SEARCH)
                    }
                    ORDER_BY_STRATEGY => purpose(pg_sys::AMOP_ORDER),
                    HINT_STRATEGY | RANGE_STRATEGY => purpose(pg_sys::AMOP_SEARCH),
                    _ => false,
                };
                if !known {
                    warn(format!(
                    "vhnsw operator family {} has operator {} with strategy {}: not an ORDER BY operator of strategy 1, a search hint of strategy 2 or a distance range of strategy 3",
                    family.to_u32(),
                    op.amopopr.to_u32(),
                    op.amopstrategy
                ));
                    ok = false;
                }
            },
        );
        for_each_row::<pg_sys::FormData_pg_amproc>(
            pg_sys::SysCacheIdentifier::AMPROCNUM,
            family,
            |proc| {
                if proc.amprocnum != 1 {
                    warn(format!(
                        "vhnsw operator family {} has unknown support function {}",
                        family.to_u32(),
                        proc.amprocnum
                    ));
                    ok = false;
                }
            },
        );
        ok
    }
}
