//! Distance ranges (vdb only; pgvector has no such index condition):
//! `WHERE embedding <<=>> sphere($1, $2)`, the radius that of each
//! query's exact 100th nearest row, so the true answer is those 100 rows.
//! Recall is the share of them the index returns (the executor rechecks
//! the range, so nothing outside comes back).

use crate::dataset::{self, Dataset};
use crate::db::{self, BoxError, Engine};
use postgres::Client;
use std::path::Path;

/// Rows in each query's range.
pub const ROWS: usize = 100;

/// Results of the range pass.
#[derive(Debug, Clone)]
pub struct RangePass {
    pub recall: f64,
    pub rows_per_query: f64,
    pub qps: f64,
    pub p99_ms: f64,
}

/// Each query's exact [`ROWS`] nearest ids and the radius that holds them.
pub fn ground_truth(ds: &Dataset, cache: &Path) -> Vec<(Vec<i32>, f64)> {
    let truth = dataset::ground_truth(ds, ROWS, cache);
    let row_of: std::collections::HashMap<i32, usize> =
        ds.ids.iter().enumerate().map(|(i, &id)| (id, i)).collect();
    truth
        .into_iter()
        .enumerate()
        .map(|(q, ids)| {
            let (query, far) = (ds.queries.row(q), ds.base.row(row_of[&ids[ROWS - 1]]));
            let d = ds.metric.distance(query, far);
            // The SQL operator rounds its own way: a hair of room.
            (ids, d + 1e-6 * d.abs().max(1e-3))
        })
        .collect()
}

/// Runs every query's range once at `ef_search`.
pub fn run(
    client: &mut Client,
    engine: &Engine,
    ds: &Dataset,
    truth: &[(Vec<i32>, f64)],
    ef_search: u32,
) -> Result<RangePass, BoxError> {
    client.batch_execute(&format!(
        "SET {} = {ef_search}; SET enable_seqscan = off",
        engine.ef_search_guc
    ))?;
    let sql = format!(
        "SELECT id FROM bench_items WHERE embedding {} sphere($1, $2)",
        ds.metric.range_operator()
    );
    let (ids, radii): (Vec<Vec<i32>>, Vec<f64>) = truth.iter().cloned().unzip();
    let run = db::run_pass_with(client, &sql, ds, &ids, &radii)?;
    let pass = RangePass {
        recall: run.hits as f64 / (truth.len() * ROWS) as f64,
        rows_per_query: run.rows as f64 / truth.len() as f64,
        qps: run.qps,
        p99_ms: run.p99_ms,
    };
    eprintln!(
        "[{}] ranges of {ROWS} rows: recall {:.3}, {:.1} rows/query, {:.0} QPS",
        engine.name, pass.recall, pass.rows_per_query, pass.qps
    );
    Ok(pass)
}

/// The range line of the report.
pub fn print(pass: &RangePass, ef_search: u32) {
    println!();
    println!(
        "distance ranges (vdb; WHERE embedding <<op>> sphere(q, r), r the exact {ROWS}th nearest's distance, ef_search {ef_search}, no ORDER BY):"
    );
    println!(
        "  recall {:.3}, {:.1} rows/query, {:.0} QPS, p99 {:.2} ms",
        pass.recall, pass.rows_per_query, pass.qps, pass.p99_ms
    );
}
