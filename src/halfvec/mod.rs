//! The `halfvec` type: a pgvector-compatible array of IEEE half floats.
//!
//! The value is laid out exactly as pgvector's, so binary COPY output,
//! dumps and client libraries interoperate:
//!
//! ```text
//!  0        4        6        8                         8 + 2·dim
//!  +--------+--------+--------+-------+-------+-----+-------+
//!  | varlena| dim    | unused | x[0]  | x[1]  | ... | x[n-1]|
//!  | header | int16  | int16=0| half  | half  |     | half  |
//!  +--------+--------+--------+-------+-------+-----+-------+
//! ```
//!
//! Functions compute in `f32` (every half is exact in it) and round
//! results back to half, ties to even; a result past half's range
//! (±65,504) is an error, never an infinity. Submodules: [`io`] (text and
//! binary), [`ops`] (distances, arithmetic, norms, ordering, aggregates),
//! [`cast`].

pub mod cast;
pub mod io;
pub mod ops;

use crate::error::{SqlError, SqlResult, SqlState};
use crate::fmgr::{push_real, Args};
use pgrx::pg_sys::{self, Datum};
use vdb_core::distance::half;

/// Most dimensions a `halfvec` can have (pgvector's limit).
pub const MAX_DIM: usize = 16_000;

/// Bytes before the first element: varlena header, `dim`, `unused`.
pub const HEADER_SIZE: usize = 8;

/// Rejects dimension counts outside `1..=MAX_DIM`.
pub fn check_dim(dim: usize) -> SqlResult<()> {
    if dim < 1 {
        return Err(SqlError::data("halfvec must have at least 1 dimension"));
    }
    if dim > MAX_DIM {
        return Err(SqlError::new(
            SqlState::ProgramLimitExceeded,
            format!("halfvec cannot have more than {MAX_DIM} dimensions"),
        ));
    }
    Ok(())
}

/// Rejects two halfvecs of different lengths.
pub fn check_same_dims(a: &[u16], b: &[u16]) -> SqlResult<()> {
    if a.len() != b.len() {
        return Err(SqlError::data(format!(
            "different halfvec dimensions {} and {}",
            a.len(),
            b.len()
        )));
    }
    Ok(())
}

/// Rejects NaN and infinities, which a `halfvec` never holds.
pub fn check_element(h: u16) -> SqlResult<()> {
    if half::is_nan(h) {
        return Err(SqlError::data("NaN not allowed in halfvec"));
    }
    if half::is_infinite(h) {
        return Err(SqlError::data("infinite value not allowed in halfvec"));
    }
    Ok(())
}

/// `x` rounded to half; a finite `x` past half's range is an error naming
/// it (pgvector's message). NaN and infinities pass through for
/// [`check_element`] to name.
pub fn to_half(x: f32) -> SqlResult<u16> {
    let h = half::from_f32(x);
    if half::is_infinite(h) && x.is_finite() {
        let mut text = Vec::new();
        push_real(&mut text, x);
        return Err(SqlError::out_of_range(format!(
            "\"{}\" is out of range for type halfvec",
            String::from_utf8_lossy(&text)
        )));
    }
    Ok(h)
}

/// Rounds values to halves, rejecting what a halfvec cannot hold: every
/// value is converted first (a range error wins), then checked for NaN
/// and infinities, in pgvector's order.
pub fn to_halves(values: &[f32]) -> SqlResult<Vec<u16>> {
    let halves = values
        .iter()
        .map(|&x| to_half(x))
        .collect::<SqlResult<Vec<u16>>>()?;
    halves.iter().try_for_each(|&h| check_element(h))?;
    Ok(halves)
}

/// The exact `f32` values of halves.
pub fn to_f32s(halves: &[u16]) -> Vec<f32> {
    halves.iter().map(|&h| half::to_f32(h)).collect()
}

/// The elements of a (possibly toasted) `halfvec` datum; a detoasted copy
/// lives in the current memory context.
///
/// # Safety
/// `datum` must be a non-null `halfvec` value valid for `'a`.
pub unsafe fn detoast<'a>(datum: Datum) -> SqlResult<&'a [u16]> {
    // SAFETY: (caller) datum is a halfvec; detoasting yields a varlena
    // with a 4-byte header, valid as long as the datum.
    unsafe {
        let ptr = pg_sys::pg_detoast_datum(datum.cast_mut_ptr());
        let total = pgrx::varlena::varsize_4b(ptr);
        let dim = ptr.cast::<u8>().add(4).cast::<i16>().read_unaligned();
        let dim = usize::try_from(dim).unwrap_or(0);
        let aligned = (ptr as usize).is_multiple_of(std::mem::align_of::<u16>());
        if dim == 0 || dim > MAX_DIM || total != HEADER_SIZE + 2 * dim || !aligned {
            return Err(SqlError::internal(format!(
                "corrupt halfvec value: {total} bytes for {dim} dimensions"
            )));
        }
        Ok(std::slice::from_raw_parts(
            ptr.cast::<u8>().add(HEADER_SIZE).cast(),
            dim,
        ))
    }
}

/// Argument `i`, a `halfvec`, as its elements.
pub fn arg<'a>(args: &Args<'a>, i: usize) -> SqlResult<&'a [u16]> {
    // SAFETY: the SQL declaration says argument i is a halfvec, and every
    // function taking one is STRICT, so it is not NULL.
    unsafe { detoast(args.datum(i)) }
}

/// A new `halfvec` datum holding `halves` (already checked), palloc'd in
/// the current memory context.
pub fn datum_of(halves: &[u16]) -> Datum {
    debug_assert!((1..=MAX_DIM).contains(&halves.len()));
    let size = HEADER_SIZE + 2 * halves.len();
    // SAFETY: palloc0 returns MAXALIGNed zeroed memory or raises ERROR;
    // the writes stay inside the `size` bytes allocated.
    unsafe {
        let ptr = pg_sys::palloc0(size).cast::<u8>();
        pgrx::varlena::set_varsize_4b(ptr.cast(), size as i32);
        ptr.add(4).cast::<i16>().write(halves.len() as i16);
        std::ptr::copy_nonoverlapping(
            halves.as_ptr(),
            ptr.add(HEADER_SIZE).cast::<u16>(),
            halves.len(),
        );
        Datum::from(ptr)
    }
}

/// A new `halfvec` datum of `values` rounded to halves (checked).
pub fn datum_from_f32s(values: &[f32]) -> SqlResult<Datum> {
    check_dim(values.len())?;
    Ok(datum_of(&to_halves(values)?))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// (`to_half`'s out-of-range message needs the server's float
    /// printer, so the database tests check conversions.)
    #[test]
    fn dimensions_and_elements() {
        assert_eq!(check_element(half::from_f32(1.5)), Ok(()));
        assert_eq!(
            check_element(half::from_f32(f32::NAN)).unwrap_err().message,
            "NaN not allowed in halfvec"
        );
        assert_eq!(
            check_element(0xfc00).unwrap_err().message,
            "infinite value not allowed in halfvec"
        );
        assert_eq!(check_dim(0).unwrap_err().state, SqlState::DataException);
        assert_eq!(
            check_dim(MAX_DIM + 1).unwrap_err().state,
            SqlState::ProgramLimitExceeded
        );
    }
}
