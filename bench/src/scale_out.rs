//! The scale-out run: the same dataset split over 2 and 3 shard servers
//! (each with vdb and its own vhnsw index) behind the vdb database as
//! coordinator, through postgres_fdw. Two query forms: the plain query on
//! the partitioned parent (PostgreSQL 15 runs it as a Merge Append that
//! reads the shards one after another, without LIMIT), and the fan-out
//! query of `vhnsw_search` (LIMIT shipped to every shard, shards queried
//! at the same time by an async Append).

use crate::dataset::Dataset;
use crate::db::{opclass, operator, BoxError, Engine, Vector};
use postgres::binary_copy::BinaryCopyInWriter;
use postgres::types::Type;
use postgres::{Client, NoTls};
use std::time::{Duration, Instant};

/// One shard count's results.
#[derive(Debug, Clone)]
pub struct ShardRun {
    pub shards: usize,
    /// Wall time of the per-shard index builds, run at the same time.
    pub build: Duration,
    /// (ef_search, recall, QPS) of the parent query and of the fan-out.
    pub parent: Vec<(u32, f64, f64)>,
    pub fanout: Vec<(u32, f64, f64)>,
}

/// Loads shard `i` of `n` (rows whose id % n == i) with binary COPY.
fn load_shard(client: &mut Client, ds: &Dataset, i: usize, n: usize) -> Result<(), BoxError> {
    client.batch_execute(&format!(
        "CREATE EXTENSION IF NOT EXISTS vdb;
         DROP TABLE IF EXISTS shard_items;
         CREATE TABLE shard_items (id int4 NOT NULL, embedding vector({})  NOT NULL)",
        ds.base.dims
    ))?;
    let vector_type = client.prepare("SELECT $1::vector")?.params()[0].clone();
    let sink = client.copy_in("COPY shard_items (id, embedding) FROM STDIN (FORMAT binary)")?;
    let mut writer = BinaryCopyInWriter::new(sink, &[Type::INT4, vector_type]);
    for (row, &id) in ds.ids.iter().enumerate() {
        if id.rem_euclid(n as i32) as usize == i {
            writer.write(&[&id, &Vector(ds.base.row(row))])?;
        }
    }
    writer.finish()?;
    client.batch_execute("VACUUM ANALYZE shard_items")?;
    Ok(())
}

/// Recall and QPS of one query form at one ef_search.
pub(crate) fn pass(
    client: &mut Client,
    ds: &Dataset,
    truth: &[Vec<i32>],
    sql: &str,
) -> Result<(f64, f64), BoxError> {
    let statement = client.prepare(sql)?;
    let mut hits = 0usize;
    let start = Instant::now();
    for (q, expected) in truth.iter().enumerate() {
        let rows = client.query(&statement, &[&Vector(ds.queries.row(q))])?;
        hits += rows
            .iter()
            .filter(|r| expected.contains(&r.get::<_, i32>(0)))
            .count();
    }
    let qps = truth.len() as f64 / start.elapsed().as_secs_f64();
    Ok((hits as f64 / (truth.len() * 10) as f64, qps))
}

/// Splits the dataset over the first `n` of `shards` and measures.
#[allow(clippy::too_many_arguments)]
pub fn run(
    coordinator: &Engine,
    shards: &[String],
    n: usize,
    ds: &Dataset,
    truth: &[Vec<i32>],
    efs: &[u32],
    m: u32,
    ef_construction: u32,
) -> Result<ShardRun, BoxError> {
    let shards = &shards[..n];
    for (i, conn) in shards.iter().enumerate() {
        load_shard(&mut Client::connect(conn, NoTls)?, ds, i, n)?;
    }
    let start = Instant::now();
    std::thread::scope(|scope| {
        let builds: Vec<_> = shards
            .iter()
            .map(|conn| {
                scope.spawn(move || -> Result<(), BoxError> {
                    Client::connect(conn, NoTls)?.batch_execute(&format!(
                        "CREATE INDEX ON shard_items USING vhnsw (embedding {}) WITH (m = {m}, ef_construction = {ef_construction})",
                        opclass(ds)
                    ))?;
                    Ok(())
                })
            })
            .collect();
        builds
            .into_iter()
            .map(|b| {
                b.join()
                    .map_err(|_| BoxError::from("build thread panicked"))?
            })
            .collect::<Result<Vec<()>, BoxError>>()
    })?;
    let build = start.elapsed();

    let mut c = coordinator.connect()?;
    c.batch_execute(&format!(
        "CREATE EXTENSION IF NOT EXISTS postgres_fdw;
         DROP TABLE IF EXISTS sharded;
         CREATE TABLE sharded (id int4 NOT NULL, embedding vector({})  NOT NULL) PARTITION BY LIST ((id % {n}));",
        ds.base.dims
    ))?;
    for (i, conn) in shards.iter().enumerate() {
        let options: Vec<String> = conn
            .split_whitespace()
            .filter_map(|kv| kv.split_once('='))
            .filter(|(k, _)| ["host", "port", "dbname"].contains(k))
            .map(|(k, v)| format!("{k} '{v}'"))
            .collect();
        c.batch_execute(&format!(
            "DROP SERVER IF EXISTS bench_shard{i} CASCADE;
             CREATE SERVER bench_shard{i} FOREIGN DATA WRAPPER postgres_fdw
               OPTIONS ({}, extensions 'vdb', async_capable 'true', fetch_size '10');
             CREATE USER MAPPING FOR CURRENT_USER SERVER bench_shard{i} OPTIONS (user 'postgres');
             CREATE FOREIGN TABLE sharded_{i} PARTITION OF sharded FOR VALUES IN ({i})
               SERVER bench_shard{i} OPTIONS (table_name 'shard_items');",
            options.join(", ")
        ))?;
    }
    let op = operator(ds);
    let mut run = ShardRun {
        shards: n,
        build,
        parent: Vec::new(),
        fanout: Vec::new(),
    };
    for &ef in efs {
        let parent = format!(
            "SELECT id FROM sharded WHERE embedding <^> {ef} ORDER BY embedding {op} $1 LIMIT 10"
        );
        let fanout = format!(
            "SELECT id FROM vhnsw_search(NULL::sharded, 'embedding', $1, 10, {ef}, '{op}')"
        );
        pass(&mut c, ds, truth, &parent)?; // warm the shards' caches
        let (r, q) = pass(&mut c, ds, truth, &parent)?;
        run.parent.push((ef, r, q));
        let (r2, q2) = pass(&mut c, ds, truth, &fanout)?;
        run.fanout.push((ef, r2, q2));
        eprintln!(
            "[{n} shards] ef {ef}: parent query recall {r:.3}, {q:.0} QPS; fan-out recall {r2:.3}, {q2:.0} QPS"
        );
    }
    for i in 0..n {
        c.batch_execute(&format!("DROP SERVER bench_shard{i} CASCADE"))?;
    }
    c.batch_execute("DROP TABLE sharded")?;
    Ok(run)
}

/// The scale-out table: one server (the main run's figures at the same
/// ef_search) against 2 and 3 shards.
pub fn print(single: &[(u32, f64, f64)], single_build: f64, runs: &[ShardRun]) {
    println!();
    println!("scale-out (all servers on this one machine, so shards share its cores):");
    print!("{:>5} | {:>15}", "ef", "1 server");
    for r in runs {
        print!(
            " | {:>15} | {:>15}",
            format!("{} sh. parent", r.shards),
            format!("{} sh. fan-out", r.shards)
        );
    }
    println!("   (recall QPS)");
    for (i, &(ef, recall, qps)) in single.iter().enumerate() {
        print!("{ef:>5} | {recall:>6.3} {qps:>8.0}");
        for r in runs {
            let (_, pr, pq) = r.parent[i];
            let (_, fr, fq) = r.fanout[i];
            print!(" | {pr:>6.3} {pq:>8.0} | {fr:>6.3} {fq:>8.0}");
        }
        println!();
    }
    print!("build s | {single_build:>13.1}");
    for r in runs {
        print!(" | {:>15.1} | {:>15}", r.build.as_secs_f64(), "");
    }
    println!();
}
