//! A fault-injection loop: writers (inserts, updates, deletes, some rolled
//! back), merges, VACUUM and CHECKPOINT run against one table with two
//! `vhnsw` indexes (cosine, and L2 with `id` as a filter column, so the composite
//! layout and its value region are under the same faults) until the whole server is SIGKILLed at a
//! random moment; then it restarts (crash recovery) and is checked against
//! a model of what the clients saw committed:
//!
//! - the table holds exactly the committed rows (an insert, update or
//!   delete whose COMMIT never got an answer may have gone either way, but
//!   atomically; the table then says which);
//! - `vhnsw_check` is clean for both indexes;
//! - every committed row is found by an index query for its own vector,
//!   through each index (per cycle the rows written in it and a random
//!   sample, 400 in all; after the last cycle every row);
//! - the index's top 10 equals an exact scan's for random queries;
//! - no server process died of anything but the SIGKILL;
//! - after merging what is pending (and, once, a VACUUM), `vhnsw_check`
//!   is still clean;
//! - a second table, which maintenance empties, VACUUMs (so its index is
//!   reset and truncated to its metapage) and fills again, has every row
//!   it holds found through its index, which checks clean.
//!
//! `VDB_FAULT_CYCLES` sets the number of crashes (default 20),
//! `VDB_FAULT_SEED` the seed (default fixed); both are in every progress
//! line and failure message.

mod support;

use rand::rngs::SmallRng;
use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};
use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::atomic::{AtomicBool, AtomicI32, AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};
use support::{random_vector, Cluster};

/// Narrow, so lists carry no codes: at 32 dimensions the coded search's
/// checks (ef 100 for every row, ef 400 for the top 10) made a run take
/// many minutes. Crashes inside code writes are `crash_points`' (32-d).
const DIMS: usize = 16;
const INITIAL_ROWS: i32 = 2000;
const WRITERS: usize = 3;
/// Rows looked up by their own vector per cycle and index (all of them
/// after the last cycle): a lookup costs about 2 ms in the debug build.
const SELF_QUERY_SAMPLE: usize = 400;
const TOP_K_QUERIES: usize = 10;
/// Each index with the operator it orders by.
const INDEXES: [(&str, &str); 2] = [("t_cos_idx", "<=>"), ("t_l2_idx", "<->")];

/// A vector as its coordinates, so that `-0.5000` (sent) equals `-0.5`
/// (PostgreSQL's output).
fn parse_vector(text: &str) -> Vec<f32> {
    text.trim()
        .trim_start_matches('[')
        .trim_end_matches(']')
        .split(',')
        .map(|x| {
            x.trim()
                .parse()
                .unwrap_or_else(|e| panic!("vector {text}: {e}"))
        })
        .collect()
}

/// A random vector with at least one non-zero coordinate (a zero vector
/// is not indexed under cosine, and could not find itself).
fn nonzero_vector(rng: &mut SmallRng) -> String {
    loop {
        let v = random_vector(rng, DIMS);
        if parse_vector(&v).iter().any(|&x| x != 0.0) {
            return v;
        }
    }
}

/// One row changed by a transaction: its vector before and after
/// (`None`: no such row).
#[derive(Clone, Debug)]
struct Change {
    id: i32,
    before: Option<String>,
    after: Option<String>,
}

/// What the clients know to be committed.
#[derive(Default)]
struct Model {
    /// Committed rows: id and vector (as sent).
    rows: HashMap<i32, String>,
    /// Ids whose DELETE committed.
    gone: HashSet<i32>,
    /// Transactions whose COMMIT got no answer (the kill came first).
    uncertain: Vec<Vec<Change>>,
    /// Ids written (committed) in the current cycle.
    touched: HashSet<i32>,
}

impl Model {
    fn apply(&mut self, changes: &[Change]) {
        for c in changes {
            match &c.after {
                Some(v) => {
                    self.rows.insert(c.id, v.clone());
                }
                None => {
                    if self.rows.remove(&c.id).is_some() {
                        self.gone.insert(c.id);
                    }
                }
            }
            self.touched.insert(c.id);
        }
    }
}

/// What the threads of one cycle share.
struct Shared<'a> {
    cluster: &'a Cluster,
    next_id: &'a AtomicI32,
    model: &'a Mutex<Model>,
    /// Set just before the kill: errors after it are expected.
    killing: &'a AtomicBool,
    /// Errors that came before the kill: failures.
    unexpected: &'a Mutex<Vec<String>>,
    commits: &'a AtomicU64,
    rollbacks: &'a AtomicU64,
    /// Per kind of `MAINTENANCE`: statements started, finished.
    maintenance: &'a Mutex<[[u64; 2]; 4]>,
    /// The maintenance statement running now ('' if none).
    in_flight: &'a Mutex<String>,
}

impl Shared<'_> {
    /// Records `what` as a failure unless the server is being killed.
    fn error(&self, who: &str, what: String) {
        if !self.killing.load(Ordering::SeqCst) {
            self.unexpected
                .lock()
                .expect("unexpected")
                .push(format!("{who}: {what}"));
        }
    }

    /// One connection attempt (no retries: the server may be gone).
    fn connect(&self, who: &str) -> Option<postgres::Client> {
        let conn = format!(
            "host=127.0.0.1 port={} user=postgres dbname=postgres",
            self.cluster.port
        );
        match postgres::Client::connect(&conn, postgres::NoTls) {
            Ok(c) => Some(c),
            Err(e) => {
                self.error(who, format!("connect: {e}"));
                None
            }
        }
    }
}

/// Writes in small transactions until the server goes away: inserts of new
/// ids, updates and deletes of the rows in `own` (id to vector), which no
/// other writer touches, so the order of commits per row is this thread's.
/// A transaction goes into the model only once its COMMIT returned OK.
fn write_until_crash(shared: &Shared, who: &str, seed: u64, mut own: HashMap<i32, String>) {
    let Some(mut client) = shared.connect(who) else {
        return;
    };
    let mut rng = SmallRng::seed_from_u64(seed);
    let mut ids: Vec<i32> = own.keys().copied().collect();
    ids.sort_unstable();
    loop {
        // Paced: merges are slow in the debug build, and every query reads
        // the whole pending list.
        std::thread::sleep(Duration::from_millis(rng.gen_range(0..8)));
        let Ok(mut tx) = client
            .transaction()
            .map_err(|e| shared.error(who, format!("BEGIN: {e}")))
        else {
            return;
        };
        // id -> change, in the order of first touch.
        let mut changes: BTreeMap<i32, Change> = BTreeMap::new();
        for _ in 0..rng.gen_range(1..=3) {
            let op = rng.gen_range(0..100);
            let existing = (!ids.is_empty()).then(|| ids[rng.gen_range(0..ids.len())]);
            let current = |changes: &BTreeMap<i32, Change>, id: i32| match changes.get(&id) {
                Some(c) => c.after.clone(),
                None => own.get(&id).cloned(),
            };
            let (id, after, result) = match existing {
                Some(id) if op >= 40 && current(&changes, id).is_some() => {
                    if op < 70 {
                        let v = nonzero_vector(&mut rng);
                        let r = tx.execute(
                            "UPDATE t SET v = $2::text::vector WHERE id = $1",
                            &[&id, &v],
                        );
                        (id, Some(v), r)
                    } else {
                        let r = tx.execute("DELETE FROM t WHERE id = $1", &[&id]);
                        (id, None, r)
                    }
                }
                _ => {
                    let id = shared.next_id.fetch_add(1, Ordering::SeqCst);
                    let v = nonzero_vector(&mut rng);
                    let r = tx.execute("INSERT INTO t VALUES ($1, $2::text::vector)", &[&id, &v]);
                    (id, Some(v), r)
                }
            };
            match result {
                Ok(1) => {}
                Ok(n) => {
                    shared.error(who, format!("row {id}: {n} rows affected, expected 1"));
                    return;
                }
                Err(e) => {
                    // Never committed: the transaction dies with the session.
                    shared.error(who, format!("row {id}: {e}"));
                    return;
                }
            }
            let before = current(&changes, id);
            changes
                .entry(id)
                .or_insert(Change {
                    id,
                    before,
                    after: None,
                })
                .after = after;
        }
        let changes: Vec<Change> = changes.into_values().collect();
        if rng.gen_range(0..10) == 0 {
            if let Err(e) = tx.rollback() {
                shared.error(who, format!("ROLLBACK: {e}"));
                return;
            }
            shared.rollbacks.fetch_add(1, Ordering::Relaxed);
            continue;
        }
        match tx.commit() {
            Ok(()) => {
                shared.model.lock().expect("model").apply(&changes);
                shared.commits.fetch_add(1, Ordering::Relaxed);
                for c in &changes {
                    match &c.after {
                        Some(v) => {
                            if own.insert(c.id, v.clone()).is_none() {
                                ids.push(c.id);
                            }
                        }
                        None => {
                            if own.remove(&c.id).is_some() {
                                ids.retain(|&i| i != c.id);
                            }
                        }
                    }
                }
            }
            Err(e) => {
                // The kill may have come before or after the commit record
                // reached the WAL: the table tells after the restart.
                shared.error(who, format!("COMMIT: {e}"));
                shared.model.lock().expect("model").uncertain.push(changes);
                return;
            }
        }
    }
}

/// The maintenance statements, by kind: merge, VACUUM, CHECKPOINT, and
/// filling, emptying and vacuuming the table `e`.
const MAINTENANCE: [&str; 4] = ["vhnsw_merge", "VACUUM", "CHECKPOINT", "refill e"];

/// The statements of "refill e", one after another: the VACUUM finds `e`
/// without a row and resets its index, which the new rows then fill.
const REFILL_E: [&str; 3] = [
    "DELETE FROM e",
    "VACUUM e",
    "INSERT INTO e SELECT i, ARRAY(SELECT random() * 2 - 1 + i * 0 FROM generate_series(1, 16))::vector(16) FROM generate_series(1, 300) i",
];

/// Merges an index, VACUUMs or checkpoints, at random, until the server
/// goes away or `running` is cleared. In the debug build a merge or VACUUM
/// usually outlasts the cycle, so the kill mostly lands inside one.
fn maintain_until_crash(shared: &Shared, seed: u64, running: &AtomicBool) {
    let who = "maintenance";
    let Some(mut client) = shared.connect(who) else {
        return;
    };
    let mut rng = SmallRng::seed_from_u64(seed);
    while running.load(Ordering::SeqCst) {
        std::thread::sleep(Duration::from_millis(rng.gen_range(0..30)));
        let kind = [0, 0, 1, 1, 2, 3][rng.gen_range(0..6)];
        let statements = match kind {
            0 => vec![format!(
                "SELECT vhnsw_merge('{}')",
                INDEXES[rng.gen_range(0..INDEXES.len())].0
            )],
            1 => vec!["VACUUM t".to_string()],
            2 => vec!["CHECKPOINT".to_string()],
            _ => REFILL_E.iter().map(|s| s.to_string()).collect(),
        };
        shared.maintenance.lock().expect("maintenance")[kind][0] += 1;
        for sql in statements {
            *shared.in_flight.lock().expect("in flight") = sql.clone();
            let result = client.simple_query(&sql);
            if let Err(e) = result {
                shared.error(who, format!("{sql}: {e}"));
                return;
            }
        }
        shared.in_flight.lock().expect("in flight").clear();
        shared.maintenance.lock().expect("maintenance")[kind][1] += 1;
    }
}

/// A connection after a restart: a failing statement fails the test with
/// the cycle and the end of the server log (a backend that died shows
/// there).
struct Db<'a> {
    client: postgres::Client,
    cluster: &'a Cluster,
    context: &'a str,
}

impl Db<'_> {
    fn fail(&self, what: &str, e: postgres::Error) -> ! {
        panic!(
            "{}: {what}: {e}\n--- server log (end) ---\n{}",
            self.context,
            log_tail(self.cluster)
        )
    }

    fn query(
        &mut self,
        sql: &str,
        params: &[&(dyn postgres::types::ToSql + Sync)],
    ) -> Vec<postgres::Row> {
        self.client
            .query(sql, params)
            .unwrap_or_else(|e| self.fail(sql, e))
    }

    fn batch(&mut self, sql: &str) {
        if let Err(e) = self.client.batch_execute(sql) {
            self.fail(sql, e)
        }
    }

    /// The rows of `t` with ids in `ids` (all rows when `None`).
    fn table_rows(&mut self, ids: Option<&[i32]>) -> HashMap<i32, String> {
        let rows = match ids {
            Some(ids) => self.query("SELECT id, v::text FROM t WHERE id = ANY($1)", &[&ids]),
            None => self.query("SELECT id, v::text FROM t", &[]),
        };
        rows.iter().map(|r| (r.get(0), r.get(1))).collect()
    }

    /// `vhnsw_check` of `index`.
    fn check(&mut self, index: &str) -> String {
        self.query(&format!("SELECT vhnsw_check('{index}')"), &[])[0].get(0)
    }
}

/// The table "refill e" fills and empties: whatever rows it holds after
/// a restart (the heap says which were committed), each is found first by
/// an index query for its own vector, and the index checks clean.
fn verify_refilled(db: &mut Db, notes: &mut Vec<String>) -> Vec<String> {
    let mut problems = Vec::new();
    db.batch("SET enable_seqscan = off");
    let rows = db.query("SELECT id, v::text FROM e", &[]);
    let mut lost = 0;
    for row in &rows {
        let v: String = row.get(1);
        let found = db.query(
            "SELECT v::text FROM e ORDER BY v <-> $1::text::vector LIMIT 1",
            &[&v],
        );
        let found: Option<String> = found.first().map(|r| r.get(0));
        if !same_row(found.as_ref(), Some(&v)) {
            lost += 1;
        }
    }
    db.batch("RESET enable_seqscan");
    if lost > 0 {
        problems.push(format!(
            "{lost} of {} rows of e not found through e_idx",
            rows.len()
        ));
    }
    let check = db.check("e_idx");
    if !check.is_empty() {
        problems.push(format!("vhnsw_check('e_idx'): {check}"));
    }
    let pages: i64 = db.query("SELECT pg_relation_size('e_idx') / 8192", &[])[0].get(0);
    notes.push(format!("e: {} rows, {pages} pages", rows.len()));
    problems
}

/// The last 200 lines of the server log.
fn log_tail(cluster: &Cluster) -> String {
    let log = cluster.log();
    let lines: Vec<&str> = log.lines().collect();
    lines[lines.len().saturating_sub(200)..].join("\n")
}

fn same_row(a: Option<&String>, b: Option<&String>) -> bool {
    match (a, b) {
        (Some(a), Some(b)) => parse_vector(a) == parse_vector(b),
        (None, None) => true,
        _ => false,
    }
}

/// Everything that is checked after a restart; returns the problems, one
/// per line, and adds notes for the progress line.
fn verify(
    db: &mut Db,
    model: &mut Model,
    rng: &mut SmallRng,
    notes: &mut Vec<String>,
    self_queries: usize,
    vacuum: bool,
) -> Vec<String> {
    let mut problems = Vec::new();
    for (index, _) in INDEXES {
        let stats = &db.query(
            &format!("SELECT s->>'nodes', s->>'pending' FROM vhnsw_stats('{index}') s"),
            &[],
        )[0];
        let (nodes, pending): (String, String) = (stats.get(0), stats.get(1));
        notes.push(format!("{index}: {nodes} nodes, {pending} pending"));
    }

    // Transactions whose commit is unknown: all or nothing, and the table
    // says which.
    for changes in std::mem::take(&mut model.uncertain) {
        let ids: Vec<i32> = changes.iter().map(|c| c.id).collect();
        let now = db.table_rows(Some(&ids));
        let committed = changes
            .iter()
            .all(|c| same_row(now.get(&c.id), c.after.as_ref()));
        let aborted = changes
            .iter()
            .all(|c| same_row(now.get(&c.id), c.before.as_ref()));
        if committed {
            model.apply(&changes);
            notes.push("an unanswered COMMIT had committed".to_string());
        } else if aborted {
            notes.push("an unanswered COMMIT had not committed".to_string());
        } else {
            problems.push(format!(
                "a transaction is half committed: {changes:?}, table now {now:?}"
            ));
        }
    }

    // The table: exactly the committed rows.
    let table = db.table_rows(None);
    let mut lost: Vec<i32> = model
        .rows
        .keys()
        .filter(|id| !table.contains_key(id))
        .copied()
        .collect();
    let mut extra: Vec<i32> = table
        .keys()
        .filter(|id| !model.rows.contains_key(id))
        .copied()
        .collect();
    let mut changed: Vec<i32> = model
        .rows
        .iter()
        .filter(|(id, v)| {
            table
                .get(id)
                .is_some_and(|t| parse_vector(t) != parse_vector(v))
        })
        .map(|(id, _)| *id)
        .collect();
    let mut resurrected: Vec<i32> = extra
        .iter()
        .filter(|id| model.gone.contains(id))
        .copied()
        .collect();
    for (what, ids) in [
        ("committed rows missing from the table", &mut lost),
        ("rows in the table that never committed", &mut extra),
        ("deleted rows back in the table", &mut resurrected),
        ("rows whose vector is not the committed one", &mut changed),
    ] {
        if !ids.is_empty() {
            ids.sort_unstable();
            problems.push(format!(
                "{} {what} (e.g. {:?})",
                ids.len(),
                &ids[..ids.len().min(10)]
            ));
        }
    }

    let timer = Instant::now();
    check_indexes(db, "after the restart", &mut problems, notes);
    notes.push(format!("vhnsw_check {:.1?}", timer.elapsed()));

    // Every committed row is found by its own vector, through each index:
    // the rows written in this cycle first, then a random sample.
    let mut sample: Vec<i32> = model
        .touched
        .iter()
        .filter(|id| model.rows.contains_key(id))
        .copied()
        .collect();
    sample.sort_unstable();
    sample.truncate(self_queries);
    let mut rest: Vec<i32> = model
        .rows
        .keys()
        .filter(|id| !model.touched.contains(id))
        .copied()
        .collect();
    rest.sort_unstable();
    let room = self_queries.saturating_sub(sample.len()).min(rest.len());
    sample.extend(rest.choose_multiple(rng, room));
    let vectors: Vec<&str> = sample.iter().map(|id| model.rows[id].as_str()).collect();
    let timer = Instant::now();
    // A row's own vector is at distance 0: ef_search 100 finds it.
    db.batch("SET enable_seqscan = off; SET enable_indexscan = on; SET vhnsw.ef_search = 100");
    for (index, op) in INDEXES {
        let query = format!(
            "SELECT u.id, (SELECT t.id FROM t ORDER BY t.v {op} u.v::vector({DIMS}) LIMIT 1)
             FROM unnest($1::int[], $2::text[]) AS u(id, v)"
        );
        let rows = db.query(&query, &[&sample, &vectors]);
        let mut missed = Vec::new();
        for r in &rows {
            let (id, got): (i32, Option<i32>) = (r.get(0), r.get(1));
            let tie =
                got.is_some_and(|g| g == id || same_row(model.rows.get(&g), model.rows.get(&id)));
            if !tie {
                missed.push((id, got));
            }
        }
        if !missed.is_empty() {
            let recent = missed
                .iter()
                .filter(|(id, _)| model.touched.contains(id))
                .count();
            problems.push(format!(
                "{} of {} committed rows not found by their own vector through {index} \
                 ({recent} of them written this cycle); (id, found instead) e.g. {:?}",
                missed.len(),
                rows.len(),
                &missed[..missed.len().min(10)]
            ));
        }
    }

    notes.push(format!(
        "{} self queries per index in {:.1?}",
        sample.len(),
        timer.elapsed()
    ));

    // Top 10 through the index equals the exact scan's, ties allowed;
    // ef_search 400 makes the search exact on a few thousand rows.
    db.batch("SET vhnsw.ef_search = 400");
    for (index, op) in INDEXES {
        let mut wrong = Vec::new();
        for _ in 0..TOP_K_QUERIES {
            let q = nonzero_vector(rng);
            let query = format!(
                "SELECT id, v {op} $1::text::vector FROM t ORDER BY v {op} $1::text::vector LIMIT 10"
            );
            let mut answers = Vec::new();
            for settings in [
                "SET enable_seqscan = off; SET enable_indexscan = on",
                "SET enable_seqscan = on; SET enable_indexscan = off",
            ] {
                db.batch(settings);
                let rows = db.query(&query, &[&q]);
                let answer: Vec<(i32, f64)> = rows.iter().map(|r| (r.get(0), r.get(1))).collect();
                answers.push(answer);
            }
            // The index orders by its own distances; compare by the table's.
            answers[0].sort_by(|a, b| a.1.total_cmp(&b.1));
            let (approx, exact) = (&answers[0], &answers[1]);
            let ids = |a: &[(i32, f64)]| a.iter().map(|x| x.0).collect::<HashSet<i32>>();
            let distinct = ids(approx).len() == approx.len();
            let same_set = ids(approx) == ids(exact);
            let same_distances = approx.len() == exact.len()
                && approx
                    .iter()
                    .zip(exact)
                    .all(|(a, e)| (a.1 - e.1).abs() <= 1e-9 * e.1.abs().max(1.0));
            if !distinct || !(same_set || same_distances) {
                wrong.push(format!("for {q}:\n  index {approx:?}\n  exact {exact:?}"));
            }
        }
        if !wrong.is_empty() {
            problems.push(format!(
                "top 10 through {index} differs from the exact scan's for {} of {TOP_K_QUERIES} \
                 queries, e.g. {}",
                wrong.len(),
                wrong[..wrong.len().min(2)].join("\n")
            ));
        }
    }
    db.batch("RESET enable_seqscan; RESET enable_indexscan; RESET vhnsw.ef_search");

    // Merge what is pending (the merges of the next cycle then start
    // after a crash recovery, and the pending list, which every query
    // reads in full, stays short), and check again. A VACUUM takes longer
    // than a cycle in the debug build (about 8 ms per dead row and index),
    // so the kill nearly always lands inside one: after the second cycle,
    // while few dead rows have piled up, one runs to its end here, and the
    // later cycles also write into the slots it freed.
    let timer = Instant::now();
    for (index, _) in INDEXES {
        db.batch(&format!("SELECT vhnsw_merge('{index}')"));
    }
    let what = if vacuum {
        db.batch("VACUUM t");
        "merging the pending list and VACUUM"
    } else {
        "merging the pending list"
    };
    check_indexes(db, &format!("after {what}"), &mut problems, notes);
    notes.push(format!("{what} and vhnsw_check {:.1?}", timer.elapsed()));
    problems
}

/// `vhnsw_check` of every index must be empty. A node left without
/// incoming links by pruning is documented as relinked by the next VACUUM
/// (crash_recovery.rs accepts it too): such lines are noted, VACUUM runs,
/// and then nothing may be left.
fn check_indexes(db: &mut Db, when: &str, problems: &mut Vec<String>, notes: &mut Vec<String>) {
    let mut vacuum = false;
    for (index, _) in INDEXES {
        for line in db.check(index).lines() {
            if line.contains("unreachable") {
                notes.push(format!("vhnsw_check('{index}') {when}: {line}"));
                vacuum = true;
            } else {
                problems.push(format!("vhnsw_check('{index}') {when}: {line}"));
            }
        }
    }
    if vacuum {
        db.batch("VACUUM t");
        for (index, _) in INDEXES {
            let found = db.check(index);
            if !found.is_empty() {
                problems.push(format!("vhnsw_check('{index}') {when} and VACUUM: {found}"));
            }
        }
    }
}

#[test]
fn committed_rows_survive_sigkill_during_writes_merges_and_vacuum() {
    support::require_vdb();
    let cycles: u64 = std::env::var("VDB_FAULT_CYCLES")
        .ok()
        .map(|s| s.parse().expect("VDB_FAULT_CYCLES: a number"))
        .unwrap_or(20);
    assert!(cycles >= 1, "VDB_FAULT_CYCLES must be at least 1");
    let seed: u64 = std::env::var("VDB_FAULT_SEED")
        .ok()
        .map(|s| s.parse().expect("VDB_FAULT_SEED: a number"))
        .unwrap_or(0x5eed_fa17);
    let started = Instant::now();
    // fsync stays off (the support default): SIGKILL ends processes, not
    // the kernel, so every write() they made is in the page cache the
    // restarted server reads; only a power or OS failure needs fsync, and
    // this is about the server's own crash safety. synchronous_commit on:
    // an answered COMMIT has its WAL written. Short merge naptime, small
    // batches and a low pending limit make the background worker merge
    // while the writers and the kill run.
    let cluster = Cluster::start(
        "faultloop",
        &[
            "synchronous_commit = on",
            "log_line_prefix = '%m [%p] %b '",
            "vhnsw.merge_naptime = '20ms'",
            "vhnsw.merge_batch_size = 50",
            "vhnsw.pending_list_limit = '8kB'",
            "jit = off",
        ],
    );
    let mut rng = SmallRng::seed_from_u64(seed);
    let mut model = Model::default();
    {
        let mut client = cluster.connect("postgres");
        let ids: Vec<i32> = (1..=INITIAL_ROWS).collect();
        let vectors: Vec<String> = ids.iter().map(|_| nonzero_vector(&mut rng)).collect();
        client
            .batch_execute(&format!(
                "CREATE EXTENSION vdb; CREATE TABLE t (id int PRIMARY KEY, v vector({DIMS}))"
            ))
            .expect("setup");
        client
            .execute(
                "INSERT INTO t SELECT id, v::vector FROM unnest($1::int[], $2::text[]) AS u(id, v)",
                &[&ids, &vectors],
            )
            .expect("initial rows");
        client
            .batch_execute(
                "CREATE INDEX t_cos_idx ON t USING vhnsw (v vector_cosine_ops);
                 CREATE INDEX t_l2_idx ON t USING vhnsw (v vector_l2_ops, id);
                 ANALYZE t;
                 CREATE TABLE e (id int, v vector(16));
                 CREATE INDEX e_idx ON e USING vhnsw (v vector_l2_ops);",
            )
            .expect("indexes");
        model.rows = ids.into_iter().zip(vectors).collect();
        // The self queries and top-10 queries really go through each index.
        let mut client = cluster.connect("postgres");
        client
            .batch_execute("SET enable_seqscan = off")
            .expect("settings");
        for (index, op) in INDEXES {
            let plan = support::explain(
                &mut client,
                "COSTS OFF",
                &format!(
                    "SELECT u.id, (SELECT t.id FROM t ORDER BY t.v {op} u.v::vector({DIMS}) LIMIT 1)
                     FROM unnest('{{1}}'::int[], '{{\"[{}]\"}}'::text[]) AS u(id, v)",
                    vec!["1"; DIMS].join(",")
                ),
            );
            assert!(
                plan.contains(&format!("Index Scan using {index}")),
                "{plan}"
            );
        }
    }

    let next_id = AtomicI32::new(INITIAL_ROWS + 1);
    let (commits, rollbacks) = (AtomicU64::new(0), AtomicU64::new(0));
    let maintenance = Mutex::new([[0u64; 2]; 4]);
    let mut unreachable_cycles = 0;
    let mut log_seen = 0;
    for cycle in 0..cycles {
        let mut context = format!("cycle {cycle} of {cycles}, seed {seed}");
        let mut owned: Vec<HashMap<i32, String>> = vec![HashMap::new(); WRITERS];
        for (&id, v) in &model.rows {
            owned[id as usize % WRITERS].insert(id, v.clone());
        }
        model.touched.clear();
        let shared_model = Mutex::new(std::mem::take(&mut model));
        let (killing, running) = (AtomicBool::new(false), AtomicBool::new(true));
        let unexpected = Mutex::new(Vec::new());
        let in_flight = Mutex::new(String::new());
        let shared = Shared {
            cluster: &cluster,
            next_id: &next_id,
            model: &shared_model,
            killing: &killing,
            unexpected: &unexpected,
            commits: &commits,
            rollbacks: &rollbacks,
            maintenance: &maintenance,
            in_flight: &in_flight,
        };
        let commits_before = commits.load(Ordering::SeqCst);
        let delay = Duration::from_millis(rng.gen_range(200..1500));
        let writer_seeds: Vec<u64> = (0..=WRITERS).map(|_| rng.gen()).collect();
        std::thread::scope(|s| {
            for (w, own) in owned.into_iter().enumerate() {
                let (shared, seed) = (&shared, writer_seeds[w]);
                s.spawn(move || write_until_crash(shared, &format!("writer {w}"), seed, own));
            }
            let (shared, running) = (&shared, &running);
            s.spawn(move || maintain_until_crash(shared, writer_seeds[WRITERS], running));
            std::thread::sleep(delay);
            killing.store(true, Ordering::SeqCst);
            cluster.crash();
            running.store(false, Ordering::SeqCst);
        });
        model = shared_model.into_inner().expect("model");
        let in_flight = in_flight.into_inner().expect("in flight");
        let killed = if in_flight.is_empty() {
            format!("killed after {delay:?}")
        } else {
            format!("killed after {delay:?} during {in_flight}")
        };
        let unexpected = unexpected.into_inner().expect("unexpected");
        assert!(
            unexpected.is_empty(),
            "{context}: errors before the kill:\n{}\n--- server log (end) ---\n{}",
            unexpected.join("\n"),
            log_tail(&cluster)
        );

        context = format!("{context}, {killed}");
        let restart = Instant::now();
        cluster.pg_ctl_start();
        let mut db = Db {
            client: cluster.connect("postgres"),
            cluster: &cluster,
            context: &context,
        };
        let restart = restart.elapsed();
        let checks = Instant::now();
        let mut notes = Vec::new();
        let self_queries = if cycle + 1 == cycles {
            usize::MAX
        } else {
            SELF_QUERY_SAMPLE
        };
        let mut problems = verify(
            &mut db,
            &mut model,
            &mut rng,
            &mut notes,
            self_queries,
            cycle == 1.min(cycles - 1),
        );
        problems.extend(verify_refilled(&mut db, &mut notes));
        // No process but the killed ones died, and nothing panicked.
        let log = cluster.log().into_bytes();
        let new_log = String::from_utf8_lossy(&log[log_seen.min(log.len())..]).into_owned();
        log_seen = log.len();
        for line in new_log.lines() {
            if line.contains("PANIC:")
                || (line.contains("terminated by signal") && !line.contains("signal 9:"))
            {
                problems.push(format!("server log: {line}"));
            }
        }
        let warnings = new_log.lines().filter(|l| l.contains("WARNING:")).count();
        if warnings > 0 {
            notes.push(format!("{warnings} WARNINGs in the server log"));
        }
        if notes.iter().any(|n| n.contains("unreachable")) {
            unreachable_cycles += 1;
        }
        eprintln!(
            "{context}: {} commits, {} rows; restart {restart:.1?}, checks {:.1?}{}{}",
            commits.load(Ordering::SeqCst) - commits_before,
            model.rows.len(),
            checks.elapsed(),
            if notes.is_empty() { "" } else { "; " },
            notes.join("; ")
        );
        assert!(
            problems.is_empty(),
            "{context}:\n{}\n--- server log (end) ---\n{}",
            problems.join("\n"),
            log_tail(&cluster)
        );
    }
    let maintenance = maintenance.into_inner().expect("maintenance");
    let done: Vec<String> = MAINTENANCE
        .iter()
        .zip(maintenance)
        .map(|(what, [started, finished])| format!("{what} {finished} of {started}"))
        .collect();
    eprintln!(
        "{cycles} cycles in {:.1?}: {} commits, {} rollbacks, {} rows at the end, {} deleted; \
         maintenance statements finished: {}; {unreachable_cycles} cycles had unreachable \
         nodes before VACUUM",
        started.elapsed(),
        commits.load(Ordering::SeqCst),
        rollbacks.load(Ordering::SeqCst),
        model.rows.len(),
        model.gone.len(),
        done.join(", ")
    );
    // The loop did what it is about: writers and maintenance really ran.
    assert!(
        commits.load(Ordering::SeqCst) >= cycles * 20,
        "only {} commits in {cycles} cycles",
        commits.load(Ordering::SeqCst)
    );
    assert!(
        maintenance.iter().map(|m| m[0]).sum::<u64>() >= cycles,
        "fewer maintenance statements than cycles: {}",
        done.join(", ")
    );
    assert!(!model.gone.is_empty(), "no delete committed");
}
