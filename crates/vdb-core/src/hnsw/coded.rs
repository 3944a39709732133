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

use super::visited::Visited;
use super::{Candidate, GraphStore, NodeId, Point};
use crate::quant::{Quantizer, Query};
use std::cmp::Reverse;
use std::collections::BinaryHeap;

/// A graph whose level-0 lists carry neighbour codes.
pub trait CodedStore: GraphStore {
    fn quantizer(&self) -> &Quantizer;

    /// Reads `node` once: returns its exact graph distance from `query`,
    /// and puts each level-0 neighbour with its estimated distance into
    /// `out`, for those `wanted` accepts.
    fn expand(
        &self,
        query: &Point,
        coded: &Query,
        node: NodeId,
        wanted: &mut dyn FnMut(NodeId) -> bool,
        out: &mut Vec<(NodeId, f32)>,
    ) -> f32;
}

/// Reusable state of coded searches.
#[derive(Debug, Default)]
pub struct CodedSearch {
    frontier: BinaryHeap<Reverse<Candidate>>,
    best: BinaryHeap<Candidate>,
    visited: Visited,
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
        self.visited.clear();
        self.expanded = 0;
        self.visited.insert(start);
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
            out.clear();
            let visited = &mut self.visited;
            let exact = store.expand(
                query,
                coded,
                next.node,
                &mut |n| visited.insert(n),
                &mut out,
            );
            self.expanded += 1;
            self.best.push(Candidate {
                distance: exact,
                node: next.node,
            });
            if self.best.len() > ef {
                self.best.pop();
            }
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
