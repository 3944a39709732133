//! The `halfvec` type: pgvector-compatible vectors of IEEE half floats.
