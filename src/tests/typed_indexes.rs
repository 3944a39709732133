//! vhnsw over `halfvec` and `bit`: recall of each operator class, sizes,
//! widths beyond pgvector's limits, expression indexes as pgvector
//! documents them, duplicates, writes and VACUUM; every index ends
//! `vhnsw_check` clean.

#[pgrx::pg_schema]
mod tests {
    use crate::tests::support::{check, clustered_table, ids, one, run, sql_error, uses_index};
    use pgrx::prelude::*;

    /// Every vhnsw index on `table` passes `vhnsw_check`.
    fn all_clean(table: &str) {
        let problems = one::<String>(&format!(
            "SELECT coalesce(string_agg(c.relname || ': ' || vhnsw_check(c.oid), E'\\n'), '')
             FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid JOIN pg_am a ON a.oid = c.relam
             WHERE i.indrelid = '{table}'::regclass AND a.amname = 'vhnsw' AND vhnsw_check(c.oid) <> ''"
        ));
        assert_eq!(problems, "", "vhnsw_check on {table}");
        assert!(
            one::<i64>(&format!(
                "SELECT count(*) FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid JOIN pg_am a ON a.oid = c.relam
                 WHERE i.indrelid = '{table}'::regclass AND a.amname = 'vhnsw'"
            )) > 0
        );
    }

    /// Recall@10 of the index for `expr op query`, counting a result as a
    /// hit when its distance is within the exact 10th distance (ties,
    /// which Hamming distances are full of, count as hits).
    fn recall(table: &str, expr: &str, op: &str, queries: &[String]) -> f64 {
        let mut hits = 0;
        for q in queries {
            let order = format!(
                "SELECT {expr} {op} {q} AS d FROM {table} ORDER BY {expr} {op} {q} LIMIT 10"
            );
            run("SET LOCAL enable_seqscan = off");
            run("SET LOCAL enable_indexscan = on");
            assert!(uses_index(&order), "{order}");
            let approx: Vec<f64> = column(&order);
            run("SET LOCAL enable_seqscan = on");
            run("SET LOCAL enable_indexscan = off");
            let exact: Vec<f64> = column(&order);
            assert_eq!(approx.len(), 10);
            let tenth = exact[9];
            hits += approx.iter().filter(|&&d| d <= tenth + 1e-9).count();
        }
        run("SET LOCAL enable_indexscan = on");
        hits as f64 / (queries.len() * 10) as f64
    }

    fn column(query: &str) -> Vec<f64> {
        Spi::connect(|c| {
            c.select(query, None, &[])
                .expect("query")
                .map(|r| r.get::<f64>(1).expect("d").expect("not null"))
                .collect()
        })
    }

    /// Query literals: the `_queries` rows of a clustered table as `ty`.
    fn queries(table: &str, expr: &str, ty: &str) -> Vec<String> {
        Spi::connect(|c| {
            c.select(
                &format!("SELECT quote_literal(({expr})::text) || '::{ty}' FROM {table}_queries ORDER BY id LIMIT 20"),
                None,
                &[],
            )
            .expect("queries")
            .map(|r| r.get::<String>(1).expect("q").expect("not null"))
            .collect()
        })
    }

    #[pg_test]
    fn halfvec_operator_classes_find_neighbours() {
        clustered_table("hc", 3_000, 32, 30, 0.4);
        run("ALTER TABLE hc ADD COLUMN h halfvec(32)");
        run("UPDATE hc SET h = v");
        let qs = queries("hc", "v::halfvec", "halfvec");
        for (opclass, op) in [
            ("halfvec_l2_ops", "<->"),
            ("halfvec_ip_ops", "<#>"),
            ("halfvec_cosine_ops", "<=>"),
            ("halfvec_l1_ops", "<+>"),
        ] {
            run(&format!(
                "CREATE INDEX hc_idx ON hc USING vhnsw (h {opclass})"
            ));
            run("SET LOCAL vhnsw.ef_search = 40");
            let r = recall("hc", "h", op, &qs);
            // Unnormalised inner products rank less well in any HNSW (as
            // for vector_ip_ops, see the index tests).
            let floor = if op == "<#>" { 0.75 } else { 0.95 };
            assert!(r >= floor, "{opclass}: recall {r}");
            all_clean("hc");
            run("DROP INDEX hc_idx");
        }
    }

    #[pg_test]
    fn bit_operator_classes_find_neighbours() {
        clustered_table("bc", 3_000, 128, 30, 0.5);
        run("ALTER TABLE bc ADD COLUMN b bit(128)");
        run("UPDATE bc SET b = binary_quantize(v)");
        let qs = queries("bc", "binary_quantize(v)", "bit(128)");
        for (opclass, op) in [("bit_hamming_ops", "<~>"), ("bit_jaccard_ops", "<%>")] {
            run(&format!(
                "CREATE INDEX bc_idx ON bc USING vhnsw (b {opclass})"
            ));
            run("SET LOCAL vhnsw.ef_search = 40");
            let r = recall("bc", "b", op, &qs);
            assert!(r >= 0.95, "{opclass}: recall {r}");
            all_clean("bc");
            run("DROP INDEX bc_idx");
        }
    }

    /// A halfvec index stores halves: about half the size of a vector
    /// index of the same data (both without codes, which only vector
    /// indexes carry).
    #[pg_test]
    fn halfvec_index_is_half_the_size() {
        clustered_table("hs", 2_000, 384, 20, 0.6);
        run("ALTER TABLE hs ADD COLUMN h halfvec(384)");
        run("UPDATE hs SET h = v");
        run("CREATE INDEX hs_v ON hs USING vhnsw (v vector_l2_ops) WITH (code_bits = 0)");
        run("CREATE INDEX hs_h ON hs USING vhnsw (h halfvec_l2_ops)");
        let ratio =
            one::<f64>("SELECT pg_relation_size('hs_h')::float8 / pg_relation_size('hs_v')");
        assert!(ratio < 0.6, "halfvec index / vector index = {ratio}");
        all_clean("hs");
    }

    /// Beyond pgvector's index limits: 16,000-dimension halfvecs (pgvector:
    /// 4,000) and 64,000-bit strings, each node spanning pages.
    #[pg_test]
    fn wide_halfvecs_and_bit_strings() {
        run("SELECT setseed(0.9)");
        run("CREATE TABLE wide AS SELECT i AS id,
                 ARRAY(SELECT random() + i * 0 FROM generate_series(1, 16000))::halfvec(16000) AS h,
                 (SELECT string_agg((random() < 0.5)::int::text, '') FROM generate_series(1, 64000) j WHERE j > i * 0)::bit(64000) AS b
             FROM generate_series(1, 40) i");
        run("CREATE INDEX ON wide USING vhnsw (h halfvec_l2_ops)");
        run("CREATE INDEX ON wide USING vhnsw (b bit_hamming_ops)");
        run("INSERT INTO wide SELECT 100 + id, h, b FROM wide WHERE id <= 3");
        run("SET LOCAL enable_seqscan = off");
        for (expr, op) in [("h", "<->"), ("b", "<~>")] {
            let query = format!("SELECT id FROM wide ORDER BY {expr} {op} (SELECT {expr} FROM wide WHERE id = 7) LIMIT 3");
            assert!(uses_index(&query));
            let mut got = ids(&query, &[]);
            got.sort_unstable();
            // Itself, then the next nearest (the copies are of rows 1-3).
            assert!(got.contains(&7), "{expr}: {got:?}");
        }
        let got = ids(
            "SELECT id FROM wide ORDER BY h <-> (SELECT h FROM wide WHERE id = 2) LIMIT 2",
            &[],
        );
        assert_eq!(
            {
                let mut g = got;
                g.sort_unstable();
                g
            },
            vec![2, 102]
        );
        all_clean("wide");
    }

    /// A zero halfvec query under cosine: every distance NaN, every row
    /// returned (its point packed as the stored ones are).
    #[pg_test]
    fn a_zero_halfvec_query_returns_every_row() {
        run("CREATE TABLE zh AS SELECT i AS id, ARRAY[i % 7 + 1, i % 5]::halfvec(2) AS h FROM generate_series(1, 500) i");
        run("CREATE INDEX ON zh USING vhnsw (h halfvec_cosine_ops)");
        run("SET LOCAL enable_seqscan = off");
        let query = "SELECT id FROM zh ORDER BY h <=> '[0,0]' LIMIT 600";
        assert!(uses_index(query));
        assert_eq!(ids(query, &[]).len(), 500);
    }

    #[pg_test]
    fn dimension_and_length_mismatches_are_errors() {
        run("CREATE TABLE mm (id int, h halfvec, b bit varying)");
        run("INSERT INTO mm VALUES (1, '[1,2,3,4]', B'1011')");
        run("CREATE INDEX mm_h ON mm USING vhnsw (h halfvec_l2_ops)");
        assert_eq!(
            sql_error("INSERT INTO mm VALUES (2, '[1,2,3]', NULL)"),
            "22000 expected 4 dimensions, not 3"
        );
        // The same message from a table scan and an index scan.
        for scan in ["seqscan", "indexscan"] {
            run(&format!("SET LOCAL enable_{scan} = off"));
            assert_eq!(
                sql_error("SELECT id FROM mm ORDER BY h <-> '[1,2,3]' LIMIT 1"),
                "22000 different halfvec dimensions 4 and 3"
            );
            run(&format!("RESET enable_{scan}"));
        }
        run("CREATE INDEX mm_b ON mm USING vhnsw (b bit_hamming_ops)");
        assert_eq!(
            sql_error("INSERT INTO mm VALUES (3, NULL, B'10')"),
            "22000 expected 4 dimensions, not 2"
        );
        run("SET LOCAL enable_seqscan = off");
        assert_eq!(
            sql_error("SELECT id FROM mm ORDER BY b <~> B'101' LIMIT 1"),
            "22000 different bit lengths 4 and 3"
        );
    }

    /// pgvector's documented recipes: index a quantized expression and
    /// re-rank in SQL; index a halfvec cast of a vector column.
    #[pg_test]
    fn expression_indexes_as_pgvector_documents_them() {
        clustered_table("ex", 3_000, 64, 30, 0.8);
        run("CREATE INDEX ex_bq ON ex USING vhnsw ((binary_quantize(v)::bit(64)) bit_hamming_ops)");
        run("CREATE INDEX ex_hv ON ex USING vhnsw ((v::halfvec(64)) halfvec_cosine_ops)");
        run("ANALYZE ex");
        run("SET LOCAL enable_seqscan = off");
        let q = one::<String>("SELECT v::text FROM ex_queries ORDER BY id LIMIT 1");
        let shortlist = format!(
            "SELECT id FROM ex ORDER BY binary_quantize(v)::bit(64) <~> binary_quantize('{q}'::vector) LIMIT 100"
        );
        assert!(uses_index(&shortlist), "{shortlist}");
        let reranked = ids(
            &format!(
                "SELECT id FROM ({shortlist}) s JOIN ex USING (id) ORDER BY v <=> '{q}' LIMIT 5"
            ),
            &[],
        );
        let by_cast =
            format!("SELECT id FROM ex ORDER BY v::halfvec(64) <=> '{q}'::halfvec(64) LIMIT 5");
        assert!(uses_index(&by_cast), "{by_cast}");
        let approx = ids(&by_cast, &[]);
        run("SET LOCAL enable_indexscan = off");
        run("SET LOCAL enable_seqscan = on");
        let exact = ids(
            &format!("SELECT id FROM ex ORDER BY v <=> '{q}' LIMIT 5"),
            &[],
        );
        let hits = |got: &[i32]| got.iter().filter(|id| exact.contains(id)).count();
        assert!(hits(&reranked) >= 4, "re-ranked {reranked:?} vs {exact:?}");
        assert!(hits(&approx) >= 4, "halfvec {approx:?} vs {exact:?}");
        all_clean("ex");
    }

    #[pg_test]
    fn duplicates_writes_and_vacuum() {
        run("CREATE TABLE dw (id int, h halfvec(3), b bit(40))");
        run("INSERT INTO dw SELECT i, '[1,2,3]', B'1'::bit(40) FROM generate_series(1, 300) i");
        run("INSERT INTO dw SELECT i, ARRAY[i % 97, i % 13, -i % 7]::halfvec, (i * 2654435761 % 1099511627776)::bit(40) FROM generate_series(301, 2000) i");
        run("CREATE INDEX dw_h ON dw USING vhnsw (h halfvec_l2_ops)");
        run("CREATE INDEX dw_hc ON dw USING vhnsw (h halfvec_cosine_ops)");
        run("CREATE INDEX dw_b ON dw USING vhnsw (b bit_hamming_ops)");
        run("CREATE INDEX dw_j ON dw USING vhnsw (b bit_jaccard_ops)");
        run("INSERT INTO dw SELECT i, '[1,2,3]', B'1'::bit(40) FROM generate_series(2001, 2100) i");
        run("SET LOCAL enable_seqscan = off");
        let got = ids("SELECT id FROM dw ORDER BY h <-> '[1,2,3]' LIMIT 400", &[]);
        assert_eq!(
            got.iter().filter(|&&id| id <= 300 || id > 2000).count(),
            400
        );
        let got = ids(
            "SELECT id FROM dw ORDER BY b <~> B'1'::bit(40) LIMIT 400",
            &[],
        );
        assert_eq!(
            got.iter().filter(|&&id| id <= 300 || id > 2000).count(),
            400
        );
        run("DELETE FROM dw WHERE id % 3 = 0");
        run("UPDATE dw SET h = '[5,5,5]' WHERE id % 3 = 1 AND id > 1500");
        all_clean("dw");
        check("SELECT vhnsw_merge('dw_h') >= 0");
        // Postgres's own VACUUM runs outside transactions: the VACUUM
        // paths are in the integration tests; here the index answers for
        // what is left.
        let got = ids("SELECT id FROM dw ORDER BY h <-> '[5,5,5]' LIMIT 5", &[]);
        assert!(got.iter().all(|id| id % 3 == 1 && *id > 1500), "{got:?}");
        all_clean("dw");
    }

    #[pg_test]
    fn sparsevec_operator_classes_find_neighbours() {
        clustered_table("sc", 3_000, 200, 30, 0.45);
        // About half the coordinates zero.
        run("ALTER TABLE sc ADD COLUMN s sparsevec(200)");
        run("UPDATE sc SET s = ARRAY(SELECT CASE WHEN abs(x) < 0.5 THEN 0 ELSE x END FROM unnest(v::real[]) x)::vector::sparsevec");
        let qs = queries(
            "sc",
            "ARRAY(SELECT CASE WHEN abs(x) < 0.5 THEN 0 ELSE x END FROM unnest(v::real[]) x)::vector::sparsevec",
            "sparsevec",
        );
        for (opclass, op) in [
            ("sparsevec_l2_ops", "<->"),
            ("sparsevec_ip_ops", "<#>"),
            ("sparsevec_cosine_ops", "<=>"),
            ("sparsevec_l1_ops", "<+>"),
        ] {
            run(&format!(
                "CREATE INDEX sc_idx ON sc USING vhnsw (s {opclass})"
            ));
            run("SET LOCAL vhnsw.ef_search = 40");
            let r = recall("sc", "s", op, &qs);
            let floor = if op == "<#>" { 0.75 } else { 0.95 };
            assert!(r >= floor, "{opclass}: recall {r}");
            all_clean("sc");
            run("DROP INDEX sc_idx");
        }
    }

    /// Beyond pgvector's 1,000 non-zeros: an index holds what `max_nnz`
    /// says (by default a page's worth), and a vector with more is an
    /// error naming the option.
    #[pg_test]
    fn sparsevec_indexes_hold_max_nnz_non_zeros() {
        run("SELECT setseed(0.21)");
        // 30,522 dimensions (a SPLADE vocabulary), 2,500 non-zeros each.
        run("CREATE TABLE splade AS SELECT i AS id,
                 (SELECT ('{' || string_agg(j || ':' || round((random() + 0.01)::numeric, 3), ',' ORDER BY j) || '}/30522')
                  FROM (SELECT DISTINCT (random() * 30000)::int + 1 + i * 0 AS j FROM generate_series(1, 2600)) d)::sparsevec AS s
             FROM generate_series(1, 60) i");
        check("SELECT min(length(s::text) - length(replace(s::text, ':', ''))) > 2000 FROM splade");
        run("CREATE INDEX splade_big ON splade USING vhnsw (s sparsevec_ip_ops) WITH (max_nnz = 3000)");
        run("SET LOCAL enable_seqscan = off");
        let query =
            "SELECT id FROM splade ORDER BY s <#> (SELECT s FROM splade WHERE id = 17) LIMIT 1";
        assert!(uses_index(query));
        assert_eq!(ids(query, &[]), vec![17]);
        all_clean("splade");
        assert_eq!(
            sql_error("CREATE INDEX splade_small ON splade USING vhnsw (s sparsevec_l2_ops)"),
            format!(
                "54000 sparsevec has {} non-zero elements, more than this index holds (999)",
                one::<i32>("SELECT length(s::text) - length(replace(s::text, ':', '')) FROM splade ORDER BY ctid LIMIT 1")
            )
        );
        assert_eq!(
            sql_error("CREATE INDEX splade_bad ON splade USING vhnsw (s sparsevec_l2_ops) WITH (max_nnz = 16001)"),
            "22023 value 16001 out of bounds for option \"max_nnz\""
        );
        run("CREATE INDEX splade_max ON splade USING vhnsw (s sparsevec_cosine_ops) WITH (max_nnz = 16000)");
        let query =
            "SELECT id FROM splade ORDER BY s <=> (SELECT s FROM splade WHERE id = 5) LIMIT 1";
        assert_eq!(ids(query, &[]), vec![5]);
        all_clean("splade");
        // A query is not held to the index's capacity.
        run("CREATE TABLE few (id int, s sparsevec(30522))");
        run("INSERT INTO few SELECT id, ('{' || id || ':1}/30522')::sparsevec FROM splade");
        run("CREATE INDEX few_idx ON few USING vhnsw (s sparsevec_ip_ops) WITH (max_nnz = 4)");
        let query = "SELECT id FROM few ORDER BY s <#> (SELECT s FROM splade WHERE id = 9) LIMIT 3";
        assert!(uses_index(query));
        assert_eq!(ids(query, &[]).len(), 3);
        assert_eq!(
            sql_error("INSERT INTO few VALUES (0, '{1:1,2:1,3:1,4:1,5:1}/30522')"),
            "54000 sparsevec has 5 non-zero elements, more than this index holds (4)"
        );
        all_clean("few");
    }

    #[pg_test]
    fn operator_classes_validate() {
        for opclass in [
            "halfvec_l2_ops",
            "halfvec_ip_ops",
            "halfvec_cosine_ops",
            "halfvec_l1_ops",
            "bit_hamming_ops",
            "bit_jaccard_ops",
            "sparsevec_l2_ops",
            "sparsevec_ip_ops",
            "sparsevec_cosine_ops",
            "sparsevec_l1_ops",
        ] {
            check(&format!(
                "SELECT amvalidate(c.oid) FROM pg_opclass c JOIN pg_am a ON a.oid = c.opcmethod WHERE a.amname = 'vhnsw' AND c.opcname = '{opclass}'"
            ));
        }
    }
}
