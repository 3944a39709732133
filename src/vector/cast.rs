//! Casts: the `vector(n)` length coercion and conversions to and from arrays.
//!
//! `integer[]`, `real[]`, `double precision[]` and `numeric[]` cast to
//! `vector` on assignment (as in pgvector); `vector` casts implicitly to
//! `real[]` (as in pgvector) and explicitly to `double precision[]`,
//! `numeric[]` (each element as the shortest decimal that reads back to the
//! same `real`, so nothing is altered) and `integer[]` (rounded as
//! `real::integer` rounds, 22003 outside `integer`'s range).

use super::{check_dim, check_element, check_typmod};
use crate::error::{SqlError, SqlResult, SqlState};
use crate::fmgr::{pg_fn, NewVector};
use pgrx::pg_sys::{self, Datum, Oid};

// The raw fmgr entry point: pg_sys only exposes a Rust wrapper of it, and
// DirectFunctionCall needs the C function pointer.
unsafe extern "C-unwind" {
    fn numeric_float4(fcinfo: pg_sys::FunctionCallInfo) -> Datum;
    fn numeric_in(fcinfo: pg_sys::FunctionCallInfo) -> Datum;
}

/// Converts one `double precision` to `real` the way PostgreSQL's
/// `float8 -> float4` cast does: overflow and underflow are errors, and a
/// vector never holds NaN or infinities.
pub fn f64_to_element(x: f64) -> SqlResult<f32> {
    if !x.is_finite() {
        check_element(x as f32)?;
    }
    let y = x as f32;
    if y.is_infinite() {
        return Err(SqlError::out_of_range("value out of range: overflow"));
    }
    if y == 0.0 && x != 0.0 {
        return Err(SqlError::out_of_range("value out of range: underflow"));
    }
    Ok(y)
}

/// The element type of an array and its storage properties.
struct ElementType {
    oid: Oid,
    len: i16,
    by_value: bool,
    align: std::ffi::c_char,
}

/// The elements of a 1-D array without NULLs, as datums.
///
/// # Safety
/// `array` must point to a valid, detoasted array.
pub(crate) unsafe fn array_datums(array: *mut pg_sys::ArrayType) -> SqlResult<(Oid, Vec<Datum>)> {
    // SAFETY: (caller) array is a valid detoasted ArrayType.
    let (ndim, oid) = unsafe { ((*array).ndim, (*array).elemtype) };
    if ndim > 1 {
        return Err(SqlError::data("array must be 1-D"));
    }
    let mut ty = ElementType {
        oid,
        len: 0,
        by_value: false,
        align: 0,
    };
    // SAFETY: get_typlenbyvalalign fills the three out-params for a valid type oid.
    unsafe { pg_sys::get_typlenbyvalalign(oid, &mut ty.len, &mut ty.by_value, &mut ty.align) };
    let mut elems: *mut Datum = std::ptr::null_mut();
    let mut nulls: *mut bool = std::ptr::null_mut();
    let mut n: std::ffi::c_int = 0;
    // SAFETY: deconstruct_array reads a valid array with its element type's
    // storage properties and palloc's the out arrays (n entries each).
    let (datums, has_null) = unsafe {
        pg_sys::deconstruct_array(
            array,
            ty.oid,
            ty.len.into(),
            ty.by_value,
            ty.align,
            &mut elems,
            &mut nulls,
            &mut n,
        );
        let n = usize::try_from(n).unwrap_or(0);
        if n == 0 {
            (Vec::new(), false)
        } else {
            let datums = std::slice::from_raw_parts(elems, n).to_vec();
            let has_null = std::slice::from_raw_parts(nulls, n).iter().any(|&b| b);
            (datums, has_null)
        }
    };
    if has_null {
        return Err(SqlError::new(
            SqlState::NullValueNotAllowed,
            "array must not contain nulls",
        ));
    }
    Ok((oid, datums))
}

/// Converts array elements to vector elements, by element type.
pub(crate) fn datums_to_elements(oid: Oid, datums: &[Datum]) -> SqlResult<Vec<f32>> {
    let values = datums_to_reals(oid, datums)?;
    values.iter().try_for_each(|&x| check_element(x))?;
    Ok(values)
}

/// Array elements as `real`s, by element type, unchecked for NaN and
/// infinities (the caller's type names them in its errors).
pub(crate) fn datums_to_reals(oid: Oid, datums: &[Datum]) -> SqlResult<Vec<f32>> {
    let float4 = |d: &Datum| f32::from_bits(d.value() as u32);
    let values: Vec<f32> = match oid {
        pg_sys::INT4OID => datums.iter().map(|d| d.value() as i32 as f32).collect(),
        pg_sys::FLOAT4OID => datums.iter().map(float4).collect(),
        pg_sys::FLOAT8OID => datums
            .iter()
            .map(|d| {
                let x = f64::from_bits(d.value() as u64);
                // NaN and infinities are for the caller to name.
                if x.is_finite() {
                    f64_to_element(x)
                } else {
                    Ok(x as f32)
                }
            })
            .collect::<SqlResult<_>>()?,
        pg_sys::NUMERICOID => datums
            .iter()
            // SAFETY: numeric_float4 takes one numeric datum; it raises
            // 22003 itself for values outside float4's range.
            .map(|d| {
                float4(&unsafe {
                    pg_sys::DirectFunctionCall1Coll(Some(numeric_float4), pg_sys::InvalidOid, *d)
                })
            })
            .collect(),
        _ => return Err(SqlError::data("unsupported array type")),
    };
    Ok(values)
}

/// The element types a vector casts to.
#[derive(Clone, Copy)]
pub(crate) enum ArrayElement {
    Real,
    Double,
    Integer,
    Numeric,
}

/// Rounds a vector element to `integer` the way PostgreSQL's `real::integer`
/// does: half to even, an error outside `integer`'s range.
fn element_to_integer(x: f32) -> SqlResult<i32> {
    let rounded = f64::from(x).round_ties_even();
    if !(f64::from(i32::MIN)..=f64::from(i32::MAX)).contains(&rounded) {
        return Err(SqlError::out_of_range("integer out of range"));
    }
    Ok(rounded as i32)
}

/// One vector element as a `numeric` datum: parsed from the shortest decimal
/// text of the `real`, so the `numeric` reads back to the very same value.
fn element_to_numeric(x: f32) -> Datum {
    let mut text = Vec::with_capacity(16);
    crate::fmgr::push_real(&mut text, x);
    text.push(0);
    // SAFETY: numeric_in takes a NUL-terminated cstring, a type oid and a
    // typmod (-1: unconstrained); the text is digits, sign, '.' and 'e' only.
    unsafe {
        pg_sys::DirectFunctionCall3Coll(
            Some(numeric_in),
            pg_sys::InvalidOid,
            Datum::from(text.as_ptr()),
            Datum::from(pg_sys::InvalidOid),
            Datum::from(-1i32),
        )
    }
}

/// Builds a 1-D array of the given element type from vector elements.
pub(crate) fn elements_to_array(values: &[f32], element: ArrayElement) -> SqlResult<Datum> {
    let mut datums: Vec<Datum> = match element {
        ArrayElement::Real => values.iter().map(|&x| Datum::from(x.to_bits())).collect(),
        ArrayElement::Double => values
            .iter()
            .map(|&x| Datum::from(f64::from(x).to_bits()))
            .collect(),
        ArrayElement::Integer => values
            .iter()
            .map(|&x| element_to_integer(x).map(Datum::from))
            .collect::<SqlResult<_>>()?,
        ArrayElement::Numeric => values.iter().map(|&x| element_to_numeric(x)).collect(),
    };
    let (oid, len, by_value, align) = match element {
        ArrayElement::Real => (pg_sys::FLOAT4OID, 4, true, pg_sys::TYPALIGN_INT),
        ArrayElement::Double => (pg_sys::FLOAT8OID, 8, true, pg_sys::TYPALIGN_DOUBLE),
        ArrayElement::Integer => (pg_sys::INT4OID, 4, true, pg_sys::TYPALIGN_INT),
        ArrayElement::Numeric => (pg_sys::NUMERICOID, -1, false, pg_sys::TYPALIGN_INT),
    };
    // SAFETY: construct_array copies `values.len()` datums of the element
    // type, described by its length, by-value flag and alignment, into a new
    // palloc'd array.
    let array = unsafe {
        pg_sys::construct_array(
            datums.as_mut_ptr(),
            datums.len() as i32,
            oid,
            len,
            by_value,
            align as std::ffi::c_char,
        )
    };
    Ok(Datum::from(array))
}

pg_fn! {
    /// `vector(vector, integer, boolean)`: applies a `vector(n)` typmod.
    fn vdb_vector_typmod_cast(args) {
        let (datum, v) = args.detoasted_vector(0)?;
        check_typmod(args.int32(1), v.len())?;
        Ok(datum)
    }
}

pg_fn! {
    /// `array_to_vector(integer[] | real[] | double precision[] | numeric[], integer, boolean)`
    fn vdb_array_to_vector(args) {
        // SAFETY: the argument is a detoasted array (args.array).
        let (oid, datums) = unsafe { array_datums(args.array(0))? };
        check_dim(datums.len())?;
        check_typmod(args.int32(1), datums.len())?;
        let values = datums_to_elements(oid, &datums)?;
        Ok(NewVector::from_slice(&values).into_datum())
    }
}

pg_fn! {
    /// `vector_to_float4(vector, integer, boolean)`: `vector` to `real[]`.
    fn vdb_vector_to_float4(args) {
        elements_to_array(args.vector(0)?, ArrayElement::Real)
    }
}

pg_fn! {
    /// `vector_to_float8(vector, integer, boolean)`: `vector` to `double precision[]`.
    fn vdb_vector_to_float8(args) {
        elements_to_array(args.vector(0)?, ArrayElement::Double)
    }
}

pg_fn! {
    /// `vector_to_int4(vector, integer, boolean)`: `vector` to `integer[]`.
    fn vdb_vector_to_int4(args) {
        elements_to_array(args.vector(0)?, ArrayElement::Integer)
    }
}

pg_fn! {
    /// `vector_to_numeric(vector, integer, boolean)`: `vector` to `numeric[]`.
    fn vdb_vector_to_numeric(args) {
        elements_to_array(args.vector(0)?, ArrayElement::Numeric)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn integer_cast_rounds_like_real_to_integer() {
        assert_eq!(element_to_integer(2.5), Ok(2));
        assert_eq!(element_to_integer(3.5), Ok(4));
        assert_eq!(element_to_integer(-2.5), Ok(-2));
        assert_eq!(element_to_integer(-2147483648.0), Ok(i32::MIN));
        assert_eq!(
            element_to_integer(2147483648.0).unwrap_err().state,
            SqlState::NumericValueOutOfRange
        );
    }

    #[test]
    fn double_to_element_follows_real_cast() {
        assert_eq!(f64_to_element(1.5), Ok(1.5));
        assert_eq!(f64_to_element(-0.0), Ok(0.0));
        assert_eq!(
            f64_to_element(1e300).unwrap_err().message,
            "value out of range: overflow"
        );
        assert_eq!(
            f64_to_element(1e-300).unwrap_err().message,
            "value out of range: underflow"
        );
        assert_eq!(
            f64_to_element(f64::NAN).unwrap_err().message,
            "NaN not allowed in vector"
        );
        assert_eq!(
            f64_to_element(f64::INFINITY).unwrap_err().state,
            SqlState::DataException
        );
    }
}
