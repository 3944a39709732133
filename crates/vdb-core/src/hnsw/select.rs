//! Choosing a node's neighbours: the paper's heuristic (Algorithm 4).
//!
//! Walking candidates nearest first, a candidate is kept unless an already
//! kept neighbour is closer to it than the base node is. This spreads the
//! edges over directions instead of spending them all on one tight cluster,
//! which is what keeps the graph navigable. Ties keep the candidate, so
//! clusters of equal points stay connected.
//!
//! Under inner product the list is then filled to its bound with the
//! nearest pruned candidates (the paper's `keepPrunedConnections`):
//! one high-norm neighbour is "closer" to nearly every candidate than the
//! base is, so the heuristic alone kept one or two links per node and
//! most of the graph was unreachable. Other metrics keep the heuristic's
//! sparser lists: filled ones cost them recall in filtered scans (a test
//! filtering on a heap column fell to 0.66) and add distance work to
//! every hop.

use super::{Candidate, GraphStore, Metric, NodeId};

/// Vectors of a few nodes copied side by side, row `i` for `nodes[i]`.
#[derive(Debug, Clone, Default)]
pub struct Gathered {
    pub nodes: Vec<NodeId>,
    pub vecs: Vec<f32>,
    pub aux: Vec<f32>,
}

impl Gathered {
    pub fn of<S: GraphStore + ?Sized>(store: &S, nodes: &[NodeId]) -> Gathered {
        let mut g = Gathered {
            nodes: nodes.to_vec(),
            vecs: Vec::new(),
            aux: Vec::with_capacity(nodes.len()),
        };
        for &n in nodes {
            let aux = store.copy_vector(n, &mut g.vecs);
            g.aux.push(aux);
        }
        g
    }

    fn dims(&self) -> usize {
        self.vecs.len() / self.nodes.len().max(1)
    }

    fn row(&self, i: usize) -> &[f32] {
        let d = self.dims();
        &self.vecs[i * d..(i + 1) * d]
    }

    pub fn distance(&self, metric: Metric, i: usize, j: usize) -> f32 {
        metric.distance(self.row(i), self.aux[i], self.row(j), self.aux[j])
    }
}

/// The heuristic over gathered rows: `order` lists (distance from the
/// base, row) nearest first; returns the rows kept, the heuristic's
/// choice first, then (inner product) the nearest pruned ones up to `max`.
pub fn select_rows(
    metric: Metric,
    rows: &Gathered,
    order: &[(f32, usize)],
    max: usize,
) -> Vec<usize> {
    let mut kept: Vec<usize> = Vec::with_capacity(max);
    let mut pruned: Vec<usize> = Vec::new();
    for &(distance, row) in order {
        if kept.len() >= max {
            break;
        }
        let dominated = kept
            .iter()
            .any(|&k| rows.distance(metric, row, k) < distance);
        if dominated {
            pruned.push(row);
        } else {
            kept.push(row);
        }
    }
    if metric.keeps_pruned() {
        let room = max.saturating_sub(kept.len());
        kept.extend(pruned.into_iter().take(room));
    }
    kept
}

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
    let nodes: Vec<NodeId> = candidates.iter().map(|c| c.node).collect();
    let rows = Gathered::of(store, &nodes);
    let order: Vec<(f32, usize)> = candidates
        .iter()
        .enumerate()
        .map(|(i, c)| (c.distance, i))
        .collect();
    select_rows(store.params().metric, &rows, &order, max)
        .into_iter()
        .map(|i| candidates[i])
        .collect()
}

/// A list that lost members (their nodes were deleted) refilled to
/// `len`: the members it kept stay, candidates (sorted nearest first)
/// join as the heuristic allows, then the nearest others until the list
/// is as long as before. Lists re-selected by the heuristic alone come
/// out about half as long as lists that grew by inserts, and recall drops
/// with the degree.
pub fn refill<S: GraphStore + ?Sized>(
    store: &S,
    kept: &[NodeId],
    candidates: &[Candidate],
    len: usize,
) -> Vec<NodeId> {
    let mut rows: Vec<NodeId> = kept.to_vec();
    rows.extend(
        candidates
            .iter()
            .map(|c| c.node)
            .filter(|n| !kept.contains(n)),
    );
    let rows = Gathered::of(store, &rows);
    let metric = store.params().metric;
    let mut list: Vec<usize> = (0..kept.len()).collect();
    let mut skipped = Vec::new();
    let fresh = candidates.iter().filter(|c| !kept.contains(&c.node));
    for (row, c) in (kept.len()..).zip(fresh) {
        if list.len() >= len {
            break;
        }
        if list
            .iter()
            .any(|&k| rows.distance(metric, row, k) < c.distance)
        {
            skipped.push(row);
        } else {
            list.push(row);
        }
    }
    let room = len.saturating_sub(list.len());
    list.extend(skipped.into_iter().take(room));
    list.into_iter().map(|i| rows.nodes[i]).collect()
}
