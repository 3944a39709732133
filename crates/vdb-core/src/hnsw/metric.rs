//! How each operator class measures distance inside the graph.
//!
//! The graph only ranks, so each metric may use any strictly increasing
//! transform of its SQL distance: L2 uses the squared distance, cosine
//! stores unit vectors and uses `1 − a·b`, Poincaré uses the argument of
//! `acosh` (`|u−v|²·αu·αv` with `α = 1/(1−|v|²)`, precomputed per point and
//! kept as the point's `aux`).

use crate::distance;

/// The distance an index is built for (one per operator class).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum Metric {
    L2 = 1,
    InnerProduct = 2,
    Cosine = 3,
    L1 = 4,
    Poincare = 5,
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
            _ => return None,
        })
    }

    pub fn code(self) -> u8 {
        self as u8
    }

    /// Turns a raw vector into its stored form.
    pub fn prepare(self, raw: &[f32]) -> Result<Point, Unindexable> {
        let mut vec = raw.to_vec();
        let aux = match self {
            Metric::Cosine => {
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
            Metric::L2 | Metric::InnerProduct | Metric::L1 => 0.0,
        };
        Ok(Point { vec, aux })
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
            Metric::L2 if d < 0.0 => -1.0,
            Metric::L2 => d * d,
            // Cosine ranks unit vectors by 1 − a·b, the cosine distance.
            Metric::InnerProduct | Metric::Cosine | Metric::L1 => d,
            Metric::Poincare if d < 0.0 => -1.0,
            // d = acosh(1 + 2·δ), δ the ranking distance.
            Metric::Poincare => (d.cosh() - 1.0) / 2.0,
        }
    }
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
        for code in 1..=5 {
            assert_eq!(Metric::from_code(code).map(Metric::code), Some(code));
        }
        assert_eq!(Metric::from_code(9), None);
    }
}
