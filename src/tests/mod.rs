//! Tests that run inside a real PostgreSQL backend (`cargo pgrx test pg15`).
//!
//! Each `#[pg_test]` runs in its own transaction, rolled back afterwards.

mod aggregates;
mod casts;
mod errors;
mod filters;
mod functions;
mod halfvec;
mod index;
mod io;
mod knn;
mod planner;
mod ranges;
mod security;
mod sparsevec;
mod support;
mod table_shapes;
mod typed_indexes;
mod write_path;
