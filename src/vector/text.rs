//! Text I/O: `'[1,2.5,-3e-2]'`.
//!
//! Input accepts whitespace around numbers and brackets, like pgvector.
//! Output writes each element exactly as PostgreSQL's `real` output does
//! (shortest round-trip decimal, `1e-05`, `1.234567e+06`), so the text is
//! byte-identical with pgvector's and `v::text::vector = v` always holds.

use super::{check_dim, check_element, check_typmod, MAX_DIM};
use crate::error::{SqlError, SqlResult, SqlState};
use crate::fmgr::{cstring_datum, pg_fn, push_real, NewVector};

/// The whitespace pgvector (and the PostgreSQL scanner) skips.
fn is_space(b: u8) -> bool {
    matches!(b, b' ' | b'\t' | b'\n' | b'\r' | 0x0b | 0x0c)
}

fn syntax_error(input: &[u8], type_name: &str) -> SqlError {
    SqlError::new(
        SqlState::InvalidTextRepresentation,
        format!(
            "invalid input syntax for type {type_name}: \"{}\"",
            String::from_utf8_lossy(input)
        ),
    )
}

/// Parses the text form of a vector, checking each element and the typmod.
pub fn parse(input: &[u8], typmod: i32) -> SqlResult<Vec<f32>> {
    let values = parse_list(input, "vector", parse_element)?;
    check_dim(values.len())?;
    check_typmod(typmod, values.len())?;
    Ok(values)
}

/// Parses `[x0, x1, ...]` for a vector type named `type_name` (in its
/// errors), each element with `element`, which returns `None` for a token
/// that is no number. At most [`MAX_DIM`] elements.
pub(crate) fn parse_list<T>(
    input: &[u8],
    type_name: &str,
    mut element: impl FnMut(&str) -> SqlResult<Option<T>>,
) -> SqlResult<Vec<T>> {
    let syntax_error = |input: &[u8]| syntax_error(input, type_name);
    let mut pos = 0;
    let skip_spaces = |pos: &mut usize| {
        while input.get(*pos).copied().is_some_and(is_space) {
            *pos += 1;
        }
    };

    skip_spaces(&mut pos);
    if input.get(pos) != Some(&b'[') {
        return Err(syntax_error(input).with_detail("Vector contents must start with \"[\"."));
    }
    pos += 1;
    skip_spaces(&mut pos);
    if input.get(pos) == Some(&b']') {
        return Err(SqlError::data(format!(
            "{type_name} must have at least 1 dimension"
        )));
    }

    // One allocation: as many elements as separators allow.
    let commas = input.iter().filter(|&&b| b == b',').count();
    let mut values = Vec::with_capacity((commas + 1).min(MAX_DIM));
    loop {
        if values.len() == MAX_DIM {
            return Err(SqlError::new(
                SqlState::ProgramLimitExceeded,
                format!("{type_name} cannot have more than {MAX_DIM} dimensions"),
            ));
        }
        skip_spaces(&mut pos);
        let start = pos;
        while input
            .get(pos)
            .is_some_and(|&b| b != b',' && b != b']' && !is_space(b))
        {
            pos += 1;
        }
        let token = std::str::from_utf8(&input[start..pos]).map_err(|_| syntax_error(input))?;
        values.push(element(token)?.ok_or_else(|| syntax_error(input))?);

        skip_spaces(&mut pos);
        match input.get(pos) {
            Some(b',') => pos += 1,
            Some(b']') => {
                pos += 1;
                break;
            }
            _ => return Err(syntax_error(input)),
        }
    }

    skip_spaces(&mut pos);
    if pos != input.len() {
        return Err(syntax_error(input).with_detail("Junk after closing right brace."));
    }
    Ok(values)
}

/// Parses one number, rejecting what `real` input rejects (syntax, overflow,
/// underflow to zero) and what a vector cannot hold (NaN, infinities).
fn parse_element(text: &str) -> SqlResult<Option<f32>> {
    let Some(value) = parse_real(text) else {
        return Ok(None);
    };
    if value.is_infinite() && !spells_infinity(text) {
        return Err(SqlError::out_of_range(format!(
            "\"{text}\" is out of range for type vector"
        )));
    }
    if value == 0.0 && has_nonzero_digit(text) {
        return Err(SqlError::out_of_range(format!(
            "\"{text}\" is out of range for type vector"
        )));
    }
    check_element(value)?;
    Ok(Some(value))
}

/// A number as `strtof` reads it (correctly rounded), or `None`. Rust's
/// parser rejects hex floats and underscores, both of which would be
/// unusual in a vector literal.
pub(crate) fn parse_real(text: &str) -> Option<f32> {
    text.parse().ok()
}

/// Whether `text` spells an infinity (`inf`, `-Infinity`, ...), as opposed
/// to a finite number too large for its type.
pub(crate) fn spells_infinity(text: &str) -> bool {
    text.trim_start_matches(['+', '-']).starts_with(['i', 'I'])
}

/// Whether the mantissa of a decimal literal has a digit other than zero.
fn has_nonzero_digit(text: &str) -> bool {
    let mantissa = text.split(['e', 'E']).next().unwrap_or("");
    mantissa.bytes().any(|b| (b'1'..=b'9').contains(&b))
}

/// Formats a vector as `[x0,x1,...]`, each element as PostgreSQL prints a
/// `real` (so output is byte-identical with pgvector's).
pub fn format(values: &[f32]) -> String {
    let mut out = Vec::with_capacity(values.len() * 12 + 2);
    out.push(b'[');
    for (i, &x) in values.iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        push_real(&mut out, x);
    }
    out.push(b']');
    // Digits, signs, '.', 'e', ',' and brackets only.
    String::from_utf8_lossy(&out).into_owned()
}

pg_fn! {
    /// `vector_in(cstring, oid, integer)`
    fn vdb_vector_in(args) {
        let values = parse(args.cstring(0).to_bytes(), args.int32(2))?;
        Ok(NewVector::from_slice(&values).into_datum())
    }
}

pg_fn! {
    /// `vector_out(vector)`
    fn vdb_vector_out(args) {
        Ok(cstring_datum(&format(args.vector(0)?)))
    }
}

pg_fn! {
    /// `vector_typmod_in(cstring[])`
    fn vdb_vector_typmod_in(args) {
        let typmods = args.integer_typmods(0);
        Ok(pgrx::pg_sys::Datum::from(typmod_from_list(&typmods, "vector")?))
    }
}

/// Validates the `(n)` of `vector(n)` (or of the type named `type_name`).
pub fn typmod_from_list(typmods: &[i32], type_name: &str) -> SqlResult<i32> {
    let [n] = typmods else {
        return Err(SqlError::invalid_parameter("invalid type modifier"));
    };
    if *n < 1 {
        return Err(SqlError::invalid_parameter(format!(
            "dimensions for type {type_name} must be at least 1"
        )));
    }
    if *n as usize > MAX_DIM {
        return Err(SqlError::invalid_parameter(format!(
            "dimensions for type {type_name} cannot exceed {MAX_DIM}"
        )));
    }
    Ok(*n)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ok(s: &str) -> Vec<f32> {
        parse(s.as_bytes(), -1).unwrap_or_else(|e| panic!("{s}: {e}"))
    }

    fn err(s: &str) -> SqlError {
        parse(s.as_bytes(), -1).expect_err(s)
    }

    #[test]
    fn parses_with_whitespace() {
        assert_eq!(ok("[1,2.5,-3e-2]"), vec![1.0, 2.5, -0.03]);
        assert_eq!(ok(" \t[ 1 ,\n2 ] \r\n"), vec![1.0, 2.0]);
        assert_eq!(ok("[+.5,5.]"), vec![0.5, 5.0]);
        assert_eq!(ok("[1.4e-45]"), vec![1.4e-45]);
    }

    #[test]
    fn rejects_malformed_text() {
        for s in [
            "", "1,2", "[1,2", "[1,,2]", "[1,]", "[1 2]", "[1x]", "[[1]]", "[1]x", "[,1]",
        ] {
            assert_eq!(err(s).state, SqlState::InvalidTextRepresentation, "{s:?}");
        }
        assert_eq!(
            err("[1,2").message,
            "invalid input syntax for type vector: \"[1,2\""
        );
        assert_eq!(err("[]").state, SqlState::DataException);
        assert_eq!(err("[ ]").message, "vector must have at least 1 dimension");
    }

    #[test]
    fn rejects_non_finite_and_out_of_range() {
        assert_eq!(err("[NaN]").message, "NaN not allowed in vector");
        assert_eq!(
            err("[1,-Infinity]").message,
            "infinite value not allowed in vector"
        );
        assert_eq!(err("[inf]").state, SqlState::DataException);
        let e = err("[1e39]");
        assert_eq!(e.state, SqlState::NumericValueOutOfRange);
        assert_eq!(e.message, "\"1e39\" is out of range for type vector");
        assert_eq!(err("[-1e-50]").state, SqlState::NumericValueOutOfRange);
        assert_eq!(ok("[0e-50, -0.0]"), vec![0.0, 0.0]);
    }

    #[test]
    fn enforces_dimensions() {
        let e = parse(b"[1,2,3,4]", 3).unwrap_err();
        assert_eq!(e.message, "expected 3 dimensions, not 4");
        let big = format!("[{}]", vec!["1"; MAX_DIM + 1].join(","));
        assert_eq!(err(&big).state, SqlState::ProgramLimitExceeded);
        let max = format!("[{}]", vec!["1"; MAX_DIM].join(","));
        assert_eq!(ok(&max).len(), MAX_DIM);
    }

    #[test]
    fn typmod_list() {
        assert_eq!(typmod_from_list(&[3], "vector"), Ok(3));
        assert!(typmod_from_list(&[], "vector").is_err());
        assert!(typmod_from_list(&[1, 2], "vector").is_err());
        assert!(typmod_from_list(&[0], "vector").is_err());
        assert!(typmod_from_list(&[16001], "vector").is_err());
    }
}
