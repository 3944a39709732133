//! IEEE 754 half precision (`binary16`): exact conversions and distance
//! kernels over halves stored as their bit patterns (`u16`).
//!
//! The conversion from `f32` rounds to nearest, ties to even, as hardware
//! does; a value past the largest half (65,504) becomes an infinity, which
//! the SQL layer turns into pgvector's "out of range" error. The kernels
//! convert to `f32` a chunk at a time and sum with the `f32` SIMD kernels;
//! [`scalar`] keeps the `f64` reference they are tested against.

/// Largest finite half.
pub const MAX: f32 = 65_504.0;

/// The half nearest to `x` (ties to even); NaN stays NaN, overflow gives
/// an infinity of `x`'s sign.
pub fn from_f32(x: f32) -> u16 {
    let bits = x.to_bits();
    let sign = ((bits >> 16) & 0x8000) as u16;
    let exp = ((bits >> 23) & 0xff) as i32;
    let man = bits & 0x7f_ffff;
    if exp == 0xff {
        return sign | 0x7c00 | if man != 0 { 0x200 } else { 0 };
    }
    // The half's biased exponent.
    let e = exp - 127 + 15;
    if e >= 0x1f {
        return sign | 0x7c00;
    }
    if e <= 0 {
        // Subnormal half (or zero): the value in units of 2^-24.
        let shift = (14 - e) as u32;
        if shift > 24 {
            return sign;
        }
        let m = man | 0x80_0000;
        let mut h = m >> shift;
        let rem = m & ((1 << shift) - 1);
        let half = 1 << (shift - 1);
        if rem > half || (rem == half && h & 1 == 1) {
            h += 1;
        }
        return sign | h as u16;
    }
    let mut h = u32::from(sign) | ((e as u32) << 10) | (man >> 13);
    let rem = man & 0x1fff;
    // A carry out of the mantissa bumps the exponent, up to infinity.
    if rem > 0x1000 || (rem == 0x1000 && h & 1 == 1) {
        h += 1;
    }
    h as u16
}

/// The exact `f32` value of a half.
pub fn to_f32(h: u16) -> f32 {
    let sign = u32::from(h & 0x8000) << 16;
    let exp = u32::from((h >> 10) & 0x1f);
    let man = u32::from(h & 0x3ff);
    match exp {
        0 => {
            let value = man as f32 * f32::from_bits(0x3380_0000); // 2^-24
            if sign != 0 {
                -value
            } else {
                value
            }
        }
        0x1f => f32::from_bits(sign | 0x7f80_0000 | (man << 13)),
        _ => f32::from_bits(sign | ((exp + 112) << 23) | (man << 13)),
    }
}

/// Whether a half is an infinity.
pub fn is_infinite(h: u16) -> bool {
    h & 0x7fff == 0x7c00
}

/// Whether a half is NaN.
pub fn is_nan(h: u16) -> bool {
    h & 0x7c00 == 0x7c00 && h & 0x3ff != 0
}

/// Halves converted per chunk before an `f32` kernel sums them.
const CHUNK: usize = 64;

/// Sums `kernel` over the two vectors converted to `f32` a chunk at a
/// time. Not simsimd's own `f16` kernels: on CPUs with half-precision
/// arithmetic (AVX-512 FP16, SVE) they accumulate in halves, which
/// overflow past 65,504 and keep three digits; `f32` sums are pgvector's.
fn chunked(a: &[u16], b: &[u16], kernel: impl Fn(&[f32], &[f32]) -> f64) -> f64 {
    debug_assert_eq!(a.len(), b.len());
    let (mut x, mut y) = ([0.0f32; CHUNK], [0.0f32; CHUNK]);
    let mut sum = 0.0;
    for (ca, cb) in a.chunks(CHUNK).zip(b.chunks(CHUNK)) {
        for (out, &h) in x.iter_mut().zip(ca) {
            *out = to_f32(h);
        }
        for (out, &h) in y.iter_mut().zip(cb) {
            *out = to_f32(h);
        }
        sum += kernel(&x[..ca.len()], &y[..cb.len()]);
    }
    sum
}

/// Squared Euclidean distance of two half vectors.
#[inline]
pub fn l2_squared(a: &[u16], b: &[u16]) -> f64 {
    chunked(a, b, super::l2_squared)
}

/// Inner product of two half vectors.
#[inline]
pub fn dot(a: &[u16], b: &[u16]) -> f64 {
    chunked(a, b, super::dot)
}

/// Taxicab distance of two half vectors (simsimd has no L1 kernel).
#[inline]
pub fn l1(a: &[u16], b: &[u16]) -> f64 {
    debug_assert_eq!(a.len(), b.len());
    const LANES: usize = 16;
    let mut lanes = [0.0f32; LANES];
    let mut sum = 0.0f64;
    let body = a.len() - a.len() % LANES;
    for (ca, cb) in a[..body]
        .chunks_exact(LANES)
        .zip(b[..body].chunks_exact(LANES))
    {
        for i in 0..LANES {
            lanes[i] += (to_f32(ca[i]) - to_f32(cb[i])).abs();
        }
    }
    for (x, y) in a[body..].iter().zip(&b[body..]) {
        sum += f64::from((to_f32(*x) - to_f32(*y)).abs());
    }
    sum + lanes.iter().map(|&x| f64::from(x)).sum::<f64>()
}

/// `f64`-accumulating references for the kernels above.
pub mod scalar {
    use super::to_f32;

    pub fn l2_squared(a: &[u16], b: &[u16]) -> f64 {
        a.iter()
            .zip(b)
            .map(|(&x, &y)| (f64::from(to_f32(x)) - f64::from(to_f32(y))).powi(2))
            .sum()
    }

    pub fn dot(a: &[u16], b: &[u16]) -> f64 {
        a.iter()
            .zip(b)
            .map(|(&x, &y)| f64::from(to_f32(x)) * f64::from(to_f32(y)))
            .sum()
    }

    pub fn l1(a: &[u16], b: &[u16]) -> f64 {
        a.iter()
            .zip(b)
            .map(|(&x, &y)| (f64::from(to_f32(x)) - f64::from(to_f32(y))).abs())
            .sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::rngs::SmallRng;
    use rand::{Rng, SeedableRng};

    #[test]
    fn every_half_round_trips() {
        for h in 0..=u16::MAX {
            let x = to_f32(h);
            if x.is_nan() {
                assert!(is_nan(h));
                assert!(is_nan(from_f32(x)));
            } else {
                assert_eq!(from_f32(x), h, "half {h:#06x} = {x}");
            }
        }
    }

    #[test]
    fn rounds_to_nearest_even() {
        assert_eq!(to_f32(from_f32(2049.0)), 2048.0); // tie, to even
        assert_eq!(to_f32(from_f32(2051.0)), 2052.0); // tie, to even
        assert_eq!(to_f32(from_f32(2050.5)), 2050.0);
        assert_eq!(to_f32(from_f32(MAX)), MAX);
        assert_eq!(to_f32(from_f32(65_519.0)), MAX);
        assert!(is_infinite(from_f32(65_520.0))); // tie to even is infinity
        assert!(is_infinite(from_f32(-1e10)));
        assert_eq!(to_f32(from_f32(1e-10)), 0.0);
        // The smallest subnormal, 2^-24, and ties around it.
        let tiny = f32::from_bits(0x3380_0000);
        assert_eq!(to_f32(from_f32(tiny)), tiny);
        assert_eq!(to_f32(from_f32(tiny / 2.0)), 0.0);
        assert_eq!(to_f32(from_f32(tiny * 0.75)), tiny);
        assert_eq!(to_f32(from_f32(tiny * 1.5)), tiny * 2.0);
        assert_eq!(from_f32(-0.0), 0x8000);
    }

    /// Each f32 converts to one of the two halves around it, the nearer.
    #[test]
    fn conversion_picks_the_nearer_half() {
        let mut rng = SmallRng::seed_from_u64(3);
        for _ in 0..200_000 {
            let x = f32::from_bits(rng.gen::<u32>());
            if !x.is_finite() || x.abs() > MAX {
                continue;
            }
            let h = to_f32(from_f32(x));
            let err = (f64::from(h) - f64::from(x)).abs();
            // The next half away from h on x's side is no nearer.
            let step = (f64::from(x.abs()).log2().floor() - 10.0).max(-24.0).exp2();
            assert!(err <= step / 2.0, "{x} -> {h}");
        }
    }

    #[test]
    fn kernels_match_scalar_reference() {
        let mut rng = SmallRng::seed_from_u64(9);
        for (n, range) in [
            (1, 4.0),
            (2, 4.0),
            (3, 4.0),
            (15, 4.0),
            (16, 4.0),
            (17, 4.0),
            (100, 4.0),
            (384, 4.0),
            (1536, 4.0),
            (3000, 4.0),
            // Sums far past the largest half: accumulated in f32, not halves.
            (384, 60_000.0),
        ] {
            let a: Vec<u16> = (0..n)
                .map(|_| from_f32(rng.gen_range(-range..range)))
                .collect();
            let b: Vec<u16> = (0..n)
                .map(|_| from_f32(rng.gen_range(-range..range)))
                .collect();
            for (what, fast, reference, scale) in [
                (
                    "l2",
                    l2_squared(&a, &b),
                    scalar::l2_squared(&a, &b),
                    scalar::l2_squared(&a, &b),
                ),
                (
                    "dot",
                    dot(&a, &b),
                    scalar::dot(&a, &b),
                    a.iter()
                        .zip(&b)
                        .map(|(&x, &y)| (f64::from(to_f32(x)) * f64::from(to_f32(y))).abs())
                        .sum::<f64>()
                        + 1.0,
                ),
                ("l1", l1(&a, &b), scalar::l1(&a, &b), scalar::l1(&a, &b)),
            ] {
                assert!(
                    fast.is_finite() && (fast - reference).abs() <= 1e-4 * scale,
                    "{what} n={n}: {fast} vs {reference}"
                );
            }
        }
    }
}
