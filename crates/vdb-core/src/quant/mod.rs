//! Compact codes of vectors with cheap distance estimates, after RaBitQ
//! (Gao & Long, SIGMOD 2024) and its extension to several bits per
//! coordinate (Gao et al., 2024).
//!
//! A vector `n` is coded relative to a *center* `x` (in a graph: the node
//! whose neighbour list holds the code, so the code describes a short
//! residual and its error scales with the neighbour's distance, not with
//! the data's spread): its distance `r = |n − x|` and the code `g` of the
//! direction `u = R(n − x)/r`, where `R` is a random rotation
//! ([`rotate::Rotation`]). After the rotation every coordinate of `u` is
//! small and about equally informative, so `bits` bits for each of the
//! first `coords` coordinates capture the direction. For a query `q`,
//! RaBitQ's estimator `⟨u, v⟩ ≈ ⟨g, v⟩/⟨g, u⟩` (unbiased under the random
//! rotation, error shrinking as `1/√coords`) with `v = R(q − x)` gives
//!
//! ```text
//! |n − q|² = r² + |q − x|² − 2·r·⟨u, R(q − x)⟩
//!          ≈ r² + |q − x|² − 2·r·(⟨g, Rq⟩ − ⟨g, Rx⟩)/⟨g, u⟩
//! ```
//!
//! where `⟨g, Rx⟩` and `1/⟨g, u⟩` are stored beside the code, `|q − x|` is
//! the exact distance the search measured when it reached `x`, and
//! `⟨g, Rq⟩` comes from a per-query table (one row of 256 sums per code
//! byte), so one estimate costs one lookup per code byte. When fewer
//! coordinates are coded than the rotation has, the coded ones stand for
//! the whole (the ratio `⟨g, v⟩/⟨g, u⟩` scales both alike).

pub mod rotate;

use crate::hnsw::Metric;
use rotate::Rotation;

/// What a code stores besides its bits.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Factors {
    /// `r = |n − x|`.
    pub norm: f32,
    /// `1/⟨g, u⟩` over the coded coordinates (0 when `n = x`).
    pub scale: f32,
    /// `⟨g, Rx⟩` over the coded coordinates.
    pub offset: f32,
    /// `|n|²` (inner product needs it).
    pub sq: f32,
}

/// Whether codes can estimate `metric`'s distances.
pub fn codes_estimate(metric: Metric) -> bool {
    matches!(metric, Metric::L2 | Metric::Cosine | Metric::InnerProduct)
}

/// Bytes of a code's factors as an index page stores them: `offset` as
/// `f32`, `norm` and `scale` as bfloat16, and `sq` (bfloat16) under inner
/// product, the only metric that needs it. bfloat16 keeps `f32`'s range
/// and its 0.4 % relative error is far below the codes' own; `offset`
/// stays exact because the estimate subtracts it from a sum of about its
/// size (`⟨g, Rq⟩ − ⟨g, Rx⟩` for a query near the center).
pub fn factor_bytes(metric: Metric) -> usize {
    if metric == Metric::InnerProduct {
        10
    } else {
        8
    }
}

/// Rounds to the nearest bfloat16 (ties to even).
fn to_bf16(x: f32) -> u16 {
    if x.is_nan() {
        return 0x7fc0;
    }
    let bits = x.to_bits();
    let round = 0x7fff + ((bits >> 16) & 1);
    (bits.wrapping_add(round) >> 16) as u16
}

fn from_bf16(x: u16) -> f32 {
    f32::from_bits(u32::from(x) << 16)
}

impl Factors {
    /// Writes the factors into `out` (`factor_bytes` long: `sq` only if
    /// there is room).
    pub fn pack(&self, out: &mut [u8]) {
        out[..4].copy_from_slice(&self.offset.to_le_bytes());
        for (chunk, v) in out[4..]
            .chunks_exact_mut(2)
            .zip([self.norm, self.scale, self.sq])
        {
            chunk.copy_from_slice(&to_bf16(v).to_le_bytes());
        }
    }

    /// Reads factors written by [`Factors::pack`].
    #[inline]
    pub fn unpack(bytes: &[u8]) -> Factors {
        let half = |at: usize| {
            bytes
                .get(at..at + 2)
                .map_or(0.0, |b| from_bf16(u16::from_le_bytes([b[0], b[1]])))
        };
        Factors {
            offset: f32::from_le_bytes([bytes[0], bytes[1], bytes[2], bytes[3]]),
            norm: half(4),
            scale: half(6),
            sq: half(8),
        }
    }
}

/// How the vectors of one index are coded.
#[derive(Debug, Clone, PartialEq)]
pub struct Quantizer {
    rotation: Rotation,
    /// Coordinates of the rotated vector that are coded.
    coords: usize,
    /// Bits per coded coordinate: 1, 2, 4 or 8.
    bits: u8,
}

/// A center rotated once, for coding the vectors around it.
#[derive(Debug, Clone)]
pub struct Center {
    rotated: Vec<f32>,
}

/// A query prepared for estimating distances to codes.
#[derive(Debug, Clone)]
pub struct Query {
    /// `table[byte * 256 + value]`: that code byte's share of `⟨g, Rq⟩`
    /// (codes of more than one bit a coordinate).
    table: Vec<f32>,
    /// One-bit codes: the rotated query on a 4-bit grid, as bit planes.
    planes: Option<Planes>,
    /// `|q|²`.
    sq: f32,
    /// How far below its unbiased value an estimate is put, per unit of
    /// `|n − x|·|q − x|` (see [`Quantizer::query_with`]).
    margin: f32,
}

impl Query {
    /// Scales the margin of the estimates taken from now on.
    pub fn scale_margin(&mut self, factor: f32) {
        self.margin *= factor;
    }
}

/// A rotated query `v` rounded to `vmin + Δ·k`, `k` in 0..256, stored as
/// eight bit planes in the layout of one-bit codes (coordinate `i` is bit
/// `i % 64` of word `i / 64`), so that `⟨b, v⟩ ≈ Δ·Σ_p 2^p·popcount(b ∧
/// plane_p) + vmin·popcount(b)` for a code `b`: a few `popcnt`s a word
/// instead of a table lookup a byte (RaBitQ's fast path). Eight bits, not
/// RaBitQ's four: at 64 coordinates, 16 levels added about as much error
/// as the one-bit code's own (recall@10 fell by 0.005–0.01 at equal
/// `ef_search`); 256 levels add a sixteenth of that.
/// Bits of the rounded query coordinates (see [`Planes`]).
const QUERY_BITS: usize = 8;

#[derive(Debug, Clone)]
struct Planes {
    /// `words × QUERY_BITS`: plane `p` of word `w` at `QUERY_BITS·w + p`.
    bits: Vec<u64>,
    delta: f32,
    vmin: f32,
    /// `−Σ v_i / 2` over the coded coordinates: `⟨g, v⟩ = ⟨b, v⟩ − Σ v_i/2`.
    minus_half_sum: f32,
    /// The CPU has the `popcnt` instruction.
    #[cfg(target_arch = "x86_64")]
    popcnt: bool,
}

impl Planes {
    fn new(v: &[f32]) -> Planes {
        let vmin = v.iter().copied().fold(f32::INFINITY, f32::min);
        let vmax = v.iter().copied().fold(f32::NEG_INFINITY, f32::max);
        let top = ((1u32 << QUERY_BITS) - 1) as f32;
        let delta = ((vmax - vmin) / top).max(f32::MIN_POSITIVE);
        let mut bits = vec![0u64; v.len().div_ceil(64) * QUERY_BITS];
        for (i, &x) in v.iter().enumerate() {
            let k = ((x - vmin) / delta).round().clamp(0.0, top) as u64;
            for p in 0..QUERY_BITS {
                bits[i / 64 * QUERY_BITS + p] |= ((k >> p) & 1) << (i % 64);
            }
        }
        Planes {
            bits,
            delta,
            vmin,
            minus_half_sum: -0.5 * v.iter().sum::<f32>(),
            #[cfg(target_arch = "x86_64")]
            popcnt: std::arch::is_x86_feature_detected!("popcnt"),
        }
    }

    /// `⟨g, v⟩` for the one-bit code `code`.
    #[inline]
    fn g_dot(&self, code: &[u8]) -> f32 {
        #[cfg(target_arch = "x86_64")]
        let (weighted, ones) = if self.popcnt {
            // SAFETY: the CPU has POPCNT (checked when the planes were made).
            unsafe { plane_sums_popcnt(&self.bits, code) }
        } else {
            plane_sums(&self.bits, code)
        };
        #[cfg(not(target_arch = "x86_64"))]
        let (weighted, ones) = plane_sums(&self.bits, code);
        self.delta * weighted as f32 + self.vmin * ones as f32 + self.minus_half_sum
    }
}

/// `(Σ_p 2^p·popcount(b ∧ plane_p), popcount(b))` over a code's words.
#[inline(always)]
fn plane_sums(planes: &[u64], code: &[u8]) -> (u32, u32) {
    let (mut weighted, mut ones) = (0u32, 0u32);
    for (w, chunk) in code.chunks(8).enumerate() {
        let mut word = [0u8; 8];
        word[..chunk.len()].copy_from_slice(chunk);
        let b = u64::from_le_bytes(word);
        let p = &planes[QUERY_BITS * w..QUERY_BITS * (w + 1)];
        ones += b.count_ones();
        for (shift, plane) in p.iter().enumerate() {
            weighted += (b & plane).count_ones() << shift;
        }
    }
    (weighted, ones)
}

/// [`plane_sums`] compiled with the `popcnt` instruction (the baseline
/// x86-64 target emulates it with a dozen instructions a word).
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "popcnt")]
unsafe fn plane_sums_popcnt(planes: &[u64], code: &[u8]) -> (u32, u32) {
    plane_sums(planes, code)
}

/// Standard error of RaBitQ's inner-product estimate, times √coords, by
/// bits per coordinate: `√(1 − γ²)/γ` for the typical `γ = ⟨ḡ, u⟩` of a
/// code (about 0.8 at one bit, 0.94 at two, 0.99 at four).
fn spread(bits: u8) -> f32 {
    match bits {
        1 => 0.75,
        2 => 0.36,
        4 => 0.14,
        _ => 0.03,
    }
}

/// Default width of the margin, in standard errors. A node seen from
/// several lists keeps its lowest estimate (see `hnsw::coded`), which is
/// optimistic already: half an error then did best (fewest node reads at
/// equal recall on GloVe-50 and MiniLM-384, and exact top 10 on uniform
/// 32-d data at `ef_search` 10).
pub const DEFAULT_EPSILON: f32 = 0.5;

impl Quantizer {
    /// Codes `dims`-dimensional vectors with `bits` bits for each of the
    /// first `coords` rotated coordinates (`None`: all of them, the
    /// rotation's padded length).
    pub fn new(dims: usize, bits: u8, coords: Option<usize>, seed: u64) -> Quantizer {
        assert!(matches!(bits, 1 | 2 | 4 | 8), "bits must be 1, 2, 4 or 8");
        let rotation = Rotation::new(dims, seed);
        let per_byte = 8 / usize::from(bits);
        let coords = coords
            .unwrap_or(rotation.padded())
            .clamp(per_byte, rotation.padded());
        // Whole bytes: estimates walk a code a byte at a time.
        let coords = coords / per_byte * per_byte;
        Quantizer {
            rotation,
            coords,
            bits,
        }
    }

    pub fn dims(&self) -> usize {
        self.rotation.dims()
    }

    pub fn bits(&self) -> u8 {
        self.bits
    }

    pub fn coords(&self) -> usize {
        self.coords
    }

    /// Bytes of one code.
    pub fn code_bytes(&self) -> usize {
        self.coords * usize::from(self.bits) / 8
    }

    fn top(&self) -> u32 {
        (1 << self.bits) - 1
    }

    fn mid(&self) -> f32 {
        self.top() as f32 / 2.0
    }

    pub fn center(&self, x: &[f32]) -> Center {
        let mut rotated = Vec::new();
        self.rotation.apply(x, &mut rotated);
        Center { rotated }
    }

    /// Writes the code of `n` around `center` into `code` (`code_bytes`
    /// long) and returns its factors.
    pub fn encode(&self, center: &Center, n: &[f32], code: &mut [u8]) -> Factors {
        debug_assert_eq!(code.len(), self.code_bytes());
        let mut u = Vec::new();
        self.rotation.apply(n, &mut u);
        for (a, c) in u.iter_mut().zip(&center.rotated) {
            *a -= c;
        }
        let norm = u.iter().map(|v| f64::from(*v).powi(2)).sum::<f64>().sqrt();
        let sq = n.iter().map(|v| f64::from(*v).powi(2)).sum::<f64>() as f32;
        code.fill(0);
        if norm == 0.0 {
            return Factors {
                sq,
                ..Factors::default()
            };
        }
        for v in u.iter_mut() {
            *v = (f64::from(*v) / norm) as f32;
        }
        let head = &u[..self.coords];
        let levels = self.best_levels(head);
        let (mid, bits) = (self.mid(), usize::from(self.bits));
        let (mut g_dot_u, mut g_dot_x) = (0.0f64, 0.0f64);
        for (i, (&level, (&ui, &xi))) in levels
            .iter()
            .zip(head.iter().zip(&center.rotated))
            .enumerate()
        {
            let bit = i * bits;
            code[bit / 8] |= (level as u8) << (bit % 8);
            let g = f64::from(level as f32 - mid);
            g_dot_u += g * f64::from(ui);
            g_dot_x += g * f64::from(xi);
        }
        Factors {
            norm: norm as f32,
            scale: if g_dot_u > 0.0 {
                (1.0 / g_dot_u) as f32
            } else {
                0.0
            },
            offset: g_dot_x as f32,
            sq,
        }
    }

    /// Bytes of one stored entry under `metric`: code, then packed factors.
    pub fn entry_bytes(&self, metric: Metric) -> usize {
        self.code_bytes() + factor_bytes(metric)
    }

    /// Writes the entry of `n` around `center` (code and packed factors)
    /// into `entry` ([`Quantizer::entry_bytes`] long).
    pub fn encode_entry(&self, center: &Center, n: &[f32], entry: &mut [u8]) {
        let (code, factors) = entry.split_at_mut(self.code_bytes());
        self.encode(center, n, code).pack(factors);
    }

    /// The estimate from a stored entry (see [`Quantizer::estimate`]).
    #[inline]
    pub fn estimate_entry(
        &self,
        metric: Metric,
        query: &Query,
        center_sq: f32,
        entry: &[u8],
    ) -> Option<f32> {
        let (code, factors) = entry.split_at(self.code_bytes());
        self.estimate(metric, query, center_sq, code, &Factors::unpack(factors))
    }

    /// Grid levels (0 ..= 2^bits − 1) whose direction is closest to `u`:
    /// one bit is the sign; more bits try a range of cell widths.
    fn best_levels(&self, u: &[f32]) -> Vec<u32> {
        if self.bits == 1 {
            return u.iter().map(|&x| u32::from(x >= 0.0)).collect();
        }
        let (top, mid) = (self.top() as f32, self.mid());
        let max = u.iter().fold(0.0f32, |m, x| m.max(x.abs()));
        let mut best = (f64::MIN, vec![0; u.len()]);
        for step in 0..24 {
            // From covering the largest coordinate exactly to clipping it.
            let width = max / (mid + 0.5) * (1.0 - step as f32 / 40.0);
            let levels: Vec<u32> = u
                .iter()
                .map(|&x| (x / width + mid).round().clamp(0.0, top) as u32)
                .collect();
            let (mut dot, mut gg) = (0.0f64, 0.0f64);
            for (&l, &x) in levels.iter().zip(u) {
                let g = f64::from(l as f32 - mid);
                dot += g * f64::from(x);
                gg += g * g;
            }
            if gg > 0.0 && dot / gg.sqrt() > best.0 {
                best = (dot / gg.sqrt(), levels);
            }
        }
        best.1
    }

    /// Prepares `q` for estimates, with the default margin.
    pub fn query(&self, q: &[f32]) -> Query {
        self.query_with(q, DEFAULT_EPSILON)
    }

    /// Prepares `q` for estimates that sit `epsilon` standard errors
    /// below the unbiased one: a search ordered by such optimistic
    /// estimates stops only when even they are past its worst result, so
    /// it rarely stops before a true neighbour whose estimate came out
    /// high (RaBitQ's error bound, used as a lower bound). 0: unbiased.
    pub fn query_with(&self, q: &[f32], epsilon: f32) -> Query {
        let mut v = Vec::new();
        self.rotation.apply(q, &mut v);
        let bits = usize::from(self.bits);
        let per_byte = 8 / bits;
        let mask = self.top();
        let mid = self.mid();
        let bytes = self.code_bytes();
        if bits == 1 {
            return Query {
                table: Vec::new(),
                planes: Some(Planes::new(&v[..self.coords])),
                sq: q.iter().map(|v| f64::from(*v).powi(2)).sum::<f64>() as f32,
                margin: epsilon * spread(self.bits) / (self.coords as f32).sqrt(),
            };
        }
        let mut table = vec![0.0f32; bytes * 256];
        for (byte, row) in table.chunks_exact_mut(256).enumerate() {
            let coords = &v[byte * per_byte..(byte + 1) * per_byte];
            // Each value is a smaller one (its lowest nonzero level one
            // less) plus that coordinate: one addition per entry.
            if bits == 8 {
                for (value, slot) in row.iter_mut().enumerate() {
                    *slot = (value as f32 - mid) * coords[0];
                }
                continue;
            }
            row[0] = -mid * coords.iter().sum::<f32>();
            for value in 1..256usize {
                let j = value.trailing_zeros() as usize / bits;
                debug_assert!((value as u32 >> (j * bits)) & mask != 0);
                row[value] = row[value - (1 << (j * bits))] + coords[j];
            }
        }
        Query {
            table,
            planes: None,
            sq: q.iter().map(|v| f64::from(*v).powi(2)).sum::<f64>() as f32,
            margin: epsilon * spread(self.bits) / (self.coords as f32).sqrt(),
        }
    }

    /// The estimated graph distance (see [`Metric::distance`]) from the
    /// query to a vector coded around a center at exact squared distance
    /// `center_sq` from the query; `None` for metrics codes cannot
    /// estimate (L1, Poincaré).
    #[inline]
    pub fn estimate(
        &self,
        metric: Metric,
        query: &Query,
        center_sq: f32,
        code: &[u8],
        f: &Factors,
    ) -> Option<f32> {
        let g_dot_q = match &query.planes {
            Some(planes) => planes.g_dot(code),
            None => query
                .table
                .chunks_exact(256)
                .zip(code)
                .map(|(row, &value)| row[usize::from(value)])
                .sum(),
        };
        let cross = f.norm * f.scale * (g_dot_q - f.offset);
        let margin = 2.0 * f.norm * center_sq.sqrt() * query.margin;
        let l2 = (f.norm * f.norm + center_sq - 2.0 * cross - margin).max(0.0);
        match metric {
            Metric::L2 => Some(l2),
            Metric::Cosine => Some(l2 / 2.0),
            Metric::InnerProduct => Some(-(f.sq + query.sq - l2) / 2.0),
            _ => None,
        }
    }
}

/// `|q − x|²` for a center `x` whose graph distance from the query `q`
/// is `exact`: derived from it where the metric allows (L2; cosine on
/// unit vectors), measured otherwise.
#[inline]
pub fn center_sq(metric: Metric, exact: f32, q: &[f32], x: &[f32]) -> f32 {
    match metric {
        Metric::L2 => exact,
        Metric::Cosine => 2.0 * exact,
        _ => l2_squared(q, x),
    }
}

/// `|a − b|²` for a center's exact distance from the query.
pub fn l2_squared(a: &[f32], b: &[f32]) -> f32 {
    crate::distance::l2_squared(a, b) as f32
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::{Rng, SeedableRng};

    fn clustered(n: usize, dims: usize, seed: u64) -> Vec<Vec<f32>> {
        let mut rng = rand::rngs::SmallRng::seed_from_u64(seed);
        let centres: Vec<Vec<f32>> = (0..20)
            .map(|_| (0..dims).map(|_| rng.gen_range(-1.0..1.0)).collect())
            .collect();
        (0..n)
            .map(|i| {
                centres[i % centres.len()]
                    .iter()
                    .map(|x| x + rng.gen_range(-0.3..0.3))
                    .collect()
            })
            .collect()
    }

    /// As a graph hop sees it: a query, the node nearest to it as the
    /// center, and the center's 32 nearest points coded around it. Returns
    /// the mean share of the exact top 5 of those 32 that the estimated
    /// top 5 finds, and the mean relative error of the estimates.
    fn hop_quality(q: &Quantizer, metric: Metric, data: &[Vec<f32>]) -> (f64, f64) {
        let data: Vec<Vec<f32>> = data
            .iter()
            .map(|r| metric.prepare(r).expect("ok").vec)
            .collect();
        let dist = |a: &[f32], b: &[f32]| metric.distance(a, 0.0, b, 0.0);
        let nearest = |p: &[f32], k: usize, skip: &[usize]| -> Vec<usize> {
            let mut all: Vec<(f32, usize)> = data
                .iter()
                .enumerate()
                .filter(|(i, _)| !skip.contains(i))
                .map(|(i, r)| (dist(p, r), i))
                .collect();
            all.sort_by(|a, b| a.0.total_cmp(&b.0));
            all[..k].iter().map(|x| x.1).collect()
        };
        let mut code = vec![0u8; q.code_bytes()];
        let (mut found, mut error, mut count) = (0.0, 0.0, 0usize);
        for probe in (0..data.len()).step_by(97).take(25) {
            let query = &data[probe];
            let x = nearest(query, 1, &[probe])[0];
            let list = nearest(&data[x], 32, &[probe, x]);
            let center = q.center(&data[x]);
            let prepared = q.query(query);
            let center_sq = l2_squared(query, &data[x]);
            let mut exact: Vec<(f32, usize)> = Vec::new();
            let mut est: Vec<(f32, usize)> = Vec::new();
            for &n in &list {
                let f = q.encode(&center, &data[n], &mut code);
                let e = q
                    .estimate(metric, &prepared, center_sq, &code, &f)
                    .expect("est");
                let d = dist(query, &data[n]);
                error += f64::from((e - d).abs() / d.abs().max(1e-6));
                exact.push((d, n));
                est.push((e, n));
            }
            exact.sort_by(|a, b| a.0.total_cmp(&b.0));
            est.sort_by(|a, b| a.0.total_cmp(&b.0));
            let truth: Vec<usize> = exact[..5].iter().map(|e| e.1).collect();
            found += est[..5].iter().filter(|e| truth.contains(&e.1)).count() as f64 / 5.0;
            count += 1;
        }
        (found / count as f64, error / (count * 32) as f64)
    }

    #[test]
    fn estimates_improve_with_more_bits() {
        let data = clustered(2000, 128, 3);
        let mut last = (0.0, f64::MAX);
        for bits in [1, 2, 4, 8] {
            let q = Quantizer::new(128, bits, None, 9);
            let (found, error) = hop_quality(&q, Metric::L2, &data);
            assert!(error < last.1, "{bits} bits: error {error} vs {}", last.1);
            assert!(
                found >= last.0 - 0.05,
                "{bits} bits: found {found} vs {}",
                last.0
            );
            last = (found, error);
        }
        assert!(last.0 > 0.9 && last.1 < 0.02, "8 bits: {last:?}");
    }

    #[test]
    fn estimates_rank_a_hop_for_every_metric() {
        let data = clustered(2000, 64, 5);
        for metric in [Metric::L2, Metric::Cosine, Metric::InnerProduct] {
            let q = Quantizer::new(64, 4, None, 1);
            let (found, error) = hop_quality(&q, metric, &data);
            assert!(found > 0.75, "{metric:?}: found {found}, error {error}");
        }
        let q = Quantizer::new(64, 4, None, 1);
        assert_eq!(
            q.estimate(
                Metric::L1,
                &q.query(&data[0]),
                0.0,
                &[0; 32],
                &Factors::default()
            ),
            None
        );
    }

    #[test]
    fn fewer_coordinates_cost_accuracy_not_correctness() {
        let data = clustered(2000, 384, 11);
        let all = hop_quality(&Quantizer::new(384, 1, None, 2), Metric::Cosine, &data);
        let part = hop_quality(&Quantizer::new(384, 1, Some(256), 2), Metric::Cosine, &data);
        assert!(
            part.1 > all.1 && part.0 > 0.25,
            "all {all:?}, 256 coordinates {part:?}"
        );
    }

    #[test]
    fn query_tables_sum_each_value_levels() {
        for bits in [2u8, 4, 8] {
            let q = Quantizer::new(40, bits, None, 3);
            let data = clustered(1, 40, 8);
            let query = q.query(&data[0]);
            let mut v = Vec::new();
            q.rotation.apply(&data[0], &mut v);
            let per_byte = 8 / usize::from(bits);
            for (byte, row) in query.table.chunks_exact(256).enumerate() {
                for value in [0usize, 1, 77, 128, 255] {
                    let want: f32 = (0..per_byte)
                        .map(|j| {
                            let level = (value >> (j * usize::from(bits))) as u32 & q.top();
                            (level as f32 - q.mid()) * v[byte * per_byte + j]
                        })
                        .sum();
                    assert!(
                        (row[value] - want).abs() < 1e-5 * (1.0 + want.abs()) * 16.0,
                        "{bits} bits, {value}: {} against {want}",
                        row[value]
                    );
                }
            }
        }
    }

    #[test]
    fn one_bit_planes_agree_with_exact_sums() {
        let data = clustered(30, 200, 4);
        let q = Quantizer::new(200, 1, Some(192), 3);
        let query = q.query(&data[0]);
        let planes = query.planes.as_ref().expect("one-bit query");
        let mut v = Vec::new();
        q.rotation.apply(&data[0], &mut v);
        let spread = v.iter().fold(0.0f32, |m, x| m.max(x.abs()));
        for n in &data[1..] {
            let mut code = vec![0u8; q.code_bytes()];
            q.encode(&q.center(&data[2]), n, &mut code);
            let exact: f32 = (0..192)
                .map(|i| (f32::from((code[i / 8] >> (i % 8)) & 1) - 0.5) * v[i])
                .sum();
            // Rounding to 256 levels errs by Δ/2 a coordinate at most.
            let tolerance = 192f32.sqrt() * (2.0 * spread / 255.0) / 2.0;
            let got = planes.g_dot(&code);
            assert!((got - exact).abs() <= tolerance, "{got} against {exact}");
        }
    }

    #[test]
    fn packed_factors_keep_three_significant_digits() {
        for x in [1.0f32, -0.3337, 1234.5, 6.1e-5, 3.0e18, 0.0] {
            let f = Factors {
                norm: x,
                scale: x / 3.0,
                offset: -x,
                sq: x * x,
            };
            let mut bytes = [0u8; 10];
            f.pack(&mut bytes);
            let back = Factors::unpack(&bytes);
            for (a, b) in [
                (f.norm, back.norm),
                (f.scale, back.scale),
                (f.offset, back.offset),
                (f.sq, back.sq),
            ] {
                assert!((a - b).abs() <= a.abs() / 256.0, "{a} came back as {b}");
            }
            // Without room for `sq`, it reads as 0.
            assert_eq!(Factors::unpack(&bytes[..8]).sq, 0.0);
            assert_eq!(back.offset, f.offset);
        }
    }

    #[test]
    fn packed_entries_estimate_like_full_factors() {
        let data = clustered(200, 48, 3);
        let q = Quantizer::new(48, 1, None, 9);
        for metric in [Metric::L2, Metric::Cosine, Metric::InnerProduct] {
            let center = q.center(&data[0]);
            let query = q.query(&data[1]);
            let center_sq = l2_squared(&data[1], &data[0]);
            for n in &data[2..40] {
                let mut code = vec![0u8; q.code_bytes()];
                let f = q.encode(&center, n, &mut code);
                let mut entry = vec![0u8; q.entry_bytes(metric)];
                q.encode_entry(&center, n, &mut entry);
                assert_eq!(&entry[..code.len()], &code[..]);
                let full = q
                    .estimate(metric, &query, center_sq, &code, &f)
                    .expect("estimable");
                let packed = q
                    .estimate_entry(metric, &query, center_sq, &entry)
                    .expect("estimable");
                // bfloat16 factors err by 0.4 %: of the terms, not of
                // their difference, which can be far smaller.
                let terms = f.norm * f.norm + center_sq + f.sq;
                assert!(
                    (full - packed).abs() <= 0.01 * terms,
                    "{metric:?}: {full} packed {packed}"
                );
            }
        }
    }

    #[test]
    fn codes_are_the_declared_size() {
        let q = Quantizer::new(50, 4, None, 0);
        assert_eq!((q.coords(), q.code_bytes()), (64, 32));
        let q = Quantizer::new(1536, 1, Some(512), 0);
        assert_eq!((q.coords(), q.code_bytes()), (512, 64));
        let q = Quantizer::new(384, 1, None, 0);
        assert_eq!((q.coords(), q.code_bytes()), (512, 64));
    }

    #[test]
    fn a_vector_equal_to_its_center_estimates_the_center_distance() {
        let q = Quantizer::new(8, 2, None, 3);
        let x = [0.5f32, -0.25, 0.0, 1.0, 0.3, 0.2, -0.7, 0.1];
        let mut code = vec![0u8; q.code_bytes()];
        let f = q.encode(&q.center(&x), &x, &mut code);
        let query = [0.0f32; 8];
        let sq = l2_squared(&query, &x);
        let e = q
            .estimate(Metric::L2, &q.query(&query), sq, &code, &f)
            .expect("l2");
        assert!((e - sq).abs() < 1e-5, "{e} vs {sq}");
    }
}
