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
    /// `halfvec_to_sparsevec(halfvec, integer, boolean)`: exact (zeros
    /// dropped).
    fn vdb_halfvec_to_sparsevec(args) {
        let dense = crate::halfvec::to_f32s(crate::halfvec::arg(&args, 0)?);
        let dim = i32::try_from(dense.len()).unwrap_or(i32::MAX);
        check_dim(dim)?;
        check_typmod(args.int32(1), dim)?;
        Ok(from_dense(&dense)?.into_datum())
    }
}

pg_fn! {
    /// `sparsevec_to_halfvec(sparsevec, integer, boolean)`: each value
    /// rounded to a half (an error past half's range).
    fn vdb_sparsevec_to_halfvec(args) {
        let v = super::arg(&args, 0)?;
        let dim = usize::try_from(v.dim).unwrap_or(usize::MAX);
        crate::halfvec::check_dim(dim)?;
        crate::vector::check_typmod(args.int32(1), dim)?;
        let mut dense = vec![0.0f32; dim];
        for (&index, &value) in v.indices.iter().zip(v.values) {
            let slot = usize::try_from(index).ok().and_then(|i| dense.get_mut(i));
            let Some(slot) = slot else {
                return Err(SqlError::internal(format!(
                    "corrupt sparsevec value: index {index} of {dim} dimensions"
                )));
            };
            *slot = value;
        }
        crate::halfvec::datum_from_f32s(&dense)
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
        let dense = crate::vector::cast::datums_to_reals(oid, &datums)?;
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
}
