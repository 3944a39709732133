//! vdb: a pgvector-compatible `vector` type, distance operators and the
//! `vhnsw` HNSW index for PostgreSQL, written in Rust with pgrx.
//!
//! The SQL surface is declared by hand in `sql/vdb.sql`; each C symbol it
//! names is defined with [`fmgr::pg_fn!`] in the module that owns it:
//! [`vector`] for the type, its I/O, arithmetic, casts and aggregates,
//! [`distance`] for the distance functions behind the operators, [`am`] for
//! the index access method over the pages of [`storage`].

pub mod am;
pub mod distance;
pub mod error;
mod failpoint;
pub mod fmgr;
pub mod halfvec;
pub mod sparsevec;
pub mod storage;
mod threads;
pub mod vector;

::pgrx::pg_module_magic!(name, version);

pgrx::extension_sql_file!("../sql/vdb.sql", name = "vdb_sql", bootstrap);
pgrx::extension_sql_file!(
    "../sql/halfvec.sql",
    name = "halfvec_sql",
    requires = ["vdb_sql"]
);
pgrx::extension_sql_file!(
    "../sql/bit.sql",
    name = "bit_sql",
    requires = ["halfvec_sql"]
);
pgrx::extension_sql_file!(
    "../sql/sparsevec.sql",
    name = "sparsevec_sql",
    requires = ["bit_sql"]
);

/// Registers the GUCs and index options when the library is loaded.
#[pgrx::pg_guard]
pub extern "C-unwind" fn _PG_init() {
    // Before options::init reserves the `vhnsw.` prefix.
    failpoint::init();
    am::options::init();
    threads::init();
    am::worker::init();
}

#[cfg(any(test, feature = "pg_test"))]
mod tests;

/// Required by `cargo pgrx test`.
#[cfg(test)]
pub mod pg_test {
    pub fn setup(_options: Vec<&str>) {}

    #[must_use]
    pub fn postgresql_conf_options() -> Vec<&'static str> {
        vec![]
    }
}
