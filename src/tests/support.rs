//! Helpers shared by the database tests.

use pgrx::prelude::*;

/// Runs `query` and returns `"<SQLSTATE> <message>"` of the error it raises,
/// or `"no error"`.
pub fn sql_error(query: &str) -> String {
    Spi::run(
        "CREATE OR REPLACE FUNCTION pg_temp.sql_error(q text) RETURNS text LANGUAGE plpgsql AS $f$
         BEGIN EXECUTE q; RETURN 'no error';
         EXCEPTION WHEN OTHERS THEN RETURN SQLSTATE || ' ' || SQLERRM; END $f$",
    )
    .expect("helper function");
    Spi::get_one_with_args::<String>("SELECT pg_temp.sql_error($1)", &[query.into()])
        .expect("query runs")
        .expect("not null")
}

/// The single value of a query, which must not be NULL.
pub fn one<T: FromDatum + IntoDatum>(query: &str) -> T {
    Spi::get_one::<T>(query)
        .unwrap_or_else(|e| panic!("{query}: {e}"))
        .unwrap_or_else(|| panic!("{query}: NULL"))
}

/// Asserts that a `double precision` query gives `want`, within 1e-6
/// relative (absolute below 1).
pub fn close(query: &str, want: f64) {
    let got = one::<f64>(query);
    assert!(
        (got - want).abs() <= 1e-6 * want.abs().max(1.0),
        "{query}: {got} != {want}"
    );
}

/// Writes a one-column binary COPY file holding `payload` as its only value.
pub fn write_copy_file(path: &str, payload: &[u8]) {
    let mut file = b"PGCOPY\n\xff\r\n\0".to_vec();
    file.extend_from_slice(&0i32.to_be_bytes()); // flags
    file.extend_from_slice(&0i32.to_be_bytes()); // header extension length
    file.extend_from_slice(&1i16.to_be_bytes()); // one field
    file.extend_from_slice(&(payload.len() as i32).to_be_bytes());
    file.extend_from_slice(payload);
    file.extend_from_slice(&(-1i16).to_be_bytes()); // trailer
    std::fs::write(path, file).expect("write copy file");
}

/// Asserts that a boolean query is true.
pub fn check(query: &str) {
    assert!(one::<bool>(query), "expected true: {query}");
}

/// Runs a statement.
pub fn run(query: &str) {
    Spi::run(query).unwrap_or_else(|e| panic!("{query}: {e}"));
}

/// Creates `name(id, v vector(dims))` with `n` seeded uniformly random rows.
pub fn random_table(name: &str, n: usize, dims: usize, seed: f64) {
    run(&format!("SELECT setseed({seed})"));
    run(&format!(
        "CREATE TABLE {name} AS SELECT i AS id, ARRAY(SELECT random() * 2 - 1 + i * 0 FROM generate_series(1, {dims}))::vector({dims}) AS v
         FROM generate_series(1, {n}) i"
    ));
    run(&format!("ANALYZE {name}"));
}

/// Creates `name(id, v vector(dims))` with `n` seeded random rows drawn
/// around `clusters` random centres (the shape real embeddings have),
/// and `name_queries(id, v)` with 50 more rows from the same
/// distribution.
pub fn clustered_table(name: &str, n: usize, dims: usize, clusters: usize, seed: f64) {
    scaled_clustered_table(name, n, dims, clusters, seed, 1.0);
}

/// [`clustered_table`] with every coordinate multiplied by `scale`.
pub fn scaled_clustered_table(
    name: &str,
    n: usize,
    dims: usize,
    clusters: usize,
    seed: f64,
    scale: f64,
) {
    run(&format!("SELECT setseed({seed})"));
    run(&format!(
        "CREATE TEMP TABLE {name}_centres AS SELECT c, ARRAY(SELECT random() * 2 - 1 + c * 0 FROM generate_series(1, {dims})) AS x
         FROM generate_series(0, {clusters} - 1) c"
    ));
    for (table, rows) in [(name.to_string(), n), (format!("{name}_queries"), 50)] {
        run(&format!(
            "CREATE TABLE {table} AS SELECT i AS id,
               (SELECT array_agg({scale} * (x[d] + 0.25 * (random() + random() + random() - 1.5)) ORDER BY d)
                FROM generate_series(1, {dims}) d)::vector({dims}) AS v
             FROM generate_series(1, {rows}) i JOIN {name}_centres ON c = (i * 7) % {clusters}"
        ));
    }
    run(&format!("ANALYZE {name}"));
}

pub fn query_vectors(table: &str, count: usize) -> Vec<String> {
    Spi::connect(|c| {
        c.select(
            &format!("SELECT v::text FROM {table} ORDER BY id LIMIT {count}"),
            None,
            &[],
        )
        .expect("queries")
        .map(|r| r.get::<String>(1).expect("v").expect("not null"))
        .collect()
    })
}

pub fn random_vector(dims: usize, seed: u64) -> String {
    let mut s = seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1;
    let v: Vec<f32> = (0..dims)
        .map(|_| {
            s ^= s << 13;
            s ^= s >> 7;
            s ^= s << 17;
            (s >> 40) as f32 / (1u64 << 23) as f32 - 1.0
        })
        .collect();
    crate::vector::text::format(&v)
}

pub fn ids(query: &str, args: &[String]) -> Vec<i32> {
    let args: Vec<pgrx::datum::DatumWithOid> = args.iter().map(|a| a.clone().into()).collect();
    Spi::connect(|client| {
        client
            .select(query, None, &args)
            .expect("query")
            .map(|row| row.get::<i32>(1).expect("id").expect("not null"))
            .collect()
    })
}

pub fn uses_index(query: &str) -> bool {
    let plan = one::<pgrx::datum::Json>(&format!("EXPLAIN (FORMAT JSON) {query}"))
        .0
        .to_string();
    plan.contains("\"Index Scan\"")
}

/// Recall@10 of the index against the exact answer (index scans off).
pub fn recall(table: &str, op: &str, queries: &[String]) -> f64 {
    let mut hits = 0;
    for qv in queries {
        let sql = format!("SELECT id FROM {table} ORDER BY v {op} $1::vector LIMIT 10");
        run("SET LOCAL enable_indexscan = on");
        run("SET LOCAL enable_seqscan = off");
        assert!(uses_index(&format!(
            "SELECT id FROM {table} ORDER BY v {op} '{qv}' LIMIT 10"
        )));
        let approx = ids(&sql, std::slice::from_ref(qv));
        run("SET LOCAL enable_indexscan = off");
        run("SET LOCAL enable_seqscan = on");
        let exact = ids(&sql, std::slice::from_ref(qv));
        assert_eq!(approx.len(), 10);
        hits += approx.iter().filter(|id| exact.contains(id)).count();
    }
    run("SET LOCAL enable_indexscan = on");
    hits as f64 / (queries.len() * 10) as f64
}
