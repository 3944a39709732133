//! A random orthogonal rotation that costs `O(n log n)` and needs no
//! stored matrix: rounds of random sign flips, each followed by a
//! normalised Walsh–Hadamard transform, over the vector padded with zeros
//! to a power of two. Three rounds spread any vector's mass over all
//! coordinates about as evenly as a dense random rotation does, which is
//! what the codes' error bounds assume.

use crate::hnsw::splitmix64;

/// Rounds of signs + Hadamard transform.
const ROUNDS: usize = 3;

#[derive(Debug, Clone, PartialEq)]
pub struct Rotation {
    dims: usize,
    padded: usize,
    /// `ROUNDS × padded` signs, ±1.
    signs: Vec<f32>,
}

impl Rotation {
    /// The rotation of `dims`-dimensional vectors drawn from `seed`.
    pub fn new(dims: usize, seed: u64) -> Rotation {
        let padded = dims.max(2).next_power_of_two();
        let signs = (0..ROUNDS * padded)
            .map(|i| {
                if splitmix64(seed ^ (i as u64).wrapping_mul(0x9e37_79b9)) & 1 == 0 {
                    1.0
                } else {
                    -1.0
                }
            })
            .collect();
        Rotation {
            dims,
            padded,
            signs,
        }
    }

    pub fn dims(&self) -> usize {
        self.dims
    }

    /// Length of a rotated vector (the next power of two).
    pub fn padded(&self) -> usize {
        self.padded
    }

    /// Writes the rotation of `x` (`dims` long) into `out` (`padded` long).
    pub fn apply(&self, x: &[f32], out: &mut Vec<f32>) {
        debug_assert_eq!(x.len(), self.dims);
        out.clear();
        out.extend_from_slice(x);
        out.resize(self.padded, 0.0);
        let scale = 1.0 / (self.padded as f32).sqrt();
        for signs in self.signs.chunks_exact(self.padded) {
            for (v, s) in out.iter_mut().zip(signs) {
                *v *= s;
            }
            hadamard(out);
            for v in out.iter_mut() {
                *v *= scale;
            }
        }
    }
}

/// In-place unnormalised Walsh–Hadamard transform (length a power of two).
fn hadamard(x: &mut [f32]) {
    let n = x.len();
    let mut h = 1;
    while h < n {
        for block in x.chunks_exact_mut(2 * h) {
            let (a, b) = block.split_at_mut(h);
            for (u, v) in a.iter_mut().zip(b.iter_mut()) {
                let (s, d) = (*u + *v, *u - *v);
                *u = s;
                *v = d;
            }
        }
        h *= 2;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::{Rng, SeedableRng};

    fn dot(a: &[f32], b: &[f32]) -> f64 {
        a.iter()
            .zip(b)
            .map(|(x, y)| f64::from(*x) * f64::from(*y))
            .sum()
    }

    #[test]
    fn preserves_inner_products() {
        let mut rng = rand::rngs::SmallRng::seed_from_u64(7);
        for dims in [1, 3, 50, 64, 384, 1000, 1536] {
            let r = Rotation::new(dims, 42);
            assert!(r.padded().is_power_of_two() && r.padded() >= dims);
            let a: Vec<f32> = (0..dims).map(|_| rng.gen_range(-1.0..1.0)).collect();
            let b: Vec<f32> = (0..dims).map(|_| rng.gen_range(-1.0..1.0)).collect();
            let (mut ra, mut rb) = (Vec::new(), Vec::new());
            r.apply(&a, &mut ra);
            r.apply(&b, &mut rb);
            let tol = 1e-4 * dims as f64;
            assert!((dot(&a, &b) - dot(&ra, &rb)).abs() < tol, "{dims}");
            assert!((dot(&a, &a) - dot(&ra, &ra)).abs() < tol, "{dims}");
        }
    }

    #[test]
    fn spreads_a_spike() {
        // A basis vector ends up with every coordinate near ±1/√n.
        let r = Rotation::new(384, 1);
        let mut e = vec![0.0f32; 384];
        e[17] = 1.0;
        let mut out = Vec::new();
        r.apply(&e, &mut out);
        let n = r.padded() as f32;
        let max = out.iter().fold(0.0f32, |m, v| m.max(v.abs()));
        assert!(max <= 6.0 / n.sqrt(), "max coordinate {max}");
    }
}
