//! What a role may do with vdb's maintenance functions, and that nothing
//! planted in a schema on the search path runs inside vdb's SQL functions.

#[pgrx::pg_schema]
mod tests {
    use crate::tests::support::{one, run, sql_error};
    use pgrx::prelude::*;

    /// A table owned by the test's superuser with a vhnsw index and a
    /// pending row, and a role `mallory` with no rights on it.
    fn owned_index() {
        run("CREATE ROLE mallory");
        run("CREATE TABLE secret AS SELECT i AS id, ARRAY[i, 1, 2]::vector(3) AS v FROM generate_series(1, 50) i");
        run("CREATE INDEX secret_idx ON secret USING vhnsw (v vector_l2_ops)");
        run("INSERT INTO secret VALUES (51, '[51,1,2]')");
    }

    fn starts(query: &str, state: &str) {
        let got = sql_error(query);
        assert!(
            got.starts_with(state),
            "{query}: expected {state}, got {got}"
        );
    }

    #[pg_test]
    fn maintenance_functions_need_rights_on_the_table() {
        owned_index();
        run("SET LOCAL ROLE mallory");
        // Reading every row and changing the index need ownership...
        starts(
            "SELECT vhnsw_check('secret_idx')",
            "42501 must be owner of table secret",
        );
        starts(
            "SELECT vhnsw_merge('secret_idx')",
            "42501 must be owner of table secret",
        );
        // ... the index's shape needs SELECT.
        starts(
            "SELECT vhnsw_stats('secret_idx')",
            "42501 permission denied for table secret",
        );
        run("RESET ROLE");
        run("GRANT SELECT ON secret TO mallory");
        run("SET LOCAL ROLE mallory");
        assert_eq!(
            one::<i64>("SELECT (vhnsw_stats('secret_idx')->>'pending')::bigint"),
            1
        );
        starts("SELECT vhnsw_check('secret_idx')", "42501 ");
        starts("SELECT vhnsw_merge('secret_idx')", "42501 ");
        run("RESET ROLE");
        // The owner may.
        assert_eq!(one::<String>("SELECT vhnsw_check('secret_idx')"), "");
        assert_eq!(one::<i64>("SELECT vhnsw_merge('secret_idx')"), 1);
    }

    /// Settings that size work every session shares (and Rust
    /// allocations) are not a plain role's to change; per-query ones are.
    #[pg_test]
    fn shared_merge_settings_are_for_superusers() {
        run("CREATE ROLE mallory");
        run("SET LOCAL ROLE mallory");
        for setting in [
            "vhnsw.pending_list_limit = '10MB'",
            "vhnsw.pending_list_hard_limit = '20MB'",
            "vhnsw.merge_batch_size = 2000",
            "vhnsw.merge_naptime = '2s'",
        ] {
            starts(
                &format!("SET {setting}"),
                "42501 permission denied to set parameter",
            );
        }
        run("SET LOCAL vhnsw.ef_search = 100");
        run("RESET ROLE");
        run("SET LOCAL vhnsw.merge_batch_size = 500");
    }

    #[pg_test]
    fn merge_is_refused_on_an_index_not_valid_yet() {
        owned_index();
        // What a failed CREATE INDEX CONCURRENTLY leaves behind.
        run("UPDATE pg_index SET indisvalid = false WHERE indexrelid = 'secret_idx'::regclass");
        run("SELECT pg_sleep(0)"); // new command: the catalog change is visible
        starts(
            "SELECT vhnsw_merge('secret_idx')",
            "55000 index \"secret_idx\" is not valid yet",
        );
        starts("SELECT vhnsw_check('secret_idx')", "55000 ");
    }

    #[pg_test]
    fn merge_is_refused_in_a_read_only_transaction() {
        owned_index();
        let pages = one::<i64>("SELECT pg_relation_size('secret_idx')");
        sql_error("SELECT 1"); // creates its helper function while it may
        run("SET LOCAL transaction_read_only = on");
        let got = one::<String>("SELECT pg_temp.sql_error('SELECT vhnsw_merge(''secret_idx'')')");
        assert!(
            got.starts_with("25006 cannot run vhnsw_merge() in a read-only transaction"),
            "{got}"
        );
        assert_eq!(one::<i64>("SELECT pg_relation_size('secret_idx')"), pages);
        // Reading is fine.
        assert_eq!(one::<String>("SELECT vhnsw_check('secret_idx')"), "");
    }

    /// A function planted in a schema on the path that matches a call
    /// inside vdb's SQL more exactly than pg_catalog's (a `name` argument
    /// where pg_catalog's takes `text`) never runs.
    #[pg_test]
    fn planted_overloads_do_not_run_inside_vdb_functions() {
        run("CREATE TABLE parted (id int, v vector(3)) PARTITION BY HASH (id)");
        run("CREATE TABLE parted_0 PARTITION OF parted FOR VALUES WITH (MODULUS 2, REMAINDER 0)");
        run("CREATE TABLE parted_1 PARTITION OF parted FOR VALUES WITH (MODULUS 2, REMAINDER 1)");
        run("INSERT INTO parted SELECT i, ARRAY[i, 1, 2] FROM generate_series(1, 20) i");
        run("CREATE INDEX ON parted USING vhnsw (v vector_l2_ops)");
        // Planted where vdb's objects are, as a role with CREATE there could.
        run(
            "CREATE FUNCTION public.quote_ident(name) RETURNS text LANGUAGE plpgsql AS
             $$ BEGIN RAISE EXCEPTION 'planted quote_ident ran'; END $$",
        );
        run("CREATE FUNCTION public.jsonb_build_object(text, timestamptz) RETURNS jsonb LANGUAGE plpgsql AS
             $$ BEGIN RAISE EXCEPTION 'planted jsonb_build_object ran'; END $$");
        run("SET LOCAL search_path = public");
        let sql = one::<String>("SELECT vhnsw_search_sql('parted', 'v', 3)");
        assert!(sql.contains("OPERATOR(public.<=>)"), "{sql}");
        let found = one::<i64>(
            "SELECT count(*) FROM vhnsw_search(NULL::parted, 'v', '[5,1,2]', 3, 0, '<->')",
        );
        assert_eq!(found, 3);
        run("SELECT vhnsw_merge(indexrelid) FROM pg_index WHERE indrelid = 'parted_0'::regclass");
        let index = one::<String>(
            "SELECT indexrelid::regclass::text FROM pg_index WHERE indrelid = 'parted_0'::regclass",
        );
        assert!(
            one::<bool>(&format!("SELECT vhnsw_stats('{index}') ? 'last_merge'")),
            "stats ran"
        );
    }
}
