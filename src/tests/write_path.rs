//! The write path inside one transaction: the pending list, merges,
//! back-pressure and updates. (Background workers cannot see a test's
//! uncommitted tables; they, VACUUM, crashes and concurrency are tested
//! against servers of their own in `tests/`.)

#[pgrx::pg_schema]
mod tests {
    use crate::tests::support::{clustered_table, ids, one, recall, run, sql_error};
    use pgrx::prelude::*;

    fn stat(index: &str, key: &str) -> i64 {
        one::<i64>(&format!(
            "SELECT (vhnsw_stats('{index}')->>'{key}')::bigint"
        ))
    }

    fn problems(index: &str) -> String {
        one::<String>(&format!("SELECT vhnsw_check('{index}')"))
    }

    fn queries(table: &str) -> Vec<String> {
        crate::tests::support::query_vectors(table, 20)
    }

    /// Each inserted row, looked up by its own vector, comes back first.
    fn finds_rows_by_their_vectors(table: &str, op: &str, from_id: i32, count: i32) {
        run("SET LOCAL enable_seqscan = off");
        for id in (from_id..from_id + count).step_by(7) {
            let found = ids(
                &format!(
                    "SELECT id FROM {table} ORDER BY v {op} (SELECT v FROM {table} WHERE id = {id}) LIMIT 1"
                ),
                &[],
            );
            assert_eq!(found, vec![id], "row {id} of {table}");
        }
        run("SET LOCAL enable_seqscan = on");
    }

    #[pg_test]
    fn pending_rows_are_found_at_once_and_after_the_merge() {
        clustered_table("src", 3600, 32, 20, 0.11);
        run("CREATE TABLE p AS SELECT * FROM src WHERE id <= 3000");
        run("CREATE INDEX p_idx ON p USING vhnsw (v vector_l2_ops)");
        run("INSERT INTO p SELECT * FROM src WHERE id > 3000");
        run("ANALYZE p");
        assert_eq!(stat("p_idx", "pending"), 600);
        assert_eq!(stat("p_idx", "nodes"), 3000);
        assert_eq!(problems("p_idx"), "");
        finds_rows_by_their_vectors("p", "<->", 3001, 600);
        let qs = queries("src_queries");
        let before = recall("p", "<->", &qs);
        assert!(before >= 0.95, "recall with 600 pending rows: {before}");

        assert_eq!(one::<i64>("SELECT vhnsw_merge('p_idx')"), 600);
        assert_eq!(stat("p_idx", "pending"), 0);
        assert_eq!(stat("p_idx", "nodes"), 3600);
        assert_eq!(stat("p_idx", "merged_total"), 600);
        assert!(one::<bool>(
            "SELECT vhnsw_stats('p_idx')->>'last_merge' IS NOT NULL"
        ));
        assert_eq!(problems("p_idx"), "");
        finds_rows_by_their_vectors("p", "<->", 3001, 600);
        let after = recall("p", "<->", &qs);
        assert!(after >= 0.95, "recall after the merge: {after}");
        // Nothing left: a second merge does nothing.
        assert_eq!(one::<i64>("SELECT vhnsw_merge('p_idx')"), 0);
    }

    #[pg_test]
    fn a_full_pending_list_makes_the_inserting_backend_merge() {
        clustered_table("bp", 500, 16, 10, 0.12);
        run("CREATE INDEX bp_idx ON bp USING vhnsw (v vector_cosine_ops)");
        run("SET LOCAL vhnsw.pending_list_hard_limit = '16kB'");
        run("SET LOCAL vhnsw.merge_batch_size = 100");
        run("INSERT INTO bp SELECT id + 1000, v + v FROM bp");
        run("INSERT INTO bp SELECT id + 2000, v + v + v FROM bp WHERE id < 1000");
        run("INSERT INTO bp SELECT id + 10000, v + '[1,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0]' FROM bp");
        let pending = stat("bp_idx", "pending");
        let merged = stat("bp_idx", "merged_total");
        // The hard limit is counted in whole pages (about 100 entries of 16
        // dimensions each): the list never grows far past it.
        assert!(pending <= 400, "{pending} entries pending");
        assert_eq!(pending + merged, 2500, "every insert is pending or merged");
        assert_eq!(problems("bp_idx"), "");
        finds_rows_by_their_vectors("bp", "<=>", 10001, 500);
    }

    #[pg_test]
    fn updating_another_column_keeps_the_vector_node() {
        // Full pages, so updates cannot be HOT and do reach the index.
        run("CREATE TABLE w (id int, note text, v vector(16)) WITH (fillfactor = 100)");
        run("SELECT setseed(0.3)");
        run("INSERT INTO w SELECT i, 'x', ARRAY(SELECT random() + i * 0 FROM generate_series(1, 16)) FROM generate_series(1, 2000) i");
        run("CREATE INDEX w_idx ON w USING vhnsw (v vector_l2_ops)");
        let degree = one::<String>("SELECT vhnsw_stats('w_idx')->>'avg_degree_level0'");
        run("UPDATE w SET note = 'changed'");
        assert_eq!(stat("w_idx", "pending"), 2000);
        assert_eq!(problems("w_idx"), "");
        assert_eq!(one::<i64>("SELECT vhnsw_merge('w_idx')"), 2000);
        // Each new row version joined the node of its unchanged vector: no
        // node was added and no neighbour list was touched.
        assert_eq!(stat("w_idx", "nodes"), 2000);
        assert_eq!(
            one::<String>("SELECT vhnsw_stats('w_idx')->>'avg_degree_level0'"),
            degree
        );
        assert_eq!(problems("w_idx"), "");
        finds_rows_by_their_vectors("w", "<->", 1, 2000);
    }

    #[pg_test]
    fn an_index_built_on_an_empty_table_fills_from_inserts() {
        run("CREATE TABLE e (id int, v vector(8))");
        run("CREATE INDEX e_idx ON e USING vhnsw (v vector_l2_ops)");
        run("SELECT setseed(0.4)");
        run("INSERT INTO e SELECT i, ARRAY(SELECT random() + i * 0 FROM generate_series(1, 8)) FROM generate_series(1, 1000) i");
        run("ANALYZE e");
        assert_eq!(stat("e_idx", "pending"), 1000);
        // Only the pending list holds rows: answers are exact.
        let q = "SELECT id FROM e ORDER BY v <-> '[0.5,0.5,0.5,0.5,0.5,0.5,0.5,0.5]' LIMIT 10";
        run("SET LOCAL enable_seqscan = off");
        let indexed = ids(q, &[]);
        run("SET LOCAL enable_seqscan = on");
        run("SET LOCAL enable_indexscan = off");
        assert_eq!(indexed, ids(q, &[]));
        run("SET LOCAL enable_indexscan = on");
        assert_eq!(one::<i64>("SELECT vhnsw_merge('e_idx')"), 1000);
        assert_eq!(stat("e_idx", "nodes"), 1000);
        assert_eq!(problems("e_idx"), "");
        finds_rows_by_their_vectors("e", "<->", 1, 1000);
    }

    #[pg_test]
    fn deleted_pending_rows_are_never_returned() {
        run("CREATE TABLE dp (id int, v vector(4))");
        run("INSERT INTO dp SELECT i, ARRAY[i, 0, 0, 0] FROM generate_series(1, 100) i");
        run("CREATE INDEX dp_idx ON dp USING vhnsw (v vector_l2_ops)");
        run("INSERT INTO dp SELECT i, ARRAY[i, 0, 0, 0] FROM generate_series(101, 200) i");
        run("DELETE FROM dp WHERE id BETWEEN 140 AND 160");
        run("SET LOCAL enable_seqscan = off");
        let near = ids(
            "SELECT id FROM dp ORDER BY v <-> '[150.1,0,0,0]' LIMIT 5",
            &[],
        );
        assert_eq!(near, vec![161, 139, 162, 138, 163]);
        assert_eq!(problems("dp_idx"), "");
    }

    /// Rows arriving one cluster after another (a bulk load in table
    /// order) are merged as well as a build links them: each batch is
    /// drawn from the whole pending list.
    #[pg_test]
    fn rows_arriving_grouped_are_merged_into_a_navigable_graph() {
        run("SELECT setseed(0.5)");
        run("CREATE TEMP TABLE c AS SELECT c, ARRAY(SELECT random() * 2 - 1 + c * 0 FROM generate_series(1, 32)) AS x FROM generate_series(0, 29) c");
        run("CREATE TABLE g (id int, v vector(32))");
        run("CREATE INDEX g_idx ON g USING vhnsw (v vector_l2_ops)");
        run("INSERT INTO g SELECT i, (SELECT array_agg(x[d] + 0.4 * (random() - 0.5) ORDER BY d) FROM generate_series(1, 32) d)
             FROM generate_series(1, 20000) i JOIN c ON c.c = i % 30 ORDER BY i % 30, i");
        run("CREATE TABLE g_queries AS SELECT i AS id, (SELECT array_agg(x[d] + 0.4 * (random() - 0.5) ORDER BY d) FROM generate_series(1, 32) d)::vector(32) AS v
             FROM generate_series(1, 100) i JOIN c ON c.c = (i * 7) % 30");
        run("ANALYZE g");
        // 2.8 MB of pending rows: past the hard limit the inserting
        // backend merged batches of what was pending then (the first
        // clusters only); the rest is merged here.
        let merged_by_inserts = stat("g_idx", "nodes");
        assert!(merged_by_inserts > 0, "no back-pressure merge");
        assert_eq!(
            one::<i64>("SELECT vhnsw_merge('g_idx')") + merged_by_inserts,
            20_000
        );
        let qs = crate::tests::support::query_vectors("g_queries", 100);
        let merged = recall("g", "<->", &qs);
        assert!(
            merged >= 0.95,
            "recall after merging grouped rows: {merged}"
        );
    }

    #[pg_test]
    fn merge_and_stats_reject_other_relations() {
        run("CREATE TABLE o (id int PRIMARY KEY)");
        assert!(
            sql_error("SELECT vhnsw_merge('o_pkey')").starts_with("22023 "),
            "{}",
            sql_error("SELECT vhnsw_merge('o_pkey')")
        );
        assert!(sql_error("SELECT vhnsw_merge('o')").starts_with("42809 "));
        assert!(sql_error("SELECT vhnsw_stats('o_pkey')").starts_with("22023 "));
    }
}
