//! A corrupt index gives an ERROR, never a spin: chains on disk (overflow
//! pages of duplicate rows, the pending list) are walked with a bound and
//! with interrupts checked. The test corrupts pages in the file of a
//! stopped server, then queries.

mod support;

use std::io::{Read, Seek, SeekFrom, Write};
use support::Cluster;

const BLCKSZ: u64 = 8192;
/// `PageOpaque::next` sits in the last 4 bytes of every page.
const NEXT_AT: u64 = BLCKSZ - 4;

/// Replaces the bytes at `at` of a stopped server's `file` by what
/// `change` makes of them.
fn patch(cluster: &Cluster, file: &str, at: u64, len: usize, change: impl FnOnce(&mut [u8])) {
    let path = cluster.data().join(file);
    let mut f = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(&path)
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let mut bytes = vec![0u8; len];
    f.seek(SeekFrom::Start(at)).expect("seek");
    f.read_exact(&mut bytes).expect("read");
    change(&mut bytes);
    f.seek(SeekFrom::Start(at)).expect("seek");
    f.write_all(&bytes).expect("write");
}

/// Points the `next` link of `block` of the index file at `target`.
fn relink(cluster: &Cluster, file: &str, block: u64, target: u32) {
    patch(cluster, file, block * BLCKSZ + NEXT_AT, 4, |b| {
        b.copy_from_slice(&target.to_ne_bytes())
    });
}

fn expect_corrupt(client: &mut postgres::Client, query: &str) {
    let err = client
        .query(query, &[])
        .expect_err("a query through a looping chain must fail");
    let db = err.as_db_error().unwrap_or_else(|| panic!("{err}"));
    assert_eq!(
        db.code(),
        &postgres::error::SqlState::INDEX_CORRUPTED,
        "{}",
        db.message()
    );
    assert!(db.message().contains("does not end"), "{}", db.message());
}

#[test]
fn looping_chains_are_errors() {
    support::require_vdb();
    let cluster = Cluster::start(
        "corrupt",
        &["vhnsw.merge_naptime = '1h'", "autovacuum = off"],
    );
    let mut c = cluster.connect("postgres");
    // Five identical rows: one node, three of its TIDs on an overflow
    // page, which CREATE INDEX writes right after the metapage (block 1).
    c.batch_execute(
        "CREATE EXTENSION vdb;
         CREATE TABLE d (id int, v vector(4));
         INSERT INTO d SELECT i, '[1,1,1,1]' FROM generate_series(1, 5) i;
         INSERT INTO d SELECT i, ARRAY[random(), random(), random(), random()] FROM generate_series(6, 300) i;
         CREATE INDEX d_idx ON d USING vhnsw (v vector_l2_ops);",
    )
    .expect("setup");
    let built: i64 = support::one(&mut c, "SELECT pg_relation_size('d_idx') / 8192");
    // Three pending pages after the built ones.
    c.batch_execute(
        "INSERT INTO d SELECT i, ARRAY[random(), random(), random(), random()] FROM generate_series(1000, 1800) i",
    )
    .expect("pending rows");
    let file: String = support::one(&mut c, "SELECT pg_relation_filepath('d_idx')");
    c.batch_execute("CHECKPOINT").expect("checkpoint");
    drop(c);
    cluster.stop();
    relink(&cluster, &file, 1, 1); // the overflow page names itself
    relink(&cluster, &file, built as u64, built as u32); // so does the first pending page
    cluster.pg_ctl_start();
    let mut c = index_scans(&cluster);
    // The scan reads the pending list first: its loop is found first.
    expect_corrupt(&mut c, NEAREST_DUPLICATES);
    expect_corrupt(&mut c, "SELECT vhnsw_stats('d_idx')::text");
    // With the pending list emptied by hand, the overflow chain's loop.
    relink_after_restart(&cluster, &file, built);
    expect_corrupt(&mut index_scans(&cluster), NEAREST_DUPLICATES);
}

/// Reaches the node of the five identical rows, and its overflow page.
const NEAREST_DUPLICATES: &str = "SELECT id FROM d ORDER BY v <-> '[1,1,1,1]' LIMIT 10";

/// A connection that scans through the index, and gives up on a spin.
fn index_scans(cluster: &Cluster) -> postgres::Client {
    let mut c = cluster.connect("postgres");
    c.batch_execute("SET statement_timeout = '120s'; SET enable_seqscan = off")
        .expect("settings");
    c
}

/// Cuts the pending list after its first page (restoring a sound list),
/// leaving the overflow page's loop.
fn relink_after_restart(cluster: &Cluster, file: &str, first_pending: i64) {
    cluster.stop();
    relink(cluster, file, first_pending as u64, u32::MAX);
    cluster.pg_ctl_start();
}

/// `Meta::version` is the second `u32` of the metapage's payload, after
/// the 24-byte page header and the magic number.
const VERSION_AT: u64 = 24 + 4;

#[test]
fn an_index_of_an_older_layout_asks_for_reindex() {
    support::require_vdb();
    let cluster = Cluster::start("oldlayout", &["vhnsw.merge_naptime = '1h'"]);
    let mut c = cluster.connect("postgres");
    c.batch_execute(
        "CREATE EXTENSION vdb;
         CREATE TABLE d (id int, v vector(4));
         INSERT INTO d SELECT i, ARRAY[random(), random(), random(), random()] FROM generate_series(1, 300) i;
         CREATE INDEX d_idx ON d USING vhnsw (v vector_l2_ops);
         CHECKPOINT;",
    )
    .expect("setup");
    let file: String = support::one(&mut c, "SELECT pg_relation_filepath('d_idx')");
    drop(c);
    cluster.stop();
    // Layout 2 (before codes in level-0 lists).
    patch(&cluster, &file, VERSION_AT, 4, |b| {
        b.copy_from_slice(&2u32.to_ne_bytes())
    });
    cluster.pg_ctl_start();
    let mut c = index_scans(&cluster);
    for query in [
        "SELECT id FROM d ORDER BY v <-> '[1,1,1,1]' LIMIT 3",
        "INSERT INTO d VALUES (0, '[1,2,3,4]')",
    ] {
        let err = c
            .query(query, &[])
            .expect_err("an old layout must be refused");
        let db = err.as_db_error().unwrap_or_else(|| panic!("{err}"));
        assert_eq!(
            db.code(),
            &postgres::error::SqlState::OBJECT_NOT_IN_PREREQUISITE_STATE,
            "{}",
            db.message()
        );
        assert!(
            db.message().contains("layout version 2"),
            "{}",
            db.message()
        );
        assert!(
            db.detail().is_some_and(|d| d.contains("REINDEX")),
            "{:?}",
            db.detail()
        );
    }
    c.batch_execute("REINDEX INDEX d_idx").expect("reindex");
    let rows = c
        .query("SELECT id FROM d ORDER BY v <-> '[1,1,1,1]' LIMIT 3", &[])
        .expect("query after REINDEX");
    assert_eq!(rows.len(), 3);
}

#[test]
fn a_stale_code_is_reported_by_the_check() {
    support::require_vdb();
    let cluster = Cluster::start("stalecode", &["vhnsw.merge_naptime = '1h'"]);
    let mut c = cluster.connect("postgres");
    c.batch_execute(
        "CREATE EXTENSION vdb;
         CREATE TABLE d (id int, v vector(48));
         INSERT INTO d SELECT i, ARRAY(SELECT random() + i * 0 FROM generate_series(1, 48)) FROM generate_series(1, 500) i;
         CREATE INDEX d_idx ON d USING vhnsw (v vector_l2_ops);
         CHECKPOINT;",
    )
    .expect("setup");
    assert_eq!(
        support::one::<String>(&mut c, "SELECT vhnsw_check('d_idx')"),
        ""
    );
    let file: String = support::one(&mut c, "SELECT pg_relation_filepath('d_idx')");
    drop(c);
    cluster.stop();
    // Node 0's slot opens block 1 (no duplicate rows, so no overflow
    // pages before the node region): page header 24 B, slot header 32 B,
    // 2·16 neighbour ids, then the first neighbour's code.
    patch(&cluster, &file, BLCKSZ + 24 + 32 + 8 * 16, 1, |b| {
        b[0] = !b[0]
    });
    cluster.pg_ctl_start();
    let mut c = cluster.connect("postgres");
    let problems: String = support::one(&mut c, "SELECT vhnsw_check('d_idx')");
    assert!(
        problems.contains("node 0 has a stale code for its neighbour"),
        "{problems}"
    );
}

/// What one damaged block did to the statements run against it.
#[derive(Default)]
struct Outcome {
    ok: usize,
    corrupt: usize,
    /// Errors that are not a report of damage: panics, reads of blocks
    /// past the end, anything without XX002 and the index's name.
    wrong: Vec<String>,
}

/// Damaging one block of an index (its page header left intact, as a
/// torn or flipped write past it would) is reported as nbtree reports
/// it: `ERRCODE_INDEX_CORRUPTED`, naming the index and the block, with a
/// hint to REINDEX; never a crash, a Rust panic, or a read of a block the
/// index does not have. Each round restores the index file, damages one
/// block three ways (the whole body random, a run of random bytes, one
/// random 32-bit word), and scans, inserts, merges, vacuums and checks.
#[test]
fn damaged_blocks_are_reported_as_corruption() {
    support::require_vdb();
    let cluster = Cluster::start(
        "damaged",
        &["vhnsw.merge_naptime = '1h'", "autovacuum = off"],
    );
    let mut c = cluster.connect("postgres");
    // Duplicates (an overflow page), two levels and more, codes in the
    // lists (64 dims), then a pending list of three pages.
    c.batch_execute(
        "CREATE EXTENSION vdb;
         CREATE TABLE d (id int, v vector(64));
         INSERT INTO d SELECT i, array_fill(1, '{64}')::vector FROM generate_series(1, 5) i;
         INSERT INTO d SELECT i, ARRAY(SELECT random() + i * 0 FROM generate_series(1, 64)) FROM generate_series(6, 2000) i;
         CREATE INDEX d_idx ON d USING vhnsw (v vector_l2_ops);
         INSERT INTO d SELECT i, ARRAY(SELECT random() + i * 0 FROM generate_series(1, 64)) FROM generate_series(2001, 2200) i;
         CHECKPOINT;",
    )
    .expect("setup");
    assert_eq!(
        support::one::<String>(&mut c, "SELECT vhnsw_check('d_idx')"),
        ""
    );
    let file: String = support::one(&mut c, "SELECT pg_relation_filepath('d_idx')");
    drop(c);
    cluster.stop();
    let path = cluster.data().join(&file);
    let pristine = std::fs::read(&path).expect("index file");
    let blocks = pristine.len() as u64 / BLCKSZ;
    let statements = [
        "SET enable_seqscan = off; SELECT id FROM d ORDER BY v <-> array_fill(1, '{64}')::vector LIMIT 10",
        "SET enable_seqscan = off; SELECT id FROM d ORDER BY v <-> array_fill(0.5, '{64}')::vector LIMIT 50",
        "SELECT vhnsw_stats('d_idx')::text",
        "SELECT vhnsw_check('d_idx')",
        "BEGIN; INSERT INTO d SELECT i, ARRAY(SELECT random() + i * 0 FROM generate_series(1, 64)) FROM generate_series(1, 30) i; SELECT vhnsw_merge('d_idx'); ROLLBACK",
        "VACUUM d",
    ];
    let mut seed = 0x5eed_u64;
    let mut next = move || {
        seed = seed.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = seed;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    };
    let rounds: u64 = std::env::var("VDB_DAMAGE_ROUNDS")
        .ok()
        .and_then(|r| r.parse().ok())
        .unwrap_or(60);
    let mut total = Outcome::default();
    for round in 0..rounds {
        let block = next() % blocks;
        let mut bytes = pristine.clone();
        let page = &mut bytes[(block * BLCKSZ) as usize..((block + 1) * BLCKSZ) as usize];
        const HEADER: usize = 24;
        let how = match round % 3 {
            0 => {
                for b in &mut page[HEADER..] {
                    *b = next() as u8;
                }
                "body"
            }
            1 => {
                let at = HEADER + (next() as usize) % (BLCKSZ as usize - HEADER - 64);
                for b in &mut page[at..at + 64] {
                    *b = next() as u8;
                }
                "run"
            }
            _ => {
                let at = HEADER + 4 * ((next() as usize) % ((BLCKSZ as usize - HEADER) / 4));
                page[at..at + 4].copy_from_slice(&(next() as u32).to_ne_bytes());
                "word"
            }
        };
        std::fs::write(&path, &bytes).expect("damage");
        cluster.pg_ctl_start();
        for sql in statements {
            let mut c = cluster.connect("postgres");
            c.batch_execute("SET statement_timeout = '60s'")
                .expect("timeout");
            match c.batch_execute(sql) {
                Ok(()) => total.ok += 1,
                Err(e) => match e.as_db_error() {
                    Some(db)
                        if db.code() == &postgres::error::SqlState::INDEX_CORRUPTED
                            && db.message().contains("\"d_idx\"")
                            && db.message().contains("block ")
                            && db.hint().is_some_and(|h| h.contains("REINDEX")) =>
                    {
                        total.corrupt += 1
                    }
                    Some(db) => total.wrong.push(format!(
                        "block {block} ({how}): {sql}: {} {} (hint {:?})",
                        db.code().code(),
                        db.message(),
                        db.hint()
                    )),
                    None => total
                        .wrong
                        .push(format!("block {block} ({how}): {sql}: {e}")),
                },
            }
        }
        // The server survived: a new connection still works.
        let mut c = cluster.connect("postgres");
        assert_eq!(support::one::<i32>(&mut c, "SELECT 1"), 1);
        drop(c);
        cluster.stop();
        assert!(
            !cluster.log().contains("terminated by signal"),
            "block {block} ({how}) crashed the server:\n{}",
            cluster.log()
        );
    }
    eprintln!(
        "{rounds} damaged blocks: {} statements ran, {} reported corruption",
        total.ok, total.corrupt
    );
    assert!(total.wrong.is_empty(), "{}", total.wrong.join("\n"));
}
