//! `--mixed`: do queries keep their pace while rows go in? On the complete
//! table, after the query passes, three phases of [`SECONDS`] s each, with
//! [`READERS`] clients running the queries at ef_search [`EF`] throughout:
//! read-only (the baseline); with one more client inserting single rows
//! as fast as it can (autocommit, `synchronous_commit = off`); and with
//! that client held to [`PACED_RATE`] rows/s. The rows inserted are the
//! dataset's vectors again under new ids above the table's largest, and
//! are deleted (then VACUUM) after each writing phase, so that the next
//! phase, and later passes, see the original table.

use crate::dataset::Dataset;
use crate::db::{operator, BoxError, Engine, Vector};
use crate::insert;
use postgres::{Client, Statement};
use std::sync::Barrier;
use std::time::{Duration, Instant};

/// Query clients of every phase.
pub const READERS: usize = 2;
/// Length of each phase.
pub const SECONDS: u64 = 20;
/// ef_search of the queries.
pub const EF: u32 = 40;
/// Rows per second of the paced writer.
pub const PACED_RATE: f64 = 200.0;

/// What the writer of a phase does.
#[derive(Debug, Clone, Copy)]
enum Writer {
    None,
    FlatOut,
    Paced(f64),
}

/// One phase with a writer.
#[derive(Debug, Clone, Copy)]
pub struct WritePhase {
    /// The readers' QPS, all of them together.
    pub reader_qps: f64,
    pub rows_per_sec: f64,
    /// vdb's pending list when the writer stopped.
    pub pending: Option<i64>,
}

/// One engine's results.
#[derive(Debug, Clone)]
pub struct MixedRun {
    pub engine: String,
    /// The readers' QPS with no writer.
    pub baseline_qps: f64,
    pub flat_out: WritePhase,
    pub paced: WritePhase,
}

/// What the writer thread reports.
struct Written {
    rows_per_sec: f64,
    pending: Option<i64>,
}

/// One reader: queries from its own place in the list, so that the
/// readers do not ask the same query at the same time; its QPS.
fn read(
    engine: &Engine,
    ds: &Dataset,
    reader: usize,
    barrier: &Barrier,
    duration: Duration,
) -> Result<f64, BoxError> {
    let setup = || -> Result<(Client, Statement), BoxError> {
        let mut client = engine.connect()?;
        client.batch_execute(&format!(
            "SET {} = {EF}; SET enable_seqscan = off",
            engine.ef_search_guc
        ))?;
        let statement = client.prepare(&format!(
            "SELECT id FROM bench_items ORDER BY embedding {} $1 LIMIT 10",
            operator(ds)
        ))?;
        Ok((client, statement))
    };
    // Every thread reaches the barrier, even one whose setup failed, so
    // that none waits there forever.
    let setup = setup();
    barrier.wait();
    let (mut client, statement) = setup?;
    let queries = ds.queries.len();
    let offset = reader * queries / READERS;
    let start = Instant::now();
    let mut done = 0usize;
    while start.elapsed() < duration {
        let q = (offset + done) % queries;
        client.query(&statement, &[&Vector(ds.queries.row(q))])?;
        done += 1;
    }
    Ok(done as f64 / start.elapsed().as_secs_f64())
}

/// The writer: one row per statement, ids from `first_id`, vectors the
/// dataset's in order (cycling), flat out or at `rate` rows/s.
fn write(
    engine: &Engine,
    ds: &Dataset,
    first_id: i32,
    rate: Option<f64>,
    barrier: &Barrier,
    duration: Duration,
) -> Result<Written, BoxError> {
    let setup = || -> Result<(Client, Statement), BoxError> {
        let mut client = engine.connect()?;
        // Durable asynchronously, as in the insert workload: the figures
        // measure the index, not the disk's flush latency.
        client.batch_execute("SET synchronous_commit = off")?;
        let statement =
            client.prepare("INSERT INTO bench_items (id, embedding) VALUES ($1, $2)")?;
        Ok((client, statement))
    };
    let setup = setup();
    barrier.wait();
    let (mut client, statement) = setup?;
    let start = Instant::now();
    let mut rows = 0usize;
    loop {
        let elapsed = start.elapsed();
        if elapsed >= duration {
            break;
        }
        if let Some(rate) = rate {
            // Row k is due k / rate s in: a schedule, so that a slow
            // insert is made up for rather than lowering the rate.
            let due = Duration::from_secs_f64(rows as f64 / rate);
            if due >= duration {
                std::thread::sleep(duration - elapsed);
                break;
            }
            if due > elapsed {
                std::thread::sleep(due - elapsed);
            }
        }
        let id = i32::try_from(rows)
            .ok()
            .and_then(|k| first_id.checked_add(k))
            .ok_or("the writer ran out of int4 ids")?;
        client.execute(
            &statement,
            &[&id, &Vector(ds.base.row(rows % ds.base.len()))],
        )?;
        rows += 1;
    }
    let secs = start.elapsed().as_secs_f64();
    Ok(Written {
        rows_per_sec: rows as f64 / secs,
        pending: insert::pending(&mut client, engine)?,
    })
}

/// One phase: the readers' total QPS, and what the writer did.
fn phase(
    engine: &Engine,
    ds: &Dataset,
    first_id: i32,
    writer: Writer,
) -> Result<(f64, Option<Written>), BoxError> {
    let rate = match writer {
        Writer::None => None,
        Writer::FlatOut => Some(None),
        Writer::Paced(r) => Some(Some(r)),
    };
    let duration = Duration::from_secs(SECONDS);
    let barrier = Barrier::new(READERS + usize::from(rate.is_some()));
    std::thread::scope(|s| {
        let barrier = &barrier;
        let readers: Vec<_> = (0..READERS)
            .map(|r| s.spawn(move || read(engine, ds, r, barrier, duration)))
            .collect();
        let writer =
            rate.map(|rate| s.spawn(move || write(engine, ds, first_id, rate, barrier, duration)));
        let mut qps = 0.0;
        for r in readers {
            qps += r
                .join()
                .map_err(|_| BoxError::from("a reader thread panicked"))??;
        }
        let written = writer
            .map(|w| {
                w.join()
                    .map_err(|_| BoxError::from("the writer thread panicked"))?
            })
            .transpose()?;
        Ok((qps, written))
    })
}

/// Deletes what a writing phase inserted, vacuums, and lets vdb's
/// pending list empty, so the next phase starts from the same table.
fn clean(client: &mut Client, engine: &Engine, max_id: i32) -> Result<(), BoxError> {
    client.execute("DELETE FROM bench_items WHERE id > $1", &[&max_id])?;
    client.batch_execute("VACUUM bench_items")?;
    insert::pending_drain(client, engine)?;
    Ok(())
}

fn writing_phase(
    client: &mut Client,
    engine: &Engine,
    ds: &Dataset,
    max_id: i32,
    writer: Writer,
    baseline: f64,
) -> Result<WritePhase, BoxError> {
    let first_id = max_id
        .checked_add(1)
        .ok_or("no int4 id above the table's")?;
    let (reader_qps, written) = phase(engine, ds, first_id, writer)?;
    let written = written.ok_or("a writing phase without its writer")?;
    clean(client, engine, max_id)?;
    eprintln!(
        "[{}] {READERS} readers with a writer ({}): {reader_qps:.0} QPS ({:.2}x read-only), {:.0} rows/s{}",
        engine.name,
        match writer {
            Writer::Paced(r) => format!("at {r:.0} rows/s"),
            _ => "flat out".into(),
        },
        reader_qps / baseline,
        written.rows_per_sec,
        written
            .pending
            .map_or(String::new(), |p| format!(", {p} pending at the end"))
    );
    Ok(WritePhase {
        reader_qps,
        rows_per_sec: written.rows_per_sec,
        pending: written.pending,
    })
}

/// The three phases on `bench_items` as it stands.
pub fn run(client: &mut Client, engine: &Engine, ds: &Dataset) -> Result<MixedRun, BoxError> {
    if ds.queries.len() == 0 || ds.base.len() == 0 {
        return Err("the mixed workload needs queries and rows".into());
    }
    let max_id: i32 = client
        .query_one("SELECT coalesce(max(id), 0) FROM bench_items", &[])?
        .get(0);
    // Start with nothing left to merge from earlier inserts.
    insert::pending_drain(client, engine)?;
    let (baseline_qps, _) = phase(engine, ds, max_id, Writer::None)?;
    eprintln!(
        "[{}] {READERS} readers, read-only: {baseline_qps:.0} QPS at ef {EF}",
        engine.name
    );
    let flat_out = writing_phase(client, engine, ds, max_id, Writer::FlatOut, baseline_qps)?;
    let paced = writing_phase(
        client,
        engine,
        ds,
        max_id,
        Writer::Paced(PACED_RATE),
        baseline_qps,
    )?;
    Ok(MixedRun {
        engine: engine.name.to_string(),
        baseline_qps,
        flat_out,
        paced,
    })
}

/// The engines side by side.
pub fn print(dataset: &str, runs: &[MixedRun]) {
    if runs.is_empty() {
        return;
    }
    println!();
    println!(
        "reads during writes, {dataset}: {READERS} clients querying at ef_search {EF} for {SECONDS} s per phase; writer: 1 client inserting single rows (autocommit, synchronous_commit = off); reads: the readers' QPS / their read-only QPS; pending: vdb's pending list when the writer stopped"
    );
    println!(
        "{:<16} {:>10} | {:^27} | {:^27}",
        "",
        "read-only",
        "writer flat out",
        format!("writer at {PACED_RATE:.0} rows/s")
    );
    println!(
        "{:<16} {:>10} | {:>7} {:>9} {:>9} | {:>7} {:>9} {:>9}",
        "engine", "QPS", "reads", "rows/s", "pending", "reads", "rows/s", "pending"
    );
    let pending = |p: Option<i64>| p.map_or("-".into(), |p| p.to_string());
    for r in runs {
        println!(
            "{:<16} {:>10.0} | {:>6.2}x {:>9.0} {:>9} | {:>6.2}x {:>9.0} {:>9}",
            r.engine,
            r.baseline_qps,
            r.flat_out.reader_qps / r.baseline_qps,
            r.flat_out.rows_per_sec,
            pending(r.flat_out.pending),
            r.paced.reader_qps / r.baseline_qps,
            r.paced.rows_per_sec,
            pending(r.paced.pending)
        );
    }
    if let [a, b] = runs {
        println!(
            "{:<16} {:>9.2}x | {:>6.2}x {:>8.2}x {:>9} | {:>6.2}x {:>8.2}x {:>9}   ({} / {}; reads: QPS while writing)",
            "ratio",
            a.baseline_qps / b.baseline_qps,
            a.flat_out.reader_qps / b.flat_out.reader_qps,
            a.flat_out.rows_per_sec / b.flat_out.rows_per_sec,
            "",
            a.paced.reader_qps / b.paced.reader_qps,
            a.paced.rows_per_sec / b.paced.rows_per_sec,
            "",
            a.engine,
            b.engine
        );
    }
}
