//! The `sparsevec` type: pgvector-compatible sparse vectors.
