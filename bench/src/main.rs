//! vdb benchmark: vdb's `vhnsw` against pgvector's `hnsw` on the same
//! server, same data, same queries, in one run, with hnswlib in process
//! beside them as the algorithm's ceiling. Not a test: it prints a table
//! and writes a plot per dataset.
//!
//! ```text
//! vdb-bench --vdb <conninfo> [--pgvector <conninfo>]
//!           [--dataset glove-50,minilm-384,synth-1536,gmm-128,glove-50-ip,minilm-384-ip]
//!           [--rows N] [--queries N] [--ef 10,20,40,80,160,320]
//!           [--m 16] [--ef-construction 64] [--vdb-code-bits N] [--insert-rows 20000]
//!           [--filtered-ef 40] [--shard <conninfo>]... [--scale-out-ef 20,40,80,160]
//!           [--vacuum] [--mixed]
//!           [--no-hnswlib | --hnswlib-only] [--data-dir DIR] [--out DIR]
//! ```
//!
//! Datasets (`--dataset`, comma-separated, run one after the other;
//! default `glove-50`; see [`dataset`]):
//! - `glove-50` (or `glove`): GloVe-6B-50d, 400,000 × 50, cosine;
//! - `minilm-384` (or `minilm`): Debian's ~62,000 package descriptions
//!   embedded with all-MiniLM-L6-v2, 384 dims, cosine (made once by
//!   `bench/embed.py`, about an hour on 2 cores; skipped, saying why, when
//!   the model package or the descriptions cannot be had);
//! - `synth-1536`: 100,000 × 1,536 (`--rows`) seeded Gaussian clusters of
//!   low intrinsic dimension, cosine (made in seconds; ground truth about
//!   40 s on 2 cores);
//! - `gmm-128` (or `gmm`): 1,000,000 × 128 (`--rows`) Gaussian mixture, L2;
//! - `glove-50-ip` (or `glove-ip`): GloVe-6B-50d's rows as they are (not
//!   unit length: norms 0.05 to 14.1, median 4.4), inner product (`<#>`,
//!   `vector_ip_ops`, hnswlib's `ip`): maximum inner product search;
//! - `minilm-384-ip` (or `minilm-ip`): MiniLM-384's rows each scaled by a
//!   seeded factor drawn log-uniformly from [0.25, 4] (a synthetic spread
//!   of norms over real directions), queries left unit length, inner
//!   product.
//!
//! `--vdb-code-bits N` builds vdb's index with `code_bits = N` (its
//! neighbour codes; 0: none) instead of the default; vdb is then named
//! `vdb code_bits=N` in the report.
//!
//! 1,000 queries (`--queries`) are taken out of every dataset with a fixed
//! seed. `--rows` caps the rows, queries included, of the real datasets and
//! sets the base rows of the generated ones.
//!
//! Each engine: load the base rows but `--insert-rows` of them (spread
//! evenly), build the index, insert the held-back rows through it (one row
//! per statement from 1 and 4 clients, then 1,000-row statements), measure
//! recall right away and how long vdb takes to merge its pending list,
//! then run the query passes over the complete table (one client, then
//! [`CLIENTS`] at once) and vdb's distance ranges ([`ranges`], on the same
//! index). Last, at `--filtered-ef` (0 skips it and the ranges), the
//! filtered goal table of [`filtered`]: filter columns are added to the
//! table (10 %, 1 % and 0.1 % of the rows, tenants of very unequal sizes,
//! and slabs correlated and anti-correlated with the query); vdb measures
//! them on one composite index (vector, then the filter columns), pgvector
//! on its plain index once per `hnsw.iterative_scan` mode; then vdb's
//! figures are checked against the goals. With `--shard`
//! servers (2 or more), vdb's run is followed by the scale-out run: the
//! same rows split over 2, then 3 shards behind the vdb database.
//!
//! Two optional modes run on every engine after the query passes, before
//! the ranges and the filtered table: `--mixed` ([`mixed`]: the queries'
//! QPS while a client inserts single rows, flat out and paced), then
//! `--vacuum` ([`vacuum`]: deletes of 10 % and 50 % of the rows and
//! VACUUM, then ten rounds of updates, on fresh tables and indexes; the
//! dataset's table and a fresh index are restored afterwards when the
//! ranges or the filtered table follow). Each prints its own table.
//!
//! Then, unless `--no-hnswlib`, [`hnswlib`] builds the same graph (same `m`
//! and `ef_construction`) in process and runs the same queries on one
//! thread; its rows join the report (skipped, saying why, when pip cannot
//! install hnswlib). `--hnswlib-only` runs only that, without PostgreSQL.
//!
//! `scripts/bench.sh` starts a throwaway cluster and runs this.

mod citus;
mod dataset;
mod db;
mod filtered;
mod hnswlib;
mod insert;
mod mixed;
mod python;
mod ranges;
mod report;
mod scale_out;
mod vacuum;

use db::{Engine, QueryStats};

/// Clients of the concurrent query passes.
pub const CLIENTS: usize = 4;
/// How many times each concurrent pass runs every query.
pub const CONCURRENT_ROUNDS: usize = 2;
use report::EngineResult;
use std::path::PathBuf;

struct Options {
    vdb: String,
    pgvector: Option<String>,
    datasets: Vec<String>,
    rows: Option<usize>,
    queries: usize,
    ef: Vec<u32>,
    m: u32,
    ef_construction: u32,
    vdb_code_bits: Option<u8>,
    insert_rows: usize,
    filtered_ef: u32,
    shards: Vec<String>,
    scale_out_ef: Vec<u32>,
    citus: Option<String>,
    citus_shards: u32,
    hnswlib: bool,
    hnswlib_only: bool,
    vacuum: bool,
    mixed: bool,
    data_dir: PathBuf,
    out: PathBuf,
}

/// The datasets `--dataset` knows, by canonical name and aliases.
const DATASETS: [(&str, &str); 6] = [
    ("glove-50", "glove"),
    ("minilm-384", "minilm"),
    ("synth-1536", "synth"),
    ("gmm-128", "gmm"),
    ("glove-50-ip", "glove-ip"),
    ("minilm-384-ip", "minilm-ip"),
];

fn parse() -> Result<Options, String> {
    let mut o = Options {
        vdb: String::new(),
        pgvector: None,
        datasets: vec!["glove-50".into()],
        rows: None,
        queries: 1000,
        ef: vec![10, 20, 40, 80, 160, 320],
        m: 16,
        ef_construction: 64,
        vdb_code_bits: None,
        insert_rows: 20_000,
        filtered_ef: 40,
        shards: Vec::new(),
        scale_out_ef: vec![20, 40, 80, 160],
        citus: None,
        citus_shards: 4,
        hnswlib: true,
        hnswlib_only: false,
        vacuum: false,
        mixed: false,
        data_dir: PathBuf::from(".data/bench"),
        out: PathBuf::from("bench/out"),
    };
    let mut args = std::env::args().skip(1);
    while let Some(flag) = args.next() {
        let mut value = || args.next().ok_or(format!("{flag} needs a value"));
        match flag.as_str() {
            "--vdb" => o.vdb = value()?,
            "--pgvector" => o.pgvector = Some(value()?),
            "--dataset" => {
                o.datasets = value()?
                    .split(',')
                    .map(|s| {
                        let s = s.trim();
                        DATASETS
                            .iter()
                            .find(|(name, alias)| s == *name || s == *alias)
                            .map(|(name, _)| name.to_string())
                            .ok_or(format!(
                                "unknown dataset {s} (one of {})",
                                DATASETS.map(|d| d.0).join(", ")
                            ))
                    })
                    .collect::<Result<_, _>>()?
            }
            "--no-hnswlib" => o.hnswlib = false,
            "--hnswlib-only" => o.hnswlib_only = true,
            "--vacuum" => o.vacuum = true,
            "--mixed" => o.mixed = true,
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
            "--vdb-code-bits" => {
                o.vdb_code_bits = Some(
                    value()?
                        .parse()
                        .map_err(|e| format!("--vdb-code-bits: {e}"))?,
                )
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
            "--citus" => o.citus = Some(value()?),
            "--citus-shards" => {
                o.citus_shards = value()?
                    .parse()
                    .map_err(|e| format!("--citus-shards: {e}"))?
            }
            "--data-dir" => o.data_dir = value()?.into(),
            "--out" => o.out = value()?.into(),
            other => return Err(format!("unknown argument {other}")),
        }
    }
    if o.vdb.is_empty() && !o.hnswlib_only {
        return Err("--vdb <conninfo> is required".into());
    }
    if o.hnswlib_only && !o.hnswlib {
        return Err("--hnswlib-only and --no-hnswlib: nothing to run".into());
    }
    Ok(o)
}

/// One engine's results: the report's, and those of the optional modes
/// (kept beside it, as the hnswlib baseline builds an [`EngineResult`] too).
struct EngineRun {
    result: EngineResult,
    vacuum: Option<vacuum::VacuumRun>,
    mixed: Option<mixed::MixedRun>,
}

fn run_engine(
    engine: &Engine,
    ds: &dataset::Dataset,
    truth: &[Vec<i32>],
    work: Option<&filtered::Workload>,
    range_truth: &[(Vec<i32>, f64)],
    vacuum_work: Option<&vacuum::Workload>,
    o: &Options,
) -> Result<EngineRun, db::BoxError> {
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
    let mut concurrent = Vec::new();
    for &ef in &o.ef {
        let p = db::concurrent_pass(engine, ds, truth, ef, CLIENTS, CONCURRENT_ROUNDS)?;
        eprintln!(
            "[{}] {CLIENTS} clients, ef {ef}: recall {:.3}, {:.0} QPS",
            engine.name, p.recall, p.qps
        );
        concurrent.push(p);
    }
    // Mixed first, on the table the passes measured; the vacuum run then
    // replaces table and index, and restores them if later passes need them.
    let mixed = if o.mixed {
        Some(mixed::run(&mut client, engine, ds)?)
    } else {
        None
    };
    let ranges_follow = !range_truth.is_empty() && engine.extension == "vdb";
    let vacuum = vacuum_work
        .map(|w| {
            vacuum::run(
                &mut client,
                engine,
                ds,
                w,
                o.m,
                o.ef_construction,
                ranges_follow || work.is_some(),
            )
        })
        .transpose()?;
    // Ranges before the goal table, which replaces table and index: they
    // measure the plain index the other passes did.
    let range = if range_truth.is_empty() || engine.extension != "vdb" {
        None
    } else {
        Some(ranges::run(
            &mut client,
            engine,
            ds,
            range_truth,
            o.filtered_ef,
        )?)
    };
    let filtered = work
        .map(|w| {
            filtered::run(
                &mut client,
                engine,
                ds,
                w,
                o.m,
                o.ef_construction,
                o.filtered_ef,
            )
        })
        .transpose()?;
    let result = EngineResult {
        name: engine.name.to_string(),
        build_secs: build.as_secs_f64(),
        index_bytes: size,
        built_rows: ds.base.len() - held_back.len(),
        inserts,
        passes,
        concurrent,
        filtered,
        range,
    };
    Ok(EngineRun {
        result,
        vacuum,
        mixed,
    })
}

fn load_dataset(name: &str, o: &Options) -> Result<dataset::Dataset, String> {
    match name {
        "glove-50" => dataset::glove(&o.data_dir, o.rows, o.queries),
        "minilm-384" => dataset::minilm(&o.data_dir, o.rows, o.queries),
        "glove-50-ip" => dataset::glove_ip(&o.data_dir, o.rows, o.queries),
        "minilm-384-ip" => dataset::minilm_ip(&o.data_dir, o.rows, o.queries),
        "synth-1536" => {
            dataset::synthetic_clusters(o.rows.unwrap_or(100_000), 1536, 100, 32, o.queries)
        }
        "gmm-128" => dataset::gaussian_mixture(o.rows.unwrap_or(1_000_000), 128, 100, o.queries),
        other => Err(format!("unknown dataset {other}")),
    }
}

fn main() {
    let o = match parse() {
        Ok(o) => o,
        Err(e) => {
            eprintln!("vdb-bench: {e}");
            std::process::exit(2);
        }
    };
    let mut engines = Vec::new();
    if !o.hnswlib_only {
        engines.push(match o.vdb_code_bits {
            Some(bits) => Engine::vdb_code_bits(o.vdb.clone(), bits),
            None => Engine::vdb(o.vdb.clone()),
        });
        match &o.pgvector {
            Some(conn) if db::has_extension(conn, "vector") => {
                engines.push(Engine::pgvector(conn.clone()))
            }
            Some(_) => {
                eprintln!("pgvector is not installed on the --pgvector server: running vdb alone")
            }
            None => eprintln!("no --pgvector connection: running vdb alone"),
        }
    }
    let mut skipped = Vec::new();
    for name in &o.datasets {
        let started = std::time::Instant::now();
        let ds = match load_dataset(name, &o) {
            Ok(ds) => ds,
            Err(e) => {
                eprintln!("vdb-bench: SKIPPING dataset {name}: {e}");
                skipped.push(format!("{name}: {e}"));
                continue;
            }
        };
        eprintln!(
            "dataset {}: {} base rows, {} queries, {} dims ({:.1}s)",
            ds.name,
            ds.base.len(),
            ds.queries.len(),
            ds.base.dims,
            started.elapsed().as_secs_f64()
        );
        let started = std::time::Instant::now();
        let truth = dataset::ground_truth(&ds, 10, &o.data_dir);
        eprintln!(
            "ground truth ready in {:.1}s",
            started.elapsed().as_secs_f64()
        );
        run_dataset(&ds, &truth, &engines, &o);
    }
    if !skipped.is_empty() {
        println!();
        for s in &skipped {
            println!("SKIPPED dataset {s}");
        }
        if skipped.len() == o.datasets.len() {
            std::process::exit(1);
        }
    }
}

/// Every engine, the hnswlib baseline, the report and the plot of one dataset.
fn run_dataset(ds: &dataset::Dataset, truth: &[Vec<i32>], engines: &[Engine], o: &Options) {
    let work = if o.filtered_ef == 0 || engines.is_empty() {
        None
    } else {
        let started = std::time::Instant::now();
        let work = filtered::workload(ds, truth);
        eprintln!(
            "filter columns and filtered ground truth ready in {:.1}s",
            started.elapsed().as_secs_f64()
        );
        Some(work)
    };
    // Ranges are vdb's alone; measured with the filtered queries' ef.
    let range_truth = if o.filtered_ef == 0 || !engines.iter().any(|e| e.extension == "vdb") {
        Vec::new()
    } else {
        ranges::ground_truth(ds, &o.data_dir)
    };
    let vacuum_work = if o.vacuum && !engines.is_empty() {
        let started = std::time::Instant::now();
        let work = vacuum::workload(ds);
        eprintln!(
            "ground truth of the deletes and update rounds ready in {:.1}s",
            started.elapsed().as_secs_f64()
        );
        Some(work)
    } else {
        None
    };
    let (mut results, mut vacuum_runs, mut mixed_runs) = (Vec::new(), Vec::new(), Vec::new());
    for engine in engines {
        match run_engine(
            engine,
            ds,
            truth,
            work.as_ref(),
            &range_truth,
            vacuum_work.as_ref(),
            o,
        ) {
            Ok(r) => {
                results.push(r.result);
                vacuum_runs.extend(r.vacuum);
                mixed_runs.extend(r.mixed);
            }
            Err(e) => {
                eprintln!("vdb-bench: {}: {e}", engine.name);
                std::process::exit(1);
            }
        }
    }
    let baseline = if o.hnswlib {
        match hnswlib::run(ds, truth, &o.data_dir, o.m, o.ef_construction, &o.ef) {
            Ok(b) => Some(b),
            Err(e) => {
                eprintln!("vdb-bench: SKIPPING the hnswlib baseline: {e}");
                println!("(no hnswlib baseline: {e})");
                None
            }
        }
    } else {
        None
    };
    report::print(
        &ds.name,
        ds.base.len(),
        ds.queries.len(),
        &results,
        baseline.as_ref(),
    );
    if !engines.is_empty() {
        if let Some(range) = results.iter().find_map(|r| r.range.as_ref()) {
            ranges::print(range, o.filtered_ef);
        }
        filtered::print(&ds.name, &results, o.filtered_ef);
        mixed::print(&ds.name, &mixed_runs);
        vacuum::print(&ds.name, &vacuum_runs);
    }
    if o.shards.len() >= 2 && !engines.is_empty() {
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
                ds,
                truth,
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
    if let Some(conn) = &o.citus {
        match citus::run(
            conn,
            o.citus_shards,
            ds,
            truth,
            &o.scale_out_ef,
            o.m,
            o.ef_construction,
        ) {
            Ok(run) => citus::print(&run),
            Err(e) => {
                eprintln!("vdb-bench: citus: {e}");
                std::process::exit(1);
            }
        }
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
    let plotted: Vec<&EngineResult> = results
        .iter()
        .chain(baseline.as_ref().map(|b| &b.result))
        .collect();
    match report::plot(&png, &title, &plotted) {
        Ok(()) => eprintln!("plot written to {}", png.display()),
        Err(e) => eprintln!("no plot: {e}"),
    }
}
