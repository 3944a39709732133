//! Reference kernels: one plain loop each, accumulating in `f64`.
//!
//! Slow and obviously correct; the SIMD kernels are tested against these.

use super::PoincareError;

pub fn l2_squared(a: &[f32], b: &[f32]) -> f64 {
    a.iter()
        .zip(b)
        .map(|(x, y)| {
            let d = f64::from(*x) - f64::from(*y);
            d * d
        })
        .sum()
}

pub fn dot(a: &[f32], b: &[f32]) -> f64 {
    a.iter()
        .zip(b)
        .map(|(x, y)| f64::from(*x) * f64::from(*y))
        .sum()
}

pub fn l1(a: &[f32], b: &[f32]) -> f64 {
    a.iter()
        .zip(b)
        .map(|(x, y)| (f64::from(*x) - f64::from(*y)).abs())
        .sum()
}

pub fn cosine_distance(a: &[f32], b: &[f32]) -> f64 {
    super::cosine_from_parts(dot(a, b), dot(a, a), dot(b, b))
}

pub fn poincare_distance(u: &[f32], v: &[f32]) -> Result<f64, PoincareError> {
    let uu = dot(u, u);
    let vv = dot(v, v);
    if !(uu < 1.0 && vv < 1.0) {
        return Err(PoincareError::OutsideBall);
    }
    Ok(super::poincare_from_parts(l2_squared(u, v), uu, vv))
}
