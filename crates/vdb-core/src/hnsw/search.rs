//! Searching the graph: greedy descent through the upper levels, then a
//! best-first search of one level (the paper's Algorithm 2).

use super::visited::Visited;
use super::{Candidate, Entry, GraphStore, NodeId, Point};
use std::cmp::Reverse;
use std::collections::BinaryHeap;

/// Walks from the entry point down to `stop_level + 1`, moving to the
/// closest neighbour while that improves; returns the node reached.
pub fn descend<S: GraphStore + ?Sized>(
    store: &S,
    query: &Point,
    entry: Entry,
    stop_level: u8,
    scratch: &mut Vec<NodeId>,
) -> Candidate {
    let mut best = Candidate {
        distance: store.distance(query, entry.node),
        node: entry.node,
    };
    // Every node measured is no nearer than `best` (else it would be
    // `best`), so it is never measured again; the rest of a hop is
    // measured in one batch (a store overlaps the reads).
    let mut measured = vec![entry.node];
    let mut fresh = Vec::new();
    let mut distances = Vec::new();
    let mut level = entry.level;
    while level > stop_level {
        loop {
            store.neighbors(best.node, level, scratch);
            fresh.clear();
            fresh.extend(scratch.iter().copied().filter(|n| !measured.contains(n)));
            measured.extend_from_slice(&fresh);
            store.distances(query, &fresh, &mut distances);
            let mut improved = false;
            for (&n, &d) in fresh.iter().zip(&distances) {
                if d < best.distance {
                    best = Candidate {
                        distance: d,
                        node: n,
                    };
                    improved = true;
                }
            }
            if !improved {
                break;
            }
        }
        level -= 1;
    }
    best
}

/// A best-first search of one level that can be continued with a larger
/// `ef` (for scans that need more results than the first round found).
///
/// Every node whose distance was computed lands in `found`; `frontier`
/// holds those not yet expanded. A round stops once the closest frontier
/// node is farther than the `ef`-th closest found node.
#[derive(Debug, Default)]
pub struct LayerSearch {
    /// Keep every evaluated node (scans), not only the `ef` best (inserts).
    resumable: bool,
    frontier: BinaryHeap<Reverse<Candidate>>,
    /// The `ef` closest found so far (max-heap), for the stop rule.
    best: BinaryHeap<Candidate>,
    /// Every node evaluated, in discovery order (resumable searches only).
    found: Vec<Candidate>,
    evaluated: usize,
    visited: Visited,
    scratch: Vec<NodeId>,
    distances: Vec<f32>,
}

impl LayerSearch {
    /// A search for inserts: only the `ef` best are kept.
    pub fn new() -> Self {
        Self::default()
    }

    /// A search for scans: keeps every evaluated node so that a later
    /// round with a larger `ef` can continue where this one stopped.
    pub fn resumable() -> Self {
        LayerSearch {
            resumable: true,
            ..Self::default()
        }
    }

    /// Forgets everything, keeping allocations.
    pub fn reset(&mut self) {
        self.frontier.clear();
        self.best.clear();
        self.found.clear();
        self.evaluated = 0;
        self.visited.clear();
    }

    /// Adds a starting point.
    pub fn seed(&mut self, start: Candidate) {
        if self.visited.insert(start.node) {
            self.evaluated += 1;
            self.push(start, usize::MAX);
        }
    }

    fn push(&mut self, c: Candidate, ef: usize) {
        self.frontier.push(Reverse(c));
        if self.resumable {
            self.found.push(c);
        }
        self.best.push(c);
        if self.best.len() > ef {
            self.best.pop();
        }
    }

    /// Expands nodes until the stop rule holds for `ef`, or the frontier is
    /// empty, or `max_evaluated` nodes have been evaluated. Returns whether
    /// the frontier still has nodes (the search can be continued).
    pub fn run<S: GraphStore + ?Sized>(
        &mut self,
        store: &S,
        query: &Point,
        level: u8,
        ef: usize,
        max_evaluated: usize,
    ) -> bool {
        self.resize_best(ef);
        while let Some(&Reverse(closest)) = self.frontier.peek() {
            if self.best.len() >= ef
                && self
                    .best
                    .peek()
                    .is_some_and(|worst| closest.distance > worst.distance)
            {
                break;
            }
            if self.evaluated >= max_evaluated {
                break;
            }
            self.frontier.pop();
            let mut neighbors = std::mem::take(&mut self.scratch);
            store.neighbors(closest.node, level, &mut neighbors);
            // Keep only unseen neighbours and measure them together, so the
            // store can overlap their memory reads.
            neighbors.retain(|&n| self.visited.insert(n));
            let mut distances = std::mem::take(&mut self.distances);
            store.distances(query, &neighbors, &mut distances);
            for (&n, &d) in neighbors.iter().zip(&distances) {
                self.evaluated += 1;
                let worst = self.best.peek().map_or(f32::INFINITY, |w| w.distance);
                if self.best.len() < ef || d < worst {
                    self.push(
                        Candidate {
                            distance: d,
                            node: n,
                        },
                        ef,
                    );
                } else if self.resumable {
                    // Not good enough to expand now, but a later round with a
                    // larger ef may want it.
                    self.frontier.push(Reverse(Candidate {
                        distance: d,
                        node: n,
                    }));
                    self.found.push(Candidate {
                        distance: d,
                        node: n,
                    });
                }
            }
            self.scratch = neighbors;
            self.distances = distances;
        }
        !self.frontier.is_empty()
    }

    /// Makes `best` hold the `ef` closest of everything found.
    fn resize_best(&mut self, ef: usize) {
        if !self.resumable || self.best.len() == ef.min(self.found.len()) {
            return;
        }
        let mut all = self.found.clone();
        if all.len() > ef {
            all.select_nth_unstable(ef - 1);
            all.truncate(ef);
        }
        self.best = all.into_iter().collect();
    }

    /// The `ef` closest found nodes, nearest first.
    pub fn nearest(&self, ef: usize) -> Vec<Candidate> {
        let mut all = if self.resumable {
            self.found.clone()
        } else {
            self.best.clone().into_vec()
        };
        all.sort_unstable();
        all.truncate(ef);
        all
    }

    /// How many distances were computed.
    pub fn evaluated(&self) -> usize {
        self.evaluated
    }

    /// Every node evaluated so far.
    pub fn found(&self) -> &[Candidate] {
        &self.found
    }

    /// Distance of the `k`-th closest found node (resumable searches; the
    /// farthest found when fewer were found).
    pub fn kth_distance(&self, k: usize) -> f32 {
        let mut distances: Vec<f32> = self.found.iter().map(|c| c.distance).collect();
        if distances.is_empty() {
            return f32::INFINITY;
        }
        let k = k.clamp(1, distances.len());
        *distances.select_nth_unstable_by(k - 1, f32::total_cmp).1
    }
}

/// The standard layer search: the `ef` nearest to `query` on `level`,
/// starting from `starts`, nearest first.
pub fn search_layer<S: GraphStore + ?Sized>(
    store: &S,
    search: &mut LayerSearch,
    query: &Point,
    starts: &[Candidate],
    level: u8,
    ef: usize,
) -> Vec<Candidate> {
    search.reset();
    for &s in starts {
        search.seed(s);
    }
    search.run(store, query, level, ef, usize::MAX);
    search.nearest(ef)
}
