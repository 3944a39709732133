//! Binary I/O (`COPY ... (FORMAT binary)`, binary protocol parameters).
//!
//! The wire format is pgvector's: `int16 dim`, `int16 unused` (0), then
//! `dim` big-endian `float4`s. Clients that speak pgvector's binary format
//! (pgvector-python, pgvector-go, ...) work unchanged.

use super::{check_dim, check_element, check_typmod};
use crate::error::{SqlError, SqlResult, SqlState};
use crate::fmgr::{bytea_datum, pg_fn, NewVector};

/// The binary form of a dense vector type: `int16 dim`, `int16 unused`
/// (0), then `dim` elements of `element` bytes each.
pub(crate) struct Format {
    pub(crate) name: &'static str,
    pub(crate) element: usize,
    pub(crate) check_dim: fn(usize) -> SqlResult<()>,
}

const VECTOR: Format = Format {
    name: "vector",
    element: 4,
    check_dim,
};

/// Decodes the binary form, checking the header against the data length.
#[cfg(test)]
fn decode(bytes: &[u8], typmod: i32) -> SqlResult<Vec<f32>> {
    let body = checked_body(bytes, typmod, &VECTOR)?;
    let mut out = vec![0.0; body.len() / 4];
    decode_into(body, &mut out)?;
    Ok(out)
}

/// Checks the header of the binary form of a `format` value; returns the
/// elements' bytes.
pub(crate) fn checked_body<'b>(
    bytes: &'b [u8],
    typmod: i32,
    format: &Format,
) -> SqlResult<&'b [u8]> {
    let name = format.name;
    let Some((header, body)) = bytes.split_first_chunk::<4>() else {
        return Err(invalid(
            name,
            format!("{} bytes is too short for a {name} header", bytes.len()),
        ));
    };
    let dim = i16::from_be_bytes([header[0], header[1]]);
    let unused = i16::from_be_bytes([header[2], header[3]]);
    let dim =
        usize::try_from(dim).map_err(|_| SqlError::data(format!("invalid dimension {dim}")))?;
    (format.check_dim)(dim)?;
    check_typmod(typmod, dim)?;
    if unused != 0 {
        return Err(SqlError::data(format!(
            "expected unused to be 0, not {unused}"
        )));
    }
    let size = format.element * dim;
    if body.len() != size {
        return Err(invalid(
            name,
            format!(
                "{name} header says {dim} dimensions ({size} bytes) but {} bytes follow",
                body.len()
            ),
        ));
    }
    Ok(body)
}

/// Decodes checked elements' bytes into `out` (as long as they say).
fn decode_into(body: &[u8], out: &mut [f32]) -> SqlResult<()> {
    for (slot, c) in out.iter_mut().zip(body.chunks_exact(4)) {
        let x = f32::from_be_bytes([c[0], c[1], c[2], c[3]]);
        check_element(x)?;
        *slot = x;
    }
    Ok(())
}

fn invalid(name: &str, detail: String) -> SqlError {
    SqlError::new(
        SqlState::InvalidBinaryRepresentation,
        format!("invalid binary data for type {name}"),
    )
    .with_detail(detail)
}

/// Encodes a vector in the binary form.
pub fn encode(values: &[f32]) -> Vec<u8> {
    let mut out = Vec::with_capacity(4 + 4 * values.len());
    out.extend_from_slice(&(values.len() as i16).to_be_bytes());
    out.extend_from_slice(&0i16.to_be_bytes());
    for x in values {
        out.extend_from_slice(&x.to_be_bytes());
    }
    out
}

pg_fn! {
    /// `vector_recv(internal, oid, integer)`
    fn vdb_vector_recv(args) {
        let buf = args.string_info(0);
        let start = usize::try_from(buf.cursor).unwrap_or(0);
        let len = usize::try_from(buf.len).unwrap_or(0);
        // SAFETY: a StringInfo's `data` holds `len` readable bytes.
        let bytes = unsafe { std::slice::from_raw_parts(buf.data.cast::<u8>(), len) };
        let body = checked_body(bytes.get(start..).unwrap_or_default(), args.int32(2), &VECTOR)?;
        // Straight into the new vector: no intermediate copy.
        let mut vector = NewVector::zeroed(body.len() / 4);
        decode_into(body, vector.values_mut())?;
        // The whole message is ours: mark it consumed, as pq_getmsg* would.
        buf.cursor = buf.len;
        Ok(vector.into_datum())
    }
}

pg_fn! {
    /// `vector_send(vector)`
    fn vdb_vector_send(args) {
        Ok(bytea_datum(&encode(args.vector(0)?)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips() {
        let v = vec![1.0, -2.5, 3.25e-20];
        assert_eq!(decode(&encode(&v), -1), Ok(v.clone()));
        assert_eq!(decode(&encode(&v), 3), Ok(v));
    }

    #[test]
    fn rejects_bad_headers_and_lengths() {
        assert_eq!(
            decode(&[0, 1], -1).unwrap_err().state,
            SqlState::InvalidBinaryRepresentation
        );
        let mut short = encode(&[1.0, 2.0]);
        short.truncate(short.len() - 1);
        assert_eq!(
            decode(&short, -1).unwrap_err().state,
            SqlState::InvalidBinaryRepresentation
        );
        let mut long = encode(&[1.0, 2.0]);
        long.push(0);
        assert_eq!(
            decode(&long, -1).unwrap_err().state,
            SqlState::InvalidBinaryRepresentation
        );
        let mut unused = encode(&[1.0]);
        unused[3] = 1;
        assert_eq!(
            decode(&unused, -1).unwrap_err().message,
            "expected unused to be 0, not 1"
        );
        assert_eq!(
            decode(&encode(&[1.0, 2.0]), 3).unwrap_err().message,
            "expected 3 dimensions, not 2"
        );
        assert_eq!(
            decode(&[0, 0, 0, 0], -1).unwrap_err().state,
            SqlState::DataException
        );
        assert_eq!(
            decode(&[0xff, 0xff, 0, 0], -1).unwrap_err().state,
            SqlState::DataException
        );
    }

    #[test]
    fn rejects_non_finite() {
        let nan = encode(&[f32::NAN]);
        assert_eq!(
            decode(&nan, -1).unwrap_err().message,
            "NaN not allowed in vector"
        );
        let inf = encode(&[1.0, f32::INFINITY]);
        assert_eq!(
            decode(&inf, -1).unwrap_err().message,
            "infinite value not allowed in vector"
        );
    }

    proptest::proptest! {
        #[test]
        fn binary_round_trips_exactly(values in proptest::collection::vec(-1e30f32..1e30, 1..64)) {
            proptest::prop_assert_eq!(decode(&encode(&values), -1).expect("decodes"), values);
        }
    }
}
