//! Distances, norms and ordering of sparse vectors.
//!
//! The distances walk both index lists together. They accumulate in
//! `float4`, term by term in index order, exactly as pgvector does, so the
//! results agree with pgvector's bit for bit (an overflowing sum is
//! `Infinity`, as there); `l2_norm` and `l2_normalize` accumulate in
//! `float8`, as pgvector's do.

use super::{check_same_dims, Sparse, SparseVec};
use crate::error::{SqlError, SqlResult};
use crate::fmgr::{float8_datum, pg_fn, Args};
use pgrx::pg_sys::Datum;
use std::cmp::Ordering;

/// One step of the merge of two index lists.
enum Term {
    Both(f32, f32),
    OnlyA(f32),
    OnlyB(f32),
}

/// Calls `f` for every index either vector holds, in increasing index order.
fn merge(a: Sparse, b: Sparse, mut f: impl FnMut(Term)) {
    let (mut i, mut j) = (0, 0);
    let (an, bn) = (a.indices.len(), b.indices.len());
    while i < an || j < bn {
        let order = match (a.indices.get(i), b.indices.get(j)) {
            (Some(ai), Some(bi)) => ai.cmp(bi),
            (Some(_), None) => Ordering::Less,
            _ => Ordering::Greater,
        };
        match order {
            Ordering::Less => {
                f(Term::OnlyA(a.values[i]));
                i += 1;
            }
            Ordering::Greater => {
                f(Term::OnlyB(b.values[j]));
                j += 1;
            }
            Ordering::Equal => {
                f(Term::Both(a.values[i], b.values[j]));
                i += 1;
                j += 1;
            }
        }
    }
}

/// Squared Euclidean distance, summed in `float4`.
pub fn l2_squared(a: Sparse, b: Sparse) -> f32 {
    let mut sum = 0.0f32;
    merge(a, b, |t| {
        let d = match t {
            Term::Both(x, y) => x - y,
            Term::OnlyA(x) => x,
            Term::OnlyB(y) => y,
        };
        sum += d * d;
    });
    sum
}

/// Inner product, summed in `float4` over the indices both vectors hold.
pub fn inner_product(a: Sparse, b: Sparse) -> f32 {
    let mut sum = 0.0f32;
    merge(a, b, |t| {
        if let Term::Both(x, y) = t {
            sum += x * y;
        }
    });
    sum
}

/// Taxicab distance, summed in `float4`.
pub fn l1(a: Sparse, b: Sparse) -> f32 {
    let mut sum = 0.0f32;
    merge(a, b, |t| {
        sum += match t {
            Term::Both(x, y) => (x - y).abs(),
            Term::OnlyA(x) => x.abs(),
            Term::OnlyB(y) => y.abs(),
        };
    });
    sum
}

/// Cosine distance, clamped to `0..=2`; NaN when either vector is zero
/// (or a squared norm overflows `float4`), as in pgvector.
pub fn cosine_distance(a: Sparse, b: Sparse) -> f64 {
    let squares = |v: Sparse| v.values.iter().fold(0.0f32, |s, &x| s + x * x);
    let (na, nb) = (squares(a), squares(b));
    // sqrt(a * b) rather than sqrt(a) * sqrt(b), as pgvector.
    let similarity = f64::from(inner_product(a, b)) / (f64::from(na) * f64::from(nb)).sqrt();
    // `clamp` keeps NaN as NaN.
    1.0 - similarity.clamp(-1.0, 1.0)
}

/// Euclidean norm, accumulated in `float8`.
pub fn norm(a: Sparse) -> f64 {
    a.values
        .iter()
        .map(|&x| f64::from(x) * f64::from(x))
        .sum::<f64>()
        .sqrt()
}

/// `a / |a|`; a zero vector stays zero. Elements that underflow to zero
/// are dropped (a sparsevec stores no zeros), as pgvector does.
pub fn l2_normalize(a: Sparse) -> SqlResult<SparseVec> {
    let n = norm(a);
    let mut out = SparseVec {
        dim: a.dim,
        indices: Vec::with_capacity(a.indices.len()),
        values: Vec::with_capacity(a.values.len()),
    };
    if n > 0.0 {
        for (&index, &x) in a.indices.iter().zip(a.values) {
            let y = (f64::from(x) / n) as f32;
            if y.is_infinite() {
                return Err(SqlError::out_of_range("value out of range: overflow"));
            }
            if y != 0.0 {
                out.indices.push(index);
                out.values.push(y);
            }
        }
    }
    Ok(out)
}

/// pgvector's order: as if comparing the dense vectors element by element
/// (absent elements are zero), then by dimension. Elements are never NaN.
pub fn compare(a: Sparse, b: Sparse) -> Ordering {
    // The sign of the first element only one side has decides: the other
    // side is zero there.
    let sign = |x: f32| {
        if x < 0.0 {
            Ordering::Less
        } else {
            Ordering::Greater
        }
    };
    let n = a.indices.len().min(b.indices.len());
    for i in 0..n {
        let (ai, bi) = (a.indices[i], b.indices[i]);
        if ai < bi {
            return sign(a.values[i]);
        }
        if ai > bi {
            return sign(b.values[i]).reverse();
        }
        match a.values[i].partial_cmp(&b.values[i]) {
            Some(Ordering::Equal) | None => {}
            Some(other) => return other,
        }
    }
    // One side has more elements: its next one decides if the other
    // vector reaches that far.
    if let Some(&bi) = b.indices.get(n) {
        if bi < a.dim {
            return sign(b.values[n]).reverse();
        }
    }
    if let Some(&ai) = a.indices.get(n) {
        if ai < b.dim {
            return sign(a.values[n]);
        }
    }
    a.dim.cmp(&b.dim)
}

/// The two `sparsevec` arguments, checked to have the same dimension.
fn pair<'a>(args: &Args<'a>) -> SqlResult<(Sparse<'a>, Sparse<'a>)> {
    let (a, b) = (super::arg(args, 0)?, super::arg(args, 1)?);
    check_same_dims(a, b)?;
    Ok((a, b))
}

pg_fn! {
    /// `l2_distance(sparsevec, sparsevec)`: the `<->` operator.
    fn vdb_sparsevec_l2_distance(args) {
        let (a, b) = pair(&args)?;
        Ok(float8_datum(f64::from(l2_squared(a, b)).sqrt()))
    }
}

pg_fn! {
    /// `sparsevec_l2_squared_distance(sparsevec, sparsevec)`
    fn vdb_sparsevec_l2_squared_distance(args) {
        let (a, b) = pair(&args)?;
        Ok(float8_datum(f64::from(l2_squared(a, b))))
    }
}

pg_fn! {
    /// `inner_product(sparsevec, sparsevec)`
    fn vdb_sparsevec_inner_product(args) {
        let (a, b) = pair(&args)?;
        Ok(float8_datum(f64::from(inner_product(a, b))))
    }
}

pg_fn! {
    /// `sparsevec_negative_inner_product(sparsevec, sparsevec)`: the `<#>` operator.
    fn vdb_sparsevec_negative_inner_product(args) {
        let (a, b) = pair(&args)?;
        Ok(float8_datum(-f64::from(inner_product(a, b))))
    }
}

pg_fn! {
    /// `cosine_distance(sparsevec, sparsevec)`: the `<=>` operator.
    fn vdb_sparsevec_cosine_distance(args) {
        let (a, b) = pair(&args)?;
        Ok(float8_datum(cosine_distance(a, b)))
    }
}

pg_fn! {
    /// `l1_distance(sparsevec, sparsevec)`: the `<+>` operator.
    fn vdb_sparsevec_l1_distance(args) {
        let (a, b) = pair(&args)?;
        Ok(float8_datum(f64::from(l1(a, b))))
    }
}

pg_fn! {
    /// `l2_norm(sparsevec)`
    fn vdb_sparsevec_l2_norm(args) {
        Ok(float8_datum(norm(super::arg(&args, 0)?)))
    }
}

pg_fn! {
    /// `l2_normalize(sparsevec)`
    fn vdb_sparsevec_l2_normalize(args) {
        Ok(l2_normalize(super::arg(&args, 0)?)?.into_datum())
    }
}

/// Shared body of the comparison operators.
fn compare_args(args: &Args) -> SqlResult<Ordering> {
    Ok(compare(super::arg(args, 0)?, super::arg(args, 1)?))
}

pg_fn! { fn vdb_sparsevec_lt(args) { Ok(Datum::from(compare_args(&args)?.is_lt())) } }
pg_fn! { fn vdb_sparsevec_le(args) { Ok(Datum::from(compare_args(&args)?.is_le())) } }
pg_fn! { fn vdb_sparsevec_eq(args) { Ok(Datum::from(compare_args(&args)?.is_eq())) } }
pg_fn! { fn vdb_sparsevec_ne(args) { Ok(Datum::from(compare_args(&args)?.is_ne())) } }
pg_fn! { fn vdb_sparsevec_ge(args) { Ok(Datum::from(compare_args(&args)?.is_ge())) } }
pg_fn! { fn vdb_sparsevec_gt(args) { Ok(Datum::from(compare_args(&args)?.is_gt())) } }

pg_fn! {
    /// `sparsevec_cmp(sparsevec, sparsevec)`: btree support function 1.
    fn vdb_sparsevec_cmp(args) {
        Ok(Datum::from(compare_args(&args)? as i32))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sparsevec::text::parse;

    fn sv(s: &str) -> SparseVec {
        parse(s.as_bytes(), -1).unwrap_or_else(|e| panic!("{s}: {e}"))
    }

    /// The dense form, for reference computations.
    fn dense(v: &SparseVec) -> Vec<f32> {
        let mut out = vec![0.0; v.dim as usize];
        for (&i, &x) in v.indices.iter().zip(&v.values) {
            out[i as usize] = x;
        }
        out
    }

    /// pgvector's own merge loop, transcribed, as the reference for the
    /// order of float4 accumulation. (Its inner loop sets the next start
    /// while it runs, as the C does; the current loop is unaffected.)
    #[allow(clippy::mut_range_bound)]
    fn pgvector_l2_squared(a: Sparse, b: Sparse) -> f32 {
        let mut distance = 0.0f32;
        let mut bpos = 0;
        for i in 0..a.indices.len() {
            let ai = a.indices[i];
            let mut bi = -1;
            for j in bpos..b.indices.len() {
                bi = b.indices[j];
                if ai == bi {
                    let diff = a.values[i] - b.values[j];
                    distance += diff * diff;
                } else if ai > bi {
                    distance += b.values[j] * b.values[j];
                }
                if ai >= bi {
                    bpos = j + 1;
                }
                if bi >= ai {
                    break;
                }
            }
            if ai != bi {
                distance += a.values[i] * a.values[i];
            }
        }
        for j in bpos..b.indices.len() {
            distance += b.values[j] * b.values[j];
        }
        distance
    }

    #[test]
    fn distances_match_pgvector_examples() {
        let d = |f: fn(Sparse, Sparse) -> f32, a: &str, b: &str| f(sv(a).view(), sv(b).view());
        assert_eq!(d(l2_squared, "{}/2", "{1:3,2:4}/2"), 25.0);
        assert_eq!(d(l2_squared, "{1:3}/2", "{2:4}/2"), 25.0);
        assert_eq!(d(l2_squared, "{2:4}/2", "{1:3}/2"), 25.0);
        assert_eq!(d(inner_product, "{1:1,2:2}/2", "{1:2,2:4}/2"), 10.0);
        assert_eq!(d(inner_product, "{1:1,3:3}/4", "{2:2,4:4}/4"), 0.0);
        assert_eq!(d(inner_product, "{1:1,3:3,5:5}/5", "{2:4,3:6,4:8}/5"), 18.0);
        assert_eq!(d(inner_product, "{1:3e38}/1", "{1:3e38}/1"), f32::INFINITY);
        assert_eq!(d(l1, "{}/2", "{1:3,2:4}/2"), 7.0);
        assert_eq!(d(l1, "{1:1,3:3,5:5,7:7}/8", "{2:2,4:4,6:6,8:8}/8"), 36.0);
        assert_eq!(
            d(l1, "{1:1,3:3,5:5,7:7,9:9}/9", "{2:2,4:4,6:6,8:8}/9"),
            45.0
        );
        assert_eq!(d(l1, "{1:3e38}/1", "{1:-3e38}/1"), f32::INFINITY);
        let c = |a: &str, b: &str| cosine_distance(sv(a).view(), sv(b).view());
        assert_eq!(c("{1:1,2:2}/2", "{1:2,2:4}/2"), 0.0);
        assert_eq!(c("{1:1}/2", "{2:2}/2"), 1.0);
        assert_eq!(c("{1:1,2:1}/2", "{1:-1,2:-1}/2"), 2.0);
        assert_eq!(c("{1:1,2:1}/2", "{1:1.1,2:1.1}/2"), 0.0);
        assert_eq!(c("{1:1,2:1}/2", "{1:-1.1,2:-1.1}/2"), 2.0);
        assert!(c("{1:1,2:2}/2", "{}/2").is_nan());
        assert!(c("{}/1", "{}/1").is_nan());
        assert!(c("{1:3e38}/1", "{1:3e38}/1").is_nan());
    }

    #[test]
    fn merge_accumulates_in_pgvector_order() {
        // Values of very different magnitudes make the float4 sum depend
        // on the order of its terms.
        let mut s = 0x2545_f491_4f6c_dd1du64;
        let mut next = || {
            s ^= s << 13;
            s ^= s >> 7;
            s ^= s << 17;
            s
        };
        for _ in 0..200 {
            let mut make = || {
                let mut v = SparseVec {
                    dim: 64,
                    indices: vec![],
                    values: vec![],
                };
                for i in 0..64 {
                    if next() % 3 == 0 {
                        let r = next();
                        let mag = 10f32.powi((r % 13) as i32 - 6);
                        v.indices.push(i);
                        v.values.push(((r >> 20) % 1000) as f32 * mag - 500.0 * mag);
                    }
                }
                v.values.iter_mut().for_each(|x| {
                    if *x == 0.0 {
                        *x = 1.0
                    }
                });
                v
            };
            let (a, b) = (make(), make());
            assert_eq!(
                l2_squared(a.view(), b.view()).to_bits(),
                pgvector_l2_squared(a.view(), b.view()).to_bits()
            );
            let (da, db) = (dense(&a), dense(&b));
            let ip: f64 = da.iter().zip(&db).map(|(&x, &y)| f64::from(x * y)).sum();
            let got = f64::from(inner_product(a.view(), b.view()));
            assert!((got - ip).abs() <= 1e-5 * ip.abs().max(1.0), "{got} {ip}");
        }
    }

    #[test]
    fn norms_and_normalize() {
        assert_eq!(norm(sv("{1:3,2:4}/2").view()), 5.0);
        assert_eq!(norm(sv("{}/2").view()), 0.0);
        assert_eq!(norm(sv("{1:3e37,2:4e37}/2").view()) as f32, 5e37);
        let n = |s: &str| l2_normalize(sv(s).view()).expect("normalizes");
        assert_eq!(n("{1:3,2:4}/2"), sv("{1:0.6,2:0.8}/2"));
        assert_eq!(n("{2:0.1}/2"), sv("{2:1}/2"));
        assert_eq!(n("{}/2"), sv("{}/2"));
        assert_eq!(n("{1:3e38}/1"), sv("{1:1}/1"));
        // Underflowed elements are dropped.
        assert_eq!(n("{1:3e38,2:1e-37}/2"), sv("{1:1}/2"));
        assert_eq!(
            n("{2:3e37,4:3e-37,6:4e37,8:4e-37}/9"),
            sv("{2:0.6,6:0.8}/9")
        );
    }

    #[test]
    fn ordering_matches_pgvector() {
        let cmp = |a: &str, b: &str| compare(sv(a).view(), sv(b).view());
        use Ordering::*;
        assert_eq!(cmp("{1:1,2:2,3:3}/3", "{1:1,2:2,3:3}/3"), Equal);
        assert_eq!(cmp("{1:1,2:2,3:3}/3", "{}/3"), Greater);
        assert_eq!(cmp("{}/3", "{1:1,2:2,3:3}/3"), Less);
        assert_eq!(cmp("{1:1,2:2}/2", "{1:1,2:2,3:3}/3"), Less);
        assert_eq!(cmp("{1:1,2:2,3:3}/3", "{1:1,2:2}/2"), Greater);
        assert_eq!(cmp("{1:1,2:2}/2", "{1:2,2:3,3:4}/3"), Less);
        assert_eq!(cmp("{1:2,2:3}/2", "{1:1,2:2,3:3}/3"), Greater);
        assert_eq!(cmp("{1:-1}/3", "{}/3"), Less);
        assert_eq!(cmp("{2:1}/3", "{1:1}/3"), Less);
        assert_eq!(cmp("{2:-1}/3", "{1:-1}/3"), Greater);
        assert_eq!(cmp("{1:0.5}/2", "{1:0.5,2:-1}/2"), Greater);
    }

    /// On vectors of one dimension, the order is the dense vectors' order.
    #[test]
    fn ordering_agrees_with_dense_order() {
        let values = [-2.0f32, -1.0, 0.0, 1.0, 2.0];
        let mut all = vec![];
        for a in values {
            for b in values {
                for c in values {
                    let text = format!("{{1:{a},2:{b},3:{c}}}/3");
                    all.push((sv(&text), vec![a, b, c]));
                }
            }
        }
        for (x, dx) in &all {
            for (y, dy) in &all {
                assert_eq!(
                    compare(x.view(), y.view()),
                    crate::vector::ops::compare(dx, dy),
                    "{x:?} {y:?}"
                );
            }
        }
    }
}
