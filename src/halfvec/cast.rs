//! `halfvec` casts, as pgvector defines them: the `halfvec(n)` length
//! coercion, `vector` to `halfvec` (implicit) and back (assignment),
//! `integer[]`, `real[]`, `double precision[]`, `numeric[]` to `halfvec`
//! (assignment), and `halfvec` to `real[]` (assignment). Values past
//! half's range are errors; values too small for a half become zero.

use super::{arg, check_dim, datum_from_f32s, detoast, to_f32s};
use crate::fmgr::{pg_fn, NewVector};
use crate::vector::cast::{array_datums, datums_to_reals, elements_to_array, ArrayElement};
use crate::vector::check_typmod;
use pgrx::pg_sys;

pg_fn! {
    /// `halfvec(halfvec, integer, boolean)`: applies a `halfvec(n)` typmod.
    fn vdb_halfvec_typmod_cast(args) {
        let datum = args.datum(0);
        // SAFETY: argument 0 is a non-null halfvec (STRICT).
        let halves = unsafe { detoast(datum)? };
        check_typmod(args.int32(1), halves.len())?;
        Ok(datum)
    }
}

pg_fn! {
    /// `halfvec_to_vector(halfvec, integer, boolean)`: exact.
    fn vdb_halfvec_to_vector(args) {
        let values = to_f32s(arg(&args, 0)?);
        check_typmod(args.int32(1), values.len())?;
        Ok(NewVector::from_slice(&values).into_datum())
    }
}

pg_fn! {
    /// `vector_to_halfvec(vector, integer, boolean)`: rounds to halves.
    fn vdb_vector_to_halfvec(args) {
        let values = args.vector(0)?;
        check_typmod(args.int32(1), values.len())?;
        datum_from_f32s(values)
    }
}

pg_fn! {
    /// `array_to_halfvec(integer[] | real[] | double precision[] | numeric[], integer, boolean)`
    fn vdb_array_to_halfvec(args) {
        // SAFETY: the argument is a detoasted array (args.array).
        let (oid, datums) = unsafe { array_datums(args.array(0))? };
        check_dim(datums.len())?;
        check_typmod(args.int32(1), datums.len())?;
        let values: Vec<f32> = if oid == pg_sys::FLOAT8OID {
            // Straight to the nearest half, as pgvector does: no `real`
            // overflow or underflow error on the way.
            datums.iter().map(|d| f64::from_bits(d.value() as u64) as f32).collect()
        } else {
            datums_to_reals(oid, &datums)?
        };
        datum_from_f32s(&values)
    }
}

pg_fn! {
    /// `halfvec_to_float4(halfvec, integer, boolean)`: `halfvec` to `real[]`.
    fn vdb_halfvec_to_float4(args) {
        elements_to_array(&to_f32s(arg(&args, 0)?), ArrayElement::Real)
    }
}
