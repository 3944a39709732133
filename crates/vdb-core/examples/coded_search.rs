//! In-process experiment: HNSW search as vdb runs it today (every
//! neighbour's distance read from its own vector) against the coded search
//! (`hnsw::coded`: a hop reads one node, neighbours are estimated from
//! codes in its list), on one graph. Prints per ef the recall@10, the
//! single-thread QPS, and the node reads per query — in the index, a node
//! read is a page access, which is what a query pays for.
//!
//! `cargo run --release -p vdb-core --example coded_search -- <file.npy>
//!  [rows] [bits] [coords] [metric: cosine|l2|ip]`

use rayon::prelude::*;
use std::sync::atomic::{AtomicBool, AtomicUsize};
use std::time::Instant;
use vdb_core::hnsw::coded::{CodedMemory, CodedSearch, CodedStore};
use vdb_core::hnsw::memory::MemoryGraph;
use vdb_core::hnsw::search::{descend, search_layer, LayerSearch};
use vdb_core::hnsw::{Candidate, Entry, GraphStore, Metric, NodeId, Params, Point};
use vdb_core::quant::Quantizer;

fn read_npy(path: &str) -> (Vec<f32>, usize) {
    let bytes = std::fs::read(path).expect("read .npy");
    assert_eq!(&bytes[..6], b"\x93NUMPY", "not a .npy file");
    let (header_len, start) = if bytes[6] == 1 {
        (u16::from_le_bytes([bytes[8], bytes[9]]) as usize, 10)
    } else {
        (
            u32::from_le_bytes([bytes[8], bytes[9], bytes[10], bytes[11]]) as usize,
            12,
        )
    };
    let header = std::str::from_utf8(&bytes[start..start + header_len]).expect("header");
    assert!(header.contains("'<f4'"), "float32 only: {header}");
    let shape = &header[header.find("'shape': (").expect("shape") + 10..];
    let dims: usize = shape
        .split(',')
        .nth(1)
        .and_then(|s| s.trim().trim_end_matches(')').parse().ok())
        .expect("2-D");
    let raw: Vec<f32> = bytes[start + header_len..]
        .chunks_exact(4)
        .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
        .collect();
    if !header.contains("'fortran_order': True") {
        return (raw, dims);
    }
    // Column-major: transpose into rows.
    let rows = raw.len() / dims;
    let mut data = vec![0.0f32; raw.len()];
    for (j, column) in raw.chunks_exact(rows).enumerate() {
        for (i, &x) in column.iter().enumerate() {
            data[i * dims + j] = x;
        }
    }
    (data, dims)
}

/// Counts the vectors a plain search reads.
struct Counting<'a> {
    graph: &'a MemoryGraph,
    reads: std::cell::Cell<usize>,
}

impl GraphStore for Counting<'_> {
    fn params(&self) -> &Params {
        self.graph.params()
    }
    fn entry(&self) -> Option<Entry> {
        self.graph.entry()
    }
    fn distance(&self, query: &Point, node: NodeId) -> f32 {
        self.reads.set(self.reads.get() + 1);
        self.graph.distance(query, node)
    }
    fn distance_between(&self, a: NodeId, b: NodeId) -> f32 {
        self.graph.distance_between(a, b)
    }
    fn copy_vector(&self, node: NodeId, out: &mut Vec<f32>) -> f32 {
        self.graph.copy_vector(node, out)
    }
    fn neighbors(&self, node: NodeId, level: u8, out: &mut Vec<NodeId>) {
        // The list is on the node's page: one more read per expansion.
        self.reads.set(self.reads.get() + 1);
        self.graph.neighbors(node, level, out)
    }
    fn distances(&self, query: &Point, nodes: &[NodeId], out: &mut Vec<f32>) {
        self.reads.set(self.reads.get() + nodes.len());
        self.graph.distances(query, nodes, out)
    }
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let path = args
        .get(1)
        .expect("usage: coded_search <file.npy> [rows] [bits] [coords] [metric]");
    let rows: usize = args.get(2).and_then(|s| s.parse().ok()).unwrap_or(100_000);
    let bits: u8 = args.get(3).and_then(|s| s.parse().ok()).unwrap_or(1);
    let coords: Option<usize> = args.get(4).and_then(|s| s.parse().ok()).filter(|&c| c > 0);
    let metric = match args.get(5).map(String::as_str) {
        Some("l2") => Metric::L2,
        Some("ip") => Metric::InnerProduct,
        _ => Metric::Cosine,
    };
    let epsilon: f32 = std::env::var("VDB_EPSILON")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(vdb_core::quant::DEFAULT_EPSILON);
    let (data, dims) = read_npy(path);
    let total = data.len() / dims;
    let queries = 500;
    let rows = rows.min(total - queries);
    // A seeded shuffle of the file: queries and base from the same mix.
    let order = vdb_core::hnsw::memory::permutation(total, 5);
    let point = |i: usize| {
        let i = order[i] as usize;
        metric
            .prepare(&data[i * dims..(i + 1) * dims])
            .expect("indexable")
    };
    let query_points: Vec<Point> = (total - queries..total).map(point).collect();
    let params = Params {
        metric,
        m: 16,
        ef_construction: 64,
    };
    let t = Instant::now();
    let mut graph = MemoryGraph::new(params, dims, 7);
    for i in 0..rows {
        graph.push(&point(i));
    }
    graph.build(&AtomicUsize::new(0), &AtomicBool::new(false));
    eprintln!(
        "built {rows} × {dims} in {:.1} s",
        t.elapsed().as_secs_f64()
    );
    let truth: Vec<Vec<NodeId>> = query_points
        .par_iter()
        .map(|q| {
            let mut all: Vec<Candidate> = (0..rows as NodeId)
                .map(|n| Candidate {
                    distance: graph.distance(q, n),
                    node: n,
                })
                .collect();
            all.select_nth_unstable(10);
            all.truncate(10);
            all.iter().map(|c| c.node).collect()
        })
        .collect();
    let t = Instant::now();
    let quantizer = Quantizer::new(dims, bits, coords, 11);
    let code_bytes = quantizer.code_bytes();
    let coded = CodedMemory::new(&graph, quantizer);
    eprintln!(
        "coded lists in {:.1} s: {bits} bit(s) × {} coordinates = {code_bytes} bytes + 16 per neighbour",
        t.elapsed().as_secs_f64(),
        coded.quantizer().coords()
    );
    let recall = |found: &[Vec<NodeId>]| -> f64 {
        let hits: usize = found
            .iter()
            .zip(&truth)
            .map(|(f, t)| f.iter().take(10).filter(|n| t.contains(n)).count())
            .sum();
        hits as f64 / (10 * truth.len()) as f64
    };
    let entry = graph.entry().expect("a graph");
    println!("method    ef   recall    QPS  reads/query");
    for ef in [10, 20, 40, 80, 160, 320] {
        let counting = Counting {
            graph: &graph,
            reads: std::cell::Cell::new(0),
        };
        let mut search = LayerSearch::new();
        let mut scratch = Vec::new();
        let t = Instant::now();
        let found: Vec<Vec<NodeId>> = query_points
            .iter()
            .map(|q| {
                let start = descend(&counting, q, entry, 0, &mut scratch);
                search_layer(&counting, &mut search, q, &[start], 0, ef.max(10))
                    .iter()
                    .take(10)
                    .map(|c| c.node)
                    .collect()
            })
            .collect();
        let qps = queries as f64 / t.elapsed().as_secs_f64();
        println!(
            "plain   {ef:4}   {:.3}  {qps:6.0}  {:8.1}",
            recall(&found),
            counting.reads.get() as f64 / queries as f64
        );
        let mut search = CodedSearch::default();
        let descent = Counting {
            graph: &graph,
            reads: std::cell::Cell::new(0),
        };
        let mut expanded = 0;
        let t = Instant::now();
        let found: Vec<Vec<NodeId>> = query_points
            .iter()
            .map(|q| {
                let prepared = coded.quantizer().query_with(&q.vec, epsilon);
                let start = descend(&descent, q, entry, 0, &mut scratch);
                let r = search.run(&coded, q, &prepared, start.node, ef.max(10), 0.0);
                expanded += search.expanded;
                r.iter().take(10).map(|c| c.node).collect()
            })
            .collect();
        let qps = queries as f64 / t.elapsed().as_secs_f64();
        println!(
            "coded   {ef:4}   {:.3}  {qps:6.0}  {:8.1}",
            recall(&found),
            (expanded + descent.reads.get()) as f64 / queries as f64
        );
    }
}
