//! Search on codes: a hop reads one node.
//!
//! Each level-0 list carries, beside every neighbour id, a code of that
//! neighbour's vector taken around the list's own node
//! ([`crate::quant`]). Expanding a node reads only that node: its exact
//! vector (so the node's exact distance is known) and its neighbours'
//! codes (so each neighbour gets an estimate). The frontier is ordered by
//! estimates, the results by exact distances, and only expanded nodes are
//! results, so what the search hands out is exactly ordered. The stop rule
//! is the usual one with the estimate in place of the distance, widened by
//! `slack` (estimates err both ways).

use super::memory::MemoryGraph;
use super::scan::Handout;
use super::visited::Visited;
use super::{Candidate, Entry, GraphStore, NodeId, Params, Point};
use crate::quant::{self, Quantizer, Query};
use rayon::prelude::*;
use std::cmp::Reverse;
use std::collections::BinaryHeap;

/// A graph whose level-0 lists carry neighbour codes.
pub trait CodedStore: GraphStore {
    fn quantizer(&self) -> &Quantizer;

    /// Reads `node` once: returns its exact graph distance from `query`
    /// and whether it can be a result (a store may rule nodes out, e.g.
    /// by a filter: the search still walks through them), and puts each
    /// level-0 neighbour with its estimated distance into `out`, for those
    /// `wanted` accepts.
    fn expand(
        &self,
        query: &Point,
        coded: &Query,
        node: NodeId,
        wanted: &mut dyn FnMut(NodeId) -> bool,
        out: &mut Vec<(NodeId, f32)>,
    ) -> (f32, bool);
}

/// Expands `node` (not expanded before): its exact distance is returned
/// and, if it can be a result, goes into `best` (kept to the `ef`
/// nearest); the estimates of its neighbours not expanded yet replace
/// `out`.
///
/// A node seen again from another list gets a new estimate, and the
/// frontier keeps both: an estimate's error grows with the distance
/// between the query and the list's node, so the later ones, taken from
/// nearer nodes, are the tighter (a node's first estimate alone let
/// `ef_search` 400 miss true neighbours on uniform 32-d data).
#[allow(clippy::too_many_arguments)]
fn expand_into<S: CodedStore + ?Sized>(
    store: &S,
    query: &Point,
    coded: &Query,
    node: NodeId,
    done: &mut Visited,
    out: &mut Vec<(NodeId, f32)>,
    best: &mut BinaryHeap<Candidate>,
    ef: usize,
) -> (Candidate, bool) {
    out.clear();
    done.insert(node);
    let (distance, result) = store.expand(query, coded, node, &mut |n| !done.contains(n), out);
    let c = Candidate { distance, node };
    if result {
        best.push(c);
        if best.len() > ef {
            best.pop();
        }
    }
    (c, result)
}

/// Reusable state of coded searches.
#[derive(Debug, Default)]
pub struct CodedSearch {
    frontier: BinaryHeap<Reverse<Candidate>>,
    best: BinaryHeap<Candidate>,
    /// Nodes expanded.
    done: Visited,
    out: Vec<(NodeId, f32)>,
    /// Nodes expanded by the last search (pages it would read).
    pub expanded: usize,
}

impl CodedSearch {
    /// The `ef` nearest nodes by exact distance among those the search
    /// expanded, nearest first, starting from `start` on level 0.
    pub fn run<S: CodedStore + ?Sized>(
        &mut self,
        store: &S,
        query: &Point,
        coded: &Query,
        start: NodeId,
        ef: usize,
        slack: f32,
    ) -> Vec<Candidate> {
        self.frontier.clear();
        self.best.clear();
        self.done.clear();
        self.expanded = 0;
        self.frontier.push(Reverse(Candidate {
            distance: f32::NEG_INFINITY,
            node: start,
        }));
        let mut out = std::mem::take(&mut self.out);
        while let Some(Reverse(next)) = self.frontier.pop() {
            if self.best.len() >= ef
                && self
                    .best
                    .peek()
                    .is_some_and(|worst| next.distance > worst.distance + slack)
            {
                break;
            }
            if self.done.contains(next.node) {
                continue; // a later, looser estimate of a node expanded
            }
            expand_into(
                store,
                query,
                coded,
                next.node,
                &mut self.done,
                &mut out,
                &mut self.best,
                ef,
            );
            self.expanded += 1;
            let worst = self.best.peek().map_or(f32::INFINITY, |w| w.distance);
            for &(node, estimate) in &out {
                if self.best.len() < ef || estimate < worst + slack {
                    self.frontier.push(Reverse(Candidate {
                        distance: estimate,
                        node,
                    }));
                }
            }
        }
        self.out = out;
        let mut found = self.best.clone().into_vec();
        found.sort_unstable();
        found
    }
}

/// A coded search that can be continued with a larger `ef`, handing out
/// nodes in non-decreasing exact distance (as [`super::scan::OrderedScan`]
/// does for the plain search): each round runs until the stop rule holds
/// for its `ef`, then hands out the expanded nodes up to the exact
/// distance of its `ef / 2`-th nearest; a node found later nearer than one
/// handed out is skipped and counted in `dropped`.
#[derive(Debug)]
pub struct CodedScan {
    frontier: BinaryHeap<Reverse<Candidate>>,
    best: BinaryHeap<Candidate>,
    /// Every expanded node that can be a result, with its exact distance.
    found: Vec<Candidate>,
    /// Nodes expanded (results or not).
    reads: usize,
    /// Nodes expanded.
    done: Visited,
    handout: Handout,
    out: Vec<(NodeId, f32)>,
    /// Estimates this round's stop rule rules out, kept off the heap
    /// until a wider round wants them.
    deferred: Vec<Candidate>,
    ef: usize,
    started: bool,
    exhausted: bool,
    /// Whether it ended at `max_expanded` reads, not at the graph's end.
    cut_short: bool,
    rounds: usize,
}

impl CodedScan {
    pub fn new(ef_search: usize) -> CodedScan {
        CodedScan {
            frontier: BinaryHeap::new(),
            best: BinaryHeap::new(),
            found: Vec::new(),
            reads: 0,
            done: Visited::new(),
            handout: Handout::default(),
            out: Vec::new(),
            deferred: Vec::new(),
            ef: ef_search.max(1),
            started: false,
            exhausted: false,
            cut_short: false,
            rounds: 0,
        }
    }

    /// Whether the scan stopped at its limit of node reads, with nodes
    /// it never reached.
    pub fn cut_short(&self) -> bool {
        self.cut_short
    }

    /// Nodes skipped because a later round found them after farther ones
    /// had been returned.
    pub fn dropped(&self) -> usize {
        self.handout.dropped
    }

    /// Nodes expanded so far (node reads).
    pub fn expanded(&self) -> usize {
        self.reads
    }

    /// Search rounds run so far.
    pub fn rounds(&self) -> usize {
        self.rounds
    }

    /// The next node in exact distance order, or `None` when the scan is
    /// over (graph exhausted or `max_expanded` nodes read).
    pub fn next<S: CodedStore + ?Sized>(
        &mut self,
        store: &S,
        query: &Point,
        coded: &Query,
        start: NodeId,
        max_expanded: usize,
    ) -> Option<Candidate> {
        if !self.started {
            self.started = true;
            self.frontier.push(Reverse(Candidate {
                distance: f32::NEG_INFINITY,
                node: start,
            }));
            self.round(store, query, coded, max_expanded);
        }
        loop {
            if let Some(c) = self.handout.next() {
                return Some(c);
            }
            if self.exhausted {
                return None;
            }
            self.ef = self.ef.saturating_mul(2);
            self.round(store, query, coded, max_expanded);
        }
    }

    fn round<S: CodedStore + ?Sized>(
        &mut self,
        store: &S,
        query: &Point,
        coded: &Query,
        max_expanded: usize,
    ) {
        let ef = self.ef;
        // A wider round ranks by the ef best of everything expanded.
        if self.best.len() < ef.min(self.found.len()) {
            self.best = self.found.iter().copied().collect();
        }
        while self.best.len() > ef {
            self.best.pop();
        }
        let done = &self.done;
        self.frontier.extend(
            self.deferred
                .drain(..)
                .filter(|c| !done.contains(c.node))
                .map(Reverse),
        );
        let mut out = std::mem::take(&mut self.out);
        loop {
            let Some(&Reverse(next)) = self.frontier.peek() else {
                self.exhausted = self.deferred.is_empty();
                break;
            };
            if self.best.len() >= ef
                && self
                    .best
                    .peek()
                    .is_some_and(|worst| next.distance > worst.distance)
            {
                break;
            }
            if self.reads >= max_expanded {
                self.exhausted = true;
                self.cut_short = true;
                break;
            }
            self.frontier.pop();
            if self.done.contains(next.node) {
                continue; // a later, looser estimate of a node expanded
            }
            self.reads += 1;
            let (c, result) = expand_into(
                store,
                query,
                coded,
                next.node,
                &mut self.done,
                &mut out,
                &mut self.best,
                ef,
            );
            if result {
                self.found.push(c);
            }
            // What this round's stop rule already rules out (the worst
            // result only gets nearer) waits for a wider round.
            let worst = match self.best.peek() {
                Some(w) if self.best.len() >= ef => w.distance,
                _ => f32::INFINITY,
            };
            for &(node, estimate) in &out {
                let c = Candidate {
                    distance: estimate,
                    node,
                };
                if estimate > worst {
                    self.deferred.push(c);
                } else {
                    self.frontier.push(Reverse(c));
                }
            }
        }
        self.out = out;
        let horizon = if self.exhausted {
            f32::INFINITY
        } else {
            let mut d: Vec<f32> = self.found.iter().map(|c| c.distance).collect();
            // As in the plain scan: the first round hands out all it found.
            let depth = if self.rounds == 0 {
                ef
            } else {
                ef.div_ceil(super::scan::HANDOUT_DIVISOR)
            };
            let k = depth.clamp(1, d.len().max(1));
            if d.is_empty() {
                f32::INFINITY
            } else {
                *d.select_nth_unstable_by(k - 1, f32::total_cmp).1
            }
        };
        self.rounds += 1;
        self.handout.settle(&self.found, horizon);
    }
}

/// An in-memory graph whose level-0 lists carry their neighbours' codes,
/// taken around the list's node and stored as index pages store them
/// (code and packed factors): for tests and in-process measurements.
pub struct CodedMemory<'a> {
    graph: &'a MemoryGraph,
    quantizer: Quantizer,
    slots: usize,
    /// Bytes of one entry.
    entry: usize,
    entries: Vec<u8>,
    lists: Vec<NodeId>,
    counts: Vec<u8>,
}

impl<'a> CodedMemory<'a> {
    /// Codes every level-0 list of a built graph (in parallel).
    pub fn new(graph: &'a MemoryGraph, quantizer: Quantizer) -> CodedMemory<'a> {
        let slots = graph.params().max_neighbors(0);
        let entry = quantizer.entry_bytes(graph.params().metric);
        let per_node: Vec<(Vec<NodeId>, Vec<u8>)> = (0..graph.len() as NodeId)
            .into_par_iter()
            .map(|node| {
                let mut list = Vec::new();
                graph.neighbors(node, 0, &mut list);
                let center = quantizer.center(graph.vector(node));
                let mut entries = vec![0u8; list.len() * entry];
                for (&n, bytes) in list.iter().zip(entries.chunks_exact_mut(entry)) {
                    quantizer.encode_entry(&center, graph.vector(n), bytes);
                }
                (list, entries)
            })
            .collect();
        let mut c = CodedMemory {
            graph,
            quantizer,
            slots,
            entry,
            entries: vec![0; graph.len() * slots * entry],
            lists: vec![0; graph.len() * slots],
            counts: Vec::with_capacity(graph.len()),
        };
        for (node, (list, entries)) in per_node.into_iter().enumerate() {
            let base = node * slots;
            c.counts.push(list.len() as u8);
            c.lists[base..base + list.len()].copy_from_slice(&list);
            c.entries[base * entry..base * entry + entries.len()].copy_from_slice(&entries);
        }
        c
    }
}

impl GraphStore for CodedMemory<'_> {
    fn params(&self) -> &Params {
        self.graph.params()
    }
    fn entry(&self) -> Option<Entry> {
        self.graph.entry()
    }
    fn distance(&self, query: &Point, node: NodeId) -> f32 {
        self.graph.distance(query, node)
    }
    fn distance_between(&self, a: NodeId, b: NodeId) -> f32 {
        self.graph.distance_between(a, b)
    }
    fn copy_vector(&self, node: NodeId, out: &mut Vec<f32>) -> f32 {
        self.graph.copy_vector(node, out)
    }
    fn neighbors(&self, node: NodeId, level: u8, out: &mut Vec<NodeId>) {
        self.graph.neighbors(node, level, out)
    }
}

impl CodedStore for CodedMemory<'_> {
    fn quantizer(&self) -> &Quantizer {
        &self.quantizer
    }

    fn expand(
        &self,
        query: &Point,
        coded: &Query,
        node: NodeId,
        wanted: &mut dyn FnMut(NodeId) -> bool,
        out: &mut Vec<(NodeId, f32)>,
    ) -> (f32, bool) {
        let metric = self.params().metric;
        let v = self.graph.vector(node);
        let exact = metric.distance(&query.vec, query.aux, v, self.graph.aux(node));
        let center_sq = quant::center_sq(metric, exact, &query.vec, v);
        let base = node as usize * self.slots;
        for i in base..base + usize::from(self.counts[node as usize]) {
            let n = self.lists[i];
            if !wanted(n) {
                continue;
            }
            let entry = &self.entries[i * self.entry..(i + 1) * self.entry];
            if let Some(estimate) = self
                .quantizer
                .estimate_entry(metric, coded, center_sq, entry)
            {
                out.push((n, estimate));
            }
        }
        (exact, true)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::hnsw::search::descend;
    use crate::hnsw::Metric;
    use rand::{Rng, SeedableRng};
    use std::sync::atomic::{AtomicBool, AtomicUsize};

    fn clustered(n: usize, dims: usize, seed: u64) -> Vec<Vec<f32>> {
        let mut rng = rand::rngs::SmallRng::seed_from_u64(seed);
        let centres: Vec<Vec<f32>> = (0..40)
            .map(|_| (0..dims).map(|_| rng.gen_range(-1.0..1.0)).collect())
            .collect();
        (0..n)
            .map(|_| {
                let c = &centres[rng.gen_range(0..centres.len())];
                c.iter().map(|x| x + rng.gen_range(-0.25..0.25)).collect()
            })
            .collect()
    }

    fn built(metric: Metric, data: &[Vec<f32>]) -> MemoryGraph {
        let params = Params {
            metric,
            m: 12,
            ef_construction: 64,
        };
        let mut g = MemoryGraph::new(params, data[0].len(), 3);
        for v in data {
            g.push(&metric.prepare(v).expect("indexable"));
        }
        g.build(&AtomicUsize::new(0), &AtomicBool::new(false));
        g
    }

    /// Recall@10 of the coded scan against brute force, and that it hands
    /// out exact distances in order.
    fn scan_recall(metric: Metric, bits: u8) -> f64 {
        let mut data = clustered(4040, 48, 17);
        let queries = data.split_off(4000);
        let graph = built(metric, &data);
        let coded = CodedMemory::new(&graph, Quantizer::new(48, bits, None, 5));
        let mut hits = 0;
        for q in &queries {
            let q = metric.prepare(q).expect("indexable");
            let mut exact: Vec<Candidate> = (0..graph.len() as NodeId)
                .map(|n| Candidate {
                    distance: graph.distance(&q, n),
                    node: n,
                })
                .collect();
            exact.sort_unstable();
            let truth: Vec<NodeId> = exact[..10].iter().map(|c| c.node).collect();
            let prepared = coded.quantizer().query(&q.vec);
            let entry = graph.entry().expect("entry");
            let start = descend(&graph, &q, entry, 0, &mut Vec::new());
            let mut scan = CodedScan::new(40);
            let mut last = f32::NEG_INFINITY;
            let mut got = Vec::new();
            while let Some(c) = scan.next(&coded, &q, &prepared, start.node, usize::MAX) {
                assert!(c.distance >= last, "out of order");
                assert_eq!(c.distance, graph.distance(&q, c.node), "not exact");
                last = c.distance;
                got.push(c.node);
                if got.len() == 10 {
                    break;
                }
            }
            hits += got.iter().filter(|n| truth.contains(n)).count();
        }
        hits as f64 / (10 * queries.len()) as f64
    }

    #[test]
    fn coded_scans_find_the_nearest_in_exact_order() {
        for metric in [Metric::L2, Metric::Cosine, Metric::InnerProduct] {
            let recall = scan_recall(metric, 2);
            // Inner product on unnormalised vectors ranks less well in any
            // HNSW (the README says so).
            let floor = if metric == Metric::InnerProduct {
                0.8
            } else {
                0.95
            };
            assert!(recall >= floor, "{metric:?}: recall {recall}");
        }
    }

    #[test]
    fn a_coded_scan_continues_to_every_node() {
        let data = clustered(600, 16, 4);
        let graph = built(Metric::L2, &data);
        let coded = CodedMemory::new(&graph, Quantizer::new(16, 1, None, 1));
        let q = Metric::L2.prepare(&data[7]).expect("ok");
        let prepared = coded.quantizer().query(&q.vec);
        let start = graph.entry().expect("entry").node;
        let mut scan = CodedScan::new(10);
        let mut seen = std::collections::HashSet::new();
        while let Some(c) = scan.next(&coded, &q, &prepared, start, usize::MAX) {
            assert!(seen.insert(c.node), "node {} twice", c.node);
        }
        assert_eq!(seen.len() + scan.dropped(), graph.len());
    }
}
