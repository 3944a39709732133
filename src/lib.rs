//! vdb: a pgvector-compatible `vector` type with distance operators for
//! PostgreSQL, written in Rust with pgrx.
//!
//! The SQL surface is declared by hand in `sql/vdb.sql`; each C symbol it
//! names is defined with [`fmgr::pg_fn!`] in the module that owns it:
//! [`vector`] for the type, its I/O, arithmetic, casts and aggregates, and
//! [`distance`] for the distance functions behind the operators.

pub mod distance;
pub mod error;
pub mod fmgr;
pub mod vector;

::pgrx::pg_module_magic!(name, version);

pgrx::extension_sql_file!("../sql/vdb.sql", name = "vdb_sql", bootstrap);

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
