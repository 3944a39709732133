//! Filtered queries: `WHERE id % n = 0 ORDER BY embedding <op> $1 LIMIT 10`,
//! where the filter keeps 10% or 1% of the rows and the index has to look
//! past the rows it throws away. Recall is against the exact top 10 of the
//! rows that pass the filter; a query that returns fewer than 10 rows
//! counts the missing ones as misses.
//!
//! vdb's scan always resumes until `LIMIT` is met (bounded by
//! `vhnsw.max_scan_tuples`); pgvector's only with `hnsw.iterative_scan`
//! (off by default, `relaxed_order` or `strict_order` since 0.8), so
//! pgvector runs once per mode. Both engines' scans stop at 20,000 tuples
//! by default.

use crate::dataset::{self, Dataset};
use crate::db::{self, BoxError, Engine};
use postgres::Client;

/// Rows kept by the filter: one id in `modulus`.
pub const MODULI: [i32; 2] = [10, 100];

/// Results of one filtered pass.
#[derive(Debug, Clone)]
pub struct FilteredPass {
    pub modulus: i32,
    /// The engine's scan mode, as set for this pass.
    pub mode: &'static str,
    pub recall: f64,
    pub rows_per_query: f64,
    pub qps: f64,
    pub p99_ms: f64,
}

/// The exact filtered top 10 of every query, per modulus.
pub fn ground_truth(ds: &Dataset) -> Vec<(i32, Vec<Vec<i32>>)> {
    MODULI
        .iter()
        .map(|&n| (n, dataset::ground_truth_where(ds, 10, |id| id % n == 0)))
        .collect()
}

/// The scan modes to measure: vdb has one; pgvector's iterative scan is
/// off by default.
fn modes(engine: &Engine) -> Vec<(&'static str, &'static str)> {
    if engine.extension == "vector" {
        vec![
            (
                "iterative_scan off (default)",
                "SET hnsw.iterative_scan = off",
            ),
            ("relaxed_order", "SET hnsw.iterative_scan = relaxed_order"),
            ("strict_order", "SET hnsw.iterative_scan = strict_order"),
        ]
    } else {
        vec![("default", "")]
    }
}

/// Runs every query once per filter and scan mode at `ef_search`.
pub fn run(
    client: &mut Client,
    engine: &Engine,
    ds: &Dataset,
    truth: &[(i32, Vec<Vec<i32>>)],
    ef_search: u32,
) -> Result<Vec<FilteredPass>, BoxError> {
    let mut passes = Vec::new();
    for (mode, setting) in modes(engine) {
        client.batch_execute(&format!(
            "SET {} = {ef_search}; SET enable_seqscan = off; {setting}",
            engine.ef_search_guc
        ))?;
        for (modulus, expected) in truth {
            let sql = format!(
                "SELECT id FROM bench_items WHERE id % {modulus} = 0 ORDER BY embedding {} $1 LIMIT 10",
                db::operator(ds)
            );
            let run = db::run_pass(client, &sql, ds, expected)?;
            let pass = FilteredPass {
                modulus: *modulus,
                mode,
                recall: run.hits as f64 / (expected.len() * 10) as f64,
                rows_per_query: run.rows as f64 / expected.len() as f64,
                qps: run.qps,
                p99_ms: run.p99_ms,
            };
            eprintln!(
                "[{}] filter 1/{modulus} ({mode}): recall {:.3}, {:.1} rows/query, {:.0} QPS",
                engine.name, pass.recall, pass.rows_per_query, pass.qps
            );
            passes.push(pass);
        }
    }
    if engine.extension == "vector" {
        client.batch_execute("RESET hnsw.iterative_scan")?;
    }
    Ok(passes)
}

/// The filtered-query table.
pub fn print(results: &[(String, Vec<FilteredPass>)], ef_search: u32) {
    if results.iter().all(|(_, p)| p.is_empty()) {
        return;
    }
    println!();
    println!(
        "filtered queries (WHERE id % n = 0 ... ORDER BY distance LIMIT 10, ef_search {ef_search}, exact filtered top 10 as truth):"
    );
    println!(
        "{:<44} {:>6} {:>7} {:>9} {:>8} {:>7}",
        "engine (scan mode)", "kept", "recall", "rows/q", "QPS", "p99 ms"
    );
    for (name, passes) in results {
        for p in passes {
            println!(
                "{:<44} {:>5}% {:>7.3} {:>9.1} {:>8.0} {:>7.2}",
                format!("{name} ({})", p.mode),
                100 / p.modulus,
                p.recall,
                p.rows_per_query,
                p.qps,
                p.p99_ms
            );
        }
    }
}
