//! Distance-range conditions: `embedding <<->> sphere(q, r)` is true when
//! `embedding <-> q <= r`, and likewise `<<#>>`, `<<=>>`, `<<+>>` and
//! `<<@>>` for the other distance operators. A vhnsw index of the
//! matching operator class serves them as index conditions (`am::scan`):
//! its ordered scan stops at the first row past the radius.

use crate::error::SqlResult;
use crate::fmgr::{detoast_vector, pg_fn, Args};
use crate::vector::check_same_dims;
use pgrx::pg_sys::{self, Datum};
use vdb_core::distance;

/// A `sphere` value: a center and a radius in the units of the operator
/// it is used with.
pub(crate) struct Sphere<'a> {
    pub(crate) center: &'a [f32],
    pub(crate) radius: f64,
}

/// Reads a `sphere` composite value; `None` when its center or radius is
/// NULL (no row lies within such a sphere).
///
/// # Safety
/// `datum` must be a non-null `sphere` value that stays valid for `'a`.
pub(crate) unsafe fn read_sphere<'a>(datum: Datum) -> SqlResult<Option<Sphere<'a>>> {
    // SAFETY: (caller) a composite datum; detoasting gives its tuple
    // header, which carries the row type GetAttributeByNum looks up.
    unsafe {
        let tuple =
            pg_sys::pg_detoast_datum(datum.cast_mut_ptr()).cast::<pg_sys::HeapTupleHeaderData>();
        let mut null = false;
        let center = pg_sys::GetAttributeByNum(tuple, 1, &mut null);
        if null {
            return Ok(None);
        }
        let radius = pg_sys::GetAttributeByNum(tuple, 2, &mut null);
        if null {
            return Ok(None);
        }
        Ok(Some(Sphere {
            center: detoast_vector(center)?,
            // float8 is passed by value.
            radius: f64::from_bits(radius.value() as u64),
        }))
    }
}

/// Whether the `vector` argument lies within the `sphere` argument by
/// `distance` (the same kernel as the matching distance operator, so the
/// two always agree).
fn within(args: &Args, distance: impl Fn(&[f32], &[f32]) -> SqlResult<f64>) -> SqlResult<Datum> {
    let a = args.vector(0)?;
    // SAFETY: argument 1 is a non-null `sphere` (the function is STRICT).
    let Some(sphere) = (unsafe { read_sphere(args.datum(1))? }) else {
        return Ok(args.return_null());
    };
    check_same_dims(a, sphere.center)?;
    Ok(Datum::from(distance(a, sphere.center)? <= sphere.radius))
}

pg_fn! {
    /// `vector_l2_within(vector, sphere)`: the `<<->>` operator.
    fn vdb_l2_within(args) { within(&args, |a, b| Ok(distance::l2(a, b))) }
}

pg_fn! {
    /// `vector_ip_within(vector, sphere)`: the `<<#>>` operator (the
    /// negative inner product at most the radius).
    fn vdb_ip_within(args) { within(&args, |a, b| Ok(-distance::dot(a, b))) }
}

pg_fn! {
    /// `vector_cosine_within(vector, sphere)`: the `<<=>>` operator.
    fn vdb_cosine_within(args) { within(&args, |a, b| Ok(distance::cosine_distance(a, b))) }
}

pg_fn! {
    /// `vector_l1_within(vector, sphere)`: the `<<+>>` operator.
    fn vdb_l1_within(args) { within(&args, |a, b| Ok(distance::l1(a, b))) }
}

pg_fn! {
    /// `vector_poincare_within(vector, sphere)`: the `<<@>>` operator.
    fn vdb_poincare_within(args) { within(&args, super::poincare) }
}
