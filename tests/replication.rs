//! A streaming standby replays every vhnsw page change: with
//! `wal_consistency_checking = 'generic'` the standby compares each
//! replayed page with the primary's full-page image (and stops on a
//! mismatch), and it answers the same queries with the same rows.

mod support;

use std::time::{Duration, Instant};
use support::Cluster;

fn answers(client: &mut postgres::Client) -> Vec<Vec<i32>> {
    client
        .batch_execute("SET enable_seqscan = off")
        .expect("settings");
    client
        .query(
            "SELECT array(SELECT t.id FROM t ORDER BY t.v <=> q.v LIMIT 10) FROM q ORDER BY q.id",
            &[],
        )
        .expect("knn")
        .iter()
        .map(|r| r.get(0))
        .collect()
}

fn one_text(client: &mut postgres::Client, query: &str) -> String {
    client.query_one(query, &[]).expect(query).get(0)
}

#[test]
fn a_streaming_standby_replays_the_index_exactly() {
    support::require_vdb();
    let conf = [
        "wal_level = replica",
        "max_wal_senders = 4",
        "wal_consistency_checking = 'generic'",
        "hot_standby = on",
        // Merges happen only where the test calls vhnsw_merge, so the
        // rows inserted last stay pending.
        "vhnsw.merge_naptime = '1h'",
    ];
    let primary = Cluster::start("primary", &conf);
    let standby = Cluster::standby_of(&primary, "standby", &conf);
    let mut p = primary.connect("postgres");
    // Build (full-page images), then inserts (pending list), a merge,
    // deletes, VACUUM (graph repair, freed slots), inserts into freed
    // slots, and rows left pending at the end.
    p.batch_execute(
        "CREATE EXTENSION vdb;
         SELECT setseed(0.2);
         CREATE TABLE c AS SELECT c, ARRAY(SELECT random() * 2 - 1 + c * 0 FROM generate_series(1, 24)) AS x FROM generate_series(0, 19) c;
         CREATE TABLE t (id int PRIMARY KEY, v vector(24));
         INSERT INTO t SELECT i, (SELECT array_agg(x[d] + 0.4 * (random() - 0.5) ORDER BY d) FROM generate_series(1, 24) d)
           FROM generate_series(1, 4000) i JOIN c ON c.c = i % 20;
         CREATE TABLE q AS SELECT i AS id, (SELECT array_agg(x[d] + 0.4 * (random() - 0.5) ORDER BY d) FROM generate_series(1, 24) d)::vector(24) AS v
           FROM generate_series(1, 30) i JOIN c ON c.c = (i * 7) % 20;
         CREATE INDEX t_v_idx ON t USING vhnsw (v vector_cosine_ops);
         INSERT INTO t SELECT id + 10000, v * v FROM t WHERE id <= 1500;
         SELECT vhnsw_merge('t_v_idx');
         DELETE FROM t WHERE id % 3 = 0;",
    )
    .expect("workload");
    p.batch_execute("VACUUM t").expect("vacuum");
    p.batch_execute(
        "INSERT INTO t SELECT id + 20000, v * v * v FROM t WHERE id <= 1500;
         SELECT vhnsw_merge('t_v_idx');
         INSERT INTO t SELECT id + 30000, v + v * v FROM t WHERE id <= 300;",
    )
    .expect("workload");
    // An index VACUUM leaves empty: reset and truncated to its metapage,
    // then refilled, merged, and given rows left pending.
    p.batch_execute(
        "CREATE TABLE e AS SELECT id, v FROM t WHERE id <= 2000;
         CREATE INDEX e_idx ON e USING vhnsw (v vector_l2_ops);
         DELETE FROM e;",
    )
    .expect("empty");
    p.batch_execute("VACUUM e").expect("vacuum e");
    let e_pages = "SELECT (pg_relation_size('e_idx') / 8192)::text";
    assert_eq!(one_text(&mut p, e_pages), "1");
    p.batch_execute(
        "INSERT INTO e SELECT id, v FROM t WHERE id <= 1000;
         SELECT vhnsw_merge('e_idx');
         INSERT INTO e SELECT id, v FROM t WHERE id > 1000 AND id <= 1200;",
    )
    .expect("refill e");
    let target = one_text(&mut p, "SELECT pg_current_wal_lsn()::text");
    let mut s = standby.connect("postgres");
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let caught_up: bool = s
            .query_one(
                "SELECT pg_last_wal_replay_lsn() >= $1::text::pg_lsn",
                &[&target],
            )
            .expect("replay position")
            .get(0);
        if caught_up {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "standby did not catch up\n{}",
            standby.log()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    assert!(
        !standby.log().contains("inconsistent page"),
        "{}",
        standby.log()
    );
    let stats = "SELECT vhnsw_stats_text('t_v_idx')";
    assert_eq!(one_text(&mut s, stats), one_text(&mut p, stats));
    let pending: i64 = p
        .query_one("SELECT (vhnsw_stats('t_v_idx')->>'pending')::bigint", &[])
        .expect("stats")
        .get(0);
    let last: i64 = p
        .query_one("SELECT count(*) FROM t WHERE id > 30000", &[])
        .expect("count")
        .get(0);
    assert_eq!(pending, last, "the last rows are left pending");
    assert!(pending > 0);
    let primary_answers = answers(&mut p);
    assert_eq!(answers(&mut s), primary_answers);
    assert_eq!(one_text(&mut s, "SELECT vhnsw_check('t_v_idx')"), "");
    let e_stats = "SELECT vhnsw_stats_text('e_idx')";
    assert_eq!(one_text(&mut s, e_stats), one_text(&mut p, e_stats));
    let e_answers = "SELECT array(SELECT e.id FROM e ORDER BY e.v <-> q.v LIMIT 10)::text FROM q WHERE q.id = 1";
    assert_eq!(one_text(&mut s, e_answers), one_text(&mut p, e_answers));
    assert_eq!(one_text(&mut s, "SELECT vhnsw_check('e_idx')"), "");
}
