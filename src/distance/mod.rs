//! SQL distance functions and the operators built on them.
//!
//! The kernels live in `vdb_core::distance` (SIMD through simsimd, with a
//! scalar reference); this module only unboxes arguments, checks that the
//! dimensions agree, and boxes the `double precision` result.

use crate::error::{SqlError, SqlResult};
use crate::fmgr::{float8_datum, pg_fn, Args};
use crate::vector::check_same_dims;
use pgrx::pg_sys::Datum;
use vdb_core::distance;

pub mod bits;
pub mod sphere;

/// Applies a kernel to the two `vector` arguments.
fn distance_of(args: &Args, kernel: fn(&[f32], &[f32]) -> f64) -> SqlResult<Datum> {
    let (a, b) = (args.vector(0)?, args.vector(1)?);
    check_same_dims(a, b)?;
    Ok(float8_datum(kernel(a, b)))
}

pg_fn! {
    /// `l2_distance(vector, vector)`: the `<->` operator.
    fn vdb_l2_distance(args) { distance_of(&args, distance::l2) }
}

pg_fn! {
    /// `vector_l2_squared_distance(vector, vector)`
    fn vdb_l2_squared_distance(args) { distance_of(&args, distance::l2_squared) }
}

pg_fn! {
    /// `inner_product(vector, vector)`
    fn vdb_inner_product(args) { distance_of(&args, distance::dot) }
}

pg_fn! {
    /// `vector_negative_inner_product(vector, vector)`: the `<#>` operator.
    fn vdb_negative_inner_product(args) { distance_of(&args, |a, b| -distance::dot(a, b)) }
}

pg_fn! {
    /// `cosine_distance(vector, vector)`: the `<=>` operator. NaN when
    /// either vector is zero, as in pgvector.
    fn vdb_cosine_distance(args) { distance_of(&args, distance::cosine_distance) }
}

pg_fn! {
    /// `l1_distance(vector, vector)`: the `<+>` operator.
    fn vdb_l1_distance(args) { distance_of(&args, distance::l1) }
}

/// `acos(a·b) / π` of dot product `dot` of unit vectors, clamped so that
/// rounding cannot make it NaN (pgvector's spherical distance).
pub fn spherical(dot: f64) -> f64 {
    dot.clamp(-1.0, 1.0).acos() / std::f64::consts::PI
}

pg_fn! {
    /// `vector_spherical_distance(vector, vector)`: the angle between two
    /// unit vectors, as a fraction of π (pgvector's, for unit inputs).
    fn vdb_spherical_distance(args) { distance_of(&args, |a, b| spherical(distance::dot(a, b))) }
}

pg_fn! {
    /// `poincare_distance(vector, vector)`: hyperbolic distance in the
    /// Poincaré ball; both points must lie strictly inside the unit ball.
    fn vdb_poincare_distance(args) {
        let (a, b) = (args.vector(0)?, args.vector(1)?);
        check_same_dims(a, b)?;
        Ok(float8_datum(poincare(a, b)?))
    }
}

/// The Poincaré distance, or the error both its operators raise.
fn poincare(a: &[f32], b: &[f32]) -> SqlResult<f64> {
    distance::poincare_distance(a, b).map_err(|distance::PoincareError::OutsideBall| {
        SqlError::data("poincare_distance requires points strictly inside the unit ball")
            .with_detail("Every point must have a Euclidean norm below 1.")
    })
}
