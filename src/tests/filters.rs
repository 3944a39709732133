//! Composite vhnsw indexes: filter columns after the vector, their
//! conditions checked inside the index.

#[pgrx::pg_schema]
mod tests {
    use crate::tests::support::{clustered_table, ids, one, query_vectors, run, sql_error};
    use pgrx::prelude::*;

    /// `name(id, v vector(dims), ...)`: filter columns of every type, their
    /// values drawn from `id` (so the shares are known), some NULL.
    fn filter_table(name: &str, n: usize, dims: usize, seed: f64) {
        clustered_table(name, n, dims, 10, seed);
        run(&format!(
            "ALTER TABLE {name}
               ADD COLUMN t int4, ADD COLUMN s int2, ADD COLUMN g int8, ADD COLUMN f bool,
               ADD COLUMN name text, ADD COLUMN u uuid, ADD COLUMN labels int4[],
               ADD COLUMN big_labels int8[], ADD COLUMN tags text[]"
        ));
        run(&format!(
            "UPDATE {name} SET
               t = CASE WHEN id % 97 = 0 THEN NULL ELSE id % 10 END,
               s = (id % 7)::int2,
               g = id::int8 * 1000000000,
               f = id % 3 = 0,
               name = 'tenant-' || id % 5,
               u = md5((id % 4)::text)::uuid,
               labels = ARRAY[id % 6, id % 11 + 100],
               big_labels = ARRAY[(id % 6)::int8 * 10000000000],
               tags = ARRAY['l' || id % 6, 'm' || id % 4]"
        ));
        run(&format!("ANALYZE {name}"));
    }

    /// The ids of `WHERE cond ORDER BY v <-> q LIMIT k`, from the index
    /// (`index`) or a table scan, and whether the plan used the index
    /// with `cond` among its index conditions.
    fn answer(table: &str, cond: &str, q: &str, k: usize, index: bool) -> (Vec<i32>, bool) {
        answer_by(table, "<->", cond, q, k, index)
    }

    fn answer_by(
        table: &str,
        op: &str,
        cond: &str,
        q: &str,
        k: usize,
        index: bool,
    ) -> (Vec<i32>, bool) {
        let (i, s) = if index { ("on", "off") } else { ("off", "on") };
        run(&format!("SET LOCAL enable_indexscan = {i}"));
        run(&format!("SET LOCAL enable_seqscan = {s}"));
        run("SET LOCAL enable_bitmapscan = off");
        let query =
            format!("SELECT id FROM {table} WHERE {cond} ORDER BY v {op} $1::vector LIMIT {k}");
        let plan = one::<pgrx::datum::Json>(&format!(
            "EXPLAIN (FORMAT JSON) {}",
            query.replace("$1::vector", &format!("'{q}'::vector"))
        ))
        .0
        .to_string();
        let served = plan.contains("\"Index Scan\"") && plan.contains("\"Index Cond\"");
        let found = ids(&query, &[q.to_string()]);
        run("SET LOCAL enable_indexscan = on");
        run("SET LOCAL enable_seqscan = on");
        (found, served)
    }

    /// Checks each condition against a table scan (ordered by `op`): the
    /// index serves it (unless it starts with `heap:`: PostgreSQL keeps
    /// it a filter), returns as many rows as match (up to the LIMIT), only
    /// matching ones, and nearly the exact nearest.
    fn agree(table: &str, op: &str, conditions: &[&str]) {
        let queries = query_vectors(&format!("{table}_queries"), 8);
        for cond in conditions {
            let (cond, heap) = match cond.strip_prefix("heap:") {
                Some(c) => (c, true),
                None => (*cond, false),
            };
            let matching = one::<i64>(&format!("SELECT count(*) FROM {table} WHERE {cond}"));
            let (mut hits, mut total) = (0, 0);
            for q in &queries {
                let (exact, _) = answer_by(table, op, cond, q, 10, false);
                let (got, served) = answer_by(table, op, cond, q, 10, true);
                assert!(served || heap, "{cond}: not an index condition");
                assert_eq!(got.len() as i64, matching.min(10), "{cond}: rows returned");
                for id in &got {
                    assert!(
                        one::<bool>(&format!(
                            "SELECT coalesce(bool_and({cond}), false) FROM {table} WHERE id = {id}"
                        )),
                        "{cond}: row {id} does not match"
                    );
                }
                hits += got.iter().filter(|id| exact.contains(id)).count();
                total += exact.len();
            }
            let recall = if total == 0 {
                1.0
            } else {
                hits as f64 / total as f64
            };
            assert!(recall >= 0.9, "{cond}: recall {recall}");
        }
    }

    /// Every scalar type and operator, IN and ANY, several conditions at
    /// once, NULL values, and conditions matching nothing and everything,
    /// on a table small enough for exact passes and large enough for walks.
    #[pg_test]
    fn scalar_filters_agree_with_a_table_scan() {
        filter_table("ft", 6_000, 40, 0.31);
        run("CREATE INDEX ft_idx ON ft USING vhnsw (v vector_l2_ops, t, s, g, f, name, u)");
        run("SET LOCAL vhnsw.ef_search = 80");
        agree(
            "ft",
            "<->",
            &[
                "t = 3",
                "heap:t IN (1, 2)",
                "heap:t = ANY('{4,5}'::int4[])",
                "t <@ '{4,5}'",
                "t <@ ARRAY[4, 5, 11]",
                "t <@ '{}'",
                "s <@ '{1,2}'",
                "g <@ ARRAY[7000000000, 8000000000]",
                "t < 2",
                "t <= 1",
                "t > 8",
                "t >= 8",
                "t BETWEEN 2 AND 3",
                "s = 4",
                "s < 2::int8",
                "g = 7000000000",
                "g > 5000000000000 AND t = 1",
                "heap:f = true",
                "f <@ '{true}'",
                "f <@ '{false}' AND t = 2",
                "name = 'tenant-2'",
                "heap:name IN ('tenant-1', 'tenant-4')",
                "name <@ '{tenant-1,tenant-4}'",
                "u <@ ARRAY[md5('1')::uuid, md5('3')::uuid]",
                "u = md5('1')::uuid",
                "t = 3 AND name = 'tenant-3'",
                "t = 3 AND s = 3 AND f",
                "t = 11",
                "t < 100",
                "t = 3 AND t = 4",
                "heap:t = NULL::int4",
                "heap:t = ANY('{}'::int4[])",
                "id % 500 = 1 AND t >= 0",
            ],
        );
        assert_eq!(one::<String>("SELECT vhnsw_check('ft_idx')"), "", "check");
        // A distance range and a filter together: every row inside both.
        let q = &query_vectors("ft_queries", 1)[0];
        run("SET LOCAL enable_seqscan = off");
        let r = one::<f64>(&format!(
            "SELECT (v <-> '{q}') + 0 FROM ft WHERE t = 4 ORDER BY 1 OFFSET 29 LIMIT 1"
        ));
        let count = |index: &str| {
            run(&format!("SET LOCAL enable_indexscan = {index}"));
            one::<i64>(&format!(
                "SELECT count(*) FROM ft WHERE t = 4 AND v <<->> sphere('{q}', {r})"
            ))
        };
        let (with, without) = (count("on"), count("off"));
        run("SET LOCAL enable_indexscan = on");
        run("SET LOCAL enable_seqscan = on");
        assert_eq!(without, 30);
        assert!(
            (28..=30).contains(&with),
            "{with} of 30 rows in range and filter"
        );
        // A row whose filter value is NULL is found without a condition
        // on it, and by none on it.
        let own = one::<String>("SELECT v::text FROM ft WHERE id = 970");
        let (got, _) = answer("ft", "s = 4", &own, 1, true);
        assert_eq!(got, vec![970]);
        let (got, _) = answer("ft", "t >= 0", &own, 1, true);
        assert_ne!(got, vec![970]);
    }

    /// `&&` and `@>` on label arrays of every element type.
    #[pg_test]
    fn label_filters_agree_with_a_table_scan() {
        filter_table("fl", 5_000, 16, 0.32);
        run(
            "CREATE INDEX fl_idx ON fl USING vhnsw (v vector_cosine_ops, labels, big_labels, tags)",
        );
        run("SET LOCAL vhnsw.ef_search = 80");
        agree(
            "fl",
            "<=>",
            &[
                "labels && '{3}'",
                "labels && '{3, 104}'",
                "labels @> '{2, 102}'",
                "labels @> '{}'",
                "labels && '{}'",
                "big_labels && '{20000000000}'::int8[]",
                "tags @> '{l4}'",
                "tags && '{m1, l0}' AND labels && '{0}'",
            ],
        );
        assert_eq!(one::<String>("SELECT vhnsw_check('fl_idx')"), "");
    }

    /// Rows inserted after the build (pending list, then merged) carry
    /// their values; an update that changes a row's value is found by the
    /// new value only; identical vectors with different values stay apart.
    #[pg_test]
    fn inserts_and_updates_carry_filter_values() {
        filter_table("fu", 3_000, 16, 0.33);
        run("CREATE INDEX fu_idx ON fu USING vhnsw (v vector_l2_ops, t)");
        run("INSERT INTO fu (id, v, t) SELECT id + 10000, v, 42 FROM fu WHERE id <= 300");
        let q = &query_vectors("fu_queries", 1)[0];
        let (got, _) = answer("fu", "t = 42", q, 1_000, true);
        assert_eq!(got.len(), 300, "pending rows by their value");
        assert!(got.iter().all(|&id| id > 10_000));
        one::<i64>("SELECT vhnsw_merge('fu_idx')");
        let (got, _) = answer("fu", "t = 42", q, 1_000, true);
        assert_eq!(got.len(), 300, "merged rows by their value");
        // Identical vectors (the copies above) with different values are
        // separate nodes: each value finds its own rows.
        let (got, _) = answer("fu", "t = 1", q, 1_000, true);
        assert!(got.iter().all(|&id| id < 10_000));
        run("UPDATE fu SET t = 43 WHERE id BETWEEN 1 AND 100");
        let (got, _) = answer("fu", "t = 43", q, 1_000, true);
        assert_eq!(got.len(), 100);
        for old in 0..10 {
            let (got, _) = answer("fu", &format!("t = {old}"), q, 1_000, true);
            assert!(
                got.iter().all(|&id| id > 100),
                "an updated row returned by its old value {old}"
            );
        }
        one::<i64>("SELECT vhnsw_merge('fu_idx')");
        let (got, _) = answer("fu", "t = 43", q, 1_000, true);
        assert_eq!(got.len(), 100);
        assert_eq!(one::<String>("SELECT vhnsw_check('fu_idx')"), "");
    }

    /// Partial composite indexes and composite indexes on partitions.
    #[pg_test]
    fn partial_and_partitioned_composite_indexes() {
        filter_table("fp", 3_000, 16, 0.34);
        run("CREATE INDEX fp_idx ON fp USING vhnsw (v vector_l2_ops, t) WHERE f");
        run("SET LOCAL vhnsw.ef_search = 80");
        agree("fp", "<->", &["f AND t = 3", "f AND t < 5"]);
        run(
            "CREATE TABLE fpp (id int, v vector(16), t int4, part int) PARTITION BY LIST (part);
             CREATE TABLE fpp_0 PARTITION OF fpp FOR VALUES IN (0);
             CREATE TABLE fpp_1 PARTITION OF fpp FOR VALUES IN (1);
             INSERT INTO fpp SELECT id, v, t, id % 2 FROM fp;
             CREATE INDEX ON fpp USING vhnsw (v vector_l2_ops, t);
             ANALYZE fpp",
        );
        run("CREATE TABLE fpp_queries AS SELECT * FROM fp_queries");
        agree("fpp", "<->", &["t = 3", "t <@ '{2,4}' AND part = 1"]);
    }

    /// The planner serves a filter that keeps many rows from the composite
    /// index, and one that keeps a handful from a B-tree plus a sort.
    #[pg_test]
    fn the_planner_prices_filters_by_their_selectivity() {
        run("SELECT setseed(0.5)");
        run(
            "CREATE TABLE fc AS SELECT i AS id,
               (SELECT array_agg(random()) FROM generate_series(1, 16) d WHERE d > i * 0)::vector(16) AS v,
               i % 10 AS t, CASE WHEN i % 5000 = 0 THEN 1 ELSE i END AS h
             FROM generate_series(1, 30000) i;
             CREATE INDEX fc_t ON fc (t);
             CREATE INDEX fc_h ON fc (h);
             CREATE INDEX fc_v ON fc USING vhnsw (v vector_l2_ops, t, h);
             ANALYZE fc",
        );
        let plan = |cond: &str| {
            one::<pgrx::datum::Json>(&format!(
                "EXPLAIN (FORMAT JSON) SELECT id FROM fc WHERE {cond}
                 ORDER BY v <-> (SELECT v FROM fc WHERE id = 1) LIMIT 10"
            ))
            .0
            .to_string()
        };
        let many = plan("t = 3");
        assert!(
            many.contains("\"fc_v\"") && many.contains("\"Index Cond\""),
            "{many}"
        );
        let few = plan("h = 1");
        assert!(
            few.contains("\"fc_h\"") && few.contains("\"Sort\""),
            "{few}"
        );
        let none = plan("true");
        assert!(none.contains("\"fc_v\""), "{none}");
    }

    /// What a composite index refuses.
    #[pg_test]
    fn composite_index_errors() {
        run("CREATE TABLE fe (v vector(3), t int4, r real, w vector(3))");
        assert!(
            sql_error("CREATE INDEX ON fe USING vhnsw (t, v vector_l2_ops)").starts_with("0A000")
        );
        assert!(
            sql_error("CREATE INDEX ON fe USING vhnsw (v vector_l2_ops, r)").starts_with("42704")
        );
        assert!(
            sql_error("CREATE INDEX ON fe USING vhnsw (v vector_l2_ops, w vector_l2_ops)")
                .starts_with("0A000")
        );
    }
}
