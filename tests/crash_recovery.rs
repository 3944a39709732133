//! The index survives crashes: SIGKILL of the whole server after a build
//! and after a batch of inserts, then crash recovery from WAL. Answers are
//! identical before and after, and match an exact scan at the expected
//! recall.

mod support;

use support::Cluster;

/// Index answers (ids of the 10 nearest) for every query row.
fn answers(client: &mut postgres::Client, index_scans: bool) -> Vec<Vec<i32>> {
    let setting = if index_scans {
        "SET enable_seqscan = off; SET enable_indexscan = on"
    } else {
        "SET enable_seqscan = on; SET enable_indexscan = off"
    };
    client.batch_execute(setting).expect("settings");
    let queries: Vec<i32> = client
        .query("SELECT id FROM q ORDER BY id", &[])
        .expect("queries")
        .iter()
        .map(|r| r.get(0))
        .collect();
    queries
        .iter()
        .map(|&qid| {
            client
                .query(
                    "SELECT t.id FROM t ORDER BY t.v <=> (SELECT v FROM q WHERE id = $1) LIMIT 10",
                    &[&qid],
                )
                .expect("knn")
                .iter()
                .map(|r| r.get(0))
                .collect()
        })
        .collect()
}

fn recall(approx: &[Vec<i32>], exact: &[Vec<i32>]) -> f64 {
    let hits: usize = approx
        .iter()
        .zip(exact)
        .map(|(a, e)| a.iter().filter(|x| e.contains(x)).count())
        .sum();
    hits as f64 / exact.iter().map(Vec::len).sum::<usize>() as f64
}

fn check(client: &mut postgres::Client) -> String {
    client
        .query_one("SELECT vhnsw_check('t_v_idx')", &[])
        .expect("check")
        .get(0)
}

#[test]
fn index_survives_crashes() {
    assert!(
        support::vdb_installed(),
        "vdb is not installed; run scripts/test.sh"
    );
    // No checkpoint in between: recovery must replay the index from WAL.
    let cluster = Cluster::start(
        "crash",
        &[
            "checkpoint_timeout = '1h'",
            "max_wal_size = '4GB'",
            "fsync = on",
        ],
    );
    let mut client = cluster.connect("postgres");
    client
        .batch_execute(
            "CREATE EXTENSION vdb;
             SELECT setseed(0.3);
             CREATE TABLE c AS SELECT c, ARRAY(SELECT random() * 2 - 1 + c * 0 FROM generate_series(1, 32)) AS x FROM generate_series(0, 29) c;
             CREATE TABLE t AS SELECT i AS id, (SELECT array_agg(x[d] + 0.3 * (random() - 0.5) ORDER BY d) FROM generate_series(1, 32) d)::vector(32) AS v
               FROM generate_series(1, 20000) i JOIN c ON c.c = i % 30;
             CREATE TABLE q AS SELECT i AS id, (SELECT array_agg(x[d] + 0.3 * (random() - 0.5) ORDER BY d) FROM generate_series(1, 32) d)::vector(32) AS v
               FROM generate_series(1, 30) i JOIN c ON c.c = (i * 7) % 30;
             CHECKPOINT;
             CREATE INDEX t_v_idx ON t USING vhnsw (v vector_cosine_ops);",
        )
        .expect("setup");
    let exact = answers(&mut client, false);
    let before = answers(&mut client, true);
    assert!(
        recall(&before, &exact) >= 0.95,
        "recall {}",
        recall(&before, &exact)
    );
    assert_eq!(check(&mut client), "");

    cluster.crash();
    cluster.pg_ctl_start();
    let mut client = cluster.connect("postgres");
    assert_eq!(
        answers(&mut client, true),
        before,
        "answers changed across a crash after the build"
    );
    assert_eq!(check(&mut client), "");

    // A batch of single-row inserts through aminsert, committed, then a crash.
    client
        .batch_execute(
            "BEGIN;
             INSERT INTO t SELECT 100000 + i, (SELECT array_agg(x[d] + 0.3 * (random() - 0.5) ORDER BY d) FROM generate_series(1, 32) d)::vector(32)
               FROM generate_series(1, 2000) i JOIN c ON c.c = (i * 11) % 30;
             COMMIT;",
        )
        .expect("inserts");
    let exact = answers(&mut client, false);
    let before = answers(&mut client, true);
    assert!(
        recall(&before, &exact) >= 0.95,
        "recall after inserts {}",
        recall(&before, &exact)
    );

    cluster.crash();
    cluster.pg_ctl_start();
    let mut client = cluster.connect("postgres");
    assert_eq!(
        answers(&mut client, true),
        before,
        "answers changed across a crash after inserts"
    );
    // Single-row inserts may leave a node unreachable until VACUUM relinks
    // it; nothing else may be wrong.
    let problems = check(&mut client);
    assert!(
        problems.lines().all(|l| l.contains("unreachable")),
        "{problems}"
    );
    client.batch_execute("VACUUM t").expect("vacuum");
    assert_eq!(check(&mut client), "");
    // Every inserted row is in the index: its own vector finds it.
    client
        .batch_execute("SET enable_seqscan = off; SET vhnsw.ef_search = 100")
        .expect("settings");
    let found: i64 = client
        .query_one(
            "SELECT count(*) FROM t o WHERE o.id > 100000 AND (SELECT id FROM t ORDER BY v <=> o.v LIMIT 1) = o.id",
            &[],
        )
        .expect("self queries")
        .get(0);
    assert!(
        found >= 1990,
        "{found} of 2000 inserted rows found by their own vector\n{}",
        cluster.log()
    );
}
