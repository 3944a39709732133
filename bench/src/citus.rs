//! The Citus run: the dataset as a Citus distributed table (a vhnsw index
//! on every shard, `ORDER BY ... LIMIT` pushed down to each and merged on
//! the coordinator) against the same rows in one table with one index on
//! the same coordinator, so that both sides run with the same server
//! settings. Citus and vdb must be installed on the coordinator and its
//! workers (scripts/bench.sh --citus sets that up when Citus is
//! installed).

use crate::dataset::Dataset;
use crate::db::{opclass, operator, BoxError, Vector};
use postgres::binary_copy::BinaryCopyInWriter;
use postgres::types::Type;
use postgres::{Client, NoTls};
use std::time::{Duration, Instant};

/// Both sides' results: builds, then (ef_search, recall, QPS) per pass.
#[derive(Debug, Clone)]
pub struct CitusRun {
    pub shards: u32,
    pub workers: i64,
    pub single_build: Duration,
    pub distributed_build: Duration,
    pub single: Vec<(u32, f64, f64)>,
    pub distributed: Vec<(u32, f64, f64)>,
}

fn load(client: &mut Client, ds: &Dataset) -> Result<(), BoxError> {
    client.batch_execute(&format!(
        "DROP TABLE IF EXISTS citus_single;
         DROP TABLE IF EXISTS citus_items;
         CREATE TABLE citus_single (id int4 NOT NULL, embedding vector({}) NOT NULL)",
        ds.base.dims
    ))?;
    let vector_type = client.prepare("SELECT $1::vector")?.params()[0].clone();
    let sink = client.copy_in("COPY citus_single (id, embedding) FROM STDIN (FORMAT binary)")?;
    let mut writer = BinaryCopyInWriter::new(sink, &[Type::INT4, vector_type]);
    for (row, &id) in ds.ids.iter().enumerate() {
        writer.write(&[&id, &Vector(ds.base.row(row))])?;
    }
    writer.finish()?;
    client.batch_execute("VACUUM ANALYZE citus_single")?;
    Ok(())
}

fn timed(client: &mut Client, sql: &str) -> Result<Duration, BoxError> {
    let start = Instant::now();
    client.batch_execute(sql)?;
    Ok(start.elapsed())
}

/// Loads both tables, builds both indexes and measures every `ef`.
pub fn run(
    conn: &str,
    shards: u32,
    ds: &Dataset,
    truth: &[Vec<i32>],
    efs: &[u32],
    m: u32,
    ef_construction: u32,
) -> Result<CitusRun, BoxError> {
    let mut c = Client::connect(conn, NoTls)?;
    let workers: i64 = c
        .query_one(
            "SELECT count(*) FROM pg_dist_node WHERE noderole = 'primary' AND groupid <> 0",
            &[],
        )?
        .get(0);
    load(&mut c, ds)?;
    let with = format!(
        "USING vhnsw (embedding {}) WITH (m = {m}, ef_construction = {ef_construction})",
        opclass(ds)
    );
    let single_build = timed(&mut c, &format!("CREATE INDEX ON citus_single {with}"))?;
    // One statement at a time: Citus forwards some statements' text.
    for statement in [
        "CREATE TABLE citus_items (LIKE citus_single)".to_string(),
        format!("SET citus.shard_count = {shards}"),
        "SELECT create_distributed_table('citus_items', 'id')".to_string(),
        "INSERT INTO citus_items SELECT * FROM citus_single".to_string(),
        "VACUUM ANALYZE citus_items".to_string(),
    ] {
        c.batch_execute(&statement)?;
    }
    let distributed_build = timed(&mut c, &format!("CREATE INDEX ON citus_items {with}"))?;
    let op = operator(ds);
    let mut run = CitusRun {
        shards,
        workers,
        single_build,
        distributed_build,
        single: Vec::new(),
        distributed: Vec::new(),
    };
    for &ef in efs {
        // The hint is part of the query, so it reaches every shard.
        let single = format!(
            "SELECT id FROM citus_single WHERE embedding <^> {ef} ORDER BY embedding {op} $1 LIMIT 10"
        );
        let distributed = format!(
            "SELECT id FROM citus_items WHERE embedding <^> {ef} ORDER BY embedding {op} $1 LIMIT 10"
        );
        crate::scale_out::pass(&mut c, ds, truth, &single)?; // warm the caches
        crate::scale_out::pass(&mut c, ds, truth, &distributed)?;
        let (r, q) = crate::scale_out::pass(&mut c, ds, truth, &single)?;
        run.single.push((ef, r, q));
        let (r2, q2) = crate::scale_out::pass(&mut c, ds, truth, &distributed)?;
        run.distributed.push((ef, r2, q2));
        eprintln!(
            "[citus] ef {ef}: one table recall {r:.3}, {q:.0} QPS; distributed ({shards} shards) recall {r2:.3}, {q2:.0} QPS"
        );
    }
    c.batch_execute("DROP TABLE citus_items")?;
    c.batch_execute("DROP TABLE citus_single")?;
    Ok(run)
}

pub fn print(run: &CitusRun) {
    println!();
    println!(
        "citus: a coordinator and {} workers on this one machine (they share its cores), {} shards, against one table on the coordinator:",
        run.workers, run.shards
    );
    println!(
        "{:>5} | {:>15} | {:>15}   (recall QPS)",
        "ef", "one table", "distributed"
    );
    for (&(ef, r, q), &(_, r2, q2)) in run.single.iter().zip(&run.distributed) {
        println!("{ef:>5} | {r:>6.3} {q:>8.0} | {r2:>6.3} {q2:>8.0}");
    }
    println!(
        "build s | {:>15.1} | {:>15.1}",
        run.single_build.as_secs_f64(),
        run.distributed_build.as_secs_f64()
    );
}
