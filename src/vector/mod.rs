//! The `vector` type: a pgvector-compatible array of `float32`.
//!
//! On disk and in memory a value is a varlena laid out exactly as pgvector's,
//! so that binary COPY output, dumps and client libraries interoperate:
//!
//! ```text
//!  0        4        6        8                         8 + 4·dim
//!  +--------+--------+--------+-------+-------+-----+-------+
//!  | varlena| dim    | unused | x[0]  | x[1]  | ... | x[n-1]|
//!  | header | int16  | int16=0| f32   | f32   |     | f32   |
//!  +--------+--------+--------+-------+-------+-----+-------+
//! ```
//!
//! The elements start 8 bytes in, so a detoasted value (int4-aligned by
//! Postgres) can be read as an aligned `&[f32]` without copying.
//!
//! Submodules: [`text`] and [`binary`] I/O, [`ops`] (arithmetic, norms,
//! comparison), [`cast`] (typmod and arrays), [`aggregate`] (`avg`, `sum`).

pub mod aggregate;
pub mod binary;
pub mod cast;
pub mod ops;
pub mod text;

use crate::error::{SqlError, SqlResult, SqlState};

/// Most dimensions a `vector` can have (pgvector's limit).
pub const MAX_DIM: usize = 16_000;

/// Bytes before the first element: varlena header, `dim`, `unused`.
pub const HEADER_SIZE: usize = 8;

/// Rejects dimension counts outside `1..=MAX_DIM`.
pub fn check_dim(dim: usize) -> SqlResult<()> {
    if dim < 1 {
        return Err(SqlError::data("vector must have at least 1 dimension"));
    }
    if dim > MAX_DIM {
        return Err(too_many_dimensions());
    }
    Ok(())
}

pub fn too_many_dimensions() -> SqlError {
    SqlError::new(
        SqlState::ProgramLimitExceeded,
        format!("vector cannot have more than {MAX_DIM} dimensions"),
    )
}

/// Enforces a `vector(n)` type modifier (`-1` means none).
pub fn check_typmod(typmod: i32, dim: usize) -> SqlResult<()> {
    if typmod != -1 && usize::try_from(typmod).ok() != Some(dim) {
        return Err(SqlError::data(format!(
            "expected {typmod} dimensions, not {dim}"
        )));
    }
    Ok(())
}

/// Rejects NaN and infinities, which a `vector` never holds.
pub fn check_element(x: f32) -> SqlResult<()> {
    if x.is_nan() {
        return Err(SqlError::data("NaN not allowed in vector"));
    }
    if x.is_infinite() {
        return Err(SqlError::data("infinite value not allowed in vector"));
    }
    Ok(())
}

/// Rejects two vectors of different lengths.
pub fn check_same_dims(a: &[f32], b: &[f32]) -> SqlResult<()> {
    if a.len() != b.len() {
        return Err(SqlError::data(format!(
            "different vector dimensions {} and {}",
            a.len(),
            b.len()
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dimension_limits() {
        assert_eq!(check_dim(0).unwrap_err().state, SqlState::DataException);
        assert!(check_dim(1).is_ok());
        assert!(check_dim(MAX_DIM).is_ok());
        assert_eq!(
            check_dim(MAX_DIM + 1).unwrap_err().state,
            SqlState::ProgramLimitExceeded
        );
    }

    #[test]
    fn typmod_must_match() {
        assert!(check_typmod(-1, 5).is_ok());
        assert!(check_typmod(3, 3).is_ok());
        let err = check_typmod(3, 4).unwrap_err();
        assert_eq!(err.message, "expected 3 dimensions, not 4");
        assert_eq!(err.state, SqlState::DataException);
    }

    #[test]
    fn elements_must_be_finite() {
        assert!(check_element(1.5).is_ok());
        assert_eq!(
            check_element(f32::NAN).unwrap_err().message,
            "NaN not allowed in vector"
        );
        assert_eq!(
            check_element(f32::NEG_INFINITY).unwrap_err().message,
            "infinite value not allowed in vector"
        );
    }
}
