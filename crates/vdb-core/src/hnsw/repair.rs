//! Keeping every node reachable from the entry point.
//!
//! A node gets an incoming edge when it is inserted, but a later insert
//! can prune that edge away (the neighbour's list filled up with closer
//! points), and small groups of nodes can end up pointing only at each
//! other. A node no path leads to can never be found, so after bulk
//! changes every unreachable node is linked from its nearest reachable one.
//! That node makes room by dropping its farthest neighbour that something
//! else also points to, so the repair never strands another node.

use super::search::{descend, search_layer, LayerSearch};
use super::{GraphWrite, NodeId, Point};

/// Marks in `reached` everything reachable from `start` (any level).
fn mark_from<S: GraphWrite + ?Sized>(
    store: &S,
    start: NodeId,
    reached: &mut [bool],
    levels: &dyn Fn(NodeId) -> u8,
) {
    if std::mem::replace(&mut reached[start as usize], true) {
        return;
    }
    let mut stack = vec![start];
    let mut list = Vec::new();
    while let Some(node) = stack.pop() {
        for level in 0..=levels(node) {
            store.neighbors(node, level, &mut list);
            for &n in &list {
                if let Some(r) = reached.get_mut(n as usize) {
                    if !std::mem::replace(r, true) {
                        stack.push(n);
                    }
                }
            }
        }
    }
}

/// Nodes among `0..count` no path from the entry point reaches, except
/// those `skip` rules out (deleted ones). `levels(n)` is node `n`'s level.
pub fn unreachable<S: GraphWrite + ?Sized>(
    store: &S,
    count: u32,
    levels: &dyn Fn(NodeId) -> u8,
    skip: &dyn Fn(NodeId) -> bool,
) -> Vec<NodeId> {
    let mut reached = vec![false; count as usize];
    if let Some(entry) = store.entry() {
        mark_from(store, entry.node, &mut reached, levels);
    }
    (0..count)
        .filter(|&n| !reached[n as usize] && !skip(n))
        .collect()
}

/// Links every unreachable node from its nearest reachable node. `point(n)`
/// loads node `n`'s stored vector. Returns how many links were made.
pub fn link_unreachable<S: GraphWrite + ?Sized>(
    store: &S,
    count: u32,
    levels: &dyn Fn(NodeId) -> u8,
    point: &dyn Fn(NodeId) -> Point,
    skip: &dyn Fn(NodeId) -> bool,
) -> usize {
    let Some(entry) = store.entry() else {
        return 0;
    };
    let max = store.params().max_neighbors(0);
    let mut linked = 0;
    let mut search = LayerSearch::new();
    let mut list = Vec::new();
    // Level-0 in-degrees, to know which links can be given up.
    let mut in_degree = vec![0u32; count as usize];
    for node in 0..count {
        store.neighbors(node, 0, &mut list);
        for &n in &list {
            if let Some(d) = in_degree.get_mut(n as usize) {
                *d += 1;
            }
        }
    }
    for _ in 0..4 {
        let mut reached = vec![false; count as usize];
        mark_from(store, entry.node, &mut reached, levels);
        let lost: Vec<NodeId> = (0..count)
            .filter(|&n| !reached[n as usize] && !skip(n))
            .collect();
        if lost.is_empty() {
            break;
        }
        for node in lost {
            if reached[node as usize] {
                continue; // reached through a node linked earlier in this round
            }
            store.neighbors(node, 0, &mut list);
            let mut candidates: Vec<NodeId> = list
                .iter()
                .copied()
                .filter(|&n| reached[n as usize] && !skip(n))
                .collect();
            if candidates.is_empty() {
                // Find reachable neighbours the way a search would.
                let p = point(node);
                let mut scratch = Vec::new();
                let start = descend(store, &p, entry, 0, &mut scratch);
                let found = search_layer(
                    store,
                    &mut search,
                    &p,
                    &[start],
                    0,
                    store.params().ef_construction,
                );
                candidates = found
                    .iter()
                    .map(|c| c.node)
                    .filter(|&n| n != node && !skip(n))
                    .collect();
            }
            candidates.sort_by(|&a, &b| {
                store
                    .distance_between(node, a)
                    .total_cmp(&store.distance_between(node, b))
            });
            for via in candidates {
                let mut dropped = None;
                let mut added = false;
                store.update_neighbors(via, 0, &mut |current: &mut Vec<NodeId>| {
                    if current.contains(&node) {
                        added = true;
                    } else if current.len() < max {
                        current.push(node);
                        added = true;
                    } else if let Some(i) = farthest_spare(store, via, current, &in_degree) {
                        dropped = Some(current[i]);
                        current[i] = node;
                        added = true;
                    }
                });
                if added {
                    if let Some(d) = dropped {
                        in_degree[d as usize] -= 1;
                    }
                    in_degree[node as usize] += 1;
                    linked += 1;
                    mark_from(store, node, &mut reached, levels);
                    break;
                }
            }
        }
    }
    linked
}

/// Index in `current` of `base`'s farthest neighbour that another node
/// also points to (so dropping it strands nobody).
fn farthest_spare<S: GraphWrite + ?Sized>(
    store: &S,
    base: NodeId,
    current: &[NodeId],
    in_degree: &[u32],
) -> Option<usize> {
    current
        .iter()
        .enumerate()
        .filter(|(_, &n)| in_degree.get(n as usize).is_some_and(|&d| d > 1))
        .map(|(i, &n)| (store.distance_between(base, n), i))
        .max_by(|a, b| a.0.total_cmp(&b.0))
        .map(|(_, i)| i)
}
