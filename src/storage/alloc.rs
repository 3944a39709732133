//! Where new slots and pages come from: the node and upper regions grow
//! by extents (contiguous runs of pages, sizes in [`extent_units`]),
//! overflow pages are single pages at the end of the relation. Only the
//! graph writer allocates (these are its methods), under the graph lock.

use super::buffer::{self, Block, WalBatch};
use super::layout::{
    extent_of, extent_units, PageKind, INVALID_BLOCK, NODE_EXTENTS, UPPER_EXTENTS,
};
use super::writer::GraphWriter;
use crate::error::{SqlError, SqlResult, SqlState};
use crate::failpoint;

/// The two arrays of fixed-size slots that grow by extents.
#[derive(Debug, Clone, Copy)]
pub(super) enum Region {
    Nodes,
    Uppers,
}

impl GraphWriter {
    /// Makes sure `region` has room for its unit `unit`, adding extents.
    /// Each new extent is recorded in the metapage in the same WAL record
    /// that initialises its last page: once that record is on disk the
    /// extent is known; before it (relation extension is not WAL-logged)
    /// a crash leaves at most one extent's zeroed pages unused at the end
    /// of the file: space, never a page two owners write.
    pub(super) fn reserve(&mut self, region: Region, unit: u32) -> SqlResult<()> {
        let meta = &self.graph.meta;
        let (base, pages_per_unit, kind, limit) = match region {
            Region::Nodes => (
                meta.node_base_units,
                self.geometry.pages_per_node as u32,
                PageKind::Node,
                NODE_EXTENTS,
            ),
            Region::Uppers => (meta.upper_base_units, 1, PageKind::Upper, UPPER_EXTENTS),
        };
        let (needed, _) = extent_of(base, unit);
        loop {
            let mut meta = self.graph.meta;
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
                    SqlError::new(SqlState::ProgramLimitExceeded, "vhnsw index is full")
                        .with_detail(
                            "The index has reached the largest size its extent table describes.",
                        ),
                );
            }
            let pages = u64::from(extent_units(base, e)) * u64::from(pages_per_unit);
            let pages = u32::try_from(pages)
                .ok()
                .filter(|&p| {
                    u64::from(buffer::block_count(self.rel)) + u64::from(p)
                        < u64::from(INVALID_BLOCK)
                })
                .ok_or_else(|| {
                    SqlError::new(SqlState::ProgramLimitExceeded, "vhnsw index is full")
                        .with_detail(
                            "The index would exceed the largest relation PostgreSQL allows.",
                        )
                })?;
            let first = if pages == 0 {
                INVALID_BLOCK
            } else {
                buffer::extend(self.rel, pages)
            };
            failpoint::hit("extent_added");
            extents[e] = first;
            *count += 1;
            let mut batch = WalBatch::start(self.rel);
            if pages > 0 {
                // Replay recreates the file up to the extent's end, so a
                // later extension cannot land inside it.
                batch.page(first + pages - 1, Some(kind));
            }
            self.put_meta_in(&mut batch, &meta);
            batch.commit();
            self.graph.meta = meta;
        }
    }

    /// Allocates a single loose page (overflow chain) at the end of the
    /// relation, initialised in `batch`; returns its block and batch index.
    pub(super) fn new_loose_page(&self, batch: &mut WalBatch, kind: PageKind) -> (Block, usize) {
        let block = buffer::extend(self.rel, 1);
        (block, batch.page(block, Some(kind)))
    }
}
