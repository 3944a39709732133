//! HNSW (Malkov & Yashunin, "Efficient and robust approximate nearest
//! neighbor search using Hierarchical Navigable Small World graphs").
//!
//! The algorithm is written once against [`GraphStore`] and runs over two
//! stores: [`memory::MemoryGraph`] (flat arrays, built in parallel with
//! rayon during `CREATE INDEX`) and vdb's page graph over Postgres buffers
//! (single writer, every change WAL-logged).
//!
//! - [`search`]: greedy descent and the best-first layer search;
//! - [`select`]: the neighbour-selection heuristic;
//! - [`insert`]: planning a node's lists and linking it back;
//! - [`scan`]: a resumable search that yields nodes in distance order;
//! - [`coded`]: a search that reads one node per hop, on neighbour codes;
//! - [`consolidate`]: refilling the lists a batch of deletes damaged;
//! - [`repair`]: relinking nodes nothing points to;
//! - [`visited`]: the visited set.

pub mod cache;
pub mod coded;
pub mod consolidate;
pub mod insert;
pub mod memory;
pub mod metric;
pub mod repair;
pub mod scan;
pub mod search;
pub mod select;
pub mod visited;

pub use metric::{same_bits, Metric, Point, Unindexable};

/// Dense node number; a node's storage position follows from it.
pub type NodeId = u32;

/// Highest level a node can get; levels above it would need more than
/// `m^MAX_LEVEL` nodes to be useful.
pub const MAX_LEVEL: u8 = 15;

/// Where searches start: the node on the top level.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Entry {
    pub node: NodeId,
    pub level: u8,
}

/// Build and shape parameters of a graph.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Params {
    pub metric: Metric,
    /// Neighbours per node on levels ≥ 1; level 0 keeps `2·m`.
    pub m: usize,
    pub ef_construction: usize,
}

impl Params {
    /// Most neighbours a node keeps on `level`.
    pub fn max_neighbors(&self, level: u8) -> usize {
        if level == 0 {
            2 * self.m
        } else {
            self.m
        }
    }

    /// The level of a new node: `⌊−ln(u)·mL⌋` with `mL = 1/ln(m)`, where
    /// `u ∈ (0, 1]` comes from `seed` (so a build is reproducible).
    pub fn random_level(&self, seed: u64) -> u8 {
        let u = (splitmix64(seed) >> 11) as f64 / (1u64 << 53) as f64;
        let u = 1.0 - u; // (0, 1]
        let ml = 1.0 / (self.m as f64).ln();
        ((-u.ln() * ml).floor() as u64).min(u64::from(MAX_LEVEL)) as u8
    }
}

/// A well-mixed 64-bit hash (SplitMix64's finaliser).
pub fn splitmix64(x: u64) -> u64 {
    let mut z = x.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// A node at some distance from the point being searched for.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Candidate {
    pub distance: f32,
    pub node: NodeId,
}

impl Eq for Candidate {}

impl Ord for Candidate {
    // Inlined: the frontier heaps compare candidates tens of times a hop.
    #[inline(always)]
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        self.distance
            .total_cmp(&other.distance)
            .then(self.node.cmp(&other.node))
    }
}

impl PartialOrd for Candidate {
    #[inline(always)]
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

/// What the algorithm needs from where the graph lives.
///
/// Reads must be internally consistent (a neighbour list is copied whole);
/// the store decides how (buffer share locks, per-node mutexes).
pub trait GraphStore {
    fn params(&self) -> &Params;

    /// The entry point, or `None` for an empty graph.
    fn entry(&self) -> Option<Entry>;

    /// Distance from a prepared point to a node.
    fn distance(&self, query: &Point, node: NodeId) -> f32;

    /// Distance between two nodes.
    fn distance_between(&self, a: NodeId, b: NodeId) -> f32;

    /// Appends `node`'s stored vector to `out` and returns its `aux`
    /// (the selection heuristic gathers a list's vectors once, then
    /// compares them pairwise in memory).
    fn copy_vector(&self, node: NodeId, out: &mut Vec<f32>) -> f32;

    /// Replaces `out` with a copy of `node`'s neighbours on `level`.
    fn neighbors(&self, node: NodeId, level: u8, out: &mut Vec<NodeId>);

    /// A hint that `node`'s vector is about to be read.
    fn prefetch(&self, _node: NodeId) {}

    /// Distances from `query` to each of `nodes`, into `out`. Stores
    /// override it to overlap the memory reads of a whole hop.
    fn distances(&self, query: &Point, nodes: &[NodeId], out: &mut Vec<f32>) {
        for &n in nodes {
            self.prefetch(n);
        }
        out.clear();
        out.extend(nodes.iter().map(|&n| self.distance(query, n)));
    }
}

/// Changing a graph. Writers of one store never run the same node's
/// read-modify-write concurrently (the store guarantees it).
pub trait GraphWrite: GraphStore {
    /// Read-modify-write of `node`'s neighbour list on `level`: `update`
    /// gets the current list and leaves the new one in place. The store
    /// makes the change atomic with respect to other writers and readers.
    fn update_neighbors(&self, node: NodeId, level: u8, update: &mut dyn FnMut(&mut Vec<NodeId>));
}
