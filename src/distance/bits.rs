//! Distances over PostgreSQL's `bit` type: `hamming_distance` (`<~>`) and
//! `jaccard_distance` (`<%>`), as pgvector defines them.

use crate::error::{SqlError, SqlResult};
use crate::fmgr::{float8_datum, pg_fn, Args};
use pgrx::pg_sys::{self, Datum};
use vdb_core::distance::bits;

/// A `bit` value's length in bits and its bytes (most significant bit
/// first; PostgreSQL keeps the padding bits of the last byte zero).
pub struct BitString<'a> {
    pub len: usize,
    pub bytes: &'a [u8],
}

impl BitString<'_> {
    /// The string as 0/1 elements, one per bit: the raw form a `bit`
    /// index prepares (`vdb_core::hnsw::Metric::prepare` packs them). Out
    /// of memory is an `ERROR`, not an abort of the server.
    pub fn elements(&self) -> SqlResult<Vec<f32>> {
        let mut out = Vec::new();
        out.try_reserve_exact(self.len).map_err(|_| {
            SqlError::new(
                crate::error::SqlState::OutOfMemory,
                format!("out of memory for a bit string of {} bits", self.len),
            )
        })?;
        out.extend((0..self.len).map(|i| f32::from(self.bytes[i / 8] & (0x80 >> (i % 8)) != 0)));
        Ok(out)
    }
}

/// A (possibly toasted) `bit` datum; a detoasted copy lives in the current
/// memory context.
///
/// # Safety
/// `datum` must be a non-null `bit` or `varbit` value valid for `'a`.
pub unsafe fn detoast_bit<'a>(datum: Datum) -> SqlResult<BitString<'a>> {
    // SAFETY: (caller) datum is a bit string: a varlena with a 4-byte
    // header once detoasted, an int32 bit count, then the bytes.
    unsafe {
        let ptr = pg_sys::pg_detoast_datum(datum.cast_mut_ptr()).cast::<u8>();
        let total = pgrx::varlena::varsize_4b(ptr.cast());
        let len = ptr.add(4).cast::<i32>().read_unaligned();
        let len = usize::try_from(len).unwrap_or(usize::MAX);
        if total < 8 || len.div_ceil(8) != total - 8 {
            return Err(SqlError::internal(format!(
                "corrupt bit value: {total} bytes for {len} bits"
            )));
        }
        Ok(BitString {
            len,
            bytes: std::slice::from_raw_parts(ptr.add(8), total - 8),
        })
    }
}

/// Both arguments packed into words, of equal lengths.
fn pair(args: &Args) -> SqlResult<(Vec<u32>, Vec<u32>)> {
    // SAFETY: both arguments are non-null bit values (STRICT functions).
    let (a, b) = unsafe { (detoast_bit(args.datum(0))?, detoast_bit(args.datum(1))?) };
    if a.len != b.len {
        return Err(SqlError::data(format!(
            "different bit lengths {} and {}",
            a.len, b.len
        )));
    }
    Ok((bits::pack(a.bytes, a.len), bits::pack(b.bytes, b.len)))
}

pg_fn! {
    /// `hamming_distance(bit, bit)`: the `<~>` operator.
    fn vdb_hamming_distance(args) {
        let (a, b) = pair(&args)?;
        Ok(float8_datum(bits::hamming(&a, &b)))
    }
}

pg_fn! {
    /// `jaccard_distance(bit, bit)`: the `<%>` operator; 1 when the strings
    /// share no set bit.
    fn vdb_jaccard_distance(args) {
        let (a, b) = pair(&args)?;
        Ok(float8_datum(bits::jaccard(&a, &b)))
    }
}
