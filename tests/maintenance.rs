//! Graph maintenance on a server of its own: VACUUM after mass deletes
//! under every metric, recall over rounds of updates, VACUUMs cancelled
//! part-way, merges of many rows into a small graph, and the merge
//! worker's lock handling. Every test ends with `vhnsw_check` clean.

mod support;

use support::{one, quiet_cluster, Cluster};

const DIMS: usize = 24;

/// Clustered rows `from..=to` as a SELECT (id, v): 40 centres, seeded.
fn rows_sql(from: i32, to: i32, salt: i32) -> String {
    format!(
        "SELECT i AS id, (SELECT array_agg((hashint4((hashint4(i) % 40) * 31 + d) % 1000) / 500.0
                                           + 0.3 * (hashint4(i * 97 + d + {salt}) % 1000) / 1000.0 ORDER BY d)
                            FROM generate_series(1, {DIMS}) d)::vector({DIMS}) AS v
           FROM generate_series({from}, {to}) i"
    )
}

/// Recall@10 at `ef` of `table`'s index for 40 query vectors, against
/// a sequential scan's answer, under `op`.
fn recall(c: &mut postgres::Client, table: &str, op: &str, ef: i32) -> f64 {
    c.batch_execute(&format!(
        "SET vhnsw.ef_search = {ef};
         CREATE TEMP TABLE IF NOT EXISTS queries AS {q};",
        q = rows_sql(900_001, 900_040, 7)
    ))
    .expect("queries");
    let approx = format!(
        "SELECT array(SELECT t.id FROM {table} t ORDER BY t.v {op} q.v LIMIT 10) FROM queries q ORDER BY q.id"
    );
    c.batch_execute("SET enable_seqscan = off").expect("set");
    let found: Vec<Vec<i32>> = c
        .query(&approx, &[])
        .expect("approx")
        .iter()
        .map(|r| r.get(0))
        .collect();
    c.batch_execute("RESET enable_seqscan; SET enable_indexscan = off")
        .expect("set");
    let truth: Vec<Vec<i32>> = c
        .query(&approx, &[])
        .expect("exact")
        .iter()
        .map(|r| r.get(0))
        .collect();
    c.batch_execute("RESET enable_indexscan; RESET vhnsw.ef_search")
        .expect("reset");
    support::recall(&found, &truth)
}

fn check(c: &mut postgres::Client, index: &str) {
    let problems: String = one(c, &format!("SELECT vhnsw_check('{index}')"));
    assert_eq!(problems, "", "{index}");
}

#[test]
fn vacuum_after_deleting_half_keeps_recall_under_every_metric() {
    let cluster = quiet_cluster("vacuum-metrics");
    let mut c = cluster.connect("postgres");
    c.batch_execute(&format!(
        "CREATE TABLE t AS {rows}; ALTER TABLE t ADD PRIMARY KEY (id)",
        rows = rows_sql(1, 8_000, 0)
    ))
    .expect("table");
    for (opclass, op) in [
        ("vector_l2_ops", "<->"),
        ("vector_cosine_ops", "<=>"),
        ("vector_ip_ops", "<#>"),
        ("vector_l1_ops", "<+>"),
    ] {
        c.batch_execute(&format!(
            "CREATE INDEX t_idx ON t USING vhnsw (v {opclass});
             DELETE FROM t WHERE hashint4(id) % 2 = 0;"
        ))
        .expect("delete");
        c.batch_execute("VACUUM t").expect("vacuum");
        check(&mut c, "t_idx");
        let deleted: i64 = one(
            &mut c,
            "SELECT (vhnsw_stats('t_idx') ->> 'deleted_nodes')::bigint",
        );
        assert_eq!(deleted, 0, "{opclass}: every deleted node freed");
        let after = recall(&mut c, "t", op, 40);
        c.batch_execute("REINDEX INDEX t_idx").expect("reindex");
        let fresh = recall(&mut c, "t", op, 40);
        eprintln!("{opclass}: recall@10 at ef 40 after VACUUM {after:.3}, fresh build {fresh:.3}");
        // 40 queries, builds that differ run to run (fresh builds of these
        // rows measured 0.938-0.983 under cosine), and lists refilled
        // without a search: under l1 the repaired graph measured 0.04-0.07
        // below a fresh build (issue 16 notes it). A margin of 0.1.
        assert!(
            after >= fresh - 0.1,
            "{opclass}: {after} after VACUUM, {fresh} rebuilt"
        );
        // The rows come back for the next metric.
        c.batch_execute(&format!(
            "DROP INDEX t_idx;
             INSERT INTO t SELECT * FROM ({rows}) r WHERE hashint4(id) % 2 = 0;",
            rows = rows_sql(1, 8_000, 0)
        ))
        .expect("restore");
    }
}

#[test]
fn recall_holds_over_rounds_of_updates() {
    let cluster = quiet_cluster("update-rounds");
    let mut c = cluster.connect("postgres");
    c.batch_execute(&format!(
        "CREATE TABLE t AS {rows}; ALTER TABLE t ADD PRIMARY KEY (id);
         CREATE INDEX t_idx ON t USING vhnsw (v vector_l2_ops);
         CREATE INDEX t_cos ON t USING vhnsw (v vector_cosine_ops);
         CREATE INDEX t_ip ON t USING vhnsw (v vector_ip_ops);
         CREATE INDEX t_l1 ON t USING vhnsw (v vector_l1_ops);",
        rows = rows_sql(1, 10_000, 0)
    ))
    .expect("table");
    for round in 1..=10 {
        // A tenth of the rows get new vectors (another row's, moved).
        c.batch_execute(&format!(
            "UPDATE t SET v = n.v FROM ({rows}) n
              WHERE n.id = t.id AND hashint4(t.id + {round} * 1000003) % 10 = 0",
            rows = rows_sql(1, 10_000, round * 13)
        ))
        .expect("update round");
        // A parallel VACUUM (four indexes this size get one) cannot start
        // the subtransaction a merge runs in and hands the merge to a
        // worker, which here naps for an hour first: this test is about
        // VACUUM's own merge.
        c.batch_execute("VACUUM (PARALLEL 0) t").expect("vacuum");
        let pending: i64 = one(
            &mut c,
            "SELECT (vhnsw_stats('t_idx') ->> 'pending')::bigint",
        );
        assert_eq!(pending, 0, "VACUUM merges the pending list");
    }
    check(&mut c, "t_idx");
    let after = recall(&mut c, "t", "<->", 40);
    c.batch_execute("REINDEX INDEX t_idx").expect("reindex");
    let fresh = recall(&mut c, "t", "<->", 40);
    eprintln!("recall@10 at ef 40 after 10 update rounds {after:.3}, fresh build {fresh:.3}");
    assert!(
        after >= fresh - 0.01,
        "{after} after 10 rounds, {fresh} rebuilt"
    );
}

#[test]
fn a_cancelled_vacuum_leaves_a_sound_index() {
    let cluster = quiet_cluster("vacuum-cancel");
    let mut c = cluster.connect("postgres");
    c.batch_execute(&format!(
        "CREATE TABLE t AS {rows}; ALTER TABLE t ADD PRIMARY KEY (id);
         CREATE INDEX t_idx ON t USING vhnsw (v vector_l2_ops);
         CREATE INDEX t_cos ON t USING vhnsw (v vector_cosine_ops);
         CREATE INDEX t_ip ON t USING vhnsw (v vector_ip_ops);
         CREATE INDEX t_l1 ON t USING vhnsw (v vector_l1_ops);",
        rows = rows_sql(1, 20_000, 0)
    ))
    .expect("table");
    // Cancels at growing times: each lands somewhere else in the bulk
    // delete, the merge, the consolidation or the freeing of slots.
    let mut cancelled = 0;
    for (i, ms) in [5, 20, 40, 80, 120, 200, 300, 450, 700].iter().enumerate() {
        c.batch_execute(&format!(
            "DELETE FROM t WHERE hashint4(id + {i}) % 5 = 0;
             INSERT INTO t SELECT id + 100000 * ({i} + 1), v FROM ({rows}) r WHERE id % 50 = 0;",
            rows = rows_sql(1, 20_000, 3)
        ))
        .expect("changes");
        c.batch_execute(&format!("SET statement_timeout = '{ms}ms'"))
            .expect("timeout");
        if c.batch_execute("VACUUM t").is_err() {
            cancelled += 1;
        }
        c.batch_execute("RESET statement_timeout").expect("reset");
        // Sound: every structural rule holds. A VACUUM cancelled inside its
        // merge can leave the nodes it merged unreachable until the next
        // merge or VACUUM relinks them (checked below, after a whole one).
        let problems: String = one(&mut c, "SELECT vhnsw_check('t_idx')");
        let broken: Vec<&str> = problems
            .lines()
            .filter(|l| !l.contains("unreachable from the entry point"))
            .collect();
        assert!(
            broken.is_empty(),
            "after a VACUUM cancelled at {ms} ms: {broken:?}"
        );
    }
    eprintln!("{cancelled} of 9 VACUUMs cancelled part-way");
    assert!(cancelled >= 3, "only {cancelled} cancels landed");
    c.batch_execute("VACUUM t").expect("a whole VACUUM");
    check(&mut c, "t_idx");
    let deleted: i64 = one(
        &mut c,
        "SELECT (vhnsw_stats('t_idx') ->> 'deleted_nodes')::bigint",
    );
    assert_eq!(deleted, 0);
    // Every sampled row is found by its own vector.
    let lost: i64 = one(
        &mut c,
        "SELECT count(*) FROM (SELECT id, v FROM t ORDER BY id LIMIT 300) s
          WHERE s.id <> ALL (ARRAY(SELECT t.id FROM t WHERE t.v <^> 400 ORDER BY t.v <-> s.v LIMIT 5))",
    );
    assert_eq!(
        lost, 0,
        "rows their own vector does not find after a whole VACUUM"
    );
}

/// Space comes back: after deleting half the rows, VACUUM and inserting
/// as many new ones, each index (one per metric) is within a tenth of
/// its size before. The new rows take the freed slots; the pending list
/// that carried them spans at most `vhnsw.pending_list_hard_limit` of
/// pages (it used to grow with the insert, and its pages never went back
/// to the graph).
#[test]
fn an_index_keeps_its_size_when_half_its_rows_are_replaced() {
    let cluster = quiet_cluster("space-back");
    let mut c = cluster.connect("postgres");
    c.batch_execute(&format!(
        "SET vhnsw.pending_list_hard_limit = '256kB';
         CREATE TABLE t AS {rows}; ALTER TABLE t ADD PRIMARY KEY (id);
         CREATE INDEX t_l2 ON t USING vhnsw (v vector_l2_ops);
         CREATE INDEX t_cos ON t USING vhnsw (v vector_cosine_ops);
         CREATE INDEX t_ip ON t USING vhnsw (v vector_ip_ops);
         CREATE INDEX t_l1 ON t USING vhnsw (v vector_l1_ops);",
        rows = rows_sql(1, 24_000, 0)
    ))
    .expect("table");
    let indexes = ["t_l2", "t_cos", "t_ip", "t_l1"];
    let size = |c: &mut postgres::Client, index: &str| -> i64 {
        one(c, &format!("SELECT pg_relation_size('{index}') / 8192"))
    };
    let before: Vec<i64> = indexes.iter().map(|i| size(&mut c, i)).collect();
    c.batch_execute("DELETE FROM t WHERE id % 2 = 0")
        .expect("delete");
    c.batch_execute("VACUUM t").expect("vacuum");
    c.batch_execute(&format!(
        "INSERT INTO t SELECT * FROM ({rows}) r",
        rows = rows_sql(24_001, 36_000, 5)
    ))
    .expect("insert");
    for (index, before) in indexes.iter().zip(before) {
        one::<i64>(&mut c, &format!("SELECT vhnsw_merge('{index}')"));
        let after = size(&mut c, index);
        eprintln!("{index}: {before} pages before, {after} after");
        assert!(
            after as f64 <= before as f64 * 1.1,
            "{index}: {before} pages before, {after} after"
        );
        check(&mut c, index);
    }
}

/// pgvector's TAP test 011, repeated: delete every row, VACUUM, insert
/// the same rows again, three times over, with no merge in between (as on
/// a server without the merge worker). A VACUUM that does not run in
/// parallel (011's, with one index; autovacuum's) finds each index without a
/// row and truncates it to its metapage, so the rows inserted next fill a
/// new pending list instead of pages beside the old graph: within 011's
/// 2 % of the built size after every cycle (the list alone was 13 % more,
/// and before VACUUM recycled it, 13 % more on every cycle). Then all rows
/// but one are deleted and that one is still found.
#[test]
fn delete_all_vacuum_reinsert_cycles_keep_the_size() {
    const INDEXES: [&str; 4] = ["t_idx", "t_cos", "t_ip", "t_l1"];
    let cluster = quiet_cluster("cycles");
    let mut c = cluster.connect("postgres");
    let rows =
        "SELECT i, ARRAY[i % 397, i % 811, i % 53]::vector(3) FROM generate_series(1, 10000) i";
    c.batch_execute(&format!(
        "CREATE TABLE t (i int4, v vector(3));
         INSERT INTO t {rows};
         CREATE INDEX t_idx ON t USING vhnsw (v vector_l2_ops);
         CREATE INDEX t_cos ON t USING vhnsw (v vector_cosine_ops);
         CREATE INDEX t_ip ON t USING vhnsw (v vector_ip_ops);
         CREATE INDEX t_l1 ON t USING vhnsw (v vector_l1_ops);"
    ))
    .expect("table");
    let size = |c: &mut postgres::Client, index: &str| -> i64 {
        one(c, &format!("SELECT pg_relation_size('{index}')"))
    };
    let built: Vec<i64> = INDEXES.iter().map(|i| size(&mut c, i)).collect();
    for cycle in 1..=3 {
        c.batch_execute("DELETE FROM t").expect("delete");
        if cycle == 1 {
            // Four indexes of 1.8 MB: a parallel VACUUM, which can take no
            // ACCESS EXCLUSIVE lock, so it leaves them as they are.
            c.batch_execute("VACUUM t").expect("parallel vacuum");
            for (index, &before) in INDEXES.iter().zip(&built) {
                assert_eq!(size(&mut c, index), before, "{index}");
                check(&mut c, index);
            }
        }
        c.batch_execute("VACUUM (PARALLEL 0) t").expect("vacuum");
        for index in INDEXES {
            assert_eq!(size(&mut c, index), 8192, "{index} after VACUUM {cycle}");
            check(&mut c, index);
        }
        c.batch_execute(&format!("INSERT INTO t {rows}"))
            .expect("insert");
        let sizes: Vec<i64> = INDEXES.iter().map(|i| size(&mut c, i)).collect();
        eprintln!("cycle {cycle}: built {built:?} bytes, now {sizes:?}");
        for ((index, &before), &now) in INDEXES.iter().zip(&built).zip(&sizes) {
            assert!(
                now as f64 <= before as f64 * 1.02,
                "{index}, cycle {cycle}: {before} -> {now} bytes"
            );
        }
    }
    for index in INDEXES {
        one::<i64>(&mut c, &format!("SELECT vhnsw_merge('{index}')"));
        check(&mut c, index);
    }
    c.batch_execute("DELETE FROM t WHERE i <> 123")
        .expect("delete");
    c.batch_execute("VACUUM t").expect("vacuum");
    c.batch_execute("SET enable_seqscan = off").expect("set");
    for (index, op) in INDEXES.iter().zip(["<->", "<=>", "<#>", "<+>"]) {
        let found: Vec<i32> = c
            .query(
                &format!("SELECT i FROM t ORDER BY v {op} '[1,2,3]' LIMIT 10"),
                &[],
            )
            .expect("query")
            .iter()
            .map(|r| r.get(0))
            .collect();
        assert_eq!(found, vec![123], "{index}");
        assert!(size(&mut c, index) > 8192, "{index} holds a row");
        check(&mut c, index);
    }
}

/// The reset needs the index to itself and never waits for it: with
/// another session's transaction holding the index (a scan's lock), VACUUM
/// finishes at once and leaves the empty index as it is; the next VACUUM,
/// once that transaction has ended, gives the pages back. An index with one
/// row left keeps its pages.
#[test]
fn an_index_left_empty_is_truncated_only_when_nobody_holds_it() {
    let cluster = quiet_cluster("reset-lock");
    let mut c = cluster.connect("postgres");
    c.batch_execute(
        "CREATE TABLE t AS SELECT i, ARRAY[i % 97, i % 89, i]::vector(3) AS v FROM generate_series(1, 3000) i;
         CREATE INDEX t_idx ON t USING vhnsw (v vector_l2_ops);
         DELETE FROM t WHERE i > 1;",
    )
    .expect("table");
    c.batch_execute("VACUUM t").expect("vacuum");
    let pages =
        |c: &mut postgres::Client| -> i64 { one(c, "SELECT pg_relation_size('t_idx') / 8192") };
    let built = pages(&mut c);
    assert!(built > 10, "{built} pages");
    check(&mut c, "t_idx");
    let mut holder = cluster.connect("postgres");
    holder
        .batch_execute(
            "BEGIN; SET LOCAL enable_seqscan = off;
             SELECT i FROM t ORDER BY v <-> '[0,0,0]' LIMIT 1;",
        )
        .expect("holder");
    c.batch_execute("DELETE FROM t; SET statement_timeout = '20s'")
        .expect("delete");
    c.batch_execute("VACUUM t")
        .expect("VACUUM does not wait for the holder");
    c.batch_execute("RESET statement_timeout").expect("reset");
    assert_eq!(
        pages(&mut c),
        built,
        "truncated under another session's lock"
    );
    check(&mut c, "t_idx");
    holder.batch_execute("COMMIT").expect("commit");
    c.batch_execute("VACUUM t").expect("vacuum");
    assert_eq!(pages(&mut c), 1);
    check(&mut c, "t_idx");
    c.batch_execute(
        "INSERT INTO t SELECT i, ARRAY[i % 97, i % 89, i]::vector(3) FROM generate_series(1, 500) i;
         SET enable_seqscan = off;",
    )
    .expect("insert");
    let found: i32 = one(&mut c, "SELECT i FROM t ORDER BY v <-> '[7,7,7]' LIMIT 1");
    assert_eq!(found, 7);
    one::<i64>(&mut c, "SELECT vhnsw_merge('t_idx')");
    let found: i32 = one(&mut c, "SELECT i FROM t ORDER BY v <-> '[7,7,7]' LIMIT 1");
    assert_eq!(found, 7);
    check(&mut c, "t_idx");
}

#[test]
fn a_merge_of_many_rows_into_a_small_graph_leaves_every_node_reachable() {
    let cluster = quiet_cluster("big-merge");
    let mut c = cluster.connect("postgres");
    // All 30,000 rows pending at once (8 MB): no insert merges them.
    c.batch_execute(
        "SET vhnsw.pending_list_hard_limit = '64MB';
         CREATE TABLE t AS SELECT i AS id, ARRAY(SELECT random() * 2 - 1 + i * 0 FROM generate_series(1, 64))::vector(64) AS v
           FROM generate_series(1, 2000) i;
         CREATE INDEX t_idx ON t USING vhnsw (v vector_l2_ops);
         INSERT INTO t SELECT i, ARRAY(SELECT random() * 2 - 1 + i * 0 FROM generate_series(1, 64))::vector(64)
           FROM generate_series(2001, 32000) i;",
    )
    .expect("rows");
    let merged: i64 = one(&mut c, "SELECT vhnsw_merge('t_idx')");
    assert_eq!(merged, 30_000);
    check(&mut c, "t_idx");
    let lost: i64 = one(
        &mut c,
        "SELECT count(*) FROM t s
          WHERE s.id % 64 = 0
            AND s.id <> ALL (ARRAY(SELECT t.id FROM t WHERE t.v <^> 400 ORDER BY t.v <-> s.v LIMIT 1))",
    );
    assert_eq!(
        lost, 0,
        "rows (1 in 64) their own vector does not find at ef 400"
    );
}

#[test]
fn the_merge_worker_never_releases_a_lock_it_does_not_hold() {
    support::require_vdb();
    // The worker merging often, while a session holds the graph lock in
    // long merges of its own: the worker finds it busy again and again.
    let cluster = Cluster::start(
        "lock-busy",
        &[
            "vhnsw.merge_naptime = '10ms'",
            "vhnsw.merge_batch_size = 200",
        ],
    );
    let mut c = cluster.connect("postgres");
    c.batch_execute(
        "CREATE EXTENSION vdb;
         CREATE TABLE t (id serial, v vector(16));
         CREATE INDEX t_idx ON t USING vhnsw (v vector_l2_ops);
         CREATE INDEX t_cos ON t USING vhnsw (v vector_cosine_ops);
         CREATE INDEX t_ip ON t USING vhnsw (v vector_ip_ops);
         CREATE INDEX t_l1 ON t USING vhnsw (v vector_l1_ops);",
    )
    .expect("table");
    let mut busy = 0;
    for _ in 0..20 {
        c.batch_execute(
            "INSERT INTO t (v) SELECT ARRAY(SELECT random() + i * 0 FROM generate_series(1, 16))::vector(16)
               FROM generate_series(1, 500) i",
        )
        .expect("insert");
        let merged: i64 = one(&mut c, "SELECT vhnsw_merge('t_idx')");
        busy += merged;
    }
    assert!(busy > 0);
    std::thread::sleep(std::time::Duration::from_millis(300));
    check(&mut c, "t_idx");
    let log = cluster.log();
    assert!(
        !log.contains("you don't own a lock"),
        "{}",
        log.lines()
            .filter(|l| l.contains("own a lock"))
            .take(3)
            .collect::<Vec<_>>()
            .join("\n")
    );
}
