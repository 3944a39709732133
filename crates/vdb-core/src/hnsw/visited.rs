//! The set of nodes a search has already seen.
//!
//! A bitset over dense node ids that remembers which words it dirtied, so
//! clearing it for the next search costs what the last search touched, not
//! the size of the graph.

use super::NodeId;

#[derive(Debug, Default)]
pub struct Visited {
    words: Vec<u64>,
    dirty: Vec<u32>,
}

impl Visited {
    pub fn new() -> Self {
        Self::default()
    }

    /// Marks `node`; returns whether it was new.
    #[inline]
    pub fn insert(&mut self, node: NodeId) -> bool {
        let (word, bit) = ((node / 64) as usize, 1u64 << (node % 64));
        if word >= self.words.len() {
            self.words.resize((word + 1).next_power_of_two(), 0);
        }
        let w = &mut self.words[word];
        if *w & bit != 0 {
            return false;
        }
        if *w == 0 {
            self.dirty.push(word as u32);
        }
        *w |= bit;
        true
    }

    #[inline]
    pub fn contains(&self, node: NodeId) -> bool {
        let (word, bit) = ((node / 64) as usize, 1u64 << (node % 64));
        self.words.get(word).is_some_and(|w| w & bit != 0)
    }

    /// How many nodes are marked.
    pub fn len(&self) -> usize {
        self.dirty
            .iter()
            .map(|&w| self.words[w as usize].count_ones() as usize)
            .sum()
    }

    pub fn is_empty(&self) -> bool {
        self.dirty.is_empty()
    }

    /// Unmarks everything, in time proportional to what was marked.
    pub fn clear(&mut self) {
        for &w in &self.dirty {
            self.words[w as usize] = 0;
        }
        self.dirty.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn marks_and_clears() {
        let mut v = Visited::new();
        assert!(v.insert(5));
        assert!(!v.insert(5));
        assert!(v.insert(100_000));
        assert!(v.contains(5) && v.contains(100_000) && !v.contains(6));
        assert_eq!(v.len(), 2);
        v.clear();
        assert!(v.is_empty() && !v.contains(5));
        assert!(v.insert(5));
    }
}
