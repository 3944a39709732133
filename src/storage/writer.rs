//! The one writer of the graph. Build, merge, insert and VACUUM change
//! the graph only through a [`GraphWriter`], and a `GraphWriter` only
//! exists while its [`GraphLock`] is held: one writer at a time, by type.
//!
//! # Locks
//!
//! - The graph lock (a heavyweight page lock on the index, not a buffer
//!   lock) serialises every change to nodes, links, extents, the free list
//!   and the metapage's graph fields. Scans never take it. Whoever needs a
//!   table lock takes it before the graph lock.
//! - Buffer locks are held for one WAL record at a time, taken in the
//!   order data pages, pending page, metapage: the order pending-list
//!   appenders follow too (tail page, then metapage), and so do appenders
//!   of the rows the graph cannot hold (`super::unindexed`: newest page,
//!   then metapage), so there is no deadlock between buffer locks, which
//!   have no deadlock detection. Those rows' pages are never locked with
//!   any graph or pending page: one append, or one page of VACUUM's pass,
//!   is one record, and a crash between records leaves each page whole.
//!
//! # Crash ordering
//!
//! Every page change is in a generic WAL record; a crash (or an `ERROR`:
//! records already written stay applied) can fall between any two
//! records. The rule that makes every such point safe: **the metapage
//! never points at anything that a record already on disk has taken away,
//! and nothing is reachable before it is complete.** Concretely, per
//! operation, in record order:
//!
//! - **New extent** ([`super::alloc`]): the relation is extended, then one
//!   record initialises the extent's last page *and* records the extent
//!   in the metapage. A crash before that record leaves zeroed pages that
//!   no extent names (space, reclaimed by REINDEX), never a page in use.
//! - **New node** ([`GraphWriter::insert_point`]): (1) upper-level
//!   lists, (2) the slot's pages after its first, all into slots nothing
//!   points to yet (past `node_count` / `upper_count`, or a slot on the
//!   free list with its own run of upper slots); (3) one record with the
//!   slot's first page (its header), the pending entry flagged merged,
//!   and the metapage that publishes the node (node count or free-list
//!   pop, entry point) and names it `linking`. (4) Link-back: one record
//!   per neighbour list. Until link-back ends, only `linking` may lack
//!   incoming links; scans search it directly, and the next writer
//!   finishes its link-back ([`GraphWriter::open`]).
//! - **New TID for an existing node**: one record with the node's page,
//!   the overflow page that takes it (new, or popped off the free
//!   overflow list together with the metapage) and the pending entry
//!   flagged merged.
//! - **Filter words** (composite indexes): written into the value region
//!   ([`super::values`], whose chunk and directory records come first)
//!   before the record that publishes the node; the slot carries them too,
//!   in its publishing record. The region is a superset index, checked
//!   against the slot, so a crash between the two leaves stale words for
//!   a node nobody sees, never a published node the region misses.
//! - **Codes**: a level-0 entry's code is written in the record that
//!   writes its id (same slot, same page), so no crash separates them;
//!   entries new to a list are coded before any buffer is locked.
//! - **Dead TIDs** ([`GraphWriter::set_tids`]): each overflow page, then
//!   the header (inline TIDs, deleted flag); every TID stays on its page.
//!   A crash in between leaves dead TIDs that the next VACUUM removes
//!   again, never a live one lost, and never a deleted node with TIDs.
//! - **Freeing deleted nodes** ([`GraphWriter::repair_deleted`]): (1)
//!   every live list pointing at them is redone (a record per list); (2)
//!   if the entry point goes, the metapage names a live one; (3) every
//!   deleted node's own lists are emptied (a record per list), so that no
//!   node waiting to be freed names a slot freed before it; (4) each slot
//!   goes onto the free list in one record with the metapage (slot header
//!   and free-list head together), its overflow chain spliced onto the
//!   free overflow list in the same record (the chain's last page). (2)
//!   to (4) wait for the scans that are starting ([`ScanLock`]), so none
//!   starts from a freed entry point; freed overflow pages wait for every
//!   older snapshot to end before reuse, so a scan that read the node
//!   before never follows its chain into another node's TIDs.
//! - **Reset of an empty index** ([`super::reset`], not a graph write: it
//!   runs under an `ACCESS EXCLUSIVE` lock instead): (1) one record with a
//!   fresh metapage, flushed; (2) the file truncated to that page (an
//!   `smgr` record). A crash between them leaves pages nothing names.

use super::alloc::{self, Region};
use super::buffer::{PageRead, WalBatch, MAX_BATCH_PAGES};
use super::graph::{code_list, encode_slot, encode_upper, write_overflow, PageGraph};
use super::layout::{
    self, Meta, NodeHeader, OverflowHeader, PageKind, Tid, INLINE_TIDS, INVALID_BLOCK,
    NODE_DELETED, NODE_FREE, NODE_IN_USE, NO_NODE, OVERFLOW_TIDS, PAGE_HEADER, PAYLOAD,
    PENDING_MERGED,
};
use super::meta::{put_graph_fields, set_dims};
use super::pending::{self, EntryRef};
use super::values::{self, Directory};
use super::Index;
use crate::error::{SqlError, SqlResult, SqlState};
use crate::failpoint;
use pgrx::pg_sys;
use std::cell::RefCell;
use vdb_core::hnsw::cache::VectorCache;
use vdb_core::hnsw::insert::{link_back_with, plan, Plan};
use vdb_core::hnsw::search::LayerSearch;
use vdb_core::hnsw::{same_bits, splitmix64, Entry, GraphStore, GraphWrite, NodeId, Params, Point};

/// Tag of the heavyweight page lock that serialises graph changes (it
/// names block 0 but is unrelated to that buffer's content lock).
const GRAPH_LOCK_BLOCK: u32 = 0;

/// Holds the index's graph lock; released on drop (or at transaction
/// abort, if an `ERROR` ends the transaction first).
pub struct GraphLock {
    rel: Index,
}

impl GraphLock {
    /// Waits for the lock.
    pub fn acquire(rel: Index) -> GraphLock {
        // SAFETY: rel is an open index; heavyweight locks are released at
        // transaction abort if we never get to Drop.
        unsafe { pg_sys::LockPage(rel.raw(), GRAPH_LOCK_BLOCK, pg_sys::ExclusiveLock as i32) };
        GraphLock { rel }
    }

    /// The lock if nobody holds it, else `None` (background merges).
    pub fn try_acquire(rel: Index) -> Option<GraphLock> {
        // SAFETY: as in acquire.
        let got = unsafe {
            pg_sys::ConditionalLockPage(rel.raw(), GRAPH_LOCK_BLOCK, pg_sys::ExclusiveLock as i32)
        };
        // Lazily: a guard made when the lock was not obtained would
        // release, on drop, a lock this process does not hold.
        got.then(|| GraphLock { rel })
    }
}

impl Drop for GraphLock {
    fn drop(&mut self) {
        // SAFETY: we took this lock in acquire or try_acquire.
        unsafe {
            pg_sys::UnlockPage(
                self.rel.raw(),
                GRAPH_LOCK_BLOCK,
                pg_sys::ExclusiveLock as i32,
            )
        };
    }
}

/// Tag of the heavyweight page lock between scans and the freeing of
/// node slots (block 1's number, unrelated to that buffer).
const SCAN_LOCK_BLOCK: u32 = 1;

/// Held by a scan (shared) while it reads the metapage and runs its first
/// search round, and by VACUUM (exclusive) before it frees node slots: a
/// scan never starts from an entry point freed under it. Later rounds of
/// a long scan tolerate freed slots (they read as empty, and a reused
/// slot's vector no longer matches the distance measured).
pub struct ScanLock {
    rel: Index,
    mode: i32,
}

impl ScanLock {
    pub fn share(rel: Index) -> ScanLock {
        Self::take(rel, pg_sys::ShareLock as i32)
    }

    fn exclusive(rel: Index) -> ScanLock {
        Self::take(rel, pg_sys::ExclusiveLock as i32)
    }

    fn take(rel: Index, mode: i32) -> ScanLock {
        // SAFETY: rel is an open index; released on drop or at abort.
        unsafe { pg_sys::LockPage(rel.raw(), SCAN_LOCK_BLOCK, mode) };
        ScanLock { rel, mode }
    }
}

impl Drop for ScanLock {
    fn drop(&mut self) {
        // SAFETY: we took this lock in take().
        unsafe { pg_sys::UnlockPage(self.rel.raw(), SCAN_LOCK_BLOCK, self.mode) };
    }
}

/// Bytes the vectors cached by a write operation may take:
/// `maintenance_work_mem`, up to 1 GiB. The cache grows with Rust's
/// allocator, which aborts the process when memory runs out, so any role
/// setting `maintenance_work_mem` high must not be able to make it huge.
fn cache_budget() -> usize {
    // SAFETY: a plain global setting, in kilobytes.
    let setting = unsafe { pg_sys::maintenance_work_mem }.max(0) as usize * 1024;
    setting.min(1 << 30)
}

/// What a VACUUM's repair did, for `VACUUM VERBOSE`.
#[derive(Debug, Clone, Copy, Default)]
pub struct Repaired {
    /// Slots of removed nodes put on the free list.
    pub freed: usize,
    /// Lists refilled from the removed nodes' own lists.
    pub consolidated: usize,
    /// Nodes whose lists needed a search instead.
    pub searched: usize,
}

/// The graph opened for changes, with the lock that allows them.
pub struct GraphWriter {
    pub(super) graph: PageGraph,
    /// The value region's directory (composite indexes).
    values: Directory,
    /// Threads for link-back's list re-selection, ended with the writer.
    pool: crate::threads::WorkPool,
    // Declared last: released after everything above is dropped.
    _lock: GraphLock,
}

impl std::ops::Deref for GraphWriter {
    type Target = PageGraph;

    fn deref(&self) -> &PageGraph {
        &self.graph
    }
}

impl GraphWriter {
    /// Opens the graph for changes, first finishing the link-back of a
    /// node whose insert an `ERROR` or a crash cut short.
    pub fn open(lock: GraphLock) -> SqlResult<GraphWriter> {
        let mut graph = PageGraph::open(lock.rel)?;
        graph.cache = Some(RefCell::new(VectorCache::with_budget(
            graph.geometry.dims.max(1),
            cache_budget(),
        )));
        let values = Directory::read(lock.rel, &graph.meta)?;
        let mut w = GraphWriter {
            graph,
            values,
            pool: crate::threads::WorkPool::with_threads(crate::threads::merge_threads()),
            _lock: lock,
        };
        let node = w.meta.linking;
        if node != NO_NODE {
            if node < w.node_count() && w.header(node).flags & NODE_IN_USE != 0 {
                let level = w.header(node).level;
                let point = w.load(node);
                let plan = plan(&w, &mut LayerSearch::new(), &point, level, Some(node));
                link_back_with(&w, node, &plan, |work, metric| {
                    w.pool.reselect(work, metric)
                });
            }
            w.graph.meta.linking = NO_NODE;
            w.write_meta();
        }
        Ok(w)
    }

    /// Writes the in-memory metapage in a record of its own.
    pub fn write_meta(&self) {
        let mut batch = WalBatch::start(self.rel);
        put_graph_fields(&mut batch, &self.meta);
        batch.commit();
    }

    /// Records a finished merge of `entries` entries.
    pub fn record_merge(&mut self, entries: usize) {
        if entries == 0 {
            return;
        }
        // SAFETY: GetCurrentTimestamp only reads the clock.
        self.graph.meta.last_merge = unsafe { pg_sys::GetCurrentTimestamp() };
        self.graph.meta.merged_total += entries as u64;
        self.write_meta();
    }

    /// Records the dimension count of an index built before it was known.
    pub fn fix_dims(&mut self, dims: usize) {
        set_dims(&mut self.graph.meta, dims);
        self.graph.geometry = layout::Geometry::from_meta(&self.meta);
        self.graph.quantizer = layout::quantizer(&self.meta);
        self.graph.cache = Some(RefCell::new(VectorCache::with_budget(
            self.graph.geometry.dims,
            cache_budget(),
        )));
        self.write_meta();
    }

    /// Puts one prepared point for heap row `tid`, with its filter words
    /// `words`, into the graph: adds the TID to an identical node if the
    /// nearest one is identical (same vector and filter values), else
    /// creates and links a new node. `merged` is the pending entry it came
    /// from, flagged in the record that publishes the row.
    pub fn insert_point(
        &mut self,
        search: &mut LayerSearch,
        point: &Point,
        words: &[u64],
        tid: Tid,
        merged: Option<EntryRef>,
    ) -> SqlResult<()> {
        if words.len() < self.geometry.filter_words {
            return Err(SqlError::internal(
                "vhnsw: a row without the index's filter values",
            ));
        }
        let words = &words[..self.geometry.filter_words];
        let seed = splitmix64(
            (u64::from(tid.block()) << 16 | u64::from(tid.offset())) ^ u64::from(self.node_count()),
        );
        let level = self.params().random_level(seed);
        if self.entry().is_none() {
            let plan = Plan {
                level,
                lists: vec![Vec::new(); usize::from(level) + 1],
                nearest: None,
            };
            self.add_node(point, words, tid, &plan, merged)?;
            return Ok(());
        }
        let plan = plan(self, search, point, level, None);
        if let Some(nearest) = plan.nearest {
            if same_bits(&self.load(nearest.node).vec, &point.vec)
                && !self.tids(nearest.node).deleted
                && self.words(nearest.node) == words
            {
                return self.add_tid(nearest.node, tid, merged);
            }
        }
        let node = self.add_node(point, words, tid, &plan, merged)?;
        failpoint::hit("insert_before_link_back");
        link_back_with(&*self, node, &plan, |work, metric| {
            self.pool.reselect(work, metric)
        });
        // Written with the next metapage change; until then a crash only
        // means linking this node once more.
        self.graph.meta.linking = NO_NODE;
        Ok(())
    }

    /// Makes sure `region` has room for its unit `unit` (see
    /// [`alloc::reserve`]).
    fn reserve(&mut self, region: Region, unit: u32) -> SqlResult<()> {
        let geometry = self.geometry;
        alloc::reserve(self.rel, &mut self.graph.meta, &geometry, region, unit)
    }

    /// The slot a new node takes: the head of the free list (checked to
    /// be free: a slot in use is never overwritten) or the next new one,
    /// with the header it has now if reused.
    fn claim_slot(&self) -> SqlResult<(NodeId, Option<NodeHeader>)> {
        let free = self.meta.free_node;
        if free == NO_NODE {
            return Ok((self.meta.node_count, None));
        }
        let header = (free < self.meta.node_count).then(|| self.header(free));
        match header {
            Some(h) if h.state() == NODE_FREE => Ok((free, Some(h))),
            _ => Err(SqlError::new(
                SqlState::IndexCorrupted,
                format!(
                    "vhnsw index is corrupt: its free list names node {free}, which is not free"
                ),
            )
            .with_detail("REINDEX the index.")),
        }
    }

    /// Creates a node for `point` with heap TID `tid` and the neighbour
    /// lists of `plan`, and publishes it (see the module doc for the order
    /// of records). Returns its id.
    fn add_node(
        &mut self,
        point: &Point,
        words: &[u64],
        tid: Tid,
        plan: &Plan,
        merged: Option<EntryRef>,
    ) -> SqlResult<NodeId> {
        let g = self.geometry;
        let level = plan.level;
        let (node, reused) = self.claim_slot()?;
        if reused.is_none() {
            self.reserve(Region::Nodes, g.node_unit(node).0)?;
        }
        // A slot keeps its run of upper slots for life, whatever the level
        // of the node in it. A node higher than the run gets a new one and
        // the old run is lost; a slot's capacity only grows, so that
        // happens at most `MAX_LEVEL` times per slot.
        let kept = reused.map_or(0, |h| h.upper_capacity());
        let (upper_first, fresh_uppers, capacity) = match reused {
            Some(h) if kept >= level => (h.upper_first, false, kept),
            _ if level > 0 => (self.meta.upper_count, true, level),
            _ => (0, false, 0),
        };
        if fresh_uppers {
            let last = upper_first + u32::from(level) - 1;
            self.reserve(Region::Uppers, g.upper_page(last).0)?;
        }
        // The node's words in the value region, before the record that
        // publishes it (see `values`: the slot stays the truth).
        let code = match (&self.graph.quantizer, self.meta.filter_cols) {
            (Some(q), 1..) => values::origin_code(q, self.params().metric, &point.vec),
            _ => Vec::new(),
        };
        values::write(
            self.rel,
            &mut self.graph.meta,
            &mut self.values,
            node,
            words,
            &code,
        )?;
        failpoint::hit("add_node_reserved");

        let codes = self.codes_for(&point.vec, &plan.lists[0]);
        let mut slot = encode_slot(
            &g,
            point,
            words,
            &[tid],
            level,
            upper_first,
            INVALID_BLOCK,
            &plan.lists[0],
            &codes,
        );
        let header = layout::read_mut::<NodeHeader>(&mut slot, 0);
        header.generation = reused.map_or(0, |h| h.generation.wrapping_add(1));
        header.set_upper_capacity(capacity);

        // Pages to write: upper slots, the slot's later pages, and its
        // first page (the header) last, in the publishing record.
        let mut writes: Vec<Write> = Vec::new();
        for l in 1..=level {
            let (block, offset) = self.upper_slot_location(upper_first + u32::from(l) - 1)?;
            writes.push(Write {
                block,
                kind: PageKind::Upper,
                offset,
                bytes: encode_upper(&g, &plan.lists[usize::from(l)]),
            });
        }
        let (first, offset) = self.node_location(node);
        let mut chunks = slot.chunks(PAYLOAD - offset.min(PAYLOAD)).enumerate();
        let head = chunks.next().map(|(_, c)| c.to_vec()).unwrap_or_default();
        for (i, chunk) in chunks {
            writes.push(Write {
                block: first + i as u32,
                kind: PageKind::Node,
                offset: 0,
                bytes: chunk.to_vec(),
            });
        }
        writes.push(Write {
            block: first,
            kind: PageKind::Node,
            offset,
            bytes: head,
        });

        let mut meta = self.meta;
        match reused {
            Some(h) => {
                meta.free_node = h.overflow;
                meta.free_nodes = meta.free_nodes.saturating_sub(1);
            }
            None => meta.node_count += 1,
        }
        if fresh_uppers {
            meta.upper_count += u32::from(level);
        }
        if meta.entry_node == NO_NODE || u32::from(level) > meta.entry_level {
            meta.entry_node = node;
            meta.entry_level = u32::from(level);
        }
        // Until link-back is done, a crash would leave the node without
        // incoming links: scans search it directly, the next writer
        // finishes it.
        meta.linking = node;
        self.publish(&writes, merged, &meta);
        self.graph.meta = meta;
        if let Some(c) = &self.cache {
            c.borrow_mut().insert(node, &point.vec, point.aux);
        }
        Ok(node)
    }

    /// The code entries of a level-0 list of the node at `center` (empty
    /// when the index has no codes).
    fn codes_for(&self, center: &[f32], list: &[NodeId]) -> Vec<u8> {
        match &self.graph.quantizer {
            Some(q) => {
                let vectors: Vec<Point> = list.iter().map(|&n| self.load(n)).collect();
                code_list(
                    q,
                    &self.geometry,
                    center,
                    vectors.iter().map(|p| &p.vec[..]),
                )
            }
            None => Vec::new(),
        }
    }

    /// Applies `writes`, several pages per WAL record; the last record
    /// holds the last write's page, flags the pending entry `merged` and
    /// writes `meta` (data pages, pending page, metapage: the lock order).
    fn publish(&self, writes: &[Write], merged: Option<EntryRef>, meta: &Meta) {
        let mut blocks: Vec<u32> = Vec::new();
        for w in writes {
            if !blocks.contains(&w.block) {
                blocks.push(w.block);
            }
        }
        // The last write's page goes last, whatever else shares its record.
        if let Some(last) = writes.last() {
            blocks.retain(|&b| b != last.block);
            blocks.push(last.block);
        }
        let reserved = 1 + usize::from(merged.is_some());
        let (head, tail) = blocks.split_at(blocks.len().saturating_sub(MAX_BATCH_PAGES - reserved));
        let mut groups: Vec<&[u32]> = head.chunks(MAX_BATCH_PAGES).collect();
        groups.push(tail);
        let last = groups.len() - 1;
        for (gi, group) in groups.iter().enumerate() {
            let mut batch = WalBatch::start(self.rel);
            for &block in group.iter() {
                let kind = writes
                    .iter()
                    .find(|w| w.block == block)
                    .map_or(PageKind::Node, |w| w.kind);
                let i = batch.page_init_if_new(block, kind);
                for w in writes.iter().filter(|w| w.block == block) {
                    let start = PAGE_HEADER + w.offset;
                    batch.bytes_mut(i)[start..start + w.bytes.len()].copy_from_slice(&w.bytes);
                }
            }
            if gi == last {
                if let Some(at) = merged {
                    pending::mark(&mut batch, at, self.shape(), PENDING_MERGED);
                }
                put_graph_fields(&mut batch, meta);
            }
            batch.commit();
            if gi != last {
                // After a record, before the next: the window a crash hits.
                failpoint::hit("publish_between_records");
            }
        }
    }

    /// Adds a heap TID to an existing node (an identical vector), flagging
    /// the pending entry `merged` in the same record. A new overflow page
    /// comes off the free list when [`Self::free_overflow_page`] allows, in
    /// the same record too.
    fn add_tid(&mut self, node: NodeId, tid: Tid, merged: Option<EntryRef>) -> SqlResult<()> {
        let (block, offset) = self.node_location(node);
        let first_overflow = self.header(node).overflow;
        // Only the writer changes overflow pages: whether the chain's head
        // has room can be read before the record, which then holds only
        // the pages it changes (a record takes at most four).
        let head_has_room = first_overflow != INVALID_BLOCK && {
            let page = PageRead::new(self.rel, first_overflow);
            (layout::read::<OverflowHeader>(layout::payload(page.bytes()), 0).count as usize)
                < OVERFLOW_TIDS
        };
        let reused = if head_has_room {
            None
        } else {
            self.free_overflow_page()
        };
        let mut meta = self.meta;
        let mut batch = WalBatch::start(self.rel);
        let i = batch.page(block, None);
        let header = *layout::read::<NodeHeader>(&layout::payload(batch.bytes(i))[offset..], 0);
        fn header_mut(batch: &mut WalBatch, i: usize, offset: usize) -> &mut NodeHeader {
            layout::read_mut::<NodeHeader>(
                &mut layout::payload_mut(batch.bytes_mut(i))[offset..],
                0,
            )
        }
        if usize::from(header.ntids) < INLINE_TIDS {
            let h = header_mut(&mut batch, i, offset);
            h.tids[usize::from(h.ntids)] = tid;
            h.ntids += 1;
            h.flags &= !NODE_DELETED;
        } else {
            // The head of the overflow chain takes it if it has room;
            // otherwise a new page becomes the head.
            if head_has_room && header.overflow == first_overflow {
                let j = batch.page(header.overflow, None);
                let payload = layout::payload_mut(batch.bytes_mut(j));
                let count = (layout::read::<OverflowHeader>(payload, 0).count as usize)
                    .min(OVERFLOW_TIDS - 1);
                layout::slice_mut::<Tid>(payload, 4, count + 1)[count] = tid;
                layout::read_mut::<OverflowHeader>(payload, 0).count = count as u32 + 1;
            } else {
                let (new_block, j) = match reused {
                    Some((block, next)) => {
                        meta.free_overflow = next;
                        (block, batch.page(block, Some(PageKind::Overflow)))
                    }
                    None => alloc::new_loose_page(self.rel, &mut batch, PageKind::Overflow),
                };
                write_overflow(batch.bytes_mut(j), &[tid], header.overflow);
                header_mut(&mut batch, i, offset).overflow = new_block;
            }
            header_mut(&mut batch, i, offset).flags &= !NODE_DELETED;
        }
        if let Some(at) = merged {
            pending::mark(&mut batch, at, self.shape(), PENDING_MERGED);
        }
        if meta.free_overflow != self.meta.free_overflow {
            put_graph_fields(&mut batch, &meta);
        }
        batch.commit();
        self.graph.meta = meta;
        Ok(())
    }

    /// The head of the free overflow-page list and the page after it, if
    /// no snapshot older than its freeing is left: a scan that read a
    /// freed node's header before VACUUM freed it may still follow its
    /// chain, and must not find another node's TIDs there.
    fn free_overflow_page(&self) -> Option<(u32, u32)> {
        let head = layout::chain_link(self.meta.free_overflow)?;
        let [lo, hi] = self.meta.free_overflow_xid;
        if !no_snapshot_before(u64::from(lo) | u64::from(hi) << 32) {
            return None;
        }
        let page = PageRead::new(self.rel, head);
        let bytes = page.bytes();
        (layout::opaque(bytes).kind == PageKind::Overflow as u16)
            .then(|| (head, layout::opaque(bytes).next))
    }

    /// Keeps only `node`'s heap TIDs that are in `live` (a subset of its
    /// current ones); a node left without TIDs is flagged deleted. Every
    /// TID stays on the page it is on, so a scan reading the node's pages
    /// one at a time meanwhile never misses a live one; the overflow pages
    /// are written first and the header last, so the deleted flag never
    /// stands beside TIDs left on a page. Returns whether the node was
    /// newly deleted.
    pub fn set_tids(&mut self, node: NodeId, live: &[Tid]) -> SqlResult<bool> {
        let (block, offset) = self.node_location(node);
        let header = self.header(node);
        let keep: std::collections::HashSet<Tid> = live.iter().copied().collect();
        for page in self.graph.overflow_chain(header.overflow, node)? {
            let mut batch = WalBatch::start(self.rel);
            let j = batch.page(page, None);
            let payload = layout::payload_mut(batch.bytes_mut(j));
            let count =
                (layout::read::<OverflowHeader>(payload, 0).count as usize).min(OVERFLOW_TIDS);
            let tids = layout::slice_mut::<Tid>(payload, 4, count);
            let mut kept = 0;
            for k in 0..count {
                if keep.contains(&tids[k]) {
                    tids[kept] = tids[k];
                    kept += 1;
                }
            }
            if kept == count {
                continue; // unchanged: the batch is dropped unwritten
            }
            layout::read_mut::<OverflowHeader>(payload, 0).count = kept as u32;
            batch.commit();
        }
        let newly_deleted = live.is_empty() && header.flags & NODE_DELETED == 0;
        let mut batch = WalBatch::start(self.rel);
        let i = batch.page(block, None);
        let h = layout::read_mut::<NodeHeader>(
            &mut layout::payload_mut(batch.bytes_mut(i))[offset..],
            0,
        );
        let inline: Vec<Tid> = h.tids[..usize::from(h.ntids).min(INLINE_TIDS)]
            .iter()
            .copied()
            .filter(|t| keep.contains(t))
            .collect();
        h.tids = [Tid::default(); INLINE_TIDS];
        h.tids[..inline.len()].copy_from_slice(&inline);
        h.ntids = inline.len() as u16;
        if live.is_empty() {
            h.flags |= NODE_DELETED;
        }
        batch.commit();
        if newly_deleted {
            self.graph.meta.deleted_nodes += 1;
        }
        Ok(newly_deleted)
    }

    /// Unlinks the nodes VACUUM left without rows and frees their slots
    /// for reuse. Every list pointing to such a node is refilled from the
    /// removed nodes' own neighbours, in batches whose distance work runs
    /// on `threads` threads
    /// ([`vdb_core::hnsw::consolidate`]); the few lists that would keep
    /// less than half their length are redone by a search
    /// ([`vdb_core::hnsw::repair::repair_removed`]). A removed entry point
    /// is replaced by the highest live node before any slot is freed.
    /// Returns what it did.
    pub fn repair_deleted(&mut self, threads: usize) -> SqlResult<Repaired> {
        let n = self.node_count();
        let mut gone = vec![false; n as usize];
        let mut live_top: Option<(u8, NodeId)> = None;
        for node in 0..n {
            if node % 1024 == 0 {
                pgrx::check_for_interrupts!();
            }
            let h = self.header(node);
            if h.flags & NODE_IN_USE == 0 {
                continue;
            }
            if h.flags & NODE_DELETED != 0 {
                gone[node as usize] = true;
            } else if live_top.is_none_or(|(level, _)| h.level > level) {
                live_top = Some((h.level, node));
            }
        }
        let freed: Vec<NodeId> = (0..n).filter(|&i| gone[i as usize]).collect();
        if freed.is_empty() {
            return Ok(Repaired::default());
        }
        let (consolidated, searched) = self.consolidate(&gone, threads)?;
        let mut report = Repaired {
            freed: freed.len(),
            consolidated,
            searched: searched.len(),
        };
        let is_gone = |x: NodeId| gone.get(x as usize).copied().unwrap_or(true);
        vdb_core::hnsw::repair::repair_removed(
            self,
            &mut searched.into_iter(),
            &|node| self.header(node).level,
            &|node| self.load(node),
            &|node| is_gone(node) || self.header(node).flags & NODE_IN_USE == 0,
            &mut |node| {
                if node % 256 == 0 {
                    pgrx::check_for_interrupts!();
                }
            },
        );
        failpoint::hit("repair_relinked");
        // No scan is starting from what is about to be freed.
        let _scans = ScanLock::exclusive(self.rel);
        // The entry point moves before its slot can be freed.
        if self.meta.entry_node != NO_NODE && is_gone(self.meta.entry_node) {
            (self.graph.meta.entry_node, self.graph.meta.entry_level) =
                live_top.map_or((NO_NODE, 0), |(l, node)| (node, u32::from(l)));
            self.write_meta();
        }
        // No live list names them now, but they still name each other:
        // emptied first, all of them, so that a crash part-way through the
        // freeing below leaves no node still waiting to be freed that names
        // a slot already reused (at another level, by then).
        for (k, &node) in freed.iter().enumerate() {
            if k % 64 == 0 {
                pgrx::check_for_interrupts!();
            }
            for level in 0..=self.header(node).level {
                self.update_neighbors(node, level, &mut |current| current.clear());
            }
        }
        failpoint::hit("repair_emptied");
        // Nothing points to them now: onto the free list, each slot with
        // the free-list head in one record, and its overflow pages (if
        // any) onto theirs in the same record.
        for &node in &freed {
            pgrx::check_for_interrupts!();
            failpoint::hit("repair_free_slot");
            let chain = self
                .graph
                .overflow_chain(self.header(node).overflow, node)?;
            let mut meta = self.meta;
            let (block, offset) = self.node_location(node);
            let mut batch = WalBatch::start(self.rel);
            let i = batch.page(block, None);
            if let (Some(&first), Some(&last)) = (chain.first(), chain.last()) {
                let j = batch.page(last, None);
                layout::opaque_mut(batch.bytes_mut(j)).next =
                    layout::chain_link(meta.free_overflow).unwrap_or(INVALID_BLOCK);
                meta.free_overflow = first;
                let xid = next_full_xid();
                meta.free_overflow_xid = [xid as u32, (xid >> 32) as u32];
            }
            let h = layout::read_mut::<NodeHeader>(
                &mut layout::payload_mut(batch.bytes_mut(i))[offset..],
                0,
            );
            // The run of upper slots stays with the slot (see add_node);
            // the free list runs through `overflow`.
            let capacity = h.upper_capacity();
            h.flags = NODE_FREE;
            h.set_upper_capacity(capacity);
            h.n0 = 0;
            h.ntids = 0;
            h.overflow = meta.free_node;
            meta.free_node = node;
            meta.free_nodes += 1;
            meta.deleted_nodes = meta.deleted_nodes.saturating_sub(1);
            put_graph_fields(&mut batch, &meta);
            batch.commit();
            self.graph.meta = meta;
        }
        report.freed = freed.len();
        Ok(report)
    }

    /// Refills every list of a live node that names a node `gone` marks,
    /// from the removed nodes' lists, a batch at a time: the damaged lists
    /// and the removed nodes' lists are read in one pass, each batch's
    /// vectors are copied out here, the new lists are chosen on `threads`
    /// threads and written here, one WAL record each (like any list
    /// change: a crash between two leaves every list whole, and a removed
    /// node still links onwards until its slot is freed). Returns the
    /// lists it refilled, and the nodes whose lists it handed back for a
    /// search.
    fn consolidate(&self, gone: &[bool], threads: usize) -> SqlResult<(usize, Vec<NodeId>)> {
        use vdb_core::hnsw::consolidate::{
            candidates, refill_damaged, Copied, Damaged, RemovedLists,
        };
        /// Lists per batch: bounds the vectors copied at once.
        const BATCH: usize = 8192;
        let is_gone = |x: NodeId| gone.get(x as usize).copied().unwrap_or(true);
        // Levels, read here: a candidate for a level-L list must reach
        // level L (a removed node's list may be stale).
        let levels: Vec<Option<u8>> = (0..self.node_count())
            .map(|n| {
                let h = self.header(n);
                (h.flags & NODE_IN_USE != 0).then_some(h.level)
            })
            .collect();
        let mut removed = RemovedLists::new();
        let mut damaged = Vec::new();
        let mut list = Vec::new();
        for node in 0..self.node_count() {
            if node % 1024 == 0 {
                pgrx::check_for_interrupts!();
            }
            let h = self.header(node);
            if h.flags & NODE_IN_USE == 0 {
                continue;
            }
            for level in 0..=h.level {
                self.neighbors(node, level, &mut list);
                if is_gone(node) {
                    removed.insert((node, level), list.clone());
                } else if list.iter().any(|&x| is_gone(x)) {
                    damaged.push(Damaged {
                        node,
                        level,
                        list: list.clone(),
                    });
                }
            }
        }
        let params = *self.params();
        let pool = crate::threads::WorkPool::with_threads(threads);
        let mut searched = Vec::new();
        for batch in damaged.chunks(BATCH) {
            let found = pool.map(batch.len(), |i| {
                let d = &batch[i];
                let mut c = candidates(d, &removed, &is_gone, params.ef_construction);
                c.retain(|&x| {
                    levels
                        .get(x as usize)
                        .copied()
                        .flatten()
                        .is_some_and(|l| l >= d.level)
                });
                c
            });
            let copied = Copied::of(
                self,
                batch.iter().zip(&found).flat_map(|(d, c)| {
                    std::iter::once(d.node)
                        .chain(d.list.iter().copied().filter(|&x| !is_gone(x)))
                        .chain(c.iter().copied())
                }),
            );
            let lists = pool.map(batch.len(), |i| {
                let d = &batch[i];
                let len = if d.level > 0 {
                    params.max_neighbors(d.level)
                } else {
                    d.list.len().min(params.max_neighbors(0))
                };
                refill_damaged(
                    params.metric,
                    &copied,
                    d,
                    &found[i],
                    &is_gone,
                    len,
                    params.ef_construction,
                )
            });
            for (k, (d, new)) in batch.iter().zip(lists).enumerate() {
                if k % 64 == 0 {
                    // Cost-based delay, and interrupts.
                    // SAFETY: a plain function of the backend's own thread.
                    unsafe { pg_sys::vacuum_delay_point() };
                }
                match new {
                    Some(new) => self
                        .update_neighbors(d.node, d.level, &mut |current| *current = new.clone()),
                    None => searched.push(d.node),
                }
            }
        }
        let refilled = damaged.len() - searched.len();
        searched.dedup();
        Ok((refilled, searched))
    }

    /// Links every live node that no path reaches (after bulk changes).
    pub fn link_unreachable(&self) -> usize {
        vdb_core::hnsw::repair::link_unreachable(
            self,
            self.node_count(),
            &|n| self.header(n).level,
            &|n| self.load(n),
            &|n| self.tids(n).deleted,
        )
    }

    /// Where upper slot `slot` lives; the writer reserved its extent, so
    /// not knowing it means a corrupt metapage.
    fn upper_slot_location(&self, slot: u32) -> SqlResult<(u32, usize)> {
        let meta = &self.graph.meta;
        let (page, offset) = self.geometry.upper_page(slot);
        let (k, i) = layout::extent_of(meta.upper_base_units, page);
        match meta.upper_extents.get(k) {
            Some(&first) if k < meta.upper_extent_count as usize && first != INVALID_BLOCK => {
                Ok((first + i, offset))
            }
            _ => Err(SqlError::new(
                SqlState::IndexCorrupted,
                format!("vhnsw index is corrupt: upper slot {slot} lies in no extent"),
            )),
        }
    }
}

/// Bytes to write at `offset` of a page's payload.
struct Write {
    block: u32,
    kind: PageKind,
    offset: usize,
    bytes: Vec<u8>,
}

impl GraphStore for GraphWriter {
    fn params(&self) -> &Params {
        self.graph.params()
    }

    fn entry(&self) -> Option<Entry> {
        self.graph.entry()
    }

    fn distance(&self, query: &Point, node: NodeId) -> f32 {
        self.graph.distance(query, node)
    }

    fn copy_vector(&self, node: NodeId, out: &mut Vec<f32>) -> f32 {
        self.graph.copy_vector(node, out)
    }

    fn distance_between(&self, a: NodeId, b: NodeId) -> f32 {
        self.graph.distance_between(a, b)
    }

    fn distances(&self, query: &Point, nodes: &[NodeId], out: &mut Vec<f32>) {
        self.graph.distances(query, nodes, out)
    }

    fn neighbors(&self, node: NodeId, level: u8, out: &mut Vec<NodeId>) {
        // The writer's own snapshot is always current.
        self.graph.neighbors(node, level, out)
    }
}

impl GraphWrite for GraphWriter {
    fn update_neighbors(&self, node: NodeId, level: u8, update: &mut dyn FnMut(&mut Vec<NodeId>)) {
        let mut list = Vec::new();
        self.neighbors(node, level, &mut list);
        let before = list.clone();
        update(&mut list);
        if list == before {
            return;
        }
        let g = self.geometry;
        // Codes of neighbours new to the list, taken before any buffer is
        // locked (they read other nodes' pages); kept neighbours keep
        // theirs, moved with their ids.
        let fresh: Vec<NodeId> = if level == 0 && g.code_entry > 0 {
            list.iter()
                .copied()
                .filter(|n| !before.contains(n))
                .collect()
        } else {
            Vec::new()
        };
        let fresh_codes = if fresh.is_empty() {
            Vec::new()
        } else {
            self.codes_for(&self.load(node).vec, &fresh)
        };
        let mut batch = WalBatch::start(self.rel);
        if level == 0 {
            let (block, offset) = self.node_location(node);
            let i = batch.page(block, None);
            let slot = &mut layout::payload_mut(batch.bytes_mut(i))[offset..];
            if g.code_entry > 0 {
                let e = g.code_entry;
                let n0 = usize::from(layout::read::<NodeHeader>(slot, 0).n0).min(2 * g.m);
                let old_ids = layout::slice::<u32>(slot, g.neighbors_offset(), n0).to_vec();
                let old_codes = slot[g.codes_offset()..g.codes_offset() + n0 * e].to_vec();
                let codes = &mut slot[g.codes_offset()..g.codes_offset() + list.len() * e];
                for (k, &id) in list.iter().enumerate() {
                    let kept = old_ids.iter().position(|&o| o == id);
                    let source = match kept {
                        Some(j) => old_codes.get(j * e..(j + 1) * e),
                        None => fresh
                            .iter()
                            .position(|&f| f == id)
                            .and_then(|j| fresh_codes.get(j * e..(j + 1) * e)),
                    };
                    // Under the graph lock the page holds `before`, so every
                    // id has a source; a zero code would only rank worse
                    // (and vhnsw_check reports it).
                    match source {
                        Some(bytes) => codes[k * e..(k + 1) * e].copy_from_slice(bytes),
                        None => codes[k * e..(k + 1) * e].fill(0),
                    }
                }
            }
            layout::slice_mut::<u32>(slot, g.neighbors_offset(), list.len()).copy_from_slice(&list);
            layout::read_mut::<NodeHeader>(slot, 0).n0 = list.len() as u16;
        } else {
            let upper_first = self.header(node).upper_first;
            let Some((block, offset)) = self.upper_location(upper_first + u32::from(level) - 1)
            else {
                return;
            };
            let i = batch.page(block, None);
            let bytes = &mut layout::payload_mut(batch.bytes_mut(i))[offset..];
            bytes[..2].copy_from_slice(&(list.len() as u16).to_ne_bytes());
            layout::slice_mut::<u32>(bytes, 4, list.len()).copy_from_slice(&list);
        }
        batch.commit();
    }
}

/// The 64-bit id the next transaction will get.
fn next_full_xid() -> u64 {
    // SAFETY: reads the shared counter under its own lock.
    unsafe { pg_sys::ReadNextFullTransactionId() }.value
}

/// Whether every snapshot in the cluster is newer than transaction `xid`
/// (a 64-bit id from [`next_full_xid`]), so nothing that read the index
/// before then is still reading it.
fn no_snapshot_before(xid: u64) -> bool {
    // SAFETY: computes the horizons from the proc array; no relation means
    // the shared horizon, the most conservative one.
    let oldest = unsafe { pg_sys::GetOldestNonRemovableTransactionId(std::ptr::null_mut()) };
    let next = next_full_xid();
    // The horizon is at most 2^31 behind the next id: widen it to 64 bits.
    let behind = (next as u32).wrapping_sub(oldest.into_inner());
    xid < next.saturating_sub(u64::from(behind))
}
