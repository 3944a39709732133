//! Crashes and errors injected at exact points of the write paths (the
//! test build's `vhnsw.failpoint`): an `ERROR` leaves the index pages as
//! the WAL records written so far made them; a `PANIC` restarts the server
//! and replays the WAL, as a power cut would. After each, every committed
//! row is still found by an index query for its own vector and
//! `vhnsw_check` is clean, for both metrics' indexes on the table.

mod support;

use postgres::Client;
use std::time::Duration;
use support::{fail_at, Cluster};

/// Each way a failpoint ends the statement it fires in.
const MODES: [&str; 2] = ["", ":panic"];

fn cluster(name: &str) -> Cluster {
    support::quiet_cluster(name)
}

/// Dimensions of most tests' rows: wide enough for level-0 lists to
/// carry neighbour codes, so every write under test re-codes them.
const DIMS: usize = 32;

/// `t(id, v vector(dims))` with `n` seeded random rows and two vhnsw
/// indexes, `t_cos` (cosine) and `t_l2` (l2).
fn table(c: &mut Client, dims: usize, n: usize) {
    c.batch_execute(&format!(
        "DROP TABLE IF EXISTS t;
         SELECT setseed(0.42);
         CREATE TABLE t AS SELECT i AS id,
           ARRAY(SELECT random() * 2 - 1 + i * 0 FROM generate_series(1, {dims}))::vector({dims}) AS v
           FROM generate_series(1, {n}) i;
         CREATE INDEX t_cos ON t USING vhnsw (v vector_cosine_ops);
         CREATE INDEX t_l2 ON t USING vhnsw (v vector_l2_ops);"
    ))
    .expect("table");
}

/// Inserts rows `from..from + n` with fresh random vectors.
fn insert(c: &mut Client, dims: usize, from: i32, n: i32) {
    c.execute(
        &format!(
            "INSERT INTO t SELECT i, ARRAY(SELECT random() * 2 - 1 + i * 0 FROM generate_series(1, {dims}))::vector({dims})
             FROM generate_series($1::int, $2::int) i"
        ),
        &[&from, &(from + n - 1)],
    )
    .expect("insert");
}

/// Every row of `t` that a test wrote (and a sample of the rest) is found
/// first by an index scan for its own vector, through both indexes, and
/// both indexes check clean.
fn all_found_and_clean(c: &mut Client, context: &str) {
    c.batch_execute("SET enable_seqscan = off; SET vhnsw.ef_search = 400")
        .expect("settings");
    let ids: Vec<i32> = c
        // Every row a test wrote (ids from 1000), every row of a small
        // table, and one in 20 of a large table's initial rows.
        .query(
            "SELECT id FROM t WHERE id >= 1000 OR id % 20 = 0 OR (SELECT count(*) FROM t) <= 300 ORDER BY id",
            &[],
        )
        .expect("ids")
        .iter()
        .map(|r| r.get(0))
        .collect();
    assert!(!ids.is_empty(), "{context}: table is empty");
    for op in ["<=>", "<->"] {
        let query =
            format!("SELECT id FROM t ORDER BY v {op} (SELECT v FROM t WHERE id = $1) LIMIT 1");
        let missing: Vec<i32> = ids
            .iter()
            .copied()
            .filter(|id| {
                let found: Vec<i32> = c
                    .query(&query, &[id])
                    .expect("lookup")
                    .iter()
                    .map(|r| r.get(0))
                    .collect();
                found != vec![*id]
            })
            .collect();
        assert!(
            missing.is_empty(),
            "{context}: {} of {} rows not found with {op} (e.g. {:?})",
            missing.len(),
            ids.len(),
            &missing[..missing.len().min(5)]
        );
    }
    for index in ["t_cos", "t_l2"] {
        let problems: String = support::one(c, &format!("SELECT vhnsw_check('{index}')"));
        assert_eq!(problems, "", "{context}: {index}");
    }
    c.batch_execute("RESET enable_seqscan; RESET vhnsw.ef_search")
        .expect("reset");
}

/// Item 1: VACUUM's cleanup frees the slots of deleted nodes one record
/// at a time. A crash after the first (the entry point's: a built index
/// numbers nodes from the entry point) used to leave the metapage naming a
/// freed slot, and the index answering nothing from its graph.
#[test]
fn a_crash_inside_vacuum_cleanup_keeps_the_index_answering() {
    let cluster = cluster("vacuum-cleanup");
    for mode in MODES {
        let mut c = cluster.connect("postgres");
        table(&mut c, DIMS, 2000);
        c.batch_execute("DELETE FROM t WHERE id > 40")
            .expect("delete");
        let mut c = fail_at(
            &cluster,
            &mut c,
            &format!("repair_free_slot@2{mode}"),
            "VACUUM t",
        );
        all_found_and_clean(&mut c, &format!("after the failed VACUUM{mode}"));
        // New rows take the freed slots, most at level 0: no node still
        // waiting to be freed may name one at a higher level.
        insert(&mut c, DIMS, 3001, 300);
        c.batch_execute("SELECT vhnsw_merge('t_cos'), vhnsw_merge('t_l2')")
            .expect("merge into freed slots");
        all_found_and_clean(&mut c, &format!("after reusing the freed slots{mode}"));
        let ten: i64 = support::one(
            &mut c,
            "SELECT count(*) FROM (SELECT id FROM t ORDER BY v <=> (SELECT v FROM t WHERE id = 1) LIMIT 10) s",
        );
        assert_eq!(ten, 10);
        c.batch_execute("VACUUM t").expect("vacuum again");
        all_found_and_clean(&mut c, &format!("after VACUUM again{mode}"));
    }
}

/// Item 4: freeing a node splices its overflow chain (rows with its
/// vector beyond two) onto the free overflow list in the record that
/// frees the slot, and a later merge pops those pages in the record that
/// uses them. A crash between two frees leaves every chain owned once
/// (vhnsw_check), and the pages are reused afterwards without losing rows.
#[test]
fn a_crash_while_freeing_overflow_chains_loses_no_row() {
    let cluster = cluster("overflow-chains");
    // Copies of rows 1, 2 and 3 take ids that all_found_and_clean does
    // not look up by vector (several rows share it).
    let copies = |of: i32, from: i32| {
        format!(
            "INSERT INTO t SELECT i, (SELECT v FROM t WHERE id = {of})
               FROM generate_series({from}, {from} + 120) i WHERE i % 20 <> 0"
        )
    };
    for mode in MODES {
        let mut c = cluster.connect("postgres");
        table(&mut c, DIMS, 400);
        c.batch_execute(&format!(
            "{}; {}; SELECT vhnsw_merge('t_cos'), vhnsw_merge('t_l2');",
            copies(1, 501),
            copies(2, 641)
        ))
        .expect("copies");
        c.batch_execute("DELETE FROM t WHERE id IN (1, 2) OR id BETWEEN 501 AND 799")
            .expect("delete");
        // The second node's free record is where the first one's chain
        // already sits on the free list.
        let mut c = fail_at(
            &cluster,
            &mut c,
            &format!("repair_free_slot@2{mode}"),
            "VACUUM t",
        );
        all_found_and_clean(&mut c, &format!("after the failed VACUUM{mode}"));
        c.batch_execute("VACUUM t").expect("vacuum again");
        let freed: i64 = support::one(
            &mut c,
            "SELECT (vhnsw_stats('t_l2')->>'free_overflow_pages')::bigint",
        );
        assert!(freed >= 2, "{freed} overflow pages freed{mode}");
        c.batch_execute(&format!(
            "SELECT txid_current(); {}; SELECT vhnsw_merge('t_cos'), vhnsw_merge('t_l2');",
            copies(3, 801)
        ))
        .expect("copies again");
        let left: i64 = support::one(
            &mut c,
            "SELECT (vhnsw_stats('t_l2')->>'free_overflow_pages')::bigint",
        );
        assert!(left < freed, "no freed overflow page reused{mode}");
        c.batch_execute("SET enable_seqscan = off")
            .expect("no seqscan");
        let copies_found: i64 = support::one(
            &mut c,
            "SELECT count(*) FROM (SELECT id FROM t ORDER BY v <-> (SELECT v FROM t WHERE id = 3) LIMIT 200) s WHERE id = 3 OR id BETWEEN 801 AND 921",
        );
        // Row 3 and its 115 copies.
        assert_eq!(
            copies_found, 116,
            "copies of row 3 found through the index{mode}"
        );
        all_found_and_clean(&mut c, &format!("after reuse{mode}"));
    }
}

/// Item 2: a reused slot spanning four pages (7,000 dimensions) is
/// written over several records; its header used to go in an earlier one
/// than the metapage's free-list pop, so a crash between them left the
/// free list naming a node in use.
#[test]
fn a_crash_while_reusing_a_wide_slot_loses_no_row() {
    let cluster = cluster("wide-reuse");
    // Which rows are deleted decides which slots are freed; over the three
    // residues, live nodes (the entry point among them) sit next to freed
    // ones, where a corrupt free list would send the next inserts.
    for (mode, residue) in MODES.iter().flat_map(|m| (0..3).map(move |r| (m, r))) {
        let mut c = cluster.connect("postgres");
        table(&mut c, 7000, 40);
        c.batch_execute(&format!("DELETE FROM t WHERE id % 3 = {residue}"))
            .expect("delete");
        c.batch_execute("VACUUM t").expect("free slots");
        let mut c = fail_at(
            &cluster,
            &mut c,
            &format!("publish_between_records{mode}"),
            "INSERT INTO t SELECT 1000, ARRAY(SELECT random() * 2 - 1 FROM generate_series(1, 7000))::vector(7000)",
        );
        insert(&mut c, 7000, 2000, 20);
        all_found_and_clean(&mut c, &format!("wide slots{mode}, residue {residue}"));
    }
}

/// Item 3 (b): the record that publishes a merged node also hides its
/// pending entry, before any link to the node exists. A crash before
/// link-back used to hide the row from every search.
#[test]
fn a_row_merged_but_not_linked_yet_is_found() {
    let cluster = cluster("link-back");
    for mode in MODES {
        let mut c = cluster.connect("postgres");
        table(&mut c, DIMS, 2000);
        insert(&mut c, DIMS, 5000, 1);
        let mut c = fail_at(
            &cluster,
            &mut c,
            &format!("insert_before_link_back{mode}"),
            "SELECT vhnsw_merge('t_cos')",
        );
        all_found_and_clean(&mut c, &format!("before link-back{mode}"));
        let merged: i64 = support::one(&mut c, "SELECT vhnsw_merge('t_l2')");
        assert_eq!(merged, 1);
        all_found_and_clean(&mut c, &format!("after the next merge{mode}"));
    }
}

/// Item 3 (a): a scan reads the pending list and the graph's metapage one
/// after the other; a merge between the two reads must not hide the row
/// it moves. The failpoint holds the scan in exactly that window.
#[test]
fn a_merge_between_a_scans_two_reads_hides_nothing() {
    let cluster = cluster("scan-window");
    let mut c = cluster.connect("postgres");
    table(&mut c, DIMS, 2000);
    insert(&mut c, DIMS, 5000, 1);
    let mut reader = cluster.connect("postgres");
    let (ready, started) = std::sync::mpsc::channel();
    let scan = std::thread::spawn(move || {
        // vdb loaded first, so the scan reaches the failpoint at once.
        reader
            .batch_execute(
                "SET enable_seqscan = off; SELECT vhnsw_stats('t_l2'); SET vhnsw.failpoint = 'scan_between_reads:sleep'",
            )
            .expect("settings");
        ready.send(()).expect("ready");
        let found: i32 = support::one(
            &mut reader,
            "SELECT id FROM t ORDER BY v <=> (SELECT v FROM t WHERE id = 5000) LIMIT 1",
        );
        found
    });
    started.recv().expect("reader ready");
    std::thread::sleep(Duration::from_millis(500));
    let merged: i64 = support::one(&mut c, "SELECT vhnsw_merge('t_cos')");
    assert_eq!(merged, 1);
    assert_eq!(scan.join().expect("scan thread"), 5000);

    // And without a failpoint: rows inserted one by one while merges run
    // back to back are each found by the very next query.
    let mut merger = cluster.connect("postgres");
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let stopped = stop.clone();
    let merges = std::thread::spawn(move || {
        while !stopped.load(std::sync::atomic::Ordering::Relaxed) {
            merger
                .batch_execute("SELECT vhnsw_merge('t_cos')")
                .expect("merge");
        }
    });
    c.batch_execute("SET enable_seqscan = off")
        .expect("settings");
    for id in 6000..6200 {
        insert(&mut c, DIMS, id, 1);
        let found: i32 = support::one(
            &mut c,
            &format!("SELECT id FROM t ORDER BY v <=> (SELECT v FROM t WHERE id = {id}) LIMIT 1"),
        );
        assert_eq!(found, id, "row {id} not found right after its insert");
    }
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    merges.join().expect("merges");
    all_found_and_clean(&mut c, "after the hammering");
}

/// Item 4: a new extent and the metapage record naming it; an error or
/// crash between relation extension and that record leaves the index
/// sound, and later merges go on.
#[test]
fn a_crash_while_adding_an_extent_leaves_the_index_sound() {
    let cluster = cluster("extent");
    for mode in MODES {
        let mut c = cluster.connect("postgres");
        table(&mut c, DIMS, 100);
        insert(&mut c, DIMS, 1000, 500);
        let mut c = fail_at(
            &cluster,
            &mut c,
            &format!("extent_added{mode}"),
            "SELECT vhnsw_merge('t_cos')",
        );
        c.batch_execute("SELECT vhnsw_merge('t_cos'), vhnsw_merge('t_l2')")
            .expect("merge");
        all_found_and_clean(&mut c, &format!("extents{mode}"));
    }
}

/// An index VACUUM leaves without a row is reset (a fresh metapage,
/// WAL-logged and flushed) and then truncated to that page. An error or
/// crash between the two leaves pages no extent names: the index answers
/// and takes new rows over them, and the next VACUUM that finds it empty
/// truncates it. Both indexes, one at a time (two indexes of this size
/// vacuum in parallel, which skips the reset).
#[test]
fn a_crash_between_reset_and_truncation_loses_nothing() {
    let cluster = cluster("reset");
    let pages = |c: &mut Client, index: &str| -> i64 {
        support::one(c, &format!("SELECT pg_relation_size('{index}') / 8192"))
    };
    for mode in MODES {
        let mut c = cluster.connect("postgres");
        table(&mut c, DIMS, 1000);
        let built = pages(&mut c, "t_cos");
        c.batch_execute("DELETE FROM t").expect("delete");
        let mut c = fail_at(
            &cluster,
            &mut c,
            &format!("reset_before_truncate{mode}"),
            "VACUUM (PARALLEL 0) t",
        );
        assert_eq!(pages(&mut c, "t_cos"), built, "truncated{mode}");
        // Rows over the stale pages: new pages at the end, none reused.
        insert(&mut c, DIMS, 1000, 200);
        all_found_and_clean(&mut c, &format!("after the reset{mode}"));
        c.batch_execute("SELECT vhnsw_merge('t_cos'), vhnsw_merge('t_l2')")
            .expect("merge");
        all_found_and_clean(&mut c, &format!("merged after the reset{mode}"));
        assert!(pages(&mut c, "t_cos") > built, "{mode}");
        c.batch_execute("DELETE FROM t").expect("delete");
        c.batch_execute("VACUUM (PARALLEL 0) t").expect("vacuum");
        for index in ["t_cos", "t_l2"] {
            assert_eq!(pages(&mut c, index), 1, "{index}{mode}");
            let problems: String = support::one(&mut c, &format!("SELECT vhnsw_check('{index}')"));
            assert_eq!(problems, "", "{index}{mode}");
        }
        insert(&mut c, DIMS, 2000, 200);
        all_found_and_clean(&mut c, &format!("refilled{mode}"));
    }
}

/// Item 6: VACUUM merges the pending list when it can, but a failing
/// merge must not abort the VACUUM (that would stop relfrozenxid).
#[test]
fn a_failing_merge_does_not_abort_vacuum() {
    let cluster = cluster("vacuum-merge");
    let mut c = cluster.connect("postgres");
    table(&mut c, DIMS, 500);
    insert(&mut c, DIMS, 1000, 200);
    c.batch_execute("DELETE FROM t WHERE id % 5 = 0")
        .expect("delete");
    let before: i64 = support::one(
        &mut c,
        "SELECT age(relfrozenxid)::bigint FROM pg_class WHERE relname = 't'",
    );
    c.batch_execute("SET vhnsw.failpoint = 'merge_after_insert@3'")
        .expect("failpoint");
    // VACUUM alone in its statement: a batch would be one transaction.
    c.batch_execute("VACUUM (FREEZE) t")
        .expect("VACUUM goes on when its merge fails");
    c.batch_execute("RESET vhnsw.failpoint").expect("reset");
    let after: i64 = support::one(
        &mut c,
        "SELECT age(relfrozenxid)::bigint FROM pg_class WHERE relname = 't'",
    );
    assert!(
        after < before || after == 0,
        "relfrozenxid did not advance: {before} -> {after}"
    );
    all_found_and_clean(&mut c, "after VACUUM with a failed merge");
    c.batch_execute("VACUUM t").expect("vacuum");
    let pending: i64 = support::one(&mut c, "SELECT (vhnsw_stats('t_cos')->>'pending')::bigint");
    assert_eq!(pending, 0);
}

/// Item 9: `vhnsw_check` locks the table before the graph. It used to take
/// the graph lock first, then wait for the table held by a session that
/// then needed the graph lock to insert: a deadlock.
#[test]
fn check_and_a_writer_holding_the_table_do_not_deadlock() {
    let cluster = cluster("lock-order");
    let mut c = cluster.connect("postgres");
    // 2,100 dimensions: too wide for a pending page, inserted into the
    // graph directly, under the graph lock.
    table(&mut c, 2100, 30);
    // The old order's deadlock involves a page lock, which the deadlock
    // detector does not see: a timeout turns that hang into a failure.
    c.batch_execute("SET lock_timeout = '20s'; BEGIN; LOCK TABLE t IN ACCESS EXCLUSIVE MODE")
        .expect("lock");
    let mut checker = cluster.connect("postgres");
    checker
        .batch_execute("SET lock_timeout = '20s'")
        .expect("timeout");
    let check = std::thread::spawn(move || {
        checker
            .query_one("SELECT vhnsw_check('t_l2')", &[])
            .map(|r| r.get::<_, String>(0))
    });
    std::thread::sleep(Duration::from_millis(500));
    insert(&mut c, 2100, 100, 1);
    c.batch_execute("COMMIT").expect("commit");
    let problems = check.join().expect("check thread").expect("check ran");
    assert_eq!(problems, "");
}

/// Item 5: a scan's metapage snapshot does not know the upper slots and
/// extents that merges add after it; a slot freed by VACUUM and reused
/// meanwhile can name them. Such block numbers used to be computed from
/// the snapshot's extent table anyway (an unknown extent is
/// `InvalidBlockNumber`, which ReadBuffer turns into a relation
/// extension). The scan must answer, and must not grow the index.
#[test]
fn a_scan_with_an_old_snapshot_reads_no_unknown_block() {
    let cluster = cluster("stale-extents");
    let mut c = cluster.connect("postgres");
    table(&mut c, DIMS, 1500);
    c.batch_execute("DELETE FROM t WHERE id <= 1000")
        .expect("delete");
    c.batch_execute("VACUUM t").expect("free slots");
    let mut reader = cluster.connect("postgres");
    let (ready, started) = std::sync::mpsc::channel();
    let scan = std::thread::spawn(move || {
        // vdb loaded first, so the scan reaches the failpoint at once.
        reader
            .batch_execute(
                "SET enable_seqscan = off; SELECT vhnsw_stats('t_l2'); SET vhnsw.failpoint = 'scan_first_round:sleep'",
            )
            .expect("settings");
        ready.send(()).expect("ready");
        reader
            .query(
                "SELECT id FROM t ORDER BY v <-> (SELECT v FROM t WHERE id = 1200) LIMIT 10",
                &[],
            )
            .map(|rows| rows.len())
    });
    // While the scan waits with its snapshot: new nodes in the freed
    // slots, with new upper slots in new extents.
    started.recv().expect("reader ready");
    std::thread::sleep(Duration::from_millis(200));
    insert(&mut c, DIMS, 10_000, 1200);
    c.batch_execute("SELECT vhnsw_merge('t_l2')")
        .expect("merge");
    let before: i64 = support::one(&mut c, "SELECT pg_relation_size('t_l2')");
    let rows = scan.join().expect("scan thread");
    let after: i64 = support::one(&mut c, "SELECT pg_relation_size('t_l2')");
    assert_eq!(rows.expect("the scan answers"), 10);
    assert_eq!(after, before, "the scan extended the index");
    all_found_and_clean(&mut c, "after the stale scan");
}
