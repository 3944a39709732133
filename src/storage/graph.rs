//! The HNSW graph as it lives in index pages: vdb-core's [`GraphStore`] and
//! [`GraphWrite`] over Postgres buffers, plus what only a stored graph
//! has: heap TIDs, node allocation, extents and the metapage.
//!
//! Reads take a share lock on one page at a time and copy out (or compute
//! a distance in place) before releasing it. Writes go through
//! [`WalBatch`], so every change is WAL-logged. Structural changes (new
//! nodes, new links, new extents) are made by one writer at a time: the
//! caller holds the index's graph lock (see `am::utils::GraphLock`).
//!
//! A new node is written into slots past `node_count` first and published
//! by the metapage record that raises `node_count`, so a crash between the
//! two leaves only unused bytes behind.

use super::buffer::{self, Block, PageRead, Pinned, WalBatch, MAX_BATCH_PAGES};
use super::layout::{
    self, extent_of, extent_units, Geometry, Meta, NodeHeader, OverflowHeader, PageKind, Tid,
    INLINE_TIDS, INVALID_BLOCK, LAYOUT_VERSION, MAGIC, META_BLOCK, NODE_DELETED, NODE_EXTENTS,
    NODE_FREE, NODE_IN_USE, NO_NODE, OVERFLOW_TIDS, PAGE_HEADER, PAYLOAD, PENDING_MERGED,
    UPPER_EXTENTS,
};
use super::pending::{self, EntryRef};
use super::Index;
use crate::error::{SqlError, SqlResult};
use std::cell::RefCell;

use vdb_core::hnsw::cache::VectorCache;
use vdb_core::hnsw::insert::Plan;
use vdb_core::hnsw::{Entry, GraphStore, GraphWrite, Metric, NodeId, Params, Point};

/// A fresh metapage for an index of this shape.
pub fn new_meta(dims: usize, metric: Metric, m: usize, ef_construction: usize) -> Meta {
    let mut meta: Meta = bytemuck::Zeroable::zeroed();
    meta.magic = MAGIC;
    meta.version = LAYOUT_VERSION;
    meta.metric = metric.code();
    meta.m = m as u16;
    meta.ef_construction = ef_construction as u16;
    meta.entry_node = NO_NODE;
    meta.pending_head = INVALID_BLOCK;
    meta.pending_tail = INVALID_BLOCK;
    meta.pending_free = INVALID_BLOCK;
    meta.free_node = NO_NODE;
    meta.linking = NO_NODE;
    meta.node_extents = [INVALID_BLOCK; NODE_EXTENTS];
    meta.upper_extents = [INVALID_BLOCK; UPPER_EXTENTS];
    set_dims(&mut meta, dims);
    meta
}

/// Records the dimension count and the sizes that follow from it.
pub fn set_dims(meta: &mut Meta, dims: usize) {
    let g = Geometry::new(dims, usize::from(meta.m));
    meta.dims = dims as u32;
    meta.node_size = g.node_size as u32;
    meta.nodes_per_page = g.nodes_per_page as u32;
    meta.pages_per_node = g.pages_per_node as u32;
    meta.upper_size = g.upper_size as u32;
    meta.uppers_per_page = g.uppers_per_page as u32;
}

/// Writes `meta` into a metapage image.
pub fn put_meta(page: &mut [u8], meta: &Meta) {
    *layout::read_mut::<Meta>(layout::payload_mut(page), 0) = *meta;
    layout::set_pd_lower(page, std::mem::size_of::<Meta>());
}

/// Reads and checks the metapage.
pub fn read_meta(rel: Index) -> SqlResult<Meta> {
    let page = PageRead::new(rel, META_BLOCK);
    let meta = *layout::read::<Meta>(layout::payload(page.bytes()), 0);
    if meta.magic != MAGIC {
        return Err(SqlError::internal(
            "vhnsw metapage is corrupt (bad magic number)",
        ));
    }
    if meta.version != LAYOUT_VERSION {
        return Err(SqlError::internal(format!(
            "vhnsw index has layout version {}, this vdb reads version {LAYOUT_VERSION}",
            meta.version
        ))
        .with_detail("REINDEX the index."));
    }
    Ok(meta)
}

fn params_of(meta: &Meta) -> SqlResult<Params> {
    let metric = Metric::from_code(meta.metric)
        .ok_or_else(|| SqlError::internal("vhnsw metapage has an unknown metric"))?;
    Ok(Params {
        metric,
        m: usize::from(meta.m),
        ef_construction: usize::from(meta.ef_construction),
    })
}

/// The two arrays of fixed-size slots that grow by extents.
#[derive(Debug, Clone, Copy)]
enum Region {
    Nodes,
    Uppers,
}

/// One node's heap TIDs and the generation of its slot.
#[derive(Debug, Clone, Default)]
pub struct NodeTids {
    pub generation: u16,
    pub deleted: bool,
    pub tids: Vec<Tid>,
}

/// Bytes the vectors cached by a write operation may take:
/// `maintenance_work_mem`.
fn cache_budget() -> usize {
    // SAFETY: a plain global setting, in kilobytes.
    unsafe { pgrx::pg_sys::maintenance_work_mem }.max(0) as usize * 1024
}

/// A snapshot of the index's shape plus page access.
pub struct PageGraph {
    rel: Index,
    pub meta: Meta,
    pub geometry: Geometry,
    params: Params,
    /// Vectors read during a write operation; a live slot's vector never
    /// changes, and the graph lock keeps slots from being reused meanwhile.
    cache: Option<RefCell<VectorCache>>,
}

impl PageGraph {
    /// Opens the index for reading (scans).
    pub fn open(rel: Index) -> SqlResult<PageGraph> {
        let meta = read_meta(rel)?;
        Ok(PageGraph {
            rel,
            geometry: Geometry::from_meta(&meta),
            params: params_of(&meta)?,
            meta,
            cache: None,
        })
    }

    /// Opens the index for changes; the caller holds the graph lock.
    pub fn open_for_write(rel: Index) -> SqlResult<PageGraph> {
        let mut g = Self::open(rel)?;
        g.cache = Some(RefCell::new(VectorCache::with_budget(
            g.dims().max(1),
            cache_budget(),
        )));
        Ok(g)
    }

    pub fn rel(&self) -> Index {
        self.rel
    }

    pub fn node_count(&self) -> u32 {
        self.meta.node_count
    }

    pub fn dims(&self) -> usize {
        self.meta.dims as usize
    }

    /// Block of the first page of `node`'s slot, and the slot's offset in
    /// that page's payload.
    pub fn node_location(&self, node: NodeId) -> (Block, usize) {
        let (unit, offset) = self.geometry.node_unit(node);
        let (k, i) = extent_of(self.meta.node_base_units, unit);
        (
            self.meta.node_extents[k] + i * self.geometry.pages_per_node as u32,
            offset,
        )
    }

    pub fn upper_location(&self, slot: u32) -> (Block, usize) {
        let (page, offset) = self.geometry.upper_page(slot);
        let (k, i) = extent_of(self.meta.upper_base_units, page);
        (self.meta.upper_extents[k] + i, offset)
    }

    /// Runs `f` on the first page of `node`'s slot (share-locked):
    /// `f(slot_bytes_in_this_page, header)`.
    fn with_slot<R>(&self, node: NodeId, f: impl FnOnce(&[u8], &NodeHeader) -> R) -> R {
        let (block, offset) = self.node_location(node);
        let page = PageRead::new(self.rel, block);
        let payload = layout::payload(page.bytes());
        let slot = &payload[offset..(offset + self.geometry.node_size).min(PAYLOAD)];
        f(slot, layout::read::<NodeHeader>(slot, 0))
    }

    pub fn header(&self, node: NodeId) -> NodeHeader {
        self.with_slot(node, |_, h| *h)
    }

    /// Copies `node`'s stored (prepared) vector.
    pub fn load(&self, node: NodeId) -> Point {
        if let Some(c) = &self.cache {
            if let Some((vec, aux)) = c.borrow().get(node) {
                return Point {
                    vec: vec.to_vec(),
                    aux,
                };
            }
        }
        let g = self.geometry;
        let mut vec = Vec::with_capacity(g.dims);
        let aux = self.with_slot(node, |slot, h| {
            let end = (g.vector_offset() + 4 * g.dims).min(slot.len());
            vec.extend_from_slice(layout::slice::<f32>(
                slot,
                g.vector_offset(),
                (end - g.vector_offset()) / 4,
            ));
            h.aux
        });
        if vec.len() < g.dims {
            // The slot spans pages: the vector continues in the next ones.
            let (first, _) = self.node_location(node);
            let mut block = first + 1;
            while vec.len() < g.dims {
                let page = PageRead::new(self.rel, block);
                let take = (g.dims - vec.len()).min(PAYLOAD / 4);
                vec.extend_from_slice(layout::slice::<f32>(layout::payload(page.bytes()), 0, take));
                block += 1;
            }
        }
        if let Some(c) = &self.cache {
            c.borrow_mut().insert(node, &vec, aux);
        }
        Point { vec, aux }
    }

    /// `node`'s heap TIDs (inline and in overflow pages).
    pub fn tids(&self, node: NodeId) -> NodeTids {
        let (mut out, mut next) = self.with_slot(node, |_, h| {
            let tids = h.tids[..usize::from(h.ntids).min(INLINE_TIDS)].to_vec();
            let deleted = h.flags & NODE_DELETED != 0 || h.flags & NODE_IN_USE == 0;
            (
                NodeTids {
                    generation: h.generation,
                    deleted,
                    tids,
                },
                h.overflow,
            )
        });
        while next != INVALID_BLOCK {
            let page = PageRead::new(self.rel, next);
            let payload = layout::payload(page.bytes());
            let count = layout::read::<OverflowHeader>(payload, 0).count as usize;
            out.tids
                .extend_from_slice(layout::slice::<Tid>(payload, 4, count.min(OVERFLOW_TIDS)));
            next = layout::opaque(page.bytes()).next;
        }
        out
    }

    /// `node`'s TIDs, if its slot still holds the vector a search measured
    /// at distance `c.distance` from `query` (VACUUM may have freed and
    /// reused the slot since).
    pub fn tids_if_unchanged(
        &self,
        query: &Point,
        c: vdb_core::hnsw::Candidate,
    ) -> Option<NodeTids> {
        (self.distance(query, c.node) == c.distance).then(|| self.tids(c.node))
    }

    /// Writes the metapage (in `batch`, or in a record of its own). The
    /// graph's fields come from this copy (only the graph-lock holder
    /// changes them); the pending list's fields are kept as they are on
    /// the page, since appenders change them without that lock.
    fn put_meta_in(&self, batch: &mut WalBatch) {
        let i = batch.page(META_BLOCK, None);
        let current = *layout::read::<Meta>(layout::payload(batch.bytes(i)), 0);
        let mut meta = self.meta;
        meta.pending_head = current.pending_head;
        meta.pending_tail = current.pending_tail;
        meta.pending_free = current.pending_free;
        meta.next_pending_seq = current.next_pending_seq;
        meta.pending_head_seq = current.pending_head_seq;
        meta.pending_done = current.pending_done;
        put_meta(batch.bytes_mut(i), &meta);
    }

    fn write_meta(&self) {
        let mut batch = WalBatch::start(self.rel);
        self.put_meta_in(&mut batch);
        batch.commit();
    }

    /// Makes sure `region` has room for its unit `unit`, adding extents.
    fn reserve(&mut self, region: Region, unit: u32) -> SqlResult<()> {
        let (base, pages_per_unit, kind, limit) = match region {
            Region::Nodes => (
                self.meta.node_base_units,
                self.geometry.pages_per_node as u32,
                PageKind::Node,
                NODE_EXTENTS,
            ),
            Region::Uppers => (
                self.meta.upper_base_units,
                1,
                PageKind::Upper,
                UPPER_EXTENTS,
            ),
        };
        let (needed, _) = extent_of(base, unit);
        loop {
            let (extents, count) = match region {
                Region::Nodes => (
                    &mut self.meta.node_extents[..],
                    &mut self.meta.node_extent_count,
                ),
                Region::Uppers => (
                    &mut self.meta.upper_extents[..],
                    &mut self.meta.upper_extent_count,
                ),
            };
            let e = *count as usize;
            if e > needed {
                return Ok(());
            }
            if e >= limit {
                return Err(SqlError::new(
                    crate::error::SqlState::ProgramLimitExceeded,
                    "vhnsw index is full",
                )
                .with_detail("REINDEX to rebuild it with larger base extents."));
            }
            let pages = extent_units(base, e) * pages_per_unit;
            extents[e] = Self::add_extent(self.rel, pages, kind);
            *count += 1;
            self.write_meta();
        }
    }

    /// Extends the relation by a contiguous extent of `pages` pages and
    /// WAL-logs its last page, so that replay recreates the file up to the
    /// extent's end and later extensions cannot land inside it. Returns the
    /// first block (or `INVALID_BLOCK` for an empty extent).
    fn add_extent(rel: Index, pages: u32, kind: PageKind) -> Block {
        if pages == 0 {
            return INVALID_BLOCK;
        }
        let first = buffer::extend(rel, pages);
        let mut batch = WalBatch::start(rel);
        batch.page(first + pages - 1, Some(kind));
        batch.commit();
        first
    }

    /// Allocates a single loose page (overflow chain) at the end of the
    /// relation, initialised in `batch`; returns its block and batch index.
    fn new_loose_page(&self, batch: &mut WalBatch, kind: PageKind) -> (Block, usize) {
        let block = buffer::extend(self.rel, 1);
        (block, batch.page(block, Some(kind)))
    }

    /// Creates a node for `point` with heap TIDs `tids` and the neighbour
    /// lists of `plan`, and publishes it. Returns its id.
    pub fn add_node(
        &mut self,
        point: &Point,
        tids: &[Tid],
        plan: &Plan,
        merged: Option<EntryRef>,
    ) -> SqlResult<NodeId> {
        let g = self.geometry;
        // A freed slot first (VACUUM unlinked it), else the next new one.
        let (node, generation, reused) = if self.meta.free_node != NO_NODE {
            let free = self.meta.free_node;
            let header = self.header(free);
            self.meta.free_node = header.upper_first;
            self.meta.free_nodes = self.meta.free_nodes.saturating_sub(1);
            (free, header.generation.wrapping_add(1), true)
        } else {
            (self.meta.node_count, 0, false)
        };
        let level = plan.level;
        let upper_first = self.meta.upper_count;
        self.reserve(Region::Nodes, self.geometry.node_unit(node).0)?;
        if level > 0 {
            let last_upper = upper_first + u32::from(level) - 1;
            self.reserve(Region::Uppers, self.geometry.upper_page(last_upper).0)?;
        }

        // TIDs beyond the inline ones go to a fresh overflow chain.
        let mut overflow = INVALID_BLOCK;
        for chunk in tids
            .get(INLINE_TIDS..)
            .unwrap_or_default()
            .chunks(OVERFLOW_TIDS)
            .rev()
        {
            let mut batch = WalBatch::start(self.rel);
            let (block, i) = self.new_loose_page(&mut batch, PageKind::Overflow);
            write_overflow(batch.bytes_mut(i), chunk, overflow);
            batch.commit();
            overflow = block;
        }

        let mut slot = encode_slot(
            &g,
            point,
            tids,
            level,
            if level > 0 { upper_first } else { 0 },
            overflow,
            &plan.lists[0],
        );
        layout::read_mut::<NodeHeader>(&mut slot, 0).generation = generation;

        // Pages to write: upper slots, then the slot itself (maybe spanning).
        let mut writes: Vec<(Block, PageKind, usize, Vec<u8>)> = Vec::new();
        for l in 1..=level {
            let (block, offset) = self.upper_location(upper_first + u32::from(l) - 1);
            writes.push((
                block,
                PageKind::Upper,
                offset,
                encode_upper(&g, &plan.lists[usize::from(l)]),
            ));
        }
        let (first, offset) = self.node_location(node);
        for (i, chunk) in slot.chunks(PAYLOAD - offset.min(PAYLOAD)).enumerate() {
            writes.push((
                first + i as u32,
                PageKind::Node,
                if i == 0 { offset } else { 0 },
                chunk.to_vec(),
            ));
        }

        // Publish: node count, upper count and maybe the entry point; the
        // same record flags the pending entry merged.
        if !reused {
            self.meta.node_count += 1;
        }
        self.meta.upper_count += u32::from(level);
        if self.meta.entry_node == NO_NODE || u32::from(level) > self.meta.entry_level {
            self.meta.entry_node = node;
            self.meta.entry_level = u32::from(level);
        }
        // Until link-back is done, a crash would leave the node without
        // incoming links: the next writer finishes it.
        self.meta.linking = node;
        self.apply_then_publish(&writes, merged);
        if let Some(c) = &self.cache {
            c.borrow_mut().insert(node, &point.vec, point.aux);
        }
        Ok(node)
    }

    /// Applies byte patches to pages, several pages per WAL record, the
    /// last record also carrying the metapage and flagging the pending
    /// entry `merged` (pending page after the data pages, metapage last:
    /// the lock order appenders also follow).
    fn apply_then_publish(
        &self,
        writes: &[(Block, PageKind, usize, Vec<u8>)],
        merged: Option<EntryRef>,
    ) {
        let mut blocks: Vec<Block> = writes.iter().map(|w| w.0).collect();
        blocks.dedup();
        // Records of up to 4 pages; the last keeps places for the pending
        // page and the metapage.
        let reserved = 1 + usize::from(merged.is_some());
        let (head, tail) = blocks.split_at(blocks.len().saturating_sub(MAX_BATCH_PAGES - reserved));
        let mut groups: Vec<&[Block]> = head.chunks(MAX_BATCH_PAGES).collect();
        groups.push(tail);
        let last = groups.len() - 1;
        for (gi, group) in groups.iter().enumerate() {
            let mut batch = WalBatch::start(self.rel);
            for &block in group.iter() {
                let kind = writes
                    .iter()
                    .find(|w| w.0 == block)
                    .map_or(PageKind::Node, |w| w.1);
                let i = batch.page_init_if_new(block, kind);
                for (_, _, offset, bytes) in writes.iter().filter(|w| w.0 == block) {
                    let start = PAGE_HEADER + offset;
                    batch.bytes_mut(i)[start..start + bytes.len()].copy_from_slice(bytes);
                }
            }
            if gi == last {
                if let Some(at) = merged {
                    pending::mark(&mut batch, at, self.dims(), PENDING_MERGED);
                }
                self.put_meta_in(&mut batch);
            }
            batch.commit();
        }
    }

    /// Adds a heap TID to an existing node (an identical vector), flagging
    /// the pending entry `merged` in the same record.
    pub fn add_tid(&self, node: NodeId, tid: Tid, merged: Option<EntryRef>) {
        let (block, offset) = self.node_location(node);
        let mut batch = WalBatch::start(self.rel);
        let dims = self.dims();
        let finish = |mut batch: WalBatch| {
            if let Some(at) = merged {
                pending::mark(&mut batch, at, dims, PENDING_MERGED);
            }
            batch.commit();
        };
        let i = batch.page(block, None);
        let header = *layout::read::<NodeHeader>(&layout::payload(batch.bytes(i))[offset..], 0);
        if usize::from(header.ntids) < INLINE_TIDS {
            let h = layout::read_mut::<NodeHeader>(
                &mut layout::payload_mut(batch.bytes_mut(i))[offset..],
                0,
            );
            h.tids[usize::from(h.ntids)] = tid;
            h.ntids += 1;
            h.flags &= !NODE_DELETED;
            finish(batch);
            return;
        }
        // The head of the overflow chain takes it if it has room; otherwise
        // a new page becomes the head.
        if header.overflow != INVALID_BLOCK {
            let j = batch.page(header.overflow, None);
            let payload = layout::payload_mut(batch.bytes_mut(j));
            let count = layout::read::<OverflowHeader>(payload, 0).count as usize;
            if count < OVERFLOW_TIDS {
                layout::slice_mut::<Tid>(payload, 4, count + 1)[count] = tid;
                layout::read_mut::<OverflowHeader>(payload, 0).count += 1;
                let h = layout::read_mut::<NodeHeader>(
                    &mut layout::payload_mut(batch.bytes_mut(i))[offset..],
                    0,
                );
                h.flags &= !NODE_DELETED;
                finish(batch);
                return;
            }
        }
        let (new_block, j) = self.new_loose_page(&mut batch, PageKind::Overflow);
        write_overflow(batch.bytes_mut(j), &[tid], header.overflow);
        let h = layout::read_mut::<NodeHeader>(
            &mut layout::payload_mut(batch.bytes_mut(i))[offset..],
            0,
        );
        h.overflow = new_block;
        h.flags &= !NODE_DELETED;
        finish(batch);
    }

    /// Replaces `node`'s heap TIDs with `live` (a subset of its current
    /// ones, so they fit the pages it already has); a node left without
    /// TIDs is flagged deleted. Returns whether the node was newly deleted.
    pub fn set_tids(&mut self, node: NodeId, live: &[Tid]) -> bool {
        let (block, offset) = self.node_location(node);
        let header = self.header(node);
        let mut chain = Vec::new();
        let mut next = header.overflow;
        while next != INVALID_BLOCK {
            chain.push(next);
            next = layout::opaque(PageRead::new(self.rel, next).bytes()).next;
        }
        let newly_deleted = live.is_empty() && header.flags & NODE_DELETED == 0;
        let (inline, mut rest) = live.split_at(live.len().min(INLINE_TIDS));
        let mut batch = WalBatch::start(self.rel);
        let i = batch.page(block, None);
        let h = layout::read_mut::<NodeHeader>(
            &mut layout::payload_mut(batch.bytes_mut(i))[offset..],
            0,
        );
        h.tids = [Tid::default(); INLINE_TIDS];
        h.tids[..inline.len()].copy_from_slice(inline);
        h.ntids = inline.len() as u16;
        if live.is_empty() {
            h.flags |= NODE_DELETED;
        }
        for page in chain {
            if batch_full(&batch) {
                batch.commit();
                batch = WalBatch::start(self.rel);
            }
            let take = rest.len().min(OVERFLOW_TIDS);
            let j = batch.page(page, None);
            let payload = layout::payload_mut(batch.bytes_mut(j));
            layout::read_mut::<OverflowHeader>(payload, 0).count = take as u32;
            layout::slice_mut::<Tid>(payload, 4, take).copy_from_slice(&rest[..take]);
            rest = &rest[take..];
        }
        batch.commit();
        if newly_deleted {
            self.meta.deleted_nodes += 1;
        }
        newly_deleted
    }

    /// Unlinks the nodes VACUUM left without rows and frees their slots
    /// for reuse. Every list pointing to such a node is redone
    /// ([`vdb_core::hnsw::repair::repair_removed`]), so the graph keeps its
    /// connections; a removed entry point is replaced by the highest live
    /// node. Returns the slots freed.
    pub fn repair_deleted(&mut self) -> usize {
        let n = self.node_count();
        let mut gone = vec![false; n as usize];
        let mut live_top: Option<(u8, NodeId)> = None;
        for node in 0..n {
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
            return 0;
        }
        let is_gone = |x: NodeId| gone.get(x as usize).copied().unwrap_or(true);
        vdb_core::hnsw::repair::repair_removed(
            &*self,
            n,
            &|node| self.header(node).level,
            &|node| self.load(node),
            &|node| is_gone(node) || self.header(node).flags & NODE_IN_USE == 0,
            &mut |node| {
                if node % 256 == 0 {
                    pgrx::check_for_interrupts!();
                }
            },
        );
        if self.meta.entry_node != NO_NODE && is_gone(self.meta.entry_node) {
            (self.meta.entry_node, self.meta.entry_level) =
                live_top.map_or((NO_NODE, 0), |(l, node)| (node, u32::from(l)));
        }
        // Nothing points to them now: onto the free list.
        for &node in &freed {
            let (block, offset) = self.node_location(node);
            let mut batch = WalBatch::start(self.rel);
            let i = batch.page(block, None);
            let h = layout::read_mut::<NodeHeader>(
                &mut layout::payload_mut(batch.bytes_mut(i))[offset..],
                0,
            );
            h.flags = NODE_FREE;
            h.level = 0;
            h.n0 = 0;
            h.ntids = 0;
            h.overflow = INVALID_BLOCK;
            h.upper_first = self.meta.free_node;
            batch.commit();
            self.meta.free_node = node;
            self.meta.free_nodes += 1;
            self.meta.deleted_nodes = self.meta.deleted_nodes.saturating_sub(1);
        }
        self.write_meta();
        freed.len()
    }

    /// Sets the entry point (after the old one was deleted, say).
    pub fn set_entry(&mut self, entry: Option<Entry>) {
        (self.meta.entry_node, self.meta.entry_level) = match entry {
            Some(e) => (e.node, u32::from(e.level)),
            None => (NO_NODE, 0),
        };
        self.write_meta();
    }

    /// Records the dimension count of an index built before it was known.
    pub fn fix_dims(&mut self, dims: usize) {
        set_dims(&mut self.meta, dims);
        self.geometry = Geometry::from_meta(&self.meta);
        if self.cache.is_some() {
            self.cache = Some(RefCell::new(VectorCache::with_budget(dims, cache_budget())));
        }
        self.write_meta();
    }

    /// Rewrites the metapage from the in-memory copy.
    pub fn flush_meta(&self) {
        self.write_meta();
    }
}

/// The bytes of a node slot.
pub fn encode_slot(
    g: &Geometry,
    point: &Point,
    tids: &[Tid],
    level: u8,
    upper_first: u32,
    overflow: Block,
    level0: &[NodeId],
) -> Vec<u8> {
    let mut slot = vec![0u8; g.node_size];
    let inline = tids.len().min(INLINE_TIDS);
    let mut header = NodeHeader {
        flags: NODE_IN_USE,
        level,
        ntids: inline as u16,
        upper_first,
        overflow,
        n0: level0.len() as u16,
        generation: 0,
        aux: point.aux,
        tids: [Tid::default(); INLINE_TIDS],
    };
    header.tids[..inline].copy_from_slice(&tids[..inline]);
    *layout::read_mut::<NodeHeader>(&mut slot, 0) = header;
    layout::slice_mut::<u32>(&mut slot, g.neighbors_offset(), level0.len()).copy_from_slice(level0);
    layout::slice_mut::<f32>(&mut slot, g.vector_offset(), g.dims).copy_from_slice(&point.vec);
    slot
}

/// The bytes of an upper-level list slot.
pub fn encode_upper(g: &Geometry, list: &[NodeId]) -> Vec<u8> {
    let mut bytes = vec![0u8; g.upper_size];
    bytes[..2].copy_from_slice(&(list.len() as u16).to_ne_bytes());
    layout::slice_mut::<u32>(&mut bytes, 4, list.len()).copy_from_slice(list);
    bytes
}

fn batch_full(batch: &WalBatch) -> bool {
    batch.len() == MAX_BATCH_PAGES
}

/// Fills an overflow page with `tids`, chained to `next`.
pub fn write_overflow(page: &mut [u8], tids: &[Tid], next: Block) {
    let payload = layout::payload_mut(page);
    layout::read_mut::<OverflowHeader>(payload, 0).count = tids.len() as u32;
    layout::slice_mut::<Tid>(payload, 4, tids.len()).copy_from_slice(tids);
    layout::opaque_mut(page).next = next;
}

impl GraphStore for PageGraph {
    fn params(&self) -> &Params {
        &self.params
    }

    fn entry(&self) -> Option<Entry> {
        (self.meta.entry_node != NO_NODE).then_some(Entry {
            node: self.meta.entry_node,
            level: self.meta.entry_level as u8,
        })
    }

    fn distance(&self, query: &Point, node: NodeId) -> f32 {
        let metric = self.params.metric;
        if let Some(c) = &self.cache {
            if let Some((vec, aux)) = c.borrow().get(node) {
                return metric.distance(&query.vec, query.aux, vec, aux);
            }
        }
        let g = self.geometry;
        if g.nodes_per_page > 0 {
            // The common case: compute in place on the shared buffer.
            return self.with_slot(node, |slot, h| {
                metric.distance(
                    &query.vec,
                    query.aux,
                    layout::slice::<f32>(slot, g.vector_offset(), g.dims),
                    h.aux,
                )
            });
        }
        metric.between(query, &self.load(node))
    }

    fn copy_vector(&self, node: NodeId, out: &mut Vec<f32>) -> f32 {
        if let Some(c) = &self.cache {
            if let Some((vec, aux)) = c.borrow().get(node) {
                out.extend_from_slice(vec);
                return aux;
            }
        }
        let p = self.load(node);
        out.extend_from_slice(&p.vec);
        p.aux
    }

    fn distance_between(&self, a: NodeId, b: NodeId) -> f32 {
        let metric = self.params.metric;
        if let Some(c) = &self.cache {
            // Read both into the cache, then measure without copying.
            for n in [a, b] {
                if c.borrow().get(n).is_none() {
                    self.load(n);
                }
            }
            let c = c.borrow();
            if let (Some((va, xa)), Some((vb, xb))) = (c.get(a), c.get(b)) {
                return metric.distance(va, xa, vb, xb);
            }
        }
        metric.between(&self.load(a), &self.load(b))
    }

    fn distances(&self, query: &Point, nodes: &[NodeId], out: &mut Vec<f32>) {
        out.clear();
        let g = self.geometry;
        if g.nodes_per_page == 0 {
            out.extend(nodes.iter().map(|&n| self.distance(query, n)));
            return;
        }
        let metric = self.params.metric;
        out.resize(nodes.len(), 0.0);
        let mut misses: Vec<usize> = Vec::new();
        match &self.cache {
            Some(c) => {
                let c = c.borrow();
                for (i, &n) in nodes.iter().enumerate() {
                    match c.get(n) {
                        Some((vec, aux)) => {
                            out[i] = metric.distance(&query.vec, query.aux, vec, aux)
                        }
                        None => misses.push(i),
                    }
                }
            }
            None => misses.extend(0..nodes.len()),
        }
        if misses.is_empty() {
            return;
        }
        let mut cache = self.cache.as_ref().map(|c| c.borrow_mut());
        // Pin each page of the hop once and prefetch its vectors, then
        // read each page under one share lock: the memory loads overlap,
        // and neighbours sharing a page (the build writes them in
        // breadth-first order) cost one buffer lookup between them.
        let mut located: Vec<(Block, usize, usize)> = misses
            .iter()
            .map(|&i| {
                let (block, offset) = self.node_location(nodes[i]);
                (block, offset, i)
            })
            .collect();
        located.sort_unstable_by_key(|&(block, _, _)| block);
        let mut pages: Vec<(Pinned, std::ops::Range<usize>)> = Vec::new();
        for (j, &(block, offset, _)) in located.iter().enumerate() {
            if pages
                .last()
                .is_none_or(|(_, r)| located[r.start].0 != block)
            {
                pages.push((Pinned::new(self.rel, block), j..j));
            }
            let (page, range) = pages.last_mut().expect("pushed above");
            range.end = j + 1;
            page.prefetch(PAGE_HEADER + offset + g.vector_offset(), 4 * g.dims);
        }
        for (page, range) in &pages {
            let read = page.lock();
            let payload = layout::payload(read.bytes());
            for &(_, offset, i) in &located[range.clone()] {
                let slot = &payload[offset..offset + g.node_size];
                let aux = layout::read::<NodeHeader>(slot, 0).aux;
                let vec = layout::slice::<f32>(slot, g.vector_offset(), g.dims);
                out[i] = metric.distance(&query.vec, query.aux, vec, aux);
                if let Some(cache) = cache.as_mut() {
                    cache.insert(nodes[i], vec, aux);
                }
            }
        }
    }

    fn neighbors(&self, node: NodeId, level: u8, out: &mut Vec<NodeId>) {
        out.clear();
        let g = self.geometry;
        let upper = self.with_slot(node, |slot, h| {
            if h.flags & NODE_IN_USE == 0 || level > h.level {
                return None;
            }
            if level == 0 {
                let n = usize::from(h.n0).min(2 * g.m);
                out.extend_from_slice(layout::slice::<u32>(slot, g.neighbors_offset(), n));
                return None;
            }
            Some(h.upper_first + u32::from(level) - 1)
        });
        if let Some(slot) = upper {
            let (block, offset) = self.upper_location(slot);
            let page = PageRead::new(self.rel, block);
            let bytes = &layout::payload(page.bytes())[offset..offset + g.upper_size];
            let n = usize::from(u16::from_ne_bytes([bytes[0], bytes[1]])).min(g.m);
            out.extend_from_slice(layout::slice::<u32>(bytes, 4, n));
        }
        out.retain(|&n| n < self.meta.node_count);
    }
}

impl GraphWrite for PageGraph {
    fn update_neighbors(&self, node: NodeId, level: u8, update: &mut dyn FnMut(&mut Vec<NodeId>)) {
        let mut list = Vec::new();
        self.neighbors(node, level, &mut list);
        let before = list.clone();
        update(&mut list);
        if list == before {
            return;
        }
        let g = self.geometry;
        let mut batch = WalBatch::start(self.rel);
        if level == 0 {
            let (block, offset) = self.node_location(node);
            let i = batch.page(block, None);
            let slot = &mut layout::payload_mut(batch.bytes_mut(i))[offset..];
            layout::slice_mut::<u32>(slot, g.neighbors_offset(), list.len()).copy_from_slice(&list);
            layout::read_mut::<NodeHeader>(slot, 0).n0 = list.len() as u16;
        } else {
            let upper_first = self.header(node).upper_first;
            let (block, offset) = self.upper_location(upper_first + u32::from(level) - 1);
            let i = batch.page(block, None);
            let bytes = &mut layout::payload_mut(batch.bytes_mut(i))[offset..];
            bytes[..2].copy_from_slice(&(list.len() as u16).to_ne_bytes());
            layout::slice_mut::<u32>(bytes, 4, list.len()).copy_from_slice(&list);
        }
        batch.commit();
    }
}
