//! Build features that need a server of their own: CREATE INDEX
//! CONCURRENTLY and REINDEX CONCURRENTLY while rows arrive, and progress
//! reporting in pg_stat_progress_create_index.

mod support;

use std::time::{Duration, Instant};
use support::Cluster;

fn setup(name: &str, rows: usize, dims: usize) -> (Cluster, postgres::Client) {
    support::require_vdb();
    let cluster = Cluster::start(name, &["maintenance_work_mem = '256MB'"]);
    let mut client = cluster.connect("postgres");
    client
        .batch_execute(&format!(
            "CREATE EXTENSION vdb;
             SELECT setseed(0.4);
             CREATE TABLE t (id serial PRIMARY KEY, v vector({dims}));
             INSERT INTO t (v) SELECT ARRAY(SELECT random() + i * 0 FROM generate_series(1, {dims})) FROM generate_series(1, {rows}) i;"
        ))
        .expect("setup");
    (cluster, client)
}

/// Rows (of those `sample` selects) whose own vector does not find them
/// through the index.
fn missing(client: &mut postgres::Client, sample: &str) -> i64 {
    client
        .batch_execute("SET enable_seqscan = off; SET vhnsw.ef_search = 200")
        .expect("settings");
    client
        .query_one(
            &format!("SELECT count(*) FROM (SELECT * FROM t WHERE {sample}) o WHERE (SELECT id FROM t ORDER BY v <-> o.v LIMIT 1) <> o.id"),
            &[],
        )
        .expect("self queries")
        .get(0)
}

#[test]
fn create_and_reindex_concurrently_while_rows_arrive() {
    let (cluster, mut client) = setup("cic", 20_000, 8);
    let conn = format!(
        "host=127.0.0.1 port={} user=postgres dbname=postgres",
        cluster.port
    );
    let writer = std::thread::spawn(move || {
        let mut w = postgres::Client::connect(&conn, postgres::NoTls).expect("writer");
        for _ in 0..60 {
            w.batch_execute("INSERT INTO t (v) SELECT ARRAY(SELECT random() + i * 0 FROM generate_series(1, 8)) FROM generate_series(1, 50) i")
                .expect("concurrent insert");
            std::thread::sleep(Duration::from_millis(20));
        }
    });
    client
        .batch_execute("CREATE INDEX CONCURRENTLY t_v_idx ON t USING vhnsw (v vector_l2_ops)")
        .expect("CIC");
    writer.join().expect("writer thread");
    let valid: bool = support::one(
        &mut client,
        "SELECT indisvalid FROM pg_index WHERE indexrelid = 't_v_idx'::regclass",
    );
    assert!(valid);
    let rows: i64 = support::one(&mut client, "SELECT count(*) FROM t");
    assert_eq!(rows, 23_000);
    let problems: String = support::one(&mut client, "SELECT vhnsw_check('t_v_idx')");
    assert_eq!(problems, "");
    assert!(
        missing(&mut client, "true") <= 10,
        "rows missing after CREATE INDEX CONCURRENTLY"
    );

    client
        .batch_execute("REINDEX INDEX CONCURRENTLY t_v_idx")
        .expect("REINDEX CONCURRENTLY");
    assert!(
        missing(&mut client, "true") <= 10,
        "rows missing after REINDEX CONCURRENTLY"
    );
}

#[test]
fn build_reports_progress() {
    let (cluster, mut client) = setup("progress", 150_000, 32);
    let conn = format!(
        "host=127.0.0.1 port={} user=postgres dbname=postgres",
        cluster.port
    );
    let builder = std::thread::spawn(move || {
        let mut b = postgres::Client::connect(&conn, postgres::NoTls).expect("builder");
        b.batch_execute("CREATE INDEX t_v_idx ON t USING vhnsw (v vector_l2_ops)")
            .expect("build");
    });
    let mut phases = Vec::new();
    let mut max_done = 0i64;
    let deadline = Instant::now() + Duration::from_secs(600);
    while !builder.is_finished() && Instant::now() < deadline {
        for row in client
            .query(
                "SELECT phase, tuples_total, tuples_done, pid FROM pg_stat_progress_create_index",
                &[],
            )
            .expect("progress view")
        {
            // A benign interrupt (it only asks the backend to log its memory
            // use) must not cut the build short.
            let pid: i32 = row.get(3);
            client
                .execute("SELECT pg_log_backend_memory_contexts($1)", &[&pid])
                .expect("signal the builder");
            let phase: String = row.get(0);
            let (total, done): (i64, i64) = (row.get(1), row.get(2));
            if phase.contains("building graph") {
                assert_eq!(total, 150_000, "tuples_total while building the graph");
                max_done = max_done.max(done);
            }
            if !phases.contains(&phase) {
                phases.push(phase);
            }
        }
        std::thread::sleep(Duration::from_millis(25));
    }
    builder.join().expect("builder thread");
    assert!(
        phases.iter().any(|p| p.contains("building graph")),
        "phases seen: {phases:?}"
    );
    assert!(max_done > 0, "graph progress never moved: {phases:?}");
    // The index is complete and sound despite the interrupts.
    let nodes: i64 = support::one(
        &mut client,
        "SELECT (vhnsw_stats('t_v_idx')->>'nodes')::bigint",
    );
    assert_eq!(nodes, 150_000);
    let problems: String = support::one(&mut client, "SELECT vhnsw_check('t_v_idx')");
    assert_eq!(problems, "");
    assert!(
        missing(&mut client, "id % 750 = 0") <= 2,
        "rows not found by their own vector"
    );
}
