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
use super::select::{farthest_pruned, select_neighbors, select_rows, Gathered};
use super::{Candidate, GraphStore, GraphWrite, Metric, NodeId, Point};

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
        let mut kept = false;
        for &neighbor in list {
            store.update_neighbors(neighbor, level, &mut |current: &mut Vec<NodeId>| {
                add_neighbor(store, neighbor, current, node, level);
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
    level: u8,
) {
    let max = store.params().max_neighbors(level);
    if current.contains(&new) {
        return;
    }
    if current.len() < max {
        current.push(new);
        return;
    }
    *current = Reselect::gather(store, base, current, new, level).run(store.params().metric);
}

/// A full neighbour list to re-select after adding one node: the vectors
/// are copied out first, so the work itself touches no store and can run
/// on any thread.
#[derive(Debug, Clone)]
pub struct Reselect {
    /// Row 0: the list's owner; then the current members and the new node.
    rows: Gathered,
    max: usize,
}

impl Reselect {
    pub fn gather<S: GraphStore + ?Sized>(
        store: &S,
        base: NodeId,
        current: &[NodeId],
        new: NodeId,
        level: u8,
    ) -> Reselect {
        let mut nodes = Vec::with_capacity(current.len() + 2);
        nodes.push(base);
        nodes.extend_from_slice(current);
        nodes.push(new);
        Reselect {
            rows: Gathered::of(store, &nodes),
            max: store.params().max_neighbors(level),
        }
    }

    /// The new list.
    pub fn run(&self, metric: Metric) -> Vec<NodeId> {
        let max = self.max;
        let mut order: Vec<(f32, usize)> = (1..self.rows.nodes.len())
            .map(|i| (self.rows.distance(metric, 0, i), i))
            .collect();
        order.sort_unstable_by(|a, b| {
            a.0.total_cmp(&b.0)
                .then(self.rows.nodes[a.1].cmp(&self.rows.nodes[b.1]))
        });
        if metric.keeps_pruned() && order.len() == max + 1 {
            let dropped = farthest_pruned(metric, &self.rows, &order);
            return order
                .iter()
                .enumerate()
                .filter(|&(at, _)| at != dropped)
                .map(|(_, &(_, i))| self.rows.nodes[i])
                .collect();
        }
        let kept = if order.len() <= max {
            order.iter().map(|&(_, i)| i).collect()
        } else {
            select_rows(metric, &self.rows, &order, max)
        };
        kept.into_iter().map(|i| self.rows.nodes[i]).collect()
    }
}

/// [`link_back`] in three steps, for a store whose reads and writes must
/// stay on one thread while the re-selections run on others: `compute`
/// gets the full lists' work and returns their new lists, in order.
pub fn link_back_with<S: GraphWrite + ?Sized>(
    store: &S,
    node: NodeId,
    plan: &Plan,
    compute: impl FnOnce(&[Reselect], Metric) -> Vec<Vec<NodeId>>,
) {
    // 1. Read each chosen neighbour's list; gather the full ones.
    let mut lists = Vec::new();
    let mut work = Vec::new();
    let mut list = Vec::new();
    for (level, chosen) in plan.lists.iter().enumerate() {
        let max = store.params().max_neighbors(level as u8);
        for &neighbor in chosen {
            store.neighbors(neighbor, level as u8, &mut list);
            let job = (list.len() >= max && !list.contains(&node)).then(|| {
                work.push(Reselect::gather(store, neighbor, &list, node, level as u8));
                work.len() - 1
            });
            lists.push((level as u8, neighbor, list.clone(), job));
        }
    }
    // 2. Re-select the full lists.
    let results = if work.is_empty() {
        Vec::new()
    } else {
        compute(&work, store.params().metric)
    };
    // 3. Write the new lists; a list that changed meanwhile is redone.
    let mut kept0 = false;
    for (level, neighbor, before, job) in lists {
        store.update_neighbors(neighbor, level, &mut |current: &mut Vec<NodeId>| {
            match job.and_then(|j| results.get(j)) {
                Some(new) if *current == before => *current = new.clone(),
                _ => add_neighbor(store, neighbor, current, node, level),
            }
            kept0 |= level == 0 && current.contains(&node);
        });
    }
    if !kept0 {
        if let Some(&nearest) = plan.lists.first().and_then(|l| l.first()) {
            store.update_neighbors(nearest, 0, &mut |current: &mut Vec<NodeId>| {
                replace_farthest(store, nearest, current, node);
            });
        }
    }
}

/// Runs re-selections one after another.
pub fn compute_serially(work: &[Reselect], metric: Metric) -> Vec<Vec<NodeId>> {
    work.iter().map(|w| w.run(metric)).collect()
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
