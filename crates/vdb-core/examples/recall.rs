//! recall <n> <dims> <m> <efc> <ef>: recall@10 of the in-memory graph on uniform random data.
use std::sync::atomic::{AtomicBool, AtomicUsize};
use vdb_core::hnsw::memory::MemoryGraph;
use vdb_core::hnsw::scan::OrderedScan;
use vdb_core::hnsw::{Candidate, GraphStore, Metric, NodeId, Params};
fn main() {
    let a: Vec<usize> = std::env::args()
        .skip(1)
        .map(|s| s.parse().unwrap())
        .collect();
    let (n, dims, m, efc, ef) = (a[0], a[1], a[2], a[3], a[4]);
    let clusters = a.get(5).copied().unwrap_or(0);
    let mut state = 7u64;
    let mut uni = move || {
        state = vdb_core::hnsw::splitmix64(state);
        (state >> 40) as f32 / (1u64 << 23) as f32 - 1.0
    };
    let centers: Vec<Vec<f32>> = (0..clusters)
        .map(|_| (0..dims).map(|_| uni()).collect())
        .collect();
    let mut which = 0usize;
    let mut rnd_vec = move |uni: &mut dyn FnMut() -> f32| -> Vec<f32> {
        if centers.is_empty() {
            return (0..dims).map(|_| uni()).collect();
        }
        which = (which + 7) % centers.len();
        let noise: f32 = std::env::var("NOISE")
            .ok()
            .and_then(|s| s.parse().ok())
            .unwrap_or(0.25);
        centers[which]
            .iter()
            .map(|c| c + noise * (uni() + uni() + uni()))
            .collect()
    };
    let metric = match std::env::var("METRIC").as_deref() {
        Ok("cos") => Metric::Cosine,
        Ok("ip") => Metric::InnerProduct,
        _ => Metric::L2,
    };
    let params = Params {
        metric,
        m,
        ef_construction: efc,
    };
    let mut g = MemoryGraph::new(
        params,
        dims,
        std::env::var("SEED")
            .ok()
            .and_then(|s| s.parse().ok())
            .unwrap_or(1),
    );
    if let Ok(path) = std::env::var("DATA") {
        for line in std::fs::read_to_string(path).unwrap().lines().take(n) {
            let v: Vec<f32> = line
                .trim_matches(|c| c == '[' || c == ']')
                .split(',')
                .map(|x| x.parse().unwrap())
                .collect();
            g.push(&metric.prepare(&v).unwrap());
        }
    } else {
        for _ in 0..n {
            let v = rnd_vec(&mut uni);
            g.push(&metric.prepare(&v).unwrap());
        }
    }
    let t = std::time::Instant::now();
    g.build(&AtomicUsize::new(0), &AtomicBool::new(false));
    let build = t.elapsed();
    println!("unreachable after build: {:?}", g.unreachable());
    for u in g.unreachable() {
        let mut l = Vec::new();
        g.neighbors(u, 0, &mut l);
        println!("node {u} level {} list0 {:?}", g.level(u), l);
        let entry = g.entry().unwrap();
        println!("entry {:?}", entry);
        let again = vdb_core::hnsw::repair::link_unreachable(
            &g,
            g.len() as u32,
            &|n| g.level(n),
            &|n| g.point(n),
            &|_| false,
        );
        println!(
            "second repair linked {again}; now unreachable {:?}",
            g.unreachable()
        );
        let mut l2 = Vec::new();
        g.neighbors(1967, 0, &mut l2);
        println!(
            "1967 level {} list0 (len {}) contains 1636: {}",
            g.level(1967),
            l2.len(),
            l2.contains(&u)
        );
        let who: Vec<u32> = (0..g.len() as u32)
            .filter(|&n| {
                let mut l = Vec::new();
                g.neighbors(n, 0, &mut l);
                l.contains(&u)
            })
            .collect();
        println!("nodes linking to {u}: {who:?}");
        for &w in &who {
            let mut l = Vec::new();
            g.neighbors(w, 0, &mut l);
            println!("  {w}: level {} list {:?}", g.level(w), l);
        }
        let who2: Vec<u32> = (0..g.len() as u32)
            .filter(|&n| {
                let mut l = Vec::new();
                g.neighbors(n, 0, &mut l);
                l.contains(&1967)
            })
            .collect();
        println!("nodes linking to 1967: {who2:?}");
    }
    let mut hits = 0;
    let nq = 100;
    for _ in 0..nq {
        let q = metric.prepare(&rnd_vec(&mut uni)).unwrap();
        let mut all: Vec<Candidate> = (0..n as NodeId)
            .map(|i| Candidate {
                distance: g.distance(&q, i),
                node: i,
            })
            .collect();
        all.sort_unstable();
        let truth: Vec<NodeId> = all[..10].iter().map(|c| c.node).collect();
        let mut scan = OrderedScan::new(ef);
        for _ in 0..10 {
            if let Some(c) = scan.next(&g, &q, usize::MAX) {
                if truth.contains(&c.node) {
                    hits += 1;
                }
            }
        }
    }
    let mut drops = 0;
    let mut returned = 0;
    for _ in 0..20 {
        let q = metric.prepare(&rnd_vec(&mut uni)).unwrap();
        let mut scan = OrderedScan::new(ef);
        while scan.next(&g, &q, usize::MAX).is_some() {
            returned += 1;
        }
        drops += scan.dropped();
    }
    println!("exhaustive scans: {returned} returned, {drops} dropped");
    let mut unreachable = 0;
    for i in 0..n as NodeId {
        let q = vdb_core::hnsw::Point {
            vec: g.vector(i).to_vec(),
            aux: g.aux(i),
        };
        let mut scan = OrderedScan::new(ef);
        if scan.next(&g, &q, usize::MAX).map(|c| c.node) != Some(i)
            && g.distance(&q, scan.next(&g, &q, usize::MAX).map_or(i, |c| c.node)) > 0.0
        {
            unreachable += 1;
        }
    }
    println!("self-search misses: {unreachable}");
    println!("{metric:?} n={n} dims={dims} clusters={clusters} m={m} efc={efc} ef={ef}: recall@10 {:.3} build {:?}", hits as f64 / (nq * 10) as f64, build);
}
