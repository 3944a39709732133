//! glove <npy> <ef...>: recall@10 and distance computations per query of the
//! in-memory graph on GloVe-50 (every 400th row a query), cosine, m=16, efc=64.
use std::sync::atomic::{AtomicBool, AtomicUsize};
use vdb_core::hnsw::memory::MemoryGraph;
use vdb_core::hnsw::scan::OrderedScan;
use vdb_core::hnsw::{Candidate, GraphStore, Metric, NodeId, Params, Point};
fn main() {
    let args: Vec<String> = std::env::args().collect();
    let bytes = std::fs::read(&args[1]).expect("npy");
    let dims = 50;
    let data: Vec<f32> = bytes[128..]
        .chunks_exact(4)
        .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
        .collect();
    let total = data.len() / dims;
    let metric = Metric::Cosine;
    let mut g = MemoryGraph::new(
        Params {
            metric,
            m: 16,
            ef_construction: 64,
        },
        dims,
        0x5eed,
    );
    let mut queries: Vec<Point> = Vec::new();
    for i in 0..total {
        let row: Vec<f32> = (0..dims).map(|j| data[j * total + i]).collect();
        let Ok(p) = metric.prepare(&row) else {
            continue;
        };
        if i % 400 == 7 {
            queries.push(p)
        } else {
            g.push(&p);
        }
    }
    let t = std::time::Instant::now();
    g.build(&AtomicUsize::new(0), &AtomicBool::new(false));
    println!("built {} nodes in {:?}", g.len(), t.elapsed());
    let mut list = Vec::new();
    let mut deg = 0usize;
    for n in 0..g.len() as NodeId {
        g.neighbors(n, 0, &mut list);
        deg += list.len();
    }
    println!("average level-0 degree {:.2}", deg as f64 / g.len() as f64);
    let truth: Vec<Vec<NodeId>> = queries
        .iter()
        .map(|q| {
            let mut all: Vec<Candidate> = (0..g.len() as NodeId)
                .map(|n| Candidate {
                    distance: g.distance(q, n),
                    node: n,
                })
                .collect();
            all.select_nth_unstable(10);
            let mut top = all[..10].to_vec();
            top.sort_unstable();
            top.iter().map(|c| c.node).collect()
        })
        .collect();
    for ef in args[2..].iter().map(|s| s.parse::<usize>().unwrap()) {
        let (mut hits, mut evaluated) = (0, 0);
        let t = std::time::Instant::now();
        for (q, truth) in queries.iter().zip(&truth) {
            let mut scan = OrderedScan::new(ef);
            for _ in 0..10 {
                if let Some(c) = scan.next(&g, q, usize::MAX) {
                    if truth.contains(&c.node) {
                        hits += 1;
                    }
                }
            }
            evaluated += scan.evaluated();
        }
        println!(
            "ef {ef}: recall@10 {:.3}, {} distances/query, {:.0} QPS in memory",
            hits as f64 / (queries.len() * 10) as f64,
            evaluated / queries.len(),
            queries.len() as f64 / t.elapsed().as_secs_f64()
        );
    }
}
