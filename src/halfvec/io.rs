//! Text and binary I/O of `halfvec`: `'[1,2.5,-3]'` and pgvector's wire
//! format (`int16 dim`, `int16 unused` = 0, then each half's 16 bits,
//! big-endian).
//!
//! As in pgvector, a number too large for a half is an error, and one too
//! small for it becomes zero (halves have no "underflow" error).

use super::{check_dim, check_element, to_f32s, MAX_DIM};
use crate::error::{SqlError, SqlResult};
use crate::fmgr::{bytea_datum, cstring_datum, pg_fn};
use crate::vector::binary::{checked_body, Format};
use crate::vector::check_typmod;
use crate::vector::text::{format, parse_list, parse_real, spells_infinity, typmod_from_list};
use vdb_core::distance::half;

/// Parses the text form of a halfvec, checking each element and the typmod.
pub fn parse(input: &[u8], typmod: i32) -> SqlResult<Vec<u16>> {
    let halves = parse_list(input, "halfvec", |token| {
        let Some(x) = parse_real(token) else {
            return Ok(None);
        };
        let h = half::from_f32(x);
        if half::is_infinite(h) && !spells_infinity(token) {
            return Err(SqlError::out_of_range(format!(
                "\"{token}\" is out of range for type halfvec"
            )));
        }
        check_element(h)?;
        Ok(Some(h))
    })?;
    check_dim(halves.len())?;
    check_typmod(typmod, halves.len())?;
    Ok(halves)
}

const HALFVEC: Format = Format {
    name: "halfvec",
    element: 2,
    check_dim,
};

/// Decodes the binary form.
pub fn decode(bytes: &[u8], typmod: i32) -> SqlResult<Vec<u16>> {
    checked_body(bytes, typmod, &HALFVEC)?
        .chunks_exact(2)
        .map(|c| {
            let h = u16::from_be_bytes([c[0], c[1]]);
            check_element(h)?;
            Ok(h)
        })
        .collect()
}

/// Encodes a halfvec in the binary form.
pub fn encode(halves: &[u16]) -> Vec<u8> {
    let mut out = Vec::with_capacity(4 + 2 * halves.len());
    out.extend_from_slice(&(halves.len() as i16).to_be_bytes());
    out.extend_from_slice(&0i16.to_be_bytes());
    for h in halves {
        out.extend_from_slice(&h.to_be_bytes());
    }
    out
}

pg_fn! {
    /// `halfvec_in(cstring, oid, integer)`
    fn vdb_halfvec_in(args) {
        Ok(super::datum_of(&parse(args.cstring(0).to_bytes(), args.int32(2))?))
    }
}

pg_fn! {
    /// `halfvec_out(halfvec)`: each element as PostgreSQL prints a `real`.
    fn vdb_halfvec_out(args) {
        Ok(cstring_datum(&format(&to_f32s(super::arg(&args, 0)?))))
    }
}

pg_fn! {
    /// `halfvec_typmod_in(cstring[])`
    fn vdb_halfvec_typmod_in(args) {
        let typmods = args.integer_typmods(0);
        debug_assert_eq!(MAX_DIM, crate::vector::MAX_DIM);
        Ok(pgrx::pg_sys::Datum::from(typmod_from_list(&typmods, "halfvec")?))
    }
}

pg_fn! {
    /// `halfvec_recv(internal, oid, integer)`
    fn vdb_halfvec_recv(args) {
        let buf = args.string_info(0);
        let start = usize::try_from(buf.cursor).unwrap_or(0);
        let len = usize::try_from(buf.len).unwrap_or(0);
        // SAFETY: a StringInfo's `data` holds `len` readable bytes.
        let bytes = unsafe { std::slice::from_raw_parts(buf.data.cast::<u8>(), len) };
        let halves = decode(bytes.get(start..).unwrap_or_default(), args.int32(2))?;
        buf.cursor = buf.len;
        Ok(super::datum_of(&halves))
    }
}

pg_fn! {
    /// `halfvec_send(halfvec)`
    fn vdb_halfvec_send(args) {
        Ok(bytea_datum(&encode(super::arg(&args, 0)?)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::SqlState;

    fn value(s: &str) -> Vec<f32> {
        to_f32s(&parse(s.as_bytes(), -1).unwrap_or_else(|e| panic!("{s}: {e}")))
    }

    #[test]
    fn text_rounds_to_half_and_checks_range() {
        assert_eq!(value("[1, 2.5, -3]"), vec![1.0, 2.5, -3.0]);
        assert_eq!(value("[0.1]"), vec![half::to_f32(half::from_f32(0.1))]);
        assert_eq!(value("[1e-10, 65504]"), vec![0.0, 65_504.0]);
        let e = parse(b"[65520]", -1).unwrap_err();
        assert_eq!(e.message, "\"65520\" is out of range for type halfvec");
        let e = parse(b"[1e39]", -1).unwrap_err();
        assert_eq!(e.state, SqlState::NumericValueOutOfRange);
        assert_eq!(
            parse(b"[inf]", -1).unwrap_err().message,
            "infinite value not allowed in halfvec"
        );
        assert_eq!(
            parse(b"[nan]", -1).unwrap_err().message,
            "NaN not allowed in halfvec"
        );
        assert_eq!(
            parse(b"[1,", -1).unwrap_err().message,
            "invalid input syntax for type halfvec: \"[1,\""
        );
        assert_eq!(
            parse(b"[]", -1).unwrap_err().message,
            "halfvec must have at least 1 dimension"
        );
        assert_eq!(
            parse(b"[1,2]", 3).unwrap_err().message,
            "expected 3 dimensions, not 2"
        );
    }

    #[test]
    fn binary_round_trips_and_checks() {
        let halves = parse(b"[1,-2.5,0.000061035156]", -1).expect("valid");
        assert_eq!(decode(&encode(&halves), -1), Ok(halves.clone()));
        let mut bad = encode(&halves);
        bad[4..6].copy_from_slice(&0x7c00u16.to_be_bytes());
        assert_eq!(
            decode(&bad, -1).unwrap_err().message,
            "infinite value not allowed in halfvec"
        );
        assert_eq!(
            decode(&encode(&halves)[..7], -1).unwrap_err().state,
            SqlState::InvalidBinaryRepresentation
        );
        let mut unused = encode(&halves);
        unused[3] = 1;
        assert_eq!(
            decode(&unused, -1).unwrap_err().message,
            "expected unused to be 0, not 1"
        );
    }
}
