//! `sparsevec`: I/O, operators, functions, casts and errors against pgvector's surface.
