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
//! A full list makes room by dropping its farthest neighbour that the entry
//! point still reaches another way: one whose edge is not on the spanning
//! tree of the search that found the reachable nodes. So the repair never
//! strands another node, and the reachable set only grows.

use super::search::{descend, search_layer, LayerSearch};
use super::select::refill;
use super::{Candidate, GraphWrite, NodeId, Point};

/// Redoes every list of a live node among `nodes` that names a node
/// `is_gone` rules out. `level_of(n)` is node `n`'s level and `point_of(n)`
/// its stored vector; `progress(n)` is called before each node (to check
/// for interrupts). Returns how many lists changed.
pub fn repair_removed<S: GraphWrite + ?Sized>(
    store: &S,
    nodes: &mut dyn Iterator<Item = NodeId>,
    level_of: &dyn Fn(NodeId) -> u8,
    point_of: &dyn Fn(NodeId) -> Point,
    is_gone: &dyn Fn(NodeId) -> bool,
    progress: &mut dyn FnMut(NodeId),
) -> usize {
    let (mut list, mut theirs) = (Vec::new(), Vec::new());
    let mut search = LayerSearch::new();
    let mut changed = 0;
    for node in nodes {
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

/// `parent0[n]` of a node no level-0 edge of the spanning tree reaches.
const NO_PARENT: NodeId = NodeId::MAX;

/// Marks in `reached` everything reachable from `start` (any level). With
/// `parent0`, records the spanning tree of the walk: `parent0[n]` is the
/// node whose level-0 list first reached `n` (left alone when an upper
/// level did). Any other edge can go without stranding a node.
fn mark_from<S: GraphWrite + ?Sized>(
    store: &S,
    start: NodeId,
    reached: &mut [bool],
    mut parent0: Option<&mut [NodeId]>,
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
                        if let (0, Some(p)) = (level, parent0.as_deref_mut()) {
                            p[n as usize] = node;
                        }
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
        mark_from(store, entry.node, &mut reached, None, levels);
    }
    (0..count)
        .filter(|&n| !reached[n as usize] && !skip(n))
        .collect()
}

/// Links every unreachable node from its nearest reachable node. `point(n)`
/// loads node `n`'s stored vector. Returns how many links were made.
///
/// Candidates are tried nearest first: the node's own reachable
/// neighbours, then what a search finds, then (should all of those have
/// full lists of tree edges) every reachable node.
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
    let mut reached = vec![false; count as usize];
    let mut parent0 = vec![NO_PARENT; count as usize];
    mark_from(store, entry.node, &mut reached, Some(&mut parent0), levels);
    let lost: Vec<NodeId> = (0..count)
        .filter(|&n| !reached[n as usize] && !skip(n))
        .collect();
    let mut linked = 0;
    let mut search = LayerSearch::new();
    let mut list = Vec::new();
    let chain = store.params().metric.is_inner_product();
    let mut previous: Option<NodeId> = None;
    for node in lost {
        if reached[node as usize] {
            continue; // reached through a node linked before it
        }
        // Under inner product most low-norm points are unreachable after
        // a build (no list keeps them: a high-norm point is "nearer" to
        // everything), and their nearest reachable nodes are the few
        // high-norm hubs every search runs through. Linking them all from
        // those hubs filled the hubs' lists with them (recall@20 at
        // ef_search 40 fell from 1.00 to 0.92 on pgvector's 012 case). So
        // each is linked from the one linked before it: they hang off one
        // hub in a chain, each giving up its own farthest link.
        if let Some(prev) = previous.filter(|_| chain) {
            if link(store, prev, node, &parent0) {
                linked += 1;
                parent0[node as usize] = prev;
                mark_from(store, node, &mut reached, Some(&mut parent0), levels);
                previous = Some(node);
                continue;
            }
        }
        let p = point(node);
        let usable = |n: NodeId, reached: &[bool]| n != node && reached[n as usize] && !skip(n);
        let by_distance = |nodes: &mut dyn Iterator<Item = NodeId>| {
            let mut c: Vec<Candidate> = nodes
                .map(|n| Candidate {
                    distance: store.distance(&p, n),
                    node: n,
                })
                .collect();
            c.sort_unstable();
            c.dedup_by_key(|c| c.node);
            c
        };
        store.neighbors(node, 0, &mut list);
        let mut tried = Vec::new();
        for stage in 0..3 {
            let candidates = match stage {
                0 => by_distance(&mut list.iter().copied().filter(|&n| usable(n, &reached))),
                1 => {
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
                    by_distance(
                        &mut found
                            .iter()
                            .map(|c| c.node)
                            .filter(|&n| usable(n, &reached) && !tried.contains(&n)),
                    )
                }
                _ => by_distance(
                    &mut (0..count).filter(|&n| usable(n, &reached) && !tried.contains(&n)),
                ),
            };
            let via = candidates
                .iter()
                .map(|c| c.node)
                .inspect(|&n| tried.push(n))
                .find(|&via| link(store, via, node, &parent0));
            if let Some(via) = via {
                linked += 1;
                previous = Some(node);
                parent0[node as usize] = via;
                // The new edge and everything behind it join the tree.
                mark_from(store, node, &mut reached, Some(&mut parent0), levels);
                break;
            }
        }
    }
    linked
}

/// Adds `node` to `via`'s level-0 list, if it has room or a neighbour
/// that the spanning tree `parent0` reaches through another edge (the
/// farthest such goes). Returns whether `via` now links `node`.
fn link<S: GraphWrite + ?Sized>(store: &S, via: NodeId, node: NodeId, parent0: &[NodeId]) -> bool {
    let max = store.params().max_neighbors(0);
    let mut added = false;
    store.update_neighbors(via, 0, &mut |current: &mut Vec<NodeId>| {
        if current.contains(&node) {
            added = true;
        } else if current.len() < max {
            current.push(node);
            added = true;
        } else if let Some(i) = current
            .iter()
            .enumerate()
            .filter(|&(_, &n)| parent0.get(n as usize) != Some(&via))
            .map(|(i, &n)| (store.distance_between(via, n), i))
            .max_by(|a, b| a.0.total_cmp(&b.0))
            .map(|(_, i)| i)
        {
            current[i] = node;
            added = true;
        }
    });
    added
}
