//! Filter columns of a composite index: how their values are stored with
//! each node (one 64-bit word a column, plus a word of NULL flags) and
//! how a scan's conditions test them, without the heap.
//!
//! Integers and booleans are stored exactly, so their conditions are
//! decided here. Text and uuid values are stored as a 64-bit hash and
//! label arrays as a 64-bit signature (a bit per element): a test on
//! them can only rule rows out, and the executor rechecks what passes.
//! Both hashes are part of the on-disk format.

use vdb_core::hnsw::splitmix64;

/// What a filter column holds (its code is stored in the metapage).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum Kind {
    /// `int2`, `int4`, `int8`: the value as an `i64`.
    Int = 1,
    /// `bool`: 0 or 1.
    Bool = 2,
    /// `text` (and `varchar`): a hash of its bytes.
    Text = 3,
    /// `uuid`: a hash of its 16 bytes.
    Uuid = 4,
    /// `int4[]`, `int8[]`: a signature of the elements.
    IntArray = 5,
    /// `text[]`: a signature of the elements.
    TextArray = 6,
}

impl Kind {
    pub fn from_code(code: u8) -> Option<Kind> {
        Some(match code {
            1 => Kind::Int,
            2 => Kind::Bool,
            3 => Kind::Text,
            4 => Kind::Uuid,
            5 => Kind::IntArray,
            6 => Kind::TextArray,
            _ => return None,
        })
    }

    /// Whether a stored word decides this column's conditions (else the
    /// executor rechecks them).
    pub fn exact(self) -> bool {
        matches!(self, Kind::Int | Kind::Bool)
    }
}

/// The stored hash of a text or uuid value (FNV-1a, then mixed).
pub fn hash_bytes(bytes: &[u8]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for &b in bytes {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    splitmix64(h)
}

/// The signature bit of an integer array element.
pub fn int_bit(v: i64) -> u64 {
    1u64 << (splitmix64(v as u64) & 63)
}

/// The signature bit of a text array element.
pub fn text_bit(bytes: &[u8]) -> u64 {
    1u64 << (hash_bytes(bytes) & 63)
}

/// One condition on a stored word.
#[derive(Debug, Clone, PartialEq)]
pub enum Test {
    /// The word equals one of these (sorted).
    AnyOf(Vec<u64>),
    /// `lo <= value <= hi`, as `i64`s.
    Between(i64, i64),
    /// Shares a bit with this signature (`&&`).
    Overlaps(u64),
    /// Has every bit of this signature (`@>`).
    Contains(u64),
    /// Never true (`= ANY('{}')`, `< i64::MIN`, a NULL argument).
    Never,
}

impl Test {
    #[inline]
    pub fn passes(&self, word: u64) -> bool {
        match self {
            Test::AnyOf(values) => match values.len() {
                1 => values[0] == word,
                _ => values.binary_search(&word).is_ok(),
            },
            Test::Between(lo, hi) => (*lo..=*hi).contains(&(word as i64)),
            Test::Overlaps(sig) => word & sig != 0,
            Test::Contains(sig) => word & sig == *sig,
            Test::Never => false,
        }
    }
}

/// A condition on filter column `col` (0 is the first after the vector).
#[derive(Debug, Clone, PartialEq)]
pub struct Condition {
    pub col: usize,
    pub test: Test,
}

/// The conjunction of a scan's conditions on filter columns.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Filter {
    pub conditions: Vec<Condition>,
}

impl Filter {
    /// Whether no condition can hold (the scan returns nothing).
    pub fn never(&self) -> bool {
        self.conditions.iter().any(|c| c.test == Test::Never)
    }

    /// Whether a node or entry with these words (NULL flags first) may
    /// match: NULL never does.
    #[inline]
    pub fn matches(&self, words: &[u64]) -> bool {
        let Some((&nulls, values)) = words.split_first() else {
            return self.conditions.is_empty();
        };
        self.conditions.iter().all(|c| {
            nulls & (1 << c.col) == 0 && values.get(c.col).is_some_and(|&w| c.test.passes(w))
        })
    }

    /// Intersects integer ranges on one column and drops conditions that
    /// always hold, so a node is tested once per column.
    pub fn simplify(&mut self) {
        let mut merged: Vec<Condition> = Vec::new();
        for c in self.conditions.drain(..) {
            if let Test::Between(lo, hi) = c.test {
                if let Some(prev) = merged.iter_mut().find(|p| p.col == c.col) {
                    if let Test::Between(plo, phi) = prev.test {
                        let (l, h) = (plo.max(lo), phi.min(hi));
                        prev.test = if l <= h {
                            Test::Between(l, h)
                        } else {
                            Test::Never
                        };
                        continue;
                    }
                }
            }
            if c.test == Test::Contains(0) {
                continue; // `@> '{}'`
            }
            merged.push(c);
        }
        self.conditions = merged;
    }
}

/// Reads `n` words stored (unaligned) at `offset` of `bytes`.
pub fn read_words(bytes: &[u8], offset: usize, n: usize) -> impl Iterator<Item = u64> + '_ {
    bytes[offset..offset + 8 * n]
        .chunks_exact(8)
        .map(|c| u64::from_ne_bytes(c.try_into().unwrap_or_default()))
}

/// Writes `words` (unaligned) at `offset` of `bytes`.
pub fn write_words(bytes: &mut [u8], offset: usize, words: &[u64]) {
    for (chunk, w) in bytes[offset..offset + 8 * words.len()]
        .chunks_exact_mut(8)
        .zip(words)
    {
        chunk.copy_from_slice(&w.to_ne_bytes());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn filter(conditions: Vec<(usize, Test)>) -> Filter {
        let mut f = Filter {
            conditions: conditions
                .into_iter()
                .map(|(col, test)| Condition { col, test })
                .collect(),
        };
        f.simplify();
        f
    }

    #[test]
    fn conditions_test_words_and_nulls() {
        // words: NULL flags (column 1 NULL), column 0 = 7, column 1 = junk
        let words = [0b10, 7u64, 99];
        assert!(filter(vec![(0, Test::AnyOf(vec![7]))]).matches(&words));
        assert!(!filter(vec![(0, Test::AnyOf(vec![3, 8]))]).matches(&words));
        assert!(!filter(vec![(1, Test::AnyOf(vec![99]))]).matches(&words));
        assert!(filter(vec![(0, Test::Between(-3, 7))]).matches(&words));
        let f = filter(vec![(0, Test::Between(0, 10)), (0, Test::Between(8, 20))]);
        assert_eq!(f.conditions.len(), 1);
        assert!(!f.matches(&words));
        assert!(filter(vec![(0, Test::Between(5, 3))]).conditions.len() == 1);
        let never = filter(vec![(0, Test::Between(0, 3)), (0, Test::Between(5, 9))]);
        assert!(never.never());
        assert!(filter(vec![]).matches(&words));
        assert!(filter(vec![(0, Test::Contains(0))]).conditions.is_empty());
    }

    #[test]
    fn signatures_never_rule_out_a_match() {
        let row = int_bit(1) | int_bit(5) | int_bit(9);
        assert!(Test::Overlaps(int_bit(5) | int_bit(77)).passes(row));
        assert!(Test::Contains(int_bit(1) | int_bit(9)).passes(row));
        let miss = (0..1000).filter(|&v| !Test::Overlaps(int_bit(v)).passes(row));
        assert!(miss.count() > 900, "a signature rules most values out");
        assert_ne!(hash_bytes(b"a"), hash_bytes(b"b"));
        assert_eq!(text_bit(b"x"), text_bit(b"x"));
    }
}
