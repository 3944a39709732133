//! The pending list: rows `aminsert` acknowledged that are not in the graph
//! yet (layout in [`super::layout`]).
//!
//! Locking, to stay deadlock-free with buffer locks (which have no deadlock
//! detection): a pending page is always locked before the metapage, never
//! after. Appenders lock the tail page, and the metapage only to chain a
//! new page. Readers hold one share lock at a time.

use super::buffer::{self, chain_error, Block, PageRead, WalBatch};
use super::filter::{read_words, write_words};
use super::layout::{
    self, EntryShape, Meta, PageKind, PendingEntry, PendingHeader, Tid, INVALID_BLOCK,
    MERGE_REQUEST_SECS, META_BLOCK, PENDING_DEAD, PENDING_HEADER, PENDING_MERGED,
};
use super::meta::{put_meta, read_meta};
use super::Index;
use crate::error::SqlResult;
use pgrx::pg_sys;
use vdb_core::hnsw::Point;

/// Times a reader starts over because the list moved under it before it
/// gives up: far more than merges can cause, so only a corrupt list (whose
/// sequence numbers never match) gets there.
const MAX_RESTARTS: usize = 10_000;

/// Where an entry lives: its page and its index in the page.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct EntryRef {
    pub block: Block,
    pub slot: usize,
}

/// A pending entry copied out for merging.
#[derive(Debug, Clone)]
pub struct Item {
    pub at: EntryRef,
    pub tid: Tid,
    pub point: Point,
    /// Filter words (composite indexes; empty otherwise).
    pub words: Vec<u64>,
}

/// One entry as [`for_each`] reads it, borrowed from its page.
pub struct Row<'a> {
    pub at: EntryRef,
    pub tid: Tid,
    pub vec: &'a [f32],
    pub aux: f32,
    pub flags: u16,
    words: &'a [u8],
}

impl Row<'_> {
    /// The entry's filter words (NULL flags first).
    pub fn words(&self) -> Vec<u64> {
        read_words(self.words, 0, self.words.len() / 8).collect()
    }

    /// Fills `out` with the filter words (no allocation once sized).
    pub fn words_into(&self, out: &mut Vec<u64>) {
        out.clear();
        out.extend(read_words(self.words, 0, self.words.len() / 8));
    }
}

/// What an append saw.
#[derive(Debug, Clone, Copy)]
pub struct Appended {
    /// The list was empty before this entry.
    pub was_empty: bool,
    /// This entry started a new page.
    pub new_page: bool,
    /// Bytes of the pages the list spans (see [`bytes`]).
    pub bytes: usize,
    /// This append started the list or a page of it and no merge-worker
    /// request stands: the caller asks for one (see [`claim_request`]).
    pub ask_worker: bool,
}

/// Whether an appender that started the list or a page of it should ask
/// for a merge worker: only if no request made in the last
/// [`MERGE_REQUEST_SECS`] stands. Records the request in `meta` (the
/// locked metapage copy the caller writes back), so that of the backends
/// appending meanwhile one asks, not each (a dynamic worker takes a
/// moment to start and show that it runs).
fn claim_request(meta: &mut Meta) -> bool {
    // SAFETY: GetCurrentTimestamp only reads the clock.
    let now = (unsafe { pg_sys::GetCurrentTimestamp() } / 1_000_000).max(1) as u32;
    if meta.merge_requested != 0 && now.wrapping_sub(meta.merge_requested) < MERGE_REQUEST_SECS {
        return false;
    }
    meta.merge_requested = now;
    true
}

/// Withdraws the standing merge-worker request: a worker calls this when
/// it ends, before it looks at the list a last time, so an append after
/// that look asks for a new worker.
pub fn withdraw_request(rel: Index) {
    let mut batch = WalBatch::start(rel);
    let m = batch.page(META_BLOCK, None);
    let mut meta = *layout::read::<Meta>(layout::payload(batch.bytes(m)), 0);
    if meta.merge_requested == 0 {
        return; // nothing to write: the batch is dropped unwritten
    }
    meta.merge_requested = 0;
    put_meta(batch.bytes_mut(m), &meta);
    batch.commit();
}

/// Bytes of the pages the list spans, from the metapage: what every scan
/// reads, and what the list holds of the relation (a page is recycled
/// only once every entry on it is done).
pub fn bytes(meta: &Meta) -> usize {
    if meta.pending_head == INVALID_BLOCK {
        return 0;
    }
    let pages = meta.next_pending_seq.wrapping_sub(meta.pending_head_seq) as usize;
    pages * pg_sys::BLCKSZ as usize
}

/// Upper bound of the entries in the list, from the metapage.
pub fn estimate(meta: &Meta) -> usize {
    if meta.pending_head == INVALID_BLOCK {
        return 0;
    }
    let pages = meta.next_pending_seq.wrapping_sub(meta.pending_head_seq) as usize;
    (pages * EntryShape::of(meta).per_page()).saturating_sub(meta.pending_done as usize)
}

fn entry_offset(shape: EntryShape, slot: usize) -> usize {
    PENDING_HEADER + slot * shape.size()
}

/// What an append writes: the row's prepared point, TID and filter words.
#[derive(Clone, Copy)]
pub struct NewEntry<'a> {
    pub point: &'a Point,
    pub tid: Tid,
    pub words: &'a [u64],
}

fn write_entry(payload: &mut [u8], shape: EntryShape, slot: usize, new: NewEntry<'_>) {
    let at = entry_offset(shape, slot);
    *layout::read_mut::<PendingEntry>(payload, at) = PendingEntry {
        flags: 0,
        tid: new.tid,
        aux: new.point.aux,
    };
    write_words(
        payload,
        at + shape.words_offset(),
        &new.words[..shape.words],
    );
    layout::slice_mut::<f32>(payload, at + shape.vector_offset(), shape.dims)
        .copy_from_slice(&new.point.vec);
}

/// A fresh pending page in `batch` with sequence number `seq`, holding
/// `new` as its first entry.
fn start_page(batch: &mut WalBatch, block: Block, seq: u32, shape: EntryShape, new: NewEntry<'_>) {
    let i = batch.page(block, Some(PageKind::Pending));
    let page = batch.bytes_mut(i);
    let payload = layout::payload_mut(page);
    *layout::read_mut::<PendingHeader>(payload, 0) = PendingHeader {
        seq,
        count: 1,
        done: 0,
    };
    write_entry(payload, shape, 0, new);
}

/// A page for a new tail: a recycled one, or a new one at the end of the
/// relation. The caller holds the metapage (exclusively, in `batch`).
fn take_page(rel: Index, meta: &mut Meta) -> Block {
    if meta.pending_free != INVALID_BLOCK {
        let block = meta.pending_free;
        meta.pending_free = layout::opaque(PageRead::new(rel, block).bytes()).next;
        block
    } else {
        buffer::extend(rel, 1)
    }
}

/// Appends a prepared point for a heap row to the list.
pub fn append(rel: Index, new: NewEntry<'_>) -> SqlResult<Appended> {
    for _ in 0..MAX_RESTARTS {
        pgrx::check_for_interrupts!();
        let meta = read_meta(rel)?;
        let shape = EntryShape::of(&meta);
        if shape.dims != new.point.vec.len() || new.words.len() < shape.words {
            return Err(crate::error::SqlError::internal(
                "vhnsw: a pending entry of another shape than the index's",
            ));
        }
        let per_page = shape.per_page();
        if meta.pending_tail == INVALID_BLOCK {
            // Empty list: lock the metapage first (the new page is ours).
            let mut batch = WalBatch::start(rel);
            let m = batch.page(META_BLOCK, None);
            let mut meta = *layout::read::<Meta>(layout::payload(batch.bytes(m)), 0);
            if meta.pending_tail != INVALID_BLOCK {
                continue; // someone else started the list: retry as a tail append
            }
            let block = take_page(rel, &mut meta);
            let seq = meta.next_pending_seq;
            start_page(&mut batch, block, seq, shape, new);
            meta.next_pending_seq = seq.wrapping_add(1);
            meta.pending_head = block;
            meta.pending_tail = block;
            meta.pending_head_seq = seq;
            let ask_worker = claim_request(&mut meta);
            put_meta(batch.bytes_mut(m), &meta);
            batch.commit();
            return Ok(Appended {
                was_empty: true,
                new_page: true,
                bytes: bytes(&meta),
                ask_worker,
            });
        }

        let mut batch = WalBatch::start(rel);
        let t = batch.page(meta.pending_tail, None);
        let tail = batch.bytes(t);
        let header = *layout::read::<PendingHeader>(layout::payload(tail), 0);
        // Still the tail we read from the metapage? The tail always holds
        // the newest sequence number; a page chained past, recycled (its
        // number cleared) or reused since has another.
        if layout::opaque(tail).kind != PageKind::Pending as u16
            || layout::opaque(tail).next != INVALID_BLOCK
            || header.seq != meta.next_pending_seq.wrapping_sub(1)
        {
            continue; // re-read the metapage
        }
        if usize::from(header.count) < per_page {
            let payload = layout::payload_mut(batch.bytes_mut(t));
            write_entry(payload, shape, usize::from(header.count), new);
            layout::read_mut::<PendingHeader>(payload, 0).count += 1;
            // Every earlier entry merged (or dead): the list was empty
            // (a hint: `meta` was read before the tail was locked).
            let was_empty = meta.pending_head == meta.pending_tail && header.done == header.count;
            let mut ask_worker = false;
            if was_empty {
                // Tail page, then metapage: the lock order.
                let m = batch.page(META_BLOCK, None);
                let mut locked = *layout::read::<Meta>(layout::payload(batch.bytes(m)), 0);
                ask_worker = claim_request(&mut locked);
                if ask_worker {
                    put_meta(batch.bytes_mut(m), &locked);
                }
            }
            batch.commit();
            return Ok(Appended {
                was_empty,
                new_page: false,
                bytes: bytes(&meta),
                ask_worker,
            });
        }

        // The tail is full: chain a new page (tail page, then metapage).
        let m = batch.page(META_BLOCK, None);
        let mut meta = *layout::read::<Meta>(layout::payload(batch.bytes(m)), 0);
        let was_empty = meta.pending_head == meta.pending_tail && header.done == header.count;
        let block = take_page(rel, &mut meta);
        let seq = meta.next_pending_seq;
        start_page(&mut batch, block, seq, shape, new);
        layout::opaque_mut(batch.bytes_mut(t)).next = block;
        meta.next_pending_seq = seq.wrapping_add(1);
        meta.pending_tail = block;
        let ask_worker = claim_request(&mut meta);
        put_meta(batch.bytes_mut(m), &meta);
        batch.commit();
        return Ok(Appended {
            was_empty,
            new_page: true,
            bytes: bytes(&meta),
            ask_worker,
        });
    }
    Err(chain_error(rel, "pending list", META_BLOCK))
}

/// What [`walk`] hands its callback.
pub enum Visit<'a> {
    Row(Row<'a>),
    /// The list moved under the reader (a page recycled): the walk starts
    /// over from the new head, and what it handed out so far is to be
    /// forgotten.
    Restart,
}

/// Calls `f` with every entry of the list, page by page under a share
/// lock. If the list moves under the reader, it starts over from the new
/// head: `f` may see an entry twice, and callers keep what they need by
/// TID (or use [`walk`], which says when it starts over).
pub fn for_each(rel: Index, shape: EntryShape, mut f: impl FnMut(Row<'_>)) -> SqlResult<()> {
    walk(rel, shape, |visit| {
        if let Visit::Row(row) = visit {
            f(row);
        }
    })
}

/// [`for_each`] that tells `f` when it starts over, so that a reader
/// which keeps every entry (a scan) needs no set of those already seen.
pub fn walk(rel: Index, shape: EntryShape, mut f: impl FnMut(Visit<'_>)) -> SqlResult<()> {
    let mut restarts = 0;
    // The page that sent the walk back to the start last time: a damaged
    // one does so every time.
    let mut suspect = META_BLOCK;
    'restart: loop {
        restarts += 1;
        if restarts > MAX_RESTARTS {
            return Err(chain_error(rel, "pending list", suspect));
        }
        if restarts > 1 {
            f(Visit::Restart);
        }
        pgrx::check_for_interrupts!();
        let meta = read_meta(rel)?;
        let mut block = meta.pending_head;
        let mut seq = meta.pending_head_seq;
        // A list longer than the relation loops: a corrupt index.
        let mut budget = buffer::block_count(rel);
        let mut walked: u32 = 0;
        while block != INVALID_BLOCK {
            if budget == 0 {
                // Appenders may have added pages since: only a walk longer
                // than the relation is now is a loop.
                budget = buffer::block_count(rel).saturating_sub(walked);
                if budget == 0 {
                    return Err(chain_error(rel, "pending list", block));
                }
            }
            budget -= 1;
            walked += 1;
            if budget.is_multiple_of(64) {
                pgrx::check_for_interrupts!();
            }
            let page = PageRead::new(rel, block);
            let bytes = page.bytes();
            let header = *layout::read::<PendingHeader>(layout::payload(bytes), 0);
            if layout::opaque(bytes).kind != PageKind::Pending as u16 || header.seq != seq {
                suspect = block;
                continue 'restart;
            }
            if usize::from(header.count) > shape.per_page() || header.done > header.count {
                return Err(buffer::corrupt(
                    rel,
                    format_args!(
                        "the pending page at block {block} says it holds {} entries ({} done), it has room for {}",
                        header.count,
                        header.done,
                        shape.per_page()
                    ),
                ));
            }
            let payload = layout::payload(bytes);
            for slot in 0..usize::from(header.count) {
                let at = entry_offset(shape, slot);
                let entry = layout::read::<PendingEntry>(payload, at);
                // Only a live entry's row must exist: VACUUM may have
                // truncated the table past the rows of done entries.
                if is_live(entry.flags) {
                    buffer::check_tid(rel, entry.tid, || {
                        format!("the pending page at block {block}")
                    })?;
                }
                let words = at + shape.words_offset();
                f(Visit::Row(Row {
                    at: EntryRef { block, slot },
                    tid: entry.tid,
                    vec: layout::slice::<f32>(payload, at + shape.vector_offset(), shape.dims),
                    aux: entry.aux,
                    flags: entry.flags,
                    words: &payload[words..words + 8 * shape.words],
                }));
            }
            block = layout::opaque(bytes).next;
            seq = seq.wrapping_add(1);
        }
        return Ok(());
    }
}

/// Up to `max` entries not yet merged nor dead: the oldest, up to half
/// of `max`, then a uniform sample of the rest of the list (a reservoir
/// seeded with `seed`).
///
/// Rows often arrive grouped (a bulk load in table order, one tenant or
/// topic after another); merging them in arrival order builds an HNSW
/// graph whose early groups barely link to later ones, and searches then
/// miss whole groups. Drawing from everything pending mixes them, as the
/// random insertion order of `CREATE INDEX` does. The oldest entries go
/// first all the same: only a page with every entry done is recycled, and
/// a list merged only at random keeps a few live entries on every page, so
/// it would span ever more pages (each read by every scan, none returned
/// for reuse) while the rows it holds stay few.
pub fn collect(rel: Index, shape: EntryShape, max: usize, seed: u64) -> SqlResult<Vec<Item>> {
    let oldest = max / 2;
    let mut items: Vec<Item> = Vec::new();
    let mut seen = std::collections::HashSet::new();
    // Live entries offered to the reservoir (after the oldest).
    let mut live = 0u64;
    let mut state = seed;
    for_each(rel, shape, |row| {
        if max == 0 || row.flags != 0 || !seen.insert(row.at) {
            return;
        }
        let slot = if items.len() < oldest {
            items.len()
        } else {
            live += 1;
            if items.len() < max {
                items.len()
            } else {
                state = vdb_core::hnsw::splitmix64(state);
                let j = (state % live) as usize;
                if j >= max - oldest {
                    return;
                }
                oldest + j
            }
        };
        let item = Item {
            at: row.at,
            tid: row.tid,
            point: Point {
                vec: row.vec.to_vec(),
                aux: row.aux,
            },
            words: row.words(),
        };
        if slot == items.len() {
            items.push(item);
        } else {
            items[slot] = item;
        }
    })?;
    Ok(items)
}

/// Flags entry `at` in `batch` (which must hold its page): merged or dead.
pub fn mark(batch: &mut WalBatch, at: EntryRef, shape: EntryShape, flag: u16) {
    let i = batch.page(at.block, None);
    let payload = layout::payload_mut(batch.bytes_mut(i));
    let entry = layout::read_mut::<PendingEntry>(payload, entry_offset(shape, at.slot));
    if entry.flags == 0 {
        entry.flags = flag;
        layout::read_mut::<PendingHeader>(payload, 0).done += 1;
    }
}

/// Adds `n` to the metapage's count of done entries (the caller holds the
/// graph lock, which every writer of that count holds).
pub fn add_done(rel: Index, n: usize) {
    if n == 0 {
        return;
    }
    let mut batch = WalBatch::start(rel);
    let m = batch.page(META_BLOCK, None);
    let mut meta = *layout::read::<Meta>(layout::payload(batch.bytes(m)), 0);
    meta.pending_done = meta.pending_done.saturating_add(n as u32);
    put_meta(batch.bytes_mut(m), &meta);
    batch.commit();
}

/// Recycles fully done pages at the head of the list (never the tail,
/// which appenders may be writing). Returns how many pages were freed.
pub fn recycle_head(rel: Index) -> SqlResult<usize> {
    let mut freed = 0;
    loop {
        pgrx::check_for_interrupts!();
        let meta = read_meta(rel)?;
        let head = meta.pending_head;
        if head == INVALID_BLOCK || head == meta.pending_tail {
            return Ok(freed);
        }
        // Head page first, then the metapage.
        let mut batch = WalBatch::start(rel);
        let h = batch.page(head, None);
        let header = *layout::read::<PendingHeader>(layout::payload(batch.bytes(h)), 0);
        if header.done < header.count {
            return Ok(freed);
        }
        let next = layout::opaque(batch.bytes(h)).next;
        let m = batch.page(META_BLOCK, None);
        let mut meta = *layout::read::<Meta>(layout::payload(batch.bytes(m)), 0);
        if meta.pending_head != head {
            continue;
        }
        meta.pending_head = next;
        meta.pending_head_seq = header.seq.wrapping_add(1);
        meta.pending_done = meta.pending_done.saturating_sub(u32::from(header.done));
        // Off the list: its sequence number no longer matches any reader's.
        layout::read_mut::<PendingHeader>(layout::payload_mut(batch.bytes_mut(h)), 0).seq =
            u32::MAX;
        layout::opaque_mut(batch.bytes_mut(h)).next = meta.pending_free;
        meta.pending_free = head;
        put_meta(batch.bytes_mut(m), &meta);
        batch.commit();
        freed += 1;
    }
}

/// Flags entries whose heap row `is_dead` says is gone. Returns (removed,
/// kept) counts of live entries.
pub fn bulk_delete(
    rel: Index,
    shape: EntryShape,
    mut is_dead: impl FnMut(Tid) -> bool,
) -> SqlResult<(usize, usize)> {
    let mut dead: Vec<EntryRef> = Vec::new();
    let mut kept = 0;
    let mut seen = std::collections::HashSet::new();
    for_each(rel, shape, |row| {
        if row.flags == 0 && seen.insert(row.at) {
            if is_dead(row.tid) {
                dead.push(row.at);
            } else {
                kept += 1;
            }
        }
    })?;
    for chunk in dead.chunk_by(|a, b| a.block == b.block) {
        let mut batch = WalBatch::start(rel);
        for &at in chunk {
            mark(&mut batch, at, shape, PENDING_DEAD);
        }
        batch.commit();
    }
    add_done(rel, dead.len());
    // Pages left with nothing live go back for reuse now: without a merge
    // worker (or before it runs) nothing else would recycle them, and the
    // next rows would extend the index instead.
    recycle_head(rel)?;
    Ok((dead.len(), kept))
}

/// Entries not yet merged nor dead (exact, by reading the list).
pub fn live_count(rel: Index, shape: EntryShape) -> SqlResult<usize> {
    let mut seen = std::collections::HashSet::new();
    let mut n = 0;
    for_each(rel, shape, |row| {
        if row.flags == 0 && seen.insert(row.at) {
            n += 1;
        }
    })?;
    Ok(n)
}

/// Whether `flags` marks an entry that is still pending.
pub fn is_live(flags: u16) -> bool {
    flags & (PENDING_MERGED | PENDING_DEAD) == 0
}
