//! Choosing a node's neighbours: the paper's heuristic (Algorithm 4).
//!
//! Walking candidates nearest first, a candidate is kept unless an already
//! kept neighbour is closer to it than the base node is. This spreads the
//! edges over directions instead of spending them all on one tight cluster,
//! which is what keeps the graph navigable. Ties keep the candidate, so
//! clusters of equal points stay connected.

use super::{Candidate, GraphStore};

/// Picks at most `max` neighbours from `candidates` (sorted nearest first,
/// distances measured from the base node).
pub fn select_neighbors<S: GraphStore + ?Sized>(
    store: &S,
    candidates: &[Candidate],
    max: usize,
) -> Vec<Candidate> {
    if candidates.len() <= max {
        return candidates.to_vec();
    }
    let mut kept: Vec<Candidate> = Vec::with_capacity(max);
    for &c in candidates {
        if kept.len() >= max {
            break;
        }
        let dominated = kept
            .iter()
            .any(|k| store.distance_between(c.node, k.node) < c.distance);
        if !dominated {
            kept.push(c);
        }
    }
    kept
}
