//! Distance-range conditions (`v <<->> sphere(q, r)`) served by the index,
//! and `vhnsw.iterative_scan`.

#[pgrx::pg_schema]
mod tests {
    use crate::tests::support::{
        clustered_table, ids, one, query_vectors, run, scaled_clustered_table, sql_error,
        uses_index,
    };
    use pgrx::prelude::*;

    /// The ids a query returns with the index (`index`) or by a table scan.
    fn answer(query: &str, q: &str, index: bool) -> Vec<i32> {
        let (i, s) = if index { ("on", "off") } else { ("off", "on") };
        run(&format!("SET LOCAL enable_indexscan = {i}"));
        run(&format!("SET LOCAL enable_seqscan = {s}"));
        let found = ids(query, &[q.to_string()]);
        run("SET LOCAL enable_indexscan = on");
        run("SET LOCAL enable_seqscan = on");
        found
    }

    /// For every operator class: with and without ORDER BY, the index
    /// serves the range, returns only rows inside it (the executor
    /// rechecks) and nearly all of them, in distance order with ORDER BY;
    /// NULL spheres and negative radii match nothing.
    #[pg_test]
    fn distance_ranges_agree_with_a_table_scan() {
        clustered_table("rg", 4_000, 24, 10, 0.41);
        // Poincaré points must lie inside the unit ball.
        scaled_clustered_table("rgp", 4_000, 24, 10, 0.42, 0.05);
        // Inner product on unit vectors, as embedding models make them:
        // on unnormalised ones its graphs rank poorly with or without
        // ranges (recall@10 0.75 on this data; issue 17).
        for t in ["rgn", "rgn_queries"] {
            let from = t.replace("rgn", "rg");
            run(&format!(
                "CREATE TABLE {t} AS SELECT id, l2_normalize(v) AS v FROM {from}"
            ));
        }
        for (table, opclass, op, range) in [
            ("rg", "vector_l2_ops", "<->", "<<->>"),
            ("rgn", "vector_ip_ops", "<#>", "<<#>>"),
            ("rg", "vector_cosine_ops", "<=>", "<<=>>"),
            ("rg", "vector_l1_ops", "<+>", "<<+>>"),
            ("rgp", "vector_poincare_ops", "<@>", "<<@>>"),
        ] {
            run(&format!(
                "CREATE INDEX rg_idx ON {table} USING vhnsw (v {opclass})"
            ));
            let queries = query_vectors(&format!("{table}_queries"), 10);
            let (mut found, mut expected, mut each) = (0, 0, Vec::new());
            for q in &queries {
                // A radius that holds the 50 nearest rows (exactly: no index).
                run("SET LOCAL enable_indexscan = off");
                let r = one::<f64>(&format!(
                    "SELECT v {op} '{q}' FROM {table} ORDER BY 1 OFFSET 49 LIMIT 1"
                ));
                run("SET LOCAL enable_indexscan = on");
                let cond = format!("v {range} sphere($1::vector, {r})");
                let truth = answer(&format!("SELECT id FROM {table} WHERE {cond}"), q, false);
                assert!(
                    truth.len() >= 50,
                    "{opclass}: {} rows in range",
                    truth.len()
                );
                let sphere = format!("sphere('{q}'::vector, {r})");
                run("SET LOCAL enable_seqscan = off");
                assert!(
                    uses_index(&format!("SELECT id FROM {table} WHERE v {range} {sphere}")),
                    "{opclass}: range without ORDER BY"
                );
                run("SET LOCAL enable_seqscan = on");
                let plain = answer(&format!("SELECT id FROM {table} WHERE {cond}"), q, true);
                let ordered = answer(
                    &format!("SELECT id FROM {table} WHERE {cond} ORDER BY v {op} $1::vector"),
                    q,
                    true,
                );
                for got in [&plain, &ordered] {
                    assert!(
                        got.iter().all(|id| truth.contains(id)),
                        "{opclass}: a row outside the range"
                    );
                }
                let mut a = plain.clone();
                a.sort_unstable();
                let mut b = ordered.clone();
                b.sort_unstable();
                assert_eq!(a, b, "{opclass}: with and without ORDER BY");
                // In distance order (up to f32 rounding of near ties).
                run("SET LOCAL enable_seqscan = off");
                let d: Vec<f64> = Spi::connect(|c| {
                    c.select(
                        &format!("SELECT v {op} $1::vector FROM {table} WHERE {cond} ORDER BY v {op} $1::vector"),
                        None,
                        &[q.clone().into()],
                    )
                    .expect("ordered range")
                    .map(|r| r.get::<f64>(1).expect("distance").expect("not null"))
                    .collect()
                });
                run("SET LOCAL enable_seqscan = on");
                assert_eq!(d.len(), ordered.len(), "{opclass}");
                assert!(
                    d.windows(2)
                        .all(|w| w[1] >= w[0] - 1e-6 * w[0].abs().max(1.0)),
                    "{opclass}: out of order {d:?}"
                );
                found += plain.len();
                expected += truth.len();
                // The index's own nearest 50: the range scan walks the
                // same graph, so it must find what they find.
                let knn = answer(
                    &format!("SELECT id FROM {table} ORDER BY v {op} $1::vector LIMIT 50"),
                    q,
                    true,
                );
                let knn_hits = knn.iter().filter(|id| truth.contains(id)).count();
                each.push((plain.len(), knn_hits, truth.len()));
            }
            let recall = found as f64 / expected as f64;
            let knn_found: usize = each.iter().map(|e| e.1).sum();
            // Within a row or two of the kNN scan per query (the last rows
            // before the radius may come out of a later round), and never
            // far below the whole range: one build in about five left one
            // query's cluster of the Poincaré test data hard to reach (seen
            // with both scans once; not reproduced outside this test).
            assert!(
                found + 2 * queries.len() >= knn_found && recall >= 0.8,
                "{opclass}: range recall {recall}; per query (range, kNN, truth) {each:?}"
            );
            let q = &queries[0];
            for sphere in [
                "sphere(NULL::vector, 1)".to_string(),
                format!("sphere('{q}'::vector, NULL)"),
                format!("sphere('{q}'::vector, -1)"),
            ] {
                run("SET LOCAL enable_seqscan = off");
                let n = one::<i64>(&format!(
                    "SELECT count(*) FROM {table} WHERE v {range} {sphere}"
                ));
                run("SET LOCAL enable_seqscan = on");
                // -1 under inner product is a real bound (negative dot
                // products at most -1); the others match nothing.
                if !(op == "<#>" && sphere.ends_with("-1)")) {
                    assert_eq!(n, 0, "{opclass}: {sphere}");
                }
            }
            let e = sql_error(&format!(
                "SELECT id FROM {table} WHERE v {range} sphere('[1,2,3]'::vector, 1)"
            ));
            assert!(e.contains("different vector dimensions"), "{opclass}: {e}");
            assert_eq!(
                one::<String>("SELECT vhnsw_check('rg_idx')"),
                "",
                "{opclass}"
            );
            run("DROP INDEX rg_idx");
        }
    }

    /// A range on a partitioned table runs on every partition's index and
    /// returns what a table scan does (up to the index's recall).
    #[pg_test]
    fn ranges_span_partitions() {
        clustered_table("rgsrc", 3_000, 16, 8, 0.44);
        run("CREATE TABLE rgpart (id int, v vector(16)) PARTITION BY RANGE (id)");
        run("CREATE TABLE rgpart_a PARTITION OF rgpart FOR VALUES FROM (0) TO (1500)");
        run("CREATE TABLE rgpart_b PARTITION OF rgpart FOR VALUES FROM (1500) TO (10000)");
        run("INSERT INTO rgpart SELECT id, v FROM rgsrc");
        run("CREATE INDEX ON rgpart USING vhnsw (v vector_l2_ops)");
        run("ANALYZE rgpart");
        let q = &query_vectors("rgsrc_queries", 1)[0];
        run("SET LOCAL enable_indexscan = off");
        let r = one::<f64>(&format!(
            "SELECT v <-> '{q}' FROM rgpart ORDER BY 1 OFFSET 99 LIMIT 1"
        ));
        run("SET LOCAL enable_indexscan = on");
        let query = format!("SELECT id FROM rgpart WHERE v <<->> sphere($1::vector, {r})");
        let truth = answer(&query, q, false);
        run("SET LOCAL enable_seqscan = off");
        let plan = one::<pgrx::datum::Json>(&format!(
            "EXPLAIN (FORMAT JSON) SELECT id FROM rgpart WHERE v <<->> sphere('{q}'::vector, {r})"
        ))
        .0
        .to_string();
        run("SET LOCAL enable_seqscan = on");
        assert_eq!(plan.matches("\"Index Scan\"").count(), 2, "{plan}");
        let got = answer(&query, q, true);
        assert!(truth.len() >= 100 && got.iter().all(|id| truth.contains(id)));
        assert!(got.len() >= 95, "{} of {}", got.len(), truth.len());
        // Rows from both partitions.
        assert!(got.iter().any(|&id| id < 1500) && got.iter().any(|&id| id >= 1500));
        for part in ["rgpart_a", "rgpart_b"] {
            let index = one::<String>(&format!(
                "SELECT indexrelid::regclass::text FROM pg_index WHERE indrelid = '{part}'::regclass"
            ));
            assert_eq!(one::<String>(&format!("SELECT vhnsw_check('{index}')")), "");
        }
    }

    /// pgvector's setting under vdb's name: `off` stops after one search
    /// (at most `ef_search` rows), the two others keep going.
    #[pg_test]
    fn iterative_scan_follows_pgvector() {
        clustered_table("it", 2_000, 16, 10, 0.43);
        run("CREATE INDEX ON it USING vhnsw (v vector_l2_ops)");
        let q = &query_vectors("it_queries", 1)[0];
        let count = || {
            run("SET LOCAL enable_seqscan = off");
            let n = ids(
                "SELECT id FROM it ORDER BY v <-> $1::vector LIMIT 100",
                std::slice::from_ref(q),
            )
            .len();
            run("SET LOCAL enable_seqscan = on");
            n
        };
        run("SET LOCAL vhnsw.ef_search = 20");
        assert_eq!(one::<String>("SHOW vhnsw.iterative_scan"), "strict_order");
        assert_eq!(count(), 100);
        run("SET LOCAL vhnsw.iterative_scan = off");
        assert_eq!(count(), 20);
        run("SET LOCAL vhnsw.iterative_scan = relaxed_order");
        assert_eq!(count(), 100);
        let e = sql_error("SET vhnsw.iterative_scan = sometimes");
        assert!(e.starts_with("22023"), "{e}");
    }
}
