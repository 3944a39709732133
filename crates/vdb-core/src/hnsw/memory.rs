//! The graph `CREATE INDEX` builds in memory, in parallel, before writing
//! it to pages.
//!
//! Everything is a flat array indexed by node id: vectors back to back
//! (`dims` floats each), level-0 lists in fixed `2·m` slots, upper-level
//! lists in fixed `m` slots reached through `upper_start` (only nodes above
//! level 0 have them). Neighbour ids are atomics, so the arrays are shared
//! between rayon threads without `unsafe`; a per-node mutex makes each
//! list's read-modify-write atomic, as in hnswlib.
//!
//! Under inner product every list is full (pruned candidates fill it, see
//! [`super::select`]), so every link-back re-selects a list. Each list
//! keeps which of its members the heuristic prunes among them (as
//! pgvector keeps a `closer` flag per candidate), so that adding one node
//! costs its own comparisons, not the heuristic's pairwise pass.

use super::insert::{link_back, plan, replace_farthest, Plan};
use super::search::LayerSearch;
use super::{Entry, GraphStore, GraphWrite, NodeId, Params, Point};
use parking_lot::{Mutex, RwLock};
use rayon::prelude::*;
use std::cell::RefCell;
use std::sync::atomic::{
    AtomicBool, AtomicU32, AtomicU64, AtomicU8, AtomicUsize, Ordering::Relaxed,
};

const NO_UPPER: u32 = u32::MAX;

/// In a list's status word: the pruned bits below are current (bit `i`
/// set: the list's `i`-th member is pruned by the heuristic among the
/// members). Any other write of the list clears the word.
const STATUS_KNOWN: u64 = 1 << 63;
/// Longest list whose statuses fit in the word.
const STATUS_BITS: usize = 63;

#[derive(Debug)]
pub struct MemoryGraph {
    params: Params,
    dims: usize,
    vectors: Vec<f32>,
    aux: Vec<f32>,
    levels: Vec<u8>,
    level0: Vec<AtomicU32>,
    level0_len: Vec<AtomicU8>,
    level0_status: Vec<AtomicU64>,
    upper_start: Vec<u32>,
    upper: Vec<AtomicU32>,
    upper_len: Vec<AtomicU8>,
    upper_status: Vec<AtomicU64>,
    locks: Vec<Mutex<()>>,
    entry: RwLock<Option<Entry>>,
    /// Held by an insert whose level is above the entry point's.
    raise: Mutex<()>,
    seed: u64,
}

impl MemoryGraph {
    /// An empty graph for points of `dims` dimensions; levels are drawn
    /// from `seed` so a build is reproducible.
    pub fn new(params: Params, dims: usize, seed: u64) -> Self {
        MemoryGraph {
            params,
            dims,
            vectors: Vec::new(),
            aux: Vec::new(),
            levels: Vec::new(),
            level0: Vec::new(),
            level0_len: Vec::new(),
            level0_status: Vec::new(),
            upper_start: Vec::new(),
            upper: Vec::new(),
            upper_len: Vec::new(),
            upper_status: Vec::new(),
            locks: Vec::new(),
            entry: RwLock::new(None),
            raise: Mutex::new(()),
            seed,
        }
    }

    /// Bytes one node takes (upper levels averaged in), for memory budgets.
    pub fn bytes_per_node(dims: usize, m: usize) -> usize {
        let level0 = 2 * m * 4 + 1 + 8;
        let upper = (m * 4 + 1 + 8) / m.max(2).saturating_sub(1).max(1) + 1;
        dims * 4 + 4 + 1 + level0 + 4 + upper + 1
    }

    /// Adds an (unlinked) point; returns its node id.
    pub fn push(&mut self, point: &Point) -> NodeId {
        self.try_push(point)
            .unwrap_or_else(|e| panic!("memory graph: {e}"))
    }

    /// Adds an (unlinked) point, or reports that memory ran out instead of
    /// aborting the process: every array grows by fallible reservation
    /// (doubling) before anything is pushed.
    pub fn try_push(&mut self, point: &Point) -> Result<NodeId, std::collections::TryReserveError> {
        debug_assert_eq!(point.vec.len(), self.dims);
        let id = self.levels.len() as NodeId;
        let level = self.params.random_level(self.seed ^ u64::from(id));
        let m = self.params.m;
        let upper = usize::from(level);
        grow(&mut self.vectors, self.dims)?;
        grow(&mut self.aux, 1)?;
        grow(&mut self.levels, 1)?;
        grow(&mut self.level0, 2 * m)?;
        grow(&mut self.level0_len, 1)?;
        grow(&mut self.level0_status, 1)?;
        grow(&mut self.upper_start, 1)?;
        grow(&mut self.upper, upper * m)?;
        grow(&mut self.upper_len, upper)?;
        grow(&mut self.upper_status, upper)?;
        grow(&mut self.locks, 1)?;
        self.vectors.extend_from_slice(&point.vec);
        self.aux.push(point.aux);
        self.levels.push(level);
        self.level0
            .extend((0..2 * self.params.m).map(|_| AtomicU32::new(0)));
        self.level0_len.push(AtomicU8::new(0));
        self.level0_status.push(AtomicU64::new(0));
        if level > 0 {
            self.upper_start.push(self.upper_len.len() as u32);
            for _ in 0..level {
                self.upper
                    .extend((0..self.params.m).map(|_| AtomicU32::new(0)));
                self.upper_len.push(AtomicU8::new(0));
                self.upper_status.push(AtomicU64::new(0));
            }
        } else {
            self.upper_start.push(NO_UPPER);
        }
        self.locks.push(Mutex::new(()));
        Ok(id)
    }

    pub fn len(&self) -> usize {
        self.levels.len()
    }

    pub fn is_empty(&self) -> bool {
        self.levels.is_empty()
    }

    pub fn dims(&self) -> usize {
        self.dims
    }

    pub fn vector(&self, node: NodeId) -> &[f32] {
        let start = node as usize * self.dims;
        &self.vectors[start..start + self.dims]
    }

    pub fn aux(&self, node: NodeId) -> f32 {
        self.aux[node as usize]
    }

    pub fn level(&self, node: NodeId) -> u8 {
        self.levels[node as usize]
    }

    pub fn point(&self, node: NodeId) -> Point {
        Point {
            vec: self.vector(node).to_vec(),
            aux: self.aux(node),
        }
    }

    /// The slots of `node`'s list on `level`: (ids, length, status word).
    fn list(&self, node: NodeId, level: u8) -> (&[AtomicU32], &AtomicU8, &AtomicU64) {
        let n = node as usize;
        if level == 0 {
            let w = 2 * self.params.m;
            (
                &self.level0[n * w..(n + 1) * w],
                &self.level0_len[n],
                &self.level0_status[n],
            )
        } else {
            let slot = self.upper_start[n] as usize + usize::from(level) - 1;
            let w = self.params.m;
            (
                &self.upper[slot * w..(slot + 1) * w],
                &self.upper_len[slot],
                &self.upper_status[slot],
            )
        }
    }

    fn read_list(&self, node: NodeId, level: u8, out: &mut Vec<NodeId>) {
        out.clear();
        if level > self.level(node) {
            return;
        }
        let (ids, len, _) = self.list(node, level);
        out.extend(
            ids[..usize::from(len.load(Relaxed))]
                .iter()
                .map(|a| a.load(Relaxed)),
        );
    }

    /// Writes a list; `status` is its status word (0: not known).
    fn write_list(&self, node: NodeId, level: u8, list: &[NodeId], status: u64) {
        let (ids, len, word) = self.list(node, level);
        debug_assert!(list.len() <= ids.len());
        for (slot, &id) in ids.iter().zip(list) {
            slot.store(id, Relaxed);
        }
        len.store(list.len() as u8, Relaxed);
        word.store(status, Relaxed);
    }

    /// Links node `id` into the graph (its point is already pushed).
    pub fn insert(&self, id: NodeId, search: &mut LayerSearch) {
        if self.params.metric.keeps_pruned() && 2 * self.params.m <= STATUS_BITS {
            self.insert_linking(id, search, |g, node, plan| g.link_back_known(node, plan));
        } else {
            self.insert_linking(id, search, link_back);
        }
    }

    /// [`link_back`] for metrics that keep pruned candidates, with each
    /// list's statuses: the same lists, in the same order.
    fn link_back_known(&self, node: NodeId, plan: &Plan) {
        let mut current = Vec::new();
        for (level, list) in plan.lists.iter().enumerate() {
            let level = level as u8;
            let mut kept = false;
            for &neighbor in list {
                let _guard = self.locks[neighbor as usize].lock();
                self.read_list(neighbor, level, &mut current);
                if !current.contains(&node) {
                    let status = self.list(neighbor, level).2.load(Relaxed);
                    let (next, status) = self.add_known(neighbor, level, &current, status, node);
                    self.write_list(neighbor, level, &next, status);
                    current = next;
                }
                kept |= current.contains(&node);
            }
            if level == 0 && !kept {
                if let Some(&nearest) = list.first() {
                    self.update_neighbors(nearest, 0, &mut |current: &mut Vec<NodeId>| {
                        replace_farthest(self, nearest, current, node);
                    });
                }
            }
        }
    }

    /// `members` (`base`'s list on `level`, with its status word) and
    /// `new`: the list `add_neighbor` makes of them, and its status word.
    /// A list with room takes `new` at its end; a full one loses the
    /// farthest candidate the heuristic prunes (the farthest of all if it
    /// prunes none), the rest in order of distance, as `Reselect::run`.
    fn add_known(
        &self,
        base: NodeId,
        level: u8,
        members: &[NodeId],
        status: u64,
        new: NodeId,
    ) -> (Vec<NodeId>, u64) {
        let max = self.params.max_neighbors(level);
        let mut ids = members.to_vec();
        ids.push(new);
        let n = ids.len();
        if n > max + 1 || max > STATUS_BITS {
            let mut list = members.to_vec();
            super::insert::add_neighbor(self, base, &mut list, new, level);
            return (list, 0);
        }
        let d: Vec<f32> = ids
            .iter()
            .map(|&x| self.distance_between(base, x))
            .collect();
        let mut order: Vec<usize> = (0..n).collect();
        order.sort_unstable_by(|&a, &b| d[a].total_cmp(&d[b]).then(ids[a].cmp(&ids[b])));
        // Whether x is dominated: a kept candidate nearer the base than x
        // is closer to x than the base is (`select_rows`' test).
        let dominated = |x: usize, kept: &[bool], before: &[usize]| {
            before
                .iter()
                .any(|&y| kept[y] && self.distance_between(ids[x], ids[y]) < d[x])
        };
        let mut kept = vec![false; n];
        if status & STATUS_KNOWN != 0 {
            for (i, k) in kept.iter_mut().enumerate().take(n - 1) {
                *k = status & (1 << i) == 0;
            }
            let new_at = order.iter().position(|&i| i == n - 1).unwrap_or(n - 1);
            kept[n - 1] = !dominated(n - 1, &kept, &order[..new_at]);
            if kept[n - 1] {
                // Members after it may lose their place to it, and then
                // members they had pruned may regain theirs.
                let mut newly = vec![n - 1];
                let mut lost = false;
                for at in new_at + 1..n {
                    let x = order[at];
                    if kept[x] {
                        if newly
                            .iter()
                            .any(|&y| self.distance_between(ids[x], ids[y]) < d[x])
                        {
                            kept[x] = false;
                            lost = true;
                        }
                    } else if lost && !dominated(x, &kept, &order[..at]) {
                        kept[x] = true;
                        newly.push(x);
                    }
                }
            }
        } else {
            for at in 0..n {
                let x = order[at];
                kept[x] = !dominated(x, &kept, &order[..at]);
            }
        }
        let word = |list: &mut dyn Iterator<Item = usize>| {
            list.enumerate()
                .filter(|&(_, i)| !kept[i])
                .fold(STATUS_KNOWN, |w, (at, _)| w | (1 << at))
        };
        if n <= max {
            let status = word(&mut (0..n));
            return (ids, status);
        }
        let dropped = (0..n).rev().find(|&at| !kept[order[at]]).unwrap_or(n - 1);
        let rest: Vec<usize> = order
            .iter()
            .enumerate()
            .filter(|&(at, _)| at != dropped)
            .map(|(_, &i)| i)
            .collect();
        let status = word(&mut rest.iter().copied());
        (rest.iter().map(|&i| ids[i]).collect(), status)
    }

    /// `insert`, with `link` adding the node to its neighbours' lists.
    fn insert_linking(
        &self,
        id: NodeId,
        search: &mut LayerSearch,
        link: impl FnOnce(&Self, NodeId, &Plan),
    ) {
        let level = self.level(id);
        let current = *self.entry.read();
        let _raising = match current {
            Some(e) if level <= e.level => None,
            _ => Some(self.raise.lock()),
        };
        let Some(entry) = *self.entry.read() else {
            *self.entry.write() = Some(Entry { node: id, level });
            return;
        };
        let point = self.point(id);
        let plan = plan(self, search, &point, level, Some(id));
        {
            let _guard = self.locks[id as usize].lock();
            for (l, list) in plan.lists.iter().enumerate() {
                self.write_list(id, l as u8, list, 0);
            }
        }
        link(self, id, &plan);
        if level > entry.level {
            *self.entry.write() = Some(Entry { node: id, level });
        }
    }

    /// Links every pushed node, in parallel on the current rayon pool.
    /// `progress` counts linked nodes; setting `cancel` makes the remaining
    /// inserts return at once.
    ///
    /// Nodes are linked in a seeded random order, not in id order: rows
    /// often arrive grouped (by cluster, by time), and HNSW built one
    /// cluster after another links clusters poorly (measured: 446 of 10,000
    /// points no longer found themselves on clustered 128-d data, 6 in
    /// random order).
    pub fn build(&self, progress: &AtomicUsize, cancel: &AtomicBool) {
        thread_local! {
            static SEARCH: RefCell<LayerSearch> = RefCell::new(LayerSearch::new());
        }
        if self.is_empty() {
            return;
        }
        let order = permutation(self.len(), self.seed);
        SEARCH.with(|s| self.insert(order[0], &mut s.borrow_mut()));
        progress.fetch_add(1, Relaxed);
        order[1..].par_iter().for_each(|&id| {
            if cancel.load(Relaxed) {
                return;
            }
            SEARCH.with(|s| self.insert(id, &mut s.borrow_mut()));
            progress.fetch_add(1, Relaxed);
        });
        if !cancel.load(Relaxed) {
            self.link_unreachable();
        }
    }

    /// The nodes in breadth-first order from the entry point on level 0
    /// (any unreached ones last): written in this order, a node's
    /// neighbours mostly share a few pages, so a search hop touches a few
    /// pages instead of one per neighbour.
    pub fn breadth_first_order(&self) -> Vec<NodeId> {
        let mut order = Vec::with_capacity(self.len());
        let mut seen = vec![false; self.len()];
        let mut list = Vec::new();
        if let Some(entry) = self.entry() {
            seen[entry.node as usize] = true;
            order.push(entry.node);
            let mut next = 0;
            while next < order.len() {
                self.read_list(order[next], 0, &mut list);
                next += 1;
                for &n in &list {
                    if !std::mem::replace(&mut seen[n as usize], true) {
                        order.push(n);
                    }
                }
            }
        }
        order.extend((0..self.len() as NodeId).filter(|&n| !seen[n as usize]));
        order
    }

    /// Nodes no path from the entry point reaches.
    pub fn unreachable(&self) -> Vec<NodeId> {
        super::repair::unreachable(self, self.len() as NodeId, &|n| self.level(n), &|_| false)
    }

    fn link_unreachable(&self) {
        super::repair::link_unreachable(
            self,
            self.len() as NodeId,
            &|n| self.level(n),
            &|n| self.point(n),
            &|_| false,
        );
    }
}

/// The ids `0..n` in a seeded random order (Fisher–Yates).
/// Makes room for `need` more elements, at least doubling the capacity.
fn grow<T>(v: &mut Vec<T>, need: usize) -> Result<(), std::collections::TryReserveError> {
    if v.capacity() - v.len() < need {
        v.try_reserve(need.max(v.len()))?;
    }
    Ok(())
}

pub fn permutation(n: usize, seed: u64) -> Vec<NodeId> {
    let mut ids: Vec<NodeId> = (0..n as NodeId).collect();
    let mut state = seed;
    for i in (1..n).rev() {
        state = super::splitmix64(state);
        ids.swap(i, (state % (i as u64 + 1)) as usize);
    }
    ids
}

impl GraphStore for MemoryGraph {
    fn params(&self) -> &Params {
        &self.params
    }

    fn entry(&self) -> Option<Entry> {
        *self.entry.read()
    }

    fn distance(&self, query: &Point, node: NodeId) -> f32 {
        self.params
            .metric
            .distance(&query.vec, query.aux, self.vector(node), self.aux(node))
    }

    fn distance_between(&self, a: NodeId, b: NodeId) -> f32 {
        self.params
            .metric
            .distance(self.vector(a), self.aux(a), self.vector(b), self.aux(b))
    }

    fn copy_vector(&self, node: NodeId, out: &mut Vec<f32>) -> f32 {
        out.extend_from_slice(self.vector(node));
        self.aux(node)
    }

    fn neighbors(&self, node: NodeId, level: u8, out: &mut Vec<NodeId>) {
        let _guard = self.locks[node as usize].lock();
        self.read_list(node, level, out);
    }

    fn prefetch(&self, node: NodeId) {
        let v = self.vector(node);
        #[cfg(target_arch = "x86_64")]
        for line in (0..v.len()).step_by(16).take(4) {
            use std::arch::x86_64::{_mm_prefetch, _MM_HINT_T0};
            // SAFETY: SSE is part of the x86_64 baseline, and a prefetch
            // of any address has no effect beyond the cache.
            unsafe { _mm_prefetch::<_MM_HINT_T0>(v[line..].as_ptr().cast()) };
        }
        #[cfg(not(target_arch = "x86_64"))]
        let _ = v;
    }
}

impl GraphWrite for MemoryGraph {
    fn update_neighbors(&self, node: NodeId, level: u8, update: &mut dyn FnMut(&mut Vec<NodeId>)) {
        let _guard = self.locks[node as usize].lock();
        let mut list = Vec::new();
        self.read_list(node, level, &mut list);
        update(&mut list);
        self.write_list(node, level, &list, 0);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::hnsw::scan::OrderedScan;
    use crate::hnsw::search::{descend, search_layer};
    use crate::hnsw::{Candidate, Metric};
    use rand::rngs::SmallRng;
    use rand::{Rng, SeedableRng};

    fn random_points(n: usize, dims: usize, seed: u64) -> Vec<Vec<f32>> {
        let mut rng = SmallRng::seed_from_u64(seed);
        (0..n)
            .map(|_| (0..dims).map(|_| rng.gen_range(-1.0f32..1.0)).collect())
            .collect()
    }

    fn build(metric: Metric, data: &[Vec<f32>], m: usize, efc: usize) -> MemoryGraph {
        let params = Params {
            metric,
            m,
            ef_construction: efc,
        };
        let mut g = MemoryGraph::new(params, data[0].len(), 42);
        for v in data {
            g.push(&metric.prepare(v).expect("indexable"));
        }
        g.build(&AtomicUsize::new(0), &AtomicBool::new(false));
        g
    }

    fn knn(g: &MemoryGraph, q: &Point, k: usize, ef: usize) -> Vec<NodeId> {
        let entry = g.entry().expect("entry");
        let mut scratch = Vec::new();
        let start = descend(g, q, entry, 0, &mut scratch);
        let mut search = LayerSearch::new();
        search_layer(g, &mut search, q, &[start], 0, ef.max(k))
            .iter()
            .take(k)
            .map(|c| c.node)
            .collect()
    }

    fn exact(g: &MemoryGraph, q: &Point, k: usize) -> Vec<NodeId> {
        exact_where(g, q, k, &|_| true)
    }

    /// The exact `k` nearest among the nodes `keep` accepts.
    fn exact_where(
        g: &MemoryGraph,
        q: &Point,
        k: usize,
        keep: &dyn Fn(NodeId) -> bool,
    ) -> Vec<NodeId> {
        let mut all: Vec<Candidate> = (0..g.len() as NodeId)
            .filter(|&n| keep(n))
            .map(|n| Candidate {
                distance: g.distance(q, n),
                node: n,
            })
            .collect();
        all.sort_unstable();
        all.iter().take(k).map(|c| c.node).collect()
    }

    /// Points around 30 seeded centres (as the SQL tests make them).
    fn clustered(n: usize, dims: usize, seed: u64, offset: usize) -> Vec<Vec<f32>> {
        let mut rng = SmallRng::seed_from_u64(seed);
        let centres: Vec<Vec<f32>> = (0..30)
            .map(|_| (0..dims).map(|_| rng.gen_range(-1.0f32..1.0)).collect())
            .collect();
        let mut rng = SmallRng::seed_from_u64(seed + offset as u64);
        (0..n)
            .map(|i| {
                centres[(i * 7 + offset) % 30]
                    .iter()
                    .map(|x| x + 0.4 * (rng.gen::<f32>() - 0.5))
                    .collect()
            })
            .collect()
    }

    /// As VACUUM does: a removed entry point gives way to the highest
    /// live node.
    fn move_entry_off(g: &MemoryGraph, gone: &dyn Fn(NodeId) -> bool) {
        let entry = g.entry().expect("entry");
        if gone(entry.node) {
            let top = (0..g.len() as NodeId)
                .filter(|&n| !gone(n))
                .max_by_key(|&n| (g.level(n), std::cmp::Reverse(n)))
                .expect("a live node");
            *g.entry.write() = Some(Entry {
                node: top,
                level: g.level(top),
            });
        }
    }

    fn recall_over(
        g: &MemoryGraph,
        queries: &[Vec<f32>],
        live: &dyn Fn(NodeId) -> bool,
        ef: usize,
    ) -> f64 {
        let mut hits = 0;
        for q in queries {
            let q = Metric::L2.prepare(q).expect("indexable");
            let truth = exact_where(g, &q, 10, live);
            let found: Vec<NodeId> = knn(g, &q, 40.max(ef), ef)
                .into_iter()
                .filter(|&n| live(n))
                .take(10)
                .collect();
            hits += found.iter().filter(|n| truth.contains(n)).count();
        }
        hits as f64 / (10 * queries.len()) as f64
    }

    /// A scan under a `WHERE` that keeps 1 row in 10 or 100 must look far
    /// past `ef_search` and still return the filtered top 10 in order.
    #[test]
    fn filtered_scans_find_the_filtered_nearest() {
        let data = clustered(20_000, 50, 7, 0);
        let queries = clustered(100, 50, 7, 1);
        let g = build(Metric::L2, &data, 16, 64);
        for modulus in [10u32, 100] {
            let mut hits = 0;
            for q in &queries {
                let q = Metric::L2.prepare(q).expect("indexable");
                let truth = exact_where(&g, &q, 10, &|n| n % modulus == 0);
                let mut scan = OrderedScan::new(40);
                let mut got: Vec<Candidate> = Vec::new();
                while got.len() < 10 {
                    match scan.next(&g, &q, 20_000) {
                        Some(c) if c.node % modulus == 0 => got.push(c),
                        Some(_) => {}
                        None => break,
                    }
                }
                assert_eq!(got.len(), 10);
                assert!(got.windows(2).all(|w| w[0].distance <= w[1].distance));
                hits += got.iter().filter(|c| truth.contains(&c.node)).count();
            }
            let recall = hits as f64 / (10 * queries.len()) as f64;
            eprintln!("filtered 1 in {modulus}: recall {recall}");
            assert!(recall >= 0.95, "1 row in {modulus}: recall {recall}");
        }
    }

    #[test]
    fn consolidation_keeps_recall_after_removing_half_the_nodes() {
        let data = clustered(20_000, 32, 5, 0);
        let queries = clustered(50, 32, 5, 1);
        let g = build(Metric::L2, &data, 16, 64);
        let gone = |n: NodeId| (n.wrapping_mul(2_654_435_761) >> 7) & 1 == 0;
        let n = g.len() as NodeId;
        let mut removed = crate::hnsw::consolidate::RemovedLists::new();
        let mut damaged = Vec::new();
        let mut list = Vec::new();
        for node in 0..n {
            for level in 0..=g.level(node) {
                g.neighbors(node, level, &mut list);
                if gone(node) {
                    removed.insert((node, level), list.clone());
                } else if list.iter().any(|&x| gone(x)) {
                    damaged.push(crate::hnsw::consolidate::Damaged {
                        node,
                        level,
                        list: list.clone(),
                    });
                }
            }
        }
        let params = *g.params();
        let cands: Vec<Vec<NodeId>> = damaged
            .iter()
            .map(|d| {
                crate::hnsw::consolidate::candidates(d, &removed, &gone, params.ef_construction)
            })
            .collect();
        let copied = crate::hnsw::consolidate::Copied::of(
            &g,
            damaged.iter().zip(&cands).flat_map(|(d, c)| {
                std::iter::once(d.node)
                    .chain(d.list.iter().copied())
                    .chain(c.iter().copied())
            }),
        );
        let mut searched = 0;
        for (d, c) in damaged.iter().zip(&cands) {
            let len = if d.level > 0 {
                params.max_neighbors(d.level)
            } else {
                d.list.len().min(params.max_neighbors(0))
            };
            match crate::hnsw::consolidate::refill_damaged(
                params.metric,
                &copied,
                d,
                c,
                &gone,
                len,
                params.ef_construction,
            ) {
                Some(new) => {
                    assert!(new.iter().all(|&x| !gone(x) && x != d.node));
                    g.update_neighbors(d.node, d.level, &mut |cur| *cur = new.clone());
                }
                None => searched += 1,
            }
        }
        // The few lists handed back: today's search-based repair.
        crate::hnsw::repair::repair_removed(
            &g,
            &mut (0..n),
            &|x| g.level(x),
            &|x| g.point(x),
            &gone,
            &mut |_| {},
        );
        move_entry_off(&g, &gone);
        let after = recall_over(&g, &queries, &|x| !gone(x), 40);
        let kept: Vec<Vec<f32>> = data
            .iter()
            .enumerate()
            .filter(|&(i, _)| !gone(i as NodeId))
            .map(|(_, v)| v.clone())
            .collect();
        let rebuilt = recall_over(&build(Metric::L2, &kept, 16, 64), &queries, &|_| true, 40);
        eprintln!(
            "consolidated {} lists ({searched} handed back): recall@10 at ef 40 {after:.3}, rebuilt {rebuilt:.3}",
            damaged.len()
        );
        assert!(
            searched * 20 < damaged.len(),
            "{searched} of {}",
            damaged.len()
        );
        assert!(
            after >= rebuilt - 0.02,
            "consolidated {after} vs rebuilt {rebuilt}"
        );
    }

    #[test]
    fn recall_holds_after_removing_half_the_nodes() {
        use crate::hnsw::repair::repair_removed;
        let data = clustered(20_000, 32, 5, 0);
        let queries = clustered(50, 32, 5, 1);
        let g = build(Metric::L2, &data, 16, 64);
        let before = recall_over(&g, &queries, &|_| true, 40);
        // Half the nodes, spread over every cluster.
        let gone = |n: NodeId| (n.wrapping_mul(2_654_435_761) >> 7) & 1 == 0;
        repair_removed(
            &g,
            &mut (0..g.len() as NodeId),
            &|n| g.level(n),
            &|n| g.point(n),
            &gone,
            &mut |_| {},
        );
        move_entry_off(&g, &gone);
        let mut list = Vec::new();
        for n in (0..g.len() as NodeId).filter(|&n| !gone(n)) {
            for level in 0..=g.level(n) {
                g.neighbors(n, level, &mut list);
                assert!(
                    !list.iter().any(|&x| gone(x)),
                    "node {n} still links to a removed node"
                );
            }
        }
        let after = recall_over(&g, &queries, &|n| !gone(n), 40);
        let kept: Vec<Vec<f32>> = data
            .iter()
            .enumerate()
            .filter(|&(i, _)| !gone(i as NodeId))
            .map(|(_, v)| v.clone())
            .collect();
        let fresh = build(Metric::L2, &kept, 16, 64);
        let rebuilt = recall_over(&fresh, &queries, &|_| true, 40);
        eprintln!("recall@10 at ef 40: built {before:.3}, half removed and repaired {after:.3}, rebuilt {rebuilt:.3}");
        assert!(
            after >= rebuilt - 0.02,
            "repaired {after} vs rebuilt {rebuilt}"
        );

        // The removed points come back, one insert at a time in shuffled
        // order (as merges do), into the slots they left.
        let mut search = LayerSearch::new();
        for id in permutation(g.len(), 7).into_iter().filter(|&n| gone(n)) {
            for level in 0..=g.level(id) {
                g.write_list(id, level, &[], 0);
            }
            g.insert(id, &mut search);
        }
        let churned = recall_over(&g, &queries, &|_| true, 40);
        eprintln!(
            "recall@10 at ef 40 after inserting them again: {churned:.3} (built {before:.3})"
        );
        assert!(
            churned >= before - 0.02,
            "churned {churned} vs built {before}"
        );
    }

    #[test]
    fn staged_linking_builds_the_same_graph() {
        // Inner product too: there a full list loses one candidate, found
        // in place by `add_neighbor` and from copies by `Reselect::run`.
        for metric in [Metric::L2, Metric::InnerProduct] {
            staged_linking_builds_the_same_graph_under(metric);
        }
    }

    fn staged_linking_builds_the_same_graph_under(metric: Metric) {
        use crate::hnsw::insert::{compute_serially, link_back_with};
        let data = random_points(2000, 16, 3);
        let params = Params {
            metric,
            m: 4,
            ef_construction: 32,
        };
        let graphs: Vec<MemoryGraph> = (0..2)
            .map(|staged| {
                let mut g = MemoryGraph::new(params, 16, 42);
                for v in &data {
                    g.push(&metric.prepare(v).expect("indexable"));
                }
                let mut search = LayerSearch::new();
                for id in 0..g.len() as NodeId {
                    if staged == 1 {
                        g.insert_linking(id, &mut search, |g, node, plan| {
                            link_back_with(g, node, plan, compute_serially)
                        });
                    } else {
                        g.insert(id, &mut search);
                    }
                }
                g
            })
            .collect();
        let (mut a, mut b) = (Vec::new(), Vec::new());
        let mut full = 0;
        for node in 0..data.len() as NodeId {
            for level in 0..=graphs[0].level(node) {
                graphs[0].neighbors(node, level, &mut a);
                graphs[1].neighbors(node, level, &mut b);
                assert_eq!(a, b, "{metric:?}: node {node} level {level}");
                full += usize::from(a.len() == params.max_neighbors(level));
            }
        }
        assert!(
            full > 100,
            "{metric:?}: re-selection must have run: {full} full lists"
        );
    }

    fn recall(metric: Metric, n: usize, dims: usize) -> f64 {
        let data = random_points(n, dims, 1);
        let queries = random_points(100, dims, 2);
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(4)
            .build()
            .expect("pool");
        let g = pool.install(|| build(metric, &data, 16, 64));
        let mut hits = 0;
        for q in &queries {
            let q = metric.prepare(q).expect("indexable");
            let truth = exact(&g, &q, 10);
            // ef 80: at 40 recall on uniform 32-d data varies from build
            // to build (parallel inserts) across 0.95, 0.948–0.962 for L2.
            hits += knn(&g, &q, 10, 80)
                .iter()
                .filter(|n| truth.contains(n))
                .count();
        }
        hits as f64 / (queries.len() * 10) as f64
    }

    #[test]
    fn recall_against_brute_force() {
        for metric in [Metric::L2, Metric::Cosine, Metric::InnerProduct, Metric::L1] {
            let r = recall(metric, 5000, 32);
            // Uniform 32-d data is hard; L1 ranks less well (measured at
            // ef 80: 0.99–1.0, L1 0.98–0.99).
            let floor = match metric {
                Metric::L1 => 0.95,
                _ => 0.97,
            };
            assert!(r >= floor, "{metric:?}: recall@10 {r} < {floor}");
        }
    }

    #[test]
    fn poincare_recall() {
        let data: Vec<Vec<f32>> = random_points(3000, 16, 3)
            .into_iter()
            .map(|v| v.iter().map(|x| x * 0.2).collect())
            .collect();
        let g = build(Metric::Poincare, &data, 16, 64);
        let mut hits = 0;
        for q in random_points(50, 16, 4) {
            let q = Metric::Poincare
                .prepare(&q.iter().map(|x| x * 0.2).collect::<Vec<_>>())
                .expect("inside");
            let truth = exact(&g, &q, 10);
            hits += knn(&g, &q, 10, 40)
                .iter()
                .filter(|n| truth.contains(n))
                .count();
        }
        assert!(
            hits as f64 / 500.0 >= 0.95,
            "poincare recall {}",
            hits as f64 / 500.0
        );
    }

    #[test]
    fn every_node_is_reachable_and_lists_are_bounded() {
        let data = random_points(2000, 8, 5);
        let g = build(Metric::L2, &data, 8, 32);
        let q = Metric::L2.prepare(&data[0]).expect("ok");
        let mut scan = OrderedScan::new(10);
        let mut seen = 0;
        let mut last = f32::NEG_INFINITY;
        while let Some(c) = scan.next(&g, &q, usize::MAX) {
            assert!(c.distance >= last, "out of order");
            last = c.distance;
            seen += 1;
        }
        assert_eq!(seen + scan.dropped(), g.len(), "scan reached every node");
        let mut list = Vec::new();
        for n in 0..g.len() as NodeId {
            for level in 0..=g.level(n) {
                g.neighbors(n, level, &mut list);
                assert!(list.len() <= g.params().max_neighbors(level));
                assert!(!list.contains(&n), "self loop");
            }
        }
    }

    /// Exact duplicates become one node with several heap TIDs in the
    /// index, so the graph only has to keep near-duplicates reachable.
    #[test]
    fn near_duplicates_stay_connected() {
        let mut rng = SmallRng::seed_from_u64(6);
        let mut data = random_points(500, 4, 6);
        data.extend((0..300).map(|_| {
            (0..4)
                .map(|_| 0.5 + rng.gen_range(-1e-4f32..1e-4))
                .collect::<Vec<f32>>()
        }));
        let g = build(Metric::L2, &data, 8, 32);
        let q = Metric::L2.prepare(&[0.5, 0.5, 0.5, 0.5]).expect("ok");
        let mut scan = OrderedScan::new(10);
        let (mut close, mut returned) = (0, 0);
        while let Some(c) = scan.next(&g, &q, usize::MAX) {
            returned += 1;
            if c.distance < 1e-6 {
                close += 1;
            }
        }
        assert_eq!(returned + scan.dropped(), g.len(), "every node reached");
        assert!(close >= 290, "only {close} of 300 near-duplicates returned");
    }

    /// Rows arriving one cluster after another must not cost recall.
    #[test]
    fn clustered_arrival_order_keeps_points_findable() {
        let mut rng = SmallRng::seed_from_u64(9);
        let centres = random_points(20, 64, 10);
        let mut data = Vec::new();
        for c in &centres {
            for _ in 0..250 {
                data.push(
                    c.iter()
                        .map(|x| x + 0.1 * rng.gen_range(-1.0f32..1.0))
                        .collect::<Vec<f32>>(),
                );
            }
        }
        let g = build(Metric::Cosine, &data, 16, 64);
        let mut misses = 0;
        for node in 0..g.len() as NodeId {
            let mut scan = OrderedScan::new(40);
            if scan.next(&g, &g.point(node), usize::MAX).map(|c| c.node) != Some(node) {
                misses += 1;
            }
        }
        // Measured: about 30 in random order, about 290 in arrival order.
        assert!(
            misses <= g.len() / 50,
            "{misses} of {} points not found by their own vector",
            g.len()
        );
    }

    #[test]
    fn permutation_is_a_shuffle() {
        let p = permutation(1000, 3);
        let mut sorted = p.clone();
        sorted.sort_unstable();
        assert_eq!(sorted, (0..1000).collect::<Vec<_>>());
        assert_ne!(p[..10], sorted[..10]);
    }

    /// A point far from everything still gets an incoming edge, so every
    /// node stays reachable from the entry point.
    #[test]
    fn outliers_are_reachable() {
        let mut data = random_points(3000, 8, 11);
        data.push(vec![-500.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0]);
        data.push(vec![0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 900.0]);
        let g = build(Metric::L2, &data, 8, 32);
        assert!(
            g.unreachable().is_empty(),
            "unreachable: {:?}",
            g.unreachable()
        );
        // Breadth-first from the entry point over all levels, by hand.
        let entry = g.entry().expect("entry").node;
        let mut seen = vec![false; g.len()];
        seen[entry as usize] = true;
        let mut queue = vec![entry];
        let mut list = Vec::new();
        while let Some(n) = queue.pop() {
            for level in 0..=g.level(n) {
                g.neighbors(n, level, &mut list);
                for &m in &list {
                    if !std::mem::replace(&mut seen[m as usize], true) {
                        queue.push(m);
                    }
                }
            }
        }
        assert!(
            seen.iter().all(|s| *s),
            "{} unreachable",
            seen.iter().filter(|s| !**s).count()
        );
    }

    /// Cosine data whose clusters nearly share one direction (coordinates
    /// uniform in 0..1 plus `i % 10`): heuristic pruning leaves level-0
    /// lists of about 6 and hundreds of nodes without a path to them, whose
    /// nearest reachable nodes are the same few hubs with full lists.
    /// Linking them must not strand one another (it used to leave pairs
    /// that took turns dropping each other from a shared hub).
    #[test]
    fn link_unreachable_links_nodes_sharing_a_full_hub() {
        for seed in 0..4u64 {
            let mut rng = SmallRng::seed_from_u64(seed);
            let data: Vec<Vec<f32>> = (0..4000)
                .map(|i| {
                    (0..64)
                        .map(|_| rng.gen::<f32>() + (i % 10) as f32)
                        .collect()
                })
                .collect();
            let params = Params {
                metric: Metric::Cosine,
                m: 16,
                ef_construction: 64,
            };
            let mut g = MemoryGraph::new(params, 64, 42 + seed);
            for v in &data {
                g.push(&Metric::Cosine.prepare(v).expect("indexable"));
            }
            // The build without its final repair, one insert at a time.
            let mut search = LayerSearch::new();
            for id in permutation(g.len(), g.seed) {
                g.insert(id, &mut search);
            }
            let lost = g.unreachable();
            assert!(lost.len() > 20, "seed {seed}: only {} lost", lost.len());
            g.link_unreachable();
            assert_eq!(g.unreachable(), Vec::<NodeId>::new(), "seed {seed}");
            let mut list = Vec::new();
            for n in 0..g.len() as NodeId {
                for level in 0..=g.level(n) {
                    g.neighbors(n, level, &mut list);
                    assert!(list.len() <= params.max_neighbors(level));
                    assert!(!list.contains(&n), "self loop");
                    let mut sorted = list.clone();
                    sorted.sort_unstable();
                    sorted.dedup();
                    assert_eq!(sorted.len(), list.len(), "duplicate in {n}'s list");
                }
            }
            // And the parallel build as CREATE INDEX runs it.
            let built = build(Metric::Cosine, &data, 16, 64);
            assert_eq!(built.unreachable(), Vec::<NodeId>::new(), "seed {seed}");
        }
    }

    /// pgvector's recall case under inner product (10,000 3-d points of
    /// `random()·random()`, queries of `random()`): most points have no
    /// incoming edge after the inserts, because a high-norm point is
    /// "nearer" to everything. The build must leave every node reachable
    /// without spending the high-norm hubs' lists on them: linked from
    /// those hubs they cut recall@20 at ef 40 from 1.00 to 0.92.
    #[test]
    fn inner_product_build_reaches_every_node_and_keeps_its_recall() {
        let metric = Metric::InnerProduct;
        let mut rng = SmallRng::seed_from_u64(7);
        let data: Vec<Vec<f32>> = (0..10_000)
            .map(|_| {
                (0..3)
                    .map(|_| rng.gen::<f32>() * rng.gen::<f32>())
                    .collect()
            })
            .collect();
        let g = build(metric, &data, 16, 64);
        assert_eq!(g.unreachable(), Vec::<NodeId>::new());
        let (mut hits, mut total) = (0, 0);
        for _ in 0..100 {
            let raw: Vec<f32> = (0..3).map(|_| rng.gen::<f32>()).collect();
            let q = metric.prepare(&raw).expect("indexable");
            let truth = exact(&g, &q, 20);
            let got = knn(&g, &q, 20, 40);
            hits += truth.iter().filter(|t| got.contains(t)).count();
            total += truth.len();
        }
        let recall = hits as f64 / total as f64;
        assert!(recall >= 0.97, "recall@20 at ef 40: {recall}");
    }
}
