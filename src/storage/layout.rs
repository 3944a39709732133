//! The byte layout of every `vhnsw` page: the one place that knows it.
//!
//! ```text
//!  block 0            node extents (contiguous runs of node pages)        upper extents          loose pages
//! +----------+   +---------------------------------------------------+   +-----------------+   +----------+
//! | metapage |   | node page | node page | ...   (extent k: 2^min(k,13) units)  | upper | upper |   | overflow |
//! +----------+   +---------------------------------------------------+   +-----------------+   +----------+
//!
//! every page:  [ PageHeaderData 24 B | payload 8160 B                          | special: PageOpaque 8 B ]
//!
//! node page payload (nodes_per_page fixed-size slots, back to back):
//!   [ slot 0 ][ slot 1 ] ... [ slot n-1 ]
//!
//! node slot (node_size = 32 + 8·w + 8·m + 2·m·e + 4·dims bytes, rounded to 4):
//!   0  NodeHeader (32 B): flags, level, ntids, upper_first, overflow, n0, generation, aux, 2 inline TIDs
//!  32  filter words: [u64; w]              (composite indexes: w = filter columns + 1; word 0
//!                                          flags NULL columns, word 1 + c is column c's value
//!                                          as `storage::filter` encodes it; w = 0 without)
//!  32 + 8w  level-0 neighbours: [u32; 2·m] (first n0 valid)
//!  + 8m  their codes: [[u8; e]; 2·m]       (entry i codes neighbour i around this node's
//!                                          vector: code_bits × code_coords bits, then
//!                                          factors; e = 0 when the index has no codes)
//!  + 2me  vector: [f32; dims]              (prepared: unit length under cosine)
//!
//! upper page payload: [ upper slot ]...   upper slot = u16 count, u16 pad, [u32; m]
//!   a node of level L ≥ 1 owns the L consecutive upper slots upper_first .. upper_first+L-1
//!   (one per level 1..=L)
//!
//! overflow page payload: u32 count, then 6-byte heap TIDs; PageOpaque.next chains pages
//!
//! value region (composite indexes; see `values.rs`): chunks of consecutive Values
//!   pages (a page per filter column: [u64; 1020] words of 1,020 nodes; then code pages:
//!   each node's own code entry around the origin), named by a chain of ValueDir pages
//!   (u32 count, [u32] first blocks) from Meta::value_dir
//!
//! unindexed page payload (rows the graph cannot hold: NULL values, zero
//!   vectors under cosine; newest page first from Meta::unindexed, chained
//!   by PageOpaque.next): u32 count, then entries (reason u16, heap TID)
//!
//! pending page payload (the pending list, chained by PageOpaque.next):
//!   PendingHeader (seq u32, count u16, done u16), then entries of
//!   PendingEntry (flags u16, heap TID, aux f32) + filter words [u64; w] (unaligned)
//!   + prepared vector [f32; dims]
//! ```
//!
//! **Writes** go to the pending list first: `aminsert` appends an entry to
//! the tail page and returns. A merge (background worker, back-pressure,
//! VACUUM, `vhnsw_merge`) moves entries into the graph; the WAL record that
//! publishes a node also flags its entry merged, so a row is in exactly one
//! of the two at every instant. Fully merged pages at the head are
//! recycled; the metapage records the head page's sequence number so a
//! reader can tell when the list moved under it. Freed node slots (deleted
//! rows, after VACUUM repaired every link to them) are chained through
//! `overflow` from `Meta::free_node` and reused by later merges; a slot
//! keeps its run of upper slots for life (`upper_first`, and its length
//! in the high bits of `flags`), so a node of that level or lower reuses
//! them. A freed node's overflow pages go onto `Meta::free_overflow`,
//! reused once no snapshot older than their freeing is left. The order of WAL records of every
//! write, and why a crash between any two leaves a sound index, is in
//! the graph writer's module (`writer.rs`).
//!
//! **Why this layout.** A node id is a dense `u32`. Its page and byte
//! offset follow by arithmetic: `node / nodes_per_page` is its unit in the
//! node region, `(node % nodes_per_page) · node_size` its offset; the unit's
//! extent and place in it follow from the extent sizes ([`extent_of`]), and
//! the extent's first block is one read of the metapage's extent table
//! (copied once per scan), never a per-node lookup. `CREATE INDEX` writes
//! the region as one extent of exactly the size it needs (`base_units`), so
//! a fresh index has no empty pages; inserts after that grow the region by
//! extents of 1, 2, 4, ... 8,192 units (64 MiB of one-page units), then
//! extents that double every 32 (so the index is limited by the relation's
//! 2^32 blocks, not by the extent tables),
//! without moving anything.
//!
//! **What a search reads per hop**: the current node's slot, one page.
//! Its vector gives the node's exact distance (results are ordered by
//! exact distances); the codes beside its level-0 ids give every
//! neighbour an estimate (`vdb_core::quant`), which orders the frontier.
//! So a hop costs one page, not one per neighbour. Codes are taken around
//! the list's own node: the residual is short, so the estimate's error
//! scales with the neighbour's distance. An index without codes (L1,
//! Poincaré, vectors wider than a page, or `code_bits = 0`) reads, for
//! each unseen neighbour, the slot holding its vector, and computes the
//! distance in place under a share lock.
//! Level-0 lists live in the slot because every node has one and every hop
//! reads one; upper-level lists are needed by about 1/(m−1) of the nodes and
//! only during the short descent, so they live in their own region instead
//! of wasting `m·4·levels` bytes in every slot.
//!
//! Identical vectors share one node: up to 2 heap TIDs inline, more in a
//! chain of overflow pages. Vectors wider than one page (above ~2,000
//! dimensions) make a slot span `pages_per_node` consecutive pages; the
//! payloads are concatenated.

use bytemuck::{Pod, Zeroable};
use vdb_core::hnsw::Metric;

pub const BLCKSZ: usize = 8192;
/// `SizeOfPageHeaderData`, already MAXALIGNed.
pub const PAGE_HEADER: usize = 24;
pub const SPECIAL: usize = std::mem::size_of::<PageOpaque>();
pub const PAYLOAD: usize = BLCKSZ - PAGE_HEADER - SPECIAL;

pub const MAGIC: u32 = 0x5648_4e57; // "VHNW"
/// 2: growth extents past the 46th double every 32 extents (no cap on
/// the index's size); a free node slot keeps its level and upper slots
/// and chains the free list through `overflow`.
/// 3: level-0 lists carry their neighbours' codes.
/// 4: rows the graph cannot hold (NULL, zero under cosine) are kept
/// (`Meta::unindexed`); an older index lacks them, so it asks for REINDEX.
pub const LAYOUT_VERSION: u32 = 4;

/// Seed of the random rotation codes are taken in (part of the format).
pub const CODE_SEED: u64 = 0x7664_625f_636f_6465;

pub const META_BLOCK: u32 = 0;
pub const INVALID_BLOCK: u32 = u32::MAX;
pub const NO_NODE: u32 = u32::MAX;

/// Extent table sizes (in the metapage).
pub const NODE_EXTENTS: usize = 1500;
pub const UPPER_EXTENTS: usize = 500;
/// Size of the growth extents 15 to 46, in units; later ones double every
/// [`EXTENTS_PER_DOUBLING`] extents, so an extent never exceeds a small
/// fraction of what the index already holds, and the extent tables reach
/// past the 2^32 blocks a relation can have.
pub const MAX_EXTENT_UNITS: u32 = 1 << 13;
pub const EXTENTS_PER_DOUBLING: usize = 32;
/// Growth extents 1..=14 hold 2^14 − 1 units between them.
const GEOMETRIC: u32 = (1 << 14) - 1;
/// Doublings after which extents stop growing (8192 · 2^18 = 2^31 units).
const MAX_DOUBLINGS: usize = 18;

/// Heap TIDs kept in the node slot itself.
pub const INLINE_TIDS: usize = 2;

/// What a page holds (stored in its special space).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u16)]
pub enum PageKind {
    Meta = 0x7601,
    Node = 0x7602,
    Upper = 0x7603,
    Overflow = 0x7604,
    Pending = 0x7605,
    /// Filter words of a chunk of nodes, one column (`storage::values`).
    Values = 0x7606,
    /// The value region's directory of chunks.
    ValueDir = 0x7607,
    /// Rows the graph cannot hold (`storage::unindexed`).
    Unindexed = 0x7608,
}

/// The special space at the end of every page.
#[derive(Debug, Clone, Copy, Pod, Zeroable)]
#[repr(C)]
pub struct PageOpaque {
    pub kind: u16,
    pub flags: u16,
    /// Next page of a chain (overflow pages), or `INVALID_BLOCK`.
    pub next: u32,
}

/// The metapage (block 0).
#[derive(Debug, Clone, Copy, Pod, Zeroable)]
#[repr(C)]
pub struct Meta {
    pub magic: u32,
    pub version: u32,
    pub dims: u32,
    pub metric: u8,
    /// Bits per coded coordinate (the `code_bits` option; 0: no codes).
    pub code_bits: u8,
    pub m: u16,
    pub ef_construction: u16,
    /// Rotated coordinates each code covers; 0 when lists carry no codes
    /// (set with the dimensions: see [`code_coords`]).
    pub code_coords: u16,
    pub node_size: u32,
    pub nodes_per_page: u32,
    pub pages_per_node: u32,
    pub upper_size: u32,
    pub uppers_per_page: u32,
    /// Entry point node, or `NO_NODE` for an empty graph.
    pub entry_node: u32,
    pub entry_level: u32,
    /// Node ids below this are in use (allocated and written).
    pub node_count: u32,
    /// Upper slots below this are in use.
    pub upper_count: u32,
    /// Nodes that lost all their heap TIDs (kept for navigation).
    pub deleted_nodes: u32,
    pub node_extent_count: u32,
    pub upper_extent_count: u32,
    /// First and last page of the pending list (`INVALID_BLOCK` if none).
    pub pending_head: u32,
    pub pending_tail: u32,
    /// Recycled pending pages, chained through `PageOpaque::next`.
    pub pending_free: u32,
    /// Freed node slots, chained through `NodeHeader::overflow`.
    pub free_node: u32,
    /// Units in node extent 0 (written whole by CREATE INDEX).
    pub node_base_units: u32,
    /// Pages in upper extent 0.
    pub upper_base_units: u32,
    /// Sequence number the next new pending page gets.
    pub next_pending_seq: u32,
    /// Node slots on the free list.
    pub free_nodes: u32,
    /// Sequence number of the page at `pending_head`.
    pub pending_head_seq: u32,
    /// A node published whose neighbours may not all link to it yet (an
    /// insert in progress, or cut short by a crash): the next writer
    /// finishes its linking. `NO_NODE` when none.
    pub linking: u32,
    /// Entries flagged merged or dead in the pages still on the pending
    /// list (at most: a crash can lose an increment, never add one), so
    /// that pages × entries per page − this bounds the live entries.
    pub pending_done: u32,
    /// Overflow pages of freed nodes, chained through `PageOpaque::next`;
    /// 0 (the metapage's block, never an overflow page) or
    /// `INVALID_BLOCK` when there are none.
    pub free_overflow: u32,
    /// The transaction id (64-bit, as two native-endian halves, low
    /// first) that was next when the newest page went onto
    /// `free_overflow`: the list's pages are reused only once every
    /// snapshot is newer, so no scan still reading a freed node's chain
    /// sees another node's TIDs there. Older pages are deeper in the
    /// list, so the head's horizon covers them all.
    pub free_overflow_xid: [u32; 2],
    /// When a merge worker was last asked for (seconds of the
    /// `TimestampTz` epoch, 0 once a worker has finished): appenders ask
    /// at most once per [`MERGE_REQUEST_SECS`] while a request stands.
    pub merge_requested: u32,
    /// Entries merged into the graph, ever.
    pub merged_total: u64,
    /// When the last merge finished (`TimestampTz`, 0 if never).
    pub last_merge: i64,
    /// First block of each node extent.
    pub node_extents: [u32; NODE_EXTENTS],
    /// First block of each upper extent.
    pub upper_extents: [u32; UPPER_EXTENTS],
    /// Filter columns of a composite index (the index's columns after the
    /// vector); 0 for a vector-only index, whose pages are as before.
    pub filter_cols: u8,
    /// What each filter column holds (`storage::filter::Kind` codes).
    pub filter_kinds: [u8; MAX_FILTER_COLS],
    /// First page of the value region's directory (`storage::values`);
    /// 0 or `INVALID_BLOCK` when there is none.
    pub value_dir: u32,
    /// Newest page of the rows the graph cannot hold (`storage::unindexed`);
    /// 0 or `INVALID_BLOCK` when there is none.
    pub unindexed: u32,
}

const _: () = assert!(std::mem::size_of::<Meta>() <= PAYLOAD);

/// Most filter columns a composite index can have.
pub const MAX_FILTER_COLS: usize = 7;

/// Filter words per node (and pending entry) of an index with `cols`
/// filter columns: a NULL bitmap, then a word per column.
pub fn filter_words(cols: usize) -> usize {
    if cols == 0 {
        0
    } else {
        cols + 1
    }
}

/// The fixed part of a node slot.
#[derive(Debug, Clone, Copy, Pod, Zeroable)]
#[repr(C)]
pub struct NodeHeader {
    pub flags: u8,
    pub level: u8,
    /// Inline TIDs in use.
    pub ntids: u16,
    /// First upper slot (levels 1..=level).
    pub upper_first: u32,
    /// First overflow page of further TIDs, or `INVALID_BLOCK`.
    pub overflow: u32,
    /// Level-0 neighbours in use.
    pub n0: u16,
    /// Bumped each time the slot is reused, so a scan can tell.
    pub generation: u16,
    pub aux: f32,
    pub tids: [Tid; INLINE_TIDS],
}

pub const NODE_HEADER: usize = std::mem::size_of::<NodeHeader>();
const _: () = assert!(NODE_HEADER == 32);

/// `NodeHeader::flags`
pub const NODE_IN_USE: u8 = 1;
/// The node has no live heap TIDs left; it stays for navigation.
pub const NODE_DELETED: u8 = 2;

/// A heap TID, bit-compatible with `ItemPointerData` (`bi_hi`, `bi_lo`,
/// `ip_posid`, native-endian `u16`s).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Pod, Zeroable, Default)]
#[repr(C)]
pub struct Tid(pub [u16; 3]);

impl Tid {
    pub fn new(block: u32, offset: u16) -> Tid {
        Tid([(block >> 16) as u16, block as u16, offset])
    }

    pub fn block(self) -> u32 {
        (u32::from(self.0[0]) << 16) | u32::from(self.0[1])
    }

    pub fn offset(self) -> u16 {
        self.0[2]
    }
}

/// Header of an overflow page's payload.
#[derive(Debug, Clone, Copy, Pod, Zeroable)]
#[repr(C)]
pub struct OverflowHeader {
    pub count: u32,
}

pub const OVERFLOW_TIDS: usize =
    (PAYLOAD - std::mem::size_of::<OverflowHeader>()) / std::mem::size_of::<Tid>();

/// Header of a pending page's payload.
#[derive(Debug, Clone, Copy, Pod, Zeroable)]
#[repr(C)]
pub struct PendingHeader {
    /// Position of this page in the list's history: consecutive pages of
    /// the list have consecutive numbers, so a reader can tell a page that
    /// was recycled under it.
    pub seq: u32,
    /// Entries written.
    pub count: u16,
    /// Entries merged into the graph or removed by VACUUM.
    pub done: u16,
}

pub const PENDING_HEADER: usize = std::mem::size_of::<PendingHeader>();

/// The fixed part of a pending entry; the prepared vector follows.
#[derive(Debug, Clone, Copy, Pod, Zeroable)]
#[repr(C)]
pub struct PendingEntry {
    pub flags: u16,
    pub tid: Tid,
    pub aux: f32,
}

pub const PENDING_ENTRY: usize = std::mem::size_of::<PendingEntry>();
const _: () = assert!(PENDING_ENTRY == 12);

/// Header of an unindexed page's payload.
#[derive(Debug, Clone, Copy, Pod, Zeroable)]
#[repr(C)]
pub struct UnindexedHeader {
    pub count: u32,
}

/// A row the graph cannot hold: why, and its heap TID.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Pod, Zeroable)]
#[repr(C)]
pub struct UnindexedEntry {
    /// `storage::unindexed::Reason` code.
    pub reason: u16,
    pub tid: Tid,
}

const _: () = assert!(std::mem::size_of::<UnindexedEntry>() == 8);

pub const UNINDEXED_PER_PAGE: usize =
    (PAYLOAD - std::mem::size_of::<UnindexedHeader>()) / std::mem::size_of::<UnindexedEntry>();

/// `PendingEntry::flags`: merged into the graph.
pub const PENDING_MERGED: u16 = 1;
/// `PendingEntry::flags`: its heap row is gone (VACUUM).
pub const PENDING_DEAD: u16 = 2;

/// The size of a pending entry: dimensions and filter words.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EntryShape {
    pub dims: usize,
    pub words: usize,
}

impl EntryShape {
    pub fn of(meta: &Meta) -> EntryShape {
        EntryShape {
            dims: stored_dims(meta),
            words: filter_words(usize::from(meta.filter_cols)),
        }
    }

    /// Bytes of one entry.
    pub fn size(self) -> usize {
        PENDING_ENTRY + 8 * self.words + 4 * self.dims
    }

    /// Entries per page (0 when one does not fit: such vectors are
    /// inserted into the graph directly).
    pub fn per_page(self) -> usize {
        (PAYLOAD - PENDING_HEADER) / self.size()
    }

    /// Offset of the filter words in an entry.
    pub fn words_offset(self) -> usize {
        PENDING_ENTRY
    }

    /// Offset of the vector in an entry.
    pub fn vector_offset(self) -> usize {
        PENDING_ENTRY + 8 * self.words
    }
}

/// `NodeHeader::flags`: the slot is on the free list (no other state
/// flag set).
pub const NODE_FREE: u8 = 4;
/// The state bits of `NodeHeader::flags` (in use, deleted, free).
pub const NODE_STATE: u8 = 0x0f;
/// The high bits of `NodeHeader::flags`: how many upper slots the slot's
/// run at `upper_first` holds, when more than its node's level (a node
/// reusing the slot of a higher one keeps the run for the next).
const UPPER_CAPACITY_SHIFT: u8 = 4;

/// Seconds a merge-worker request stands before another backend may ask
/// again (the worker clears it when it ends).
pub const MERGE_REQUEST_SECS: u32 = 10;

/// The page a chain link names, if any: `0` (the metapage, which no
/// chain holds: see `Meta::free_overflow`) and `INVALID_BLOCK` end it.
pub fn chain_link(block: u32) -> Option<u32> {
    (block != 0 && block != INVALID_BLOCK).then_some(block)
}

impl NodeHeader {
    /// The slot's state bits (`NODE_IN_USE`, `NODE_DELETED`, `NODE_FREE`).
    pub fn state(&self) -> u8 {
        self.flags & NODE_STATE
    }

    /// Upper slots the run at `upper_first` holds.
    pub fn upper_capacity(&self) -> u8 {
        (self.flags >> UPPER_CAPACITY_SHIFT).max(self.level)
    }

    /// What makes this header, read from a page of an index with `m`,
    /// impossible, if anything: such a header is damage, and its counts
    /// and links must not be followed.
    pub fn damage(&self, m: usize) -> Option<String> {
        let state = self.state();
        if !matches!(state, 0 | NODE_IN_USE | NODE_FREE) && state != NODE_IN_USE | NODE_DELETED {
            return Some(format!("state flags {state:#x}"));
        }
        if self.level > vdb_core::hnsw::MAX_LEVEL {
            return Some(format!("level {}", self.level));
        }
        if usize::from(self.n0) > 2 * m {
            return Some(format!("{} neighbours, at most {} fit", self.n0, 2 * m));
        }
        if usize::from(self.ntids) > INLINE_TIDS {
            return Some(format!(
                "{} inline TIDs, at most {INLINE_TIDS} fit",
                self.ntids
            ));
        }
        if state & NODE_IN_USE != 0 && self.overflow == 0 {
            return Some("an overflow chain starting at the metapage".to_string());
        }
        None
    }

    /// Records that the run at `upper_first` holds `capacity` slots.
    pub fn set_upper_capacity(&mut self, capacity: u8) {
        debug_assert!(capacity <= NODE_STATE);
        self.flags = self.state() | (capacity.min(NODE_STATE) << UPPER_CAPACITY_SHIFT);
    }
}

/// Sizes derived from dimensions, `m` and the codes; fixed for the life
/// of an index.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Geometry {
    pub dims: usize,
    pub m: usize,
    /// Bytes of one neighbour's code entry (0: no codes).
    pub code_entry: usize,
    /// Filter words per slot (0: not a composite index).
    pub filter_words: usize,
    pub node_size: usize,
    /// Slots per page, or 0 when a slot spans pages.
    pub nodes_per_page: usize,
    /// Pages per slot when a slot spans pages, else 1.
    pub pages_per_node: usize,
    pub upper_size: usize,
    pub uppers_per_page: usize,
}

impl Geometry {
    /// The geometry of an index without codes.
    pub fn new(dims: usize, m: usize) -> Geometry {
        Geometry::coded(dims, m, 0)
    }

    /// The geometry of an index whose level-0 entries carry `code_entry`
    /// bytes of code each.
    pub fn coded(dims: usize, m: usize, code_entry: usize) -> Geometry {
        Geometry::with_filters(dims, m, code_entry, 0)
    }

    /// The geometry of a slot that also carries `filter_words` words.
    pub fn with_filters(dims: usize, m: usize, code_entry: usize, filter_words: usize) -> Geometry {
        let node_size = (NODE_HEADER + 8 * filter_words + 8 * m + 2 * m * code_entry + 4 * dims)
            .next_multiple_of(4);
        let upper_size = 4 + 4 * m;
        let (nodes_per_page, pages_per_node) = if node_size <= PAYLOAD {
            (PAYLOAD / node_size, 1)
        } else {
            (0, node_size.div_ceil(PAYLOAD))
        };
        Geometry {
            dims,
            m,
            code_entry,
            filter_words,
            node_size,
            nodes_per_page,
            pages_per_node,
            upper_size,
            uppers_per_page: PAYLOAD / upper_size,
        }
    }

    pub fn from_meta(meta: &Meta) -> Geometry {
        Geometry::with_filters(
            stored_dims(meta),
            usize::from(meta.m),
            code_entry(meta),
            filter_words(usize::from(meta.filter_cols)),
        )
    }

    /// Byte offset of the filter words in a slot.
    pub fn filter_offset(&self) -> usize {
        NODE_HEADER
    }

    /// Byte offset of the level-0 list in a slot.
    pub fn neighbors_offset(&self) -> usize {
        NODE_HEADER + 8 * self.filter_words
    }

    /// Byte offset of the level-0 list's code entries in a slot.
    pub fn codes_offset(&self) -> usize {
        self.neighbors_offset() + 8 * self.m
    }

    /// Byte offset of the vector in a slot.
    pub fn vector_offset(&self) -> usize {
        self.codes_offset() + 2 * self.m * self.code_entry
    }

    /// Pages in one unit of the node region (a page, or a spanning slot).
    pub fn pages_per_node_unit(&self) -> usize {
        self.pages_per_node
    }

    /// The unit of the node region holding `node`, and the slot's byte
    /// offset in that unit's (concatenated) payload.
    pub fn node_unit(&self, node: u32) -> (u32, usize) {
        if self.nodes_per_page > 0 {
            let per = self.nodes_per_page as u32;
            (node / per, (node % per) as usize * self.node_size)
        } else {
            (node, 0)
        }
    }

    /// Nodes that fit in the first `units` units.
    pub fn nodes_in_units(&self, units: u64) -> u64 {
        if self.nodes_per_page > 0 {
            units * self.nodes_per_page as u64
        } else {
            units
        }
    }

    /// Page of the upper region holding `slot`, and the slot's byte offset.
    pub fn upper_page(&self, slot: u32) -> (u32, usize) {
        let per = self.uppers_per_page as u32;
        (slot / per, (slot % per) as usize * self.upper_size)
    }
}

/// Non-zeros a sparsevec node holds when a node is to fill one page:
/// what the slot leaves after its header, filter words and level-0 list,
/// at 8 bytes each (an index and a value), less the 8 of the packing's
/// dimension and count words.
pub fn sparse_capacity_for_page(m: usize, filter_words: usize) -> usize {
    (PAYLOAD - NODE_HEADER - 8 * filter_words - 8 * m - 8) / 8
}

/// Words a stored point of the index takes: `Meta::dims` is the SQL
/// dimension count, and `halfvec` and `bit` indexes pack two halves or 32
/// bits into each word (`Metric::stored_len`).
pub fn stored_dims(meta: &Meta) -> usize {
    let dims = meta.dims as usize;
    Metric::from_code(meta.metric).map_or(dims, |metric| metric.stored_len(dims))
}

/// The quantizer of an index's codes, if its lists carry codes.
pub fn quantizer(meta: &Meta) -> Option<vdb_core::quant::Quantizer> {
    (meta.code_coords > 0 && meta.code_bits > 0).then(|| {
        vdb_core::quant::Quantizer::new(
            meta.dims as usize,
            meta.code_bits,
            Some(usize::from(meta.code_coords)),
            CODE_SEED,
        )
    })
}

/// Bytes of one code entry of the index `meta` describes (0: none).
fn code_entry(meta: &Meta) -> usize {
    match (meta.code_coords, Metric::from_code(meta.metric)) {
        (0, _) | (_, None) => 0,
        (coords, Some(metric)) => {
            usize::from(coords) * usize::from(meta.code_bits) / 8
                + vdb_core::quant::factor_bytes(metric)
        }
    }
}

/// The fewest coordinates a code covers (unless the rotation has fewer).
const MIN_CODE_COORDS: usize = 128;

/// Narrower vectors keep plain lists: a one-bit code of fewer than 32
/// coordinates ranks too loosely (at 16 dimensions, `ef_search` 400 on
/// 9,000 rows no longer finds the exact top 10), while 30 and more such
/// nodes share a page, so a hop's neighbours mostly share pages anyway.
const MIN_CODED_DIMS: usize = 32;

/// Coordinates to code at `bits` bits each for `dims`-dimensional vectors
/// under `metric` (0: this index keeps plain lists). Codes take the room
/// that lets a page hold two thirds of the nodes it would hold without
/// them, but at least 128 coordinates (or all the rotation has): coding
/// only some of them estimates the rest from those, which on data
/// without structure (uniform 128-d) caps recall near 0.9 at 64 of 128;
/// at 50 dimensions, 32 one-bit coordinates rank a hop's neighbours
/// worse than no codes at all. Metrics codes cannot estimate (L1,
/// Poincaré) and vectors too wide for a page keep plain lists.
pub fn code_coords(dims: usize, m: usize, metric: Metric, bits: u8, words: usize) -> u16 {
    if bits == 0 || dims < MIN_CODED_DIMS || !vdb_core::quant::codes_estimate(metric) {
        return 0;
    }
    let plain = Geometry::with_filters(dims, m, 0, words);
    if plain.nodes_per_page == 0 {
        return 0;
    }
    let padded = dims.max(2).next_power_of_two();
    let per_byte = 8 / usize::from(bits);
    let target = (plain.nodes_per_page * 2).div_ceil(3).max(1);
    let room = (PAYLOAD / target).saturating_sub(plain.node_size) / (2 * m);
    let bytes = room.saturating_sub(vdb_core::quant::factor_bytes(metric));
    let coords = (bytes * per_byte).clamp(MIN_CODE_COORDS.min(padded), padded);
    let coords = coords / per_byte * per_byte;
    let entry = coords / per_byte + vdb_core::quant::factor_bytes(metric);
    if Geometry::with_filters(dims, m, entry, words).nodes_per_page == 0 {
        return 0;
    }
    coords.min(usize::from(u16::MAX)) as u16
}

/// Units in extent `k` of a region whose extent 0 holds `base` units:
/// then 1, 2, 4, ... 8,192, then 32 extents of 8,192, 32 of 16,384, ...
pub fn extent_units(base: u32, k: usize) -> u32 {
    match k {
        0 => base,
        1..=14 => 1u32 << (k - 1),
        _ => MAX_EXTENT_UNITS << ((k - 15) / EXTENTS_PER_DOUBLING).min(MAX_DOUBLINGS),
    }
}

/// The extent holding region unit `unit`, and the unit's index within it.
pub fn extent_of(base: u32, unit: u32) -> (usize, u32) {
    if unit < base {
        return (0, unit);
    }
    let unit = unit - base;
    if unit < GEOMETRIC {
        let k = (u32::BITS - 1 - (unit + 1).leading_zeros()) as usize;
        return (k + 1, unit - ((1 << k) - 1));
    }
    let mut rest = u64::from(unit - GEOMETRIC);
    let mut first = 15;
    for doubling in 0..=MAX_DOUBLINGS {
        let size = u64::from(MAX_EXTENT_UNITS << doubling);
        let group = if doubling == MAX_DOUBLINGS {
            u64::MAX
        } else {
            size * EXTENTS_PER_DOUBLING as u64
        };
        if rest < group {
            return (first + (rest / size) as usize, (rest % size) as u32);
        }
        rest -= group;
        first += EXTENTS_PER_DOUBLING;
    }
    unreachable!("the last group is unbounded")
}

/// Reads a `T` at `offset` of `bytes` (panics if out of range or misaligned,
/// which the layout rules out).
pub fn read<T: Pod>(bytes: &[u8], offset: usize) -> &T {
    bytemuck::from_bytes(&bytes[offset..offset + std::mem::size_of::<T>()])
}

pub fn read_mut<T: Pod>(bytes: &mut [u8], offset: usize) -> &mut T {
    bytemuck::from_bytes_mut(&mut bytes[offset..offset + std::mem::size_of::<T>()])
}

pub fn slice<T: Pod>(bytes: &[u8], offset: usize, len: usize) -> &[T] {
    bytemuck::cast_slice(&bytes[offset..offset + len * std::mem::size_of::<T>()])
}

pub fn slice_mut<T: Pod>(bytes: &mut [u8], offset: usize, len: usize) -> &mut [T] {
    bytemuck::cast_slice_mut(&mut bytes[offset..offset + len * std::mem::size_of::<T>()])
}

/// The payload of a whole page.
pub fn payload(page: &[u8]) -> &[u8] {
    &page[PAGE_HEADER..PAGE_HEADER + PAYLOAD]
}

pub fn payload_mut(page: &mut [u8]) -> &mut [u8] {
    &mut page[PAGE_HEADER..PAGE_HEADER + PAYLOAD]
}

pub fn opaque(page: &[u8]) -> &PageOpaque {
    read(page, BLCKSZ - SPECIAL)
}

pub fn opaque_mut(page: &mut [u8]) -> &mut PageOpaque {
    read_mut(page, BLCKSZ - SPECIAL)
}

/// Sets `pd_lower` (byte 12 of the page header): WAL full-page images
/// skip the hole between `pd_lower` and `pd_upper`, so it must cover all
/// the data we keep in the payload.
pub fn set_pd_lower(page: &mut [u8], payload_used: usize) {
    let lower = (PAGE_HEADER + payload_used) as u16;
    page[12..14].copy_from_slice(&lower.to_ne_bytes());
}

/// Whether a page was never initialised (all zeroes, as relation
/// extension leaves it).
pub fn is_new(page: &[u8]) -> bool {
    // pd_upper == 0 only on a new page, as PageIsNew tests.
    page[14..16] == [0, 0]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn extents_cover_units_without_gaps() {
        for base in [0u32, 1, 7, 1000] {
            let mut expected = (0usize, 0u32);
            if base == 0 {
                expected = (1, 0);
            }
            for unit in 0..200_000u32 {
                assert_eq!(extent_of(base, unit), expected, "base {base} unit {unit}");
                expected.1 += 1;
                if expected.1 == extent_units(base, expected.0) {
                    expected = (expected.0 + 1, 0);
                }
            }
        }
    }

    #[test]
    fn geometry_of_common_shapes() {
        let g = Geometry::new(50, 16);
        assert_eq!(g.node_size, 32 + 128 + 200);
        assert_eq!(g.nodes_per_page, PAYLOAD / 360);
        assert_eq!(
            g.node_unit(45),
            (45 / g.nodes_per_page as u32, (45 % g.nodes_per_page) * 360)
        );
        let wide = Geometry::new(4096, 16);
        assert_eq!((wide.nodes_per_page, wide.pages_per_node), (0, 3));
        assert_eq!(wide.node_unit(7), (7, 0));
        let max = Geometry::new(16000, 100);
        assert!(max.pages_per_node >= 8);
    }

    #[test]
    fn codes_fill_the_room_of_a_third_of_the_nodes() {
        // GloVe-50: all 64 rotated coordinates; 128-d: the floor, all.
        assert_eq!(code_coords(50, 16, Metric::Cosine, 1, 0), 64);
        assert_eq!(code_coords(128, 16, Metric::L2, 1, 0), 128);
        // 384 dims: 4 plain nodes a page, 3 coded.
        let c = code_coords(384, 16, Metric::Cosine, 1, 0);
        let g = Geometry::coded(384, 16, usize::from(c) / 8 + 8);
        assert_eq!((c, g.nodes_per_page), (192, 3));
        // 1,536 dims: one node a page either way, codes fill it.
        let c = code_coords(1536, 16, Metric::L2, 1, 0);
        let g = Geometry::coded(1536, 16, usize::from(c) / 8 + 8);
        assert_eq!(g.nodes_per_page, 1);
        assert!(c >= 384, "{c}");
        // Two bits a coordinate: as many bytes, but not below the floor.
        assert_eq!(code_coords(384, 16, Metric::Cosine, 2, 0), 128);
        // No codes where they cannot estimate, or a slot spans pages.
        assert_eq!(code_coords(384, 16, Metric::L1, 1, 0), 0);
        assert_eq!(code_coords(4096, 16, Metric::L2, 1, 0), 0);
        assert_eq!(code_coords(384, 16, Metric::L2, 0, 0), 0);
        // Narrow vectors have no codes.
        assert_eq!(code_coords(31, 16, Metric::L2, 1, 0), 0);
        assert_eq!(code_coords(32, 16, Metric::L2, 1, 0), 32);
    }

    #[test]
    fn tid_round_trips() {
        let t = Tid::new(0x0012_3456, 7);
        assert_eq!((t.block(), t.offset()), (0x0012_3456, 7));
    }

    #[test]
    fn meta_fits_and_capacity_is_unbounded() {
        assert!(std::mem::size_of::<Meta>() <= PAYLOAD);
        // Growth is bounded by the relation (2^32 blocks), not by the
        // extent tables: before layout 2 they capped an index at about 12
        // million new slots ("index is full").
        for (extents, pages_per_unit) in
            [(NODE_EXTENTS, 1u64), (NODE_EXTENTS, 8), (UPPER_EXTENTS, 1)]
        {
            let pages: u64 = (1..extents)
                .map(|k| u64::from(extent_units(0, k)) * pages_per_unit)
                .sum();
            assert!(pages >= 1 << 32, "{extents} extents hold {pages} pages");
        }
        // No extent is more than a few percent of what precedes it, once
        // the geometric start is past.
        let mut before = 0u64;
        for k in 1..NODE_EXTENTS {
            let size = u64::from(extent_units(0, k));
            if k > 24 {
                assert!(size * 8 <= before, "extent {k}: {size} after {before}");
            }
            before += size;
        }
    }

    #[test]
    fn extent_of_agrees_with_extent_units_far_out() {
        let mut start = 0u64;
        for k in 1..NODE_EXTENTS {
            let size = u64::from(extent_units(0, k));
            for unit in [start, start + size / 2, start + size - 1] {
                if unit > u64::from(u32::MAX) {
                    return;
                }
                let (e, i) = extent_of(0, unit as u32);
                assert_eq!((e, u64::from(i)), (k, unit - start), "unit {unit}");
            }
            start += size;
        }
    }
}
