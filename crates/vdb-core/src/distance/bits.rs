//! Distances between bit strings, packed 32 bits to a word: Hamming (bits
//! that differ) and Jaccard (`1 − |a ∧ b| / |a ∨ b|`), as pgvector defines
//! them for PostgreSQL's `bit` type. Bits past the string's length are zero
//! in both operands, so they count in neither.

/// Bits that differ.
#[inline]
pub fn hamming(a: &[u32], b: &[u32]) -> f64 {
    debug_assert_eq!(a.len(), b.len());
    f64::from(
        a.iter()
            .zip(b)
            .map(|(x, y)| (x ^ y).count_ones())
            .sum::<u32>(),
    )
}

/// Jaccard distance; two strings without a set bit are at distance 1, as
/// in pgvector (which returns 1 whenever the intersection is empty).
#[inline]
pub fn jaccard(a: &[u32], b: &[u32]) -> f64 {
    debug_assert_eq!(a.len(), b.len());
    let (mut both, mut either) = (0u32, 0u32);
    for (x, y) in a.iter().zip(b) {
        both += (x & y).count_ones();
        either += (x | y).count_ones();
    }
    jaccard_from_counts(both, either)
}

/// The Jaccard distance of strings sharing `both` set bits out of `either`.
pub fn jaccard_from_counts(both: u32, either: u32) -> f64 {
    if both == 0 {
        return 1.0;
    }
    1.0 - f64::from(both) / f64::from(either)
}

/// Packs a bit string (most significant bit of each byte first, as `bit`
/// stores it) into words, bit `i` of the string at bit `31 − i % 32` of
/// word `i / 32`; the tail of the last word is zero.
pub fn pack(bytes: &[u8], len: usize) -> Vec<u32> {
    let mut words = vec![0u32; len.div_ceil(32)];
    for (i, word) in words.iter_mut().enumerate() {
        let mut w = [0u8; 4];
        for (j, b) in w.iter_mut().enumerate() {
            *b = bytes.get(4 * i + j).copied().unwrap_or(0);
        }
        *word = u32::from_be_bytes(w);
    }
    // Clear padding bits a malformed value might carry.
    if let Some(last) = words.last_mut() {
        let used = len % 32;
        if used != 0 {
            *last &= !0u32 << (32 - used);
        }
    }
    words
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn distances() {
        let a = pack(&[0b1011_0000], 4);
        let b = pack(&[0b1100_0000], 4);
        assert_eq!(hamming(&a, &b), 3.0);
        // both = 1 (first bit), either = 1011 | 1100 = 1111 → 4.
        assert!((jaccard(&a, &b) - 0.75).abs() < 1e-12);
        let zero = pack(&[0], 4);
        assert_eq!(jaccard(&zero, &zero), 1.0);
        assert_eq!(hamming(&zero, &zero), 0.0);
        assert_eq!(jaccard(&a, &a), 0.0);
    }

    #[test]
    fn pack_clears_padding_and_spans_words() {
        assert_eq!(pack(&[0xff], 3), vec![0xe000_0000]);
        let w = pack(&[0x80, 0, 0, 0, 0x80], 33);
        assert_eq!(w, vec![0x8000_0000, 0x8000_0000]);
    }
}
