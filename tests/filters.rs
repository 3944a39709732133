//! Composite vhnsw indexes (filter columns after the vector) through
//! updates that change a row's filter value, VACUUM, and crashes injected
//! at exact points of the merge and VACUUM write paths: afterwards every
//! committed row is found by its own vector under its own filter values,
//! never by values it no longer has, and `vhnsw_check` is clean for both
//! metrics' indexes.

mod support;

use postgres::Client;
use support::{fail_at, Cluster};

const DIMS: usize = 32;

fn cluster(name: &str) -> Cluster {
    support::quiet_cluster(name)
}

/// `t(id, v, k int4, tag text)` with `n` seeded rows and two composite
/// indexes: `t_cos (v cosine, k, tag)` and `t_l2 (v l2, k)`.
fn table(c: &mut Client, n: usize) {
    c.batch_execute(&format!(
        "DROP TABLE IF EXISTS t;
         SELECT setseed(0.17);
         CREATE TABLE t AS SELECT i AS id,
           ARRAY(SELECT random() * 2 - 1 + i * 0 FROM generate_series(1, {DIMS}))::vector({DIMS}) AS v,
           i % 7 AS k, 'tag' || i % 3 AS tag
           FROM generate_series(1, {n}) i;
         CREATE INDEX t_cos ON t USING vhnsw (v vector_cosine_ops, k, tag);
         CREATE INDEX t_l2 ON t USING vhnsw (v vector_l2_ops, k);"
    ))
    .expect("table");
}

/// Every row is the first answer for its own vector under its own `k`
/// (and `tag`), through both indexes; no row is answered under a `k` it
/// does not have; both indexes check clean.
fn found_by_values(c: &mut Client, context: &str) {
    c.batch_execute("SET enable_seqscan = off; SET vhnsw.ef_search = 400")
        .expect("settings");
    let rows: Vec<(i32, i32, String)> = c
        .query(
            "SELECT id, k, tag FROM t WHERE id % 5 = 0 OR id >= 1000 ORDER BY id",
            &[],
        )
        .expect("rows")
        .iter()
        .map(|r| (r.get(0), r.get(1), r.get(2)))
        .collect();
    assert!(!rows.is_empty(), "{context}: table is empty");
    let mut missing = Vec::new();
    let mut wrong = Vec::new();
    for (id, k, tag) in &rows {
        for (op, cond) in [("<=>", "k = $2 AND tag = $3"), ("<->", "k = $2")] {
            let sql = format!(
                "SELECT id, k FROM t WHERE {cond} ORDER BY v {op} (SELECT v FROM t WHERE id = $1) LIMIT 3"
            );
            let got = if op == "<=>" {
                c.query(&sql, &[id, k, tag])
            } else {
                c.query(&sql, &[id, k])
            }
            .expect("lookup");
            if got.first().map(|r| r.get::<_, i32>(0)) != Some(*id) {
                missing.push((*id, op));
            }
            if got.iter().any(|r| r.get::<_, i32>(1) != *k) {
                wrong.push((*id, op));
            }
        }
        // Under another value it is never returned.
        let other = (k + 1) % 7;
        let got: Vec<i32> = c
            .query(
                "SELECT id FROM t WHERE k = $2 ORDER BY v <-> (SELECT v FROM t WHERE id = $1) LIMIT 3",
                &[id, &other],
            )
            .expect("other value")
            .iter()
            .map(|r| r.get(0))
            .collect();
        if got.contains(id) {
            wrong.push((*id, "other value"));
        }
    }
    assert!(
        missing.is_empty() && wrong.is_empty(),
        "{context}: {} of {} lookups missed (e.g. {:?}), {} wrong (e.g. {:?})",
        missing.len(),
        2 * rows.len(),
        &missing[..missing.len().min(5)],
        wrong.len(),
        &wrong[..wrong.len().min(5)]
    );
    for index in ["t_cos", "t_l2"] {
        let problems: String = support::one(c, &format!("SELECT vhnsw_check('{index}')"));
        assert_eq!(problems, "", "{context}: {index}");
    }
    c.batch_execute("RESET enable_seqscan; RESET vhnsw.ef_search")
        .expect("reset");
}

/// Rows inserted, then updated to new filter values, merged and
/// VACUUMed: found by the new values only, at every step.
#[test]
fn updates_and_vacuum_keep_filter_values_right() {
    let cluster = cluster("filter-updates");
    let mut c = cluster.connect("postgres");
    table(&mut c, 1500);
    c.batch_execute(&format!(
        "INSERT INTO t SELECT i, ARRAY(SELECT random() * 2 - 1 + i * 0 FROM generate_series(1, {DIMS}))::vector({DIMS}),
           i % 7, 'tag' || i % 3 FROM generate_series(1000000, 1000400) i"
    ))
    .expect("insert");
    found_by_values(&mut c, "pending rows");
    c.batch_execute("UPDATE t SET k = (k + 3) % 7 WHERE id % 4 = 0")
        .expect("update");
    found_by_values(&mut c, "after the update, before merging");
    c.batch_execute("SELECT vhnsw_merge('t_cos'), vhnsw_merge('t_l2')")
        .expect("merge");
    found_by_values(&mut c, "after merging");
    c.batch_execute("VACUUM t").expect("vacuum");
    found_by_values(&mut c, "after VACUUM");
    c.batch_execute("UPDATE t SET tag = 'tag9', k = 6 - k WHERE id % 3 = 1")
        .expect("second update");
    c.batch_execute("VACUUM t").expect("second vacuum");
    found_by_values(&mut c, "after a second update and VACUUM");
}

/// Crashes inside merges and VACUUM's cleanup of a composite index.
#[test]
fn crashes_keep_filter_values_with_their_rows() {
    let cluster = cluster("filter-crashes");
    for (failpoint, prepare, statement) in [
        (
            "merge_after_insert@30:panic",
            "INSERT INTO t SELECT id + 1000000, v, (k + 1) % 7, tag FROM t WHERE id <= 200",
            "SELECT vhnsw_merge('t_cos')",
        ),
        (
            "insert_before_link_back@5:panic",
            "INSERT INTO t SELECT id + 1000000, v, (k + 2) % 7, tag FROM t WHERE id <= 200",
            "SELECT vhnsw_merge('t_l2')",
        ),
        (
            "repair_free_slot@2:panic",
            "UPDATE t SET k = (k + 1) % 7 WHERE id % 2 = 0",
            "VACUUM t",
        ),
    ] {
        let mut c = cluster.connect("postgres");
        table(&mut c, 1200);
        c.batch_execute(prepare).expect("prepare");
        let mut c = fail_at(&cluster, &mut c, failpoint, statement);
        found_by_values(&mut c, &format!("after {failpoint}"));
        c.batch_execute("SELECT vhnsw_merge('t_cos'), vhnsw_merge('t_l2')")
            .expect("merge");
        c.batch_execute("VACUUM t").expect("vacuum");
        found_by_values(&mut c, &format!("after {failpoint}, merged and VACUUMed"));
    }
}
