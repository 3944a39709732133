//! Shards on other servers: a coordinator whose partitions are
//! postgres_fdw foreign tables on three more PostgreSQL servers, each with
//! vdb and its own vhnsw index. Distance operators ship to the shards
//! (server option `extensions 'vdb'`), the top k across shards is the
//! single-server answer, inserts through the parent land on their shard
//! and are found at once, the search hint sets the shards' ef_search, and
//! a shard that is down is an error, never a short answer.

mod support;

use support::{explain, one, recall, Cluster};

const DIMS: usize = 12;
const ROWS: i32 = 9_000;
const SHARDS: usize = 3;

/// Clustered rows `from..=to` as a SELECT (id, v), the same on every server.
fn rows_sql(from: i32, to: i32) -> String {
    format!(
        "SELECT i AS id, (SELECT array_agg((hashint4((hashint4(i) & 15) * 31 + d) % 1000) / 500.0
                                           + 0.5 * (hashint4(i * 97 + d) % 1000) / 1000.0 ORDER BY d)
                            FROM generate_series(1, {DIMS}) d)::vector({DIMS}) AS v
           FROM generate_series({from}, {to}) i"
    )
}

fn queries_sql() -> String {
    format!(
        "SELECT i AS id, (SELECT array_agg((hashint4(((i * 7) & 15) * 31 + d) % 1000) / 500.0
                                           + 0.5 * (hashint4(i * 89 + d) % 1000) / 1000.0 ORDER BY d)
                            FROM generate_series(1, {DIMS}) d)::vector({DIMS}) AS v
           FROM generate_series(1, 30) i"
    )
}

fn answers(client: &mut postgres::Client, table: &str, filter: &str) -> Vec<Vec<i32>> {
    client
        .query(
            &format!(
                "SELECT array(SELECT t.id FROM {table} t {filter} ORDER BY t.v <=> q.v LIMIT 10) FROM q ORDER BY q.id"
            ),
            &[],
        )
        .expect("knn")
        .iter()
        .map(|r| r.get(0))
        .collect()
}

#[test]
fn shards_on_other_servers_answer_as_one() {
    support::require_vdb();
    let coordinator = Cluster::start("coordinator", &[]);
    let shards: Vec<Cluster> = (0..SHARDS)
        .map(|i| {
            Cluster::start(
                &format!("shard{i}"),
                &["vhnsw.merge_naptime = '1h'", "autovacuum = off"],
            )
        })
        .collect();

    // Each shard: its third of the rows (the coordinator's hash routing,
    // computed with a hash-partitioned `parent` of the same key type), half
    // indexed by the build and half through the write path (left pending).
    for (i, shard) in shards.iter().enumerate() {
        let mut s = shard.connect("postgres");
        let mine = format!("satisfies_hash_partition('parent'::regclass, {SHARDS}, {i}, id)");
        s.batch_execute(&format!(
            "CREATE EXTENSION vdb;
             CREATE TABLE parent (id int PRIMARY KEY, v vector({DIMS})) PARTITION BY HASH (id);
             CREATE TABLE items (id int PRIMARY KEY, v vector({DIMS}));
             INSERT INTO items SELECT * FROM ({rows}) r WHERE {mine} AND id <= {half};
             CREATE INDEX items_v_idx ON items USING vhnsw (v vector_cosine_ops);
             INSERT INTO items SELECT * FROM ({rows}) r WHERE {mine} AND id > {half};
             ANALYZE items;",
            rows = rows_sql(1, ROWS),
            half = ROWS / 2,
        ))
        .expect("shard");
        let pending: i64 = one(
            &mut s,
            "SELECT (vhnsw_stats('items_v_idx')->>'pending')::bigint",
        );
        assert!(pending > 0);
    }

    let mut c = coordinator.connect("postgres");
    c.batch_execute(&format!(
        "CREATE EXTENSION vdb; CREATE EXTENSION postgres_fdw;
         CREATE TABLE q AS {queries};
         CREATE TABLE flat AS {rows};
         CREATE INDEX ON flat USING vhnsw (v vector_cosine_ops);
         ANALYZE flat;
         CREATE TABLE items (id int NOT NULL, v vector({DIMS})) PARTITION BY HASH (id);",
        queries = queries_sql(),
        rows = rows_sql(1, ROWS),
    ))
    .expect("coordinator");
    for (i, shard) in shards.iter().enumerate() {
        c.batch_execute(&format!(
            "CREATE SERVER shard{i} FOREIGN DATA WRAPPER postgres_fdw
               OPTIONS (host '127.0.0.1', port '{port}', dbname 'postgres', extensions 'vdb', async_capable 'true', fetch_size '10');
             CREATE USER MAPPING FOR CURRENT_USER SERVER shard{i} OPTIONS (user 'postgres');
             CREATE FOREIGN TABLE items_{i} PARTITION OF items FOR VALUES WITH (MODULUS {SHARDS}, REMAINDER {i})
               SERVER shard{i} OPTIONS (table_name 'items');",
            port = shard.port
        ))
        .expect("foreign partition");
    }
    c.batch_execute("ANALYZE items").expect("analyze");

    // The distance ORDER BY runs on every shard.
    let q1 = "SELECT id FROM items ORDER BY v <=> (SELECT v FROM q WHERE id = 1) LIMIT 10";
    let plan = explain(&mut c, "VERBOSE, COSTS OFF", q1);
    eprintln!("{plan}");
    assert_eq!(
        plan.matches("ORDER BY (v OPERATOR(public.<=>) $1::")
            .count(),
        SHARDS,
        "{plan}"
    );
    assert!(plan.contains("Merge Append"), "{plan}");

    // The fan-out query ships ORDER BY ... LIMIT to every shard, and the
    // shards run at the same time (async Append).
    let sql: String = one(&mut c, "SELECT vhnsw_search_sql('items', 'v', 10, 80)");
    let query: String = one(&mut c, "SELECT v::text FROM q WHERE id = 1");
    c.batch_execute(&format!(
        "SET plan_cache_mode = force_generic_plan; PREPARE fanout(vector) AS {sql}"
    ))
    .expect("prepare");
    let fanout = explain(
        &mut c,
        "VERBOSE, COSTS OFF",
        &format!("EXECUTE fanout('{query}')"),
    );
    eprintln!("{fanout}");
    for shipped in [
        "ORDER BY (v OPERATOR(public.<=>) $1::",
        "ASC NULLS LAST LIMIT 10::bigint",
        "WHERE ((v OPERATOR(public.<^>) 80))",
        "Async Foreign Scan",
    ] {
        assert_eq!(
            fanout.matches(shipped).count(),
            SHARDS,
            "{shipped}:\n{fanout}"
        );
    }
    c.batch_execute("RESET plan_cache_mode").expect("reset");

    // The top 10 across shards is the single server's, checked by exact
    // distance: both exact scans, and the indexes at a high ef_search.
    c.batch_execute("SET enable_indexscan = off")
        .expect("exact");
    let truth = answers(&mut c, "flat", "");
    c.batch_execute("RESET enable_indexscan").expect("reset");
    let sharded = answers(&mut c, "items", "WHERE t.v <^> 400");
    assert!(
        recall(&sharded, &truth) >= 0.99,
        "recall {}",
        recall(&sharded, &truth)
    );
    let helper: Vec<Vec<i32>> = c
        .query(
            "SELECT array(SELECT id FROM vhnsw_search(NULL::items, 'v', q.v, 10, 400)) FROM q ORDER BY q.id",
            &[],
        )
        .expect("helper")
        .iter()
        .map(|r| r.get(0))
        .collect();
    assert_eq!(helper, sharded);

    // One foreign table on its own: one query, shipped whole.
    let lone_sql: String = one(&mut c, "SELECT vhnsw_search_sql('items_0', 'v', 10, 400)");
    assert!(!lone_sql.contains("UNION ALL"), "{lone_sql}");
    let lone: Vec<Vec<i32>> = c
        .query(
            "SELECT array(SELECT id FROM vhnsw_search(NULL::items_0, 'v', q.v, 10, 400)) FROM q ORDER BY q.id",
            &[],
        )
        .expect("helper on a foreign table")
        .iter()
        .map(|r| r.get(0))
        .collect();
    assert_eq!(lone, answers(&mut c, "items_0", "WHERE t.v <^> 400"));

    // ef_search travels with the hint: a tiny one costs recall on the
    // shards, as it does on one server.
    let low = recall(&answers(&mut c, "items", "WHERE t.v <^> 1"), &truth);
    let high = recall(&answers(&mut c, "items", "WHERE t.v <^> 200"), &truth);
    eprintln!("sharded recall: {low:.3} at ef 1, {high:.3} at ef 200");
    assert!(low < high, "{low} vs {high}");

    // Inserts through the parent land on their shard and are found at once.
    c.batch_execute(&format!(
        "INSERT INTO items SELECT id + 100000, v FROM ({rows}) r",
        rows = rows_sql(1, 30)
    ))
    .expect("insert through the parent");
    for (i, shard) in shards.iter().enumerate() {
        let mut s = shard.connect("postgres");
        let landed: i64 = one(&mut s, "SELECT count(*) FROM items WHERE id > 100000");
        assert!(landed > 0, "shard {i} got none of the new rows");
        let misplaced: i64 = one(
            &mut s,
            &format!(
                "SELECT count(*) FROM items WHERE NOT satisfies_hash_partition('parent'::regclass, {SHARDS}, {i}, id)"
            ),
        );
        assert_eq!(misplaced, 0, "shard {i} holds only its own rows");
        assert_eq!(
            one::<String>(&mut s, "SELECT vhnsw_check('items_v_idx')"),
            "",
            "shard {i}"
        );
    }
    // A new row has the same vector as row id - 100000: both are the two
    // nearest to it.
    let found: i64 = one(
        &mut c,
        "SELECT count(*) FROM generate_series(1, 30) i
          WHERE i + 100000 IN (SELECT id FROM items WHERE v <^> 200 ORDER BY v <=> (SELECT v FROM flat WHERE id = i) LIMIT 2)",
    );
    assert_eq!(found, 30, "every new row is found by the next query");

    // A shard that is down: an error naming the connection, not fewer rows.
    shards[1].stop();
    let err = c
        .query(q1, &[])
        .expect_err("a query over a stopped shard must fail");
    let message = err
        .as_db_error()
        .map(|e| e.message().to_string())
        .unwrap_or_else(|| err.to_string());
    assert!(
        message.contains("could not connect") || message.contains("connection"),
        "{message}"
    );
}
