//! How each operator class measures distance inside the graph.
//!
//! The graph only ranks, so each metric may use any strictly increasing
//! transform of its SQL distance: L2 uses the squared distance, cosine
//! stores unit vectors and uses `1 − a·b`, Poincaré uses the argument of
//! `acosh` (`|u−v|²·αu·αv` with `α = 1/(1−|v|²)`, precomputed per point and
//! kept as the point's `aux`).
//!
//! `halfvec` and `bit` indexes keep their values packed into the `f32`
//! words of a point: two halves per word ([`Metric::is_half`]) or 32 bits
//! per word ([`Metric::is_bits`]), so the pages, the pending list and the
//! graph store them at their own size without knowing the element type.
//! Such words are bit patterns, not numbers: only this module reads them,
//! and nothing else does arithmetic on them (they carry no codes).

use crate::distance::{self, bits, half, sparse};

/// The distance an index is built for (one per operator class).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum Metric {
    L2 = 1,
    InnerProduct = 2,
    Cosine = 3,
    L1 = 4,
    Poincare = 5,
    HalfL2 = 6,
    HalfInnerProduct = 7,
    HalfCosine = 8,
    HalfL1 = 9,
    /// Bits that differ (`bit_hamming_ops`).
    Hamming = 10,
    /// `1 − |a ∧ b| / |a ∨ b|` (`bit_jaccard_ops`).
    Jaccard = 11,
    SparseL2 = 12,
    SparseInnerProduct = 13,
    SparseCosine = 14,
    SparseL1 = 15,
}

/// A vector in the form the graph stores and compares.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Point {
    pub vec: Vec<f32>,
    /// Per-point constant used by the metric (Poincaré's α; 0 otherwise).
    pub aux: f32,
}

/// Why a vector cannot go into the graph.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Unindexable {
    /// A zero vector has no direction: not indexed under cosine (as pgvector).
    ZeroVector,
    /// A Poincaré point on or outside the unit ball.
    OutsideUnitBall,
}

impl Metric {
    pub fn from_code(code: u8) -> Option<Metric> {
        Some(match code {
            1 => Metric::L2,
            2 => Metric::InnerProduct,
            3 => Metric::Cosine,
            4 => Metric::L1,
            5 => Metric::Poincare,
            6 => Metric::HalfL2,
            7 => Metric::HalfInnerProduct,
            8 => Metric::HalfCosine,
            9 => Metric::HalfL1,
            10 => Metric::Hamming,
            11 => Metric::Jaccard,
            12 => Metric::SparseL2,
            13 => Metric::SparseInnerProduct,
            14 => Metric::SparseCosine,
            15 => Metric::SparseL1,
            _ => return None,
        })
    }

    pub fn code(self) -> u8 {
        self as u8
    }

    /// Whether points hold halves, two per word.
    pub fn is_half(self) -> bool {
        matches!(
            self,
            Metric::HalfL2 | Metric::HalfInnerProduct | Metric::HalfCosine | Metric::HalfL1
        )
    }

    /// Whether points hold bits, 32 per word.
    pub fn is_bits(self) -> bool {
        matches!(self, Metric::Hamming | Metric::Jaccard)
    }

    /// Whether points are sparse vectors packed to the index's capacity
    /// (`distance::sparse`); their raw form is that packing already.
    pub fn is_sparse(self) -> bool {
        matches!(
            self,
            Metric::SparseL2 | Metric::SparseInnerProduct | Metric::SparseCosine | Metric::SparseL1
        )
    }

    /// Words a stored point of `dims` dimensions takes (a sparse index's
    /// `dims` is its packed size already).
    pub fn stored_len(self, dims: usize) -> usize {
        if self.is_half() {
            dims.div_ceil(2)
        } else if self.is_bits() {
            dims.div_ceil(32)
        } else {
            dims
        }
    }

    /// `raw` in the stored form without any check or normalisation: the
    /// query point of a query every distance of which is NaN (a zero
    /// vector under cosine), packed like the stored points.
    pub fn pack_unchecked(self, raw: &[f32]) -> Point {
        let vec = if self.is_half() {
            pack_halves(raw)
        } else if self.is_bits() {
            pack_bits(raw)
        } else {
            raw.to_vec()
        };
        Point { vec, aux: 0.0 }
    }

    /// Turns a raw vector into its stored form. For `bit` indexes the raw
    /// vector has one element per bit, 0 or 1; for `halfvec` ones each
    /// element is a half's exact value.
    pub fn prepare(self, raw: &[f32]) -> Result<Point, Unindexable> {
        let mut vec = raw.to_vec();
        let aux = match self {
            Metric::SparseCosine => {
                let values = sparse::values_mut(&mut vec);
                let norm = values
                    .iter()
                    .map(|&x| f64::from(x).powi(2))
                    .sum::<f64>()
                    .sqrt();
                if norm == 0.0 {
                    return Err(Unindexable::ZeroVector);
                }
                for x in values {
                    *x = (f64::from(*x) / norm) as f32;
                }
                0.0
            }
            Metric::Cosine | Metric::HalfCosine => {
                let norm = distance::norm_squared(&vec).sqrt();
                if norm == 0.0 {
                    return Err(Unindexable::ZeroVector);
                }
                for x in &mut vec {
                    *x = (f64::from(*x) / norm) as f32;
                }
                0.0
            }
            Metric::Poincare => {
                let nn = distance::norm_squared(&vec);
                if nn >= 1.0 || nn.is_nan() {
                    return Err(Unindexable::OutsideUnitBall);
                }
                (1.0 / (1.0 - nn)) as f32
            }
            Metric::L2
            | Metric::InnerProduct
            | Metric::L1
            | Metric::HalfL2
            | Metric::HalfInnerProduct
            | Metric::HalfL1
            | Metric::Hamming
            | Metric::Jaccard
            | Metric::SparseL2
            | Metric::SparseInnerProduct
            | Metric::SparseL1 => 0.0,
        };
        if self.is_half() {
            vec = pack_halves(&vec);
        } else if self.is_bits() {
            vec = pack_bits(&vec);
        }
        Ok(Point { vec, aux })
    }

    /// Whether neighbour selection fills lists with the candidates its
    /// heuristic pruned (see [`super::select`]): under inner product,
    /// whose "distance" from a point to itself is not the least, the
    /// heuristic alone keeps one or two links per node.
    pub fn keeps_pruned(self) -> bool {
        self.is_inner_product()
    }

    /// The inner-product metrics (of `vector`, `halfvec`, `sparsevec`).
    pub fn is_inner_product(self) -> bool {
        matches!(
            self,
            Metric::InnerProduct | Metric::HalfInnerProduct | Metric::SparseInnerProduct
        )
    }

    /// The ranking distance between two prepared points.
    #[inline]
    pub fn distance(self, a: &[f32], a_aux: f32, b: &[f32], b_aux: f32) -> f32 {
        (match self {
            Metric::L2 => distance::l2_squared(a, b),
            Metric::InnerProduct => -distance::dot(a, b),
            Metric::Cosine => 1.0 - distance::dot(a, b),
            Metric::L1 => distance::l1(a, b),
            Metric::Poincare => distance::l2_squared(a, b) * f64::from(a_aux) * f64::from(b_aux),
            Metric::HalfL2 => half::l2_squared(halves(a), halves(b)),
            Metric::HalfInnerProduct => -half::dot(halves(a), halves(b)),
            Metric::HalfCosine => 1.0 - half::dot(halves(a), halves(b)),
            Metric::HalfL1 => half::l1(halves(a), halves(b)),
            Metric::Hamming => bits::hamming(words(a), words(b)),
            Metric::Jaccard => bits::jaccard(words(a), words(b)),
            Metric::SparseL2 => sparse::l2_squared(a, b),
            Metric::SparseInnerProduct => -sparse::dot(a, b),
            Metric::SparseCosine => 1.0 - sparse::dot(a, b),
            Metric::SparseL1 => sparse::l1(a, b),
        }) as f32
    }

    #[inline]
    pub fn between(self, a: &Point, b: &Point) -> f32 {
        self.distance(&a.vec, a.aux, &b.vec, b.aux)
    }

    /// The ranking distance of SQL distance `d`: a point ranks at most
    /// this far exactly when its SQL distance is at most `d` (negative
    /// for a `d` no point is within).
    pub fn ranking_bound(self, d: f64) -> f64 {
        match self {
            Metric::L2 | Metric::HalfL2 | Metric::SparseL2 if d < 0.0 => -1.0,
            Metric::L2 | Metric::HalfL2 | Metric::SparseL2 => d * d,
            // Cosine ranks unit vectors by 1 − a·b, the cosine distance.
            Metric::InnerProduct
            | Metric::Cosine
            | Metric::L1
            | Metric::HalfInnerProduct
            | Metric::HalfCosine
            | Metric::HalfL1
            | Metric::Hamming
            | Metric::Jaccard
            | Metric::SparseInnerProduct
            | Metric::SparseCosine
            | Metric::SparseL1 => d,
            Metric::Poincare if d < 0.0 => -1.0,
            // d = acosh(1 + 2·δ), δ the ranking distance.
            Metric::Poincare => (d.cosh() - 1.0) / 2.0,
        }
    }
}

/// Rounds each element to a half and packs two per word; an odd count
/// gets a zero half, which adds nothing to any distance.
fn pack_halves(raw: &[f32]) -> Vec<f32> {
    let mut halves: Vec<u16> = raw.iter().map(|&x| half::from_f32(x)).collect();
    if halves.len() % 2 == 1 {
        halves.push(0);
    }
    bytemuck::cast_slice::<u16, f32>(&halves).to_vec()
}

/// Packs 0/1 elements 32 to a word, first element in the highest bit.
fn pack_bits(raw: &[f32]) -> Vec<f32> {
    raw.chunks(32)
        .map(|chunk| {
            let word =
                chunk.iter().enumerate().fold(
                    0u32,
                    |w, (i, &x)| {
                        if x != 0.0 {
                            w | (1 << (31 - i))
                        } else {
                            w
                        }
                    },
                );
            f32::from_bits(word)
        })
        .collect()
}

fn halves(words: &[f32]) -> &[u16] {
    bytemuck::cast_slice(words)
}

fn words(packed: &[f32]) -> &[u32] {
    bytemuck::cast_slice(packed)
}

/// Whether two stored points are the same value: compared bit for bit,
/// as packed words are patterns, not numbers (and a `-0.0` half or bit
/// string differs from `0.0`).
pub fn same_bits(a: &[f32], b: &[f32]) -> bool {
    words(a) == words(b)
}

#[cfg(test)]
mod tests {
    use super::*;

    type Sql = fn(&[f32], &[f32]) -> f64;

    /// Each metric with the SQL distance it stands for.
    fn sql_distances() -> [(Metric, Sql); 5] {
        [
            (Metric::L2, distance::l2),
            (Metric::InnerProduct, |a, b| -distance::dot(a, b)),
            (Metric::Cosine, distance::cosine_distance),
            (Metric::L1, distance::l1),
            (Metric::Poincare, |a, b| {
                distance::poincare_distance(a, b).unwrap_or(f64::NAN)
            }),
        ]
    }

    #[test]
    fn range_bounds_match_sql_distances() {
        let q = [0.1f32, 0.2, -0.3];
        let p = [0.3f32, -0.1, 0.2];
        for (metric, sql) in sql_distances() {
            let (a, b) = (
                metric.prepare(&q).expect("ok"),
                metric.prepare(&p).expect("ok"),
            );
            let ranked = f64::from(metric.between(&a, &b));
            let bound = metric.ranking_bound(sql(&q, &p));
            assert!(
                (ranked - bound).abs() <= 1e-6 * bound.abs().max(1.0),
                "{metric:?}: ranked {ranked}, bound {bound}"
            );
        }
        assert!(Metric::L2.ranking_bound(-0.5) < 0.0);
        assert!(Metric::Poincare.ranking_bound(-0.5) < 0.0);
    }

    #[test]
    fn rankings_follow_sql_distances() {
        let q = [0.1f32, 0.2, -0.3];
        let pts = [
            [0.3f32, -0.1, 0.2],
            [0.0, 0.2, -0.25],
            [-0.4, 0.1, 0.15],
            [0.05, 0.05, 0.0],
        ];
        for (metric, sql) in sql_distances() {
            let qp = metric.prepare(&q).expect("indexable");
            let mut by_graph: Vec<usize> = (0..pts.len()).collect();
            let mut by_sql = by_graph.clone();
            by_graph.sort_by(|&i, &j| {
                let di = metric.between(&qp, &metric.prepare(&pts[i]).expect("ok"));
                let dj = metric.between(&qp, &metric.prepare(&pts[j]).expect("ok"));
                di.total_cmp(&dj)
            });
            by_sql.sort_by(|&i, &j| sql(&q, &pts[i]).total_cmp(&sql(&q, &pts[j])));
            assert_eq!(by_graph, by_sql, "{metric:?}");
        }
    }

    /// Values exact in half precision, so half metrics see what SQL sees.
    fn halves_exact(rng: &mut u64, n: usize) -> Vec<f32> {
        (0..n)
            .map(|_| {
                *rng = crate::hnsw::splitmix64(*rng);
                ((*rng % 2001) as f32 - 1000.0) / 256.0
            })
            .collect()
    }

    #[test]
    fn half_metrics_match_float_ones() {
        let mut rng = 11u64;
        for n in [1, 2, 3, 7, 64, 385] {
            let (q, p) = (halves_exact(&mut rng, n), halves_exact(&mut rng, n));
            for (half, float) in [
                (Metric::HalfL2, Metric::L2),
                (Metric::HalfInnerProduct, Metric::InnerProduct),
                (Metric::HalfCosine, Metric::Cosine),
                (Metric::HalfL1, Metric::L1),
            ] {
                let (hq, hp) = (half.prepare(&q).expect("ok"), half.prepare(&p).expect("ok"));
                assert_eq!(hq.vec.len(), half.stored_len(n));
                let want = float.between(
                    &float.prepare(&q).expect("ok"),
                    &float.prepare(&p).expect("ok"),
                );
                let got = half.between(&hq, &hp);
                // Cosine rounds the unit vectors to halves.
                let tol = if half == Metric::HalfCosine {
                    2e-3
                } else {
                    1e-4 * want.abs().max(1.0)
                };
                assert!((got - want).abs() <= tol, "{half:?} n={n}: {got} vs {want}");
            }
        }
        assert_eq!(
            Metric::HalfCosine.prepare(&[0.0, 0.0, 0.0]),
            Err(Unindexable::ZeroVector)
        );
    }

    #[test]
    fn bit_metrics_count_bits() {
        let a: Vec<f32> = (0..70).map(|i| f32::from(i % 3 == 0)).collect();
        let b: Vec<f32> = (0..70).map(|i| f32::from(i % 2 == 0)).collect();
        let (mut both, mut either, mut differ) = (0, 0, 0);
        for (x, y) in a.iter().zip(&b) {
            both += u32::from(*x == 1.0 && *y == 1.0);
            either += u32::from(*x == 1.0 || *y == 1.0);
            differ += u32::from(x != y);
        }
        let (pa, pb) = (
            Metric::Hamming.prepare(&a).expect("ok"),
            Metric::Hamming.prepare(&b).expect("ok"),
        );
        assert_eq!(pa.vec.len(), 3);
        assert_eq!(Metric::Hamming.between(&pa, &pb), differ as f32);
        let (ja, jb) = (
            Metric::Jaccard.prepare(&a).expect("ok"),
            Metric::Jaccard.prepare(&b).expect("ok"),
        );
        let want = 1.0 - f64::from(both) / f64::from(either);
        assert!((f64::from(Metric::Jaccard.between(&ja, &jb)) - want).abs() < 1e-6);
        // A string whose bits make a NaN or -0.0 pattern is still itself.
        let nan_like: Vec<f32> = (0..32).map(|i| f32::from(i < 10)).collect();
        let p = Metric::Hamming.prepare(&nan_like).expect("ok");
        assert!(p.vec[0].is_nan());
        assert!(same_bits(&p.vec, &p.vec.clone()));
        assert_eq!(Metric::Hamming.between(&p, &p), 0.0);
        assert!(!same_bits(&[-0.0], &[0.0]));
    }

    #[test]
    fn sparse_metrics_match_dense_ones() {
        let pack = |i: &[u32], v: &[f32]| sparse::pack(8, i, v, 5).expect("fits");
        let (a, b) = (
            pack(&[1, 4, 6], &[3.0, -1.0, 2.0]),
            pack(&[0, 4], &[1.0, 2.0]),
        );
        let dense = |i: &[u32], v: &[f32]| {
            let mut d = vec![0.0f32; 8];
            i.iter().zip(v).for_each(|(&i, &x)| d[i as usize] = x);
            d
        };
        let (da, db) = (
            dense(&[1, 4, 6], &[3.0, -1.0, 2.0]),
            dense(&[0, 4], &[1.0, 2.0]),
        );
        for (s, d) in [
            (Metric::SparseL2, Metric::L2),
            (Metric::SparseInnerProduct, Metric::InnerProduct),
            (Metric::SparseCosine, Metric::Cosine),
            (Metric::SparseL1, Metric::L1),
        ] {
            let got = s.between(&s.prepare(&a).expect("ok"), &s.prepare(&b).expect("ok"));
            let want = d.between(&d.prepare(&da).expect("ok"), &d.prepare(&db).expect("ok"));
            assert!((got - want).abs() < 1e-5, "{s:?}: {got} vs {want}");
            assert_eq!(s.stored_len(a.len()), a.len());
        }
        let zero = sparse::pack(8, &[], &[], 5).expect("fits");
        assert_eq!(
            Metric::SparseCosine.prepare(&zero),
            Err(Unindexable::ZeroVector)
        );
    }

    #[test]
    fn unindexable_vectors() {
        assert_eq!(
            Metric::Cosine.prepare(&[0.0, 0.0]),
            Err(Unindexable::ZeroVector)
        );
        assert_eq!(
            Metric::Poincare.prepare(&[1.0, 0.0]),
            Err(Unindexable::OutsideUnitBall)
        );
        assert!(Metric::L2.prepare(&[0.0, 0.0]).is_ok());
        for code in 1..=15 {
            assert_eq!(Metric::from_code(code).map(Metric::code), Some(code));
        }
        assert_eq!(Metric::from_code(16), None);
    }
}
