//! `halfvec` distances, arithmetic, norms, slicing, ordering and
//! aggregates. Distances run on the halves themselves (simsimd's `f16`
//! kernels); everything else computes in `f32` and rounds back, with
//! pgvector's errors for results a half cannot hold.

use super::{arg, check_dim, check_same_dims, datum_of, to_f32s, MAX_DIM};
use crate::error::{SqlError, SqlResult};
use crate::fmgr::{bit_datum, float8_datum, pg_fn, Args};
use crate::vector::aggregate::{accumulate_row, final_state};
use crate::vector::ops::{binary_quantize, compare, subvector_range};
use pgrx::pg_sys::Datum;
use std::cmp::Ordering;
use vdb_core::distance::{cosine_from_parts, half};

fn overflow() -> SqlError {
    SqlError::out_of_range("value out of range: overflow")
}

/// Both arguments, of equal dimensions.
fn pair<'a>(args: &Args<'a>) -> SqlResult<(&'a [u16], &'a [u16])> {
    let (a, b) = (arg(args, 0)?, arg(args, 1)?);
    check_same_dims(a, b)?;
    Ok((a, b))
}

/// A new halfvec of `f(a[i], b[i])` rounded to halves; a result past
/// half's range is an overflow, and `underflow` also rejects results that
/// round to zero from non-zero operands (as `*` does).
fn elementwise(args: &Args, f: impl Fn(f32, f32) -> f32, underflow: bool) -> SqlResult<Datum> {
    let (a, b) = pair(args)?;
    let mut out = Vec::with_capacity(a.len());
    for (&x, &y) in a.iter().zip(b) {
        let (x, y) = (half::to_f32(x), half::to_f32(y));
        let h = half::from_f32(f(x, y));
        if half::is_infinite(h) {
            return Err(overflow());
        }
        if underflow && half::to_f32(h) == 0.0 && x != 0.0 && y != 0.0 {
            return Err(SqlError::out_of_range("value out of range: underflow"));
        }
        out.push(h);
    }
    Ok(datum_of(&out))
}

pg_fn! {
    /// `l2_distance(halfvec, halfvec)`: the `<->` operator.
    fn vdb_halfvec_l2_distance(args) {
        let (a, b) = pair(&args)?;
        Ok(float8_datum(half::l2_squared(a, b).sqrt()))
    }
}

pg_fn! {
    /// `halfvec_l2_squared_distance(halfvec, halfvec)`
    fn vdb_halfvec_l2_squared_distance(args) {
        let (a, b) = pair(&args)?;
        Ok(float8_datum(half::l2_squared(a, b)))
    }
}

pg_fn! {
    /// `inner_product(halfvec, halfvec)`
    fn vdb_halfvec_inner_product(args) {
        let (a, b) = pair(&args)?;
        Ok(float8_datum(half::dot(a, b)))
    }
}

pg_fn! {
    /// `halfvec_negative_inner_product(halfvec, halfvec)`: the `<#>` operator.
    fn vdb_halfvec_negative_inner_product(args) {
        let (a, b) = pair(&args)?;
        Ok(float8_datum(-half::dot(a, b)))
    }
}

pg_fn! {
    /// `cosine_distance(halfvec, halfvec)`: the `<=>` operator; NaN when
    /// either is zero, as in pgvector.
    fn vdb_halfvec_cosine_distance(args) {
        let (a, b) = pair(&args)?;
        Ok(float8_datum(cosine_from_parts(half::dot(a, b), half::dot(a, a), half::dot(b, b))))
    }
}

pg_fn! {
    /// `halfvec_spherical_distance(halfvec, halfvec)`: for unit vectors.
    fn vdb_halfvec_spherical_distance(args) {
        let (a, b) = pair(&args)?;
        Ok(float8_datum(crate::distance::spherical(half::dot(a, b))))
    }
}

pg_fn! {
    /// `l1_distance(halfvec, halfvec)`: the `<+>` operator.
    fn vdb_halfvec_l1_distance(args) {
        let (a, b) = pair(&args)?;
        Ok(float8_datum(half::l1(a, b)))
    }
}

pg_fn! {
    /// `vector_dims(halfvec)`
    fn vdb_halfvec_dims(args) {
        Ok(Datum::from(arg(&args, 0)?.len() as i32))
    }
}

pg_fn! {
    /// `l2_norm(halfvec)`
    fn vdb_halfvec_l2_norm(args) {
        Ok(float8_datum(crate::vector::ops::norm(&to_f32s(arg(&args, 0)?))))
    }
}

pg_fn! {
    /// `l2_normalize(halfvec)`: a zero vector stays zero.
    fn vdb_halfvec_l2_normalize(args) {
        let a = to_f32s(arg(&args, 0)?);
        let mut out = vec![0.0; a.len()];
        crate::vector::ops::l2_normalize(&a, &mut out)?;
        let halves: Vec<u16> = out.iter().map(|&x| half::from_f32(x)).collect();
        if halves.iter().any(|&h| half::is_infinite(h)) {
            return Err(overflow());
        }
        Ok(datum_of(&halves))
    }
}

pg_fn! {
    /// `binary_quantize(halfvec)` returning `bit`.
    fn vdb_halfvec_binary_quantize(args) {
        let a = to_f32s(arg(&args, 0)?);
        Ok(bit_datum(&binary_quantize(&a), a.len()))
    }
}

pg_fn! {
    /// `subvector(halfvec, integer, integer)`
    fn vdb_halfvec_subvector(args) {
        let a = arg(&args, 0)?;
        let range = subvector_range(a.len(), args.int32(1), args.int32(2), "halfvec")?;
        Ok(datum_of(&a[range]))
    }
}

pg_fn! {
    /// `halfvec_add(halfvec, halfvec)`: the `+` operator and `sum`'s transition.
    fn vdb_halfvec_add(args) { elementwise(&args, |x, y| x + y, false) }
}

pg_fn! {
    /// `halfvec_sub(halfvec, halfvec)`: the `-` operator.
    fn vdb_halfvec_sub(args) { elementwise(&args, |x, y| x - y, false) }
}

pg_fn! {
    /// `halfvec_mul(halfvec, halfvec)`: the `*` operator.
    fn vdb_halfvec_mul(args) { elementwise(&args, |x, y| x * y, true) }
}

pg_fn! {
    /// `halfvec_concat(halfvec, halfvec)`: the `||` operator.
    fn vdb_halfvec_concat(args) {
        let (a, b) = (arg(&args, 0)?, arg(&args, 1)?);
        check_dim(a.len() + b.len())?;
        debug_assert!(a.len() + b.len() <= MAX_DIM);
        Ok(datum_of(&[a, b].concat()))
    }
}

/// Shared body of the comparison operators: element by element, then by
/// length, as `vector` orders.
fn compare_args(args: &Args) -> SqlResult<Ordering> {
    Ok(compare(&to_f32s(arg(args, 0)?), &to_f32s(arg(args, 1)?)))
}

pg_fn! { fn vdb_halfvec_lt(args) { Ok(Datum::from(compare_args(&args)?.is_lt())) } }
pg_fn! { fn vdb_halfvec_le(args) { Ok(Datum::from(compare_args(&args)?.is_le())) } }
pg_fn! { fn vdb_halfvec_eq(args) { Ok(Datum::from(compare_args(&args)?.is_eq())) } }
pg_fn! { fn vdb_halfvec_ne(args) { Ok(Datum::from(compare_args(&args)?.is_ne())) } }
pg_fn! { fn vdb_halfvec_ge(args) { Ok(Datum::from(compare_args(&args)?.is_ge())) } }
pg_fn! { fn vdb_halfvec_gt(args) { Ok(Datum::from(compare_args(&args)?.is_gt())) } }

pg_fn! {
    /// `halfvec_cmp(halfvec, halfvec)`: btree support function 1.
    fn vdb_halfvec_cmp(args) {
        Ok(Datum::from(compare_args(&args)? as i32))
    }
}

pg_fn! {
    /// `halfvec_accum(double precision[], halfvec)`: `avg`'s transition.
    fn vdb_halfvec_accum(args) {
        accumulate_row(&args, &to_f32s(arg(&args, 1)?))
    }
}

pg_fn! {
    /// `halfvec_avg(double precision[])`: `avg`'s final function; NULL for
    /// no rows.
    fn vdb_halfvec_avg(args) {
        let Some((n, sums)) = final_state(&args)? else {
            return Ok(args.return_null());
        };
        let means: Vec<f32> = sums.iter().map(|s| (s / n) as f32).collect();
        super::datum_from_f32s(&means)
    }
}
