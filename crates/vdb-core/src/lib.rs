//! The Postgres-free half of vdb: distance kernels and the HNSW graph
//! algorithm. Nothing here links against or calls PostgreSQL, so all of it
//! is unit-tested with plain `cargo test`.

pub mod distance;
pub mod hnsw;
pub mod quant;
