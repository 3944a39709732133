//! vdb benchmark: vdb's `vhnsw` against pgvector's `hnsw` on the same
//! server, same data, same queries, in one run. Not a test: it prints a
//! table and writes a plot.
//!
//! ```text
//! vdb-bench --vdb <conninfo> [--pgvector <conninfo>] [--dataset glove|gmm]
//!           [--rows N] [--queries N] [--ef 10,20,40,80,160,320]
//!           [--m 16] [--ef-construction 64] [--insert-rows 20000]
//!           [--filtered-ef 40] [--shard <conninfo>]... [--scale-out-ef 20,40,80,160]
//!           [--data-dir DIR] [--out DIR]
//! ```
//!
//! Each engine: load the base rows but `--insert-rows` of them (spread
//! evenly), build the index, insert the held-back rows through it (one row
//! per statement from 1 and 4 clients, then 1,000-row statements), measure
//! recall right away and how long vdb takes to merge its pending list,
//! then run the query passes over the complete table, and the filtered
//! queries of [`filtered`] at `--filtered-ef` (0: skip). With `--shard`
//! servers (2 or more), vdb's run is followed by the scale-out run: the
//! same rows split over 2, then 3 shards behind the vdb database.
//!
//! ```text
//! ```
//!
//! `scripts/bench.sh` starts a throwaway cluster and runs this.

mod dataset;
mod db;
mod filtered;
mod insert;
mod report;
mod scale_out;

use db::{Engine, QueryStats};
use report::EngineResult;
use std::path::PathBuf;

struct Options {
    vdb: String,
    pgvector: Option<String>,
    dataset: String,
    rows: Option<usize>,
    queries: usize,
    ef: Vec<u32>,
    m: u32,
    ef_construction: u32,
    insert_rows: usize,
    filtered_ef: u32,
    shards: Vec<String>,
    scale_out_ef: Vec<u32>,
    data_dir: PathBuf,
    out: PathBuf,
}

fn parse() -> Result<Options, String> {
    let mut o = Options {
        vdb: String::new(),
        pgvector: None,
        dataset: "glove".into(),
        rows: None,
        queries: 1000,
        ef: vec![10, 20, 40, 80, 160, 320],
        m: 16,
        ef_construction: 64,
        insert_rows: 20_000,
        filtered_ef: 40,
        shards: Vec::new(),
        scale_out_ef: vec![20, 40, 80, 160],
        data_dir: PathBuf::from(".data/bench"),
        out: PathBuf::from("bench/out"),
    };
    let mut args = std::env::args().skip(1);
    while let Some(flag) = args.next() {
        let mut value = || args.next().ok_or(format!("{flag} needs a value"));
        match flag.as_str() {
            "--vdb" => o.vdb = value()?,
            "--pgvector" => o.pgvector = Some(value()?),
            "--dataset" => o.dataset = value()?,
            "--rows" => o.rows = Some(value()?.parse().map_err(|e| format!("--rows: {e}"))?),
            "--queries" => o.queries = value()?.parse().map_err(|e| format!("--queries: {e}"))?,
            "--ef" => {
                o.ef = value()?
                    .split(',')
                    .map(|s| s.trim().parse())
                    .collect::<Result<_, _>>()
                    .map_err(|e| format!("--ef: {e}"))?
            }
            "--m" => o.m = value()?.parse().map_err(|e| format!("--m: {e}"))?,
            "--ef-construction" => {
                o.ef_construction = value()?
                    .parse()
                    .map_err(|e| format!("--ef-construction: {e}"))?
            }
            "--insert-rows" => {
                o.insert_rows = value()?
                    .parse()
                    .map_err(|e| format!("--insert-rows: {e}"))?
            }
            "--filtered-ef" => {
                o.filtered_ef = value()?
                    .parse()
                    .map_err(|e| format!("--filtered-ef: {e}"))?
            }
            "--shard" => o.shards.push(value()?),
            "--scale-out-ef" => {
                o.scale_out_ef = value()?
                    .split(',')
                    .map(|s| s.trim().parse())
                    .collect::<Result<_, _>>()
                    .map_err(|e| format!("--scale-out-ef: {e}"))?
            }
            "--data-dir" => o.data_dir = value()?.into(),
            "--out" => o.out = value()?.into(),
            other => return Err(format!("unknown argument {other}")),
        }
    }
    if o.vdb.is_empty() {
        return Err("--vdb <conninfo> is required".into());
    }
    Ok(o)
}

fn run_engine(
    engine: &Engine,
    ds: &dataset::Dataset,
    truth: &[Vec<i32>],
    filtered_truth: &[(i32, Vec<Vec<i32>>)],
    o: &Options,
) -> Result<EngineResult, db::BoxError> {
    let mut client = engine.connect()?;
    let settings: Vec<String> = client
        .query("SELECT name || '=' || setting FROM pg_settings WHERE name IN ('shared_buffers', 'maintenance_work_mem', 'max_parallel_maintenance_workers', 'work_mem') ORDER BY name", &[])?
        .iter()
        .map(|r| r.get(0))
        .collect();
    eprintln!("[{}] settings: {}", engine.name, settings.join(", "));
    let held_back = insert::held_back(ds.base.len(), o.insert_rows);
    let load = db::load(&mut client, engine, ds, &held_back)?;
    eprintln!(
        "[{}] loaded {} rows in {:.1}s",
        engine.name,
        ds.base.len() - held_back.len(),
        load.as_secs_f64()
    );
    let (build, size) = db::build(&mut client, engine, ds, o.m, o.ef_construction)?;
    eprintln!(
        "[{}] built in {:.1}s, {:.1} MiB",
        engine.name,
        build.as_secs_f64(),
        size as f64 / 1048576.0
    );
    let inserts = if held_back.is_empty() {
        None
    } else {
        // The same rows into a table without an index: the ceiling.
        client.batch_execute(
            "DROP TABLE IF EXISTS bench_plain; CREATE TABLE bench_plain (LIKE bench_items)",
        )?;
        let plain = insert::run(&mut client, engine, "bench_plain", ds, &held_back)?;
        client.batch_execute("DROP TABLE bench_plain")?;
        let indexed = insert::run(&mut client, engine, "bench_items", ds, &held_back)?;
        let mut stats = insert::InsertStats {
            indexed,
            plain,
            ..Default::default()
        };
        stats.pending_after = insert::pending(&mut client, engine)?;
        let pass = db::query_pass(&mut client, engine, ds, truth, 40)?;
        (stats.recall_after, stats.qps_after) = (pass.recall, pass.qps);
        stats.drain_secs = insert::pending_drain(&mut client, engine)?;
        eprintln!(
            "[{}] right after the inserts: recall {:.3}, {:.0} QPS at ef 40 ({} rows pending); pending list empty {:.1}s later",
            engine.name,
            stats.recall_after,
            stats.qps_after,
            stats.pending_after.map_or("no".into(), |p| p.to_string()),
            stats.drain_secs.unwrap_or(0.0)
        );
        Some(stats)
    };
    // Warm the cache once, then measure.
    db::query_pass(&mut client, engine, ds, truth, 40)?;
    let mut passes: Vec<QueryStats> = Vec::new();
    for &ef in &o.ef {
        let p = db::query_pass(&mut client, engine, ds, truth, ef)?;
        eprintln!(
            "[{}] ef {ef}: recall {:.3}, {:.0} QPS",
            engine.name, p.recall, p.qps
        );
        passes.push(p);
    }
    let filtered = if o.filtered_ef == 0 {
        Vec::new()
    } else {
        filtered::run(&mut client, engine, ds, filtered_truth, o.filtered_ef)?
    };
    Ok(EngineResult {
        name: engine.name.to_string(),
        build_secs: build.as_secs_f64(),
        index_bytes: size,
        built_rows: ds.base.len() - held_back.len(),
        inserts,
        passes,
        filtered,
    })
}

fn main() {
    let o = match parse() {
        Ok(o) => o,
        Err(e) => {
            eprintln!("vdb-bench: {e}");
            std::process::exit(2);
        }
    };
    let ds = match o.dataset.as_str() {
        "glove" => dataset::glove(&o.data_dir, o.rows, o.queries),
        "gmm" => dataset::gaussian_mixture(o.rows.unwrap_or(1_000_000), 128, 100, o.queries),
        other => Err(format!("unknown dataset {other} (glove or gmm)")),
    };
    let ds = ds.unwrap_or_else(|e| {
        eprintln!("vdb-bench: {e}");
        std::process::exit(1)
    });
    eprintln!(
        "dataset {}: {} base rows, {} queries, {} dims",
        ds.name,
        ds.base.len(),
        ds.queries.len(),
        ds.base.dims
    );
    let truth = dataset::ground_truth(&ds, 10, &o.data_dir);
    let filtered_truth = if o.filtered_ef == 0 {
        Vec::new()
    } else {
        filtered::ground_truth(&ds)
    };

    let mut engines = vec![Engine::vdb(o.vdb.clone())];
    match &o.pgvector {
        Some(conn) if db::has_extension(conn, "vector") => {
            engines.push(Engine::pgvector(conn.clone()))
        }
        Some(_) => {
            eprintln!("pgvector is not installed on the --pgvector server: running vdb alone")
        }
        None => eprintln!("no --pgvector connection: running vdb alone"),
    }
    let mut results = Vec::new();
    for engine in &engines {
        match run_engine(engine, &ds, &truth, &filtered_truth, &o) {
            Ok(r) => results.push(r),
            Err(e) => {
                eprintln!("vdb-bench: {}: {e}", engine.name);
                std::process::exit(1);
            }
        }
    }
    report::print(&ds.name, ds.base.len(), ds.queries.len(), &results);
    let filtered_results: Vec<(String, Vec<filtered::FilteredPass>)> = results
        .iter()
        .map(|r| (r.name.clone(), r.filtered.clone()))
        .collect();
    filtered::print(&filtered_results, o.filtered_ef);
    if o.shards.len() >= 2 {
        let vdb = &results[0];
        let single: Vec<(u32, f64, f64)> = o
            .scale_out_ef
            .iter()
            .filter_map(|&ef| vdb.passes.iter().find(|p| p.ef_search == ef))
            .map(|p| (p.ef_search, p.recall, p.qps))
            .collect();
        let efs: Vec<u32> = single.iter().map(|s| s.0).collect();
        let mut runs = Vec::new();
        for n in 2..=o.shards.len().min(3) {
            match scale_out::run(
                &engines[0],
                &o.shards,
                n,
                &ds,
                &truth,
                &efs,
                o.m,
                o.ef_construction,
            ) {
                Ok(r) => runs.push(r),
                Err(e) => {
                    eprintln!("vdb-bench: scale-out with {n} shards: {e}");
                    std::process::exit(1);
                }
            }
        }
        scale_out::print(&single, vdb.build_secs, &runs);
    }
    let _ = std::fs::create_dir_all(&o.out);
    let png = o.out.join(format!("{}-recall-qps.png", ds.name));
    let title = format!(
        "{} ({} rows, m={}, ef_construction={})",
        ds.name,
        ds.base.len(),
        o.m,
        o.ef_construction
    );
    match report::plot(&png, &title, &results) {
        Ok(()) => eprintln!("plot written to {}", png.display()),
        Err(e) => eprintln!("no plot: {e}"),
    }
}
