//! The write workload: rows held back from the initial load go in through
//! the index, one row per statement (1 and 4 clients) and in 1,000-row
//! statements; then how long vdb's pending list takes to drain and what
//! recall looks like while it does.

use crate::dataset::Dataset;
use crate::db::{BoxError, Engine, Vector};
use postgres::Client;
use std::time::{Duration, Instant};

/// Rows per statement in the batched phase.
pub const BATCH: usize = 1000;

/// The dataset rows that the initial load leaves out and the write
/// workload inserts: `count` rows spread evenly over the base set.
pub fn held_back(rows: usize, count: usize) -> Vec<usize> {
    if count == 0 || rows == 0 {
        return Vec::new();
    }
    let stride = (rows / count.min(rows)).max(1);
    (0..rows).step_by(stride).take(count).collect()
}

/// Rows per second of each phase.
#[derive(Debug, Clone, Copy, Default)]
pub struct Rates {
    pub single_1: f64,
    pub single_4: f64,
    pub batched: f64,
}

/// The write workload's results.
#[derive(Debug, Clone, Copy, Default)]
pub struct InsertStats {
    /// Into the indexed table.
    pub indexed: Rates,
    /// The same rows into a table without an index.
    pub plain: Rates,
    /// Recall at ef_search 40 right after the last insert, and the rows
    /// then still pending (vdb).
    pub recall_after: f64,
    pub qps_after: f64,
    pub pending_after: Option<i64>,
    /// Seconds from then until nothing was left pending (vdb).
    pub drain_secs: Option<f64>,
}

fn insert_one(
    client: &mut Client,
    statement: &postgres::Statement,
    ds: &Dataset,
    row: usize,
) -> Result<(), BoxError> {
    client.execute(statement, &[&ds.ids[row], &Vector(ds.base.row(row))])?;
    Ok(())
}

/// Connection settings of the write workload: the commit is made durable
/// asynchronously, so that the figures measure the index, not the disk's
/// flush latency (which caps every engine alike).
const SESSION: &str = "SET synchronous_commit = off";

fn single_row_statement(client: &mut Client, table: &str) -> Result<postgres::Statement, BoxError> {
    Ok(client.prepare(&format!(
        "INSERT INTO {table} (id, embedding) VALUES ($1, $2)"
    ))?)
}

/// One row per statement from `clients` connections; rows per second.
fn single_rows(
    engine: &Engine,
    table: &str,
    ds: &Dataset,
    rows: &[usize],
    clients: usize,
) -> Result<f64, BoxError> {
    let start = Instant::now();
    let per_client = rows.len().div_ceil(clients.max(1)).max(1);
    std::thread::scope(|scope| {
        let workers: Vec<_> = rows
            .chunks(per_client)
            .map(|chunk| {
                scope.spawn(move || -> Result<(), BoxError> {
                    let mut client = engine.connect()?;
                    client.batch_execute(SESSION)?;
                    let statement = single_row_statement(&mut client, table)?;
                    for &row in chunk {
                        insert_one(&mut client, &statement, ds, row)?;
                    }
                    Ok(())
                })
            })
            .collect();
        workers
            .into_iter()
            .map(|w| {
                w.join()
                    .map_err(|_| BoxError::from("insert thread panicked"))?
            })
            .collect::<Result<Vec<()>, BoxError>>()
    })?;
    Ok(rows.len() as f64 / start.elapsed().as_secs_f64())
}

/// `BATCH` rows per statement, one client; rows per second.
fn batched(
    client: &mut Client,
    table: &str,
    ds: &Dataset,
    rows: &[usize],
) -> Result<f64, BoxError> {
    let values: Vec<String> = (0..BATCH)
        .map(|i| format!("(${}, ${})", 2 * i + 1, 2 * i + 2))
        .collect();
    let full = client.prepare(&format!(
        "INSERT INTO {table} (id, embedding) VALUES {}",
        values.join(", ")
    ))?;
    let single = single_row_statement(client, table)?;
    let start = Instant::now();
    for chunk in rows.chunks(BATCH) {
        if chunk.len() < BATCH {
            for &row in chunk {
                insert_one(client, &single, ds, row)?;
            }
            continue;
        }
        let vectors: Vec<Vector> = chunk.iter().map(|&r| Vector(ds.base.row(r))).collect();
        let mut params: Vec<&(dyn postgres::types::ToSql + Sync)> = Vec::with_capacity(2 * BATCH);
        for (&row, v) in chunk.iter().zip(&vectors) {
            params.push(&ds.ids[row]);
            params.push(v);
        }
        client.execute(&full, &params)?;
    }
    Ok(rows.len() as f64 / start.elapsed().as_secs_f64())
}

/// Inserts `rows` into `table` in three phases: a tenth one row per
/// statement from one client, a fifth from four clients, the rest in
/// `BATCH`-row statements.
pub fn run(
    client: &mut Client,
    engine: &Engine,
    table: &str,
    ds: &Dataset,
    rows: &[usize],
) -> Result<Rates, BoxError> {
    client.batch_execute(SESSION)?;
    let a = rows.len() / 10;
    let b = a + rows.len() / 5;
    let rates = Rates {
        single_1: single_rows(engine, table, ds, &rows[..a], 1)?,
        single_4: single_rows(engine, table, ds, &rows[a..b], 4)?,
        batched: batched(client, table, ds, &rows[b..])?,
    };
    client.batch_execute("RESET synchronous_commit")?;
    eprintln!(
        "[{}] inserted {} rows into {table}: {:.0} rows/s (1 client), {:.0} rows/s (4 clients), {:.0} rows/s ({BATCH}-row statements)",
        engine.name,
        rows.len(),
        rates.single_1,
        rates.single_4,
        rates.batched
    );
    Ok(rates)
}

/// Rows waiting in vdb's pending list (`None` for other engines).
pub fn pending(client: &mut Client, engine: &Engine) -> Result<Option<i64>, BoxError> {
    if engine.extension != "vdb" {
        return Ok(None);
    }
    Ok(Some(
        client
            .query_one(
                "SELECT (vhnsw_stats('bench_items_idx')->>'pending')::bigint",
                &[],
            )?
            .get(0),
    ))
}

/// How long the merge worker takes to empty the pending list from now.
pub fn pending_drain(client: &mut Client, engine: &Engine) -> Result<Option<f64>, BoxError> {
    let start = Instant::now();
    let deadline = start + Duration::from_secs(3600);
    loop {
        match pending(client, engine)? {
            None => return Ok(None),
            Some(0) => return Ok(Some(start.elapsed().as_secs_f64())),
            Some(_) if Instant::now() > deadline => {
                return Err("the pending list did not drain within an hour".into())
            }
            Some(_) => std::thread::sleep(Duration::from_millis(100)),
        }
    }
}
