//! Casts: the `sparsevec(n)` length coercion, `vector` to and from
//! `sparsevec`, and arrays to `sparsevec`.
//!
//! Contexts are pgvector's: `vector -> sparsevec` is implicit,
//! `sparsevec -> vector` on assignment, arrays (`integer[]`, `real[]`,
//! `double precision[]`, `numeric[]`) on assignment. Zeros become absent
//! elements.

use super::{check_dim, check_element, check_nnz, check_typmod, SparseVec};
use crate::error::{SqlError, SqlResult};
use crate::fmgr::{pg_fn, NewVector};
use pgrx::pg_sys::{self, Datum, Oid};

// The raw fmgr entry point: pg_sys only exposes a Rust wrapper of it, and
// DirectFunctionCall needs the C function pointer.
unsafe extern "C-unwind" {
    fn numeric_float4(fcinfo: pg_sys::FunctionCallInfo) -> Datum;
}

/// The non-zero elements of a dense vector, as a sparse vector; `dense`
/// must be non-empty and its values finite.
pub fn from_dense(dense: &[f32]) -> SqlResult<SparseVec> {
    let dim = i32::try_from(dense.len()).unwrap_or(i32::MAX);
    check_dim(dim)?;
    let nnz = dense.iter().filter(|&&x| x != 0.0).count();
    check_nnz(nnz as i64, dim)?;
    let (indices, values) = dense
        .iter()
        .enumerate()
        .filter(|(_, &x)| x != 0.0)
        .map(|(i, &x)| (i as i32, x))
        .unzip();
    Ok(SparseVec {
        dim,
        indices,
        values,
    })
}

/// Converts one `double precision` to an element the way vdb's `vector`
/// does (stricter than pgvector, never a silently altered value): a value
/// outside `real`'s range, or a non-zero one that rounds to zero, is an
/// error rather than an infinity or a dropped element. `x` is finite.
fn f64_to_element(x: f64) -> SqlResult<f32> {
    let y = x as f32;
    if y.is_infinite() {
        return Err(SqlError::out_of_range("value out of range: overflow"));
    }
    if y == 0.0 && x != 0.0 {
        return Err(SqlError::out_of_range("value out of range: underflow"));
    }
    Ok(y)
}

/// Converts array elements to dense values, by element type.
fn datums_to_values(oid: Oid, datums: &[Datum]) -> SqlResult<Vec<f32>> {
    let float4 = |d: &Datum| f32::from_bits(d.value() as u32);
    Ok(match oid {
        pg_sys::INT4OID => datums.iter().map(|d| d.value() as i32 as f32).collect(),
        pg_sys::FLOAT4OID => datums.iter().map(float4).collect(),
        pg_sys::FLOAT8OID => datums
            .iter()
            .map(|d| {
                let x = f64::from_bits(d.value() as u64);
                // NaN and infinities keep pgvector's messages.
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
    })
}

pg_fn! {
    /// `sparsevec(sparsevec, integer, boolean)`: applies a `sparsevec(n)` typmod.
    fn vdb_sparsevec_typmod_cast(args) {
        let (datum, v) = super::arg_with_datum(&args, 0)?;
        check_typmod(args.int32(1), v.dim)?;
        Ok(datum)
    }
}

pg_fn! {
    /// `vector_to_sparsevec(vector, integer, boolean)`
    fn vdb_vector_to_sparsevec(args) {
        let dense = args.vector(0)?;
        let dim = i32::try_from(dense.len()).unwrap_or(i32::MAX);
        check_dim(dim)?;
        check_typmod(args.int32(1), dim)?;
        Ok(from_dense(dense)?.into_datum())
    }
}

pg_fn! {
    /// `sparsevec_to_vector(sparsevec, integer, boolean)`: the dimension
    /// and typmod are checked as `vector`'s.
    fn vdb_sparsevec_to_vector(args) {
        let v = super::arg(&args, 0)?;
        let dim = usize::try_from(v.dim).unwrap_or(usize::MAX);
        crate::vector::check_dim(dim)?;
        crate::vector::check_typmod(args.int32(1), dim)?;
        let mut out = NewVector::zeroed(dim);
        let x = out.values_mut();
        for (&index, &value) in v.indices.iter().zip(v.values) {
            let slot = usize::try_from(index).ok().and_then(|i| x.get_mut(i));
            let Some(slot) = slot else {
                return Err(SqlError::internal(format!(
                    "corrupt sparsevec value: index {index} of {dim} dimensions"
                )));
            };
            *slot = value;
        }
        Ok(out.into_datum())
    }
}

pg_fn! {
    /// `array_to_sparsevec(integer[] | real[] | double precision[] | numeric[], integer, boolean)`
    fn vdb_array_to_sparsevec(args) {
        // SAFETY: the argument is a detoasted array (args.array).
        let (oid, datums) = unsafe { crate::vector::cast::array_datums(args.array(0))? };
        let dim = i32::try_from(datums.len()).unwrap_or(i32::MAX);
        check_dim(dim)?;
        check_typmod(args.int32(1), dim)?;
        let dense = datums_to_values(oid, &datums)?;
        // pgvector counts NaN and infinities as non-zero, checks the count,
        // then the elements.
        let nnz = dense.iter().filter(|&&x| x != 0.0 || x.is_nan()).count();
        check_nnz(nnz as i64, dim)?;
        dense.iter().try_for_each(|&x| check_element(x))?;
        Ok(from_dense(&dense)?.into_datum())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::SqlState;

    #[test]
    fn dense_to_sparse_drops_zeros() {
        let v = from_dense(&[0.0, 1.5, -0.0, 3.5, 0.0]).expect("converts");
        assert_eq!(v.dim, 5);
        assert_eq!(v.indices, vec![1, 3]);
        assert_eq!(v.values, vec![1.5, 3.5]);
        assert_eq!(from_dense(&[0.0; 3]).map(|v| v.indices.len()), Ok(0));
        assert_eq!(
            from_dense(&[]).unwrap_err().message,
            "sparsevec must have at least 1 dimension"
        );
        let many = vec![1.0; 16_001];
        assert_eq!(
            from_dense(&many).unwrap_err().message,
            "sparsevec cannot have more than 16000 non-zero elements"
        );
    }

    #[test]
    fn double_to_element_is_strict() {
        assert_eq!(f64_to_element(1.5), Ok(1.5));
        assert_eq!(f64_to_element(-0.0), Ok(0.0));
        let e = f64_to_element(4e38).unwrap_err();
        assert_eq!(e.state, SqlState::NumericValueOutOfRange);
        assert_eq!(e.message, "value out of range: overflow");
        assert_eq!(
            f64_to_element(-1e-46).unwrap_err().message,
            "value out of range: underflow"
        );
    }
}
