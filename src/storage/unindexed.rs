//! The rows a graph cannot hold: NULL values, and vectors without a
//! direction under cosine (zero vectors, whose distances are NaN). A table
//! scan returns them after every real distance (NaN sorts after numbers,
//! NULL after NaN), so an ordered index scan that runs out of graph
//! returns them too, in that order: the index answers what a table scan
//! answers.
//!
//! They live in a chain of pages, newest first from `Meta::unindexed`,
//! each a count and entries of (reason, heap TID). An append locks the
//! newest page and adds the entry: one WAL record. When that page is full
//! it chains a new one in front, locking the page, then the metapage (the
//! pending list's lock order), in one record with both. VACUUM removes
//! dead TIDs a page at a time; emptied pages stay in the chain, to be
//! filled again.

use super::buffer::{chain_error, extend, PageRead, WalBatch};
use super::layout::{
    self, Meta, PageKind, Tid, UnindexedEntry, UnindexedHeader, INVALID_BLOCK, META_BLOCK,
    UNINDEXED_PER_PAGE,
};
use super::meta::{get_meta, put_meta, read_meta};
use super::Index;
use crate::error::SqlResult;

/// Why a row is not in the graph, in the order a table scan returns them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
#[repr(u16)]
pub enum Reason {
    /// Its distance to every query is NaN (no direction under cosine).
    NoDirection = 1,
    /// Its value is NULL, and so is its distance.
    Null = 2,
}

impl Reason {
    fn from_code(code: u16) -> Reason {
        if code == Reason::NoDirection as u16 {
            Reason::NoDirection
        } else {
            Reason::Null
        }
    }
}

const HEADER: usize = std::mem::size_of::<UnindexedHeader>();
const ENTRY: usize = std::mem::size_of::<UnindexedEntry>();

/// Restarts of an append whose newest page changed under it.
const MAX_RESTARTS: usize = 100;

fn head(meta: &Meta) -> Option<u32> {
    (meta.unindexed != 0 && meta.unindexed != INVALID_BLOCK).then_some(meta.unindexed)
}

fn entry_at(payload: &[u8], i: usize) -> UnindexedEntry {
    *layout::read::<UnindexedEntry>(payload, HEADER + i * ENTRY)
}

fn put_entry(payload: &mut [u8], i: usize, entry: UnindexedEntry) {
    *layout::read_mut::<UnindexedEntry>(payload, HEADER + i * ENTRY) = entry;
}

/// Records heap row `tid`, which the graph cannot hold for `reason`.
pub fn append(rel: Index, tid: Tid, reason: Reason) -> SqlResult<()> {
    let entry = UnindexedEntry {
        reason: reason as u16,
        tid,
    };
    for _ in 0..MAX_RESTARTS {
        pgrx::check_for_interrupts!();
        let meta = read_meta(rel)?;
        let mut batch = WalBatch::start(rel);
        if let Some(block) = head(&meta) {
            let h = batch.page(block, None);
            if layout::opaque(batch.bytes(h)).kind != PageKind::Unindexed as u16 {
                return Err(not_unindexed(rel, block));
            }
            let payload = layout::payload_mut(batch.bytes_mut(h));
            let count = layout::read::<UnindexedHeader>(payload, 0).count as usize;
            if count < UNINDEXED_PER_PAGE {
                put_entry(payload, count, entry);
                layout::read_mut::<UnindexedHeader>(payload, 0).count += 1;
                batch.commit();
                return Ok(());
            }
        }
        // No page, or the newest is full: chain a new one in front (page,
        // then metapage), unless another appender did first.
        let m = batch.page(META_BLOCK, None);
        let mut locked = get_meta(batch.bytes(m));
        if locked.unindexed != meta.unindexed {
            continue; // batch aborts on drop; retry on the new newest page
        }
        let block = extend(rel, 1);
        let p = batch.page(block, Some(PageKind::Unindexed));
        layout::opaque_mut(batch.bytes_mut(p)).next = head(&locked).unwrap_or(INVALID_BLOCK);
        let payload = layout::payload_mut(batch.bytes_mut(p));
        put_entry(payload, 0, entry);
        layout::read_mut::<UnindexedHeader>(payload, 0).count = 1;
        locked.unindexed = block;
        put_meta(batch.bytes_mut(m), &locked);
        batch.commit();
        crate::failpoint::hit("unindexed_page_chained");
        return Ok(());
    }
    Err(crate::error::SqlError::internal(
        "vhnsw: the unindexed rows' newest page kept changing",
    ))
}

/// Records the rows of a new index (`CREATE INDEX`), a page of them per
/// WAL record, each page chained in front with the metapage.
pub fn append_all(rel: Index, rows: &[(Reason, Tid)]) -> SqlResult<()> {
    for chunk in rows.chunks(UNINDEXED_PER_PAGE) {
        pgrx::check_for_interrupts!();
        let mut batch = WalBatch::start(rel);
        let m = batch.page(META_BLOCK, None);
        let mut meta = get_meta(batch.bytes(m));
        let block = extend(rel, 1);
        let p = batch.page(block, Some(PageKind::Unindexed));
        layout::opaque_mut(batch.bytes_mut(p)).next = head(&meta).unwrap_or(INVALID_BLOCK);
        let payload = layout::payload_mut(batch.bytes_mut(p));
        for (i, &(reason, tid)) in chunk.iter().enumerate() {
            put_entry(
                payload,
                i,
                UnindexedEntry {
                    reason: reason as u16,
                    tid,
                },
            );
        }
        layout::read_mut::<UnindexedHeader>(payload, 0).count = chunk.len() as u32;
        meta.unindexed = block;
        put_meta(batch.bytes_mut(m), &meta);
        batch.commit();
    }
    Ok(())
}

/// Every recorded row, in the order a table scan returns them (rows
/// without a direction, then NULLs).
pub fn all(rel: Index, meta: &Meta) -> SqlResult<Vec<(Reason, Tid)>> {
    let mut rows = Vec::new();
    let mut block = head(meta);
    // More pages than the index has: the chain loops.
    let (mut pages, limit) = (0u32, super::buffer::block_count(rel));
    while let Some(b) = block {
        pgrx::check_for_interrupts!();
        let page = PageRead::new(rel, b);
        let bytes = page.bytes();
        pages += 1;
        if pages > limit {
            return Err(chain_error(rel, "list of unindexed rows", b));
        }
        if layout::opaque(bytes).kind != PageKind::Unindexed as u16 {
            return Err(not_unindexed(rel, b));
        }
        let payload = layout::payload(bytes);
        let count =
            (layout::read::<UnindexedHeader>(payload, 0).count as usize).min(UNINDEXED_PER_PAGE);
        for i in 0..count {
            let e = entry_at(payload, i);
            super::buffer::check_tid(rel, e.tid, || {
                format!("the unindexed rows' page at block {b}")
            })?;
            rows.push((Reason::from_code(e.reason), e.tid));
        }
        let next = layout::opaque(bytes).next;
        block = (next != INVALID_BLOCK && next != 0).then_some(next);
    }
    rows.sort_by_key(|&(reason, _)| reason);
    Ok(rows)
}

/// Removes the rows `is_dead` says are gone, a page (one WAL record) at a
/// time; returns how many were removed and kept.
pub fn bulk_delete(rel: Index, mut is_dead: impl FnMut(Tid) -> bool) -> SqlResult<(usize, usize)> {
    let (mut removed, mut kept) = (0, 0);
    let mut block = head(&read_meta(rel)?);
    while let Some(b) = block {
        pgrx::check_for_interrupts!();
        let mut batch = WalBatch::start(rel);
        let p = batch.page(b, None);
        if layout::opaque(batch.bytes(p)).kind != PageKind::Unindexed as u16 {
            return Err(not_unindexed(rel, b));
        }
        let next = layout::opaque(batch.bytes(p)).next;
        let payload = layout::payload_mut(batch.bytes_mut(p));
        let count =
            (layout::read::<UnindexedHeader>(payload, 0).count as usize).min(UNINDEXED_PER_PAGE);
        let live: Vec<UnindexedEntry> = (0..count)
            .map(|i| entry_at(payload, i))
            .filter(|e| !is_dead(e.tid))
            .collect();
        removed += count - live.len();
        kept += live.len();
        if live.len() < count {
            for (i, e) in live.iter().enumerate() {
                put_entry(payload, i, *e);
            }
            layout::read_mut::<UnindexedHeader>(payload, 0).count = live.len() as u32;
            batch.commit();
            crate::failpoint::hit("unindexed_page_vacuumed");
        }
        block = (next != INVALID_BLOCK && next != 0).then_some(next);
    }
    Ok((removed, kept))
}

/// A link of the list of unindexed rows that names another kind of page.
fn not_unindexed(rel: Index, block: u32) -> crate::error::SqlError {
    super::buffer::corrupt(
        rel,
        format_args!("block {block} is in the list of unindexed rows but is not one of its pages"),
    )
}
