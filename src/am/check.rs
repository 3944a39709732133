//! `vhnsw_check(regclass)`: verifies an index's structure and reports what
//! is wrong, one line per problem (empty when the index is sound).

use crate::error::{SqlError, SqlResult};
use crate::fmgr::{pg_fn, Args};
use crate::storage::graph::PageGraph;
use crate::storage::Index;
use pgrx::pg_sys::{self, Datum};
use std::collections::VecDeque;
use vdb_core::hnsw::{GraphStore, NodeId};

/// Structural problems of an index, as readable lines.
pub fn structural_problems(graph: &PageGraph) -> Vec<String> {
    let mut problems = Vec::new();
    let n = graph.node_count();
    let mut list = Vec::new();
    let mut reached = vec![false; n as usize];
    if let Some(entry) = graph.entry() {
        if entry.node >= n {
            problems.push(format!(
                "entry point {} is not a node (node count {n})",
                entry.node
            ));
            return problems;
        }
        // Every node must be reachable from the entry point (any level).
        let mut queue = VecDeque::from([entry.node]);
        reached[entry.node as usize] = true;
        while let Some(node) = queue.pop_front() {
            let header = graph.header(node);
            for level in 0..=header.level {
                graph.neighbors(node, level, &mut list);
                for &next in &list {
                    if !reached[next as usize] {
                        reached[next as usize] = true;
                        queue.push_back(next);
                    }
                }
            }
        }
    } else if n > 0 {
        problems.push(format!("{n} nodes but no entry point"));
    }
    for node in 0..n as NodeId {
        let header = graph.header(node);
        if u32::from(header.level) > graph.meta.entry_level {
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
            for &other in &list {
                if graph.header(other).level < level {
                    problems.push(format!(
                        "node {node} links on level {level} to node {other} of level {}",
                        graph.header(other).level
                    ));
                }
            }
        }
    }
    let unreachable: Vec<NodeId> = (0..n).filter(|&i| !reached[i as usize]).collect();
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

fn check(args: &Args) -> SqlResult<Datum> {
    let oid = pg_sys::Oid::from(args.datum(0).value() as u32);
    // SAFETY: index_open takes a lock and validates the relation; we only
    // read it and close it before returning.
    let raw = unsafe { pg_sys::index_open(oid, pg_sys::AccessShareLock as i32) };
    // SAFETY: open until index_close below.
    let result = PageGraph::open(unsafe { Index::new(raw) }).map(|g| structural_problems(&g));
    // SAFETY: opened above.
    unsafe { pg_sys::index_close(raw, pg_sys::AccessShareLock as i32) };
    let problems = result?;
    Ok(crate::fmgr::text_datum(&problems.join("\n")))
}

pg_fn! {
    /// `vhnsw_check(regclass) RETURNS text`
    fn vdb_vhnsw_check(args) {
        check(&args).map_err(|e: SqlError| e)
    }
}

/// Shape of an index, for `vhnsw_stats`.
pub fn stats_json(graph: &PageGraph, pages: u32) -> String {
    let n = graph.node_count();
    let mut levels = vec![0u64; 17];
    let mut degree0 = 0u64;
    let mut list = Vec::new();
    for node in 0..n {
        let h = graph.header(node);
        levels[usize::from(h.level).min(16)] += 1;
        graph.neighbors(node, 0, &mut list);
        degree0 += list.len() as u64;
    }
    while levels.len() > 1 && levels.last() == Some(&0) {
        levels.pop();
    }
    let meta = &graph.meta;
    format!(
        "{{\"nodes\": {n}, \"deleted_nodes\": {}, \"dims\": {}, \"m\": {}, \"ef_construction\": {}, \"entry_level\": {}, \"nodes_per_level\": {:?}, \"avg_degree_level0\": {:.2}, \"index_pages\": {pages}, \"index_bytes\": {}}}",
        meta.deleted_nodes,
        meta.dims,
        meta.m,
        meta.ef_construction,
        if meta.entry_node == crate::storage::layout::NO_NODE { -1 } else { meta.entry_level as i64 },
        levels,
        if n > 0 { degree0 as f64 / f64::from(n) } else { 0.0 },
        u64::from(pages) * 8192,
    )
}

pg_fn! {
    /// `vhnsw_stats(regclass) RETURNS jsonb` (declared returning text, cast in SQL)
    fn vdb_vhnsw_stats(args) {
        let oid = pg_sys::Oid::from(args.datum(0).value() as u32);
        // SAFETY: as in check().
        let raw = unsafe { pg_sys::index_open(oid, pg_sys::AccessShareLock as i32) };
        // SAFETY: open until index_close below.
        let index = unsafe { Index::new(raw) };
        let pages = crate::storage::buffer::block_count(index);
        let result = PageGraph::open(index).map(|g| stats_json(&g, pages));
        // SAFETY: opened above.
        unsafe { pg_sys::index_close(raw, pg_sys::AccessShareLock as i32) };
        Ok(crate::fmgr::text_datum(&result?))
    }
}
