//! `ambeginscan`, `amrescan`, `amgettuple`, `amendscan`: ordered scans.
//!
//! The first `amgettuple` reads the pending list at exact distances and
//! runs the HNSW search with `vhnsw.ef_search` (or the query's search hint,
//! `WHERE embedding <^> 200`, an index condition that is always true); rows
//! come out nearest first, the two sources interleaved by distance. A scan
//! asked for more (a large `LIMIT`, or a `WHERE` clause discarding rows) keeps going with a widening search
//! ([`OrderedScan`]), still in non-decreasing distance, until
//! `vhnsw.max_scan_tuples` index entries have been examined (or, with
//! `vhnsw.iterative_scan = off`, stops after `ef_search` results, each
//! with all its rows).
//!
//! Conditions on the filter columns of a composite index are checked on
//! each node's stored values: a walk counts only passing nodes as results
//! and walks through the rest; when few nodes pass, an exact pass over the
//! value region's candidates replaces the walk (see `DESIGN.md`, "Filtered
//! search"). Exact for integers and booleans; hashes and signatures (text,
//! uuid, label arrays) only rule rows out, and the executor rechecks.
//!
//! A distance range (`WHERE embedding <<->> sphere(q, r)`) is an index
//! condition too: its center is the query when there is no ORDER BY, and a
//! scan whose query is the range's center ends at the first row past the
//! radius (rows come out in distance order). The executor rechecks the
//! range on each row, so rounding in the index's distances (f32, and a
//! monotone transform of the SQL distance) never decides a row.

use super::columns::Columns;
use super::options::{ef_search_for, hinted_ef_search, iterative, max_scan_tuples};
use super::utils::{opclass_metric, or_raise, raw_of, Packing};
use super::validate::{HINT_STRATEGY, RANGE_STRATEGY};
use crate::distance::sphere::read_sphere;
use crate::error::{SqlError, SqlResult};
use crate::storage::filter::Filter;
use crate::storage::graph::{ExactPass, PageGraph};
use crate::storage::layout::PAYLOAD;
use crate::storage::layout::{EntryShape, Tid, NODE_DELETED, NODE_IN_USE, NO_NODE};
use crate::storage::meta::{params_of, read_meta};
use crate::storage::values::{self, Directory, VALUES_PER_PAGE};
use crate::storage::writer::ScanLock;
use crate::storage::{pending, unindexed, Index};
use pgrx::pg_sys;
use pgrx::PgMemoryContexts;
use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashSet};
use vdb_core::hnsw::coded::CodedScan;
use vdb_core::hnsw::scan::OrderedScan;
use vdb_core::hnsw::search::descend;
use vdb_core::hnsw::{Candidate, GraphStore, NodeId, Point, Unindexable};
use vdb_core::quant::Query;

/// Per-scan state, owned by the scan's memory context.
#[derive(Default)]
struct ScanState {
    started: bool,
    search: Option<Search>,
    /// TIDs of the current node still to return, last first.
    tids: Vec<Tid>,
    /// Results (a vector and all its rows) the scan may still return
    /// (`vhnsw.iterative_scan = off`).
    budget: Option<usize>,
    /// Whether the executor rechecks the index conditions (ranges).
    recheck: bool,
    /// Whether the rows the graph cannot hold follow the search's (not
    /// for ranges, which no NULL or NaN distance is within).
    with_unindexed: bool,
    /// A NULL query's scan: every row.
    all: Option<AllRows>,
    /// Whether the scan has conditions on filter columns.
    filtered: bool,
    /// Whether rows with a NULL vector fail the scan's conditions (a
    /// `<^>` hint is NULL for them).
    skip_nulls: bool,
}

/// Every row of the index, for a NULL query: every distance is NULL, so
/// a table scan returns all rows in any order. The pending list as read
/// first, then the graph's nodes, a batch of slots at a time, then the
/// rows the graph cannot hold. An entry merged after the list was read is
/// in both: its node's TID is skipped.
struct AllRows {
    graph: PageGraph,
    pending: Vec<Tid>,
    from_pending: HashSet<Tid>,
    next_node: NodeId,
    unindexed: Vec<Tid>,
}

/// Node slots read per batch of a NULL query's scan.
const ALL_ROWS_BATCH: u32 = 256;

impl AllRows {
    fn start(index: Index) -> SqlResult<AllRows> {
        let meta = read_meta(index)?;
        let mut pending = Vec::new();
        if meta.dims != 0 {
            pending::for_each(index, EntryShape::of(&meta), |row| {
                if pending::is_live(row.flags) {
                    pending.push(row.tid);
                }
            })?;
        }
        let graph = PageGraph::open(index)?;
        let unindexed = unindexed::all(index, &graph.meta)?
            .into_iter()
            .map(|(_, tid)| tid)
            .collect();
        Ok(AllRows {
            graph,
            from_pending: pending.iter().copied().collect(),
            pending,
            next_node: 0,
            unindexed,
        })
    }

    fn next_batch(&mut self) -> Option<Vec<Tid>> {
        if !self.pending.is_empty() {
            return Some(std::mem::take(&mut self.pending));
        }
        let count = self.graph.node_count();
        while self.next_node < count {
            pgrx::check_for_interrupts!();
            let end = self.next_node.saturating_add(ALL_ROWS_BATCH).min(count);
            let mut out = Vec::new();
            for node in self.next_node..end {
                let t = self.graph.tids(node);
                if !t.deleted {
                    out.extend(
                        t.tids
                            .into_iter()
                            .filter(|t| !self.from_pending.contains(t)),
                    );
                }
            }
            self.next_node = end;
            if !out.is_empty() {
                return Some(out);
            }
        }
        (!self.unindexed.is_empty()).then(|| std::mem::take(&mut self.unindexed))
    }
}

/// The share of the margin kept by a scan's later rounds, which look for
/// rows past the nearest (a filter, a large LIMIT, a range). The margin
/// keeps the first round from stopping short of a true neighbour; a later
/// round hands out rows further out, and unbiased estimates reach them
/// with fewer node reads: at `ef_search` 40, filters keeping 10 % and 1 %
/// of the rows ran 1.4–1.75× faster (recall of the filtered top 10 0.976
/// –0.992 against 0.981–0.996) and 100-row ranges 1.75–1.84× (recall
/// 0.976–0.978 against 0.982–0.983), GloVe-50 and MiniLM-384 alike.
const LATER_MARGIN: f32 = 0.0;

/// The graph walk of one scan: on codes when the index has them (a hop
/// reads one page), else measuring every neighbour; or, for a filter that
/// few nodes pass, an exact pass over those nodes.
enum Walk {
    Exact(ExactWalk),
    Plain(OrderedScan),
    Coded {
        scan: CodedScan,
        query: Query,
        /// The level-0 start, found on the first call.
        start: Option<NodeId>,
        /// Whether later rounds' estimates have their narrower margin.
        relaxed: bool,
    },
}

impl Walk {
    /// Whether the walk stopped at `vhnsw.max_scan_tuples` with nodes it
    /// never reached (an exact pass reaches every passing node).
    fn cut_short(&self) -> bool {
        match self {
            Walk::Exact(_) => false,
            Walk::Plain(scan) => scan.cut_short(),
            Walk::Coded { scan, .. } => scan.cut_short(),
        }
    }

    /// Nodes read so far (a coded walk's; the others report 0).
    fn expanded(&self) -> usize {
        match self {
            Walk::Coded { scan, .. } => scan.expanded(),
            _ => 0,
        }
    }

    fn next(&mut self, graph: &PageGraph, query: &Point, limit: usize) -> Option<Candidate> {
        match self {
            Walk::Exact(walk) => walk.next(graph, query),
            Walk::Plain(scan) => scan.next(graph, query, limit),
            Walk::Coded {
                scan,
                query: coded,
                start,
                relaxed,
            } => {
                if !*relaxed && scan.rounds() >= 1 {
                    *relaxed = true;
                    coded.scale_margin(LATER_MARGIN);
                }
                let from = match *start {
                    Some(node) => node,
                    None => {
                        let entry = graph.entry()?;
                        let node = descend(graph, query, entry, 0, &mut Vec::new()).node;
                        *start = Some(node);
                        node
                    }
                };
                scan.next(graph, query, coded, from, limit)
            }
        }
    }
}

/// The nodes an exact pass found, handed out in exact distance order:
/// measured ones from a heap, the others (with estimates that err low)
/// measured when their estimate is below every measured one's distance.
struct ExactWalk {
    measured: BinaryHeap<Reverse<Candidate>>,
    /// By estimate (a heap: built in linear time, and most are never
    /// popped).
    estimated: BinaryHeap<Reverse<Candidate>>,
    /// The distance last handed out: a node measured past an estimate
    /// that erred high and nearer than that is skipped, to keep the order.
    last: f32,
}

impl ExactWalk {
    fn new(pass: ExactPass) -> ExactWalk {
        let (measured, estimated) = match pass {
            ExactPass::Measured(m) => (m, Vec::new()),
            ExactPass::Estimated(e) => (Vec::new(), e),
        };
        ExactWalk {
            measured: measured.into_iter().map(Reverse).collect(),
            estimated: estimated.into_iter().map(Reverse).collect(),
            last: f32::NEG_INFINITY,
        }
    }

    fn next(&mut self, graph: &PageGraph, query: &Point) -> Option<Candidate> {
        loop {
            let nearest = self.measured.peek().map(|r| r.0.distance);
            let estimate = self.estimated.peek().map(|c| c.0.distance);
            match (nearest, estimate) {
                (None, None) => return None,
                (Some(d), Some(e)) if e < d => self.measure_next(graph, query),
                (None, Some(_)) => self.measure_next(graph, query),
                (Some(_), _) => {
                    let Reverse(c) = self.measured.pop()?;
                    if c.distance >= self.last {
                        self.last = c.distance;
                        return Some(c);
                    }
                }
            }
        }
    }

    fn measure_next(&mut self, graph: &PageGraph, query: &Point) {
        if let Some(Reverse(c)) = self.estimated.pop() {
            if let Some(distance) = graph.measure(query, c.node) {
                self.measured.push(Reverse(Candidate {
                    distance,
                    node: c.node,
                }));
            }
        }
    }
}

/// One ordered search: the graph's results and the pending list's,
/// interleaved by distance.
struct Search {
    graph: PageGraph,
    query: Point,
    scan: Walk,
    limit: usize,
    /// Pending entries with their exact distances, nearest on top. A heap,
    /// not a sorted list: a scan takes a few dozen of the list's
    /// thousands, and need not order the rest.
    pending: BinaryHeap<PendingHit>,
    /// The next graph result, read ahead to compare with `pending`.
    next_graph: Option<(f32, Vec<Tid>)>,
    graph_done: bool,
    /// Every TID returned: a row merged while this scan ran can be seen in
    /// both the pending list and the graph.
    returned: HashSet<Tid>,
    /// The ranking distance past which no row is in the scan's range.
    stop_past: Option<f32>,
    /// Nodes a filtered walk may read before its first results (see
    /// [`FilteredPlan`]); `None` once they are out, or without a filter.
    walk_budget: Option<usize>,
    /// The value region (filtered scans of composite indexes).
    values: Directory,
}

impl Search {
    /// A search for `raw`; `radii` are the SQL radii of the distance
    /// ranges centered on `raw` (the scan ends past the smallest); only
    /// rows passing `filter` (conditions on filter columns) are results.
    fn start(
        index: Index,
        raw: &[f32],
        ef_search: usize,
        radii: &[f64],
        filter: Option<Filter>,
    ) -> SqlResult<Search> {
        let meta = read_meta(index)?;
        let dims = meta.dims as usize;
        let metric = params_of(&meta)?.metric;
        // (A sparsevec index's `dims` is its packed size; a query packs
        // to its own when it has more non-zeros.)
        if dims != 0 && dims != raw.len() && !metric.is_sparse() {
            // The message the operator itself gives on a table scan.
            let what = if metric.is_half() {
                "halfvec dimensions"
            } else if metric.is_bits() {
                "bit lengths"
            } else {
                "vector dimensions"
            };
            return Err(SqlError::data(format!(
                "different {what} {dims} and {}",
                raw.len()
            )));
        }
        let mut zero = false;
        let query = match metric.prepare(raw) {
            Ok(p) => p,
            // Every distance to a zero vector is NaN: any order is right.
            Err(Unindexable::ZeroVector) => {
                zero = true;
                metric.pack_unchecked(raw)
            }
            Err(Unindexable::OutsideUnitBall) => {
                return Err(SqlError::data(
                    "poincare_distance requires points strictly inside the unit ball",
                ))
            }
        };
        // The pending list at exact distances, read before the graph's
        // metapage: an entry merged between the two reads is in the list as
        // it was read, or its node was published before the metapage was
        // read. Either way a committed row is found by the very next query.
        let mut pending = Vec::new();
        if dims != 0 {
            let mut words = Vec::new();
            pending::walk(index, EntryShape::of(&meta), |visit| {
                let row = match visit {
                    pending::Visit::Row(row) if pending::is_live(row.flags) => row,
                    pending::Visit::Row(_) => return,
                    pending::Visit::Restart => return pending.clear(),
                };
                if let Some(f) = &filter {
                    row.words_into(&mut words);
                    if !f.matches(&words) {
                        return;
                    }
                }
                let distance = metric.distance(&query.vec, query.aux, row.vec, row.aux);
                pending.push(PendingHit {
                    distance,
                    key: vector_key(row.vec),
                    tid: row.tid,
                });
            })?;
        }
        crate::failpoint::hit("scan_between_reads");
        let mut graph = PageGraph::open(index)?;
        graph.filter = filter;
        // A node still being linked (its insert in progress, or cut short
        // by a crash) may have no incoming link yet: measure it directly.
        let linking = graph.meta.linking;
        if linking != NO_NODE && linking < graph.node_count() {
            let (header, passes) = graph.read_slot(linking, |slot, h| (*h, graph.passes(slot)));
            if header.flags & NODE_IN_USE != 0 && header.flags & NODE_DELETED == 0 && passes {
                let distance = graph.distance(&query, linking);
                let key = vector_key(&graph.load(linking).vec);
                for tid in graph.tids(linking).tids {
                    pending.push(PendingHit { distance, key, tid });
                }
            }
        }
        let pending = BinaryHeap::from(pending);
        let values = match graph.filter {
            Some(_) => Directory::read(index, &graph.meta)?,
            None => Directory::default(),
        };
        let plan = graph
            .filter
            .as_ref()
            .map(|_| plan_filtered(&graph, &values, ef_search));
        let scan = match &graph.quantizer {
            _ if plan.as_ref().is_some_and(|p| p.exact) => {
                Walk::Exact(ExactWalk::new(graph.exact_pass(&query, &values)))
            }
            Some(q) if !zero => Walk::Coded {
                scan: CodedScan::new(ef_search),
                query: q.query(&query.vec),
                start: None,
                relaxed: false,
            },
            _ => Walk::Plain(OrderedScan::new(ef_search)),
        };
        // f32 distances, and for cosine the stored unit vectors, differ
        // from the SQL operator's by rounding: stop a little late, the
        // recheck drops what lies outside.
        let stop_past = radii
            .iter()
            .map(|&r| metric.ranking_bound(r))
            .min_by(f64::total_cmp)
            .map(|b| (b + 1e-5 * b.abs().max(1.0)) as f32);
        Ok(Search {
            graph,
            query,
            scan,
            limit: max_scan_tuples(),
            pending,
            next_graph: None,
            graph_done: false,
            returned: HashSet::new(),
            stop_past,
            walk_budget: plan.map(|p| p.walk_budget),
            values,
        })
    }

    /// The next graph result whose slot still holds what was measured
    /// (and passes the filter: a slot VACUUM freed and reused since may
    /// hold the same vector with other values).
    fn read_graph(&mut self) -> Option<(f32, Vec<Tid>)> {
        loop {
            // Only a coded walk is held to the budget (it can tell how far
            // it got); a plain one keeps `max_scan_tuples`.
            let limit = match (&self.scan, self.walk_budget) {
                (Walk::Coded { .. }, Some(budget)) => budget.min(self.limit),
                _ => self.limit,
            };
            let next = self.scan.next(&self.graph, &self.query, limit);
            if let Some(budget) = self.walk_budget.take() {
                // The first round of a filtered walk: if it ran out of
                // budget, nothing is handed out yet, so the pass takes over.
                if budget < self.limit && self.scan.expanded() >= budget {
                    let pass = self.graph.exact_pass(&self.query, &self.values);
                    self.scan = Walk::Exact(ExactWalk::new(pass));
                    continue;
                }
            }
            let c = next?;
            if self.graph.filter.is_some()
                && !self
                    .graph
                    .read_slot(c.node, |slot, _| self.graph.passes(slot))
            {
                continue;
            }
            if let Some(node) = self.graph.tids_if_unchanged(&self.query, c) {
                if !node.deleted && !node.tids.is_empty() {
                    return Some((c.distance, node.tids));
                }
            }
        }
    }

    /// Runs the first search round (the graph's nearest result).
    fn prime(&mut self) {
        self.next_graph = self.read_graph();
        self.graph_done = self.next_graph.is_none();
    }

    /// TIDs of the next result in distance order (never one already
    /// returned); `None` at the end, or past the scan's range.
    fn next_tids(&mut self) -> Option<Vec<Tid>> {
        let (distance, tids) = self.next_result()?;
        match self.stop_past {
            Some(bound) if distance > bound => None,
            _ => Some(tids),
        }
    }

    /// The next result and its distance.
    fn next_result(&mut self) -> Option<(f32, Vec<Tid>)> {
        loop {
            if self.next_graph.is_none() && !self.graph_done {
                self.next_graph = self.read_graph();
                self.graph_done = self.next_graph.is_none();
            }
            let take_pending = match (self.pending.peek(), &self.next_graph) {
                (None, None) => return None,
                (Some(_), None) => true,
                (None, Some(_)) => false,
                (Some(p), Some(g)) => p.distance <= g.0,
            };
            let (distance, tids) = if take_pending {
                match self.pending.pop() {
                    Some(p) => {
                        let mut tids = vec![p.tid];
                        while let Some(q) = self.pending.peek() {
                            if q.distance != p.distance || q.key != p.key {
                                break;
                            }
                            tids.push(q.tid);
                            self.pending.pop();
                        }
                        (p.distance, tids)
                    }
                    None => Default::default(),
                }
            } else {
                self.next_graph.take().unwrap_or_default()
            };
            let fresh: Vec<Tid> = tids
                .into_iter()
                .filter(|t| self.returned.insert(*t))
                .collect();
            if !fresh.is_empty() {
                return Some((distance, fresh));
            }
        }
    }
}

/// One more scan of `rel` in `pg_stat_*_indexes.idx_scan`, as
/// PostgreSQL's own access methods count theirs (`pgstat_count_index_scan`,
/// a C macro); without it tools that look for unused indexes flag every
/// vhnsw index. Returned tuples are counted by PostgreSQL itself.
///
/// # Safety
/// `rel` must be an open relation.
unsafe fn count_index_scan(rel: pg_sys::Relation) {
    // SAFETY: (caller) `rel` is open; pgstat_assoc_relation sets up its
    // statistics entry when counting is enabled for it, as the macro does.
    unsafe {
        if (*rel).pgstat_info.is_null() {
            if !(*rel).pgstat_enabled {
                return;
            }
            pg_sys::pgstat_assoc_relation(rel);
        }
        if let Some(info) = (*rel).pgstat_info.as_mut() {
            info.t_counts.t_numscans += 1;
        }
    }
}

/// A pending entry's distance, ordered so that a max-heap pops the
/// nearest first.
#[derive(Debug, Clone, Copy)]
struct PendingHit {
    distance: f32,
    /// A hash of the vector's bits: equal vectors' rows come out as one
    /// result, as a graph node's duplicates do.
    key: u64,
    tid: Tid,
}

/// The bits of `vec` hashed (FNV-1a over the elements).
fn vector_key(vec: &[f32]) -> u64 {
    vec.iter().fold(0xcbf2_9ce4_8422_2325, |h, x| {
        (h ^ u64::from(x.to_bits())).wrapping_mul(0x0100_0000_01b3)
    })
}

impl PartialEq for PendingHit {
    fn eq(&self, other: &Self) -> bool {
        self.cmp(other).is_eq()
    }
}

impl Eq for PendingHit {}

impl PartialOrd for PendingHit {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for PendingHit {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        other
            .distance
            .total_cmp(&self.distance)
            .then(other.key.cmp(&self.key))
    }
}

/// Node slots sampled to estimate how many nodes pass a filter.
const SAMPLE_MAX: u32 = 512;
/// Passing samples after which the estimate is good enough.
const SAMPLE_HITS: u32 = 16;

/// The share of the nodes that pass the graph's filter, from a sample of
/// their slots (an index without a value region).
fn sampled_share(graph: &PageGraph, n: u32) -> f64 {
    let step = (n / SAMPLE_MAX.min(n)).max(1);
    let (mut seen, mut hits) = (0u32, 0u32);
    let mut node = step / 2;
    while node < n && seen < SAMPLE_MAX && hits < SAMPLE_HITS {
        let passes = graph.read_slot(node, |slot, h| {
            h.flags & NODE_IN_USE != 0 && h.flags & NODE_DELETED == 0 && graph.passes(slot)
        });
        hits += u32::from(passes);
        seen += 1;
        node += step;
    }
    (f64::from(hits) + 0.5) / f64::from(seen + 1)
}

/// Whether an exact pass over the nodes that pass the graph's filter is
/// cheaper than a walk. A walk expands about `ef / s` nodes for a filter
/// passing a share `s` of them (it stops once `ef` results are found); an
/// exact pass reads the value region's pages of the filtered columns (or
/// without one, every page of the node region) and measures the nodes
/// that pass. The share is counted on a few chunks of the value region,
/// or estimated from a sample of slots.
fn plan_filtered(graph: &PageGraph, values: &Directory, ef: usize) -> FilteredPlan {
    let n = graph.node_count();
    if n == 0 {
        return FilteredPlan {
            exact: false,
            walk_budget: usize::MAX,
        };
    }
    let from_region = graph
        .filter
        .as_ref()
        .and_then(|f| values::share(graph.rel(), values, f, n));
    let share = match from_region {
        Some(share) => share.max(0.5 / f64::from(n)),
        None => sampled_share(graph, n),
    };
    let n = f64::from(n);
    // In units of one expanded node (a page, an exact distance and a list
    // of estimates, about 3 µs at 384 dimensions): a walk reads about
    // `8·ef / s` nodes (an unfiltered one about 4.75·ef on MiniLM-384;
    // filtered ones wander more, GloVe-50's more than 20·ef / s); a
    // page of words or codes costs about 0.6 of a node, a candidate's slot
    // and distance 0.5, an estimate from the region's codes 0.04 (then
    // about `2·ef` of the candidates are measured), as measured there.
    let walk = (8.0 * ef as f64 / share).min(n);
    let coded = values.shape.entry > 0 && graph.quantizer.is_some();
    let pass = if values.chunks.is_empty() {
        n / graph.geometry.nodes_per_page.max(1) as f64 * 0.6 + share * n * 0.5
    } else {
        let cols = graph.filter.as_ref().map_or(1, |f| {
            let mut c: Vec<usize> = f.conditions.iter().map(|c| c.col).collect();
            c.sort_unstable();
            c.dedup();
            c.len()
        }) as f64;
        let chunks = values.chunks.len() as f64;
        if coded {
            // Code pages with a candidate on them are read.
            let per_page = (PAYLOAD / values.shape.entry) as f64;
            let code_pages = VALUES_PER_PAGE as f64 / per_page * (share * per_page).min(1.0);
            chunks * (cols + code_pages) * 0.6 + share * n * 0.04 + 2.0 * ef as f64 * 0.5
        } else {
            chunks * cols * 0.6 + share * n * 0.5
        }
    };
    FilteredPlan {
        exact: pass < walk,
        // A walk that has read this many nodes before its first results
        // (a filter that keeps rows far from the query) stops for the pass.
        walk_budget: (4.0 * walk.max(pass)).max(8.0 * ef as f64) as usize,
    }
}

/// How a filtered scan starts: an exact pass, or a walk that turns into
/// one if it reads `walk_budget` nodes before its first results.
struct FilteredPlan {
    exact: bool,
    walk_budget: usize,
}

fn state(scan: pg_sys::IndexScanDesc) -> &'static mut ScanState {
    // SAFETY: ambeginscan stored a ScanState that lives as long as the
    // scan's memory context, which outlives every call on the scan.
    unsafe { &mut *(*scan).opaque.cast::<ScanState>() }
}

/// `ambeginscan`
#[pgrx::pg_guard]
pub unsafe extern "C-unwind" fn ambeginscan(
    index: pg_sys::Relation,
    nkeys: std::ffi::c_int,
    norderbys: std::ffi::c_int,
) -> pg_sys::IndexScanDesc {
    // SAFETY: RelationGetIndexScan allocates the descriptor in the current
    // memory context; the state is dropped when that context is deleted.
    unsafe {
        let scan = pg_sys::RelationGetIndexScan(index, nkeys, norderbys);
        let mut context = PgMemoryContexts::CurrentMemoryContext;
        (*scan).opaque = context.leak_and_drop_on_delete(ScanState::default()).cast();
        scan
    }
}

/// `amrescan`
#[pgrx::pg_guard]
pub unsafe extern "C-unwind" fn amrescan(
    scan: pg_sys::IndexScanDesc,
    keys: pg_sys::ScanKey,
    nkeys: std::ffi::c_int,
    orderbys: pg_sys::ScanKey,
    norderbys: std::ffi::c_int,
) {
    // SAFETY: the key arrays have the sizes given and the descriptor has
    // room for them (allocated by RelationGetIndexScan).
    unsafe {
        if !keys.is_null() && nkeys > 0 {
            std::ptr::copy(keys, (*scan).keyData, nkeys as usize);
        }
        if !orderbys.is_null() && norderbys > 0 {
            std::ptr::copy(orderbys, (*scan).orderByData, norderbys as usize);
        }
    }
    *state(scan) = ScanState::default();
}

/// `amgettuple`
#[pgrx::pg_guard]
pub unsafe extern "C-unwind" fn amgettuple(
    scan: pg_sys::IndexScanDesc,
    _dir: pg_sys::ScanDirection::Type,
) -> bool {
    let st = state(scan);
    if !st.started {
        st.started = true;
        // SAFETY: the scan's index relation is open for the scan.
        unsafe { count_index_scan((*scan).indexRelation) };
        // SAFETY: the scan descriptor is valid; its ORDER BY key (at most
        // one) has a vector argument (or NULL), its index conditions are
        // search hints (integer) and distance ranges (sphere).
        'setup: {
            unsafe {
                let keys = match (*scan).keyData.is_null() {
                    true => &[][..],
                    false => std::slice::from_raw_parts(
                        (*scan).keyData,
                        (*scan).numberOfKeys.max(0) as usize,
                    ),
                };
                let index = Index::new((*scan).indexRelation);
                let mut ef = ef_search_for(index);
                let mut ranges = Vec::new();
                // Conditions on the vector column (the rest are on filter columns).
                for key in keys.iter().filter(|k| k.sk_attno == 1) {
                    if key.sk_flags & pg_sys::SK_ISNULL as i32 != 0 {
                        return false; // `<^> NULL`, `<<->> NULL` are never true
                    }
                    match key.sk_strategy as i16 {
                        HINT_STRATEGY => {
                            ef = or_raise(hinted_ef_search(key.sk_argument.value() as i32));
                            // The hint is STRICT: false for a NULL vector.
                            st.skip_nulls = true;
                        }
                        RANGE_STRATEGY => match or_raise(read_sphere(key.sk_argument)) {
                            Some(sphere) => ranges.push(sphere),
                            None => return false, // a NULL center or radius
                        },
                        _ => {}
                    }
                }
                let raw: std::borrow::Cow<[f32]> = if (*scan).numberOfOrderBys >= 1 {
                    let key = &*(*scan).orderByData;
                    if key.sk_flags & pg_sys::SK_ISNULL as i32 != 0 {
                        // ORDER BY v <-> NULL: every row, as a table scan;
                        // the executor checks any filter conditions.
                        st.all = Some(or_raise(AllRows::start(index)));
                        st.recheck = true;
                        break 'setup;
                    }
                    let metric = or_raise(opclass_metric(index));
                    let words = or_raise(read_meta(index)).dims as usize;
                    or_raise(raw_of(metric, key.sk_argument, Packing::Query(words)))
                } else if let Some(range) = ranges.first() {
                    range.center.into()
                } else {
                    crate::fmgr::raise(crate::error::SqlError::internal(
                        "cannot scan a vhnsw index without ORDER BY or a distance range",
                    ));
                };
                let radii: Vec<f64> = ranges
                    .iter()
                    .filter(|r| r.center == &*raw)
                    .map(|r| r.radius)
                    .collect();
                let (filter, filter_recheck) = or_raise(Columns::of(index)).filter(keys);
                if filter.never() {
                    return false;
                }
                let filter = (!filter.conditions.is_empty()).then_some(filter);
                st.recheck = !ranges.is_empty() || filter_recheck;
                st.with_unindexed = ranges.is_empty();
                st.filtered = filter.is_some();
                st.budget = (!iterative()).then_some(ef);
                // The metapage snapshot and the first search round, while
                // VACUUM frees no slot.
                let _freeing = ScanLock::share(index);
                let mut search = or_raise(Search::start(index, &raw, ef, &radii, filter));
                crate::failpoint::hit("scan_first_round");
                search.prime();
                st.search = Some(search);
            }
        }
    }
    loop {
        if let Some(tid) = st.tids.pop() {
            // SAFETY: the descriptor is valid; we return one heap TID whose
            // order needs no recheck (ranges do, see the module doc).
            unsafe {
                let t = &mut (*scan).xs_heaptid;
                t.ip_blkid.bi_hi = tid.0[0];
                t.ip_blkid.bi_lo = tid.0[1];
                t.ip_posid = tid.0[2];
                (*scan).xs_recheck = st.recheck;
                (*scan).xs_recheckorderby = false;
            }
            return true;
        }
        if let Some(all) = st.all.as_mut() {
            match all.next_batch() {
                Some(mut tids) => {
                    tids.reverse();
                    st.tids = tids;
                    continue;
                }
                None => return false,
            }
        }
        // With iterative scans off a search hands out `ef_search` results,
        // each with all its rows (pgvector's too: a vector's duplicates
        // come back together).
        if st.budget == Some(0) {
            return false;
        }
        let Some(search) = st.search.as_mut() else {
            return false;
        };
        pgrx::check_for_interrupts!();
        match search.next_tids() {
            Some(mut tids) => {
                if let Some(left) = &mut st.budget {
                    *left -= 1;
                }
                tids.reverse();
                st.tids = tids;
            }
            None if st.with_unindexed && !search.scan.cut_short() => {
                // The graph is exhausted: the rows it cannot hold come
                // last, as NaN and NULL distances sort in a table scan.
                // The executor checks any filter conditions on them.
                st.with_unindexed = false;
                // SAFETY: the descriptor's index is open for the scan.
                let index = unsafe { Index::new((*scan).indexRelation) };
                let skip_nulls = st.skip_nulls;
                let mut tids: Vec<Tid> = or_raise(unindexed::all(index, &search.graph.meta))
                    .into_iter()
                    .filter(|&(reason, _)| !(skip_nulls && reason == unindexed::Reason::Null))
                    .map(|(_, tid)| tid)
                    .collect();
                if tids.is_empty() {
                    return false;
                }
                st.recheck |= st.filtered;
                tids.reverse();
                st.tids = tids;
            }
            None => return false,
        }
    }
}

/// `amendscan`: the state goes with the scan's memory context.
#[pgrx::pg_guard]
pub unsafe extern "C-unwind" fn amendscan(scan: pg_sys::IndexScanDesc) {
    *state(scan) = ScanState::default();
}
