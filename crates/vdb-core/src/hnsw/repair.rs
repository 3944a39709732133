//! Keeping the graph navigable when nodes go away, and every node
//! reachable from the entry point.
//!
//! [`repair_removed`]: when VACUUM removes nodes, every list that pointed
//! to one is redone: the owner's neighbourhood is searched again (from
//! its current list; removed nodes still link onwards until the store
//! frees them) and the list refilled from the live nodes found.
//!
//! A node gets an incoming edge when it is inserted, but a later insert
//! can prune that edge away (the neighbour's list filled up with closer
//! points), and small groups of nodes can end up pointing only at each
//! other. A node no path leads to can never be found, so after bulk
//! changes every unreachable node is linked from its nearest reachable one.
//! That node makes room by dropping its farthest neighbour that something
//! else also points to, so the repair never strands another node.

use super::search::{descend, search_layer, LayerSearch};
use super::select::refill;
use super::{Candidate, GraphWrite, NodeId, Point};

/// Redoes every list of a live node among `0..count` that names a node
/// `is_gone` rules out. `level_of(n)` is node `n`'s level and `point_of(n)`
/// its stored vector; `progress(n)` is called before each node (to check
/// for interrupts). Returns how many lists changed.
pub fn repair_removed<S: GraphWrite + ?Sized>(
    store: &S,
    count: u32,
    level_of: &dyn Fn(NodeId) -> u8,
    point_of: &dyn Fn(NodeId) -> Point,
    is_gone: &dyn Fn(NodeId) -> bool,
    progress: &mut dyn FnMut(NodeId),
) -> usize {
    let (mut list, mut theirs) = (Vec::new(), Vec::new());
    let mut search = LayerSearch::new();
    let mut changed = 0;
    for node in 0..count {
        if is_gone(node) {
            continue;
        }
        progress(node);
        let mut point = None;
        for level in 0..=level_of(node) {
            store.neighbors(node, level, &mut list);
            if !list.iter().any(|&x| is_gone(x)) {
                continue;
            }
            let point = point.get_or_insert_with(|| point_of(node));
            let starts: Vec<Candidate> = list
                .iter()
                .map(|&x| Candidate {
                    distance: store.distance(point, x),
                    node: x,
                })
                .collect();
            let mut found = search_layer(
                store,
                &mut search,
                point,
                &starts,
                level,
                store.params().ef_construction,
            );
            // The removed nodes' own links join the candidates: they carry
            // the long links (to other clusters, say) a local search would
            // not find again, and that the upper levels navigate by.
            // Removed nodes that only lead to removed nodes are looked
            // through, two steps deep.
            let mut via: Vec<NodeId> = list.iter().copied().filter(|&x| is_gone(x)).collect();
            for depth in 0..2 {
                let mut next = Vec::new();
                for &removed in &via {
                    store.neighbors(removed, level, &mut theirs);
                    for &x in &theirs {
                        if x == node || found.iter().any(|c| c.node == x) {
                            continue;
                        }
                        found.push(Candidate {
                            distance: store.distance(point, x),
                            node: x,
                        });
                        if depth == 0 && is_gone(x) {
                            next.push(x);
                        }
                    }
                }
                via = next;
            }
            found.retain(|c| c.node != node && !is_gone(c.node));
            found.sort_unstable();
            let live: Vec<NodeId> = list.iter().copied().filter(|&x| !is_gone(x)).collect();
            let len = if level > 0 {
                store.params().max_neighbors(level)
            } else {
                list.len().min(store.params().max_neighbors(level))
            };
            let kept = refill(store, &live, &found, len);
            store.update_neighbors(node, level, &mut |current: &mut Vec<NodeId>| {
                *current = kept.clone()
            });
            changed += 1;
        }
    }
    changed
}

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
