//! The HNSW algorithm's ceiling: hnswlib in process, on the same split,
//! queries and ground truth as the engines, through
//! `bench/hnswlib_baseline.py` (pip's `hnswlib`, installed if missing).
//! The data goes over as .npy files in `<data-dir>/hnswlib/<dataset>/`.

use crate::dataset::{write_npy, Dataset};
use crate::db::QueryStats;
use crate::python;
use crate::report::{Baseline, EngineResult};
use std::path::Path;
use std::process::{Command, Stdio};

/// Builds hnswlib with `m` and `ef_construction` on every core and runs the
/// queries at each of `efs` on one thread.
pub fn run(
    ds: &Dataset,
    truth: &[Vec<i32>],
    cache: &Path,
    m: u32,
    ef_construction: u32,
    efs: &[u32],
) -> Result<Baseline, String> {
    let py = python::interpreter(cache)?;
    python::ensure(&py, &["numpy", "hnswlib"], &["numpy", "hnswlib"])?;
    let dir = cache.join("hnswlib").join(&ds.name);
    std::fs::create_dir_all(&dir).map_err(|e| e.to_string())?;
    let k = truth.first().map_or(10, |t| t.len());
    let written = write_npy(
        &dir.join("base.npy"),
        "<f4",
        &[ds.base.len(), ds.base.dims],
        ds.base.data.iter().map(|x| x.to_le_bytes()),
    )
    .and_then(|()| {
        write_npy(
            &dir.join("ids.npy"),
            "<i4",
            &[ds.ids.len()],
            ds.ids.iter().map(|x| x.to_le_bytes()),
        )
    })
    .and_then(|()| {
        write_npy(
            &dir.join("queries.npy"),
            "<f4",
            &[ds.queries.len(), ds.queries.dims],
            ds.queries.data.iter().map(|x| x.to_le_bytes()),
        )
    })
    .and_then(|()| {
        write_npy(
            &dir.join("truth.npy"),
            "<i4",
            &[truth.len(), k],
            truth.iter().flatten().map(|x| x.to_le_bytes()),
        )
    });
    written.map_err(|e| format!("cannot write the data for hnswlib: {e}"))?;
    let efs: Vec<String> = efs.iter().map(|e| e.to_string()).collect();
    let output = Command::new(&py)
        .arg(python::script("hnswlib_baseline.py"))
        .arg("--dir")
        .arg(&dir)
        .args(["--space", ds.metric.hnswlib_space()])
        .args(["--m", &m.to_string()])
        .args(["--ef-construction", &ef_construction.to_string()])
        .args(["--ef", &efs.join(",")])
        .stderr(Stdio::inherit())
        .output()
        .map_err(|e| format!("cannot run bench/hnswlib_baseline.py: {e}"))?;
    if !output.status.success() {
        return Err(format!(
            "bench/hnswlib_baseline.py failed ({})",
            output.status
        ));
    }
    let json: serde_json::Value = serde_json::from_slice(&output.stdout)
        .map_err(|e| format!("bench/hnswlib_baseline.py printed no JSON: {e}"))?;
    let num = |v: &serde_json::Value, key: &str| {
        v[key]
            .as_f64()
            .ok_or_else(|| format!("bench/hnswlib_baseline.py: no {key}"))
    };
    let passes = json["passes"]
        .as_array()
        .ok_or("bench/hnswlib_baseline.py: no passes")?
        .iter()
        .map(|p| {
            Ok(QueryStats {
                ef_search: num(p, "ef_search")? as u32,
                recall: num(p, "recall")?,
                qps: num(p, "qps")?,
                p50_ms: num(p, "p50_ms")?,
                p99_ms: num(p, "p99_ms")?,
            })
        })
        .collect::<Result<Vec<_>, String>>()?;
    let batch: Vec<String> = json["passes"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|p| p["batch_qps"].as_f64())
        .map(|q| format!("{q:.0}"))
        .collect();
    let threads = num(&json, "build_threads")?;
    Ok(Baseline {
        result: EngineResult {
            name: "hnswlib".into(),
            build_secs: num(&json, "build_secs")?,
            index_bytes: num(&json, "index_bytes")? as i64,
            built_rows: ds.base.len(),
            inserts: None,
            passes,
            concurrent: Vec::new(),
            filtered: None,
            range: None,
        },
        note: format!(
            "hnswlib: the same algorithm in process (Python bindings), built on {threads} thread(s), \
             queries on 1 thread, one call per query; all queries in one call: {} QPS",
            batch.join(", ")
        ),
    })
}
