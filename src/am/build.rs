//! `ambuild` and `ambuildempty`.
//!
//! The heap is read through the table AM's index build scan into a
//! [`MemoryGraph`]; identical vectors become one node with several heap
//! TIDs. The graph is then built in parallel with rayon (the backend and
//! `max_parallel_maintenance_workers` more threads, at most the cores) and
//! written out page by page, WAL-logged as full-page images.
//!
//! Rayon threads never call Postgres: they run with every signal blocked,
//! and the backend's own thread keeps reporting progress and watching for
//! cancellation while they work. A panic in a worker becomes an `ERROR`.
//!
//! Memory stays within `maintenance_work_mem`: when the next point would
//! not fit, the graph built so far is written out (with a NOTICE), and
//! the remaining rows are inserted into the on-disk graph one at a time.

use super::columns::Columns;
use super::options::index_options;
use super::utils::tid_of;
use super::utils::{check_dims, index_dims, opclass_metric, or_raise, prepare, raw_of, Packing};
use crate::error::{SqlError, SqlResult};
use crate::storage::buffer::{Block, BulkWriter};
use crate::storage::graph::{code_list, encode_slot, encode_upper, write_overflow};
use crate::storage::layout::{
    self, Geometry, PageKind, Tid, INLINE_TIDS, INVALID_BLOCK, NO_NODE, OVERFLOW_TIDS, PAGE_HEADER,
    PAYLOAD,
};
use crate::storage::meta::{empty_graph, new_meta, put_meta};
use crate::storage::unindexed::{self, Reason};
use crate::storage::values;
use crate::storage::writer::{GraphLock, GraphWriter};
use crate::storage::Index;
use crate::threads::WorkPool;
use crate::threads::{maintenance_threads, SignalsBlocked};
use pgrx::pg_sys;
use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;
use vdb_core::hnsw::memory::MemoryGraph;
use vdb_core::hnsw::search::LayerSearch;
use vdb_core::hnsw::{same_bits, GraphStore, Metric, NodeId, Params, Point};

/// `CREATE INDEX` sub-phases reported in `pg_stat_progress_create_index`.
pub const PHASE_LOAD: i64 = 2;
pub const PHASE_GRAPH: i64 = 3;
pub const PHASE_WRITE: i64 = 4;

/// `ambuildphasename`
#[pgrx::pg_guard]
pub unsafe extern "C-unwind" fn ambuildphasename(phase: i64) -> *mut std::ffi::c_char {
    let name: &std::ffi::CStr = match phase {
        1 => c"initializing",
        PHASE_LOAD => c"loading tuples",
        PHASE_GRAPH => c"building graph",
        PHASE_WRITE => c"writing index pages",
        _ => return std::ptr::null_mut(),
    };
    name.as_ptr().cast_mut()
}

fn report(param: u32, value: i64) {
    // SAFETY: progress reporting is a plain shared-memory write.
    unsafe { pg_sys::pgstat_progress_update_param(param as i32, value) };
}

struct BuildState {
    index: Index,
    metric: Metric,
    m: usize,
    ef_construction: usize,
    code_bits: u8,
    dims: usize,
    budget: usize,
    graph: Option<MemoryGraph>,
    /// Heap TIDs per node: the first, and any identical rows after it.
    first_tid: Vec<Tid>,
    extra_tids: HashMap<NodeId, Vec<Tid>>,
    /// Nodes by hash of their vector, to find identical vectors.
    by_hash: HashMap<u64, Vec<NodeId>>,
    /// The filter columns of a composite index.
    columns: Columns,
    /// Filter words of the in-memory nodes, `columns.words_len()` each.
    words: Vec<u64>,
    /// After a flush: the on-disk graph the remaining rows go into.
    disk: Option<GraphWriter>,
    /// Rows waiting to go into `disk`, inserted in shuffled batches.
    backlog: Vec<(Point, Vec<u64>, Tid)>,
    search: LayerSearch,
    index_tuples: f64,
    /// Rows the graph cannot hold, recorded once the graph is written.
    unindexed: Vec<(Reason, Tid)>,
    /// Per-row scratch memory (detoasted values).
    row_context: pg_sys::MemoryContext,
}

impl BuildState {
    fn params(&self) -> Params {
        Params {
            metric: self.metric,
            m: self.m,
            ef_construction: self.ef_construction,
        }
    }

    fn used_bytes(&self) -> usize {
        let nodes = self.graph.as_ref().map_or(0, MemoryGraph::len);
        // graph arrays + first TID + hash entry + filter words
        nodes
            * (MemoryGraph::bytes_per_node(self.stored_dims(), self.m)
                + 6
                + 40
                + 8 * self.columns.words_len())
    }

    fn add(&mut self, point: Point, words: Vec<u64>, tid: Tid) -> SqlResult<()> {
        if self.disk.is_some() {
            if self.backlog.try_reserve(1).is_err() {
                // Memory ran out below maintenance_work_mem: insert what
                // waits, which frees it.
                self.drain_backlog()?;
            }
            self.backlog.push((point, words, tid));
            if self.backlog.len() * (4 * self.stored_dims() + 64) > self.budget {
                self.drain_backlog()?;
            }
            return Ok(());
        }
        let hash = hash_vector(&point.vec);
        if self.graph.is_none() {
            self.graph = Some(MemoryGraph::new(self.params(), self.stored_dims(), 0x5eed));
        }
        let used = self.used_bytes();
        let node_bytes = MemoryGraph::bytes_per_node(self.stored_dims(), self.m);
        let graph = self.graph.as_mut().expect("created above");
        let w = words.len();
        let node_words = |n: NodeId| &self.words[n as usize * w..(n as usize + 1) * w];
        if let Some(nodes) = self.by_hash.get(&hash) {
            if let Some(&node) = nodes
                .iter()
                .find(|&&n| same_bits(graph.vector(n), &point.vec) && node_words(n) == words)
            {
                self.extra_tids.entry(node).or_default().push(tid);
                return Ok(());
            }
        }
        if used + node_bytes > self.budget && !graph.is_empty() {
            pgrx::ereport!(
                NOTICE,
                pgrx::PgSqlErrorCode::ERRCODE_SUCCESSFUL_COMPLETION,
                format!(
                    "vhnsw graph no longer fits into maintenance_work_mem after {} vectors",
                    graph.len()
                ),
                "The rest are inserted one at a time, which is slower. Increase maintenance_work_mem to build faster."
            );
            self.flush()?;
            return self.add(point, words, tid);
        }
        // maintenance_work_mem is any role's to set: running out of memory
        // below it is an ERROR, as palloc's would be, not an abort.
        let built = self.first_tid.len();
        let out_of_memory = |_| {
            SqlError::new(
                crate::error::SqlState::OutOfMemory,
                format!("out of memory building the vhnsw graph after {built} vectors"),
            )
            .with_detail("Lower maintenance_work_mem so the build writes its graph out sooner.")
        };
        self.first_tid.try_reserve(1).map_err(out_of_memory)?;
        self.by_hash.try_reserve(1).map_err(out_of_memory)?;
        self.words.try_reserve(w).map_err(out_of_memory)?;
        let node = graph.try_push(&point).map_err(out_of_memory)?;
        self.first_tid.push(tid);
        self.words.extend_from_slice(&words);
        self.by_hash.entry(hash).or_default().push(node);
        Ok(())
    }

    /// Inserts the backlog into the on-disk graph in a random order (rows
    /// arriving grouped, by cluster or time, would otherwise link poorly).
    fn drain_backlog(&mut self) -> SqlResult<()> {
        let Some(disk) = self.disk.as_mut() else {
            return Ok(());
        };
        let order =
            vdb_core::hnsw::memory::permutation(self.backlog.len(), self.backlog.len() as u64);
        for i in order {
            let (point, words, tid) = &self.backlog[i as usize];
            disk.insert_point(&mut self.search, point, words, *tid, None)?;
        }
        self.backlog.clear();
        Ok(())
    }

    /// Words a stored point takes (halves and bits are packed).
    fn stored_dims(&self) -> usize {
        self.metric.stored_len(self.dims)
    }

    /// Builds the in-memory graph and writes it out; later rows go to disk.
    fn flush(&mut self) -> SqlResult<()> {
        let graph = self
            .graph
            .take()
            .unwrap_or_else(|| MemoryGraph::new(self.params(), self.stored_dims(), 0x5eed));
        build_in_parallel(&graph)?;
        report(pg_sys::PROGRESS_CREATEIDX_SUBPHASE, PHASE_WRITE);
        write_index(
            self.index,
            &graph,
            &self.first_tid,
            &self.extra_tids,
            (&self.columns, &self.words),
            (self.metric, self.dims),
            self.ef_construction,
            self.code_bits,
        );
        self.first_tid = Vec::new();
        self.words = Vec::new();
        self.extra_tids = HashMap::new();
        self.by_hash = HashMap::new();
        self.disk = Some(GraphWriter::open(GraphLock::acquire(self.index))?);
        report(pg_sys::PROGRESS_CREATEIDX_SUBPHASE, PHASE_LOAD);
        Ok(())
    }
}

fn hash_vector(v: &[f32]) -> u64 {
    v.iter().fold(0x2545_f491_4f6c_dd1d, |h, x| {
        vdb_core::hnsw::splitmix64(h ^ u64::from(x.to_bits()))
    })
}

/// The table AM calls this for every heap row.
#[pgrx::pg_guard]
unsafe extern "C-unwind" fn build_callback(
    _index: pg_sys::Relation,
    tid: pg_sys::ItemPointer,
    values: *mut pg_sys::Datum,
    isnull: *mut bool,
    _alive: bool,
    state: *mut std::ffi::c_void,
) {
    // SAFETY: state is the BuildState ambuild passed to the scan; values,
    // isnull and tid describe one row, a value per index column.
    unsafe {
        let state = &mut *state.cast::<BuildState>();
        if *isnull {
            state.unindexed.push((Reason::Null, tid_of(&*tid)));
            return;
        }
        let old = pg_sys::MemoryContextSwitchTo(state.row_context);
        let result = (|| {
            let raw = raw_of(state.metric, *values, Packing::Row(state.dims))?;
            let Some(point) = prepare(state.metric, &raw)? else {
                state.unindexed.push((Reason::NoDirection, tid_of(&*tid)));
                return Ok(());
            };
            if state.dims == 0 {
                state.dims = raw.len();
                if let Some(disk) = state.disk.as_mut() {
                    disk.fix_dims(raw.len());
                }
            }
            check_dims(state.dims, raw.len())?;
            state.index_tuples += 1.0;
            let words = state.columns.words(values, isnull);
            state.add(point, words, tid_of(&*tid))
        })();
        pg_sys::MemoryContextSwitchTo(old);
        pg_sys::MemoryContextReset(state.row_context);
        or_raise(result);
    }
}

/// `ambuild`
#[pgrx::pg_guard]
pub unsafe extern "C-unwind" fn ambuild(
    heap: pg_sys::Relation,
    index: pg_sys::Relation,
    index_info: *mut pg_sys::IndexInfo,
) -> *mut pg_sys::IndexBuildResult {
    // SAFETY: Postgres keeps the index open for the whole build.
    let index_rel = unsafe { Index::new(index) };
    if crate::storage::buffer::block_count(index_rel) != 0 {
        or_raise::<()>(Err(SqlError::internal("index already contains data")));
    }
    let options = index_options(index_rel);
    let columns = or_raise(Columns::of(index_rel));
    let metric = or_raise(opclass_metric(index_rel));
    // SAFETY: maintenance_work_mem is a plain GUC variable (in kB).
    let budget = unsafe { pg_sys::maintenance_work_mem } as usize * 1024;
    // SAFETY: a child of the current (build) context, reset per row.
    let row_context = unsafe {
        pg_sys::AllocSetContextCreateInternal(
            pg_sys::CurrentMemoryContext,
            c"vhnsw build row".as_ptr(),
            pg_sys::ALLOCSET_DEFAULT_MINSIZE as usize,
            pg_sys::ALLOCSET_DEFAULT_INITSIZE as usize,
            pg_sys::ALLOCSET_DEFAULT_MAXSIZE as usize,
        )
    };
    let mut state = BuildState {
        index: index_rel,
        metric,
        m: options.m,
        ef_construction: options.ef_construction,
        code_bits: options.code_bits_for(metric),
        dims: index_dims(index_rel, metric, &options, columns.words_len()),
        budget,
        graph: None,
        first_tid: Vec::new(),
        extra_tids: HashMap::new(),
        by_hash: HashMap::new(),
        columns,
        words: Vec::new(),
        disk: None,
        backlog: Vec::new(),
        search: LayerSearch::new(),
        index_tuples: 0.0,
        unindexed: Vec::new(),
        row_context,
    };
    report(pg_sys::PROGRESS_CREATEIDX_SUBPHASE, PHASE_LOAD);
    // SAFETY: the callback receives &mut state for the duration of the scan.
    let heap_tuples = unsafe {
        pg_sys::table_index_build_scan(
            heap,
            index,
            index_info,
            true,
            true,
            Some(build_callback),
            (&mut state as *mut BuildState).cast(),
            std::ptr::null_mut(),
        )
    };
    or_raise(state.drain_backlog());
    if state.disk.is_none() {
        or_raise(state.flush());
    }
    // Rows inserted one at a time after the flush can have pruned away
    // another node's only incoming edge, and the parallel build can leave
    // a node that no list keeps (data with many near-identical
    // directions): every node no path reaches is linked.
    if let Some(disk) = state.disk.as_ref() {
        disk.link_unreachable();
    }
    or_raise(unindexed::append_all(index_rel, &state.unindexed));
    state.index_tuples += state.unindexed.len() as f64;
    // SAFETY: palloc0 returns a zeroed IndexBuildResult.
    unsafe {
        let result = pg_sys::palloc0(std::mem::size_of::<pg_sys::IndexBuildResult>())
            .cast::<pg_sys::IndexBuildResult>();
        (*result).heap_tuples = heap_tuples;
        (*result).index_tuples = state.index_tuples;
        result
    }
}

/// `ambuildempty`: the metapage of an unlogged index's init fork.
#[pgrx::pg_guard]
pub unsafe extern "C-unwind" fn ambuildempty(index: pg_sys::Relation) {
    // SAFETY: Postgres keeps the index open for the call.
    let index_rel = unsafe { Index::new(index) };
    let options = index_options(index_rel);
    let columns = or_raise(Columns::of(index_rel));
    let metric = or_raise(opclass_metric(index_rel));
    let meta = empty_graph(new_meta(
        index_dims(index_rel, metric, &options, columns.words_len()),
        metric,
        options.m,
        options.ef_construction,
        options.code_bits_for(metric),
        &columns.codes(),
    ));
    // SAFETY: the init fork is new and ours; the page is initialised, filled,
    // marked dirty and WAL-logged under its exclusive lock.
    unsafe {
        let buffer = pg_sys::ReadBufferExtended(
            index,
            pg_sys::ForkNumber::INIT_FORKNUM,
            pg_sys::InvalidBlockNumber,
            pg_sys::ReadBufferMode::RBM_NORMAL,
            std::ptr::null_mut(),
        );
        pg_sys::LockBuffer(buffer, pg_sys::BUFFER_LOCK_EXCLUSIVE as i32);
        // The page change and its WAL record in one critical section, as
        // every logged change of a shared buffer (an assert-enabled server
        // checks it in log_newpage_buffer).
        pg_sys::CritSectionCount += 1;
        let page = pg_sys::BufferGetPage(buffer);
        pg_sys::PageInit(page, layout::BLCKSZ, layout::SPECIAL);
        let bytes = std::slice::from_raw_parts_mut(page.cast::<u8>(), layout::BLCKSZ);
        *layout::opaque_mut(bytes) = layout::PageOpaque {
            kind: PageKind::Meta as u16,
            flags: 0,
            next: INVALID_BLOCK,
        };
        put_meta(bytes, &meta);
        pg_sys::MarkBufferDirty(buffer);
        pg_sys::log_newpage_buffer(buffer, true);
        pg_sys::CritSectionCount -= 1;
        pg_sys::UnlockReleaseBuffer(buffer);
    }
}

/// Whether the backend was asked to cancel the query or to terminate.
fn cancel_requested() -> bool {
    // SAFETY: sig_atomic_t flags set by signal handlers; volatile reads see
    // their writes.
    unsafe {
        std::ptr::read_volatile(&raw const pg_sys::QueryCancelPending) != 0
            || std::ptr::read_volatile(&raw const pg_sys::ProcDiePending) != 0
    }
}

/// Links every node of `graph` on the maintenance threads. Returns once the workers
/// are done; a query cancel stops them and raises the cancel's ERROR.
fn build_in_parallel(graph: &MemoryGraph) -> SqlResult<()> {
    let total = graph.len();
    report(pg_sys::PROGRESS_CREATEIDX_SUBPHASE, PHASE_GRAPH);
    report(pg_sys::PROGRESS_CREATEIDX_TUPLES_TOTAL, total as i64);
    let progress = AtomicUsize::new(0);
    let cancel = AtomicBool::new(false);
    let threads = maintenance_threads();
    // pgvector's parallel build says "using N parallel workers" at this
    // level; this build's workers are threads of the backend.
    pgrx::debug1!("vhnsw: building a graph of {total} nodes on {threads} threads");
    let outcome = std::thread::scope(|scope| {
        let worker = {
            let _blocked = SignalsBlocked::block();
            scope.spawn(|| -> Result<(), String> {
                let pool = rayon::ThreadPoolBuilder::new()
                    .num_threads(threads)
                    .thread_name(|i| format!("vhnsw-build-{i}"))
                    .build()
                    .map_err(|e| e.to_string())?;
                pool.install(|| {
                    #[cfg(any(test, feature = "pg_test"))]
                    inject_panic_for_tests();
                    graph.build(&progress, &cancel)
                });
                Ok(())
            })
        };
        while !worker.is_finished() {
            // Only a cancel or a termination stops the build: the backend
            // also gets benign interrupts (cache invalidation catch-up,
            // barriers) that must not cut the graph short.
            if cancel_requested() {
                cancel.store(true, Ordering::Relaxed);
            }
            report(
                pg_sys::PROGRESS_CREATEIDX_TUPLES_DONE,
                progress.load(Ordering::Relaxed) as i64,
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        worker.join()
    });
    if cancel.load(Ordering::Relaxed) {
        // Raises the cancel or termination now that no worker runs; a
        // build cut short is never written, whatever happens.
        pgrx::check_for_interrupts!();
        return Err(SqlError::new(
            crate::error::SqlState::Internal,
            "vhnsw build was interrupted",
        ));
    }
    match outcome {
        Ok(Ok(())) => {
            report(pg_sys::PROGRESS_CREATEIDX_TUPLES_DONE, total as i64);
            Ok(())
        }
        Ok(Err(e)) => Err(SqlError::internal(format!(
            "vhnsw build could not start its threads: {e}"
        ))),
        Err(panic) => {
            let msg = panic
                .downcast_ref::<&str>()
                .map(|s| s.to_string())
                .or_else(|| panic.downcast_ref::<String>().cloned())
                .unwrap_or_else(|| "unknown panic".into());
            Err(SqlError::internal(format!(
                "vhnsw build failed in a worker thread: {msg}"
            )))
        }
    }
}

/// Set by a test to make the next build panic in a rayon job.
#[cfg(any(test, feature = "pg_test"))]
pub static INJECT_BUILD_PANIC: AtomicBool = AtomicBool::new(false);

#[cfg(any(test, feature = "pg_test"))]
fn inject_panic_for_tests() {
    use rayon::prelude::*;
    if INJECT_BUILD_PANIC.swap(false, Ordering::Relaxed) {
        (0..8)
            .into_par_iter()
            .for_each(|i| assert!(i != 5, "injected panic in build job {i}"));
    }
}

/// Writes a built graph as a fresh index: metapage, overflow pages of
/// duplicate TIDs, the node region as one extent, the upper region as one
/// extent; then the real metapage.
#[allow(clippy::too_many_arguments)]
fn write_index(
    index: Index,
    graph: &MemoryGraph,
    first_tid: &[Tid],
    extra_tids: &HashMap<NodeId, Vec<Tid>>,
    (columns, words): (&Columns, &[u64]),
    (metric, dims): (Metric, usize),
    ef_construction: usize,
    code_bits: u8,
) {
    let params = graph.params();
    let mut meta = new_meta(
        dims,
        metric,
        params.m,
        ef_construction,
        code_bits,
        &columns.codes(),
    );
    let words_per_node = columns.words_len();
    let g = Geometry::from_meta(&meta);
    let quantizer = crate::storage::layout::quantizer(&meta);
    let mut w = BulkWriter::new(index);
    let meta_block = w.append(PageKind::Meta, |_| {});

    // Overflow chains for nodes with more identical rows than fit inline.
    let mut overflow: HashMap<NodeId, Block> = HashMap::new();
    let mut dup_nodes: Vec<&NodeId> = extra_tids.keys().collect();
    dup_nodes.sort_unstable();
    for &node in dup_nodes {
        let all: Vec<Tid> = std::iter::once(first_tid[node as usize])
            .chain(extra_tids[&node].iter().copied())
            .collect();
        let mut next = INVALID_BLOCK;
        for chunk in all
            .get(INLINE_TIDS..)
            .unwrap_or_default()
            .chunks(OVERFLOW_TIDS)
            .rev()
        {
            next = w.append(PageKind::Overflow, |page| write_overflow(page, chunk, next));
        }
        if next != INVALID_BLOCK {
            overflow.insert(node, next);
        }
    }

    // Nodes are written in breadth-first order (new id = position in
    // `order`), so neighbours share pages.
    let order = graph.breadth_first_order();
    let mut renumber = vec![0 as NodeId; order.len()];
    for (new, &old) in order.iter().enumerate() {
        renumber[old as usize] = new as NodeId;
    }
    let renumbered = |list: &mut Vec<NodeId>| {
        for id in list.iter_mut() {
            *id = renumber[*id as usize];
        }
    };

    // Node region: one extent of exactly the units needed.
    let n = graph.len() as u32;
    let units = if g.nodes_per_page > 0 {
        n.div_ceil(g.nodes_per_page as u32)
    } else {
        n
    };
    meta.node_base_units = units;
    meta.node_extent_count = 1;
    meta.node_extents[0] = if units > 0 {
        w.next_block()
    } else {
        INVALID_BLOCK
    };
    let mut upper_first = Vec::with_capacity(graph.len());
    let mut upper_count = 0u32;
    for new in 0..n {
        upper_first.push(upper_count);
        upper_count += u32::from(graph.level(order[new as usize]));
    }
    // Slots are encoded (their codes taken) on the maintenance threads, a chunk of
    // units at a time, and written in order.
    let slot_of = |new: NodeId| {
        let old = order[new as usize];
        let mut list = Vec::new();
        graph.neighbors(old, 0, &mut list);
        let codes = match &quantizer {
            Some(q) => code_list(
                q,
                &g,
                graph.vector(old),
                list.iter().map(|&n| graph.vector(n)),
            ),
            None => Vec::new(),
        };
        renumbered(&mut list);
        let tids: Vec<Tid> = std::iter::once(first_tid[old as usize])
            .chain(
                extra_tids
                    .get(&old)
                    .into_iter()
                    .flatten()
                    .copied()
                    .take(INLINE_TIDS),
            )
            .collect();
        encode_slot(
            &g,
            &Point {
                vec: graph.vector(old).to_vec(),
                aux: graph.aux(old),
            },
            &words[old as usize * words_per_node..(old as usize + 1) * words_per_node],
            &tids,
            graph.level(old),
            upper_first[new as usize],
            overflow.get(&old).copied().unwrap_or(INVALID_BLOCK),
            &list,
            &codes,
        )
    };
    let pool = WorkPool::with_threads(maintenance_threads());
    let per_page = g.nodes_per_page.max(1) as u32;
    const CHUNK_UNITS: u32 = 256;
    for chunk in (0..units).step_by(CHUNK_UNITS as usize) {
        pgrx::check_for_interrupts!();
        let first = chunk * per_page;
        let last = ((chunk + CHUNK_UNITS) * per_page).min(n);
        let slots = pool.map((last - first) as usize, |i| slot_of(first + i as u32));
        if g.nodes_per_page > 0 {
            for page_slots in slots.chunks(per_page as usize) {
                w.append(PageKind::Node, |page| {
                    for (i, slot) in page_slots.iter().enumerate() {
                        let start = PAGE_HEADER + i * g.node_size;
                        page[start..start + slot.len()].copy_from_slice(slot);
                    }
                });
            }
        } else {
            for slot in &slots {
                for part in slot.chunks(PAYLOAD) {
                    w.append(PageKind::Node, |page| {
                        page[PAGE_HEADER..PAGE_HEADER + part.len()].copy_from_slice(part)
                    });
                }
            }
        }
    }

    // Upper region: one extent.
    let mut list = Vec::new();
    let pages = upper_count.div_ceil(g.uppers_per_page as u32);
    meta.upper_base_units = pages;
    meta.upper_extent_count = 1;
    meta.upper_extents[0] = if pages > 0 {
        w.next_block()
    } else {
        INVALID_BLOCK
    };
    let mut images = vec![vec![0u8; PAYLOAD]; pages as usize];
    for new in 0..n {
        let old = order[new as usize];
        for level in 1..=graph.level(old) {
            graph.neighbors(old, level, &mut list);
            renumbered(&mut list);
            let (page, offset) = g.upper_page(upper_first[new as usize] + u32::from(level) - 1);
            images[page as usize][offset..offset + g.upper_size]
                .copy_from_slice(&encode_upper(&g, &list));
        }
    }
    for image in &images {
        w.append(PageKind::Upper, |page| {
            page[PAGE_HEADER..PAGE_HEADER + PAYLOAD].copy_from_slice(image)
        });
    }

    // Value region (composite indexes): the nodes' filter words by column.
    meta.value_dir = values::build(&mut w, values::ChunkShape::of(&meta), n, |new| {
        let old = order[new as usize] as usize;
        let code = match &quantizer {
            Some(q) => values::origin_code(q, metric, graph.vector(old as NodeId)),
            None => Vec::new(),
        };
        (
            words[old * words_per_node..(old + 1) * words_per_node].to_vec(),
            code,
        )
    });
    meta.node_count = n;
    meta.upper_count = upper_count;
    let entry = graph.entry();
    meta.entry_node = entry.map_or(NO_NODE, |e| renumber[e.node as usize]);
    meta.entry_level = entry.map_or(0, |e| u32::from(e.level));
    w.rewrite(meta_block, |page| put_meta(page, &meta));
    w.finish();
}
