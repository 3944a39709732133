//! Distance kernels over `f32` slices.
//!
//! The fast kernels go through `simsimd`, which picks the widest SIMD
//! instruction set of the running CPU at first use (AVX-512, AVX2, NEON, SVE)
//! and falls back to portable C elsewhere. [`scalar`] keeps a plain,
//! `f64`-accumulating implementation of every kernel as the reference the
//! fast ones are tested against.
//!
//! Every function expects slices of equal length; callers check dimensions
//! first (the SQL layer raises a user-facing error when they differ).

pub mod bits;
pub mod half;
pub mod scalar;
pub mod sparse;

use simsimd::SpatialSimilarity;

/// Squared Euclidean distance.
#[inline]
pub fn l2_squared(a: &[f32], b: &[f32]) -> f64 {
    debug_assert_eq!(a.len(), b.len());
    // `None` only for unequal lengths, which callers rule out.
    f32::l2sq(a, b).unwrap_or(f64::NAN)
}

/// Euclidean distance.
#[inline]
pub fn l2(a: &[f32], b: &[f32]) -> f64 {
    l2_squared(a, b).sqrt()
}

/// Inner (dot) product.
#[inline]
pub fn dot(a: &[f32], b: &[f32]) -> f64 {
    debug_assert_eq!(a.len(), b.len());
    f32::dot(a, b).unwrap_or(f64::NAN)
}

/// Squared Euclidean norm.
#[inline]
pub fn norm_squared(a: &[f32]) -> f64 {
    dot(a, a)
}

/// Cosine distance, `1 - cos(a, b)`, clamped to `[0, 2]`.
///
/// A zero vector has no direction, so the result is NaN, as in pgvector.
/// simsimd's own cosine kernel normalises with an approximate reciprocal
/// square root, which is fine for ranking but makes `cos(a, a)` drift from 0;
/// three exact dot products and one `f64` square root keep the SQL result
/// exact where it should be.
#[inline]
pub fn cosine_distance(a: &[f32], b: &[f32]) -> f64 {
    let ab = dot(a, b);
    let aa = norm_squared(a);
    let bb = norm_squared(b);
    cosine_from_parts(ab, aa, bb)
}

/// Combines a dot product and two squared norms into a cosine distance.
#[inline]
pub fn cosine_from_parts(ab: f64, aa: f64, bb: f64) -> f64 {
    if aa == 0.0 || bb == 0.0 {
        return f64::NAN;
    }
    let similarity = (ab / (aa * bb).sqrt()).clamp(-1.0, 1.0);
    1.0 - similarity
}

/// Manhattan (taxicab) distance.
///
/// simsimd has no L1 kernel for `f32`; sixteen independent lane sums let the
/// compiler vectorise this loop on its own.
#[inline]
pub fn l1(a: &[f32], b: &[f32]) -> f64 {
    debug_assert_eq!(a.len(), b.len());
    const LANES: usize = 16;
    let mut lanes = [0.0f32; LANES];
    let (a_body, a_tail) = a.split_at(a.len() - a.len() % LANES);
    let (b_body, b_tail) = b.split_at(a_body.len());
    for (ca, cb) in a_body.chunks_exact(LANES).zip(b_body.chunks_exact(LANES)) {
        for i in 0..LANES {
            lanes[i] += (ca[i] - cb[i]).abs();
        }
    }
    let mut sum: f64 = lanes.iter().map(|&x| f64::from(x)).sum();
    for (x, y) in a_tail.iter().zip(b_tail) {
        sum += f64::from((x - y).abs());
    }
    sum
}

/// Why a Poincaré distance cannot be computed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PoincareError {
    /// A point lies on or outside the unit ball.
    OutsideBall,
}

/// Hyperbolic distance in the Poincaré ball model:
/// `acosh(1 + 2·|u−v|² / ((1−|u|²)(1−|v|²)))`.
///
/// Both points must lie strictly inside the unit ball.
pub fn poincare_distance(u: &[f32], v: &[f32]) -> Result<f64, PoincareError> {
    let uu = norm_squared(u);
    let vv = norm_squared(v);
    if !(uu < 1.0 && vv < 1.0) {
        return Err(PoincareError::OutsideBall);
    }
    let diff = l2_squared(u, v);
    Ok(poincare_from_parts(diff, uu, vv))
}

/// Combines `|u−v|²`, `|u|²` and `|v|²` into a Poincaré distance.
#[inline]
pub fn poincare_from_parts(diff_squared: f64, uu: f64, vv: f64) -> f64 {
    let x = 1.0 + 2.0 * diff_squared / ((1.0 - uu) * (1.0 - vv));
    // acosh(x) = ln(x + sqrt(x² − 1)); x ≥ 1 up to rounding.
    x.max(1.0).acosh()
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::rngs::SmallRng;
    use rand::{Rng, SeedableRng};

    /// Relative tolerance of the SIMD kernels against the `f64` reference.
    ///
    /// The kernels accumulate in `f32` lanes; for `n` ≤ 2000 random inputs the
    /// rounding error stays far below 1e-5 of the magnitude being summed.
    const REL_TOL: f64 = 1e-5;

    fn dims() -> Vec<usize> {
        let mut d: Vec<usize> = (1..=64).collect();
        d.extend([100, 384, 768, 1536, 2000]);
        d
    }

    fn random_vec(rng: &mut SmallRng, n: usize) -> Vec<f32> {
        (0..n).map(|_| rng.gen_range(-10.0f32..10.0)).collect()
    }

    /// `|fast − reference| ≤ REL_TOL · scale`, where `scale` is the sum of
    /// absolute terms: the quantity rounding error is proportional to.
    fn assert_close(what: &str, n: usize, fast: f64, reference: f64, scale: f64) {
        let err = (fast - reference).abs();
        assert!(
            err <= REL_TOL * scale.max(f64::MIN_POSITIVE),
            "{what} n={n}: simd {fast} vs scalar {reference} (err {err}, scale {scale})"
        );
    }

    fn abs_dot(a: &[f32], b: &[f32]) -> f64 {
        a.iter()
            .zip(b)
            .map(|(x, y)| (f64::from(*x) * f64::from(*y)).abs())
            .sum()
    }

    #[test]
    fn simd_kernels_match_scalar_reference() {
        let mut rng = SmallRng::seed_from_u64(0x5eed);
        for n in dims() {
            for _ in 0..20 {
                let a = random_vec(&mut rng, n);
                let b = random_vec(&mut rng, n);

                let r = scalar::l2_squared(&a, &b);
                assert_close("l2_squared", n, l2_squared(&a, &b), r, r);
                assert_close("l2", n, l2(&a, &b), r.sqrt(), r.sqrt());

                let r = scalar::dot(&a, &b);
                assert_close("dot", n, dot(&a, &b), r, abs_dot(&a, &b));

                let r = scalar::l1(&a, &b);
                assert_close("l1", n, l1(&a, &b), r, r);

                // Cosine distance lives in [0, 2]: compare absolutely.
                let r = scalar::cosine_distance(&a, &b);
                let fast = cosine_distance(&a, &b);
                assert!((fast - r).abs() <= REL_TOL, "cosine n={n}: {fast} vs {r}");
            }
        }
    }

    #[test]
    fn poincare_matches_scalar_reference() {
        let mut rng = SmallRng::seed_from_u64(7);
        for n in dims() {
            let scale = 0.9 / (n as f32).sqrt();
            let u: Vec<f32> = (0..n).map(|_| rng.gen_range(-scale..scale)).collect();
            let v: Vec<f32> = (0..n).map(|_| rng.gen_range(-scale..scale)).collect();
            let fast = poincare_distance(&u, &v).expect("inside the ball");
            let r = scalar::poincare_distance(&u, &v).expect("inside the ball");
            assert!(
                (fast - r).abs() <= REL_TOL * r.max(1.0),
                "poincare n={n}: {fast} vs {r}"
            );
        }
    }

    #[test]
    fn cosine_of_zero_vector_is_nan() {
        assert!(cosine_distance(&[0.0, 0.0], &[1.0, 2.0]).is_nan());
        assert!(cosine_distance(&[1.0, 2.0], &[0.0, 0.0]).is_nan());
        assert!(scalar::cosine_distance(&[0.0], &[1.0]).is_nan());
    }

    #[test]
    fn cosine_of_vector_with_itself_is_zero() {
        let a = [0.3f32, -1.7, 2.5, 9.0, 1e-3];
        assert_eq!(cosine_distance(&a, &a), 0.0);
        let neg: Vec<f32> = a.iter().map(|x| -x).collect();
        assert_eq!(cosine_distance(&a, &neg), 2.0);
    }

    #[test]
    fn poincare_rejects_points_outside_the_ball() {
        assert_eq!(
            poincare_distance(&[1.0, 0.0], &[0.0, 0.0]),
            Err(PoincareError::OutsideBall)
        );
        assert_eq!(
            poincare_distance(&[0.0, 0.0], &[0.8, 0.8]),
            Err(PoincareError::OutsideBall)
        );
        assert_eq!(poincare_distance(&[0.5, 0.0], &[0.5, 0.0]), Ok(0.0));
        // Distance from the origin is 2·atanh(|v|).
        let d = poincare_distance(&[0.0], &[0.5]).expect("inside");
        assert!((d - 2.0 * 0.5f64.atanh()).abs() < 1e-12);
    }
}
