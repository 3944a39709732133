//! Times the in-memory parallel build. `build_speed <n> [glove.npy]`
use std::sync::atomic::{AtomicBool, AtomicUsize};
use vdb_core::hnsw::memory::MemoryGraph;
use vdb_core::hnsw::{Metric, Params};
fn main() {
    let n: usize = std::env::args()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(100_000);
    let dims = 50;
    let rows: Vec<Vec<f32>> = match std::env::args().nth(2) {
        Some(path) => {
            // Fortran-order 400000 x 50 float32 after a 128-byte header.
            let bytes = std::fs::read(path).expect("read npy");
            let data: Vec<f32> = bytes[128..]
                .chunks_exact(4)
                .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
                .collect();
            let total = data.len() / dims;
            (0..n.min(total))
                .map(|i| (0..dims).map(|j| data[j * total + i]).collect())
                .collect()
        }
        None => {
            let mut state = 1u64;
            (0..n)
                .map(|_| {
                    (0..dims)
                        .map(|_| {
                            state = vdb_core::hnsw::splitmix64(state);
                            (state >> 40) as f32 / (1u64 << 24) as f32 - 0.5
                        })
                        .collect()
                })
                .collect()
        }
    };
    let params = Params {
        metric: Metric::Cosine,
        m: 16,
        ef_construction: 64,
    };
    let mut g = MemoryGraph::new(params, dims, 7);
    for v in &rows {
        if let Ok(p) = Metric::Cosine.prepare(v) {
            g.push(&p);
        }
    }
    let t = std::time::Instant::now();
    g.build(&AtomicUsize::new(0), &AtomicBool::new(false));
    println!("{} nodes built in {:?}", g.len(), t.elapsed());
}
