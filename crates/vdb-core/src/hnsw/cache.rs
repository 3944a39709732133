//! Vectors copied out of pages during one write operation.
//!
//! A merge measures the same nodes again and again (every hop of every
//! insert, and each neighbour-list re-selection compares a list's members
//! with one another). Reading them from shared buffers each time costs a
//! buffer lookup, a pin and a lock per vector; this keeps copies in one
//! flat array, found through a hash map with a cheap hasher for `u32` keys.

use super::NodeId;
use rustc_hash::FxHashMap;

#[derive(Debug)]
pub struct VectorCache {
    dims: usize,
    /// Most vectors kept; at this size the cache starts over.
    capacity: usize,
    slots: FxHashMap<NodeId, u32>,
    data: Vec<f32>,
    aux: Vec<f32>,
}

impl VectorCache {
    /// A cache of up to `capacity` vectors of `dims` dimensions.
    pub fn new(dims: usize, capacity: usize) -> Self {
        VectorCache {
            dims,
            capacity: capacity.max(1),
            slots: FxHashMap::default(),
            data: Vec::new(),
            aux: Vec::new(),
        }
    }

    /// The cache for a memory budget in bytes.
    pub fn with_budget(dims: usize, bytes: usize) -> Self {
        Self::new(dims, bytes / (4 * dims + 16).max(1))
    }

    #[inline]
    pub fn get(&self, node: NodeId) -> Option<(&[f32], f32)> {
        let i = *self.slots.get(&node)? as usize;
        Some((&self.data[i * self.dims..(i + 1) * self.dims], self.aux[i]))
    }

    /// Stores (or replaces) `node`'s vector.
    pub fn insert(&mut self, node: NodeId, vec: &[f32], aux: f32) {
        debug_assert_eq!(vec.len(), self.dims);
        if let Some(&i) = self.slots.get(&node) {
            let i = i as usize;
            self.data[i * self.dims..(i + 1) * self.dims].copy_from_slice(vec);
            self.aux[i] = aux;
            return;
        }
        if self.aux.len() >= self.capacity {
            self.clear();
        }
        self.slots.insert(node, self.aux.len() as u32);
        self.data.extend_from_slice(vec);
        self.aux.push(aux);
    }

    pub fn len(&self) -> usize {
        self.aux.len()
    }

    pub fn is_empty(&self) -> bool {
        self.aux.is_empty()
    }

    pub fn clear(&mut self) {
        self.slots.clear();
        self.data.clear();
        self.aux.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_replaces_and_starts_over_when_full() {
        let mut c = VectorCache::new(2, 2);
        c.insert(7, &[1.0, 2.0], 0.5);
        c.insert(9, &[3.0, 4.0], 0.0);
        assert_eq!(c.get(7), Some((&[1.0, 2.0][..], 0.5)));
        c.insert(7, &[5.0, 6.0], 1.0);
        assert_eq!(c.get(7), Some((&[5.0, 6.0][..], 1.0)));
        assert_eq!(c.len(), 2);
        c.insert(1, &[0.0, 0.0], 0.0);
        assert_eq!(c.len(), 1);
        assert!(c.get(7).is_none());
        assert_eq!(c.get(1), Some((&[0.0, 0.0][..], 0.0)));
    }
}
