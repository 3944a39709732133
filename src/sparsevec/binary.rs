//! Binary I/O (`COPY ... (FORMAT binary)`, binary protocol parameters).
//!
//! The wire format is pgvector's: big-endian `int32 dim`, `int32 nnz`,
//! `int32 unused` (0), then `nnz` 0-based `int32` indices and `nnz`
//! `float4` values. Input is checked as pgvector checks it (dimension,
//! count, typmod, indices strictly rising and in range, values finite and
//! non-zero), and its length must match the header exactly.

use super::{check_dim, check_element, check_index, check_nnz, check_typmod, SparseVec};
use crate::error::{SqlError, SqlResult, SqlState};
use crate::fmgr::{bytea_datum, pg_fn};

/// Bytes of the header: `dim`, `nnz`, `unused`.
const WIRE_HEADER: usize = 12;

fn invalid(detail: String) -> SqlError {
    SqlError::new(
        SqlState::InvalidBinaryRepresentation,
        "invalid binary data for type sparsevec",
    )
    .with_detail(detail)
}

fn be_i32(bytes: &[u8]) -> i32 {
    let mut word = [0u8; 4];
    word.copy_from_slice(&bytes[..4]);
    i32::from_be_bytes(word)
}

/// Decodes and validates the binary form.
pub fn decode(bytes: &[u8], typmod: i32) -> SqlResult<SparseVec> {
    let Some((header, body)) = bytes.split_first_chunk::<WIRE_HEADER>() else {
        return Err(invalid(format!(
            "{} bytes is too short for a sparsevec header",
            bytes.len()
        )));
    };
    let (dim, nnz, unused) = (
        be_i32(&header[0..]),
        be_i32(&header[4..]),
        be_i32(&header[8..]),
    );
    check_dim(dim)?;
    check_nnz(i64::from(nnz), dim)?;
    check_typmod(typmod, dim)?;
    if unused != 0 {
        return Err(SqlError::data(format!(
            "expected unused to be 0, not {unused}"
        )));
    }
    // check_nnz bounds nnz to 0..=MAX_NNZ, so this cannot overflow.
    let n = nnz as usize;
    if body.len() != 8 * n {
        return Err(invalid(format!(
            "sparsevec header says {n} elements ({} bytes) but {} bytes follow",
            8 * n,
            body.len()
        )));
    }
    let (index_bytes, value_bytes) = body.split_at(4 * n);
    let indices: Vec<i32> = index_bytes.chunks_exact(4).map(be_i32).collect();
    for i in 0..n {
        check_index(&indices, i, dim)?;
    }
    let mut values = Vec::with_capacity(n);
    for chunk in value_bytes.chunks_exact(4) {
        let x = f32::from_bits(be_i32(chunk) as u32);
        check_element(x)?;
        if x == 0.0 {
            return Err(SqlError::data(
                "binary representation of sparsevec cannot contain zero values",
            ));
        }
        values.push(x);
    }
    Ok(SparseVec {
        dim,
        indices,
        values,
    })
}

/// Encodes a sparse vector in the binary form.
pub fn encode(dim: i32, indices: &[i32], values: &[f32]) -> Vec<u8> {
    let mut out = Vec::with_capacity(WIRE_HEADER + 8 * indices.len());
    out.extend_from_slice(&dim.to_be_bytes());
    out.extend_from_slice(&(indices.len() as i32).to_be_bytes());
    out.extend_from_slice(&0i32.to_be_bytes());
    for index in indices {
        out.extend_from_slice(&index.to_be_bytes());
    }
    for x in values {
        out.extend_from_slice(&x.to_be_bytes());
    }
    out
}

pg_fn! {
    /// `sparsevec_recv(internal, oid, integer)`
    fn vdb_sparsevec_recv(args) {
        let buf = args.string_info(0);
        let start = usize::try_from(buf.cursor).unwrap_or(0);
        let len = usize::try_from(buf.len).unwrap_or(0);
        // SAFETY: a StringInfo's `data` holds `len` readable bytes.
        let bytes = unsafe { std::slice::from_raw_parts(buf.data.cast::<u8>(), len) };
        let value = decode(bytes.get(start..).unwrap_or_default(), args.int32(2))?;
        // The whole message is ours: mark it consumed, as pq_getmsg* would.
        buf.cursor = buf.len;
        Ok(value.into_datum())
    }
}

pg_fn! {
    /// `sparsevec_send(sparsevec)`
    fn vdb_sparsevec_send(args) {
        let v = super::arg(&args, 0)?;
        Ok(bytea_datum(&encode(v.dim, v.indices, v.values)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn raw(dim: i32, nnz: i32, unused: i32, indices: &[i32], values: &[f32]) -> Vec<u8> {
        let mut out = encode(dim, indices, values);
        out[4..8].copy_from_slice(&nnz.to_be_bytes());
        out[8..12].copy_from_slice(&unused.to_be_bytes());
        out
    }

    fn message(bytes: &[u8], typmod: i32) -> String {
        decode(bytes, typmod).unwrap_err().message
    }

    #[test]
    fn round_trips() {
        let v = SparseVec {
            dim: 10,
            indices: vec![0, 3, 9],
            values: vec![1.5, -2.0, 3.25e-20],
        };
        let bytes = encode(v.dim, &v.indices, &v.values);
        assert_eq!(&bytes[..12], &[0, 0, 0, 10, 0, 0, 0, 3, 0, 0, 0, 0]);
        assert_eq!(decode(&bytes, -1), Ok(v.clone()));
        assert_eq!(decode(&bytes, 10), Ok(v));
        let empty = encode(1_000_000_000, &[], &[]);
        assert_eq!(decode(&empty, -1).map(|v| v.indices.len()), Ok(0));
    }

    #[test]
    fn rejects_bad_headers_and_lengths() {
        let short = decode(&[0, 0, 0, 1, 0, 0, 0], -1).unwrap_err();
        assert_eq!(short.state, SqlState::InvalidBinaryRepresentation);
        assert_eq!(short.message, "invalid binary data for type sparsevec");
        let mut truncated = encode(5, &[1], &[1.0]);
        truncated.pop();
        assert_eq!(
            decode(&truncated, -1).unwrap_err().state,
            SqlState::InvalidBinaryRepresentation
        );
        let mut long = encode(5, &[1], &[1.0]);
        long.push(0);
        assert_eq!(
            decode(&long, -1).unwrap_err().state,
            SqlState::InvalidBinaryRepresentation
        );
        assert_eq!(
            message(&raw(0, 0, 0, &[], &[]), -1),
            "sparsevec must have at least 1 dimension"
        );
        assert_eq!(
            message(&raw(1_000_000_001, 0, 0, &[], &[]), -1),
            "sparsevec cannot have more than 1000000000 dimensions"
        );
        assert_eq!(
            message(&raw(5, -1, 0, &[], &[]), -1),
            "sparsevec cannot have negative number of elements"
        );
        assert_eq!(
            message(&raw(5, 16_001, 0, &[], &[]), -1),
            "sparsevec cannot have more than 16000 non-zero elements"
        );
        assert_eq!(
            message(&raw(2, 3, 0, &[0, 1, 2], &[1.0, 1.0, 1.0]), -1),
            "sparsevec cannot have more elements than dimensions"
        );
        assert_eq!(
            message(&encode(5, &[1], &[1.0]), 4),
            "expected 4 dimensions, not 5"
        );
        assert_eq!(
            message(&raw(5, 1, 7, &[1], &[1.0]), -1),
            "expected unused to be 0, not 7"
        );
    }

    #[test]
    fn rejects_bad_indices_and_values() {
        assert_eq!(
            message(&encode(5, &[5], &[1.0]), -1),
            "sparsevec index out of bounds"
        );
        assert_eq!(
            message(&encode(5, &[-1], &[1.0]), -1),
            "sparsevec index out of bounds"
        );
        assert_eq!(
            message(&encode(5, &[2, 1], &[1.0, 1.0]), -1),
            "sparsevec indices must be in ascending order"
        );
        assert_eq!(
            message(&encode(5, &[1, 1], &[1.0, 1.0]), -1),
            "sparsevec indices must not contain duplicates"
        );
        assert_eq!(
            message(&encode(5, &[1], &[f32::NAN]), -1),
            "NaN not allowed in sparsevec"
        );
        assert_eq!(
            message(&encode(5, &[1], &[f32::INFINITY]), -1),
            "infinite value not allowed in sparsevec"
        );
        for zero in [0.0, -0.0] {
            assert_eq!(
                message(&encode(5, &[1, 2], &[1.0, zero]), -1),
                "binary representation of sparsevec cannot contain zero values"
            );
        }
    }

    proptest::proptest! {
        #[test]
        fn binary_round_trips_exactly(
            pairs in proptest::collection::btree_map(0i32..1000, -1e30f32..1e30, 0..64)
        ) {
            let v = SparseVec {
                dim: 1000,
                indices: pairs.keys().copied().collect(),
                values: pairs.values().map(|&x| if x == 0.0 { 1.0 } else { x }).collect(),
            };
            let bytes = encode(v.dim, &v.indices, &v.values);
            proptest::prop_assert_eq!(decode(&bytes, -1).expect("decodes"), v);
        }
    }
}
