//! Buffer access with RAII guards: the only way vdb reads or writes an
//! index page.
//!
//! - [`PageRead`]: a pinned, share-locked page, released on drop.
//! - [`WalBatch`]: up to four pages changed together under one generic WAL
//!   record. Pages are only writable through it; [`WalBatch::commit`]
//!   logs and applies the changes, and dropping an uncommitted batch
//!   (early return, `?`, panic, or an `ERROR` unwinding through Rust)
//!   aborts the record and leaves the pages untouched. A page change that
//!   is not WAL-logged cannot be written.
//! - [`BulkWriter`]: `CREATE INDEX` appends pages sequentially and logs
//!   them as full-page images in batches, as `log_newpage_range` does.
//!
//! All `unsafe` of the index lives here and in the AM callbacks' entry
//! points.

use super::layout::{self, PageKind, BLCKSZ, SPECIAL};
use super::Index;
use pgrx::pg_sys;

pub type Block = u32;

/// `InvalidSubTransactionId` (not exported by pg_sys).
const INVALID_SUB_TRANSACTION_ID: pg_sys::SubTransactionId = 0;

/// Whether changes to `rel` must be WAL-logged (PostgreSQL's
/// `RelationNeedsWAL`).
pub fn needs_wal(rel: Index) -> bool {
    // SAFETY: rel is an open relation; rd_rel is always set.
    unsafe {
        let r = &*rel.raw();
        let permanent =
            (*r.rd_rel).relpersistence == pg_sys::RELPERSISTENCE_PERMANENT as std::ffi::c_char;
        let wal_needed = pg_sys::wal_level >= pg_sys::WalLevel::WAL_LEVEL_REPLICA as i32;
        permanent
            && (wal_needed
                || (r.rd_createSubid == INVALID_SUB_TRANSACTION_ID
                    && r.rd_firstRelfilenodeSubid == INVALID_SUB_TRANSACTION_ID))
    }
}

/// Number of blocks in the relation's main fork.
pub fn block_count(rel: Index) -> Block {
    // SAFETY: rel is an open relation.
    unsafe { pg_sys::RelationGetNumberOfBlocksInFork(rel.raw(), pg_sys::ForkNumber::MAIN_FORKNUM) }
}

/// Pins `block`. A block number read from a page or a metapage snapshot
/// is never `InvalidBlockNumber` in a sound index; passed to ReadBuffer it
/// would extend the relation (even on a standby), so it is an ERROR here.
fn read_buffer(rel: Index, block: Block) -> pg_sys::Buffer {
    let node = recent::key(rel);
    if let Some(buffer) = node.and_then(|node| recent::pin(node, block)) {
        LAST_READ.with(|l| l.set(block));
        return buffer;
    }
    check_in_range(rel, block);
    LAST_READ.with(|l| l.set(block));
    // SAFETY: rel is open; ReadBufferExtended raises ERROR for a block
    // beyond the end of the relation.
    let buffer = unsafe {
        pg_sys::ReadBufferExtended(
            rel.raw(),
            pg_sys::ForkNumber::MAIN_FORKNUM,
            block,
            pg_sys::ReadBufferMode::RBM_NORMAL,
            std::ptr::null_mut(),
        )
    };
    if let Some(node) = node {
        recent::remember(node, block, buffer);
    }
    buffer
}

/// Where this backend last found each block of the indexes it reads: a
/// search visits the same pages query after query, and pinning a block
/// through `ReadRecentBuffer` (which checks that the buffer still holds
/// it) skips the lookup in the shared buffer mapping table, a third of a
/// search's time on 384-d data.
mod recent {
    use super::Block;
    use crate::storage::Index;
    use pgrx::pg_sys;
    use std::cell::RefCell;

    /// Indexes remembered at once (least recently read forgotten first).
    const INDEXES: usize = 4;
    /// Blocks remembered per index: 4 bytes each, so at most 16 MiB
    /// (a 32 GiB index); blocks past it go through the lookup.
    const BLOCKS: usize = 1 << 22;

    struct Memo {
        node: pg_sys::RelFileNode,
        buffers: Vec<pg_sys::Buffer>,
    }

    thread_local! {
        static MEMOS: RefCell<Vec<Memo>> = const { RefCell::new(Vec::new()) };
    }

    fn same(a: &pg_sys::RelFileNode, b: &pg_sys::RelFileNode) -> bool {
        a.spcNode == b.spcNode && a.dbNode == b.dbNode && a.relNode == b.relNode
    }

    /// The relation's key, or `None` if its pages are not remembered
    /// (temporary relations live in local buffers).
    pub(super) fn key(rel: Index) -> Option<pg_sys::RelFileNode> {
        // SAFETY: rel is an open relation; rd_rel and rd_node are set.
        unsafe {
            let r = &*rel.raw();
            ((*r.rd_rel).relpersistence != pg_sys::RELPERSISTENCE_TEMP as std::ffi::c_char)
                .then_some(r.rd_node)
        }
    }

    /// The block pinned in the buffer it was last found in, if it is
    /// still there.
    pub(super) fn pin(node: pg_sys::RelFileNode, block: Block) -> Option<pg_sys::Buffer> {
        let buffer = MEMOS.with(|m| {
            m.borrow()
                .iter()
                .find(|memo| same(&memo.node, &node))
                .and_then(|memo| memo.buffers.get(block as usize).copied())
        })?;
        if buffer == 0 {
            return None; // InvalidBuffer: not seen yet
        }
        // SAFETY: a shared buffer id this backend got from ReadBuffer;
        // ReadRecentBuffer pins it only if it still holds this block, and
        // raises nothing for a recycled one.
        unsafe { pg_sys::ReadRecentBuffer(node, pg_sys::ForkNumber::MAIN_FORKNUM, block, buffer) }
            .then_some(buffer)
    }

    pub(super) fn remember(node: pg_sys::RelFileNode, block: Block, buffer: pg_sys::Buffer) {
        let at = block as usize;
        if at >= BLOCKS || buffer <= 0 {
            return;
        }
        MEMOS.with(|m| {
            let mut memos = m.borrow_mut();
            let i = match memos.iter().position(|memo| same(&memo.node, &node)) {
                Some(i) => i,
                None => {
                    if memos.len() == INDEXES {
                        memos.remove(0);
                    }
                    memos.push(Memo {
                        node,
                        buffers: Vec::new(),
                    });
                    memos.len() - 1
                }
            };
            // Most recently read last.
            let memo = memos.remove(i);
            memos.push(memo);
            let Some(memo) = memos.last_mut() else {
                return;
            };
            let buffers = &mut memo.buffers;
            if buffers.len() <= at {
                buffers.resize((at + 1).next_power_of_two().min(BLOCKS), 0);
            }
            buffers[at] = buffer;
        });
    }
}

/// Pins a new page at the end of the relation (the caller holds the
/// relation extension lock, or is the only writer of a new index).
fn new_buffer(rel: Index) -> pg_sys::Buffer {
    // SAFETY: rel is open; P_NEW (InvalidBlockNumber) extends it by one
    // zeroed page and returns it pinned.
    unsafe {
        pg_sys::ReadBufferExtended(
            rel.raw(),
            pg_sys::ForkNumber::MAIN_FORKNUM,
            pg_sys::InvalidBlockNumber,
            pg_sys::ReadBufferMode::RBM_NORMAL,
            std::ptr::null_mut(),
        )
    }
}

/// A pinned, share-locked page.
pub struct PageRead {
    buffer: pg_sys::Buffer,
}

impl PageRead {
    pub fn new(rel: Index, block: Block) -> PageRead {
        let buffer = read_buffer(rel, block);
        // SAFETY: the buffer is pinned by us.
        unsafe { pg_sys::LockBuffer(buffer, pg_sys::BUFFER_LOCK_SHARE as i32) };
        PageRead { buffer }
    }

    /// The page's bytes, valid while the guard lives.
    pub fn bytes(&self) -> &[u8] {
        // SAFETY: the buffer is pinned and share-locked for the guard's
        // lifetime, so its BLCKSZ bytes are readable and nobody writes them.
        unsafe {
            std::slice::from_raw_parts(pg_sys::BufferGetPage(self.buffer).cast::<u8>(), BLCKSZ)
        }
    }

    /// The position in the WAL of the page's last change.
    pub fn lsn(&self) -> u64 {
        // pd_lsn leads every page: two native-endian halves, high first.
        let b = self.bytes();
        let half = |i: usize| u64::from(u32::from_ne_bytes([b[i], b[i + 1], b[i + 2], b[i + 3]]));
        (half(0) << 32) | half(4)
    }
}

impl Drop for PageRead {
    fn drop(&mut self) {
        // SAFETY: we hold the pin and the share lock.
        unsafe { pg_sys::UnlockReleaseBuffer(self.buffer) };
    }
}

/// A pinned page, not locked: its memory stays put, so its bytes can be
/// prefetched, but they can only be read after [`Pinned::lock`]. A search
/// pins a whole hop's pages first, so that their memory loads overlap.
pub struct Pinned {
    buffer: pg_sys::Buffer,
}

impl Pinned {
    pub fn new(rel: Index, block: Block) -> Pinned {
        Pinned {
            buffer: read_buffer(rel, block),
        }
    }

    /// Starts loading `len` bytes at `offset` of the page into the CPU cache.
    pub fn prefetch(&self, offset: usize, len: usize) {
        // SAFETY: a pinned buffer's page address is stable; a prefetch only
        // hints the cache and reads nothing.
        #[cfg(target_arch = "x86_64")]
        unsafe {
            use std::arch::x86_64::{_mm_prefetch, _MM_HINT_T0};
            let page = pg_sys::BufferGetPage(self.buffer).cast::<i8>();
            for line in (offset..(offset + len).min(BLCKSZ)).step_by(64) {
                _mm_prefetch::<_MM_HINT_T0>(page.add(line));
            }
        }
        #[cfg(not(target_arch = "x86_64"))]
        let _ = (offset, len);
    }

    /// Share-locks the page for reading; unlocked when the guard drops.
    pub fn lock(&self) -> PinnedRead<'_> {
        // SAFETY: we hold the pin.
        unsafe { pg_sys::LockBuffer(self.buffer, pg_sys::BUFFER_LOCK_SHARE as i32) };
        PinnedRead { pinned: self }
    }
}

impl Drop for Pinned {
    fn drop(&mut self) {
        // SAFETY: we hold the pin (and no lock: PinnedRead unlocks on drop).
        unsafe { pg_sys::ReleaseBuffer(self.buffer) };
    }
}

/// A share lock on a [`Pinned`] page.
pub struct PinnedRead<'a> {
    pinned: &'a Pinned,
}

impl PinnedRead<'_> {
    pub fn bytes(&self) -> &[u8] {
        // SAFETY: the buffer is pinned and share-locked while this lives.
        unsafe {
            std::slice::from_raw_parts(
                pg_sys::BufferGetPage(self.pinned.buffer).cast::<u8>(),
                BLCKSZ,
            )
        }
    }
}

impl Drop for PinnedRead<'_> {
    fn drop(&mut self) {
        // SAFETY: we took the share lock in Pinned::lock.
        unsafe { pg_sys::LockBuffer(self.pinned.buffer, pg_sys::BUFFER_LOCK_UNLOCK as i32) };
    }
}

/// Extends the relation by `n` zeroed pages under the relation extension
/// lock (so they are contiguous) and returns the first new block. The pages
/// stay uninitialised until first written through a [`WalBatch`].
pub fn extend(rel: Index, n: u32) -> Block {
    let mut first = layout::INVALID_BLOCK;
    // SAFETY: the extension lock serialises P_NEW extensions of rel; each
    // new buffer comes back pinned and is released at once.
    unsafe {
        pg_sys::LockRelationForExtension(rel.raw(), pg_sys::ExclusiveLock as i32);
        for i in 0..n {
            let buffer = new_buffer(rel);
            if i == 0 {
                first = pg_sys::BufferGetBlockNumber(buffer);
            }
            pg_sys::ReleaseBuffer(buffer);
        }
        pg_sys::UnlockRelationForExtension(rel.raw(), pg_sys::ExclusiveLock as i32);
    }
    first
}

/// Pages modified together under one generic WAL record.
pub struct WalBatch {
    rel: Index,
    state: *mut pg_sys::GenericXLogState,
    buffers: Vec<pg_sys::Buffer>,
    pages: Vec<*mut u8>,
    finished: bool,
}

/// Most buffers one generic WAL record can cover (`MAX_GENERIC_XLOG_PAGES`).
pub const MAX_BATCH_PAGES: usize = 4;

impl WalBatch {
    pub fn start(rel: Index) -> WalBatch {
        // SAFETY: rel is an open index relation.
        let state = unsafe { pg_sys::GenericXLogStart(rel.raw()) };
        WalBatch {
            rel,
            state,
            buffers: Vec::new(),
            pages: Vec::new(),
            finished: false,
        }
    }

    /// Locks `block` exclusively and adds it to the record; returns its
    /// index in the batch (registering a block twice returns the same
    /// index). With `init`, the page is (re)initialised as that kind and
    /// logged as a full image.
    pub fn page(&mut self, block: Block, init: Option<PageKind>) -> usize {
        self.register(block, init, false)
    }

    /// Like [`page`](Self::page), initialising the page as `kind` (with a
    /// full image) only if it was never initialised: fresh from relation
    /// extension, or zeroed by a crash before its first write reached WAL.
    pub fn page_init_if_new(&mut self, block: Block, kind: PageKind) -> usize {
        self.register(block, Some(kind), true)
    }

    fn register(&mut self, block: Block, init: Option<PageKind>, only_if_new: bool) -> usize {
        // SAFETY: buffers are pinned and exclusively locked before being
        // registered, and stay so until finish/abort (Drop).
        unsafe {
            if let Some(i) = self
                .buffers
                .iter()
                .position(|&b| pg_sys::BufferGetBlockNumber(b) == block)
            {
                assert!(
                    init.is_none(),
                    "a page is initialised when first registered"
                );
                return i;
            }
            assert!(
                self.buffers.len() < MAX_BATCH_PAGES,
                "a generic WAL record covers at most 4 pages"
            );
            let buffer = read_buffer(self.rel, block);
            pg_sys::LockBuffer(buffer, pg_sys::BUFFER_LOCK_EXCLUSIVE as i32);
            // Generic WAL fixes a buffer's flags when it is registered, so
            // decide now whether the record carries a full image.
            let current =
                std::slice::from_raw_parts(pg_sys::BufferGetPage(buffer).cast::<u8>(), BLCKSZ);
            let init = init.filter(|_| !only_if_new || layout::is_new(current));
            let flags = if init.is_some() {
                pg_sys::GENERIC_XLOG_FULL_IMAGE as i32
            } else {
                0
            };
            let page = pg_sys::GenericXLogRegisterBuffer(self.state, buffer, flags).cast::<u8>();
            self.buffers.push(buffer);
            self.pages.push(page);
            if let Some(kind) = init {
                init_page(page, kind);
            }
            self.buffers.len() - 1
        }
    }

    /// Pages registered so far.
    pub fn len(&self) -> usize {
        self.buffers.len()
    }

    pub fn is_empty(&self) -> bool {
        self.buffers.is_empty()
    }

    pub fn bytes(&self, i: usize) -> &[u8] {
        // SAFETY: pages[i] is GenericXLog's BLCKSZ-byte working copy of an
        // exclusively locked buffer, owned by this batch.
        unsafe { std::slice::from_raw_parts(self.pages[i], BLCKSZ) }
    }

    pub fn bytes_mut(&mut self, i: usize) -> &mut [u8] {
        // SAFETY: as in bytes(); &mut self guarantees exclusive access.
        unsafe { std::slice::from_raw_parts_mut(self.pages[i], BLCKSZ) }
    }

    /// WAL-logs the changes and applies them to the buffers; returns the
    /// record's end (0 for a relation that is not WAL-logged).
    pub fn commit(mut self) -> u64 {
        // SAFETY: state is live and every registered buffer is still locked.
        let lsn = unsafe { pg_sys::GenericXLogFinish(self.state) };
        self.finished = true;
        lsn
    }
}

impl Drop for WalBatch {
    fn drop(&mut self) {
        // SAFETY: an unfinished state is aborted (discarding the working
        // copies); then the locks and pins taken in `page` are released.
        unsafe {
            if !self.finished {
                pg_sys::GenericXLogAbort(self.state);
            }
            for &b in &self.buffers {
                pg_sys::UnlockReleaseBuffer(b);
            }
        }
    }
}

/// Initialises a page as an empty page of `kind`.
///
/// # Safety
/// `page` must point to BLCKSZ writable bytes.
unsafe fn init_page(page: *mut u8, kind: PageKind) {
    // SAFETY: (caller) page is a writable BLCKSZ-byte page image.
    unsafe {
        pg_sys::PageInit(page.cast(), BLCKSZ, SPECIAL);
        let bytes = std::slice::from_raw_parts_mut(page, BLCKSZ);
        *layout::opaque_mut(bytes) = layout::PageOpaque {
            kind: kind as u16,
            flags: 0,
            next: layout::INVALID_BLOCK,
        };
        // The whole payload is ours: keep it out of the FPI "hole".
        layout::set_pd_lower(bytes, layout::PAYLOAD);
    }
}

/// Appends pages to a new index during `CREATE INDEX`, WAL-logging them as
/// full-page images in runs of 32 (when the relation needs WAL).
pub struct BulkWriter {
    rel: Index,
    logged_up_to: Block,
    next: Block,
    wal: bool,
}

impl BulkWriter {
    /// The relation must be empty.
    pub fn new(rel: Index) -> BulkWriter {
        BulkWriter {
            rel,
            logged_up_to: 0,
            next: block_count(rel),
            wal: needs_wal(rel),
        }
    }

    /// The block the next `append` writes.
    pub fn next_block(&self) -> Block {
        self.next
    }

    /// Appends a page of `kind` filled by `fill`; returns its block.
    pub fn append(&mut self, kind: PageKind, fill: impl FnOnce(&mut [u8])) -> Block {
        let buffer = new_buffer(self.rel);
        // SAFETY: the new buffer is pinned; we lock it exclusively, fill
        // its page and mark it dirty before releasing it. The index is new
        // and locked by CREATE INDEX, so nobody else extends it.
        let block = unsafe {
            pg_sys::LockBuffer(buffer, pg_sys::BUFFER_LOCK_EXCLUSIVE as i32);
            let page = pg_sys::BufferGetPage(buffer).cast::<u8>();
            init_page(page, kind);
            fill(std::slice::from_raw_parts_mut(page, BLCKSZ));
            pg_sys::MarkBufferDirty(buffer);
            let block = pg_sys::BufferGetBlockNumber(buffer);
            pg_sys::UnlockReleaseBuffer(buffer);
            block
        };
        self.next = block + 1;
        if self.next - self.logged_up_to >= 32 {
            self.log_pending();
        }
        block
    }

    /// Rewrites an already appended page (the metapage, last).
    pub fn rewrite(&mut self, block: Block, fill: impl FnOnce(&mut [u8])) {
        let buffer = read_buffer(self.rel, block);
        // SAFETY: as in append; the page keeps its initialisation. The
        // change, MarkBufferDirty and its WAL record are one critical
        // section (START_CRIT_SECTION / END_CRIT_SECTION), as PostgreSQL
        // requires of a logged page change.
        unsafe {
            pg_sys::LockBuffer(buffer, pg_sys::BUFFER_LOCK_EXCLUSIVE as i32);
            pg_sys::CritSectionCount += 1;
            fill(std::slice::from_raw_parts_mut(
                pg_sys::BufferGetPage(buffer).cast::<u8>(),
                BLCKSZ,
            ));
            pg_sys::MarkBufferDirty(buffer);
            if self.wal && block < self.logged_up_to {
                pg_sys::log_newpage_buffer(buffer, true);
            }
            pg_sys::CritSectionCount -= 1;
            pg_sys::UnlockReleaseBuffer(buffer);
        }
    }

    fn log_pending(&mut self) {
        if self.wal && self.next > self.logged_up_to {
            // SAFETY: the pages in the range exist and are unlocked;
            // log_newpage_range locks each, logs a full image, sets its LSN.
            unsafe {
                pg_sys::log_newpage_range(
                    self.rel.raw(),
                    pg_sys::ForkNumber::MAIN_FORKNUM,
                    self.logged_up_to,
                    self.next,
                    true,
                )
            };
        }
        self.logged_up_to = self.next;
    }

    /// Logs whatever is not logged yet.
    pub fn finish(mut self) {
        self.log_pending();
    }
}

/// Starts loading every cache line of `bytes` at once, so that the misses
/// of a node slot (its vector and codes: 40-odd lines at 384 dimensions)
/// overlap instead of coming one after the other.
pub fn prefetch_bytes(bytes: &[u8]) {
    #[cfg(target_arch = "x86_64")]
    for line in bytes.chunks(64) {
        // SAFETY: a prefetch only hints the cache; the address is valid.
        unsafe {
            std::arch::x86_64::_mm_prefetch::<{ std::arch::x86_64::_MM_HINT_T0 }>(
                line.as_ptr().cast::<i8>(),
            )
        };
    }
    #[cfg(not(target_arch = "x86_64"))]
    let _ = bytes;
}

/// Damage found in `rel`: `what` names the block.
pub fn corrupt(rel: Index, what: impl std::fmt::Display) -> crate::error::SqlError {
    crate::error::SqlError::corrupt(&rel.name(), what)
}

/// The error for an on-disk chain longer than any sound index has;
/// `block` is where the walk gave up.
pub fn chain_error(rel: Index, what: &str, block: Block) -> crate::error::SqlError {
    corrupt(
        rel,
        format_args!("the {what} does not end (it loops through block {block})"),
    )
}

/// The block this backend read last: a damaged reference was read from
/// it (or from the metapage snapshot taken before it), so the error
/// about the reference names it.
fn last_read() -> Block {
    LAST_READ.with(std::cell::Cell::get)
}

thread_local! {
    static LAST_READ: std::cell::Cell<Block> = const { std::cell::Cell::new(pg_sys::InvalidBlockNumber) };
    /// The relation and its size in blocks when last measured: a block
    /// past it is measured again (the index may have grown) before it is
    /// called damage.
    static KNOWN_SIZE: std::cell::Cell<(pg_sys::Oid, Block)> = const { std::cell::Cell::new((pg_sys::InvalidOid, 0)) };
}

/// Raises the corruption error for a reference to `block`, which `rel`
/// does not have: PostgreSQL would report it as a file it cannot open,
/// or, for `InvalidBlockNumber`, extend the relation (even on a standby).
fn check_in_range(rel: Index, block: Block) {
    // SAFETY: rel is an open relation.
    let oid = unsafe { (*rel.raw()).rd_id };
    let (known_oid, known) = KNOWN_SIZE.with(std::cell::Cell::get);
    if known_oid == oid && block < known {
        return;
    }
    let size = block_count(rel);
    KNOWN_SIZE.with(|k| k.set((oid, size)));
    if block >= size {
        crate::fmgr::raise(corrupt(
            rel,
            format_args!(
                "block {} refers to block {block}, past its end ({size} blocks)",
                last_read()
            ),
        ));
    }
}

/// Most tuples a heap page holds (PostgreSQL's `MaxHeapTuplesPerPage` for
/// 8 kB pages): no heap TID has a larger offset.
const MAX_HEAP_TUPLES_PER_PAGE: u16 = 291;

thread_local! {
    /// A table and its size in blocks when last measured.
    static HEAP_SIZE: std::cell::Cell<(pg_sys::Oid, u32)> =
        const { std::cell::Cell::new((pg_sys::InvalidOid, 0)) };
}

/// Checks that `tid`, read from `rel` at `place` (e.g. "node 7 in block
/// 3"), can name a row of `rel`'s table: a damaged TID handed to the
/// executor would be reported as a file of the table PostgreSQL cannot
/// open, blaming the table. Tables of other access methods (Citus's
/// columnar, say, which numbers rows instead of placing them) are not
/// checked.
pub fn check_tid(
    rel: Index,
    tid: super::layout::Tid,
    place: impl FnOnce() -> String,
) -> crate::error::SqlResult<()> {
    let offset_ok = (1..=MAX_HEAP_TUPLES_PER_PAGE).contains(&tid.offset());
    // SAFETY: an open index has its pg_index row in rd_index.
    let table = unsafe { (*(*rel.raw()).rd_index).indrelid };
    let (known_oid, known) = HEAP_SIZE.with(std::cell::Cell::get);
    if offset_ok && known_oid == table && tid.block() < known {
        return Ok(());
    }
    // SAFETY: the table of an open index is locked at least as long as
    // the index; the reference taken here is given back at once.
    let size = unsafe {
        let heap = pg_sys::RelationIdGetRelation(table);
        if heap.is_null() {
            return Ok(());
        }
        let heap_am = (*(*heap).rd_rel).relam == pg_sys::HEAP_TABLE_AM_OID;
        let size = heap_am.then(|| {
            pg_sys::RelationGetNumberOfBlocksInFork(heap, pg_sys::ForkNumber::MAIN_FORKNUM)
        });
        pg_sys::RelationClose(heap);
        size
    };
    let Some(size) = size else {
        return Ok(());
    };
    HEAP_SIZE.with(|h| h.set((table, size)));
    if offset_ok && tid.block() < size {
        return Ok(());
    }
    Err(corrupt(
        rel,
        format_args!(
            "{} names row ({},{}), which its table of {size} blocks cannot have",
            place(),
            tid.block(),
            tid.offset()
        ),
    ))
}
