//! Inserting a point (the paper's Algorithm 1), in two steps so that each
//! store can place the new node itself between them:
//!
//! 1. [`plan`]: search the graph (read-only) and choose the new node's
//!    neighbour list on every level;
//! 2. the store writes the node with those lists (in memory: fills its
//!    slot; on pages: one WAL record that creates it);
//! 3. [`link_back`]: add the new node to each chosen neighbour's list,
//!    pruning lists that overflow with the same heuristic.
//!
//! A node is complete before anything points to it, so a search never
//! reaches a half-written node.

use super::search::{descend, search_layer, LayerSearch};
use super::select::select_neighbors;
use super::{Candidate, GraphStore, GraphWrite, NodeId, Point};

/// The neighbour lists of a node about to be inserted; `lists[l]` is its
/// list on level `l`, for `l` in `0..=level`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Plan {
    pub level: u8,
    pub lists: Vec<Vec<NodeId>>,
    /// The closest node found on level 0 (to detect an exact duplicate).
    pub nearest: Option<Candidate>,
}

/// Chooses the neighbours of a new point of the given level. `this` is the
/// node's own id when it is already in the store (it is never its own
/// neighbour).
pub fn plan<S: GraphStore + ?Sized>(
    store: &S,
    search: &mut LayerSearch,
    point: &Point,
    level: u8,
    this: Option<NodeId>,
) -> Plan {
    let params = *store.params();
    let mut lists = vec![Vec::new(); usize::from(level) + 1];
    let Some(entry) = store.entry() else {
        return Plan {
            level,
            lists,
            nearest: None,
        };
    };
    if Some(entry.node) == this {
        return Plan {
            level,
            lists,
            nearest: None,
        };
    }
    let mut scratch = Vec::new();
    let start = descend(store, point, entry, level, &mut scratch);
    let mut starts = vec![start];
    let mut nearest_found = None;
    for lc in (0..=level.min(entry.level)).rev() {
        let mut nearest = search_layer(store, search, point, &starts, lc, params.ef_construction);
        nearest.retain(|c| Some(c.node) != this);
        if lc == 0 {
            nearest_found = nearest.first().copied();
        }
        let chosen = select_neighbors(store, &nearest, params.max_neighbors(lc));
        lists[usize::from(lc)] = chosen.iter().map(|c| c.node).collect();
        if !nearest.is_empty() {
            starts = nearest;
        }
    }
    Plan {
        level,
        lists,
        nearest: nearest_found,
    }
}

/// Adds `node` to the lists of the neighbours `plan` chose for it.
///
/// If no neighbour keeps it on level 0 (every list full of closer points,
/// as for an outlier), the nearest neighbour trades its farthest link for
/// it: a node without an incoming edge could never be found.
pub fn link_back<S: GraphWrite + ?Sized>(store: &S, node: NodeId, plan: &Plan) {
    for (level, list) in plan.lists.iter().enumerate() {
        let level = level as u8;
        let max = store.params().max_neighbors(level);
        let mut kept = false;
        for &neighbor in list {
            store.update_neighbors(neighbor, level, &mut |current: &mut Vec<NodeId>| {
                add_neighbor(store, neighbor, current, node, max);
                kept |= current.contains(&node);
            });
        }
        if level == 0 && !kept {
            if let Some(&nearest) = list.first() {
                store.update_neighbors(nearest, 0, &mut |current: &mut Vec<NodeId>| {
                    replace_farthest(store, nearest, current, node);
                });
            }
        }
    }
}

/// Adds `new` to `base`'s list `current`, re-selecting with the heuristic
/// when the list is full.
pub fn add_neighbor<S: GraphStore + ?Sized>(
    store: &S,
    base: NodeId,
    current: &mut Vec<NodeId>,
    new: NodeId,
    max: usize,
) {
    if current.contains(&new) {
        return;
    }
    if current.len() < max {
        current.push(new);
        return;
    }
    let mut candidates: Vec<Candidate> = current
        .iter()
        .chain(std::iter::once(&new))
        .map(|&n| Candidate {
            distance: store.distance_between(base, n),
            node: n,
        })
        .collect();
    candidates.sort_unstable();
    *current = select_neighbors(store, &candidates, max)
        .into_iter()
        .map(|c| c.node)
        .collect();
}

/// Puts `new` in place of the neighbour of `base` farthest from it.
pub fn replace_farthest<S: GraphStore + ?Sized>(
    store: &S,
    base: NodeId,
    current: &mut Vec<NodeId>,
    new: NodeId,
) {
    if current.contains(&new) {
        return;
    }
    let farthest = current
        .iter()
        .enumerate()
        .map(|(i, &n)| (store.distance_between(base, n), i))
        .max_by(|a, b| a.0.total_cmp(&b.0));
    match farthest {
        Some((_, i)) => current[i] = new,
        None => current.push(new),
    }
}
