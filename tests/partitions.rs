//! vhnsw on partitioned tables: one index per partition (present and
//! future), a Merge Append of per-partition index scans for `ORDER BY
//! ... LIMIT`, the same answers as one table with one index, and pruning
//! to one partition. Merges happen only where the test calls
//! `vhnsw_merge` (no worker, no autovacuum), so a partition filled after
//! its index was built is
//! answered from its pending list alone.

mod support;

use support::{explain, one, recall, Cluster};

const DIMS: usize = 16;
const QUERIES: i32 = 40;

/// Clustered rows `from..=to` of `table` (20 clusters, tenant = id % 4)
/// and, once per database, the query table `q`.
fn fill(client: &mut postgres::Client, table: &str, from: i32, to: i32) {
    client
        .batch_execute(&format!(
            "INSERT INTO {table} (id, tenant, v)
             SELECT i, i % 4, (SELECT array_agg(x[d] + 0.5 * (hashint4(i * 97 + d) % 1000) / 1000.0 ORDER BY d)
                               FROM generate_series(1, {DIMS}) d)::vector({DIMS})
               FROM generate_series({from}, {to}) i JOIN centres ON centres.c = hashint4(i) & 15"
        ))
        .expect("fill");
}

fn setup(client: &mut postgres::Client) {
    client
        .batch_execute(&format!(
            "CREATE EXTENSION vdb;
             CREATE TABLE centres AS SELECT c, ARRAY(SELECT (hashint4(c * 31 + d) % 1000) / 500.0 FROM generate_series(1, {DIMS}) d) AS x
               FROM generate_series(0, 15) c;
             CREATE TABLE q AS SELECT i AS id, (SELECT array_agg(x[d] + 0.5 * (hashint4(i * 89 + d) % 1000) / 1000.0 ORDER BY d)
                               FROM generate_series(1, {DIMS}) d)::vector({DIMS}) AS v
               FROM generate_series(1, {QUERIES}) i JOIN centres ON centres.c = (i * 7) & 15;
             CREATE TABLE flat (id int PRIMARY KEY, tenant int NOT NULL, v vector({DIMS}));"
        ))
        .expect("setup");
    fill(client, "flat", 1, 24_000);
    client
        .batch_execute(
            "CREATE INDEX flat_v_idx ON flat USING vhnsw (v vector_cosine_ops); ANALYZE flat",
        )
        .expect("flat index");
}

/// The top 10 ids of every query against `table`, at `ef` (index scans
/// only, or exact with `exact`).
fn top10(client: &mut postgres::Client, table: &str, ef: i32, exact: bool) -> Vec<Vec<i32>> {
    let mut tx = client.transaction().expect("tx");
    tx.batch_execute(&format!(
        "SET LOCAL vhnsw.ef_search = {ef}; SET LOCAL enable_seqscan = {0}; SET LOCAL enable_indexscan = {1}",
        if exact { "on" } else { "off" },
        if exact { "off" } else { "on" },
    ))
    .expect("settings");
    let rows = tx
        .query(
            &format!("SELECT array(SELECT t.id FROM {table} t ORDER BY t.v <=> q.v LIMIT 10) FROM q ORDER BY q.id"),
            &[],
        )
        .expect("knn");
    rows.iter().map(|r| r.get(0)).collect()
}

/// Creates the partitioned table `name` holding the same rows as `flat`
/// (`layout`: the partition clause and the partitions), with its index
/// created on the parent; `late` names a partition created after the
/// index and filled afterwards, so that its rows are pending only.
fn partitioned(
    client: &mut postgres::Client,
    name: &str,
    layout: &str,
    partitions: &[&str],
    late: &str,
) {
    client
        .batch_execute(&format!(
            "CREATE TABLE {name} (id int NOT NULL, tenant int NOT NULL, v vector({DIMS})) {layout};"
        ))
        .expect("parent");
    for p in partitions {
        client.batch_execute(p).expect(p);
    }
    client
        .batch_execute(&format!(
            "INSERT INTO {name} SELECT * FROM flat WHERE NOT ({late});
             CREATE INDEX {name}_v_idx ON {name} USING vhnsw (v vector_cosine_ops);"
        ))
        .expect("index on the parent");
}

fn check_partitioned(client: &mut postgres::Client, name: &str, empty: &str, pending_only: &str) {
    // Every leaf has its own vhnsw index, attached to the parent's.
    let leaves: i64 = one(
        client,
        &format!("SELECT count(*) FROM pg_partition_tree('{name}') WHERE isleaf"),
    );
    let indexed: i64 = one(
        client,
        &format!(
            "SELECT count(*) FROM pg_partition_tree('{name}_v_idx') t JOIN pg_class c ON c.oid = t.relid
               JOIN pg_am a ON a.oid = c.relam WHERE t.isleaf AND a.amname = 'vhnsw'"
        ),
    );
    assert_eq!(indexed, leaves, "{name}: a vhnsw index on every partition");
    client
        .batch_execute(&format!("ANALYZE {name}"))
        .expect("analyze");
    let pending: i64 = one(
        client,
        &format!(
            "SELECT (vhnsw_stats(i.indexrelid)->>'pending')::bigint FROM pg_index i WHERE i.indrelid = '{pending_only}'::regclass"
        ),
    );
    let rows: i64 = one(client, &format!("SELECT count(*) FROM {pending_only}"));
    assert!(rows > 0);
    assert_eq!(
        pending, rows,
        "{pending_only} is answered from its pending list"
    );
    let empty_rows: i64 = one(client, &format!("SELECT count(*) FROM {empty}"));
    assert_eq!(empty_rows, 0);

    // A Merge Append of index scans: no sort of whole partitions.
    let q = format!("SELECT id FROM {name} ORDER BY v <=> (SELECT v FROM q WHERE id = 1) LIMIT 10");
    let plan = explain(client, "COSTS OFF", &q);
    assert!(plan.contains("Merge Append"), "{plan}");
    let scans = plan.matches("Index Scan using").count() as i64;
    assert!(
        scans >= leaves - 1,
        "an index scan per non-empty partition:\n{plan}"
    );
    let sorted_partitions = plan
        .lines()
        .filter(|l| l.contains(&format!("Seq Scan on {name}_")) && !l.contains(empty))
        .count();
    assert_eq!(sorted_partitions, 0, "no partition is read whole:\n{plan}");

    // The same answers as one table with one index, at no lower recall.
    let truth = top10(client, "flat", 40, true);
    assert_eq!(
        top10(client, name, 40, true),
        truth,
        "{name}: exact answers"
    );
    for ef in [10, 40] {
        let single = recall(&top10(client, "flat", ef, false), &truth);
        let parts = recall(&top10(client, name, ef, false), &truth);
        eprintln!("{name}: ef {ef}: recall {parts:.3} partitioned, {single:.3} one table");
        assert!(
            parts >= single - 0.01,
            "{name}: ef {ef}: {parts} < {single}"
        );
    }
    let high = recall(&top10(client, name, 400, false), &truth);
    assert!(high >= 0.99, "{name}: recall {high} at ef 400");

    // The search hint reaches every partition's scan.
    let hinted = explain(
        client,
        "COSTS OFF",
        &format!("SELECT id FROM {name} WHERE v <^> 200 ORDER BY v <=> (SELECT v FROM q WHERE id = 1) LIMIT 10"),
    );
    assert!(
        hinted.matches("Index Cond: (v <^> 200)").count() as i64 >= leaves - 1,
        "{hinted}"
    );
    for index in client
        .query(
            &format!(
                "SELECT relid::regclass::text FROM pg_partition_tree('{name}_v_idx') WHERE isleaf"
            ),
            &[],
        )
        .expect("indexes")
        .iter()
        .map(|r| r.get::<_, String>(0))
        .collect::<Vec<_>>()
    {
        let problems: String = one(client, &format!("SELECT vhnsw_check('{index}')"));
        assert_eq!(problems, "", "{index}");
    }
}

#[test]
fn partitioned_tables_search_every_partition() {
    support::require_vdb();
    let cluster = Cluster::start(
        "partitions",
        &["vhnsw.merge_naptime = '1h'", "autovacuum = off"],
    );
    let mut c = cluster.connect("postgres");
    setup(&mut c);

    // Hash on id; one partition added after the index.
    partitioned(
        &mut c,
        "by_hash",
        "PARTITION BY HASH (id)",
        &[
            "CREATE TABLE by_hash_0 PARTITION OF by_hash FOR VALUES WITH (MODULUS 4, REMAINDER 0)",
            "CREATE TABLE by_hash_1 PARTITION OF by_hash FOR VALUES WITH (MODULUS 4, REMAINDER 1)",
            "CREATE TABLE by_hash_2 PARTITION OF by_hash FOR VALUES WITH (MODULUS 4, REMAINDER 2)",
        ],
        "satisfies_hash_partition('by_hash'::regclass, 4, 3, id)",
    );
    c.batch_execute(
        "CREATE TABLE by_hash_3 PARTITION OF by_hash FOR VALUES WITH (MODULUS 4, REMAINDER 3);
         INSERT INTO by_hash SELECT * FROM flat WHERE satisfies_hash_partition('by_hash'::regclass, 4, 3, id);",
    )
    .expect("late hash partition");
    // A hash layout has no natural empty partition: check the late one.
    check_partitioned(&mut c, "by_hash", "by_hash_3 WHERE false", "by_hash_3");

    // List on tenant, with an empty partition and one attached later
    // (its index is built by ATTACH).
    partitioned(
        &mut c,
        "by_tenant",
        "PARTITION BY LIST (tenant)",
        &[
            "CREATE TABLE by_tenant_0 PARTITION OF by_tenant FOR VALUES IN (0)",
            "CREATE TABLE by_tenant_1 PARTITION OF by_tenant FOR VALUES IN (1)",
            "CREATE TABLE by_tenant_2 PARTITION OF by_tenant FOR VALUES IN (2)",
            "CREATE TABLE by_tenant_9 PARTITION OF by_tenant FOR VALUES IN (9)",
        ],
        "tenant = 3",
    );
    c.batch_execute(&format!(
        "CREATE TABLE by_tenant_3 (id int NOT NULL, tenant int NOT NULL, v vector({DIMS}));
         ALTER TABLE by_tenant ATTACH PARTITION by_tenant_3 FOR VALUES IN (3);
         INSERT INTO by_tenant SELECT * FROM flat WHERE tenant = 3;"
    ))
    .expect("attach");
    check_partitioned(&mut c, "by_tenant", "by_tenant_9", "by_tenant_3");
    // A tenant's query prunes to its partition: one index scan, no append.
    let plan = explain(
        &mut c,
        "COSTS OFF",
        "SELECT id FROM by_tenant WHERE tenant = 2 ORDER BY v <=> (SELECT v FROM q WHERE id = 1) LIMIT 10",
    );
    assert_eq!(
        plan.matches("Index Scan using by_tenant_2_v_idx").count(),
        1,
        "{plan}"
    );
    assert!(!plan.contains("Append"), "{plan}");
    let exact: Vec<i32> = one(
        &mut c,
        "SELECT array(SELECT id FROM flat WHERE tenant = 2 ORDER BY v <=> (SELECT v FROM q WHERE id = 1), id LIMIT 10)",
    );
    let found: Vec<i32> = one(
        &mut c,
        "SELECT array(SELECT id FROM by_tenant WHERE tenant = 2 AND v <^> 400 ORDER BY v <=> (SELECT v FROM q WHERE id = 1) LIMIT 10)",
    );
    assert_eq!(found, exact);

    // Range on id, with an empty partition; a detached partition keeps
    // its index and leaves the parent's answers.
    partitioned(
        &mut c,
        "by_range",
        "PARTITION BY RANGE (id)",
        &[
            "CREATE TABLE by_range_a PARTITION OF by_range FOR VALUES FROM (1) TO (8001)",
            "CREATE TABLE by_range_b PARTITION OF by_range FOR VALUES FROM (8001) TO (16001)",
            "CREATE TABLE by_range_c PARTITION OF by_range FOR VALUES FROM (16001) TO (24001)",
            "CREATE TABLE by_range_empty PARTITION OF by_range FOR VALUES FROM (24001) TO (32001)",
        ],
        "id > 16000",
    );
    c.batch_execute("INSERT INTO by_range SELECT * FROM flat WHERE id > 16000")
        .expect("late rows");
    check_partitioned(&mut c, "by_range", "by_range_empty", "by_range_c");
    c.batch_execute("ALTER TABLE by_range DETACH PARTITION by_range_a")
        .expect("detach");
    let kept: String = one(
        &mut c,
        "SELECT a.amname::text FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid JOIN pg_am a ON a.oid = c.relam
          WHERE i.indrelid = 'by_range_a'::regclass",
    );
    assert_eq!(kept, "vhnsw");
    let leaked: i64 = one(
        &mut c,
        "SELECT count(*) FROM q, LATERAL (SELECT id FROM by_range ORDER BY v <=> q.v LIMIT 10) r WHERE r.id <= 8000",
    );
    assert_eq!(
        leaked, 0,
        "a detached partition's rows are gone from the parent"
    );

    // The fan-out helper gives the same rows as the parent query.
    let via_parent: Vec<i32> = one(
        &mut c,
        "SELECT array(SELECT id FROM by_hash WHERE v <^> 400 ORDER BY v <=> (SELECT v FROM q WHERE id = 2) LIMIT 10)",
    );
    let via_helper: Vec<i32> = one(
        &mut c,
        "SELECT array(SELECT id FROM vhnsw_search(NULL::by_hash, 'v', (SELECT v FROM q WHERE id = 2), 10, 400))",
    );
    assert_eq!(via_helper, via_parent);
}
