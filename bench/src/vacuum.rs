//! `--vacuum`: what deletes, VACUUM and updates do to each engine's index.
//!
//! Deletes: for each of [`FRACTIONS`], a freshly loaded table and freshly
//! built index (vdb's pending list drained, so its graph holds every row);
//! a seeded random share of the ids (the same for every engine) deleted;
//! `VACUUM bench_items` timed; recall@10 and QPS at [`EFS`] against the
//! exact top 10 of the surviving rows; then the deleted rows (same ids,
//! same vectors) copied back in, and the index's size against its size
//! before the delete (does the index reuse what VACUUM freed?).
//!
//! Updates: on another fresh table and index, [`ROUNDS`] rounds, each
//! giving a seeded [`ROUND_FRACTION`] of the rows a new vector (another
//! row's, perturbed) with `UPDATE ... FROM` a temporary table, then
//! `VACUUM`; recall@10 at [`ROUND_EF`] after each round against the exact
//! top 10 of the current vectors. After the last round, a fresh index on
//! the final rows measured against the same truth: what the churn cost.
//!
//! The exact answers depend on nothing but the dataset and the seeds, so
//! [`workload`] computes them once per dataset for every engine. The run
//! ends by restoring the dataset's table and index when later passes
//! (ranges, filtered) need them.

use crate::dataset::{self, splitmix, Dataset, Vectors};
use crate::db::{self, BoxError, Engine, QueryStats, Vector};
use crate::insert;
use postgres::binary_copy::BinaryCopyInWriter;
use postgres::types::Type;
use postgres::Client;
use rayon::prelude::*;
use std::time::Instant;
use vdb_core::distance;

/// Shares of the rows deleted, one fresh table and index each.
pub const FRACTIONS: [f64; 2] = [0.10, 0.50];
/// ef_search of the passes after a delete.
pub const EFS: [u32; 2] = [40, 100];
/// Update rounds, each over a new random share of the rows.
pub const ROUNDS: usize = 10;
/// Share of the rows each update round changes.
pub const ROUND_FRACTION: f64 = 0.10;
/// ef_search of the passes after each update round.
pub const ROUND_EF: u32 = 40;
/// The noise added to an updated row's new vector, as a share of the
/// source vector's norm: small, so that the new vector lands where real
/// data is, yet no exact copy of its source (duplicates make ties).
const PERTURBATION: f64 = 0.05;
/// Ids per DELETE statement: PostgreSQL hashes a constant array this
/// large, so each statement is one scan of the table.
const DELETE_CHUNK: usize = 100_000;
/// Neighbours per query.
const K: usize = 10;

/// One delete fraction: the rows (positions in the dataset) deleted and
/// the exact top [`K`] of every query among the rest.
pub struct Deletion {
    pub fraction: f64,
    rows: Vec<usize>,
    truth: Vec<Vec<i32>>,
}

/// Everything both engines are measured against.
pub struct Workload {
    pub deletions: Vec<Deletion>,
    /// The exact top [`K`] after each update round.
    rounds: Vec<Vec<Vec<i32>>>,
}

/// After one delete.
#[derive(Debug, Clone)]
pub struct DeletePass {
    pub fraction: f64,
    pub size_before: i64,
    pub vacuum_secs: f64,
    /// At each of [`EFS`].
    pub passes: Vec<QueryStats>,
    /// Index size once the deleted rows are back (and merged, vdb).
    pub size_after: i64,
}

/// After one update round.
#[derive(Debug, Clone, Copy)]
pub struct Round {
    pub vacuum_secs: f64,
    /// vdb's pending list: seconds to merge the round's new rows.
    pub drain_secs: Option<f64>,
    pub recall: f64,
    pub qps: f64,
}

/// One engine's results.
#[derive(Debug, Clone)]
pub struct VacuumRun {
    pub engine: String,
    pub deletes: Vec<DeletePass>,
    pub rounds: Vec<Round>,
    /// Index size after the last round.
    pub rounds_bytes: i64,
    /// A fresh index on the final rows: recall at [`ROUND_EF`], size,
    /// build seconds.
    pub fresh_recall: f64,
    pub fresh_bytes: i64,
    pub fresh_build_secs: f64,
}

/// `count` distinct positions out of `n`, seeded, in ascending order.
fn sample(n: usize, count: usize, mut seed: u64) -> Vec<usize> {
    let count = count.min(n);
    let mut order: Vec<usize> = (0..n).collect();
    // A partial Fisher-Yates shuffle: the first `count` are the sample.
    for i in 0..count {
        let j = i + (splitmix(&mut seed) % (n - i) as u64) as usize;
        order.swap(i, j);
    }
    order.truncate(count);
    order.sort_unstable();
    order
}

fn share(n: usize, fraction: f64) -> usize {
    (n as f64 * fraction).round() as usize
}

fn gaussian(s: &mut u64) -> f64 {
    let uniform = |s: &mut u64| (splitmix(s) >> 11) as f64 / (1u64 << 53) as f64;
    let (u1, u2) = (uniform(s).max(1e-12), uniform(s));
    (-2.0 * u1.ln()).sqrt() * (std::f64::consts::TAU * u2).cos()
}

/// Round `round`'s updates: the rows (positions) it changes and their new
/// vectors, row-major. A function of the dataset and the round alone (the
/// sources are the dataset's own vectors), so the exact answers can be
/// computed once and every engine gets the same rows.
fn round_updates(ds: &Dataset, round: usize) -> (Vec<usize>, Vec<f32>) {
    let (n, dims) = (ds.base.len(), ds.base.dims);
    let seed = 0x510e_527f_ade6_82d1u64 ^ (round as u64 + 1).wrapping_mul(0x9e37_79b9_7f4a_7c15);
    let rows = sample(n, share(n, ROUND_FRACTION), seed);
    let mut data = vec![0f32; rows.len() * dims];
    data.par_chunks_mut(dims)
        .zip(rows.par_iter())
        .enumerate()
        .for_each(|(i, (out, &row))| {
            let mut s = seed ^ (i as u64 + 1).wrapping_mul(0xbf58_476d_1ce4_e5b9);
            let mut source = (splitmix(&mut s) % n as u64) as usize;
            if source == row {
                source = (source + 1) % n;
            }
            let v = ds.base.row(source);
            let sigma = PERTURBATION * distance::norm_squared(v).sqrt() / (dims as f64).sqrt();
            for (x, &y) in out.iter_mut().zip(v) {
                *x = y + (sigma * gaussian(&mut s)) as f32;
            }
        });
    (rows, data)
}

/// A copy of `ds` with `base` as its rows (same ids, queries and metric),
/// so that the dataset's exact search runs over any set of vectors.
fn with_rows(ds: &Dataset, base: Vectors) -> Dataset {
    Dataset {
        name: ds.name.clone(),
        base,
        ids: ds.ids.clone(),
        queries: Vectors {
            dims: ds.queries.dims,
            data: ds.queries.data.clone(),
        },
        metric: ds.metric,
    }
}

/// The exact answers of every delete fraction and update round (brute
/// force, in parallel: [`ROUNDS`] + 2 passes over the dataset).
pub fn workload(ds: &Dataset) -> Workload {
    let n = ds.base.len();
    let max_id = ds.ids.iter().copied().max().unwrap_or(0).max(0) as usize;
    let deletions = FRACTIONS
        .iter()
        .enumerate()
        .map(|(i, &fraction)| {
            let seed =
                0x9b05_688c_2b3e_6c1fu64 ^ (i as u64 + 1).wrapping_mul(0x94d0_49bb_1331_11eb);
            let rows = sample(n, share(n, fraction), seed);
            // By id, not a hash set: the test runs once per query and row.
            let mut gone = vec![false; max_id + 1];
            for &row in &rows {
                if let Ok(id) = usize::try_from(ds.ids[row]) {
                    gone[id] = true;
                }
            }
            let kept = |id: i32| match usize::try_from(id) {
                Ok(id) => !gone.get(id).copied().unwrap_or(false),
                Err(_) => true,
            };
            let truth = dataset::ground_truth_where(ds, K, kept);
            Deletion {
                fraction,
                rows,
                truth,
            }
        })
        .collect();
    let dims = ds.base.dims;
    let mut current = with_rows(
        ds,
        Vectors {
            dims,
            data: ds.base.data.clone(),
        },
    );
    let rounds = (0..ROUNDS)
        .map(|round| {
            let (rows, data) = round_updates(ds, round);
            for (&row, v) in rows.iter().zip(data.chunks(dims)) {
                current.base.data[row * dims..(row + 1) * dims].copy_from_slice(v);
            }
            dataset::ground_truth_where(&current, K, |_| true)
        })
        .collect();
    Workload { deletions, rounds }
}

/// Writes `(id, vector)` rows into `table` with binary COPY.
fn copy_rows<'a>(
    client: &mut Client,
    table: &str,
    rows: impl Iterator<Item = (i32, &'a [f32])>,
) -> Result<(), BoxError> {
    let vector_type = client.prepare("SELECT $1::vector")?.params()[0].clone();
    let sink = client.copy_in(&format!(
        "COPY {table} (id, embedding) FROM STDIN (FORMAT binary)"
    ))?;
    let mut writer = BinaryCopyInWriter::new(sink, &[Type::INT4, vector_type]);
    for (id, v) in rows {
        writer.write(&[&id, &Vector(v)])?;
    }
    writer.finish()?;
    Ok(())
}

fn index_size(client: &mut Client) -> Result<i64, BoxError> {
    Ok(client
        .query_one("SELECT pg_relation_size('bench_items_idx')", &[])?
        .get(0))
}

fn timed_vacuum(client: &mut Client) -> Result<f64, BoxError> {
    let start = Instant::now();
    client.batch_execute("VACUUM bench_items")?;
    Ok(start.elapsed().as_secs_f64())
}

/// A freshly loaded table (every row) and a freshly built index, vdb's
/// pending list empty; returns the index size.
fn fresh(
    client: &mut Client,
    engine: &Engine,
    ds: &Dataset,
    m: u32,
    ef_construction: u32,
) -> Result<i64, BoxError> {
    db::load(client, engine, ds, &[])?;
    db::build(client, engine, ds, m, ef_construction)?;
    insert::pending_drain(client, engine)?;
    index_size(client)
}

fn delete_pass(
    client: &mut Client,
    engine: &Engine,
    ds: &Dataset,
    deletion: &Deletion,
    m: u32,
    ef_construction: u32,
) -> Result<DeletePass, BoxError> {
    let size_before = fresh(client, engine, ds, m, ef_construction)?;
    let ids: Vec<i32> = deletion.rows.iter().map(|&r| ds.ids[r]).collect();
    let mut deleted = 0u64;
    for chunk in ids.chunks(DELETE_CHUNK) {
        deleted += client.execute("DELETE FROM bench_items WHERE id = ANY($1)", &[&chunk])?;
    }
    if deleted != ids.len() as u64 {
        return Err(format!("deleted {deleted} rows, expected {}", ids.len()).into());
    }
    let vacuum_secs = timed_vacuum(client)?;
    // One unmeasured pass reads the vacuumed index in.
    db::query_pass(client, engine, ds, &deletion.truth, EFS[0])?;
    let passes = EFS
        .iter()
        .map(|&ef| db::query_pass(client, engine, ds, &deletion.truth, ef))
        .collect::<Result<Vec<_>, _>>()?;
    copy_rows(
        client,
        "bench_items",
        deletion.rows.iter().map(|&r| (ds.ids[r], ds.base.row(r))),
    )?;
    insert::pending_drain(client, engine)?;
    let size_after = index_size(client)?;
    let at: Vec<String> = passes
        .iter()
        .map(|p| {
            format!(
                "ef {}: recall {:.3}, {:.0} QPS",
                p.ef_search, p.recall, p.qps
            )
        })
        .collect();
    eprintln!(
        "[{}] {:.0} % deleted: VACUUM {vacuum_secs:.1}s; {}; index {:.1} MiB, {:.1} MiB with the rows back",
        engine.name,
        deletion.fraction * 100.0,
        at.join("; "),
        size_before as f64 / 1048576.0,
        size_after as f64 / 1048576.0
    );
    Ok(DeletePass {
        fraction: deletion.fraction,
        size_before,
        vacuum_secs,
        passes,
        size_after,
    })
}

/// The update rounds, then a fresh build on the final rows.
fn update_rounds(
    client: &mut Client,
    engine: &Engine,
    ds: &Dataset,
    work: &Workload,
    m: u32,
    ef_construction: u32,
    run: &mut VacuumRun,
) -> Result<(), BoxError> {
    let dims = ds.base.dims;
    fresh(client, engine, ds, m, ef_construction)?;
    client.batch_execute(&format!(
        "DROP TABLE IF EXISTS bench_updates;
         CREATE TEMP TABLE bench_updates (id int4 NOT NULL, embedding vector({dims}) NOT NULL)"
    ))?;
    for (round, truth) in work.rounds.iter().enumerate() {
        let (rows, data) = round_updates(ds, round);
        client.batch_execute("TRUNCATE bench_updates")?;
        copy_rows(
            client,
            "bench_updates",
            rows.iter()
                .zip(data.chunks(dims))
                .map(|(&r, v)| (ds.ids[r], v)),
        )?;
        client.batch_execute("ANALYZE bench_updates")?;
        let updated = client.execute(
            "UPDATE bench_items b SET embedding = u.embedding FROM bench_updates u WHERE b.id = u.id",
            &[],
        )?;
        if updated != rows.len() as u64 {
            return Err(format!(
                "round {}: updated {updated} rows, expected {}",
                round + 1,
                rows.len()
            )
            .into());
        }
        // Merged before VACUUM, so that VACUUM's time is VACUUM's alone.
        let drain_secs = insert::pending_drain(client, engine)?;
        let vacuum_secs = timed_vacuum(client)?;
        let pass = db::query_pass(client, engine, ds, truth, ROUND_EF)?;
        eprintln!(
            "[{}] update round {}: {} rows, {}VACUUM {vacuum_secs:.1}s, recall {:.3}, {:.0} QPS at ef {ROUND_EF}",
            engine.name,
            round + 1,
            rows.len(),
            drain_secs.map_or(String::new(), |d| format!("merged in {d:.1}s, ")),
            pass.recall,
            pass.qps
        );
        run.rounds.push(Round {
            vacuum_secs,
            drain_secs,
            recall: pass.recall,
            qps: pass.qps,
        });
    }
    client.batch_execute("DROP TABLE bench_updates")?;
    run.rounds_bytes = index_size(client)?;
    let Some(last) = work.rounds.last() else {
        return Ok(());
    };
    let (build, bytes) = db::build(client, engine, ds, m, ef_construction)?;
    insert::pending_drain(client, engine)?;
    let pass = db::query_pass(client, engine, ds, last, ROUND_EF)?;
    (run.fresh_recall, run.fresh_bytes, run.fresh_build_secs) =
        (pass.recall, bytes, build.as_secs_f64());
    eprintln!(
        "[{}] a fresh index on the final rows: recall {:.3} at ef {ROUND_EF}, {:.1} MiB (after the rounds: {:.1} MiB)",
        engine.name,
        pass.recall,
        bytes as f64 / 1048576.0,
        run.rounds_bytes as f64 / 1048576.0
    );
    Ok(())
}

/// Deletes, then updates; with `restore`, leaves the dataset's table and
/// a fresh index behind for the passes that follow.
pub fn run(
    client: &mut Client,
    engine: &Engine,
    ds: &Dataset,
    work: &Workload,
    m: u32,
    ef_construction: u32,
    restore: bool,
) -> Result<VacuumRun, BoxError> {
    let mut run = VacuumRun {
        engine: engine.name.to_string(),
        deletes: Vec::new(),
        rounds: Vec::new(),
        rounds_bytes: 0,
        fresh_recall: 0.0,
        fresh_bytes: 0,
        fresh_build_secs: 0.0,
    };
    for deletion in &work.deletions {
        run.deletes.push(delete_pass(
            client,
            engine,
            ds,
            deletion,
            m,
            ef_construction,
        )?);
    }
    update_rounds(client, engine, ds, work, m, ef_construction, &mut run)?;
    if restore {
        fresh(client, engine, ds, m, ef_construction)?;
    }
    Ok(run)
}

fn mib(bytes: i64) -> f64 {
    bytes as f64 / 1048576.0
}

/// The delete table and the update curve, engines side by side.
pub fn print(dataset: &str, runs: &[VacuumRun]) {
    let Some(first) = runs.first() else {
        return;
    };
    println!();
    println!(
        "deletes and VACUUM, {dataset}: a fresh table and index per share deleted, a seeded share of the ids deleted (the same for every engine), VACUUM bench_items timed; recall@10 against the surviving rows' exact top {K}; back: index size once the deleted rows are copied back in (and merged, vdb) / size before"
    );
    let efs: String = EFS
        .iter()
        .map(|ef| format!(" {:>16}", format!("ef {ef}: recall QPS")))
        .collect();
    println!(
        "{:>7} {:<16} {:>10} {:>10}{efs} {:>7}",
        "deleted", "engine", "index MiB", "VACUUM s", "back"
    );
    for (i, d) in first.deletes.iter().enumerate() {
        let rows: Vec<&DeletePass> = runs.iter().filter_map(|r| r.deletes.get(i)).collect();
        for (r, p) in runs.iter().zip(&rows) {
            let at: String = p
                .passes
                .iter()
                .map(|q| format!(" {:>7.3} {:>8.0}", q.recall, q.qps))
                .collect();
            println!(
                "{:>7} {:<16} {:>10.1} {:>10.1}{at} {:>6.2}x",
                format!("{:.0} %", d.fraction * 100.0),
                r.engine,
                mib(p.size_before),
                p.vacuum_secs,
                p.size_after as f64 / p.size_before as f64
            );
        }
        if let [a, b] = rows[..] {
            let at: String = a
                .passes
                .iter()
                .zip(&b.passes)
                .map(|(x, y)| format!(" {:>7} {:>7.2}x", "", x.qps / y.qps))
                .collect();
            println!(
                "{:>7} {:<16} {:>9.2}x {:>9.2}x{at} {:>6.2}x",
                "",
                "ratio",
                a.size_before as f64 / b.size_before as f64,
                a.vacuum_secs / b.vacuum_secs,
                (a.size_after as f64 / a.size_before as f64)
                    / (b.size_after as f64 / b.size_before as f64)
            );
        }
    }
    if let [a, b] = runs {
        println!("(ratio: {} / {})", a.engine, b.engine);
    }

    println!();
    println!(
        "update rounds, {dataset}: each round gives a seeded {:.0} % of the rows another row's vector plus noise ({:.0} % of its norm), UPDATE ... FROM a temp table, vdb's pending list merged, then VACUUM bench_items timed; recall@10 at ef_search {ROUND_EF} against the exact top {K} of the current vectors",
        ROUND_FRACTION * 100.0,
        PERTURBATION * 100.0
    );
    print!("{:>5}", "round");
    for r in runs {
        print!(" | {:<34}", r.engine);
    }
    if runs.len() == 2 {
        print!(" | {:>9}", "VACUUM x");
    }
    println!();
    print!("{:>5}", "");
    for _ in runs {
        print!(
            " | {:>8} {:>8} {:>7} {:>8}",
            "merge s", "VACUUM s", "recall", "QPS"
        );
    }
    println!();
    for i in 0..first.rounds.len() {
        print!("{:>5}", i + 1);
        let rounds: Vec<Option<&Round>> = runs.iter().map(|r| r.rounds.get(i)).collect();
        for round in &rounds {
            match round {
                Some(x) => print!(
                    " | {:>8} {:>8.1} {:>7.3} {:>8.0}",
                    x.drain_secs.map_or("-".into(), |d| format!("{d:.1}")),
                    x.vacuum_secs,
                    x.recall,
                    x.qps
                ),
                None => print!(" | {:>34}", ""),
            }
        }
        if let [Some(a), Some(b)] = rounds[..] {
            print!(" | {:>8.2}x", a.vacuum_secs / b.vacuum_secs);
        }
        println!();
    }
    println!(
        "{:<16} {:>24} {:>34}",
        "", "after the rounds", "fresh build on the final rows"
    );
    for r in runs {
        let after = r.rounds.last().map_or(0.0, |x| x.recall);
        println!(
            "{:<16} {:>11.3} {:>8.1} MiB {:>11.3} {:>8.1} MiB {:>7.1} s",
            r.engine,
            after,
            mib(r.rounds_bytes),
            r.fresh_recall,
            mib(r.fresh_bytes),
            r.fresh_build_secs
        );
    }
    println!("(recall@10 at ef_search {ROUND_EF}, index size; fresh build: its build time too)");
}
