//! Talking to the two engines: load with binary COPY, build the index, run
//! the query workload. vdb and pgvector share the `vector` type's binary
//! format, so the same code drives both.

use crate::dataset::Dataset;
use bytes::{BufMut, BytesMut};
use postgres::binary_copy::BinaryCopyInWriter;
use postgres::types::{to_sql_checked, IsNull, ToSql, Type};
use postgres::{Client, NoTls};
use std::error::Error;
use std::time::{Duration, Instant};

pub type BoxError = Box<dyn Error + Sync + Send>;

/// One index implementation to measure.
#[derive(Debug, Clone)]
pub struct Engine {
    pub name: &'static str,
    pub conn: String,
    pub extension: &'static str,
    pub access_method: &'static str,
    pub ef_search_guc: &'static str,
    /// Storage parameters added to the index's `WITH` after `m` and
    /// `ef_construction` (none when empty).
    pub index_options: String,
}

impl Engine {
    pub fn vdb(conn: String) -> Engine {
        Engine {
            name: "vdb vhnsw",
            conn,
            extension: "vdb",
            access_method: "vhnsw",
            ef_search_guc: "vhnsw.ef_search",
            index_options: String::new(),
        }
    }

    /// vdb with `code_bits` (its neighbour codes, 0: none) set on the
    /// index instead of the default, and named after it in the report.
    pub fn vdb_code_bits(conn: String, code_bits: u8) -> Engine {
        Engine {
            name: Box::leak(format!("vdb code_bits={code_bits}").into_boxed_str()),
            index_options: format!(", code_bits = {code_bits}"),
            ..Engine::vdb(conn)
        }
    }

    pub fn pgvector(conn: String) -> Engine {
        Engine {
            name: "pgvector hnsw",
            conn,
            extension: "vector",
            access_method: "hnsw",
            ef_search_guc: "hnsw.ef_search",
            index_options: String::new(),
        }
    }

    pub fn connect(&self) -> Result<Client, BoxError> {
        Ok(Client::connect(&self.conn, NoTls)?)
    }
}

/// A vector in the binary wire format both extensions use.
#[derive(Debug)]
pub struct Vector<'a>(pub &'a [f32]);

impl ToSql for Vector<'_> {
    fn to_sql(&self, _: &Type, out: &mut BytesMut) -> Result<IsNull, BoxError> {
        out.put_i16(i16::try_from(self.0.len())?);
        out.put_i16(0);
        for x in self.0 {
            out.put_f32(*x);
        }
        Ok(IsNull::No)
    }
    fn accepts(ty: &Type) -> bool {
        ty.name() == "vector"
    }
    to_sql_checked!();
}

/// The distance operator of the dataset's metric.
pub fn operator(ds: &Dataset) -> &'static str {
    ds.metric.operator()
}

/// The operator class of the dataset's metric.
pub fn opclass(ds: &Dataset) -> &'static str {
    ds.metric.opclass()
}

/// Creates `bench_items` and loads the base rows, but for `held_back`,
/// with binary COPY.
pub fn load(
    client: &mut Client,
    engine: &Engine,
    ds: &Dataset,
    held_back: &[usize],
) -> Result<Duration, BoxError> {
    let mut skip = vec![false; ds.ids.len()];
    for &row in held_back {
        skip[row] = true;
    }
    client.batch_execute(&format!(
        "CREATE EXTENSION IF NOT EXISTS {ext};
         DROP TABLE IF EXISTS bench_items;
         CREATE TABLE bench_items (id int4 NOT NULL, embedding vector({dims}) NOT NULL);",
        ext = engine.extension,
        dims = ds.base.dims
    ))?;
    let vector_type = client.prepare("SELECT $1::vector")?.params()[0].clone();
    let start = Instant::now();
    let sink = client.copy_in("COPY bench_items (id, embedding) FROM STDIN (FORMAT binary)")?;
    let mut writer = BinaryCopyInWriter::new(sink, &[Type::INT4, vector_type]);
    for (i, &id) in ds.ids.iter().enumerate().filter(|&(i, _)| !skip[i]) {
        writer.write(&[&id, &Vector(ds.base.row(i))])?;
    }
    writer.finish()?;
    client.batch_execute("VACUUM ANALYZE bench_items")?;
    Ok(start.elapsed())
}

/// Builds the index; returns build time and index size in bytes.
pub fn build(
    client: &mut Client,
    engine: &Engine,
    ds: &Dataset,
    m: u32,
    ef_construction: u32,
) -> Result<(Duration, i64), BoxError> {
    build_with(client, engine, ds, m, ef_construction, &[])
}

/// [`build`] with `columns` after the vector: a composite index (vdb's
/// filter columns, their default operator classes).
pub fn build_with(
    client: &mut Client,
    engine: &Engine,
    ds: &Dataset,
    m: u32,
    ef_construction: u32,
    columns: &[&str],
) -> Result<(Duration, i64), BoxError> {
    client.batch_execute("DROP INDEX IF EXISTS bench_items_idx; CHECKPOINT")?;
    let filters: String = columns.iter().map(|c| format!(", {c}")).collect();
    let start = Instant::now();
    client.batch_execute(&format!(
        "CREATE INDEX bench_items_idx ON bench_items USING {am} (embedding {opclass}{filters}) WITH (m = {m}, ef_construction = {ef_construction}{options})",
        am = engine.access_method,
        options = engine.index_options,
        opclass = opclass(ds)
    ))?;
    let took = start.elapsed();
    let size: i64 = client
        .query_one("SELECT pg_relation_size('bench_items_idx')", &[])?
        .get(0);
    Ok((took, size))
}

/// Results of one query pass.
#[derive(Debug, Clone, Copy)]
pub struct QueryStats {
    pub ef_search: u32,
    pub recall: f64,
    pub qps: f64,
    pub p50_ms: f64,
    pub p99_ms: f64,
}

/// What one pass of every query through one statement measured.
pub struct Pass {
    /// True neighbours returned, over all queries.
    pub hits: usize,
    /// Rows returned, over all queries.
    pub rows: usize,
    /// Queries that returned fewer rows than their truth holds.
    pub short: usize,
    pub qps: f64,
    pub p50_ms: f64,
    pub p99_ms: f64,
}

/// Runs `sql` (with the query vector as `$1`) once per query, one client,
/// prepared; `truth[q]` holds the ids a perfect answer to query `q` has.
pub fn run_pass(
    client: &mut Client,
    sql: &str,
    ds: &Dataset,
    truth: &[Vec<i32>],
) -> Result<Pass, BoxError> {
    run_pass_with::<f64>(client, sql, ds, truth, &[])
}

/// [`run_pass`] with `extra[q]` as `$2` of query `q` (none when empty):
/// a radius, a filter value.
pub fn run_pass_with<T: ToSql + Sync>(
    client: &mut Client,
    sql: &str,
    ds: &Dataset,
    truth: &[Vec<i32>],
    extra: &[T],
) -> Result<Pass, BoxError> {
    let statement = client.prepare(sql)?;
    let mut latencies = Vec::with_capacity(truth.len());
    let (mut hits, mut rows_returned, mut short) = (0usize, 0usize, 0usize);
    let start = Instant::now();
    for (q, expected) in truth.iter().enumerate() {
        let vector = Vector(ds.queries.row(q));
        let t = Instant::now();
        let rows = match extra.get(q) {
            Some(x) => client.query(&statement, &[&vector, x])?,
            None => client.query(&statement, &[&vector])?,
        };
        latencies.push(t.elapsed());
        rows_returned += rows.len();
        short += usize::from(rows.len() < expected.len());
        hits += rows
            .iter()
            .filter(|r| expected.contains(&r.get::<_, i32>(0)))
            .count();
    }
    let total = start.elapsed();
    latencies.sort_unstable();
    let pct = |p: f64| {
        latencies[((latencies.len() as f64 - 1.0) * p).round() as usize].as_secs_f64() * 1e3
    };
    Ok(Pass {
        hits,
        rows: rows_returned,
        short,
        qps: truth.len() as f64 / total.as_secs_f64(),
        p50_ms: pct(0.50),
        p99_ms: pct(0.99),
    })
}

/// Runs every query once at `ef_search`, one client, prepared statement.
pub fn query_pass(
    client: &mut Client,
    engine: &Engine,
    ds: &Dataset,
    truth: &[Vec<i32>],
    ef_search: u32,
) -> Result<QueryStats, BoxError> {
    client.batch_execute(&format!(
        "SET {} = {ef_search}; SET enable_seqscan = off",
        engine.ef_search_guc
    ))?;
    let sql = format!(
        "SELECT id FROM bench_items ORDER BY embedding {} $1 LIMIT 10",
        operator(ds)
    );
    let pass = run_pass(client, &sql, ds, truth)?;
    Ok(QueryStats {
        ef_search,
        recall: pass.hits as f64 / (truth.len() * 10) as f64,
        qps: pass.qps,
        p50_ms: pass.p50_ms,
        p99_ms: pass.p99_ms,
    })
}

/// Every query `rounds` times at `ef_search` from `clients` connections
/// at once (query `q` goes to client `q % clients`), prepared statements:
/// throughput under concurrency. Recall counts the first round.
pub fn concurrent_pass(
    engine: &Engine,
    ds: &Dataset,
    truth: &[Vec<i32>],
    ef_search: u32,
    clients: usize,
    rounds: usize,
) -> Result<QueryStats, BoxError> {
    let sql = format!(
        "SELECT id FROM bench_items ORDER BY embedding {} $1 LIMIT 10",
        operator(ds)
    );
    let start = Instant::now();
    let per_client: Vec<Result<(usize, Vec<Duration>), BoxError>> = std::thread::scope(|s| {
        let workers: Vec<_> = (0..clients)
            .map(|c| {
                let sql = &sql;
                s.spawn(move || -> Result<(usize, Vec<Duration>), BoxError> {
                    let mut client = engine.connect()?;
                    client.batch_execute(&format!(
                        "SET {} = {ef_search}; SET enable_seqscan = off",
                        engine.ef_search_guc
                    ))?;
                    let statement = client.prepare(sql)?;
                    let (mut hits, mut latencies) = (0, Vec::new());
                    for round in 0..rounds {
                        for (q, expected) in truth.iter().enumerate().skip(c).step_by(clients) {
                            let t = Instant::now();
                            let rows = client.query(&statement, &[&Vector(ds.queries.row(q))])?;
                            latencies.push(t.elapsed());
                            if round == 0 {
                                hits += rows
                                    .iter()
                                    .filter(|r| expected.contains(&r.get::<_, i32>(0)))
                                    .count();
                            }
                        }
                    }
                    Ok((hits, latencies))
                })
            })
            .collect();
        workers
            .into_iter()
            .map(|w| {
                w.join()
                    .unwrap_or_else(|_| Err("a client thread panicked".into()))
            })
            .collect()
    });
    let total = start.elapsed();
    let (mut hits, mut latencies) = (0, Vec::new());
    for r in per_client {
        let (h, l) = r?;
        hits += h;
        latencies.extend(l);
    }
    latencies.sort_unstable();
    let pct = |p: f64| {
        latencies[((latencies.len() as f64 - 1.0) * p).round() as usize].as_secs_f64() * 1e3
    };
    Ok(QueryStats {
        ef_search,
        recall: hits as f64 / (truth.len() * 10) as f64,
        qps: latencies.len() as f64 / total.as_secs_f64(),
        p50_ms: pct(0.50),
        p99_ms: pct(0.99),
    })
}

/// Whether the server behind `conn` can create `extension`.
pub fn has_extension(conn: &str, extension: &str) -> bool {
    Client::connect(conn, NoTls)
        .and_then(|mut c| {
            c.query_opt(
                "SELECT 1 FROM pg_available_extensions WHERE name = $1",
                &[&extension],
            )
        })
        .map(|r| r.is_some())
        .unwrap_or(false)
}
