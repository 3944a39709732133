//! `vhnsw_check(regclass)` and `vhnsw_stats(regclass)`.
//!
//! The check verifies an index's structure and compares it with its table;
//! it reports what is wrong, one line per problem (empty when sound):
//! every visible row with an indexable vector must be in the graph or the
//! pending list exactly once, every neighbour id must name a node in use,
//! no node without rows may hold TIDs, and every live node must be
//! reachable from the entry point.

use super::utils::{raw_of, with_index, Needs, Packing};
use crate::error::{SqlError, SqlResult};
use crate::fmgr::{pg_fn, Args};
use crate::storage::buffer::PageRead;
use crate::storage::filter::read_words;
use crate::storage::graph::{code_list, PageGraph};
use crate::storage::layout::{self, Tid, NODE_DELETED, NODE_FREE, NODE_IN_USE, NO_NODE};
use crate::storage::values::Directory;
use crate::storage::writer::GraphLock;
use crate::storage::{pending, unindexed, Index};
use pgrx::pg_sys::{self, Datum};
use std::collections::{HashMap, HashSet, VecDeque};
use vdb_core::hnsw::{GraphStore, Metric, NodeId};

/// Level-0 entries of `node` whose code is not its neighbour's vector
/// coded around `node`'s (a write that moved an id without its code).
fn stale_codes(graph: &PageGraph, node: NodeId, list: &[NodeId]) -> Vec<String> {
    let Some(q) = &graph.quantizer else {
        return Vec::new();
    };
    let g = graph.geometry;
    let stored = graph.codes(node);
    let vectors: Vec<_> = list.iter().map(|&n| graph.load(n)).collect();
    let wanted = code_list(
        q,
        &g,
        &graph.load(node).vec,
        vectors.iter().map(|p| &p.vec[..]),
    );
    list.iter()
        .enumerate()
        .filter(|&(i, _)| {
            let range = i * g.code_entry..(i + 1) * g.code_entry;
            stored.get(range.clone()) != wanted.get(range)
        })
        .map(|(_, other)| format!("node {node} has a stale code for its neighbour {other}"))
        .collect()
}

/// Problems found by looking at the index alone.
pub fn structural_problems(graph: &PageGraph) -> Vec<String> {
    let mut problems = Vec::new();
    let n = graph.node_count();
    let flags: Vec<u8> = (0..n).map(|i| graph.header(i).state()).collect();
    let in_use = |i: NodeId| flags.get(i as usize).is_some_and(|f| f & NODE_IN_USE != 0);
    let live = |i: NodeId| in_use(i) && flags[i as usize] & NODE_DELETED == 0;
    let mut list = Vec::new();
    let mut reached = vec![false; n as usize];
    match graph.entry() {
        Some(entry) if !in_use(entry.node) => {
            problems.push(format!("entry point {} is not a node in use", entry.node))
        }
        Some(entry) => {
            // Searches may pass through deleted nodes, so the walk does too.
            let mut queue = VecDeque::from([entry.node]);
            reached[entry.node as usize] = true;
            while let Some(node) = queue.pop_front() {
                for level in 0..=graph.header(node).level {
                    graph.neighbors(node, level, &mut list);
                    for &next in &list {
                        if !std::mem::replace(&mut reached[next as usize], true) {
                            queue.push_back(next);
                        }
                    }
                }
            }
        }
        None if (0..n).any(live) => problems.push("live nodes but no entry point".to_string()),
        None => {}
    }
    for node in (0..n).filter(|&i| in_use(i)) {
        let header = graph.header(node);
        // A node without rows that VACUUM has unlinked but not freed yet
        // (its cleanup cut short) is reached from no live node: its own
        // lists and level no longer matter, and the next VACUUM frees it.
        let unlinked_deleted = !live(node) && !reached[node as usize];
        if u32::from(header.level) > graph.meta.entry_level
            && graph.meta.entry_node != NO_NODE
            && !unlinked_deleted
        {
            problems.push(format!(
                "node {node} has level {} above the entry point's {}",
                header.level, graph.meta.entry_level
            ));
        }
        for level in 0..=header.level {
            graph.neighbors(node, level, &mut list);
            let max = graph.params().max_neighbors(level);
            if list.len() > max {
                problems.push(format!(
                    "node {node} has {} neighbours on level {level} (max {max})",
                    list.len()
                ));
            }
            if list.contains(&node) {
                problems.push(format!("node {node} lists itself on level {level}"));
            }
            let mut sorted = list.clone();
            sorted.sort_unstable();
            sorted.dedup();
            if sorted.len() < list.len() {
                problems.push(format!(
                    "node {node} lists a neighbour twice on level {level}"
                ));
            }
            if level == 0 && !unlinked_deleted {
                problems.extend(stale_codes(graph, node, &list));
            }
            for &other in &list {
                if !in_use(other) && !unlinked_deleted {
                    problems.push(format!(
                        "node {node} links to freed slot {other} on level {level}"
                    ));
                } else if graph.header(other).level < level {
                    problems.push(format!(
                        "node {node} links on level {level} to node {other} of level {}",
                        graph.header(other).level
                    ));
                }
            }
        }
        let tids = graph.tids(node);
        if header.flags & NODE_DELETED != 0 && !tids.tids.is_empty() {
            problems.push(format!(
                "deleted node {node} still holds {} rows",
                tids.tids.len()
            ));
        }
    }
    // Every upper-level slot belongs to one node slot (in use or free:
    // a slot keeps its run), inside the region.
    let mut owner: HashMap<(u32, usize), NodeId> = HashMap::new();
    for node in (0..n).filter(|&i| in_use(i) || flags[i as usize] == NODE_FREE) {
        let header = graph.header(node);
        for l in 1..=u32::from(header.upper_capacity()) {
            let slot = header.upper_first + l - 1;
            if slot >= graph.meta.upper_count {
                problems.push(format!(
                    "node {node} has upper slot {slot} beyond the {} in use",
                    graph.meta.upper_count
                ));
                continue;
            }
            let Some(at) = graph.upper_location(slot) else {
                problems.push(format!("node {node} has upper slot {slot} in no extent"));
                continue;
            };
            if let Some(other) = owner.insert(at, node) {
                problems.push(format!(
                    "nodes {other} and {node} share upper-level storage at block {} offset {}",
                    at.0, at.1
                ));
            }
        }
    }
    // The free list: every slot on it free, each once, as many as counted.
    let mut on_list = HashSet::new();
    let mut next = graph.meta.free_node;
    while next != NO_NODE {
        if next >= n || flags[next as usize] != NODE_FREE {
            problems.push(format!(
                "the free list names node {next}, which is not a free slot"
            ));
            break;
        }
        if !on_list.insert(next) {
            problems.push(format!("the free list loops at node {next}"));
            break;
        }
        next = graph.header(next).overflow;
    }
    if problems.iter().all(|p| !p.starts_with("the free list"))
        && on_list.len() != graph.meta.free_nodes as usize
    {
        problems.push(format!(
            "the free list holds {} slots, the metapage counts {}",
            on_list.len(),
            graph.meta.free_nodes
        ));
    }
    // Every overflow page is in one chain: a live node's or the free list.
    let mut page_owner: HashMap<u32, String> = HashMap::new();
    let chains = (0..n)
        .filter(|&i| in_use(i))
        .map(|node| (format!("node {node}"), graph.header(node).overflow, node))
        .chain(std::iter::once((
            "the free overflow list".to_string(),
            graph.meta.free_overflow,
            NO_NODE,
        )));
    for (owner, first, node) in chains {
        match graph.overflow_chain(first, node) {
            Ok(pages) => {
                for page in pages {
                    if let Some(other) = page_owner.insert(page, owner.clone()) {
                        problems.push(format!(
                            "overflow page {page} is in the chains of {other} and {owner}"
                        ));
                    }
                }
            }
            Err(e) => problems.push(format!("{owner}: {e}")),
        }
    }
    problems.extend(value_problems(graph, &in_use));
    let unreachable: Vec<NodeId> = (0..n)
        // A node still being linked (an insert in progress, or cut short by
        // a crash) is finished by the next writer.
        .filter(|&i| live(i) && !reached[i as usize] && i != graph.meta.linking)
        .collect();
    if !unreachable.is_empty() {
        let some: Vec<String> = unreachable.iter().take(5).map(|n| n.to_string()).collect();
        problems.push(format!(
            "{} of {n} nodes are unreachable from the entry point (e.g. {})",
            unreachable.len(),
            some.join(", ")
        ));
    }
    problems
}

/// A composite index's value region must hold every node in use with
/// the words of its slot (NULL as 0): a scan's exact pass finds nodes by
/// it, so a node it misses would be a row lost to filtered queries.
fn value_problems(graph: &PageGraph, in_use: &dyn Fn(NodeId) -> bool) -> Vec<String> {
    let cols = usize::from(graph.meta.filter_cols);
    if cols == 0 {
        return Vec::new();
    }
    let dir = match Directory::read(graph.rel(), &graph.meta) {
        Ok(dir) => dir,
        Err(e) => return vec![e.message],
    };
    let mut problems = Vec::new();
    for node in (0..graph.node_count()).filter(|&i| in_use(i)) {
        let words = graph.words(node);
        for c in 0..cols {
            let want = if words[0] & (1 << c) != 0 {
                None
            } else {
                Some(words[c + 1])
            };
            let got = dir.locate(node, c).map(|(block, offset)| {
                let page = PageRead::new(graph.rel(), block);
                read_words(layout::payload(page.bytes()), offset, 1).sum::<u64>()
            });
            match (got, want) {
                (None, _) => {
                    problems.push(format!("node {node} has no chunk in the value region"));
                    break;
                }
                (Some(g), Some(w)) if g != w => {
                    problems.push(format!(
                        "node {node}'s column {c} is {w} in its slot and {g} in the value region"
                    ));
                }
                _ => {}
            }
        }
        if problems.len() >= 20 {
            break;
        }
    }
    problems
}

/// The table's name and the TIDs of its rows with an indexable vector,
/// as the active snapshot sees them: the snapshot the HOT chains are then
/// followed with, and one taken before the index was read (a row visible
/// to it was in the index by then, and VACUUM cannot remove it while the
/// snapshot is held).
///
/// # Safety
/// `index` must be open (its table is then locked too).
unsafe fn indexable_rows(
    index: Index,
    metric: Metric,
    words: usize,
) -> SqlResult<(String, Vec<(Tid, bool)>)> {
    // SAFETY: as the caller promises; the scan, slot and executor state
    // are released below. The index's value of a row is formed as the
    // build forms it (FormIndexDatum: a column or an expression), and a
    // partial index's predicate is evaluated the same way, in the per-row
    // memory of the executor state, reset for every row.
    unsafe {
        let table = (*(*index.raw()).rd_index).indrelid;
        let heap = pg_sys::relation_open(table, pg_sys::AccessShareLock as i32);
        let name = std::ffi::CStr::from_ptr(pg_sys::get_rel_name(table))
            .to_string_lossy()
            .into_owned();
        let info = pg_sys::BuildIndexInfo(index.raw());
        let estate = pg_sys::CreateExecutorState();
        let econtext = pg_sys::MakePerTupleExprContext(estate);
        let predicate = if (*info).ii_Predicate.is_null() {
            std::ptr::null_mut()
        } else {
            pg_sys::ExecPrepareQual((*info).ii_Predicate, estate)
        };
        let slot = pg_sys::table_slot_create(heap, std::ptr::null_mut());
        (*econtext).ecxt_scantuple = slot;
        let scan =
            pg_sys::table_beginscan(heap, pg_sys::GetActiveSnapshot(), 0, std::ptr::null_mut());
        let mut rows = Vec::new();
        let mut result = Ok(());
        let mut values = [pg_sys::Datum::from(0usize); pg_sys::INDEX_MAX_KEYS as usize];
        let mut isnull = [false; pg_sys::INDEX_MAX_KEYS as usize];
        while pg_sys::table_scan_getnextslot(
            scan,
            pg_sys::ScanDirection::ForwardScanDirection,
            slot,
        ) {
            pg_sys::MemoryContextReset((*econtext).ecxt_per_tuple_memory);
            let old = pg_sys::MemoryContextSwitchTo((*econtext).ecxt_per_tuple_memory);
            let indexable = (|| {
                if !predicate.is_null() {
                    // ExecQual: a qual's NULL is false.
                    let mut null = false;
                    let eval = (*predicate).evalfunc.ok_or_else(|| {
                        SqlError::internal("vhnsw_check: predicate without an evaluator")
                    })?;
                    let passes = eval(predicate, econtext, &mut null);
                    if null || passes.value() == 0 {
                        return Ok(None);
                    }
                }
                pg_sys::FormIndexDatum(
                    info,
                    slot,
                    estate,
                    values.as_mut_ptr(),
                    isnull.as_mut_ptr(),
                );
                if isnull[0] {
                    return Ok(Some(false));
                }
                if matches!(
                    metric,
                    Metric::Cosine | Metric::HalfCosine | Metric::SparseCosine
                ) {
                    // A zero vector has no place in the graph.
                    let raw = raw_of(metric, values[0], Packing::Row(words))?;
                    return Ok(Some(metric.prepare(&raw).is_ok()));
                }
                Ok(Some(true))
            })();
            pg_sys::MemoryContextSwitchTo(old);
            match indexable {
                Ok(None) => {}
                Ok(Some(in_graph)) => {
                    rows.push((crate::am::utils::tid_of(&(*slot).tts_tid), in_graph))
                }
                Err(e) => {
                    result = Err(e);
                    break;
                }
            }
        }
        pg_sys::table_endscan(scan);
        pg_sys::ExecDropSingleTupleTableSlot(slot);
        pg_sys::FreeExecutorState(estate);
        pg_sys::relation_close(heap, pg_sys::AccessShareLock as i32);
        result.map(|()| (name, rows))
    }
}

/// Problems found by comparing the index with its table.
fn table_problems(
    index: Index,
    graph: &PageGraph,
    (table, rows): &(String, Vec<(Tid, bool)>),
) -> SqlResult<Vec<String>> {
    let mut problems = Vec::new();
    let mut count: HashMap<Tid, u32> = HashMap::new();
    // Rows recorded as having no place in the graph.
    let outside: HashSet<Tid> = unindexed::all(index, &graph.meta)?
        .into_iter()
        .map(|(_, tid)| tid)
        .collect();
    for &tid in &outside {
        *count.entry(tid).or_default() += 1;
    }
    for node in 0..graph.node_count() {
        let t = graph.tids(node);
        if !t.deleted {
            for tid in t.tids {
                *count.entry(tid).or_default() += 1;
            }
        }
    }
    if graph.dims() != 0 {
        let mut seen = HashSet::new();
        pending::for_each(index, graph.shape(), |row| {
            if pending::is_live(row.flags) && seen.insert(row.at) {
                *count.entry(row.tid).or_default() += 1;
            }
        })?;
    }
    let visible: HashSet<Tid> = rows.iter().map(|&(t, _)| t).collect();
    // An entry for a HOT-updated row names the root of its HOT chain, not
    // the visible version's ctid: follow the chains of entries that match
    // no visible row.
    let roots: Vec<Tid> = count
        .keys()
        .copied()
        .filter(|t| !visible.contains(t))
        .collect();
    // SAFETY: the index is open, so its table is locked.
    let mut outside = outside;
    for (root, version) in unsafe { visible_versions(index, &roots) } {
        let c = count.remove(&root).unwrap_or(0);
        *count.entry(version).or_default() += c;
        if outside.remove(&root) {
            outside.insert(version);
        }
    }
    let mut missing = Vec::new();
    let mut duplicated = Vec::new();
    let mut misplaced = Vec::new();
    for &(t, in_graph) in rows.iter() {
        let r = format!("({},{})", t.block(), t.offset());
        if in_graph == outside.contains(&t) {
            let place = if in_graph { "outside" } else { "inside" };
            misplaced.push(format!("row {r} of {table} is recorded {place} the graph"));
        }
        match count.get(&t) {
            None | Some(0) => missing.push(r),
            Some(&c) if c > 1 => duplicated.push((r, c)),
            Some(_) => {}
        }
    }
    for (r, c) in duplicated.iter().take(5) {
        problems.push(format!("row {r} of {table} is in the index {c} times"));
    }
    if duplicated.len() > 5 {
        problems.push(format!(
            "... {} rows of {table} are in the index more than once",
            duplicated.len()
        ));
    }
    problems.extend(misplaced.into_iter().take(5));
    for r in missing.iter().take(5) {
        problems.push(format!("row {r} of {table} is not in the index"));
    }
    if missing.len() > 5 {
        problems.push(format!(
            "... {} rows of {table} are not in the index",
            missing.len()
        ));
    }
    Ok(problems)
}

/// For each TID in `tids` whose HOT chain has a version visible to the
/// active snapshot, that version's TID.
///
/// # Safety
/// `index` must be open (its table is then locked too).
unsafe fn visible_versions(index: Index, tids: &[Tid]) -> Vec<(Tid, Tid)> {
    let mut found = Vec::new();
    if tids.is_empty() {
        return found;
    }
    // SAFETY: the caller's lock on the index covers its table; the fetch
    // descriptor and slot are released below, and index_fetch_tuple is
    // how index scans read the heap (it follows HOT chains).
    unsafe {
        let heap = pg_sys::relation_open(
            (*(*index.raw()).rd_index).indrelid,
            pg_sys::AccessShareLock as i32,
        );
        let snapshot = pg_sys::GetActiveSnapshot();
        let slot = pg_sys::table_slot_create(heap, std::ptr::null_mut());
        // The table AM's callbacks through pgrx's guarded wrappers: an
        // ERROR inside unwinds through Rust frames properly.
        let scan = pg_sys::table_index_fetch_begin(heap);
        for &t in tids {
            let mut item = crate::am::utils::item_pointer(t);
            let (mut call_again, mut all_dead) = (false, false);
            if pg_sys::table_index_fetch_tuple(
                scan,
                &mut item,
                snapshot,
                slot,
                &mut call_again,
                &mut all_dead,
            ) {
                found.push((t, crate::am::utils::tid_of(&(*slot).tts_tid)));
            }
        }
        pg_sys::table_index_fetch_end(scan);
        pg_sys::ExecDropSingleTupleTableSlot(slot);
        pg_sys::relation_close(heap, pg_sys::AccessShareLock as i32);
    }
    found
}

fn check(args: &Args) -> SqlResult<Datum> {
    let oid = pg_sys::Oid::from(args.datum(0).value() as u32);
    let problems = with_index(
        oid,
        "vhnsw_check()",
        Needs::Owner,
        pg_sys::AccessShareLock,
        |index| {
            // The table's rows first: reading them may open its TOAST
            // relation, a lock not to take while holding the graph lock.
            // SAFETY: the index is open, so its table is locked.
            let metric = super::utils::opclass_metric(index)?;
            let words = crate::storage::meta::read_meta(index)?.dims as usize;
            let table = unsafe { indexable_rows(index, metric, words)? };
            // No merge may move rows between the graph and the list meanwhile
            // (the table is locked already: table locks come first).
            let _lock = GraphLock::acquire(index);
            // On a standby the primary's merges and vacuums replay underneath
            // (its locks are not replicated): look again if a page changed.
            let mut attempts = 0;
            loop {
                let replayed = replay_position();
                let graph = PageGraph::open(index)?;
                let mut problems = structural_problems(&graph);
                problems.extend(table_problems(index, &graph, &table)?);
                match replayed {
                    Some(lsn) if attempts < 50 && changed_since(index, lsn) => {
                        attempts += 1;
                        std::thread::sleep(std::time::Duration::from_millis(20));
                        pgrx::check_for_interrupts!();
                    }
                    _ => return Ok(problems),
                }
            }
        },
    )?;
    Ok(crate::fmgr::text_datum(&problems.join("\n")))
}

/// How far a standby has replayed the WAL; `None` on a primary.
fn replay_position() -> Option<u64> {
    // SAFETY: both only read shared recovery state.
    unsafe {
        pg_sys::RecoveryInProgress().then(|| pg_sys::GetXLogReplayRecPtr(std::ptr::null_mut()))
    }
}

/// Whether any page of the index was changed by WAL past `lsn`.
fn changed_since(index: Index, lsn: u64) -> bool {
    (0..crate::storage::buffer::block_count(index))
        .any(|block| crate::storage::buffer::PageRead::new(index, block).lsn() > lsn)
}

pg_fn! {
    /// `vhnsw_check(regclass) RETURNS text`
    fn vdb_vhnsw_check(args) { check(&args) }
}

/// Shape of an index, for `vhnsw_stats`, as JSON text.
fn stats_json(index: Index, graph: &PageGraph) -> SqlResult<String> {
    let n = graph.node_count();
    let mut levels = vec![0u64; 17];
    let mut degree0 = 0u64;
    let mut live = 0u64;
    let mut in_use = 0u64;
    let mut owned_uppers = 0u64;
    let mut list = Vec::new();
    for node in 0..n {
        let h = graph.header(node);
        if h.state() & (NODE_IN_USE | NODE_FREE) != 0 {
            owned_uppers += u64::from(h.upper_capacity());
        }
        if h.flags & NODE_IN_USE == 0 {
            continue;
        }
        in_use += 1;
        if h.flags & NODE_DELETED == 0 {
            live += 1;
        }
        levels[usize::from(h.level).min(16)] += 1;
        graph.neighbors(node, 0, &mut list);
        degree0 += list.len() as u64;
    }
    while levels.len() > 1 && levels.last() == Some(&0) {
        levels.pop();
    }
    let meta = &graph.meta;
    let pending = if graph.dims() == 0 {
        0
    } else {
        pending::live_count(index, graph.shape())?
    };
    let unindexed = unindexed::all(index, meta)?.len();
    let pages = crate::storage::buffer::block_count(index);
    let free_overflow = graph.overflow_chain(meta.free_overflow, NO_NODE)?.len();
    // Upper slots that no slot's run holds: lost when a node reused a slot
    // whose run was shorter than its level.
    let lost_uppers = u64::from(meta.upper_count).saturating_sub(owned_uppers);
    // TimestampTz counts microseconds from 2000-01-01.
    let last_merge = if meta.last_merge == 0 {
        0.0
    } else {
        meta.last_merge as f64 / 1e6 + 946_684_800.0
    };
    Ok(format!(
        "{{\"nodes\": {live}, \"deleted_nodes\": {}, \"free_slots\": {}, \"free_overflow_pages\": {free_overflow}, \"upper_slots\": {}, \"upper_slots_lost\": {lost_uppers}, \"pending\": {pending}, \"unindexed\": {unindexed}, \"merged_total\": {}, \
         \"last_merge_epoch\": {last_merge}, \"dims\": {}, \"m\": {}, \"ef_construction\": {}, \"code_bits\": {}, \"code_dims\": {}, \"entry_level\": {}, \
         \"nodes_per_level\": {:?}, \"avg_degree_level0\": {:.2}, \"index_pages\": {pages}, \"index_bytes\": {}}}",
        meta.deleted_nodes,
        meta.free_nodes,
        meta.upper_count,
        meta.merged_total,
        meta.dims,
        meta.m,
        meta.ef_construction,
        if meta.code_coords == 0 { 0 } else { meta.code_bits },
        meta.code_coords,
        if meta.entry_node == NO_NODE { -1 } else { i64::from(meta.entry_level) },
        levels,
        degree0 as f64 / in_use.max(1) as f64,
        u64::from(pages) * 8192,
    ))
}

pg_fn! {
    /// `vhnsw_stats_text(regclass) RETURNS text` (wrapped by `vhnsw_stats`)
    fn vdb_vhnsw_stats(args) {
        let oid = pg_sys::Oid::from(args.datum(0).value() as u32);
        let json = with_index(oid, "vhnsw_stats()", Needs::Select, pg_sys::AccessShareLock, |index| {
            stats_json(index, &PageGraph::open(index)?)
        })?;
        Ok(crate::fmgr::text_datum(&json))
    }
}
