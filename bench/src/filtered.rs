//! The filtered goal table: `SELECT id FROM bench_items WHERE <filter>
//! ORDER BY embedding <op> $1 LIMIT 10` for the first [`QUERIES`] queries
//! at `--filtered-ef`, against each query's exact filtered top 10 (a query
//! that returns fewer rows counts the missing ones as misses).
//!
//! After the main passes every engine's `bench_items` gets filter columns,
//! the same values for both engines, computed here from each row's id and
//! vector:
//! - `f10`, `f100`, `f1000`: the id modulo 10, 100, 1000, queried as
//!   `= 7`: 10 %, 1 % and 0.1 % of the rows;
//! - `tenant`: tenant k holds about 2^-(k+1) of the rows (the trailing zero
//!   bits of a hash of the id), so tenant 0 has half of them and several
//!   have fewer than 0.1 %; queried for tenants 0, 2, 5, 8 and the two
//!   smallest that have at least 10 rows;
//! - `slab`: the decile (0–9) of the row's projection on one seeded random
//!   direction. Each query filters on its own decile (`slab = $2`, a filter
//!   correlated with the query: its neighbours tend to pass) or on the
//!   farthest one (9 below decile 5, else 0: the answer lies in a far-away
//!   region the search has to cross the graph to reach).
//!
//! vdb replaces its plain index by one composite index `(embedding, f10,
//! f100, f1000, tenant, slab)` (same `m` and `ef_construction`), which
//! checks these conditions inside the index, and measures the unfiltered
//! query on it as the reference. pgvector has no composite index: its plain
//! hnsw index, rebuilt on the wider table, with the filter on the heap,
//! once per `hnsw.iterative_scan` mode (`off`, its default, `strict_order`,
//! `relaxed_order`). Both run with `enable_seqscan = off` and that index as
//! the table's only one; every pass's plan is checked (EXPLAIN) for where
//! the filter is applied. Scans stop at the engines' default
//! `max_scan_tuples`.

use crate::dataset::{self, Dataset, Metric};
use crate::db::{self, BoxError, Engine, Vector};
use crate::report::EngineResult;
use postgres::binary_copy::BinaryCopyInWriter;
use postgres::types::Type;
use postgres::Client;
use rayon::prelude::*;
use std::collections::HashMap;
use std::time::Instant;
use vdb_core::distance;

/// Queries of every filtered pass, the first of the dataset's: enough for
/// recall to two decimals, few enough that pgvector's slow modes take
/// seconds, not minutes.
pub const QUERIES: usize = 200;
/// The queries' LIMIT.
const LIMIT: usize = 10;
/// `f<n>` holds the id modulo `n`: one row in `n` passes `f<n> = VALUE`.
const MODULI: [i32; 3] = [10, 100, 1000];
const VALUE: i32 = 7;
/// The filter columns, in the composite index's order: `f<n>` of
/// [`MODULI`] first.
const COLUMNS: [&str; 5] = ["f10", "f100", "f1000", "tenant", "slab"];
const TENANT: usize = 3;
const SLAB: usize = 4;
/// Tenants always queried (when they have `LIMIT` rows), from half of the
/// rows down to about 0.2 %; the two smallest join them.
const TENANTS: [i32; 4] = [0, 2, 5, 8];
const DECILES: usize = 10;
/// The recall every goal asks for.
const GOAL_RECALL: f64 = 0.95;
/// pgvector's fastest mode that keeps scanning: the goals' yardstick.
const RELAXED: &str = "relaxed_order";

/// What a pass filters on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Filter {
    /// No `WHERE`: the reference the filtered passes are held against.
    None,
    /// `f<n> = 7`: one row in `n`.
    OneIn(i32),
    /// `tenant = t`.
    Tenant(i32),
    /// `slab = $2`, the query's own decile.
    OwnSlab,
    /// `slab = $2`, the decile farthest from the query's.
    FarSlab,
}

impl Filter {
    /// The filtered column's position in [`COLUMNS`].
    fn column(self) -> Option<usize> {
        match self {
            Filter::None => None,
            Filter::OneIn(n) => MODULI.iter().position(|&m| m == n),
            Filter::Tenant(_) => Some(TENANT),
            Filter::OwnSlab | Filter::FarSlab => Some(SLAB),
        }
    }

    /// The value the column is compared with; `None` when every query
    /// brings its own (`$2`).
    fn constant(self) -> Option<i32> {
        match self {
            Filter::OneIn(_) => Some(VALUE),
            Filter::Tenant(t) => Some(t),
            Filter::None | Filter::OwnSlab | Filter::FarSlab => None,
        }
    }

    /// The `WHERE` condition, if any.
    fn condition(self) -> Option<String> {
        let column = COLUMNS[self.column()?];
        Some(match self.constant() {
            Some(v) => format!("{column} = {v}"),
            None => format!("{column} = $2"),
        })
    }

    fn label(self) -> String {
        match self {
            Filter::None => "none (reference)".into(),
            Filter::OwnSlab => "slab = own decile".into(),
            Filter::FarSlab => "slab = far decile".into(),
            other => other.condition().unwrap_or_default(),
        }
    }
}

/// One pass of the table: its filter, the share of rows it keeps, each
/// query's `$2` (empty when the filter takes none) and exact filtered top
/// [`LIMIT`].
struct Case {
    filter: Filter,
    share: f64,
    params: Vec<i32>,
    truth: Vec<Vec<i32>>,
}

/// The filter columns' values and the passes, the same for every engine.
pub struct Workload {
    /// Per column of [`COLUMNS`], its value on each base row.
    columns: Vec<Vec<i32>>,
    /// The unfiltered reference first.
    cases: Vec<Case>,
}

/// The filter columns and every pass's exact answers; `truth` is the
/// dataset's unfiltered top 10 (the reference pass reuses it).
pub fn workload(ds: &Dataset, truth: &[Vec<i32>]) -> Workload {
    let queries = QUERIES.min(ds.queries.len());
    let (slabs, own) = slabs(ds, queries);
    let mut columns: Vec<Vec<i32>> = MODULI
        .iter()
        .map(|&n| ds.ids.iter().map(|id| id.rem_euclid(n)).collect())
        .collect();
    columns.push(ds.ids.iter().map(|&id| tenant(id)).collect());
    columns.push(slabs);
    let far: Vec<i32> = own
        .iter()
        .map(|&s| {
            if s < DECILES as i32 / 2 {
                DECILES as i32 - 1
            } else {
                0
            }
        })
        .collect();
    let mut filters = vec![(Filter::None, Vec::new())];
    filters.extend(MODULI.map(|n| (Filter::OneIn(n), Vec::new())));
    filters.extend(
        tenants(&columns[TENANT])
            .into_iter()
            .map(|t| (Filter::Tenant(t), Vec::new())),
    );
    filters.push((Filter::OwnSlab, own));
    filters.push((Filter::FarSlab, far));
    let cases = filters
        .into_iter()
        .map(|(filter, params)| case(ds, &columns, truth, queries, filter, params))
        .collect();
    Workload { columns, cases }
}

/// A pass's share of rows and exact answers.
fn case(
    ds: &Dataset,
    columns: &[Vec<i32>],
    truth: &[Vec<i32>],
    queries: usize,
    filter: Filter,
    params: Vec<i32>,
) -> Case {
    let Some(column) = filter.column() else {
        return Case {
            filter,
            share: 1.0,
            params,
            truth: truth.iter().take(queries).cloned().collect(),
        };
    };
    let values = &columns[column];
    let wanted = |q: usize| filter.constant().unwrap_or_else(|| params[q]);
    let counts = counts(values);
    let kept: usize = (0..queries)
        .map(|q| counts.get(&wanted(q)).copied().unwrap_or(0))
        .sum();
    let share = kept as f64 / (queries * values.len()).max(1) as f64;
    let truth = dataset::ground_truth_each(ds, LIMIT, queries, |q, row| values[row] == wanted(q));
    Case {
        filter,
        share,
        params,
        truth,
    }
}

/// Rows per value.
fn counts(values: &[i32]) -> HashMap<i32, usize> {
    let mut counts = HashMap::new();
    for &v in values {
        *counts.entry(v).or_insert(0) += 1;
    }
    counts
}

/// The tenant of `id`: the trailing zero bits of a seeded hash of it, so
/// tenant k has about 2^-(k+1) of the rows, whatever the ids are.
fn tenant(id: i32) -> i32 {
    let mut x = 0x7e4a_47e1_d15c_0000 ^ id as u64;
    dataset::splitmix(&mut x).trailing_zeros() as i32
}

/// The tenants to query: [`TENANTS`] and the two smallest tenants, all
/// with at least [`LIMIT`] rows (so a full answer exists), in tenant order
/// (largest first).
fn tenants(values: &[i32]) -> Vec<i32> {
    let counts = counts(values);
    let mut by_size: Vec<(usize, i32)> = counts
        .iter()
        .filter(|&(_, &n)| n >= LIMIT)
        .map(|(&t, &n)| (n, t))
        .collect();
    by_size.sort_unstable();
    let mut chosen: Vec<i32> = TENANTS
        .into_iter()
        .filter(|t| counts.get(t).is_some_and(|&n| n >= LIMIT))
        .collect();
    chosen.extend(by_size.iter().take(2).map(|&(_, t)| t));
    chosen.sort_unstable();
    chosen.dedup();
    chosen
}

/// Each base row's decile of its projection on a seeded random direction,
/// and the decile of each of the first `queries` queries by the same
/// bounds. Under cosine the projection is of the unit vector: the
/// direction is all the metric sees, so neighbours share slabs. Under l2
/// and inner product it is of the vector as it is.
fn slabs(ds: &Dataset, queries: usize) -> (Vec<i32>, Vec<i32>) {
    let direction = random_direction(ds.base.dims);
    let project = |v: &[f32]| {
        let p = distance::dot(v, &direction);
        let norm = distance::norm_squared(v).sqrt();
        match ds.metric {
            Metric::Cosine if norm > 0.0 => p / norm,
            Metric::Cosine => 0.0,
            Metric::L2 | Metric::InnerProduct => p,
        }
    };
    let n = ds.base.len();
    let projections: Vec<f64> = (0..n)
        .into_par_iter()
        .map(|i| project(ds.base.row(i)))
        .collect();
    let mut order: Vec<usize> = (0..n).collect();
    order.par_sort_unstable_by(|&a, &b| projections[a].total_cmp(&projections[b]));
    let mut slab = vec![0i32; n];
    for (rank, &row) in order.iter().enumerate() {
        slab[row] = (rank * DECILES / n) as i32;
    }
    // The lowest projection of deciles 1..: the rank whose decile first
    // reaches d is ceil(d·n / DECILES).
    let bounds: Vec<f64> = (1..DECILES)
        .map(|d| projections[order[(d * n).div_ceil(DECILES).min(n - 1)]])
        .collect();
    let own = (0..queries)
        .map(|q| {
            let p = project(ds.queries.row(q));
            bounds.iter().filter(|&&b| p >= b).count() as i32
        })
        .collect();
    (slab, own)
}

/// A seeded unit vector, every direction equally likely (Gaussian
/// coordinates, Box–Muller).
fn random_direction(dims: usize) -> Vec<f32> {
    let mut seed = 0x51ab_d1ec_7104_2026u64;
    let mut uniform = || (dataset::splitmix(&mut seed) >> 11) as f64 / (1u64 << 53) as f64;
    let v: Vec<f64> = (0..dims)
        .map(|_| {
            let (u1, u2) = (uniform().max(1e-12), uniform());
            (-2.0 * u1.ln()).sqrt() * (std::f64::consts::TAU * u2).cos()
        })
        .collect();
    let norm = v.iter().map(|x| x * x).sum::<f64>().sqrt();
    v.iter().map(|x| (x / norm) as f32).collect()
}

/// Where a pass's plan applies its filter.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Checked {
    /// The pass has no filter.
    Unfiltered,
    /// An index condition (`Index Cond`).
    Index,
    /// A filter on the rows the index returns.
    Heap,
    /// Neither found in the plan.
    Unknown,
    /// The plan is not an index scan of `bench_items_idx`.
    NoIndexScan,
}

impl Checked {
    fn label(self) -> &'static str {
        match self {
            Checked::Unfiltered => "-",
            Checked::Index => "index",
            Checked::Heap => "heap",
            Checked::Unknown => "?",
            Checked::NoIndexScan => "NO IDX",
        }
    }
}

/// Results of one filtered pass.
#[derive(Debug, Clone)]
pub struct FilteredPass {
    /// The engine's scan mode, as set for this pass.
    pub mode: &'static str,
    pub filter: Filter,
    /// Share of the rows the filter keeps (mean over queries).
    pub share: f64,
    /// Of each query's exact filtered top 10 (fewer when fewer rows pass).
    pub recall: f64,
    pub rows_per_query: f64,
    /// Share of queries returning fewer rows than min(LIMIT, rows kept).
    pub short: f64,
    pub qps: f64,
    pub p99_ms: f64,
    pub checked: Checked,
}

/// One engine's filtered goal table.
#[derive(Debug, Clone)]
pub struct FilteredRun {
    /// vdb's composite index, which checks the filters itself; otherwise
    /// the plain index, rebuilt on the wider table.
    pub composite: bool,
    pub build_secs: f64,
    pub index_bytes: i64,
    /// The engine's `max_scan_tuples`, where it has one.
    pub max_scan_tuples: Option<String>,
    pub queries: usize,
    pub passes: Vec<FilteredPass>,
}

/// The scan modes to measure: (label, setting). vdb's scans keep going
/// by default; pgvector's iterative scan is off by default.
fn modes(engine: &Engine) -> Vec<(&'static str, &'static str)> {
    if engine.extension == "vector" {
        vec![
            (
                "iterative_scan off (default)",
                "SET hnsw.iterative_scan = off",
            ),
            ("strict_order", "SET hnsw.iterative_scan = strict_order"),
            (RELAXED, "SET hnsw.iterative_scan = relaxed_order"),
        ]
    } else {
        vec![("composite index", "")]
    }
}

/// Adds the filter columns, builds the engine's index (vdb: composite,
/// pgvector: plain, both with `m` and `ef_construction`) and runs every
/// pass at `ef_search`, once per scan mode. Replaces `bench_items` and its
/// index: run it after everything else that needs the main table.
#[allow(clippy::too_many_arguments)]
pub fn run(
    client: &mut Client,
    engine: &Engine,
    ds: &Dataset,
    work: &Workload,
    m: u32,
    ef_construction: u32,
    ef_search: u32,
) -> Result<FilteredRun, BoxError> {
    let composite = engine.extension == "vdb";
    let started = Instant::now();
    add_columns(client, ds, work)?;
    eprintln!(
        "[{}] filter columns added in {:.1}s",
        engine.name,
        started.elapsed().as_secs_f64()
    );
    let columns: &[&str] = if composite { &COLUMNS } else { &[] };
    let (build, size) = db::build_with(client, engine, ds, m, ef_construction, columns)?;
    only_index(client)?;
    eprintln!(
        "[{}] {} index built in {:.1}s, {:.1} MiB",
        engine.name,
        if composite { "composite" } else { "plain" },
        build.as_secs_f64(),
        size as f64 / 1048576.0
    );
    client.batch_execute(&format!(
        "SET {} = {ef_search}; SET enable_seqscan = off",
        engine.ef_search_guc
    ))?;
    // The new index and table start cold: one unmeasured pass reads them in.
    let reference = &work.cases[0];
    db::run_pass(client, &sql(ds, reference.filter), ds, &reference.truth)?;
    let mut passes = Vec::new();
    for (mode, setting) in modes(engine) {
        if !setting.is_empty() {
            client.batch_execute(setting)?;
        }
        for case in &work.cases {
            let pass = measure(client, ds, case, mode)?;
            eprintln!(
                "[{}] {} ({mode}): kept {}, recall {:.3}, {:.1} rows/query, {:.0} QPS, filter: {}",
                engine.name,
                case.filter.label(),
                percent(pass.share),
                pass.recall,
                pass.rows_per_query,
                pass.qps,
                pass.checked.label()
            );
            passes.push(pass);
        }
    }
    let guc = if composite {
        "vhnsw.max_scan_tuples"
    } else {
        "hnsw.max_scan_tuples"
    };
    let max_scan_tuples = client
        .query_one("SELECT current_setting($1, true)", &[&guc])?
        .get(0);
    if !composite {
        client.batch_execute("RESET hnsw.iterative_scan")?;
    }
    Ok(FilteredRun {
        composite,
        build_secs: build.as_secs_f64(),
        index_bytes: size,
        max_scan_tuples,
        queries: reference.truth.len(),
        passes,
    })
}

/// Rewrites `bench_items` with the filter columns, rows in id order,
/// without an index. The values go through a side table loaded with COPY
/// and a join into a new table: an `UPDATE` would send every row's new
/// version through the index (pgvector inserts a few hundred rows a
/// second) and leave half the heap dead.
fn add_columns(client: &mut Client, ds: &Dataset, work: &Workload) -> Result<(), BoxError> {
    let defs: String = COLUMNS
        .iter()
        .map(|c| format!(", {c} int4 NOT NULL"))
        .collect();
    client.batch_execute(&format!(
        "DROP TABLE IF EXISTS bench_filters, bench_items_wide;
         CREATE TEMP TABLE bench_filters (id int4 NOT NULL{defs});
         CREATE TABLE bench_items_wide (id int4 NOT NULL, embedding vector({}) NOT NULL{defs});",
        ds.base.dims
    ))?;
    let sink = client.copy_in("COPY bench_filters FROM STDIN (FORMAT binary)")?;
    let mut writer = BinaryCopyInWriter::new(sink, &[Type::INT4; 1 + COLUMNS.len()]);
    for (row, &id) in ds.ids.iter().enumerate() {
        let mut values = [id; 1 + COLUMNS.len()];
        for (value, column) in values[1..].iter_mut().zip(&work.columns) {
            *value = column[row];
        }
        writer.write_raw(values)?;
    }
    writer.finish()?;
    let selected: String = COLUMNS.iter().map(|c| format!(", f.{c}")).collect();
    let rows = client.execute(
        &format!(
            "INSERT INTO bench_items_wide SELECT i.id, i.embedding{selected}
             FROM bench_items i JOIN bench_filters f USING (id) ORDER BY i.id"
        ),
        &[],
    )?;
    if rows != ds.ids.len() as u64 {
        return Err(format!(
            "{rows} rows of bench_items matched the dataset's {} filter rows",
            ds.ids.len()
        )
        .into());
    }
    client.batch_execute(
        "DROP TABLE bench_items, bench_filters;
         ALTER TABLE bench_items_wide RENAME TO bench_items",
    )?;
    // Alone: VACUUM cannot run in a multi-statement string.
    client.batch_execute("VACUUM ANALYZE bench_items")?;
    Ok(())
}

/// Fails unless `bench_items_idx` is the table's only index, so that the
/// planner has no other to choose.
fn only_index(client: &mut Client) -> Result<(), BoxError> {
    let names: Vec<String> = client
        .query(
            "SELECT indexrelid::regclass::text FROM pg_index WHERE indrelid = 'bench_items'::regclass",
            &[],
        )?
        .iter()
        .map(|r| r.get(0))
        .collect();
    if names != ["bench_items_idx"] {
        return Err(
            format!("bench_items has the indexes {names:?}, not bench_items_idx alone").into(),
        );
    }
    Ok(())
}

/// The pass's statement: `$1` the query vector, `$2` the query's value
/// when the filter takes one.
fn sql(ds: &Dataset, filter: Filter) -> String {
    let condition = filter
        .condition()
        .map_or(String::new(), |c| format!(" WHERE {c}"));
    format!(
        "SELECT id FROM bench_items{condition} ORDER BY embedding {} $1 LIMIT {LIMIT}",
        db::operator(ds)
    )
}

/// Runs one pass and checks its plan.
fn measure(
    client: &mut Client,
    ds: &Dataset,
    case: &Case,
    mode: &'static str,
) -> Result<FilteredPass, BoxError> {
    let sql = sql(ds, case.filter);
    let checked = checked(client, &sql, ds, case)?;
    let run = db::run_pass_with(client, &sql, ds, &case.truth, case.params.as_slice())?;
    let queries = case.truth.len().max(1) as f64;
    let expected: usize = case.truth.iter().map(Vec::len).sum();
    Ok(FilteredPass {
        mode,
        filter: case.filter,
        share: case.share,
        recall: if expected == 0 {
            1.0
        } else {
            run.hits as f64 / expected as f64
        },
        rows_per_query: run.rows as f64 / queries,
        short: run.short as f64 / queries,
        qps: run.qps,
        p99_ms: run.p99_ms,
        checked,
    })
}

/// Where the plan of `sql`, for the first query, applies the filter.
fn checked(client: &mut Client, sql: &str, ds: &Dataset, case: &Case) -> Result<Checked, BoxError> {
    let explain = format!("EXPLAIN (COSTS OFF) {sql}");
    let vector = Vector(ds.queries.row(0));
    let rows = match case.params.first() {
        Some(value) => client.query(&explain, &[&vector, value])?,
        None => client.query(&explain, &[&vector])?,
    };
    let plan: Vec<String> = rows.iter().map(|r| r.get(0)).collect();
    if !plan
        .iter()
        .any(|l| l.contains("Index Scan using bench_items_idx"))
    {
        return Ok(Checked::NoIndexScan);
    }
    let Some(column) = case.filter.column() else {
        return Ok(Checked::Unfiltered);
    };
    // The space keeps `f10` from matching `f100 = 7`.
    let needle = format!("{} ", COLUMNS[column]);
    let on = |label: &str| {
        plan.iter()
            .any(|l| l.trim_start().starts_with(label) && l.contains(&needle))
    };
    Ok(if on("Index Cond:") {
        Checked::Index
    } else if on("Filter:") {
        Checked::Heap
    } else {
        Checked::Unknown
    })
}

/// A share as a percentage, with the decimals small shares need.
fn percent(share: f64) -> String {
    let p = share * 100.0;
    let decimals = if p >= 1.0 {
        1
    } else if p >= 0.1 {
        2
    } else {
        3
    };
    format!("{p:.decimals$}%")
}

/// QPS of `run`'s pass with `filter` in `mode`.
fn qps(run: &FilteredRun, mode: &str, filter: Filter) -> Option<f64> {
    run.passes
        .iter()
        .find(|p| p.mode == mode && p.filter == filter)
        .map(|p| p.qps)
}

/// The goal table of every engine, then vdb's goal check.
pub fn print(dataset: &str, results: &[EngineResult], ef_search: u32) {
    let runs: Vec<(&str, &FilteredRun)> = results
        .iter()
        .filter_map(|r| r.filtered.as_ref().map(|f| (r.name.as_str(), f)))
        .collect();
    let Some((_, first)) = runs.first() else {
        return;
    };
    // pgvector's run: its relaxed_order passes are the yardstick of vdb's QPS.
    let pgvector = runs.iter().map(|(_, r)| *r).find(|r| !r.composite);
    println!();
    println!(
        "filtered goal table, {dataset}: {} queries, SELECT id FROM bench_items WHERE <filter> ORDER BY distance LIMIT {LIMIT}, ef_search {ef_search}, enable_seqscan = off, bench_items_idx the table's only index; truth: each query's exact filtered top {LIMIT}",
        first.queries
    );
    for (name, run) in &runs {
        println!(
            "  {name}: {}, built in {:.1} s, {:.1} MiB{}",
            if run.composite {
                format!("composite index (embedding, {})", COLUMNS.join(", "))
            } else {
                "plain index rebuilt on the table with the filter columns".into()
            },
            run.build_secs,
            run.index_bytes as f64 / 1048576.0,
            run.max_scan_tuples
                .as_ref()
                .map_or(String::new(), |m| format!(", max_scan_tuples {m}"))
        );
    }
    println!("  kept: share of rows passing; short: queries returning fewer rows than min({LIMIT}, rows passing);");
    println!("  x unfilt: QPS / the same index and mode's unfiltered QPS; x pgv: vdb QPS / pgvector {RELAXED} QPS; where: the plan's check of the filter");
    for (name, run) in &runs {
        for block in run.passes.chunk_by(|a, b| a.mode == b.mode) {
            print_block(name, run, block, pgvector);
        }
    }
    if let Some((name, vdb)) = runs.iter().find(|(_, r)| r.composite) {
        print_goals(dataset, name, vdb, pgvector, ef_search);
    }
}

/// One engine and mode's rows, and its lowest tenant recall.
fn print_block(
    name: &str,
    run: &FilteredRun,
    passes: &[FilteredPass],
    pgvector: Option<&FilteredRun>,
) {
    let mode = passes[0].mode;
    let unfiltered = qps(run, mode, Filter::None);
    println!();
    println!("{name} ({mode}):");
    println!(
        "  {:<22} {:>8} {:>7} {:>7} {:>6} {:>8} {:>7} {:>9} {:>7} {:>6}",
        "filter",
        "kept",
        "recall",
        "rows/q",
        "short",
        "QPS",
        "p99 ms",
        "x unfilt",
        "x pgv",
        "where"
    );
    let ratio = |x: Option<f64>| x.map_or("-".to_string(), |x| format!("{x:.2}x"));
    for p in passes {
        let against_pgvector = pgvector
            .filter(|_| run.composite)
            .and_then(|r| qps(r, RELAXED, p.filter))
            .map(|q| p.qps / q);
        println!(
            "  {:<22} {:>8} {:>7.3} {:>7.1} {:>5.1}% {:>8.0} {:>7.2} {:>9} {:>7} {:>6}",
            p.filter.label(),
            percent(p.share),
            p.recall,
            p.rows_per_query,
            100.0 * p.short,
            p.qps,
            p.p99_ms,
            ratio(unfiltered.map(|u| p.qps / u)),
            ratio(against_pgvector),
            p.checked.label()
        );
    }
    if let Some((tenant, recall)) = lowest_tenant(passes) {
        println!("  tenants: lowest recall {recall:.3} (tenant {tenant})");
    }
}

/// The tenant pass of lowest recall: (tenant, recall).
fn lowest_tenant(passes: &[FilteredPass]) -> Option<(i32, f64)> {
    passes
        .iter()
        .filter_map(|p| match p.filter {
            Filter::Tenant(t) => Some((t, p.recall)),
            _ => None,
        })
        .min_by(|a, b| a.1.total_cmp(&b.1))
}

/// One condition of a goal: the measured figure against the target;
/// `met` is `None` when it could not be measured.
struct Part {
    text: String,
    met: Option<bool>,
}

impl Part {
    fn recall(recall: Option<f64>) -> Part {
        Part::at_least("recall", recall, GOAL_RECALL, |v, cmp| {
            format!("recall {v:.3} {cmp} {GOAL_RECALL}")
        })
    }

    /// A QPS ratio against `of`.
    fn ratio(value: Option<f64>, target: f64, of: &str) -> Part {
        Part::at_least(of, value, target, |v, cmp| {
            format!("{v:.2}x {of} {cmp} {target}x")
        })
    }

    /// `value` against `target`; `what` names it when it is missing.
    fn at_least(
        what: &str,
        value: Option<f64>,
        target: f64,
        text: impl Fn(f64, &str) -> String,
    ) -> Part {
        match value {
            Some(v) => Part {
                text: text(v, if v >= target { ">=" } else { "<" }),
                met: Some(v >= target),
            },
            None => Part {
                text: format!("{what} not measured"),
                met: None,
            },
        }
    }

    /// No query short of rows that exist.
    fn never_short(short: Option<f64>) -> Part {
        match short {
            Some(s) => Part {
                text: format!("{:.1}% of queries short of rows (goal 0)", 100.0 * s),
                met: Some(s == 0.0),
            },
            None => Part {
                text: "short queries not measured".into(),
                met: None,
            },
        }
    }
}

/// vdb's figures against the targets.
fn print_goals(
    dataset: &str,
    name: &str,
    vdb: &FilteredRun,
    pgvector: Option<&FilteredRun>,
    ef_search: u32,
) {
    let mode = vdb.passes.first().map_or("", |p| p.mode);
    let pass = |f: Filter| vdb.passes.iter().find(|p| p.filter == f);
    let unfiltered = qps(vdb, mode, Filter::None);
    let against_unfiltered = |f: Filter| Some(pass(f)?.qps / unfiltered?);
    let against_pgvector = |f: Filter| Some(pass(f)?.qps / qps(pgvector?, RELAXED, f)?);
    let recall = |f: Filter| pass(f).map(|p| p.recall);
    // The goal's nominal share, its filter and the share measured.
    let title = |nominal: &str, f: Filter| {
        let kept = pass(f).map_or("?".into(), |p| percent(p.share));
        format!("{nominal} ({}, kept {kept})", f.label())
    };
    let [ten, one, tenth] = MODULI.map(Filter::OneIn);
    let lowest = lowest_tenant(&vdb.passes);
    let goals = [
        (
            title("1 %", one),
            vec![
                Part::recall(recall(one)),
                Part::ratio(against_unfiltered(one), 0.5, "unfiltered QPS"),
                Part::ratio(
                    against_pgvector(one),
                    10.0,
                    &format!("pgvector {RELAXED} QPS"),
                ),
            ],
        ),
        (
            title("0.1 %", tenth),
            vec![
                Part::recall(recall(tenth)),
                Part::never_short(pass(tenth).map(|p| p.short)),
            ],
        ),
        (
            title("10 %", ten),
            vec![
                Part::recall(recall(ten)),
                Part::ratio(against_unfiltered(ten), 0.8, "unfiltered QPS"),
            ],
        ),
        (
            format!(
                "tenants (lowest: {})",
                lowest.map_or("none".into(), |(t, _)| format!("tenant {t}"))
            ),
            vec![Part::recall(lowest.map(|(_, r)| r))],
        ),
        (
            "correlated".into(),
            vec![Part::recall(recall(Filter::OwnSlab))],
        ),
        (
            "anti-correlated".into(),
            vec![Part::recall(recall(Filter::FarSlab))],
        ),
    ];
    println!();
    println!("goal check, {name} on {dataset} (composite index, ef_search {ef_search}):");
    for (goal, parts) in goals {
        let verdict = if parts.iter().any(|p| p.met == Some(false)) {
            "NOT met"
        } else if parts.iter().any(|p| p.met.is_none()) {
            "met where measured"
        } else {
            "met"
        };
        let texts: Vec<&str> = parts.iter().map(|p| p.text.as_str()).collect();
        println!("  {goal:<34} {}: {verdict}", texts.join(", "));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The columns have the shares the table reports, and every pass's
    /// truth holds only rows that pass its filter, as many as exist up to
    /// LIMIT.
    #[test]
    fn workload_matches_its_filters() {
        for ds in [
            dataset::gaussian_mixture(20_000, 16, 10, 300).unwrap(),
            dataset::synthetic_clusters(20_000, 32, 10, 4, 300).unwrap(),
        ] {
            let truth = dataset::ground_truth_where(&ds, LIMIT, |_| true);
            let work = workload(&ds, &truth);
            let n = ds.base.len();
            let row_of: HashMap<i32, usize> =
                ds.ids.iter().enumerate().map(|(i, &id)| (id, i)).collect();
            let slabs = counts(&work.columns[SLAB]);
            assert_eq!(slabs.len(), DECILES);
            assert!(slabs.values().all(|&c| c.abs_diff(n / DECILES) <= 1));
            let tenants = counts(&work.columns[TENANT]);
            let half = tenants[&0] as f64 / n as f64;
            assert!((0.47..0.53).contains(&half), "tenant 0: {half}");
            for case in &work.cases {
                assert_eq!(case.truth.len(), QUERIES);
                for (q, ids) in case.truth.iter().enumerate() {
                    let wanted = case.filter.constant().or(case.params.get(q).copied());
                    let column = case.filter.column();
                    let passing = match (column, wanted) {
                        (Some(c), Some(v)) => work.columns[c].iter().filter(|&&x| x == v).count(),
                        _ => n,
                    };
                    assert_eq!(ids.len(), passing.min(LIMIT), "{:?}", case.filter);
                    if let (Some(c), Some(v)) = (column, wanted) {
                        assert!(ids.iter().all(|id| work.columns[c][row_of[id]] == v));
                    }
                }
                eprintln!(
                    "{} {:?}: kept {}",
                    ds.name,
                    case.filter,
                    percent(case.share)
                );
            }
            // How many of the unfiltered top 10 lie in the query's own slab.
            let own = work
                .cases
                .iter()
                .find(|c| c.filter == Filter::OwnSlab)
                .unwrap();
            let inside = (0..QUERIES)
                .map(|q| {
                    truth[q]
                        .iter()
                        .filter(|id| work.columns[SLAB][row_of[id]] == own.params[q])
                        .count()
                })
                .sum::<usize>();
            eprintln!(
                "{}: {:.2} of the top 10 in the own slab",
                ds.name,
                inside as f64 / (QUERIES * LIMIT) as f64
            );
        }
    }
}
