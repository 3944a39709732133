//! vdb under Citus: a coordinator and two workers started by the test,
//! Citus and vdb on each. A distributed table gets a vhnsw index on every
//! shard; `ORDER BY ... LIMIT` is pushed down to every shard and matches
//! an exact search over all rows; rows inserted through the coordinator are
//! found by the next query; DELETE + VACUUM; `vhnsw_search`,
//! `vhnsw_stats`, `vhnsw_check` and `vhnsw_merge` act on every shard
//! placement, never on the coordinator's empty shell; and which ways of
//! setting ef_search reach the shards.
//!
//! Citus is not in Debian's packages: where it is not installed into the
//! PostgreSQL under test, the test says `skipped: Citus not installed` and
//! passes.

mod support;

use std::io::Write;
use support::{explain, one, recall, Cluster};

const DIMS: usize = 12;
const ROWS: i32 = 20_000;
const SHARDS: i64 = 4;

/// A line in the test output whether or not the harness captures it
/// (it captures `println!`, not writes to the stream itself).
fn say(line: &str) {
    let _ = writeln!(std::io::stderr(), "{line}");
}

/// Clustered rows `from..=to` as a SELECT (id, v).
fn rows_sql(from: i32, to: i32) -> String {
    format!(
        "SELECT i AS id, (SELECT array_agg((hashint4((hashint4(i) & 15) * 31 + d) % 1000) / 500.0
                                           + 0.5 * (hashint4(i * 97 + d) % 1000) / 1000.0 ORDER BY d)
                            FROM generate_series(1, {DIMS}) d)::vector({DIMS}) AS v
           FROM generate_series({from}, {to}) i"
    )
}

fn query_vectors(client: &mut postgres::Client) -> Vec<String> {
    client
        .query(
            &format!(
                "SELECT (SELECT array_agg((hashint4(((i * 7) & 15) * 31 + d) % 1000) / 500.0
                                          + 0.5 * (hashint4(i * 89 + d) % 1000) / 1000.0 ORDER BY d)
                           FROM generate_series(1, {DIMS}) d)::vector({DIMS})::text
                 FROM generate_series(1, 30) i ORDER BY i"
            ),
            &[],
        )
        .expect("query vectors")
        .iter()
        .map(|r| r.get(0))
        .collect()
}

/// The ids `sql` returns for each query vector (`$q` in `sql`).
fn answers(client: &mut postgres::Client, sql: &str, queries: &[String]) -> Vec<Vec<i32>> {
    queries
        .iter()
        .map(|q| {
            client
                .query(&sql.replace("$q", &format!("'{q}'::vector")), &[])
                .unwrap_or_else(|e| panic!("{sql}: {e}"))
                .iter()
                .map(|r| r.get(0))
                .collect()
        })
        .collect()
}

/// Runs statements one at a time: Citus forwards some statements' text to
/// the workers, and refuses text that holds more than one.
fn exec(client: &mut postgres::Client, statements: &str) {
    for statement in statements
        .split(";\n")
        .map(str::trim)
        .filter(|s| !s.is_empty())
    {
        client
            .batch_execute(statement)
            .unwrap_or_else(|e| panic!("{statement}: {e}"));
    }
}

fn citus_node(name: &str) -> Cluster {
    Cluster::start(
        name,
        &[
            "shared_preload_libraries = 'citus'",
            "max_prepared_transactions = 100",
            "vhnsw.merge_naptime = '1h'",
            "autovacuum = off",
            "jit = off",
        ],
    )
}

#[test]
fn citus_distributed_tables_are_searched_and_maintained_on_every_shard() {
    support::require_vdb();
    if !std::path::Path::new("/usr/share/postgresql/15/extension/citus.control").exists() {
        say("skipped: Citus not installed (tests/citus.rs needs it in the PostgreSQL 15 under test)");
        return;
    }
    let coordinator = citus_node("citus-coordinator");
    let workers = [citus_node("citus-worker1"), citus_node("citus-worker2")];
    for w in &workers {
        w.connect("postgres")
            .batch_execute("CREATE EXTENSION citus")
            .expect("citus on a worker");
    }
    let mut c = coordinator.connect("postgres");
    exec(
        &mut c,
        &format!(
            "CREATE EXTENSION citus;
             SELECT citus_set_coordinator_host('127.0.0.1', {});
             SELECT citus_add_node('127.0.0.1', {});
             SELECT citus_add_node('127.0.0.1', {});
             CREATE EXTENSION vdb;",
            coordinator.port, workers[0].port, workers[1].port
        ),
    );
    // CREATE EXTENSION reaches the workers.
    for w in &workers {
        let mut wc = w.connect("postgres");
        let has: i64 = one(
            &mut wc,
            "SELECT count(*) FROM pg_extension WHERE extname = 'vdb'",
        );
        assert_eq!(has, 1, "vdb on the worker");
    }

    exec(
        &mut c,
        &format!(
            "CREATE TABLE flat AS {rows};
             SET citus.shard_count = {SHARDS};
             CREATE TABLE items (id int PRIMARY KEY, v vector({DIMS}));
             SELECT create_distributed_table('items', 'id');
             INSERT INTO items SELECT * FROM flat;
             CREATE INDEX items_v_idx ON items USING vhnsw (v vector_cosine_ops);
             ANALYZE items;",
            rows = rows_sql(1, ROWS)
        ),
    );
    let queries = query_vectors(&mut c);
    let exact = "SELECT id FROM flat ORDER BY v <=> $q LIMIT 10";
    exec(
        &mut c,
        "SET enable_indexscan = off;\nSET enable_bitmapscan = off",
    );
    let truth = answers(&mut c, exact, &queries);
    exec(&mut c, "RESET enable_indexscan;\nRESET enable_bitmapscan");

    // An index on every shard: its stats come from every shard, not from
    // the coordinator's empty shell.
    let stats = |c: &mut postgres::Client, index: &str, key: &str| -> i64 {
        one(
            c,
            &format!("SELECT (vhnsw_stats('{index}') ->> '{key}')::numeric::bigint"),
        )
    };
    assert_eq!(stats(&mut c, "items_v_idx", "nodes"), i64::from(ROWS));
    let shard_stats: i64 = one(
        &mut c,
        "SELECT jsonb_array_length(vhnsw_stats('items_v_idx') -> 'shards')::bigint",
    );
    assert_eq!(shard_stats, SHARDS);
    let shell: i64 = one(
        &mut c,
        "SELECT (vhnsw_stats_text('items_v_idx')::jsonb ->> 'nodes')::bigint",
    );
    assert_eq!(shell, 0, "the coordinator's own copy is empty");
    assert_eq!(
        one::<String>(&mut c, "SELECT vhnsw_check('items_v_idx')"),
        ""
    );

    // ORDER BY ... LIMIT is pushed down to every shard's index.
    let q0 = &queries[0];
    let plan = explain(
        &mut c,
        "VERBOSE, COSTS OFF",
        &format!("SELECT id FROM items ORDER BY v <=> '{q0}' LIMIT 10"),
    );
    for part in [
        "Custom Scan (Citus Adaptive)",
        &format!("Task Count: {SHARDS}"),
        "Limit",
        "Index Scan using items_v_idx_",
    ] {
        assert!(plan.contains(part), "{part}:\n{plan}");
    }

    // The top 10 over all shards against the exact top 10 over all rows.
    let hinted = answers(
        &mut c,
        "SELECT id FROM items WHERE v <^> 400 ORDER BY v <=> $q LIMIT 10",
        &queries,
    );
    let hinted_recall = recall(&hinted, &truth);
    assert!(hinted_recall >= 0.99, "recall {hinted_recall}");
    // vhnsw_search: the same query, with the hint in its text.
    let sql: String = one(&mut c, "SELECT vhnsw_search_sql('items', 'v', 10, 400)");
    assert!(!sql.contains("UNION ALL"), "{sql}");
    let helper = answers(
        &mut c,
        "SELECT id FROM vhnsw_search(NULL::items, 'v', $q, 10, 400)",
        &queries,
    );
    assert_eq!(helper, hinted);

    // ef_search: the index's own value reaches the shards (Citus carries
    // ALTER INDEX to the shard indexes); a coordinator's SET does not; a
    // SET LOCAL that Citus is told to propagate does, and wins.
    c.batch_execute("ALTER INDEX items_v_idx SET (ef_search = 1)")
        .expect("alter index");
    let plain = "SELECT id FROM items ORDER BY v <=> $q LIMIT 10";
    let low = answers(&mut c, plain, &queries);
    c.batch_execute("ALTER INDEX items_v_idx SET (ef_search = 400)")
        .expect("alter index");
    let high = answers(&mut c, plain, &queries);
    let (low_recall, high_recall) = (recall(&low, &truth), recall(&high, &truth));
    say(&format!(
        "citus: recall@10 {low_recall:.3} with the index's ef_search 1, {high_recall:.3} with 400, {hinted_recall:.3} with the hint <^> 400"
    ));
    assert!(high_recall >= 0.99, "recall {high_recall}");
    assert!(low_recall < high_recall, "{low_recall} vs {high_recall}");
    c.batch_execute("ALTER INDEX items_v_idx SET (ef_search = 1)")
        .expect("alter index");
    c.batch_execute("SET vhnsw.ef_search = 400").expect("set");
    assert_eq!(
        answers(&mut c, plain, &queries),
        low,
        "a session SET stays on the coordinator"
    );
    c.batch_execute("RESET vhnsw.ef_search").expect("reset");
    let local: Vec<Vec<i32>> = queries
        .iter()
        .map(|q| {
            let mut t = c.transaction().expect("begin");
            t.batch_execute("SET LOCAL citus.propagate_set_commands = 'local'")
                .expect("set local");
            t.batch_execute("SET LOCAL vhnsw.ef_search = 400")
                .expect("set local");
            let ids = t
                .query(&plain.replace("$q", &format!("'{q}'::vector")), &[])
                .expect("query")
                .iter()
                .map(|r| r.get(0))
                .collect();
            t.commit().expect("commit");
            ids
        })
        .collect();
    assert_eq!(local, high, "SET LOCAL, propagated, reaches the shards");
    c.batch_execute("ALTER INDEX items_v_idx RESET (ef_search)")
        .expect("alter index");

    // Rows inserted through the coordinator: in the shards' pending lists,
    // found by the next query, merged on every shard by vhnsw_merge.
    c.batch_execute(&format!(
        "INSERT INTO items SELECT 100000 + i, v FROM ({queries}) q",
        queries = queries
            .iter()
            .enumerate()
            .map(|(i, q)| format!("SELECT {i} AS i, '{q}'::vector AS v"))
            .collect::<Vec<_>>()
            .join(" UNION ALL ")
    ))
    .expect("insert through the coordinator");
    let nearest = answers(
        &mut c,
        "SELECT id FROM items ORDER BY v <=> $q LIMIT 1",
        &queries,
    );
    for (i, ids) in nearest.iter().enumerate() {
        assert_eq!(
            ids,
            &[100_000 + i as i32],
            "query {i} finds its own new row"
        );
    }
    assert_eq!(
        stats(&mut c, "items_v_idx", "pending"),
        queries.len() as i64
    );
    assert_eq!(
        one::<i64>(&mut c, "SELECT vhnsw_merge('items_v_idx')"),
        queries.len() as i64
    );
    assert_eq!(stats(&mut c, "items_v_idx", "pending"), 0);
    assert_eq!(
        stats(&mut c, "items_v_idx", "nodes"),
        i64::from(ROWS) + queries.len() as i64
    );

    // Shards are not asked to write from a read-only transaction.
    {
        let mut t = c.transaction().expect("begin");
        t.batch_execute("SET TRANSACTION READ ONLY")
            .expect("read only");
        let e = t
            .batch_execute("SELECT vhnsw_merge('items_v_idx')")
            .expect_err("a merge in a read-only transaction");
        assert_eq!(e.code().map(|c| c.code()), Some("25006"), "{e}");
    }

    // DELETE + VACUUM through the coordinator.
    exec(
        &mut c,
        "DELETE FROM items WHERE id >= 100000;\nVACUUM items",
    );
    let after = answers(
        &mut c,
        "SELECT id FROM items ORDER BY v <=> $q LIMIT 1",
        &queries,
    );
    assert!(after.iter().flatten().all(|&id| id < 100_000));
    assert_eq!(stats(&mut c, "items_v_idx", "nodes"), i64::from(ROWS));
    assert_eq!(
        one::<String>(&mut c, "SELECT vhnsw_check('items_v_idx')"),
        ""
    );

    // A shard index that misses a row is reported under its name and node.
    let mut w = workers[0].connect("postgres");
    // Citus hides shards from pg_class in a client's session on a worker.
    exec(&mut w, "SET citus.show_shards_for_app_name_prefixes = '*'");
    let shard_index: String = one(
        &mut w,
        "SELECT c.relname::text FROM pg_class c JOIN pg_index i ON i.indexrelid = c.oid
          WHERE c.relname LIKE 'items\\_v\\_idx\\_%' ORDER BY 1 LIMIT 1",
    );
    let shard_table: String = one(
        &mut w,
        &format!("SELECT indrelid::regclass::text FROM pg_index WHERE indexrelid = '{shard_index}'::regclass"),
    );
    exec(
        &mut w,
        &format!(
            "SET citus.enable_manual_changes_to_shards = on;
             UPDATE pg_index SET indisready = false WHERE indexrelid = '{shard_index}'::regclass;
             INSERT INTO {shard_table} VALUES (999999, '[1,2,3,4,5,6,7,8,9,10,11,12]');
             UPDATE pg_index SET indisready = true WHERE indexrelid = '{shard_index}'::regclass;"
        ),
    );
    let problems: String = one(&mut c, "SELECT vhnsw_check('items_v_idx')");
    let prefix = format!("public.{shard_index} on 127.0.0.1:{}: ", workers[0].port);
    assert!(!problems.is_empty());
    for line in problems.lines() {
        assert!(line.starts_with(&prefix), "{line}");
    }
    exec(
        &mut w,
        &format!(
            "SET citus.enable_manual_changes_to_shards = on;\nDELETE FROM {shard_table} WHERE id = 999999"
        ),
    );
    assert_eq!(
        one::<String>(&mut c, "SELECT vhnsw_check('items_v_idx')"),
        ""
    );

    // A reference table: a copy on every node, each with its own index
    // and pending list; rows merged count once.
    exec(
        &mut c,
        "CREATE TABLE refs (id int PRIMARY KEY, v vector(12));
         SELECT create_reference_table('refs');
         CREATE INDEX refs_v_idx ON refs USING vhnsw (v vector_cosine_ops);
         INSERT INTO refs SELECT id, v FROM flat WHERE id <= 500;",
    );
    let copies: i64 = one(
        &mut c,
        "SELECT count(*) FROM pg_dist_shard s JOIN pg_dist_shard_placement p USING (shardid)
          WHERE s.logicalrelid = 'refs'::regclass",
    );
    assert_eq!(copies, 3, "coordinator and both workers");
    assert_eq!(stats(&mut c, "refs_v_idx", "pending"), 500);
    assert_eq!(one::<i64>(&mut c, "SELECT vhnsw_merge('refs_v_idx')"), 500);
    assert_eq!(
        one::<String>(&mut c, "SELECT vhnsw_check('refs_v_idx')"),
        ""
    );
    assert_eq!(stats(&mut c, "refs_v_idx", "nodes"), 500);

    // A distributed partitioned table: the partitioned index's functions
    // go through every partition to every shard; vhnsw_search is one
    // query that Citus pushes down.
    exec(
        &mut c,
        &format!(
            "CREATE TABLE events (id int, part int, v vector({DIMS})) PARTITION BY RANGE (part);
             CREATE TABLE events_a PARTITION OF events FOR VALUES FROM (0) TO (2);
             CREATE TABLE events_b PARTITION OF events FOR VALUES FROM (2) TO (4);
             SELECT create_distributed_table('events', 'id');
             INSERT INTO events SELECT id, id % 4, v FROM flat;
             CREATE INDEX events_v_idx ON events USING vhnsw (v vector_cosine_ops);
             ANALYZE events;"
        ),
    );
    assert_eq!(stats(&mut c, "events_v_idx", "nodes"), i64::from(ROWS));
    let per_partition: String = one(
        &mut c,
        "SELECT string_agg(jsonb_array_length(p -> 'shards')::text, ',')
           FROM jsonb_array_elements(vhnsw_stats('events_v_idx') -> 'partitions') p",
    );
    assert_eq!(per_partition, format!("{SHARDS},{SHARDS}"));
    assert_eq!(
        one::<String>(&mut c, "SELECT vhnsw_check('events_v_idx')"),
        ""
    );
    let events = answers(
        &mut c,
        "SELECT id FROM vhnsw_search(NULL::events, 'v', $q, 10, 400)",
        &queries,
    );
    let events_recall = recall(&events, &truth);
    assert!(events_recall >= 0.99, "recall {events_recall}");
    say(&format!(
        "citus: ran with a coordinator and 2 workers, {SHARDS} shards; partitioned distributed table recall@10 {events_recall:.3}"
    ));
}
