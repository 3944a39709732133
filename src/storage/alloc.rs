//! Where new slots and pages come from: the node and upper regions grow
//! by extents (contiguous runs of pages, sizes in [`extent_units`]),
//! overflow pages are single pages at the end of the relation. Only the
//! graph writer allocates, under the graph lock.

use super::buffer::{self, Block, WalBatch};
use super::layout::{
    extent_of, extent_units, Geometry, Meta, PageKind, INVALID_BLOCK, NODE_EXTENTS, UPPER_EXTENTS,
};
use super::meta::put_graph_fields;
use super::Index;
use crate::error::{SqlError, SqlResult, SqlState};
use crate::failpoint;

/// The two arrays of fixed-size slots that grow by extents.
#[derive(Debug, Clone, Copy)]
pub(super) enum Region {
    Nodes,
    Uppers,
}

/// Makes sure `region` has room for its unit `unit`, adding extents.
/// Each new extent is recorded in the metapage in the same WAL record
/// that initialises its last page: once that record is on disk the
/// extent is known; before it (relation extension is not WAL-logged)
/// a crash leaves at most one extent's zeroed pages unused at the end
/// of the file: space, never a page two owners write.
pub(super) fn reserve(
    rel: Index,
    current: &mut Meta,
    geometry: &Geometry,
    region: Region,
    unit: u32,
) -> SqlResult<()> {
    let meta = &*current;
    let (base, pages_per_unit, kind, limit) = match region {
        Region::Nodes => (
            meta.node_base_units,
            geometry.pages_per_node as u32,
            PageKind::Node,
            NODE_EXTENTS,
        ),
        Region::Uppers => (meta.upper_base_units, 1, PageKind::Upper, UPPER_EXTENTS),
    };
    let (needed, _) = extent_of(base, unit);
    loop {
        let mut meta = *current;
        let (extents, count) = match region {
            Region::Nodes => (&mut meta.node_extents[..], &mut meta.node_extent_count),
            Region::Uppers => (&mut meta.upper_extents[..], &mut meta.upper_extent_count),
        };
        let e = *count as usize;
        if e > needed {
            return Ok(());
        }
        if e >= limit {
            return Err(
                SqlError::new(SqlState::ProgramLimitExceeded, "vhnsw index is full").with_detail(
                    "The index has reached the largest size its extent table describes.",
                ),
            );
        }
        let pages = u64::from(extent_units(base, e)) * u64::from(pages_per_unit);
        let pages = u32::try_from(pages)
            .ok()
            .filter(|&p| {
                u64::from(buffer::block_count(rel)) + u64::from(p) < u64::from(INVALID_BLOCK)
            })
            .ok_or_else(|| {
                SqlError::new(SqlState::ProgramLimitExceeded, "vhnsw index is full")
                    .with_detail("The index would exceed the largest relation PostgreSQL allows.")
            })?;
        let first = if pages == 0 {
            INVALID_BLOCK
        } else {
            buffer::extend(rel, pages)
        };
        failpoint::hit("extent_added");
        extents[e] = first;
        *count += 1;
        let mut batch = WalBatch::start(rel);
        if pages > 0 {
            // Replay recreates the file up to the extent's end, so a
            // later extension cannot land inside it.
            batch.page(first + pages - 1, Some(kind));
        }
        put_graph_fields(&mut batch, &meta);
        batch.commit();
        *current = meta;
    }
}

/// Allocates a single loose page (overflow chain) at the end of the
/// relation, initialised in `batch`; returns its block and batch index.
pub(super) fn new_loose_page(rel: Index, batch: &mut WalBatch, kind: PageKind) -> (Block, usize) {
    let block = buffer::extend(rel, 1);
    (block, batch.page(block, Some(kind)))
}
