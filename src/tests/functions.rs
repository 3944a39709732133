//! Operators, functions and ordering.

#[pgrx::pg_schema]
mod tests {
    use crate::tests::support::{check, close, one, run, sql_error};
    use pgrx::prelude::*;

    #[pg_test]
    fn distance_functions_and_operators() {
        close("SELECT l2_distance('[0,0]'::vector, '[3,4]')", 5.0);
        close("SELECT '[0,0]'::vector <-> '[3,4]'", 5.0);
        close("SELECT vector_l2_squared_distance('[0,0]', '[3,4]')", 25.0);
        close("SELECT inner_product('[1,2]'::vector, '[3,4]')", 11.0);
        close("SELECT '[1,2]'::vector <#> '[3,4]'", -11.0);
        close("SELECT cosine_distance('[1,0]'::vector, '[0,1]')", 1.0);
        close("SELECT '[1,1]'::vector <=> '[-1,-1]'", 2.0);
        close("SELECT '[1,2,3]'::vector <=> '[1,2,3]'", 0.0);
        close("SELECT l1_distance('[0,0]'::vector, '[3,-4]')", 7.0);
        close("SELECT '[0,0]'::vector <+> '[3,-4]'", 7.0);
        close(
            "SELECT poincare_distance('[0,0]', '[0.5,0]')",
            2.0 * 0.5f64.atanh(),
        );
        close("SELECT poincare_distance('[0.1,0.2]', '[0.1,0.2]')", 0.0);
        // Commutators are declared, so both argument orders plan and agree.
        close("SELECT '[3,4]'::vector <-> '[0,0]'", 5.0);
    }

    #[pg_test]
    fn cosine_with_zero_vector_is_nan() {
        assert!(one::<f64>("SELECT cosine_distance('[0,0]'::vector, '[1,1]')").is_nan());
        assert!(one::<f64>("SELECT '[1,1]'::vector <=> '[0,0]'").is_nan());
    }

    #[pg_test]
    fn distances_on_larger_vectors_match_the_scalar_reference() {
        use vdb_core::distance::scalar;
        let a: Vec<f32> = (0..1536)
            .map(|i| ((i * 37 % 101) as f32 - 50.0) / 7.0)
            .collect();
        let b: Vec<f32> = (0..1536)
            .map(|i| ((i * 53 % 97) as f32 - 48.0) / 5.0)
            .collect();
        let (ta, tb) = (
            crate::vector::text::format(&a),
            crate::vector::text::format(&b),
        );
        let q = |f: &str| {
            Spi::get_one_with_args::<f64>(
                &format!("SELECT {f}($1::vector, $2::vector)"),
                &[ta.clone().into(), tb.clone().into()],
            )
            .expect("query")
            .expect("not null")
        };
        let rel = |x: f64, y: f64| (x - y).abs() / y.abs().max(1e-12);
        assert!(rel(q("l2_distance"), scalar::l2_squared(&a, &b).sqrt()) < 1e-5);
        assert!(rel(q("inner_product"), scalar::dot(&a, &b)) < 1e-4);
        assert!(rel(q("l1_distance"), scalar::l1(&a, &b)) < 1e-5);
        assert!(rel(q("cosine_distance"), scalar::cosine_distance(&a, &b)) < 1e-5);
    }

    #[pg_test]
    fn vector_functions() {
        assert_eq!(one::<i32>("SELECT vector_dims('[1,2,3]'::vector)"), 3);
        close("SELECT vector_norm('[3,4]')", 5.0);
        assert_eq!(
            one::<String>("SELECT l2_normalize('[3,4]'::vector)::text"),
            "[0.6,0.8]"
        );
        assert_eq!(
            one::<String>("SELECT l2_normalize('[0,0]'::vector)::text"),
            "[0,0]"
        );
        assert_eq!(
            one::<String>("SELECT subvector('[1,2,3,4,5]'::vector, 2, 3)::text"),
            "[2,3,4]"
        );
        assert_eq!(
            one::<String>("SELECT subvector('[1,2,3,4,5]'::vector, 4, 9)::text"),
            "[4,5]"
        );
        assert_eq!(
            one::<String>("SELECT binary_quantize('[1,-1,0,2.5]'::vector)::text"),
            "1001"
        );
    }

    #[pg_test]
    fn arithmetic_operators() {
        assert_eq!(
            one::<String>("SELECT ('[1,2,3]'::vector + '[4,5,6]')::text"),
            "[5,7,9]"
        );
        assert_eq!(
            one::<String>("SELECT ('[1,2,3]'::vector - '[4,5,6]')::text"),
            "[-3,-3,-3]"
        );
        assert_eq!(
            one::<String>("SELECT ('[1,2,3]'::vector * '[4,5,6]')::text"),
            "[4,10,18]"
        );
        assert_eq!(
            one::<String>("SELECT ('[1,2]'::vector || '[3]')::text"),
            "[1,2,3]"
        );
    }

    #[pg_test]
    fn comparison_and_btree_ordering() {
        check("SELECT '[1,2]'::vector < '[1,3]'");
        check("SELECT '[1,2]'::vector <= '[1,2]'");
        check("SELECT '[1,2]'::vector = '[1,2]'");
        check("SELECT '[0]'::vector = '[-0]'");
        check("SELECT '[1,2]'::vector <> '[2,1]'");
        check("SELECT '[1,3]'::vector >= '[1,2,9]'");
        check("SELECT '[1,2,0]'::vector > '[1,2]'");

        run("CREATE TEMP TABLE t (v vector)");
        run("INSERT INTO t VALUES ('[3,1]'), ('[1,2]'), ('[1,2]'), ('[1,1,1]'), ('[2]'), (NULL)");
        assert_eq!(
            one::<String>("SELECT string_agg(v::text, ' ' ORDER BY v) FROM t"),
            "[1,1,1] [1,2] [1,2] [2] [3,1]"
        );
        assert_eq!(one::<i64>("SELECT count(DISTINCT v) FROM t"), 4);
        assert_eq!(
            one::<i64>("SELECT count(*) FROM (SELECT v FROM t GROUP BY v) g"),
            5
        );
        assert_eq!(
            one::<i64>("SELECT max(c) FROM (SELECT count(*) c FROM t GROUP BY v) g"),
            2
        );

        // A btree index on vector, used for ORDER BY and UNIQUE.
        run("CREATE TEMP TABLE u (v vector UNIQUE)");
        run("INSERT INTO u VALUES ('[1,2]'), ('[2,1]')");
        assert!(sql_error("INSERT INTO u VALUES ('[1,2]')").starts_with("23505 "));
        run("SET LOCAL enable_seqscan = off");
        assert_eq!(
            one::<String>("SELECT v::text FROM u ORDER BY v DESC LIMIT 1"),
            "[2,1]"
        );
    }

    /// Every function of the extension is IMMUTABLE, STRICT and PARALLEL
    /// SAFE, except the index AM handler, the functions that read an index
    /// or the catalog, which are STABLE, and those that change an index,
    /// run queries or reach other nodes (VOLATILE, PARALLEL UNSAFE).
    #[pg_test]
    fn functions_are_immutable_strict_parallel_safe() {
        let ours = "FROM pg_proc p
             JOIN pg_depend d ON d.classid = 'pg_proc'::regclass AND d.objid = p.oid AND d.deptype = 'e'
             JOIN pg_extension e ON e.oid = d.refobjid AND e.extname = 'vdb'
             WHERE p.pronamespace <> 'tests'::regnamespace AND p.prokind = 'f'
               AND p.prorettype <> 'index_am_handler'::regtype ";
        let inspection = "p.proname IN ('vhnsw_check_one', 'vhnsw_stats_text', 'vhnsw_search_sql',
             'vhnsw_require', 'vhnsw_partitioned', 'vhnsw_leaf_indexes', 'vhnsw_placements', 'vhnsw_distributed',
             'vhnsw_stats_sum')";
        // Change an index, or run commands on Citus's nodes.
        let writers =
            "p.proname IN ('vhnsw_merge', 'vhnsw_merge_one', 'vhnsw_check', 'vhnsw_stats',
             'vhnsw_on_placements')";
        let bad = one::<i64>(&format!(
            "SELECT count(*) {ours} AND NOT {inspection} AND NOT {writers} AND p.proname <> 'vhnsw_search'
               AND NOT (p.provolatile = 'i' AND p.proisstrict AND p.proparallel = 's')"
        ));
        assert_eq!(bad, 0);
        let bad_inspection = one::<i64>(&format!(
            "SELECT count(*) {ours} AND {inspection} AND NOT (p.provolatile = 's' AND p.proisstrict AND p.proparallel = 's')"
        ));
        assert_eq!(bad_inspection, 0);
        let bad_writers = one::<i64>(&format!(
            "SELECT count(*) {ours} AND {writers} AND NOT (p.provolatile = 'v' AND p.proisstrict AND p.proparallel = 'u')"
        ));
        assert_eq!(bad_writers, 0);
        assert_eq!(
            one::<i64>(&format!("SELECT count(*) {ours} AND {writers}")),
            5
        );
        // vhnsw_search runs a query; not STRICT, since its first argument
        // is a NULL of the table's row type.
        let search = one::<String>(&format!(
            "SELECT p.provolatile::text || p.proisstrict::text || p.proparallel::text {ours} AND p.proname = 'vhnsw_search'"
        ));
        assert_eq!(search, "vfalseu");
        let total = one::<i64>(&format!("SELECT count(*) {ours}"));
        assert!(total >= 40, "found only {total} functions");
    }
}
