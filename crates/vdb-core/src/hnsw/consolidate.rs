//! Consolidating deletes in one batch, without searching the graph.
//!
//! When VACUUM removes many nodes at once, searching every damaged list's
//! neighbourhood again (as [`super::repair::repair_removed`] does) costs a
//! layer search per list. The removed nodes' own lists already name what a
//! search would find near them: a list that lost members is refilled from
//! its live members and the live neighbours of the members it lost
//! (looking one step further through removed nodes when those give too
//! few), nearest first, pruned with the selection heuristic and topped up
//! to its former length (FreshDiskANN's delete consolidation). Each list is
//! independent of the others, so a batch runs on many threads over vectors
//! copied out beforehand; a list left with less than half its former
//! length is handed back for the search-based repair.

use super::{Candidate, GraphStore, Metric, NodeId};
use std::collections::HashMap;

/// One damaged list: `node`'s list on `level` as it was, naming at least
/// one removed node.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Damaged {
    pub node: NodeId,
    pub level: u8,
    pub list: Vec<NodeId>,
}

/// The removed nodes' own lists, by (node, level).
pub type RemovedLists = HashMap<(NodeId, u8), Vec<NodeId>>;

/// Vectors of the nodes a batch reads, copied out of the store once.
#[derive(Debug, Default)]
pub struct Copied {
    rows: HashMap<NodeId, usize>,
    vecs: Vec<f32>,
    aux: Vec<f32>,
    dims: usize,
}

impl Copied {
    /// Copies the vectors of `nodes` (repeats are copied once).
    pub fn of<S: GraphStore + ?Sized>(store: &S, nodes: impl IntoIterator<Item = NodeId>) -> Self {
        let mut c = Copied::default();
        for n in nodes {
            if c.rows.contains_key(&n) {
                continue;
            }
            let before = c.vecs.len();
            let aux = store.copy_vector(n, &mut c.vecs);
            c.dims = c.vecs.len() - before;
            c.rows.insert(n, c.aux.len());
            c.aux.push(aux);
        }
        c
    }

    fn row(&self, n: NodeId) -> Option<(&[f32], f32)> {
        let &i = self.rows.get(&n)?;
        Some((&self.vecs[i * self.dims..(i + 1) * self.dims], self.aux[i]))
    }

    /// Distance between two copied nodes; infinite for one not copied.
    pub fn distance(&self, metric: Metric, a: NodeId, b: NodeId) -> f32 {
        match (self.row(a), self.row(b)) {
            (Some((va, xa)), Some((vb, xb))) => metric.distance(va, xa, vb, xb),
            _ => f32::INFINITY,
        }
    }
}

/// The nodes a damaged list may be refilled from: the live neighbours of
/// its removed members, then (if those are fewer than `enough`) the live
/// neighbours of removed nodes those lead to. Sorted, without repeats,
/// without the list's own node or live members.
pub fn candidates(
    damaged: &Damaged,
    removed: &RemovedLists,
    is_gone: &dyn Fn(NodeId) -> bool,
    enough: usize,
) -> Vec<NodeId> {
    let mut found: Vec<NodeId> = Vec::new();
    let mut via: Vec<NodeId> = damaged
        .list
        .iter()
        .copied()
        .filter(|&x| is_gone(x))
        .collect();
    let mut seen_via: Vec<NodeId> = via.clone();
    for _depth in 0..2 {
        let mut next = Vec::new();
        for r in &via {
            let Some(theirs) = removed.get(&(*r, damaged.level)) else {
                continue;
            };
            for &x in theirs {
                if x == damaged.node {
                    continue;
                }
                if is_gone(x) {
                    if !seen_via.contains(&x) {
                        seen_via.push(x);
                        next.push(x);
                    }
                } else if !damaged.list.contains(&x) {
                    found.push(x);
                }
            }
        }
        found.sort_unstable();
        found.dedup();
        if found.len() >= enough {
            break;
        }
        via = next;
    }
    found
}

/// The new list of `damaged`, at most `len` long (`len`: the level's
/// bound; a level-0 list keeps its former length), or `None` if it would
/// keep less than half its former length (the caller then searches).
/// `pool` bounds how many candidates, nearest first, the heuristic sees.
#[allow(clippy::too_many_arguments)]
pub fn refill_damaged(
    metric: Metric,
    copied: &Copied,
    damaged: &Damaged,
    candidates: &[NodeId],
    is_gone: &dyn Fn(NodeId) -> bool,
    len: usize,
    pool: usize,
) -> Option<Vec<NodeId>> {
    let base = damaged.node;
    let kept: Vec<NodeId> = damaged
        .list
        .iter()
        .copied()
        .filter(|&x| !is_gone(x))
        .collect();
    let mut fresh: Vec<Candidate> = candidates
        .iter()
        .map(|&n| Candidate {
            distance: copied.distance(metric, base, n),
            node: n,
        })
        .filter(|c| c.distance.is_finite())
        .collect();
    fresh.sort_unstable();
    fresh.truncate(pool);
    // As `select::refill`: the live members stay, candidates join when no
    // member is closer to them than the base is, then the nearest of the
    // rest until the list is as long as it may be.
    let mut list = kept;
    let mut skipped = Vec::new();
    for c in &fresh {
        if list.len() >= len {
            break;
        }
        if list
            .iter()
            .any(|&k| copied.distance(metric, c.node, k) < c.distance)
        {
            skipped.push(c.node);
        } else {
            list.push(c.node);
        }
    }
    let room = len.saturating_sub(list.len());
    list.extend(skipped.into_iter().take(room));
    let former = damaged.list.len().min(len);
    (2 * list.len() >= former).then_some(list)
}
