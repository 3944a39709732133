//! The index's SQL functions on every shape of table a user can point
//! them at: `vhnsw_search` on plain, nested-partitioned and
//! not-yet-partitioned tables; `vhnsw_stats`, `vhnsw_check` and
//! `vhnsw_merge` on partitioned indexes; and an index's own `ef_search`
//! against the session's. (Foreign tables: tests/scale_out.rs; Citus:
//! tests/citus.rs.)

#[pgrx::pg_schema]
mod tests {
    use crate::tests::support::{ids, one, random_vector, run, sql_error};
    use pgrx::prelude::*;

    /// `n` rows with ids `from..from + n` and seeded 4-d vectors.
    fn fill(table: &str, from: i32, n: i32) {
        run(&format!(
            "INSERT INTO {table} (id, v)
             SELECT i, ARRAY[sin(i * 1.1), cos(i * 2.3), sin(i * 0.7 + 1), cos(i * 3.1 + 2)]::vector(4)
             FROM generate_series({from}, {} - 1) i",
            from + n
        ));
    }

    /// The exact top `k` of `table` for `query` (no index).
    fn exact(table: &str, query: &str, k: usize) -> Vec<i32> {
        run("SET LOCAL enable_indexscan = off");
        run("SET LOCAL enable_bitmapscan = off");
        let got = ids(
            &format!("SELECT id FROM {table} ORDER BY v <-> $1::vector LIMIT {k}"),
            &[query.to_string()],
        );
        run("RESET enable_indexscan");
        run("RESET enable_bitmapscan");
        got
    }

    fn searched(table: &str, query: &str, k: usize) -> Vec<i32> {
        ids(
            &format!(
                "SELECT id FROM vhnsw_search(NULL::{table}, 'v', $1::vector, {k}, 400, '<->')"
            ),
            &[query.to_string()],
        )
    }

    /// A table of two levels of partitions, one sub-partitioned table
    /// without partitions, and a vhnsw index on the parent.
    fn nested(name: &str) {
        run(&format!(
            "CREATE TABLE {name} (id int, v vector(4)) PARTITION BY RANGE (id);
             CREATE TABLE {name}_a PARTITION OF {name} FOR VALUES FROM (0) TO (300);
             CREATE TABLE {name}_b PARTITION OF {name} FOR VALUES FROM (300) TO (900) PARTITION BY RANGE (id);
             CREATE TABLE {name}_b1 PARTITION OF {name}_b FOR VALUES FROM (300) TO (600);
             CREATE TABLE {name}_b2 PARTITION OF {name}_b FOR VALUES FROM (600) TO (900);
             CREATE TABLE {name}_c PARTITION OF {name} FOR VALUES FROM (900) TO (1200) PARTITION BY RANGE (id);"
        ));
        fill(name, 0, 450);
        run(&format!(
            "CREATE INDEX {name}_idx ON {name} USING vhnsw (v vector_l2_ops)"
        ));
        // Rows after the build: in the pending lists, or merged.
        fill(name, 450, 400);
    }

    #[pg_test]
    fn vhnsw_search_answers_on_plain_empty_and_nested_tables() {
        let q = random_vector(4, 7);
        // Plain table, with and without an index.
        run("CREATE TABLE shape_plain (id int, v vector(4))");
        fill("shape_plain", 0, 500);
        assert_eq!(
            searched("shape_plain", &q, 10),
            exact("shape_plain", &q, 10)
        );
        run("CREATE INDEX ON shape_plain USING vhnsw (v vector_l2_ops)");
        assert_eq!(
            searched("shape_plain", &q, 10),
            exact("shape_plain", &q, 10)
        );
        let sql = one::<String>("SELECT vhnsw_search_sql('shape_plain', 'v', 10, 50, '<->')");
        assert!(
            !sql.contains("UNION ALL") && sql.contains("LIMIT 10"),
            "{sql}"
        );
        // The hint is in the query's text, so it reaches wherever it runs.
        assert!(sql.contains("<^>) 50"), "{sql}");

        // Partitioned, no partitions yet: no rows, no error.
        run("CREATE TABLE shape_empty (id int, v vector(4)) PARTITION BY RANGE (id)");
        assert!(searched("shape_empty", &q, 10).is_empty());
        run("CREATE INDEX ON shape_empty USING vhnsw (v vector_l2_ops)");
        assert!(searched("shape_empty", &q, 10).is_empty());

        // Two levels of partitions, one of them empty.
        nested("shape_nested");
        assert_eq!(
            searched("shape_nested", &q, 10),
            exact("shape_nested", &q, 10)
        );
        let sql = one::<String>("SELECT vhnsw_search_sql('shape_nested', 'v', 10)");
        assert_eq!(
            sql.matches("FROM ONLY").count(),
            3,
            "one branch per leaf: {sql}"
        );

        // A table that is not a table.
        assert!(
            sql_error("SELECT * FROM vhnsw_search(NULL::int, 'v', '[1,2,3,4]', 3)")
                .starts_with("22023 ")
        );
    }

    #[pg_test]
    fn maintenance_functions_act_on_every_partition() {
        nested("shape_parts");
        let leaves =
            one::<i64>("SELECT count(*) FROM pg_partition_tree('shape_parts_idx') WHERE isleaf");
        assert_eq!(leaves, 3);
        let stats = |key: &str| {
            one::<i64>(&format!(
                "SELECT (vhnsw_stats('shape_parts_idx') ->> '{key}')::numeric::bigint"
            ))
        };
        // Sums over the partitions, and each partition's own figures.
        assert_eq!(stats("nodes") + stats("pending"), 850);
        assert_eq!(
            one::<i64>("SELECT jsonb_array_length(vhnsw_stats('shape_parts_idx') -> 'partitions')"),
            3
        );
        assert_eq!(
            one::<i64>(
                "SELECT sum((p ->> 'nodes')::bigint + (p ->> 'pending')::bigint)::bigint
                 FROM jsonb_array_elements(vhnsw_stats('shape_parts_idx') -> 'partitions') p"
            ),
            850
        );
        assert_eq!(
            one::<String>(
                "SELECT string_agg(p ->> 'index', ',' ORDER BY p ->> 'index')
                 FROM jsonb_array_elements(vhnsw_stats('shape_parts_idx') -> 'partitions') p"
            ),
            // Qualified: the functions run with their own search_path.
            "public.shape_parts_a_v_idx,public.shape_parts_b1_v_idx,public.shape_parts_b2_v_idx"
        );
        assert_eq!(
            one::<i64>("SELECT (vhnsw_stats('shape_parts_idx') ->> 'dims')::bigint"),
            4
        );
        // Merging every partition's pending list.
        let pending = stats("pending");
        assert_eq!(one::<i64>("SELECT vhnsw_merge('shape_parts_idx')"), pending);
        assert_eq!(stats("pending"), 0);
        assert_eq!(stats("nodes"), 850);
        assert_eq!(one::<String>("SELECT vhnsw_check('shape_parts_idx')"), "");

        // A row one partition's index never received: reported, under
        // that partition's index's name.
        run("UPDATE pg_index SET indisready = false WHERE indexrelid = 'shape_parts_b2_v_idx'::regclass");
        run("SELECT pg_sleep(0)"); // a new command: the catalog change is seen
        run("INSERT INTO shape_parts VALUES (700, '[9,9,9,9]')");
        run("UPDATE pg_index SET indisready = true WHERE indexrelid = 'shape_parts_b2_v_idx'::regclass");
        run("SELECT pg_sleep(0)");
        let problems = one::<String>("SELECT vhnsw_check('shape_parts_idx')");
        assert!(!problems.is_empty());
        for line in problems.lines() {
            assert!(line.starts_with("public.shape_parts_b2_v_idx: "), "{line}");
        }
        assert_eq!(
            one::<String>("SELECT vhnsw_check('shape_parts_b1_v_idx')"),
            ""
        );

        // A partitioned index without partitions: nothing to do, and the
        // same refusals as any index.
        run("CREATE TABLE shape_none (id int, v vector(4)) PARTITION BY RANGE (id)");
        run("CREATE INDEX shape_none_idx ON shape_none USING vhnsw (v vector_l2_ops)");
        assert_eq!(one::<String>("SELECT vhnsw_check('shape_none_idx')"), "");
        assert_eq!(one::<i64>("SELECT vhnsw_merge('shape_none_idx')"), 0);
        assert_eq!(
            one::<i64>("SELECT (vhnsw_stats('shape_none_idx') ->> 'nodes')::bigint"),
            0
        );
        run("CREATE INDEX shape_none_btree ON shape_none (id)");
        assert!(sql_error("SELECT vhnsw_check('shape_none_btree')").starts_with("22023 "));
        assert!(sql_error("SELECT vhnsw_stats('shape_none')").starts_with("42809 "));
        // An index made ON ONLY the parent, no partition's index attached:
        // not valid, never "clean".
        run("CREATE TABLE shape_only (id int, v vector(4)) PARTITION BY RANGE (id)");
        run("CREATE TABLE shape_only_a PARTITION OF shape_only FOR VALUES FROM (0) TO (100)");
        fill("shape_only", 0, 50);
        run("CREATE INDEX shape_only_idx ON ONLY shape_only USING vhnsw (v vector_l2_ops)");
        assert!(sql_error("SELECT vhnsw_check('shape_only_idx')").starts_with("55000 "));
        assert!(sql_error("SELECT vhnsw_merge('shape_only_idx')").starts_with("55000 "));
        // The routing helper sends only vdb's own functions to shards.
        assert!(
            sql_error("SELECT * FROM vhnsw_on_placements('shape_none_idx', 'pg_sleep', true)")
                .starts_with("22023 ")
        );
    }

    /// Rows a scan of one search round returns: `ef_search` of them, with
    /// `vhnsw.iterative_scan` off.
    fn rows_of_one_round(hint: &str) -> i64 {
        run("SET LOCAL vhnsw.iterative_scan = off");
        run("SET LOCAL enable_seqscan = off");
        let n = one::<i64>(&format!(
            "SELECT count(*) FROM (SELECT id FROM shape_ef {hint}
             ORDER BY v <-> '[0.1,0.2,0.3,0.4]' LIMIT 500) r"
        ));
        run("RESET enable_seqscan");
        n
    }

    #[pg_test]
    fn an_index_ef_search_applies_where_the_session_sets_none() {
        run("CREATE TABLE shape_ef (id int, v vector(4))");
        fill("shape_ef", 0, 300);
        run("CREATE INDEX shape_ef_idx ON shape_ef USING vhnsw (v vector_l2_ops) WITH (ef_search = 17)");
        run("RESET vhnsw.ef_search");
        assert_eq!(rows_of_one_round(""), 17);
        // Any value the session sets wins, the default's value included.
        run("SET LOCAL vhnsw.ef_search = 23");
        assert_eq!(rows_of_one_round(""), 23);
        run("SET LOCAL vhnsw.ef_search = 40");
        assert_eq!(rows_of_one_round(""), 40);
        // A hint wins over both.
        assert_eq!(rows_of_one_round("WHERE v <^> 11"), 11);
        run("RESET vhnsw.ef_search");
        assert_eq!(rows_of_one_round("WHERE v <^> 11"), 11);
        assert_eq!(rows_of_one_round(""), 17);
        // ALTER INDEX changes it without a rebuild; RESET removes it.
        run("ALTER INDEX shape_ef_idx SET (ef_search = 29)");
        assert_eq!(rows_of_one_round(""), 29);
        run("ALTER INDEX shape_ef_idx RESET (ef_search)");
        assert_eq!(rows_of_one_round(""), 40);
        assert!(sql_error("ALTER INDEX shape_ef_idx SET (ef_search = 1001)").starts_with("22023 "));
    }
}
