//! The HNSW graph as it lives in index pages, read side: node slots and
//! their upper-level lists, vdb-core's [`GraphStore`] over Postgres
//! buffers, and the encoders of slots that the build and the writer use.
//!
//! Reads take a share lock on one page at a time and copy out (or compute
//! a distance in place) before releasing it. A [`PageGraph`] is a snapshot
//! of the metapage taken when it was opened: node ids and upper slots past
//! that snapshot were published later and are not followed. Every change
//! goes through the graph writer (`writer.rs`).

use super::buffer::{chain_error, Block, PageRead, Pinned};
use super::filter::{read_words, write_words, Filter};
use super::layout::EntryShape;
use super::layout::{
    self, extent_of, Geometry, Meta, NodeHeader, OverflowHeader, PageKind, Tid, INLINE_TIDS,
    INVALID_BLOCK, NODE_DELETED, NODE_IN_USE, NO_NODE, OVERFLOW_TIDS, PAGE_HEADER, PAYLOAD,
};
use super::meta::{params_of, read_meta};
use super::values::Directory;
use super::Index;
use crate::error::SqlResult;
use std::cell::RefCell;

use vdb_core::hnsw::cache::VectorCache;
use vdb_core::hnsw::coded::CodedStore;
use vdb_core::hnsw::{Candidate, Entry, GraphStore, NodeId, Params, Point};
use vdb_core::quant::{self, Quantizer};

/// Longest chain of overflow pages a node can have (each holds
/// [`OVERFLOW_TIDS`] TIDs; a heap has at most 2^48 rows): a longer one is
/// a loop in a corrupt index, reported instead of followed forever.
pub const MAX_CHAIN: usize = 1 << 24;

/// Standard errors by which the value region's estimates err low in an
/// exact pass (see `PageGraph::exact_pass`).
const ESTIMATE_MARGIN: f32 = 3.0;

/// What an exact pass found: nodes measured, or nodes with estimates.
#[derive(Debug)]
pub enum ExactPass {
    Measured(Vec<Candidate>),
    Estimated(Vec<Candidate>),
}

/// One node's heap TIDs and the generation of its slot.
#[derive(Debug, Clone, Default)]
pub struct NodeTids {
    pub generation: u16,
    pub deleted: bool,
    pub tids: Vec<Tid>,
}

/// A snapshot of the index's shape plus page access.
pub struct PageGraph {
    pub(super) rel: Index,
    pub meta: Meta,
    pub geometry: Geometry,
    pub(super) params: Params,
    /// Vectors read during a write operation; a live slot's vector never
    /// changes, and the graph lock keeps slots from being reused meanwhile.
    pub(super) cache: Option<RefCell<VectorCache>>,
    /// The codes' quantizer, if level-0 lists carry codes.
    pub quantizer: Option<Quantizer>,
    /// A scan's conditions on filter columns: a node that fails them is
    /// walked through but is not a result (see `expand`).
    pub filter: Option<Filter>,
}

impl PageGraph {
    /// Opens the index for reading (scans).
    pub fn open(rel: Index) -> SqlResult<PageGraph> {
        let meta = read_meta(rel)?;
        Ok(PageGraph {
            rel,
            geometry: Geometry::from_meta(&meta),
            params: params_of(&meta)?,
            quantizer: layout::quantizer(&meta),
            meta,
            cache: None,
            filter: None,
        })
    }

    /// The shape of this index's pending entries.
    pub fn shape(&self) -> EntryShape {
        EntryShape::of(&self.meta)
    }

    /// `node`'s filter words (NULL flags first; empty without filters).
    pub fn words(&self, node: NodeId) -> Vec<u64> {
        let g = self.geometry;
        self.with_slot(node, |slot, _| {
            read_words(slot, g.filter_offset(), g.filter_words).collect()
        })
    }

    /// Whether `node`'s slot passes the scan's filter (always, without one).
    pub fn passes(&self, slot: &[u8]) -> bool {
        match &self.filter {
            None => true,
            Some(f) => {
                let g = self.geometry;
                let mut words = [0u64; layout::MAX_FILTER_COLS + 1];
                for (w, v) in
                    words
                        .iter_mut()
                        .zip(read_words(slot, g.filter_offset(), g.filter_words))
                {
                    *w = v;
                }
                f.matches(&words[..g.filter_words])
            }
        }
    }

    /// `node`'s exact distance from `query`, if it is in use, not deleted
    /// and passes the filter.
    pub fn measure(&self, query: &Point, node: NodeId) -> Option<f32> {
        let g = self.geometry;
        let metric = self.params.metric;
        let (ok, distance) = self.with_slot(node, |slot, h| {
            let ok = h.flags & NODE_IN_USE != 0 && h.flags & NODE_DELETED == 0 && self.passes(slot);
            let distance = (ok && g.nodes_per_page > 0).then(|| {
                let vec = layout::slice::<f32>(slot, g.vector_offset(), g.dims);
                metric.distance(&query.vec, query.aux, vec, h.aux)
            });
            (ok, distance)
        });
        match distance {
            Some(d) => Some(d),
            // A slot spanning pages: its vector is read whole.
            None if ok => Some(self.distance(query, node)),
            None => None,
        }
    }

    /// The nodes of this snapshot in use, not deleted and passing the
    /// filter: from the value region (`values`) when the index has one,
    /// else by reading the node region page by page. With codes there,
    /// they come with estimates (`Estimated`), measured later as needed;
    /// else measured now (`Measured`).
    pub fn exact_pass(&self, query: &Point, values: &Directory) -> ExactPass {
        let g = self.geometry;
        let metric = self.params.metric;
        let n = self.node_count();
        let live = |h: &NodeHeader| h.flags & NODE_IN_USE != 0 && h.flags & NODE_DELETED == 0;
        let mut found = Vec::new();
        if let (Some(filter), false) = (&self.filter, values.chunks.is_empty()) {
            let nodes = super::values::candidates(self.rel, values, filter, n);
            if let (Some(q), true) = (&self.quantizer, values.shape.entry > 0) {
                // Estimates that err low by two standard errors: a node is
                // measured once its estimate could beat the next result.
                let coded = q.query_with(&query.vec, ESTIMATE_MARGIN);
                let origin_sq = quant::l2_squared(&query.vec, &vec![0.0; query.vec.len()]);
                let estimates = super::values::estimates(self.rel, values, &nodes, |entry| {
                    q.estimate_entry(metric, &coded, origin_sq, entry)
                });
                return ExactPass::Estimated(
                    estimates
                        .into_iter()
                        .map(|(node, distance)| Candidate { distance, node })
                        .collect(),
                );
            }
            for (i, node) in nodes.into_iter().enumerate() {
                if i % 256 == 255 {
                    pgrx::check_for_interrupts!();
                }
                if let Some(distance) = self.measure(query, node) {
                    found.push(Candidate { distance, node });
                }
            }
            return ExactPass::Measured(found);
        }
        if g.nodes_per_page == 0 {
            for node in 0..n {
                if node % 64 == 0 {
                    pgrx::check_for_interrupts!();
                }
                if self.with_slot(node, |slot, h| live(h) && self.passes(slot)) {
                    found.push(Candidate {
                        distance: self.distance(query, node),
                        node,
                    });
                }
            }
            return ExactPass::Measured(found);
        }
        let per = g.nodes_per_page as u32;
        for first in (0..n).step_by(per as usize) {
            if (first / per).is_multiple_of(64) {
                pgrx::check_for_interrupts!();
            }
            let (block, _) = self.node_location(first);
            let page = PageRead::new(self.rel, block);
            let payload = layout::payload(page.bytes());
            for node in first..(first + per).min(n) {
                let offset = (node - first) as usize * g.node_size;
                let slot = &payload[offset..offset + g.node_size];
                let h = layout::read::<NodeHeader>(slot, 0);
                if live(h) && self.passes(slot) {
                    let vec = layout::slice::<f32>(slot, g.vector_offset(), g.dims);
                    found.push(Candidate {
                        distance: metric.distance(&query.vec, query.aux, vec, h.aux),
                        node,
                    });
                }
            }
        }
        ExactPass::Measured(found)
    }

    /// Runs `f` on the first page of `node`'s slot (share-locked).
    pub fn read_slot<R>(&self, node: NodeId, f: impl FnOnce(&[u8], &NodeHeader) -> R) -> R {
        self.with_slot(node, f)
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

    /// Block and offset of upper slot `slot`, if this snapshot knows its
    /// extent: a slot handed out after the snapshot (to a node that reused
    /// a freed slot, say) may lie in an extent added since.
    pub fn upper_location(&self, slot: u32) -> Option<(Block, usize)> {
        if slot >= self.meta.upper_count {
            return None;
        }
        let (page, offset) = self.geometry.upper_page(slot);
        let (k, i) = extent_of(self.meta.upper_base_units, page);
        if k >= self.meta.upper_extent_count as usize {
            return None;
        }
        let first = *self.meta.upper_extents.get(k)?;
        (first != INVALID_BLOCK).then_some((first + i, offset))
    }

    /// Runs `f` on the first page of `node`'s slot (share-locked):
    /// `f(slot_bytes_in_this_page, header)`.
    fn with_slot<R>(&self, node: NodeId, f: impl FnOnce(&[u8], &NodeHeader) -> R) -> R {
        let (block, offset) = self.node_location(node);
        let page = PageRead::new(self.rel, block);
        self.expect_kind(&page, block, PageKind::Node);
        let payload = layout::payload(page.bytes());
        let slot = &payload[offset..(offset + self.geometry.node_size).min(PAYLOAD)];
        let header = layout::read::<NodeHeader>(slot, 0);
        if let Some(what) = header.damage(self.geometry.m) {
            crate::fmgr::raise(super::buffer::corrupt(
                self.rel,
                format_args!("node {node} in block {block} has {what}"),
            ));
        }
        f(slot, header)
    }

    /// Raises the corruption error unless `page` (block `block`) is a
    /// page of kind `kind`: a reference that leads elsewhere, or a page
    /// whose special space is damaged, must not be read as one.
    fn expect_kind(&self, page: &PageRead, block: Block, kind: PageKind) {
        let found = layout::opaque(page.bytes()).kind;
        if found != kind as u16 {
            crate::fmgr::raise(super::buffer::corrupt(
                self.rel,
                format_args!("block {block} is not a {kind:?} page (its kind is {found:#x})"),
            ));
        }
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

    /// The code entries of `node`'s level-0 list, as stored.
    pub fn codes(&self, node: NodeId) -> Vec<u8> {
        let g = self.geometry;
        self.with_slot(node, |slot, h| {
            let n = usize::from(h.n0).min(2 * g.m);
            slot[g.codes_offset()..g.codes_offset() + n * g.code_entry].to_vec()
        })
    }

    /// `node`'s heap TIDs (inline and in overflow pages).
    pub fn tids(&self, node: NodeId) -> NodeTids {
        self.try_tids(node)
            .unwrap_or_else(|e| crate::fmgr::raise(e))
    }

    /// `node`'s heap TIDs, or an error if its overflow chain is corrupt.
    pub fn try_tids(&self, node: NodeId) -> SqlResult<NodeTids> {
        let (mut out, mut next) = self.with_slot(node, |_, h| {
            let tids = h.tids[..usize::from(h.ntids).min(INLINE_TIDS)].to_vec();
            let deleted = h.flags & NODE_DELETED != 0 || h.flags & NODE_IN_USE == 0;
            if h.flags & NODE_IN_USE == 0 {
                // A free slot has no rows; its `overflow` links the free list.
                return (
                    NodeTids {
                        generation: h.generation,
                        deleted,
                        tids: Vec::new(),
                    },
                    INVALID_BLOCK,
                );
            }
            (
                NodeTids {
                    generation: h.generation,
                    deleted,
                    tids,
                },
                h.overflow,
            )
        });
        let (block, _) = self.node_location(node);
        for &t in &out.tids {
            super::buffer::check_tid(self.rel, t, || format!("node {node} in block {block}"))?;
        }
        let mut pages: usize = 0;
        while next != INVALID_BLOCK {
            pages += 1;
            if pages.is_multiple_of(64) {
                pgrx::check_for_interrupts!();
                // A chain longer than the relation loops.
                if pages > MAX_CHAIN || pages > super::buffer::block_count(self.rel) as usize {
                    return Err(chain_error(self.rel, "overflow chain", next));
                }
            }
            let page = PageRead::new(self.rel, next);
            self.expect_kind(&page, next, PageKind::Overflow);
            let payload = layout::payload(page.bytes());
            let count = layout::read::<OverflowHeader>(payload, 0).count as usize;
            if count > OVERFLOW_TIDS {
                return Err(super::buffer::corrupt(
                    self.rel,
                    format_args!("the overflow page at block {next} says it holds {count} TIDs, it has room for {OVERFLOW_TIDS}"),
                ));
            }
            let tids = layout::slice::<Tid>(payload, 4, count);
            for &t in tids {
                super::buffer::check_tid(self.rel, t, || {
                    format!("the overflow page at block {next}")
                })?;
            }
            out.tids.extend_from_slice(tids);
            next = layout::opaque(page.bytes()).next;
        }
        Ok(out)
    }

    /// The pages of the overflow chain starting at `first` (of node `at`,
    /// for the error), in order, bounded like every on-disk chain.
    pub fn overflow_chain(&self, first: Block, at: u32) -> SqlResult<Vec<Block>> {
        let limit = MAX_CHAIN.min(super::buffer::block_count(self.rel) as usize);
        let mut chain = Vec::new();
        let mut next = first;
        while let Some(block) = layout::chain_link(next) {
            if chain.len() >= limit {
                return Err(chain_error(
                    self.rel,
                    &format!("overflow chain of node {at}"),
                    block,
                ));
            }
            if chain.len() % 64 == 63 {
                pgrx::check_for_interrupts!();
            }
            chain.push(block);
            next = layout::opaque(PageRead::new(self.rel, block).bytes()).next;
        }
        Ok(chain)
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
}

/// The code entries of a level-0 list: each neighbour's vector coded
/// around the list's node `center` (`g.code_entry` bytes each).
pub fn code_list<'v>(
    quantizer: &Quantizer,
    g: &Geometry,
    center: &[f32],
    neighbours: impl Iterator<Item = &'v [f32]>,
) -> Vec<u8> {
    let center = quantizer.center(center);
    let mut codes = Vec::new();
    for vec in neighbours {
        let at = codes.len();
        codes.resize(at + g.code_entry, 0);
        quantizer.encode_entry(&center, vec, &mut codes[at..]);
    }
    codes
}

/// The bytes of a node slot; `codes` holds the level-0 list's code
/// entries (empty when the index has none).
#[allow(clippy::too_many_arguments)]
pub fn encode_slot(
    g: &Geometry,
    point: &Point,
    words: &[u64],
    tids: &[Tid],
    level: u8,
    upper_first: u32,
    overflow: Block,
    level0: &[NodeId],
    codes: &[u8],
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
    write_words(&mut slot, g.filter_offset(), &words[..g.filter_words]);
    layout::slice_mut::<u32>(&mut slot, g.neighbors_offset(), level0.len()).copy_from_slice(level0);
    debug_assert_eq!(codes.len(), level0.len() * g.code_entry);
    slot[g.codes_offset()..g.codes_offset() + codes.len()].copy_from_slice(codes);
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
        if let Some((block, offset)) = upper.and_then(|slot| self.upper_location(slot)) {
            let page = PageRead::new(self.rel, block);
            self.expect_kind(&page, block, PageKind::Upper);
            let bytes = &layout::payload(page.bytes())[offset..offset + g.upper_size];
            let n = usize::from(u16::from_ne_bytes([bytes[0], bytes[1]]));
            if n > g.m {
                crate::fmgr::raise(super::buffer::corrupt(
                    self.rel,
                    format_args!("the level-{level} list of node {node} in block {block} has {n} neighbours, at most {} fit", g.m),
                ));
            }
            out.extend_from_slice(layout::slice::<u32>(bytes, 4, n));
        }
        out.retain(|&n| n < self.meta.node_count);
    }
}

impl CodedStore for PageGraph {
    fn quantizer(&self) -> &Quantizer {
        // Only indexes with codes are searched on codes (see `am::scan`).
        self.quantizer.as_ref().unwrap_or_else(|| {
            crate::fmgr::raise(crate::error::SqlError::internal(
                "vhnsw: a coded search on an index without codes",
            ))
        })
    }

    /// One page: the node's exact distance from its vector, and an
    /// estimate for each wanted neighbour from the codes beside its id.
    fn expand(
        &self,
        query: &Point,
        coded: &quant::Query,
        node: NodeId,
        wanted: &mut dyn FnMut(NodeId) -> bool,
        out: &mut Vec<(NodeId, f32)>,
    ) -> (f32, bool) {
        let g = self.geometry;
        let metric = self.params.metric;
        let quantizer = self.quantizer();
        let known = self.meta.node_count;
        self.with_slot(node, |slot, h| {
            super::buffer::prefetch_bytes(slot);
            let vec = layout::slice::<f32>(slot, g.vector_offset(), g.dims);
            let exact = metric.distance(&query.vec, query.aux, vec, h.aux);
            if h.flags & NODE_IN_USE == 0 {
                return (exact, false);
            }
            let result = self.passes(slot);
            let center_sq = quant::center_sq(metric, exact, &query.vec, vec);
            let n = usize::from(h.n0).min(2 * g.m);
            let ids = layout::slice::<u32>(slot, g.neighbors_offset(), n);
            let codes = &slot[g.codes_offset()..g.codes_offset() + n * g.code_entry];
            for (&id, entry) in ids.iter().zip(codes.chunks_exact(g.code_entry)) {
                // Nodes published after this scan's snapshot are not followed.
                if id >= known || !wanted(id) {
                    continue;
                }
                if let Some(estimate) = quantizer.estimate_entry(metric, coded, center_sq, entry) {
                    out.push((id, estimate));
                }
            }
            (exact, result)
        })
    }
}
