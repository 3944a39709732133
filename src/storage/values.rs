//! The value region of a composite index: every node's filter words again,
//! by column, densely, so a scan whose filter few nodes pass finds them by
//! reading one column (8 bytes a node) instead of every node slot.
//!
//! ```text
//! chunk k (node ids k·K .. (k+1)·K, K = VALUES_PER_PAGE): consecutive pages,
//!   `cols` Values pages, page c holding column c's words of those nodes: [u64; K]
//!   then, if the index has codes, `code_pages` Values pages of the nodes'
//!   own code entries around the origin (E = PAYLOAD / entry a page, in order)
//! directory (chain of ValueDir pages from `Meta::value_dir`):
//!   u32 count, then the first block of chunk 0, 1, ... [u32; DIR_ENTRIES]
//! ```
//!
//! The codes let an exact pass rank the passing nodes by estimate and
//! measure only those whose estimate could still beat a result, instead
//! of reading every passing node's slot.
//!
//! **The slot stays the truth.** A node's words are written here before
//! the record that publishes its slot (new or reused), and are never
//! cleared: a freed slot's, or one whose publishing record a crash cut
//! off, are stale. So the region can only say which nodes *may* pass; a
//! scan checks each candidate's slot (state and words) before it counts.
//! What must never happen, a published node whose words here fail where
//! its slot's pass, cannot: the words precede the publication in the WAL.
//! NULL values are stored as 0 (the slot's NULL flags rule them out).

use super::buffer::{self, chain_error, Block, BulkWriter, PageRead, WalBatch, MAX_BATCH_PAGES};
use super::filter::{write_words, Filter, Test};
use super::layout::{self, chain_link, Geometry, Meta, PageKind, INVALID_BLOCK, PAYLOAD};
use super::meta::put_graph_fields;
use super::Index;
use crate::error::SqlResult;
use vdb_core::hnsw::{Metric, NodeId};
use vdb_core::quant::Quantizer;

/// Nodes a chunk covers: one page of words per column.
pub const VALUES_PER_PAGE: usize = PAYLOAD / 8;
/// Chunks one directory page names.
pub const DIR_ENTRIES: usize = (PAYLOAD - 4) / 4;

/// The pages of one chunk.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ChunkShape {
    pub cols: usize,
    /// Bytes of a node's code entry (0: no codes).
    pub entry: usize,
}

impl ChunkShape {
    pub fn of(meta: &Meta) -> ChunkShape {
        ChunkShape {
            cols: usize::from(meta.filter_cols),
            entry: Geometry::from_meta(meta).code_entry,
        }
    }

    /// Code entries a page holds.
    fn per_code_page(self) -> usize {
        PAYLOAD / self.entry.max(1)
    }

    fn code_pages(self) -> usize {
        if self.entry == 0 {
            0
        } else {
            VALUES_PER_PAGE.div_ceil(self.per_code_page())
        }
    }

    fn pages(self) -> usize {
        self.cols + self.code_pages()
    }
}

/// The region's chunks, as a reader or the writer knows them.
#[derive(Debug, Clone, Default)]
pub struct Directory {
    pub shape: ChunkShape,
    /// Directory pages, in chain order.
    pub pages: Vec<Block>,
    /// First block of each chunk.
    pub chunks: Vec<Block>,
}

impl Directory {
    /// Reads the directory the metapage names (empty if none).
    pub fn read(rel: Index, meta: &Meta) -> SqlResult<Directory> {
        let mut dir = Directory {
            shape: ChunkShape::of(meta),
            ..Directory::default()
        };
        let limit = buffer::block_count(rel) as usize;
        let mut next = meta.value_dir;
        while let Some(block) = chain_link(next) {
            if dir.pages.len() >= limit {
                return Err(chain_error(rel, "value directory", block));
            }
            let page = PageRead::new(rel, block);
            let payload = layout::payload(page.bytes());
            let count = (*layout::read::<u32>(payload, 0) as usize).min(DIR_ENTRIES);
            dir.chunks
                .extend_from_slice(layout::slice::<u32>(payload, 4, count));
            dir.pages.push(block);
            next = layout::opaque(page.bytes()).next;
        }
        Ok(dir)
    }

    /// The page and byte offset of column `col`'s word of `node`, if its
    /// chunk exists.
    pub fn locate(&self, node: NodeId, col: usize) -> Option<(Block, usize)> {
        let chunk = node as usize / VALUES_PER_PAGE;
        let first = *self.chunks.get(chunk)?;
        Some((first + col as u32, (node as usize % VALUES_PER_PAGE) * 8))
    }

    /// The page and byte offset of `node`'s code entry, if the region has
    /// codes and its chunk exists.
    pub fn locate_code(&self, node: NodeId) -> Option<(Block, usize)> {
        if self.shape.entry == 0 {
            return None;
        }
        let first = *self.chunks.get(node as usize / VALUES_PER_PAGE)?;
        let i = node as usize % VALUES_PER_PAGE;
        let per = self.shape.per_code_page();
        Some((
            first + (self.shape.cols + i / per) as u32,
            (i % per) * self.shape.entry,
        ))
    }
}

/// Writes `node`'s words (NULL flags first, as in the slot) and code
/// entry (empty without codes) into the region, adding its chunk first if
/// needed. Called by the graph writer before the record that publishes
/// the node.
pub(super) fn write(
    rel: Index,
    meta: &mut Meta,
    dir: &mut Directory,
    node: NodeId,
    words: &[u64],
    code: &[u8],
) -> SqlResult<()> {
    let cols = usize::from(meta.filter_cols);
    if cols == 0 {
        return Ok(());
    }
    while dir.chunks.len() <= node as usize / VALUES_PER_PAGE {
        add_chunk(rel, meta, dir);
    }
    let mut writes: Vec<(Block, usize, Vec<u8>)> = (0..cols)
        .filter_map(|c| {
            let (block, offset) = dir.locate(node, c)?;
            Some((block, offset, words[c + 1].to_ne_bytes().to_vec()))
        })
        .collect();
    if let Some((block, offset)) = dir.locate_code(node) {
        if code.len() == dir.shape.entry {
            writes.push((block, offset, code.to_vec()));
        }
    }
    for group in writes.chunks(MAX_BATCH_PAGES) {
        let mut batch = WalBatch::start(rel);
        for (block, offset, bytes) in group {
            let i = batch.page(*block, None);
            layout::payload_mut(batch.bytes_mut(i))[*offset..*offset + bytes.len()]
                .copy_from_slice(bytes);
        }
        batch.commit();
    }
    Ok(())
}

/// Adds a chunk: its pages initialised (records of their own), then named
/// by the directory in one record. A crash in between leaves pages no
/// directory names: space, never a page two owners write.
fn add_chunk(rel: Index, meta: &mut Meta, dir: &mut Directory) {
    let pages = dir.shape.pages() as u32;
    let first = buffer::extend(rel, pages);
    let blocks: Vec<Block> = (first..first + pages).collect();
    for group in blocks.chunks(MAX_BATCH_PAGES) {
        let mut batch = WalBatch::start(rel);
        for &b in group {
            batch.page(b, Some(PageKind::Values));
        }
        batch.commit();
    }
    let last = dir.pages.last().copied();
    let room = last.is_some() && dir.chunks.len() < dir.pages.len() * DIR_ENTRIES;
    let mut batch = WalBatch::start(rel);
    match (last, room) {
        (Some(page), true) => {
            let i = batch.page(page, None);
            append_entry(batch.bytes_mut(i), first);
        }
        _ => {
            let block = buffer::extend(rel, 1);
            let i = batch.page(block, Some(PageKind::ValueDir));
            append_entry(batch.bytes_mut(i), first);
            match last {
                Some(prev) => {
                    let j = batch.page(prev, None);
                    layout::opaque_mut(batch.bytes_mut(j)).next = block;
                }
                None => {
                    meta.value_dir = block;
                    put_graph_fields(&mut batch, meta);
                }
            }
            dir.pages.push(block);
        }
    }
    batch.commit();
    dir.chunks.push(first);
}

fn append_entry(page: &mut [u8], first: Block) {
    let payload = layout::payload_mut(page);
    let count = *layout::read::<u32>(payload, 0) as usize;
    layout::slice_mut::<u32>(payload, 4, count + 1)[count] = first;
    *layout::read_mut::<u32>(payload, 0) = count as u32 + 1;
}

/// Writes the region of a new index: `node_values(node)` gives each
/// node's words (NULL flags first) and code entry for nodes `0..n`.
/// Returns the directory's first block (`INVALID_BLOCK` without filter
/// columns).
pub fn build(
    w: &mut BulkWriter,
    shape: ChunkShape,
    n: u32,
    node_values: impl Fn(NodeId) -> (Vec<u64>, Vec<u8>),
) -> Block {
    if shape.cols == 0 {
        return INVALID_BLOCK;
    }
    let mut chunks = Vec::new();
    for start in (0..n as usize).step_by(VALUES_PER_PAGE) {
        pgrx::check_for_interrupts!();
        let nodes: Vec<(Vec<u64>, Vec<u8>)> = (start..(start + VALUES_PER_PAGE).min(n as usize))
            .map(|i| node_values(i as NodeId))
            .collect();
        chunks.push(w.next_block());
        for c in 0..shape.cols {
            w.append(PageKind::Values, |page| {
                let payload = layout::payload_mut(page);
                for (i, (words, _)) in nodes.iter().enumerate() {
                    let word = words.get(c + 1).copied().unwrap_or(0);
                    write_words(payload, i * 8, &[word]);
                }
            });
        }
        let per = shape.per_code_page();
        for p in 0..shape.code_pages() {
            w.append(PageKind::Values, |page| {
                let payload = layout::payload_mut(page);
                for (i, (_, code)) in nodes.iter().enumerate().skip(p * per).take(per) {
                    let at = (i - p * per) * shape.entry;
                    if code.len() == shape.entry {
                        payload[at..at + shape.entry].copy_from_slice(code);
                    }
                }
            });
        }
    }
    let mut first = INVALID_BLOCK;
    let mut pages: Vec<Block> = Vec::new();
    // An empty index still gets a directory page, so growth appends to it.
    let groups: Vec<&[Block]> = if chunks.is_empty() {
        vec![&[]]
    } else {
        chunks.chunks(DIR_ENTRIES).collect()
    };
    for group in groups {
        let block = w.append(PageKind::ValueDir, |page| {
            let payload = layout::payload_mut(page);
            *layout::read_mut::<u32>(payload, 0) = group.len() as u32;
            layout::slice_mut::<u32>(payload, 4, group.len()).copy_from_slice(group);
        });
        if let Some(&prev) = pages.last() {
            w.rewrite(prev, |page| layout::opaque_mut(page).next = block);
        } else {
            first = block;
        }
        pages.push(block);
    }
    first
}

/// The nodes below `n` whose words in the region pass `filter`: the
/// candidates of an exact pass (each still to be checked on its slot).
pub fn candidates(rel: Index, dir: &Directory, filter: &Filter, n: u32) -> Vec<NodeId> {
    let mut out = Vec::new();
    for k in 0..dir.chunks.len() {
        if k % 16 == 0 {
            pgrx::check_for_interrupts!();
        }
        scan_chunk(rel, dir, k, filter, n, &mut out);
    }
    out
}

/// Chunks read to estimate how many nodes pass a filter.
const SAMPLE_CHUNKS: usize = 8;

/// The share of the nodes below `n` whose words pass `filter`, from a few
/// chunks spread over the region (`None` without one): a page per
/// filtered column and chunk, over a thousand nodes each.
pub fn share(rel: Index, dir: &Directory, filter: &Filter, n: u32) -> Option<f64> {
    let chunks = dir.chunks.len().min((n as usize).div_ceil(VALUES_PER_PAGE));
    if chunks == 0 {
        return None;
    }
    let picks = SAMPLE_CHUNKS.min(chunks);
    let (mut seen, mut passing) = (0usize, Vec::new());
    for i in 0..picks {
        seen += scan_chunk(rel, dir, i * chunks / picks, filter, n, &mut passing);
    }
    (seen > 0).then(|| passing.len() as f64 / seen as f64)
}

/// Appends chunk `k`'s nodes (below `n`) that pass `filter` to `out`;
/// returns how many nodes it holds.
fn scan_chunk(
    rel: Index,
    dir: &Directory,
    k: usize,
    filter: &Filter,
    n: u32,
    out: &mut Vec<NodeId>,
) -> usize {
    let start = k * VALUES_PER_PAGE;
    let Some(&first) = dir.chunks.get(k) else {
        return 0;
    };
    if start >= n as usize {
        return 0;
    }
    let len = VALUES_PER_PAGE.min(n as usize - start);
    // Condition by condition over the column's page: the nodes still in.
    let mut pass = vec![true; len];
    for c in &filter.conditions {
        let page = PageRead::new(rel, first + c.col as u32);
        let bytes = &layout::payload(page.bytes())[..8 * len];
        // Pages are 8-byte aligned in shared buffers, and so their payload:
        // read as words in place (the loops below then vectorise).
        let copied: Vec<u64>;
        let words: &[u64] = match bytemuck::try_cast_slice::<u8, u64>(bytes) {
            Ok(words) => words,
            Err(_) => {
                copied = bytes
                    .chunks_exact(8)
                    .map(|w| u64::from_ne_bytes(w.try_into().unwrap_or_default()))
                    .collect();
                &copied
            }
        };
        let words = words.iter().copied();
        // The common tests as tight loops (most of an exact pass over a
        // large index is this), the rest through `Test::passes`.
        match &c.test {
            Test::AnyOf(v) if v.len() == 1 => {
                let v = v[0];
                for (keep, word) in pass.iter_mut().zip(words) {
                    *keep &= word == v;
                }
            }
            &Test::Between(lo, hi) => {
                for (keep, word) in pass.iter_mut().zip(words) {
                    *keep &= lo <= word as i64 && word as i64 <= hi;
                }
            }
            test => {
                for (keep, word) in pass.iter_mut().zip(words) {
                    *keep &= test.passes(word);
                }
            }
        }
    }
    out.extend(
        pass.iter()
            .enumerate()
            .filter(|(_, &keep)| keep)
            .map(|(i, _)| (start + i) as NodeId),
    );
    len
}

/// `vec`'s code entry around the origin, as the region stores it.
pub fn origin_code(quantizer: &Quantizer, metric: Metric, vec: &[f32]) -> Vec<u8> {
    let center = quantizer.center(&vec![0.0; quantizer.dims()]);
    let mut entry = vec![0u8; quantizer.entry_bytes(metric)];
    quantizer.encode_entry(&center, vec, &mut entry);
    entry
}

/// Estimates of `query`'s distance to each of `nodes` (sorted by id) from
/// their code entries, read a page at a time.
pub fn estimates(
    rel: Index,
    dir: &Directory,
    nodes: &[NodeId],
    estimate: impl Fn(&[u8]) -> Option<f32>,
) -> Vec<(NodeId, f32)> {
    let mut out = Vec::with_capacity(nodes.len());
    let mut current: Option<(Block, PageRead)> = None;
    for (i, &node) in nodes.iter().enumerate() {
        if i % 1024 == 1023 {
            pgrx::check_for_interrupts!();
        }
        let Some((block, offset)) = dir.locate_code(node) else {
            continue;
        };
        if current.as_ref().map(|c| c.0) != Some(block) {
            current = Some((block, PageRead::new(rel, block)));
        }
        if let Some((_, page)) = &current {
            let payload = layout::payload(page.bytes());
            if let Some(e) = estimate(&payload[offset..offset + dir.shape.entry]) {
                out.push((node, e));
            }
        }
    }
    out
}
