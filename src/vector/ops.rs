//! Element-wise arithmetic, norms, slicing and ordering of vectors.

use super::{check_dim, check_same_dims};
use crate::error::{SqlError, SqlResult};
use crate::fmgr::{float8_datum, pg_fn, Args, NewVector};
use pgrx::pg_sys::Datum;
use std::cmp::Ordering;

fn overflow() -> SqlError {
    SqlError::out_of_range("value out of range: overflow")
}

fn underflow() -> SqlError {
    SqlError::out_of_range("value out of range: underflow")
}

/// `out[i] = f(a[i], b[i])`, rejecting results that overflow `float32`.
pub fn elementwise(
    a: &[f32],
    b: &[f32],
    out: &mut [f32],
    f: impl Fn(f32, f32) -> f32,
) -> SqlResult<()> {
    check_same_dims(a, b)?;
    for ((o, &x), &y) in out.iter_mut().zip(a).zip(b) {
        *o = f(x, y);
    }
    if out.iter().any(|x| x.is_infinite()) {
        return Err(overflow());
    }
    Ok(())
}

/// Element-wise product; also rejects products that underflow to zero.
pub fn multiply(a: &[f32], b: &[f32], out: &mut [f32]) -> SqlResult<()> {
    elementwise(a, b, out, |x, y| x * y)?;
    let underflowed = out
        .iter()
        .zip(a.iter().zip(b))
        .any(|(o, (x, y))| *o == 0.0 && *x != 0.0 && *y != 0.0);
    if underflowed {
        return Err(underflow());
    }
    Ok(())
}

/// Euclidean norm, accumulated in `f64` so it cannot overflow.
pub fn norm(a: &[f32]) -> f64 {
    a.iter()
        .map(|&x| f64::from(x) * f64::from(x))
        .sum::<f64>()
        .sqrt()
}

/// `a / |a|`; a zero vector stays zero (pgvector's choice).
pub fn l2_normalize(a: &[f32], out: &mut [f32]) -> SqlResult<()> {
    let n = norm(a);
    if n > 0.0 {
        for (o, &x) in out.iter_mut().zip(a) {
            *o = (f64::from(x) / n) as f32;
        }
        if out.iter().any(|x| x.is_infinite()) {
            return Err(overflow());
        }
    }
    Ok(())
}

/// The 1-based range `start .. start + count` of `a`, clipped to the vector
/// like `substring`; an empty result is an error.
pub fn subvector_range(
    dim: usize,
    start: i32,
    count: i32,
    type_name: &str,
) -> SqlResult<std::ops::Range<usize>> {
    let empty = || SqlError::data(format!("{type_name} must have at least 1 dimension"));
    if count < 1 {
        return Err(empty());
    }
    let (start, count, dim) = (i64::from(start), i64::from(count), dim as i64);
    let end = (start + count).min(dim + 1);
    let start = start.max(1);
    if start > dim || end <= start {
        return Err(empty());
    }
    Ok((start - 1) as usize..(end - 1) as usize)
}

/// Orders vectors element by element, then by length (as arrays compare).
pub fn compare(a: &[f32], b: &[f32]) -> Ordering {
    for (x, y) in a.iter().zip(b) {
        // Elements are never NaN, so partial_cmp always answers.
        match x.partial_cmp(y) {
            Some(Ordering::Equal) | None => {}
            Some(other) => return other,
        }
    }
    a.len().cmp(&b.len())
}

/// One bit per element, set when the element is positive (pgvector's
/// `binary_quantize`), packed most significant bit first.
pub fn binary_quantize(a: &[f32]) -> Vec<u8> {
    let mut bits = vec![0u8; a.len().div_ceil(8)];
    for (i, &x) in a.iter().enumerate() {
        if x > 0.0 {
            bits[i / 8] |= 0x80 >> (i % 8);
        }
    }
    bits
}

/// Shared body of `+`, `-`: a new vector from an element-wise function.
fn binary_op(args: &Args, f: impl Fn(f32, f32) -> f32) -> SqlResult<Datum> {
    let (a, b) = (args.vector(0)?, args.vector(1)?);
    check_same_dims(a, b)?;
    let mut out = NewVector::zeroed(a.len());
    elementwise(a, b, out.values_mut(), f)?;
    Ok(out.into_datum())
}

pg_fn! {
    /// `vector_add(vector, vector)`: the `+` operator and `sum`'s transition.
    fn vdb_vector_add(args) { binary_op(&args, |x, y| x + y) }
}

pg_fn! {
    /// `vector_sub(vector, vector)`: the `-` operator.
    fn vdb_vector_sub(args) { binary_op(&args, |x, y| x - y) }
}

pg_fn! {
    /// `vector_mul(vector, vector)`: the `*` operator.
    fn vdb_vector_mul(args) {
        let (a, b) = (args.vector(0)?, args.vector(1)?);
        check_same_dims(a, b)?;
        let mut out = NewVector::zeroed(a.len());
        multiply(a, b, out.values_mut())?;
        Ok(out.into_datum())
    }
}

pg_fn! {
    /// `vector_concat(vector, vector)`: the `||` operator.
    fn vdb_vector_concat(args) {
        let (a, b) = (args.vector(0)?, args.vector(1)?);
        check_dim(a.len() + b.len())?;
        let mut out = NewVector::zeroed(a.len() + b.len());
        let values = out.values_mut();
        values[..a.len()].copy_from_slice(a);
        values[a.len()..].copy_from_slice(b);
        Ok(out.into_datum())
    }
}

pg_fn! {
    /// `vector_dims(vector)`
    fn vdb_vector_dims(args) {
        Ok(Datum::from(args.vector(0)?.len() as i32))
    }
}

pg_fn! {
    /// `vector_norm(vector)`
    fn vdb_vector_norm(args) {
        Ok(float8_datum(norm(args.vector(0)?)))
    }
}

pg_fn! {
    /// `l2_normalize(vector)`
    fn vdb_l2_normalize(args) {
        let a = args.vector(0)?;
        let mut out = NewVector::zeroed(a.len());
        l2_normalize(a, out.values_mut())?;
        Ok(out.into_datum())
    }
}

pg_fn! {
    /// `subvector(vector, integer, integer)`
    fn vdb_subvector(args) {
        let a = args.vector(0)?;
        let range = subvector_range(a.len(), args.int32(1), args.int32(2), "vector")?;
        Ok(NewVector::from_slice(&a[range]).into_datum())
    }
}

pg_fn! {
    /// `binary_quantize(vector)` returning `bit`.
    fn vdb_binary_quantize(args) {
        let a = args.vector(0)?;
        Ok(crate::fmgr::bit_datum(&binary_quantize(a), a.len()))
    }
}

/// Shared body of the comparison operators.
fn compare_args(args: &Args) -> SqlResult<Ordering> {
    Ok(compare(args.vector(0)?, args.vector(1)?))
}

pg_fn! { fn vdb_vector_lt(args) { Ok(Datum::from(compare_args(&args)?.is_lt())) } }
pg_fn! { fn vdb_vector_le(args) { Ok(Datum::from(compare_args(&args)?.is_le())) } }
pg_fn! { fn vdb_vector_eq(args) { Ok(Datum::from(compare_args(&args)?.is_eq())) } }
pg_fn! { fn vdb_vector_ne(args) { Ok(Datum::from(compare_args(&args)?.is_ne())) } }
pg_fn! { fn vdb_vector_ge(args) { Ok(Datum::from(compare_args(&args)?.is_ge())) } }
pg_fn! { fn vdb_vector_gt(args) { Ok(Datum::from(compare_args(&args)?.is_gt())) } }

pg_fn! {
    /// `vector_cmp(vector, vector)`: btree support function 1.
    fn vdb_vector_cmp(args) {
        Ok(Datum::from(compare_args(&args)? as i32))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::SqlState;

    #[test]
    fn arithmetic_checks_overflow_and_underflow() {
        let mut out = [0.0; 2];
        elementwise(&[1.0, 2.0], &[3.0, 4.0], &mut out, |x, y| x + y).expect("adds");
        assert_eq!(out, [4.0, 6.0]);
        let e = elementwise(&[3e38], &[3e38], &mut out[..1], |x, y| x + y).unwrap_err();
        assert_eq!(e.state, SqlState::NumericValueOutOfRange);
        assert_eq!(e.message, "value out of range: overflow");
        let e = multiply(&[1e-30], &[1e-30], &mut out[..1]).unwrap_err();
        assert_eq!(e.message, "value out of range: underflow");
        multiply(&[0.0, 2.0], &[5.0, 3.0], &mut out).expect("multiplies");
        assert_eq!(out, [0.0, 6.0]);
        assert_eq!(
            elementwise(&[1.0], &[1.0, 2.0], &mut out, |x, y| x + y)
                .unwrap_err()
                .message,
            "different vector dimensions 1 and 2"
        );
    }

    #[test]
    fn normalize_and_norm() {
        assert_eq!(norm(&[3.0, 4.0]), 5.0);
        let mut out = [0.0; 2];
        l2_normalize(&[3.0, 4.0], &mut out).expect("normalizes");
        assert_eq!(out, [0.6, 0.8]);
        let mut zero = [0.0; 2];
        l2_normalize(&[0.0, 0.0], &mut zero).expect("zero stays zero");
        assert_eq!(zero, [0.0, 0.0]);
        // Huge elements would overflow a float32 sum of squares, not an f64 one.
        assert!((norm(&[3e38, 3e38]) - 3e38f64 * 2f64.sqrt()).abs() / 4.2e38 < 1e-6);
    }

    #[test]
    fn subvector_is_one_based_and_clipped() {
        assert_eq!(subvector_range(5, 1, 3, "vector"), Ok(0..3));
        assert_eq!(subvector_range(5, 3, 10, "vector"), Ok(2..5));
        assert_eq!(subvector_range(5, -1, 3, "vector"), Ok(0..1));
        assert_eq!(subvector_range(5, 5, 1, "vector"), Ok(4..5));
        assert!(subvector_range(5, 6, 1, "vector").is_err());
        assert!(subvector_range(5, 1, 0, "vector").is_err());
        assert!(subvector_range(5, -5, 3, "vector").is_err());
        assert_eq!(
            subvector_range(5, i32::MAX, i32::MAX, "vector")
                .unwrap_err()
                .state,
            SqlState::DataException
        );
    }

    #[test]
    fn ordering_is_elementwise_then_length() {
        assert_eq!(compare(&[1.0, 2.0], &[1.0, 3.0]), Ordering::Less);
        assert_eq!(compare(&[1.0, 2.0], &[1.0]), Ordering::Greater);
        assert_eq!(compare(&[0.0], &[-0.0]), Ordering::Equal);
        assert_eq!(compare(&[2.0], &[1.0, 5.0]), Ordering::Greater);
    }

    #[test]
    fn quantizes_sign_bits() {
        assert_eq!(
            binary_quantize(&[1.0, -1.0, 0.0, 2.0, 1.0, 1.0, 1.0, 1.0, 5.0]),
            vec![0b1001_1111, 0b1000_0000]
        );
    }
}
