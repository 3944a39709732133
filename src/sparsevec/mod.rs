//! The `sparsevec` type: pgvector-compatible sparse vectors.
//!
//! A value is a varlena laid out exactly as pgvector's, so that binary COPY
//! output, dumps and client libraries interoperate:
//!
//! ```text
//!  0        4        8        12       16                16 + 4·nnz     16 + 8·nnz
//!  +--------+--------+--------+--------+------------------+---------------+
//!  | varlena| dim    | nnz    | unused | indices[nnz]     | values[nnz]   |
//!  | header | int32  | int32  | int32=0| int32, 0-based,  | float4, never |
//!  |        |        |        |        | strictly rising  | 0, NaN or inf |
//!  +--------+--------+--------+--------+------------------+---------------+
//! ```
//!
//! Every part starts at a multiple of 4 bytes, so a detoasted value (int4
//! aligned by Postgres) is read in place as `&[i32]` and `&[f32]`.
//!
//! Submodules: [`text`] and [`binary`] I/O, [`ops`] (distances, norms,
//! ordering), [`cast`] (typmod, `vector`, arrays).

pub mod binary;
pub mod cast;
pub mod ops;
pub mod text;

use crate::error::{SqlError, SqlResult, SqlState};
use crate::fmgr::Args;
use pgrx::pg_sys::{self, Datum};

/// Most dimensions a `sparsevec` can have (pgvector's `SPARSEVEC_MAX_DIM`).
pub const MAX_DIM: i32 = 1_000_000_000;

/// Most non-zero elements a `sparsevec` can hold (pgvector's `SPARSEVEC_MAX_NNZ`).
pub const MAX_NNZ: usize = 16_000;

/// Bytes before the first index: varlena header, `dim`, `nnz`, `unused`.
pub const HEADER_SIZE: usize = 16;

/// A sparse vector built in Rust (parsed, received, converted): sorted,
/// distinct 0-based indices and their non-zero values.
#[derive(Debug, Clone, PartialEq)]
pub struct SparseVec {
    pub dim: i32,
    pub indices: Vec<i32>,
    pub values: Vec<f32>,
}

impl SparseVec {
    pub fn view(&self) -> Sparse<'_> {
        Sparse {
            dim: self.dim,
            indices: &self.indices,
            values: &self.values,
        }
    }

    /// A new `sparsevec` datum holding this value.
    pub(crate) fn into_datum(self) -> Datum {
        new_datum(self.dim, &self.indices, &self.values)
    }
}

/// A sparse vector read in place (from a datum) or borrowed from a [`SparseVec`].
#[derive(Debug, Clone, Copy)]
pub struct Sparse<'a> {
    pub dim: i32,
    pub indices: &'a [i32],
    pub values: &'a [f32],
}

/// Rejects dimension counts outside `1..=MAX_DIM`.
pub fn check_dim(dim: i32) -> SqlResult<()> {
    if dim < 1 {
        return Err(SqlError::data("sparsevec must have at least 1 dimension"));
    }
    if dim > MAX_DIM {
        return Err(SqlError::new(
            SqlState::ProgramLimitExceeded,
            format!("sparsevec cannot have more than {MAX_DIM} dimensions"),
        ));
    }
    Ok(())
}

pub fn too_many_elements() -> SqlError {
    SqlError::new(
        SqlState::ProgramLimitExceeded,
        format!("sparsevec cannot have more than {MAX_NNZ} non-zero elements"),
    )
}

/// Rejects a non-zero count that is negative, above `MAX_NNZ` or above `dim`.
pub fn check_nnz(nnz: i64, dim: i32) -> SqlResult<()> {
    if nnz < 0 {
        return Err(SqlError::data(
            "sparsevec cannot have negative number of elements",
        ));
    }
    if nnz > MAX_NNZ as i64 {
        return Err(too_many_elements());
    }
    if nnz > i64::from(dim) {
        return Err(SqlError::new(
            SqlState::ProgramLimitExceeded,
            "sparsevec cannot have more elements than dimensions",
        ));
    }
    Ok(())
}

/// Enforces a `sparsevec(n)` type modifier (`-1` means none).
pub fn check_typmod(typmod: i32, dim: i32) -> SqlResult<()> {
    if typmod != -1 && typmod != dim {
        return Err(SqlError::data(format!(
            "expected {typmod} dimensions, not {dim}"
        )));
    }
    Ok(())
}

/// Checks `indices[i]` against the dimension and its predecessor, with
/// pgvector's messages and in pgvector's order (bounds first).
pub fn check_index(indices: &[i32], i: usize, dim: i32) -> SqlResult<()> {
    let index = indices[i];
    if index < 0 || index >= dim {
        return Err(SqlError::data("sparsevec index out of bounds"));
    }
    if let Some(&previous) = i.checked_sub(1).and_then(|p| indices.get(p)) {
        if index < previous {
            return Err(SqlError::data(
                "sparsevec indices must be in ascending order",
            ));
        }
        if index == previous {
            return Err(SqlError::data(
                "sparsevec indices must not contain duplicates",
            ));
        }
    }
    Ok(())
}

/// Rejects NaN and infinities, which a `sparsevec` never holds.
pub fn check_element(x: f32) -> SqlResult<()> {
    if x.is_nan() {
        return Err(SqlError::data("NaN not allowed in sparsevec"));
    }
    if x.is_infinite() {
        return Err(SqlError::data("infinite value not allowed in sparsevec"));
    }
    Ok(())
}

/// Rejects two sparse vectors of different dimensions.
pub fn check_same_dims(a: Sparse, b: Sparse) -> SqlResult<()> {
    if a.dim != b.dim {
        return Err(SqlError::data(format!(
            "different sparsevec dimensions {} and {}",
            a.dim, b.dim
        )));
    }
    Ok(())
}

/// A `sparsevec` argument, detoasted, read in place.
pub(crate) fn arg<'a>(args: &Args<'a>, i: usize) -> SqlResult<Sparse<'a>> {
    Ok(arg_with_datum(args, i)?.1)
}

/// A `sparsevec` argument as its detoasted datum and its contents.
pub(crate) fn arg_with_datum<'a>(args: &Args<'a>, i: usize) -> SqlResult<(Datum, Sparse<'a>)> {
    let datum = args.datum(i);
    // SAFETY: the argument is a non-null `sparsevec` (every function taking
    // one is STRICT); detoasting yields a 4-byte-header copy or the original
    // in-line value, valid for the rest of the call.
    unsafe {
        let ptr = pg_sys::pg_detoast_datum(datum.cast_mut_ptr());
        Ok((Datum::from(ptr), read_varlena(ptr)?))
    }
}

/// The contents of a (possibly toasted) `sparsevec` datum; a detoasted
/// copy lives in the current memory context.
///
/// # Safety
/// `datum` must be a non-null `sparsevec` value valid for `'a`.
pub(crate) unsafe fn detoast<'a>(datum: Datum) -> SqlResult<Sparse<'a>> {
    // SAFETY: (caller) datum is a sparsevec; detoasting yields a varlena
    // with a 4-byte header, valid as long as the datum.
    unsafe { read_varlena(pg_sys::pg_detoast_datum(datum.cast_mut_ptr())) }
}

/// Reads a detoasted `sparsevec` varlena in place, checking that its header
/// agrees with its size (a corrupt value is an error, not a wild read).
///
/// # Safety
/// `ptr` must point to a detoasted varlena that stays valid for `'a`.
unsafe fn read_varlena<'a>(ptr: *const pg_sys::varlena) -> SqlResult<Sparse<'a>> {
    // SAFETY: (caller) ptr is a detoasted varlena, so it has a 4-byte header.
    let total = unsafe { pgrx::varlena::varsize_4b(ptr) };
    let base = ptr.cast::<u8>();
    let field = |offset: usize| {
        if total >= HEADER_SIZE {
            // SAFETY: the value is at least HEADER_SIZE bytes long and
            // offset + 4 <= HEADER_SIZE.
            unsafe { base.add(offset).cast::<i32>().read_unaligned() }
        } else {
            -1
        }
    };
    let (dim, nnz) = (field(4), field(8));
    let aligned = (base as usize).is_multiple_of(std::mem::align_of::<i32>());
    let n = usize::try_from(nnz).unwrap_or(usize::MAX);
    if dim < 1 || n > MAX_NNZ || total != HEADER_SIZE + 8 * n || !aligned {
        return Err(SqlError::internal(format!(
            "corrupt sparsevec value: {total} bytes for {nnz} elements of {dim} dimensions"
        )));
    }
    // SAFETY: the size check above proves that both arrays lie inside the
    // value, and the pointer (hence each 4-byte-multiple offset) is aligned.
    unsafe {
        Ok(Sparse {
            dim,
            indices: std::slice::from_raw_parts(base.add(HEADER_SIZE).cast(), n),
            values: std::slice::from_raw_parts(base.add(HEADER_SIZE + 4 * n).cast(), n),
        })
    }
}

/// A new `sparsevec` datum in the current memory context. The caller has
/// checked the contents (`indices.len() == values.len() <= MAX_NNZ`).
pub(crate) fn new_datum(dim: i32, indices: &[i32], values: &[f32]) -> Datum {
    debug_assert_eq!(indices.len(), values.len());
    debug_assert!(indices.len() <= MAX_NNZ);
    let n = indices.len().min(values.len());
    let size = HEADER_SIZE + 8 * n;
    // SAFETY: palloc0 returns MAXALIGNed zeroed memory of `size` bytes or
    // raises ERROR; every write below stays inside those bytes (the header
    // fields before HEADER_SIZE, then n indices and n values). `unused`
    // stays zero.
    unsafe {
        let ptr = pg_sys::palloc0(size).cast::<u8>();
        pgrx::varlena::set_varsize_4b(ptr.cast(), size as i32);
        ptr.add(4).cast::<i32>().write(dim);
        ptr.add(8).cast::<i32>().write(n as i32);
        std::ptr::copy_nonoverlapping(indices.as_ptr(), ptr.add(HEADER_SIZE).cast(), n);
        std::ptr::copy_nonoverlapping(values.as_ptr(), ptr.add(HEADER_SIZE + 4 * n).cast(), n);
        Datum::from(ptr)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dimension_and_count_limits() {
        assert_eq!(
            check_dim(0).unwrap_err().message,
            "sparsevec must have at least 1 dimension"
        );
        assert!(check_dim(1).is_ok());
        assert!(check_dim(MAX_DIM).is_ok());
        let e = check_dim(MAX_DIM + 1).unwrap_err();
        assert_eq!(e.state, SqlState::ProgramLimitExceeded);
        assert_eq!(
            e.message,
            "sparsevec cannot have more than 1000000000 dimensions"
        );
        assert!(check_nnz(0, 1).is_ok());
        assert!(check_nnz(16_000, MAX_DIM).is_ok());
        assert_eq!(
            check_nnz(-1, 5).unwrap_err().message,
            "sparsevec cannot have negative number of elements"
        );
        assert_eq!(
            check_nnz(16_001, MAX_DIM).unwrap_err().message,
            "sparsevec cannot have more than 16000 non-zero elements"
        );
        let e = check_nnz(3, 2).unwrap_err();
        assert_eq!(e.state, SqlState::ProgramLimitExceeded);
        assert_eq!(
            e.message,
            "sparsevec cannot have more elements than dimensions"
        );
    }

    #[test]
    fn indices_are_checked_in_order() {
        assert!(check_index(&[0, 2, 4], 2, 5).is_ok());
        assert_eq!(
            check_index(&[0, 5], 1, 5).unwrap_err().message,
            "sparsevec index out of bounds"
        );
        assert_eq!(
            check_index(&[-1], 0, 5).unwrap_err().message,
            "sparsevec index out of bounds"
        );
        assert_eq!(
            check_index(&[3, 2], 1, 5).unwrap_err().message,
            "sparsevec indices must be in ascending order"
        );
        assert_eq!(
            check_index(&[2, 2], 1, 5).unwrap_err().message,
            "sparsevec indices must not contain duplicates"
        );
        // Bounds come first, as in pgvector.
        assert_eq!(
            check_index(&[3, 9], 1, 5).unwrap_err().message,
            "sparsevec index out of bounds"
        );
    }

    #[test]
    fn typmod_and_elements() {
        assert!(check_typmod(-1, 7).is_ok());
        assert!(check_typmod(7, 7).is_ok());
        let e = check_typmod(2, 3).unwrap_err();
        assert_eq!(e.message, "expected 2 dimensions, not 3");
        assert_eq!(e.state, SqlState::DataException);
        assert_eq!(
            check_element(f32::NAN).unwrap_err().message,
            "NaN not allowed in sparsevec"
        );
        assert_eq!(
            check_element(f32::NEG_INFINITY).unwrap_err().message,
            "infinite value not allowed in sparsevec"
        );
        assert!(check_element(-0.0).is_ok());
    }
}
