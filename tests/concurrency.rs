//! Several clients at once for a bounded time: inserts, vector updates,
//! updates of another column, deletes and ordered searches, with merges
//! (background worker, back-pressure and `vhnsw_merge`), `vhnsw_check`
//! and a `VACUUM` running meanwhile. No statement may fail, searches must
//! come back in distance order, and afterwards the index must hold every
//! committed row exactly once and find each by its own vector.

mod support;

use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};
use std::sync::atomic::{AtomicBool, AtomicI32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use support::{random_vector, Cluster};

const DIMS: usize = 16;
const RUN_FOR: Duration = Duration::from_secs(20);

type Errors = Arc<Mutex<Vec<String>>>;

fn record(errors: &Errors, who: &str, e: impl std::fmt::Display) {
    errors.lock().expect("errors").push(format!("{who}: {e}"));
}

fn writer(
    cluster: &Cluster,
    seed: u64,
    next_id: &AtomicI32,
    stop: &AtomicBool,
    errors: &Errors,
) -> usize {
    let mut client = cluster.connect("postgres");
    let mut rng = SmallRng::seed_from_u64(seed);
    let mut done = 0;
    while !stop.load(Ordering::Relaxed) {
        let top = next_id.load(Ordering::Relaxed);
        let some_id = rng.gen_range(1..top);
        let v = random_vector(&mut rng, DIMS);
        let result = match rng.gen_range(0..100) {
            0..=39 => {
                let id = next_id.fetch_add(1, Ordering::Relaxed);
                client.execute("INSERT INTO t VALUES ($1, 0, $2::text::vector)", &[&id, &v])
            }
            40..=44 => {
                let first = next_id.fetch_add(50, Ordering::Relaxed);
                client.execute(
                    "INSERT INTO t SELECT $1 + i, i, ARRAY(SELECT random() * 2 - 1 + i * 0 FROM generate_series(1, 16))::vector
                     FROM generate_series(0, 49) i",
                    &[&first],
                )
            }
            45..=64 => client.execute(
                "UPDATE t SET v = $2::text::vector WHERE id = $1",
                &[&some_id, &v],
            ),
            65..=84 => client.execute("UPDATE t SET tag = tag + 1 WHERE id = $1", &[&some_id]),
            _ => client.execute("DELETE FROM t WHERE id = $1", &[&some_id]),
        };
        match result {
            Ok(_) => done += 1,
            Err(e) => record(errors, "writer", e),
        }
    }
    done
}

fn searcher(cluster: &Cluster, stop: &AtomicBool, errors: &Errors) -> usize {
    let mut client = cluster.connect("postgres");
    let mut rng = SmallRng::seed_from_u64(99);
    client
        .batch_execute("SET enable_seqscan = off")
        .expect("settings");
    let mut done = 0;
    while !stop.load(Ordering::Relaxed) {
        let q = random_vector(&mut rng, DIMS);
        match client.query(
            "SELECT id, (v <-> $1::text::vector)::float8 FROM t ORDER BY v <-> $1::text::vector LIMIT 20",
            &[&q],
        ) {
            Ok(rows) => {
                let d: Vec<f64> = rows.iter().map(|r| r.get(1)).collect();
                if rows.len() != 20 {
                    record(errors, "searcher", format!("{} rows instead of 20", rows.len()));
                }
                // The index ranks by distances rounded to f32; the SQL
                // operator reports them in f64, so two rows within f32's
                // precision of each other may come out either way.
                if d.windows(2).any(|w| w[1] < w[0] * (1.0 - 1e-6)) {
                    record(errors, "searcher", format!("out of order: {d:?}"));
                }
                done += 1;
            }
            Err(e) => record(errors, "searcher", e),
        }
    }
    done
}

fn maintenance(cluster: &Cluster, stop: &AtomicBool, errors: &Errors) -> (usize, bool) {
    let mut client = cluster.connect("postgres");
    let start = Instant::now();
    let (mut merges, mut vacuumed) = (0, false);
    while !stop.load(Ordering::Relaxed) {
        std::thread::sleep(Duration::from_millis(700));
        match client.query_one("SELECT vhnsw_merge('t_v_idx')", &[]) {
            Ok(_) => merges += 1,
            Err(e) => record(errors, "merge", e),
        }
        // Under way, the only thing allowed to be amiss is a node that
        // pruning left without incoming links (VACUUM relinks those).
        match client.query_one("SELECT vhnsw_check('t_v_idx')", &[]) {
            Ok(row) => {
                let problems: String = row.get(0);
                for line in problems.lines().filter(|l| !l.contains("unreachable")) {
                    record(errors, "check", line);
                }
            }
            Err(e) => record(errors, "check", e),
        }
        if !vacuumed && start.elapsed() > RUN_FOR / 2 {
            match client.batch_execute("VACUUM t") {
                Ok(()) => vacuumed = true,
                Err(e) => record(errors, "vacuum", e),
            }
        }
    }
    (merges, vacuumed)
}

#[test]
fn concurrent_writes_searches_merges_and_vacuum() {
    support::require_vdb();
    let cluster = Cluster::start(
        "concurrency",
        &[
            "vhnsw.merge_naptime = '50ms'",
            "vhnsw.pending_list_limit = '24kB'",
            "vhnsw.pending_list_hard_limit = '128kB'",
            "vhnsw.merge_batch_size = 200",
            "autovacuum_naptime = '2s'",
            "autovacuum_vacuum_threshold = 500",
        ],
    );
    let mut client = cluster.connect("postgres");
    client
        .batch_execute(
            "CREATE EXTENSION vdb;
             SELECT setseed(0.7);
             CREATE TABLE t (id int PRIMARY KEY, tag int, v vector(16));
             INSERT INTO t SELECT i, 0, ARRAY(SELECT random() * 2 - 1 + i * 0 FROM generate_series(1, 16))::vector
               FROM generate_series(1, 3000) i;
             CREATE INDEX t_v_idx ON t USING vhnsw (v vector_l2_ops);",
        )
        .expect("setup");

    let next_id = AtomicI32::new(100_000);
    let stop = AtomicBool::new(false);
    let errors: Errors = Arc::default();
    let (writes, searches, (merges, vacuumed)) = std::thread::scope(|s| {
        let writers: Vec<_> = (0..3)
            .map(|w| {
                let (cluster, next_id, stop, errors) = (&cluster, &next_id, &stop, &errors);
                s.spawn(move || writer(cluster, w, next_id, stop, errors))
            })
            .collect();
        let search = s.spawn(|| searcher(&cluster, &stop, &errors));
        let maint = s.spawn(|| maintenance(&cluster, &stop, &errors));
        std::thread::sleep(RUN_FOR);
        stop.store(true, Ordering::Relaxed);
        let writes: usize = writers.into_iter().map(|w| w.join().expect("writer")).sum();
        (
            writes,
            search.join().expect("searcher"),
            maint.join().expect("maintenance"),
        )
    });
    let errors = errors.lock().expect("errors").clone();
    eprintln!(
        "{writes} writes, {searches} searches, {merges} vhnsw_merge calls, vacuum ran: {vacuumed}"
    );
    assert!(
        errors.is_empty(),
        "{} errors, first: {:?}\n{}",
        errors.len(),
        &errors[..errors.len().min(5)],
        cluster.log()
    );
    assert!(vacuumed && writes > 1000 && searches > 100 && merges >= 2);

    client.batch_execute("VACUUM t").expect("vacuum");
    let problems: String = client
        .query_one("SELECT vhnsw_check('t_v_idx')", &[])
        .expect("check")
        .get(0);
    assert_eq!(problems, "");
    // A VACUUM that runs in parallel (the primary key's index grows past
    // min_parallel_index_scan_size in a long run) cannot merge in a
    // subtransaction and asks a merge worker instead.
    let deadline = Instant::now() + Duration::from_secs(30);
    let pending = loop {
        let pending: i64 = client
            .query_one("SELECT (vhnsw_stats('t_v_idx')->>'pending')::bigint", &[])
            .expect("stats")
            .get(0);
        if pending == 0 || Instant::now() > deadline {
            break pending;
        }
        std::thread::sleep(Duration::from_millis(200));
    };
    assert_eq!(
        pending, 0,
        "VACUUM merges the pending list, or has it merged"
    );

    // Every row, searched for by its own vector, comes back first.
    client
        .batch_execute("SET enable_seqscan = off; SET vhnsw.ef_search = 100")
        .expect("settings");
    let rows: i64 = client
        .query_one("SELECT count(*) FROM t", &[])
        .expect("count")
        .get(0);
    let missed: Vec<i32> = client
        .query(
            "SELECT o.id FROM t o WHERE (SELECT i.id FROM t i ORDER BY i.v <-> o.v LIMIT 1) IS DISTINCT FROM o.id",
            &[],
        )
        .expect("self queries")
        .iter()
        .map(|r| r.get(0))
        .collect();
    assert!(
        missed.is_empty(),
        "{} of {rows} rows not found by their own vector: {:?}",
        missed.len(),
        &missed[..missed.len().min(10)]
    );
}
