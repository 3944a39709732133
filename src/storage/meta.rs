//! The metapage (block 0): the one place that reads and writes it.
//!
//! Two kinds of writers share it. Pending-list appenders change only the
//! list's fields (and the merge-worker request), under the buffer lock
//! alone; the graph writer
//! (`writer.rs`) changes the graph's fields under the graph lock.
//! Each writes the page from the copy it read under the exclusive buffer
//! lock, changing only its own fields, so neither undoes the other's.

use super::buffer::{PageRead, WalBatch};
use super::layout::{
    self, Geometry, Meta, INVALID_BLOCK, LAYOUT_VERSION, MAGIC, META_BLOCK, NODE_EXTENTS, NO_NODE,
    UPPER_EXTENTS,
};
use super::Index;
use crate::error::{SqlError, SqlResult};
use vdb_core::hnsw::{Metric, Params};

/// A fresh metapage for an index of this shape, its level-0 lists coded
/// at `code_bits` bits a coordinate (0: no codes).
pub fn new_meta(
    dims: usize,
    metric: Metric,
    m: usize,
    ef_construction: usize,
    code_bits: u8,
    filter_kinds: &[u8],
) -> Meta {
    let mut meta: Meta = bytemuck::Zeroable::zeroed();
    meta.magic = MAGIC;
    meta.version = LAYOUT_VERSION;
    meta.metric = metric.code();
    meta.code_bits = code_bits;
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
    let cols = filter_kinds.len().min(layout::MAX_FILTER_COLS);
    meta.filter_cols = cols as u8;
    meta.filter_kinds[..cols].copy_from_slice(&filter_kinds[..cols]);
    set_dims(&mut meta, dims);
    meta
}

/// `meta` as the metapage of an empty graph: one node and one upper
/// extent, both of no pages, that the first writer grows (an index built
/// on an empty table, an unlogged index's init fork, an index VACUUM
/// left without rows).
pub fn empty_graph(mut meta: Meta) -> Meta {
    meta.node_extent_count = 1;
    meta.upper_extent_count = 1;
    meta
}

/// Records the dimension count and the sizes that follow from it (the
/// codes' too: an index built before its dimensions were known gets them
/// with its first row).
pub fn set_dims(meta: &mut Meta, dims: usize) {
    let m = usize::from(meta.m);
    meta.code_coords = match Metric::from_code(meta.metric) {
        Some(metric) => layout::code_coords(
            dims,
            m,
            metric,
            meta.code_bits,
            layout::filter_words(usize::from(meta.filter_cols)),
        ),
        None => 0,
    };
    meta.dims = dims as u32;
    let g = Geometry::from_meta(meta);
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
    let meta = get_meta(PageRead::new(rel, META_BLOCK).bytes());
    if meta.magic != MAGIC {
        return Err(super::buffer::corrupt(
            rel,
            format_args!("its metapage (block {META_BLOCK}) has no vhnsw magic number"),
        ));
    }
    if meta.version != LAYOUT_VERSION {
        return Err(SqlError::new(
            crate::error::SqlState::ObjectNotInPrerequisiteState,
            format!(
                "vhnsw index has layout version {}, this vdb reads version {LAYOUT_VERSION}",
                meta.version
            ),
        )
        .with_detail("REINDEX the index to rebuild it in the current layout."));
    }
    if let Some(what) = damage(&meta) {
        return Err(super::buffer::corrupt(
            rel,
            format_args!("its metapage (block {META_BLOCK}) has {what}"),
        ));
    }
    Ok(meta)
}

/// What makes a metapage of the current layout impossible, if anything:
/// its shape must agree with itself, and its counts with its extents,
/// before any of it is used to find a page.
fn damage(meta: &Meta) -> Option<String> {
    if Metric::from_code(meta.metric).is_none() {
        return Some(format!("an unknown metric {}", meta.metric));
    }
    if !(2..=100).contains(&meta.m) {
        return Some(format!("m = {}", meta.m));
    }
    // An index made on an empty table learns its dimensions from its
    // first row.
    if meta.dims > 1 << 20 || (meta.dims == 0 && meta.node_count > 0) {
        return Some(format!("{} dimensions", meta.dims));
    }
    if meta.node_extent_count as usize > NODE_EXTENTS
        || meta.upper_extent_count as usize > UPPER_EXTENTS
    {
        return Some(format!(
            "{} node and {} upper extents",
            meta.node_extent_count, meta.upper_extent_count
        ));
    }
    let g = Geometry::from_meta(meta);
    if meta.node_size as usize != g.node_size
        || meta.nodes_per_page as usize != g.nodes_per_page
        || meta.upper_size as usize != g.upper_size
        || meta.uppers_per_page as usize != g.uppers_per_page
    {
        return Some("slot sizes its shape does not give".to_string());
    }
    // The last node's (upper slot's) unit must lie in an extent.
    let beyond = |count: u32, base: u32, unit: &dyn Fn(u32) -> u32, extents: u32| {
        count
            .checked_sub(1)
            .is_some_and(|last| layout::extent_of(base, unit(last)).0 >= extents as usize)
    };
    if beyond(
        meta.node_count,
        meta.node_base_units,
        &|n| g.node_unit(n).0,
        meta.node_extent_count,
    ) {
        return Some(format!(
            "{} nodes, more than its extents hold",
            meta.node_count
        ));
    }
    if beyond(
        meta.upper_count,
        meta.upper_base_units,
        &|s| g.upper_page(s).0,
        meta.upper_extent_count,
    ) {
        return Some(format!(
            "{} upper slots, more than its extents hold",
            meta.upper_count
        ));
    }
    if meta.entry_node != NO_NODE
        && (meta.entry_node >= meta.node_count
            || meta.entry_level > u32::from(vdb_core::hnsw::MAX_LEVEL))
    {
        return Some(format!(
            "entry point {} at level {} of {} nodes",
            meta.entry_node, meta.entry_level, meta.node_count
        ));
    }
    None
}

/// The metapage as it stands in a page image.
pub fn get_meta(page: &[u8]) -> Meta {
    *layout::read::<Meta>(layout::payload(page), 0)
}

/// The graph's parameters recorded in the metapage.
pub fn params_of(meta: &Meta) -> SqlResult<Params> {
    let metric = Metric::from_code(meta.metric)
        .ok_or_else(|| SqlError::internal("vhnsw metapage has an unknown metric"))?;
    Ok(Params {
        metric,
        m: usize::from(meta.m),
        ef_construction: usize::from(meta.ef_construction),
    })
}

/// Writes `meta`'s graph fields into the metapage in `batch` (which locks
/// it); the pending list's and the unindexed rows' fields stay as they
/// are on the page, since appenders change them without the graph lock. Only the graph writer,
/// which holds the graph lock, calls this.
pub fn put_graph_fields(batch: &mut WalBatch, meta: &Meta) {
    let i = batch.page(META_BLOCK, None);
    let current = get_meta(batch.bytes(i));
    let mut meta = *meta;
    meta.pending_head = current.pending_head;
    meta.pending_tail = current.pending_tail;
    meta.pending_free = current.pending_free;
    meta.next_pending_seq = current.next_pending_seq;
    meta.pending_head_seq = current.pending_head_seq;
    meta.pending_done = current.pending_done;
    meta.merge_requested = current.merge_requested;
    meta.unindexed = current.unindexed;
    put_meta(batch.bytes_mut(i), &meta);
}
