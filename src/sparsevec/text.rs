//! Text I/O: `'{1:1.5,3:2}/5'` — 1-based `index:value` pairs, then the
//! number of dimensions.
//!
//! Input follows pgvector's `sparsevec_in` step by step, so the same
//! literals are accepted and the same errors come out in the same order:
//! whitespace around every token, pairs in any order (sorted on input),
//! explicit zeros dropped, indices and the dimension read like `strtol`
//! (sign, digits, clamped to `int`). Output writes each value exactly as
//! PostgreSQL prints a `real`, so the text is byte-identical with pgvector's.

use super::{check_dim, check_element, check_index, check_typmod, too_many_elements, SparseVec};
use super::{MAX_DIM, MAX_NNZ};
use crate::error::{SqlError, SqlResult, SqlState};
use crate::fmgr::{cstring_datum, pg_fn, push_real};

/// The whitespace pgvector (and the PostgreSQL scanner) skips.
fn is_space(b: u8) -> bool {
    matches!(b, b' ' | b'\t' | b'\n' | b'\r' | 0x0b | 0x0c)
}

fn syntax_error(input: &[u8]) -> SqlError {
    SqlError::new(
        SqlState::InvalidTextRepresentation,
        format!(
            "invalid input syntax for type sparsevec: \"{}\"",
            String::from_utf8_lossy(input)
        ),
    )
}

/// A cursor over the literal.
struct Cursor<'a> {
    input: &'a [u8],
    pos: usize,
}

impl Cursor<'_> {
    fn peek(&self) -> Option<u8> {
        self.input.get(self.pos).copied()
    }

    fn skip_spaces(&mut self) {
        while self.peek().is_some_and(is_space) {
            self.pos += 1;
        }
    }

    /// Consumes `b` if it comes next.
    fn eat(&mut self, b: u8) -> bool {
        let found = self.peek() == Some(b);
        if found {
            self.pos += 1;
        }
        found
    }

    /// An integer as `strtol` reads one (leading spaces, optional sign,
    /// digits), clamped to `lo..=hi`; `None` when there are no digits.
    fn integer(&mut self, lo: i64, hi: i64) -> Option<i64> {
        self.skip_spaces();
        let start = self.pos;
        let negative = match self.peek() {
            Some(b'-') => true,
            Some(b'+') => false,
            _ => {
                return self.digits(false, lo, hi);
            }
        };
        self.pos += 1;
        let value = self.digits(negative, lo, hi);
        if value.is_none() {
            self.pos = start;
        }
        value
    }

    fn digits(&mut self, negative: bool, lo: i64, hi: i64) -> Option<i64> {
        let start = self.pos;
        let mut value: i64 = 0;
        while let Some(d) = self.peek().filter(u8::is_ascii_digit) {
            // Saturates long before i64 overflows; the clamp below makes it exact.
            value = (value * 10 + i64::from(d - b'0')).min(i64::from(u32::MAX));
            self.pos += 1;
        }
        if self.pos == start {
            return None;
        }
        Some(if negative { -value } else { value }.clamp(lo, hi))
    }

    /// The characters up to the next separator, whitespace or end.
    fn token(&mut self) -> &[u8] {
        let start = self.pos;
        while self
            .peek()
            .is_some_and(|b| !matches!(b, b',' | b'}') && !is_space(b))
        {
            self.pos += 1;
        }
        &self.input[start..self.pos]
    }
}

/// Parses the text form of a sparse vector, checking every element, the
/// indices, the dimension and the typmod.
pub fn parse(input: &[u8], typmod: i32) -> SqlResult<SparseVec> {
    // pgvector bounds the element count by the separators before parsing,
    // so an over-long literal fails the same way even if it is all zeros.
    let max_nnz = input.iter().filter(|&&b| b == b',').count() + 1;
    if max_nnz > MAX_NNZ {
        return Err(too_many_elements());
    }
    let mut elements: Vec<(i32, f32)> = Vec::with_capacity(max_nnz);
    let mut c = Cursor { input, pos: 0 };

    c.skip_spaces();
    if !c.eat(b'{') {
        return Err(syntax_error(input).with_detail("Vector contents must start with \"{\"."));
    }
    c.skip_spaces();
    if !c.eat(b'}') {
        loop {
            c.skip_spaces();
            if c.peek().is_none() {
                return Err(syntax_error(input));
            }
            // Clamped so that a huge index is reported as out of bounds.
            let index = c
                .integer(i64::from(i32::MIN) + 1, i64::from(i32::MAX))
                .ok_or_else(|| syntax_error(input))?;
            c.skip_spaces();
            if !c.eat(b':') {
                return Err(syntax_error(input));
            }
            c.skip_spaces();
            let value = parse_value(c.token(), input)?;
            // Zeros are not stored (pgvector drops them too).
            if value != 0.0 {
                // 1-based in SQL, 0-based in storage.
                elements.push(((index - 1) as i32, value));
            }
            c.skip_spaces();
            if c.eat(b',') {
                continue;
            }
            if c.eat(b'}') {
                break;
            }
            return Err(syntax_error(input));
        }
    }

    c.skip_spaces();
    if !c.eat(b'/') {
        return Err(syntax_error(input).with_detail("Unexpected end of input."));
    }
    let dim = c
        .integer(i64::from(i32::MIN), i64::from(i32::MAX))
        .ok_or_else(|| syntax_error(input))? as i32;
    c.skip_spaces();
    if c.peek().is_some() {
        return Err(syntax_error(input).with_detail("Junk after closing."));
    }
    check_dim(dim)?;
    check_typmod(typmod, dim)?;

    // Pairs may come in any order; duplicates are caught once sorted.
    elements.sort_by_key(|&(index, _)| index);
    let (indices, values): (Vec<i32>, Vec<f32>) = elements.into_iter().unzip();
    for i in 0..indices.len() {
        check_index(&indices, i, dim)?;
    }
    Ok(SparseVec {
        dim,
        indices,
        values,
    })
}

/// Parses one value, rejecting what `real` input rejects (syntax, overflow,
/// underflow to zero) and what a sparsevec cannot hold (NaN, infinities).
fn parse_value(token: &[u8], input: &[u8]) -> SqlResult<f32> {
    let text = std::str::from_utf8(token).map_err(|_| syntax_error(input))?;
    // Rust's parser is correctly rounded, as strtof is; it rejects hex
    // floats, which vdb's vector text rejects too.
    let value: f32 = text.parse().map_err(|_| syntax_error(input))?;
    let spelled_infinite = text.trim_start_matches(['+', '-']).starts_with(['i', 'I']);
    let overflowed = value.is_infinite() && !spelled_infinite;
    let underflowed = value == 0.0 && has_nonzero_digit(text);
    if overflowed || underflowed {
        return Err(SqlError::out_of_range(format!(
            "\"{text}\" is out of range for type sparsevec"
        )));
    }
    check_element(value)?;
    Ok(value)
}

/// Whether the mantissa of a decimal literal has a digit other than zero.
fn has_nonzero_digit(text: &str) -> bool {
    let mantissa = text.split(['e', 'E']).next().unwrap_or("");
    mantissa.bytes().any(|b| (b'1'..=b'9').contains(&b))
}

/// Formats a sparse vector as `{i:x,...}/dim` with 1-based indices, each
/// value as PostgreSQL prints a `real` (byte-identical with pgvector).
pub fn format(dim: i32, indices: &[i32], values: &[f32]) -> String {
    let mut out = Vec::with_capacity(indices.len() * 24 + 16);
    out.push(b'{');
    for (i, (&index, &x)) in indices.iter().zip(values).enumerate() {
        if i > 0 {
            out.push(b',');
        }
        out.extend_from_slice((i64::from(index) + 1).to_string().as_bytes());
        out.push(b':');
        push_real(&mut out, x);
    }
    out.extend_from_slice(b"}/");
    out.extend_from_slice(dim.to_string().as_bytes());
    // Digits, signs, '.', 'e', and the punctuation above only.
    String::from_utf8_lossy(&out).into_owned()
}

pg_fn! {
    /// `sparsevec_in(cstring, oid, integer)`
    fn vdb_sparsevec_in(args) {
        Ok(parse(args.cstring(0).to_bytes(), args.int32(2))?.into_datum())
    }
}

pg_fn! {
    /// `sparsevec_out(sparsevec)`
    fn vdb_sparsevec_out(args) {
        let v = super::arg(&args, 0)?;
        Ok(cstring_datum(&format(v.dim, v.indices, v.values)))
    }
}

pg_fn! {
    /// `sparsevec_typmod_in(cstring[])`
    fn vdb_sparsevec_typmod_in(args) {
        let typmods = args.integer_typmods(0);
        Ok(pgrx::pg_sys::Datum::from(typmod_from_list(&typmods)?))
    }
}

/// Validates the `(n)` of `sparsevec(n)`.
pub fn typmod_from_list(typmods: &[i32]) -> SqlResult<i32> {
    let [n] = typmods else {
        return Err(SqlError::invalid_parameter("invalid type modifier"));
    };
    if *n < 1 {
        return Err(SqlError::invalid_parameter(
            "dimensions for type sparsevec must be at least 1",
        ));
    }
    if *n > MAX_DIM {
        return Err(SqlError::invalid_parameter(format!(
            "dimensions for type sparsevec cannot exceed {MAX_DIM}"
        )));
    }
    Ok(*n)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ok(s: &str) -> SparseVec {
        parse(s.as_bytes(), -1).unwrap_or_else(|e| panic!("{s}: {e}"))
    }

    fn err(s: &str) -> SqlError {
        parse(s.as_bytes(), -1).expect_err(s)
    }

    fn sv(dim: i32, pairs: &[(i32, f32)]) -> SparseVec {
        SparseVec {
            dim,
            indices: pairs.iter().map(|p| p.0).collect(),
            values: pairs.iter().map(|p| p.1).collect(),
        }
    }

    #[test]
    fn parses_pgvector_literals() {
        assert_eq!(ok("{1:1.5,3:3.5}/5"), sv(5, &[(0, 1.5), (2, 3.5)]));
        assert_eq!(ok("{1:2.,3:4.}/5"), sv(5, &[(0, 2.0), (2, 4.0)]));
        assert_eq!(
            ok(" { 1 : 1.5 ,  3  :  3.5  } / 5 "),
            sv(5, &[(0, 1.5), (2, 3.5)])
        );
        assert_eq!(ok("\t{\n1:+.5}\r/\x0b+7\x0c"), sv(7, &[(0, 0.5)]));
        assert_eq!(ok("{}/1"), sv(1, &[]));
        assert_eq!(ok("{ }/1000000000"), sv(1_000_000_000, &[]));
        // Zeros are dropped, pairs are sorted.
        assert_eq!(ok("{1:0,2:1,3:-0}/3"), sv(3, &[(1, 1.0)]));
        assert_eq!(ok("{2:1,1:-1}/2"), sv(2, &[(0, -1.0), (1, 1.0)]));
        assert_eq!(ok("{1:1.4e-45}/1"), sv(1, &[(0, 1.4e-45)]));
        assert_eq!(ok("{1:0e-50}/1"), sv(1, &[]));
    }

    #[test]
    fn rejects_malformed_text() {
        for s in [
            "",
            "{",
            "{ ",
            "{:",
            "{,",
            "{}",
            "{}/",
            "{}/1a",
            "{:}/1",
            "{,}/1",
            "{1,}/1",
            "{:1}/1",
            "{1:}/1",
            "{1a:1}/1",
            "{1:1a}/1",
            "{1:1,}/1",
            "{1:hello,2:1}/2",
            "[1,2]",
            "{1:1}",
            "{1:1}/5x",
            "{1:1} 5",
            "{1 2:1}/5",
            "{1:1 2}/5",
            "{}/+",
            "{}/-",
            "{--1:1}/2",
            "{1:0x1p3}/2",
            "{1::1}/2",
            "{1:1}}/2",
            "{1:1}/2/3",
        ] {
            assert_eq!(
                err(s).state,
                SqlState::InvalidTextRepresentation,
                "{s:?}: {}",
                err(s)
            );
        }
        let e = err("");
        assert_eq!(e.message, "invalid input syntax for type sparsevec: \"\"");
        assert_eq!(
            e.detail.as_deref(),
            Some("Vector contents must start with \"{\".")
        );
        assert_eq!(
            err("{}").detail.as_deref(),
            Some("Unexpected end of input.")
        );
        assert_eq!(err("{}/1a").detail.as_deref(), Some("Junk after closing."));
        assert_eq!(err("{}/").detail, None);
        assert_eq!(err("{1:1a}/1").detail, None);
    }

    #[test]
    fn rejects_bad_values() {
        assert_eq!(err("{1:NaN,2:1}/2").message, "NaN not allowed in sparsevec");
        assert_eq!(
            err("{1:Infinity,2:1}/2").message,
            "infinite value not allowed in sparsevec"
        );
        assert_eq!(
            err("{1:-inf}/2").message,
            "infinite value not allowed in sparsevec"
        );
        for (s, token) in [
            ("{1:4e38,2:1}/2", "4e38"),
            ("{1:-4e38,2:1}/2", "-4e38"),
            ("{1:1e-46,2:1}/2", "1e-46"),
            ("{1:-1e-46,2:1}/2", "-1e-46"),
        ] {
            let e = err(s);
            assert_eq!(e.state, SqlState::NumericValueOutOfRange);
            assert_eq!(
                e.message,
                format!("\"{token}\" is out of range for type sparsevec")
            );
        }
    }

    #[test]
    fn checks_indices_and_dimensions() {
        let dup = "sparsevec indices must not contain duplicates";
        assert_eq!(err("{1:1,1:1}/2").message, dup);
        assert_eq!(err("{1:1,2:1,1:1}/2").message, dup);
        let oob = "sparsevec index out of bounds";
        for s in [
            "{0:1}/1",
            "{2:1}/1",
            "{2147483647:1}/1",
            "{2147483648:1}/1",
            "{-2147483648:1}/1",
            "{-2147483649:1}/1",
            "{99999999999999999999999:1}/1",
        ] {
            assert_eq!(err(s).message, oob, "{s}");
        }
        // A zero at a bad index is dropped before the index is checked.
        assert_eq!(ok("{9:0}/1"), sv(1, &[]));
        let few = "sparsevec must have at least 1 dimension";
        for s in ["{}/0", "{}/-1", "{}/-2147483649", "{}/-9223372036854775809"] {
            assert_eq!(err(s).message, few, "{s}");
        }
        let many = "sparsevec cannot have more than 1000000000 dimensions";
        for s in ["{}/1000000001", "{}/2147483648", "{}/9223372036854775808"] {
            let e = err(s);
            assert_eq!(e.message, many, "{s}");
            assert_eq!(e.state, SqlState::ProgramLimitExceeded);
        }
        let e = parse(b"{}/3", 2).unwrap_err();
        assert_eq!(e.message, "expected 2 dimensions, not 3");
        assert!(parse(b"{}/3", 3).is_ok());
    }

    #[test]
    fn limits_non_zero_elements() {
        let pairs = |n: usize, value: &str| {
            let body: Vec<String> = (1..=n).map(|i| format!("{i}:{value}")).collect();
            format!("{{{}}}/{}", body.join(","), n)
        };
        assert_eq!(ok(&pairs(MAX_NNZ, "1")).indices.len(), MAX_NNZ);
        let e = err(&pairs(MAX_NNZ + 1, "1"));
        assert_eq!(e.state, SqlState::ProgramLimitExceeded);
        assert_eq!(
            e.message,
            "sparsevec cannot have more than 16000 non-zero elements"
        );
        // Counted by separators, as pgvector does, even when all are zeros.
        assert_eq!(err(&pairs(MAX_NNZ + 1, "0")).message, e.message);
    }

    #[test]
    fn typmod_list() {
        assert_eq!(typmod_from_list(&[3]), Ok(3));
        assert_eq!(
            typmod_from_list(&[3, 2]).unwrap_err().message,
            "invalid type modifier"
        );
        assert!(typmod_from_list(&[]).is_err());
        assert_eq!(
            typmod_from_list(&[0]).unwrap_err().message,
            "dimensions for type sparsevec must be at least 1"
        );
        assert_eq!(
            typmod_from_list(&[1_000_000_001]).unwrap_err().message,
            "dimensions for type sparsevec cannot exceed 1000000000"
        );
        assert_eq!(typmod_from_list(&[1_000_000_000]), Ok(1_000_000_000));
    }
}
