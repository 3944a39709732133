//! halfvec, bit and sparsevec indexes, and the rows no graph holds (NULL
//! values, zero vectors under cosine), survive crashes: SIGKILL after a
//! build and after inserts, then WAL replay; a PANIC right after a new
//! page of NULL rows is chained (its row never commits) and in the middle
//! of VACUUM's pass over those rows (some pages cleaned, some not). After
//! each, the answers are the same and `vhnsw_check` is clean for every
//! index.

mod support;

use support::{fail_at, one, quiet_cluster};

const INDEXES: [&str; 4] = ["t_h", "t_b", "t_s", "t_v"];

/// For each query id, the ids an index scan returns for each indexed
/// column, NULL and NaN rows included.
fn answers(client: &mut postgres::Client) -> Vec<Vec<i32>> {
    client
        .batch_execute("SET enable_seqscan = off; SET enable_indexscan = on")
        .expect("settings");
    let mut out = Vec::new();
    for q in [3, 77, 1500] {
        for (col, op) in [("h", "<=>"), ("b", "<~>"), ("s", "<->"), ("v", "<=>")] {
            let rows = client
                .query(
                    &format!(
                        "SELECT id FROM t ORDER BY {col} {op} (SELECT {col} FROM t WHERE id = $1) LIMIT 20"
                    ),
                    &[&q],
                )
                .expect("knn");
            out.push(rows.iter().map(|r| r.get(0)).collect());
        }
    }
    out
}

fn all_clean(client: &mut postgres::Client) {
    for index in INDEXES {
        let problems: String = one(client, &format!("SELECT vhnsw_check('{index}')"));
        assert_eq!(problems, "", "{index}");
    }
}

fn unindexed(client: &mut postgres::Client, index: &str) -> i64 {
    let n: String = one(
        client,
        &format!("SELECT vhnsw_stats('{index}') ->> 'unindexed'"),
    );
    n.parse().expect("a count")
}

#[test]
fn typed_indexes_and_unindexed_rows_survive_crashes() {
    let cluster = quiet_cluster("typed_crash");
    let mut c = cluster.connect("postgres");
    c.batch_execute(
        "SELECT setseed(0.4);
         CREATE TABLE t (id int PRIMARY KEY, h halfvec(24), b bit(96), s sparsevec(300), v vector(24));
         INSERT INTO t SELECT i,
             ARRAY(SELECT random() * 2 - 1 + i * 0 FROM generate_series(1, 24))::halfvec,
             (SELECT string_agg((random() < 0.4)::int::text, '') FROM generate_series(1, 96) j WHERE j > i * 0)::bit(96),
             (SELECT '{' || string_agg(j || ':' || round(random()::numeric, 3), ',' ORDER BY j) || '}/300'
                FROM (SELECT DISTINCT (random() * 299)::int + 1 + i * 0 AS j FROM generate_series(1, 20)) d)::sparsevec,
             ARRAY(SELECT random() * 2 - 1 + i * 0 FROM generate_series(1, 24))::vector
           FROM generate_series(1, 3000) i;
         UPDATE t SET h = NULL, b = NULL, s = NULL, v = NULL WHERE id % 97 = 0;
         UPDATE t SET h = array_fill(0, ARRAY[24])::halfvec, v = array_fill(0, ARRAY[24])::vector WHERE id % 89 = 0;
         CHECKPOINT;
         CREATE INDEX t_h ON t USING vhnsw (h halfvec_cosine_ops);
         CREATE INDEX t_b ON t USING vhnsw (b bit_hamming_ops);
         CREATE INDEX t_s ON t USING vhnsw (s sparsevec_l2_ops);
         CREATE INDEX t_v ON t USING vhnsw (v vector_cosine_ops);",
    )
    .expect("setup");
    all_clean(&mut c);
    let before = answers(&mut c);
    cluster.crash();
    cluster.pg_ctl_start();
    let mut c = cluster.connect("postgres");
    assert_eq!(
        answers(&mut c),
        before,
        "answers changed across a crash after the build"
    );
    all_clean(&mut c);

    // NULL and zero rows through aminsert, enough to chain new pages
    // (1,019 entries a page), and ordinary ones into the pending lists.
    c.batch_execute(
        "INSERT INTO t SELECT 10000 + i, NULL, NULL, NULL, NULL FROM generate_series(1, 2500) i;
         INSERT INTO t SELECT 20000 + i, array_fill(0, ARRAY[24])::halfvec, NULL, NULL, array_fill(0, ARRAY[24])::vector FROM generate_series(1, 50) i;
         INSERT INTO t SELECT 30000 + id, h, b, s, v FROM t WHERE id <= 200;",
    )
    .expect("inserts");
    let before = answers(&mut c);
    let nulls = unindexed(&mut c, "t_h");
    assert_eq!(
        nulls,
        2500 + 50 + 30 + 33 + 2 + 2,
        "NULL and zero rows of t_h"
    );
    cluster.crash();
    cluster.pg_ctl_start();
    let mut c = cluster.connect("postgres");
    assert_eq!(
        answers(&mut c),
        before,
        "answers changed across a crash after inserts"
    );
    assert_eq!(unindexed(&mut c, "t_h"), nulls);
    all_clean(&mut c);

    // A PANIC right after a page of NULL rows is chained: the row never
    // commits, its entry is left pointing at a dead tuple until VACUUM.
    let mut c = fail_at(
        &cluster,
        &mut c,
        "unindexed_page_chained:panic",
        "INSERT INTO t SELECT 40000 + i, NULL, NULL, NULL, NULL FROM generate_series(1, 2000) i",
    );
    all_clean(&mut c);
    // VACUUM cut short after its first cleaned page of NULL rows, then
    // a whole VACUUM.
    c.batch_execute("DELETE FROM t WHERE id BETWEEN 10001 AND 11500")
        .expect("delete");
    let mut c = fail_at(
        &cluster,
        &mut c,
        "unindexed_page_vacuumed:panic",
        "VACUUM t",
    );
    all_clean(&mut c);
    c.batch_execute("VACUUM t").expect("vacuum");
    all_clean(&mut c);
    assert_eq!(unindexed(&mut c, "t_h"), nulls - 1500);
    let null_rows: i64 = one(&mut c, "SELECT count(*) FROM t WHERE b IS NULL");
    assert_eq!(unindexed(&mut c, "t_b"), null_rows);
    // Every NULL row, after every other, from an index scan (rows with
    // real distances a widening scan reaches late may be skipped to keep
    // the order; NULL rows never are).
    c.batch_execute("SET enable_seqscan = off")
        .expect("settings");
    let (nulls_returned, last_real, first_null): (i64, i64, i64) = {
        let row = c
            .query_one(
                "SELECT count(*) FILTER (WHERE b IS NULL), max(n) FILTER (WHERE b IS NOT NULL), min(n) FILTER (WHERE b IS NULL)
                 FROM (SELECT b, row_number() OVER () AS n
                       FROM (SELECT b FROM t ORDER BY b <~> (SELECT b FROM t WHERE id = 5) LIMIT 100000) s) o",
                &[],
            )
            .expect("scan");
        (row.get(0), row.get(1), row.get(2))
    };
    assert_eq!(nulls_returned, null_rows);
    assert!(last_real < first_null, "{last_real} {first_null}");
}
