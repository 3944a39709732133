//! `sparsevec`: I/O, operators, functions, casts and errors against pgvector's surface.
//!
//! Expected texts and messages are pgvector 0.8's (its `test/expected/`).

#[pgrx::pg_schema]
mod tests {
    use crate::sparsevec::binary::encode;
    use crate::tests::support::{check, close, one, run, sql_error, write_copy_file};
    use pgrx::prelude::*;

    fn text(query: &str) -> String {
        one::<String>(query)
    }

    /// `"<SQLSTATE> <message> | <detail>"` of the error `query` raises.
    fn error_with_detail(query: &str) -> String {
        run("CREATE OR REPLACE FUNCTION pg_temp.error_detail(q text) RETURNS text LANGUAGE plpgsql AS $f$
             DECLARE d text;
             BEGIN EXECUTE q; RETURN 'no error';
             EXCEPTION WHEN OTHERS THEN
                 GET STACKED DIAGNOSTICS d = PG_EXCEPTION_DETAIL;
                 RETURN SQLSTATE || ' ' || SQLERRM || ' | ' || d;
             END $f$");
        Spi::get_one_with_args::<String>("SELECT pg_temp.error_detail($1)", &[query.into()])
            .expect("query runs")
            .expect("not null")
    }

    #[pg_test]
    fn sparsevec_text_input_and_output() {
        for (input, output) in [
            ("{1:1.5,3:3.5}/5", "{1:1.5,3:3.5}/5"),
            ("{1:-2,3:-4}/5", "{1:-2,3:-4}/5"),
            ("{1:2.,3:4.}/5", "{1:2,3:4}/5"),
            (" { 1 : 1.5 ,  3  :  3.5  } / 5 ", "{1:1.5,3:3.5}/5"),
            ("{1:1.23456}/1", "{1:1.23456}/1"),
            ("{1:1.5e38,2:-1.5e38}/2", "{1:1.5e+38,2:-1.5e+38}/2"),
            ("{1:1.5e+38,2:-1.5e+38}/2", "{1:1.5e+38,2:-1.5e+38}/2"),
            ("{1:1.5e-38,2:-1.5e-38}/2", "{1:1.5e-38,2:-1.5e-38}/2"),
            ("{}/1", "{}/1"),
            ("{ }/1", "{}/1"),
            ("{}/5", "{}/5"),
            ("{}/1000000000", "{}/1000000000"),
            ("{1000000000:1}/1000000000", "{1000000000:1}/1000000000"),
            // Zeros are not stored; pairs are sorted.
            ("{1:0,2:1,3:0}/3", "{2:1}/3"),
            ("{1:-0}/3", "{}/3"),
            ("{2:1,1:1}/2", "{1:1,2:1}/2"),
            (
                "{1:1e-7,2:1234567,3:-0.03}/3",
                "{1:1e-07,2:1.234567e+06,3:-0.03}/3",
            ),
            ("\t{\n+1:+1}\r/\x0b+2\x0c", "{1:1}/2"),
        ] {
            let input = input.replace('\'', "''");
            assert_eq!(
                text(&format!("SELECT '{input}'::sparsevec::text")),
                output,
                "{input:?}"
            );
        }
        assert_eq!(text("SELECT '{}/3'::sparsevec(3)::text"), "{}/3");
        assert_eq!(
            text("SELECT format_type('sparsevec'::regtype, 3)"),
            "sparsevec(3)"
        );
        check("SELECT obj_description('sparsevec'::regtype, 'pg_type') = 'single-precision sparse vector'");
    }

    /// Every value prints exactly as PostgreSQL prints the same `real`, and
    /// reads back to the same value.
    #[pg_test]
    fn sparsevec_output_matches_postgres_real_output() {
        run("SELECT setseed(0.75)");
        run("CREATE TEMP TABLE f AS
             SELECT ((random() * 2 - 1) * 10 ^ (random() * 76 - 38))::real AS x
             FROM generate_series(1, 20000)
             UNION ALL SELECT unnest('{1,100000,1e6,0.0001,1e-5,1.4e-45,3.4028235e38,-1.1754944e-38}'::real[])");
        let mismatches = one::<i64>(
            "SELECT count(*) FROM f WHERE x <> 0 AND (
                 format('{7:%s}/9', x)::sparsevec::text <> format('{7:%s}/9', x::text)
                 OR format('{7:%s}/9', x)::sparsevec::text::sparsevec::vector::real[] <> array_fill(0, ARRAY[6])::real[] || x || ARRAY[0, 0]::real[])",
        );
        assert_eq!(mismatches, 0);
    }

    /// The value in storage is pgvector's struct: int32 dim, nnz, unused,
    /// then 0-based int32 indices and float4 values (native byte order).
    #[pg_test]
    fn sparsevec_storage_layout_is_pgvector_layout() {
        // Reinterpret the varlena's bytes as a bytea (a binary-coercible
        // cast, rolled back with the test).
        run("CREATE CAST (sparsevec AS bytea) WITHOUT FUNCTION");
        let bytes = one::<Vec<u8>>("SELECT '{2:1.5,4:-2}/5'::sparsevec::bytea");
        let mut want = Vec::new();
        for word in [5i32, 2, 0, 1, 3] {
            want.extend_from_slice(&word.to_ne_bytes());
        }
        want.extend_from_slice(&1.5f32.to_ne_bytes());
        want.extend_from_slice(&(-2.0f32).to_ne_bytes());
        assert_eq!(bytes, want);
        assert_eq!(one::<i32>("SELECT pg_column_size('{}/7'::sparsevec)"), 16);
        assert_eq!(
            one::<i32>("SELECT pg_column_size('{1:1,2:2,7:3}/7'::sparsevec)"),
            16 + 8 * 3
        );
        check(
            "SELECT typstorage = 'e' AND typalign = 'i' AND typlen = -1
             FROM pg_type WHERE oid = 'sparsevec'::regtype",
        );
    }

    #[pg_test]
    fn sparsevec_malformed_text() {
        for input in [
            "{1:hello,2:1}/2",
            "{",
            "{ ",
            "{:",
            "{,",
            "{}/",
            "{:}/1",
            "{,}/1",
            "{1,}/1",
            "{:1}/1",
            "{1:}/1",
            "{1a:1}/1",
            "{1:1a}/1",
            "{1:1,}/1",
        ] {
            assert_eq!(
                sql_error(&format!("SELECT '{input}'::sparsevec")),
                format!("22P02 invalid input syntax for type sparsevec: \"{input}\""),
            );
        }
        assert_eq!(
            error_with_detail("SELECT ''::sparsevec"),
            "22P02 invalid input syntax for type sparsevec: \"\" | Vector contents must start with \"{\"."
        );
        assert_eq!(
            error_with_detail("SELECT '[1,2]'::sparsevec"),
            "22P02 invalid input syntax for type sparsevec: \"[1,2]\" | Vector contents must start with \"{\"."
        );
        assert_eq!(
            error_with_detail("SELECT '{}'::sparsevec"),
            "22P02 invalid input syntax for type sparsevec: \"{}\" | Unexpected end of input."
        );
        assert_eq!(
            error_with_detail("SELECT '{}/1a'::sparsevec"),
            "22P02 invalid input syntax for type sparsevec: \"{}/1a\" | Junk after closing."
        );
        assert_eq!(
            error_with_detail("SELECT '{1:1}/'::sparsevec"),
            "22P02 invalid input syntax for type sparsevec: \"{1:1}/\" | "
        );
    }

    #[pg_test]
    fn sparsevec_bad_values_and_indices() {
        for (input, error) in [
            ("{1:NaN,2:1}/2", "22000 NaN not allowed in sparsevec"),
            (
                "{1:Infinity,2:1}/2",
                "22000 infinite value not allowed in sparsevec",
            ),
            (
                "{1:-Infinity,2:1}/2",
                "22000 infinite value not allowed in sparsevec",
            ),
            (
                "{1:4e38,2:1}/2",
                "22003 \"4e38\" is out of range for type sparsevec",
            ),
            (
                "{1:-4e38,2:1}/2",
                "22003 \"-4e38\" is out of range for type sparsevec",
            ),
            (
                "{1:1e-46,2:1}/2",
                "22003 \"1e-46\" is out of range for type sparsevec",
            ),
            (
                "{1:-1e-46,2:1}/2",
                "22003 \"-1e-46\" is out of range for type sparsevec",
            ),
            (
                "{1:1,1:1}/2",
                "22000 sparsevec indices must not contain duplicates",
            ),
            (
                "{1:1,2:1,1:1}/2",
                "22000 sparsevec indices must not contain duplicates",
            ),
            ("{2147483647:1}/1", "22000 sparsevec index out of bounds"),
            ("{2147483648:1}/1", "22000 sparsevec index out of bounds"),
            ("{-2147483648:1}/1", "22000 sparsevec index out of bounds"),
            ("{-2147483649:1}/1", "22000 sparsevec index out of bounds"),
            ("{0:1}/1", "22000 sparsevec index out of bounds"),
            ("{2:1}/1", "22000 sparsevec index out of bounds"),
        ] {
            assert_eq!(
                sql_error(&format!("SELECT '{input}'::sparsevec")),
                error,
                "{input}"
            );
        }
    }

    #[pg_test]
    fn sparsevec_dimension_and_typmod_errors() {
        let few = "22000 sparsevec must have at least 1 dimension";
        let many = "54000 sparsevec cannot have more than 1000000000 dimensions";
        for (input, error) in [
            ("{}/0", few),
            ("{}/-1", few),
            ("{}/-2147483649", few),
            ("{}/-9223372036854775809", few),
            ("{}/1000000001", many),
            ("{}/2147483648", many),
            ("{}/9223372036854775808", many),
        ] {
            assert_eq!(sql_error(&format!("SELECT '{input}'::sparsevec")), error);
        }
        assert_eq!(
            sql_error("SELECT '{}/3'::sparsevec(2)"),
            "22000 expected 2 dimensions, not 3"
        );
        assert_eq!(
            sql_error("SELECT '{}/3'::sparsevec(3, 2)"),
            "22023 invalid type modifier"
        );
        assert_eq!(
            sql_error("SELECT '{}/3'::sparsevec('a')"),
            "22P02 invalid input syntax for type integer: \"a\""
        );
        assert_eq!(
            sql_error("SELECT '{}/3'::sparsevec(0)"),
            "22023 dimensions for type sparsevec must be at least 1"
        );
        assert_eq!(
            sql_error("SELECT '{}/3'::sparsevec(1000000001)"),
            "22023 dimensions for type sparsevec cannot exceed 1000000000"
        );
        // The typmod holds on columns: input, assignment from another
        // sparsevec and from a vector.
        run("CREATE TEMP TABLE t3 (v sparsevec(3))");
        run("INSERT INTO t3 VALUES ('{1:1}/3'), ('[0,2,0]'::vector)");
        assert_eq!(
            sql_error("INSERT INTO t3 VALUES ('{1:1}/4')"),
            "22000 expected 3 dimensions, not 4"
        );
        assert_eq!(
            sql_error("INSERT INTO t3 VALUES ('{1:1}/4'::sparsevec)"),
            "22000 expected 3 dimensions, not 4"
        );
        assert_eq!(
            sql_error("INSERT INTO t3 VALUES ('[1,2]'::vector)"),
            "22000 expected 3 dimensions, not 2"
        );
        assert_eq!(
            text("SELECT string_agg(v::text, ' ' ORDER BY v) FROM t3"),
            "{2:2}/3 {1:1}/3"
        );
    }

    #[pg_test]
    fn sparsevec_non_zero_element_limit() {
        let pairs = |n: usize| {
            let body: Vec<String> = (1..=n).map(|i| format!("{i}:{i}")).collect();
            format!("{{{}}}/{}", body.join(","), n)
        };
        assert_eq!(
            one::<i32>(&format!(
                "SELECT pg_column_size('{}'::sparsevec)",
                pairs(16_000)
            )),
            16 + 8 * 16_000
        );
        assert_eq!(
            sql_error(&format!("SELECT '{}'::sparsevec", pairs(16_001))),
            "54000 sparsevec cannot have more than 16000 non-zero elements"
        );
        // Stored (and toasted: 128 kB) and read back whole.
        run("CREATE TEMP TABLE big (v sparsevec)");
        run(&format!("INSERT INTO big VALUES ('{}')", pairs(16_000)));
        check(&format!("SELECT v::text = '{}' FROM big", pairs(16_000)));
        close(
            "SELECT l2_norm(v) FROM big",
            (1..=16_000u64).map(|i| (i * i) as f64).sum::<f64>().sqrt(),
        );
    }

    #[pg_test]
    fn sparsevec_binary_send_is_pgvector_format() {
        let bytes = one::<Vec<u8>>("SELECT sparsevec_send('{2:1.5,4:-2}/5')");
        let mut want = Vec::new();
        for word in [5i32, 2, 0, 1, 3] {
            want.extend_from_slice(&word.to_be_bytes());
        }
        want.extend_from_slice(&1.5f32.to_be_bytes());
        want.extend_from_slice(&(-2.0f32).to_be_bytes());
        assert_eq!(bytes, want);
        assert_eq!(bytes, encode(5, &[1, 3], &[1.5, -2.0]));
        assert_eq!(
            one::<Vec<u8>>("SELECT sparsevec_send('{}/1000000000')"),
            encode(1_000_000_000, &[], &[])
        );
    }

    fn copy_file(tag: &str) -> String {
        format!("/tmp/vdb_test_{}_sparsevec_{tag}.bin", std::process::id())
    }

    /// `COPY ... (FORMAT binary)` out and back in reproduces every value
    /// exactly (`sparsevec_send`, then `sparsevec_recv`).
    #[pg_test]
    fn sparsevec_binary_copy_round_trips_exactly() {
        run("SELECT setseed(0.125)");
        run("CREATE TEMP TABLE src AS
             SELECT i AS id, (SELECT array_agg(CASE WHEN random() < 0.7 THEN 0
                                   ELSE ((random() * 2 - 1) * 10 ^ (random() * 60 - 30))::real END)
                              FROM generate_series(1, 1 + (i * 37) % 500) WHERE i > 0)::sparsevec AS v
             FROM generate_series(1, 300) i
             UNION ALL SELECT 0, '{}/1000000000'::sparsevec
             UNION ALL SELECT -1, NULL");
        run("CREATE TEMP TABLE dst (id int, v sparsevec)");
        let path = copy_file("roundtrip");
        run(&format!("COPY src TO '{path}' (FORMAT binary)"));
        run(&format!("COPY dst FROM '{path}' (FORMAT binary)"));
        let _ = std::fs::remove_file(&path);
        assert_eq!(one::<i64>("SELECT count(*) FROM dst"), 302);
        assert!(one::<i64>("SELECT count(*) FILTER (WHERE l2_norm(v) > 0) FROM dst") > 250);
        let differing = one::<i64>(
            "SELECT count(*) FROM src FULL JOIN dst USING (id)
             WHERE src.v::text IS DISTINCT FROM dst.v::text
                OR sparsevec_send(src.v) IS DISTINCT FROM sparsevec_send(dst.v)",
        );
        assert_eq!(differing, 0);
    }

    #[pg_test]
    fn sparsevec_binary_input_is_validated() {
        run("CREATE TEMP TABLE t (v sparsevec)");
        run("CREATE TEMP TABLE t5 (v sparsevec(5))");
        let path = copy_file("bad");
        let copy_error = |table: &str, payload: Vec<u8>| {
            write_copy_file(&path, &payload);
            sql_error(&format!("COPY {table} FROM '{path}' (FORMAT binary)"))
        };
        let with_header = |dim: i32, nnz: i32, unused: i32, tail: &[u8]| {
            let mut out = Vec::new();
            for word in [dim, nnz, unused] {
                out.extend_from_slice(&word.to_be_bytes());
            }
            out.extend_from_slice(tail);
            out
        };

        let good = encode(5, &[1, 3], &[1.5, -2.0]);
        assert_eq!(copy_error("t", good.clone()), "no error");
        assert_eq!(copy_error("t5", good.clone()), "no error");
        check("SELECT bool_and(v = '{2:1.5,4:-2}/5') AND count(*) = 1 FROM t");

        let mut short = good.clone();
        short.pop();
        assert!(copy_error("t", short).starts_with("22P03 invalid binary data for type sparsevec"));
        let mut long = good.clone();
        long.extend_from_slice(&[0, 0, 0, 0]);
        assert!(copy_error("t", long).starts_with("22P03 "));
        assert!(copy_error("t", vec![0, 0, 0, 5, 0, 0]).starts_with("22P03 "));

        for (payload, error) in [
            (
                encode(0, &[], &[]),
                "22000 sparsevec must have at least 1 dimension",
            ),
            (
                encode(1_000_000_001, &[], &[]),
                "54000 sparsevec cannot have more than 1000000000 dimensions",
            ),
            (
                with_header(5, -1, 0, &[]),
                "22000 sparsevec cannot have negative number of elements",
            ),
            (
                with_header(100_000, 16_001, 0, &[]),
                "54000 sparsevec cannot have more than 16000 non-zero elements",
            ),
            (
                encode(2, &[0, 1, 1], &[1.0, 1.0, 1.0]),
                "54000 sparsevec cannot have more elements than dimensions",
            ),
            (
                with_header(5, 0, 7, &[]),
                "22000 expected unused to be 0, not 7",
            ),
            (
                encode(5, &[5], &[1.0]),
                "22000 sparsevec index out of bounds",
            ),
            (
                encode(5, &[-1], &[1.0]),
                "22000 sparsevec index out of bounds",
            ),
            (
                encode(5, &[3, 1], &[1.0, 1.0]),
                "22000 sparsevec indices must be in ascending order",
            ),
            (
                encode(5, &[1, 1], &[1.0, 1.0]),
                "22000 sparsevec indices must not contain duplicates",
            ),
            (
                encode(5, &[1], &[f32::NAN]),
                "22000 NaN not allowed in sparsevec",
            ),
            (
                encode(5, &[1], &[f32::NEG_INFINITY]),
                "22000 infinite value not allowed in sparsevec",
            ),
            (
                encode(5, &[1, 2], &[1.0, 0.0]),
                "22000 binary representation of sparsevec cannot contain zero values",
            ),
            (
                encode(5, &[1], &[-0.0]),
                "22000 binary representation of sparsevec cannot contain zero values",
            ),
        ] {
            assert_eq!(copy_error("t", payload), error);
        }
        assert_eq!(
            copy_error("t5", encode(4, &[1], &[1.0])),
            "22000 expected 5 dimensions, not 4"
        );
        let _ = std::fs::remove_file(&path);
        // Nothing but the two good rows went in.
        assert_eq!(one::<i64>("SELECT count(*) FROM t"), 1);
    }

    #[pg_test]
    fn sparsevec_distances_match_pgvector() {
        for (query, want) in [
            ("l2_distance('{}/2'::sparsevec, '{1:3,2:4}/2')", 5.0),
            ("l2_distance('{1:3}/2'::sparsevec, '{2:4}/2')", 5.0),
            ("l2_distance('{2:4}/2'::sparsevec, '{1:3}/2')", 5.0),
            ("l2_distance('{1:3,2:4}/2'::sparsevec, '{}/2')", 5.0),
            ("l2_distance('{}/2'::sparsevec, '{2:1}/2')", 1.0),
            ("'{}/2'::sparsevec <-> '{1:3,2:4}/2'", 5.0),
            ("'{1:3,2:4}/2' <-> '{}/2'::sparsevec", 5.0),
            (
                "sparsevec_l2_squared_distance('{1:3}/2'::sparsevec, '{2:4}/2')",
                25.0,
            ),
            (
                "inner_product('{1:1,2:2}/2'::sparsevec, '{1:2,2:4}/2')",
                10.0,
            ),
            (
                "inner_product('{1:1,3:3}/4'::sparsevec, '{2:2,4:4}/4')",
                0.0,
            ),
            (
                "inner_product('{2:2,4:4}/4'::sparsevec, '{1:1,3:3}/4')",
                0.0,
            ),
            (
                "inner_product('{1:1,3:3,5:5}/5'::sparsevec, '{2:4,3:6,4:8}/5')",
                18.0,
            ),
            ("inner_product('{1:1}/2'::sparsevec, '{}/2')", 0.0),
            ("inner_product('{}/2'::sparsevec, '{1:1}/2')", 0.0),
            ("'{1:1,2:2}/2'::sparsevec <#> '{1:3,2:4}/2'", -11.0),
            (
                "sparsevec_negative_inner_product('{1:1,2:2}/2'::sparsevec, '{1:3,2:4}/2')",
                -11.0,
            ),
            (
                "cosine_distance('{1:1,2:2}/2'::sparsevec, '{1:2,2:4}/2')",
                0.0,
            ),
            (
                "cosine_distance('{1:1,2:1}/2'::sparsevec, '{1:1,2:1}/2')",
                0.0,
            ),
            ("cosine_distance('{1:1}/2'::sparsevec, '{2:2}/2')", 1.0),
            (
                "cosine_distance('{1:1,2:1}/2'::sparsevec, '{1:-1,2:-1}/2')",
                2.0,
            ),
            ("cosine_distance('{1:2}/2'::sparsevec, '{2:2}/2')", 1.0),
            ("cosine_distance('{2:2}/2'::sparsevec, '{1:2}/2')", 1.0),
            (
                "cosine_distance('{1:1,2:1}/2'::sparsevec, '{1:1.1,2:1.1}/2')",
                0.0,
            ),
            (
                "cosine_distance('{1:1,2:1}/2'::sparsevec, '{1:-1.1,2:-1.1}/2')",
                2.0,
            ),
            ("'{1:1,2:2}/2'::sparsevec <=> '{1:2,2:4}/2'", 0.0),
            ("l1_distance('{}/2'::sparsevec, '{1:3,2:4}/2')", 7.0),
            ("l1_distance('{}/2'::sparsevec, '{2:1}/2')", 1.0),
            (
                "l1_distance('{1:1,3:3,5:5,7:7}/8'::sparsevec, '{2:2,4:4,6:6,8:8}/8')",
                36.0,
            ),
            (
                "l1_distance('{1:1,3:3,5:5,7:7,9:9}/9'::sparsevec, '{2:2,4:4,6:6,8:8}/9')",
                45.0,
            ),
            ("'{}/2'::sparsevec <+> '{1:3,2:4}/2'", 7.0),
            (
                "'{1:1}/1000000000'::sparsevec <-> '{1000000000:1}/1000000000'",
                2f64.sqrt(),
            ),
        ] {
            // pgvector's results are exact here.
            assert_eq!(one::<f64>(&format!("SELECT {query}")), want, "{query}");
        }
        // float4 accumulation overflows to Infinity, as in pgvector; a
        // zero or overflowing norm gives NaN.
        assert_eq!(
            text("SELECT inner_product('{1:3e38}/1'::sparsevec, '{1:3e38}/1')::text"),
            "Infinity"
        );
        assert_eq!(
            text("SELECT l1_distance('{1:3e38}/1'::sparsevec, '{1:-3e38}/1')::text"),
            "Infinity"
        );
        for query in [
            "cosine_distance('{1:1,2:2}/2'::sparsevec, '{}/2')",
            "cosine_distance('{1:3e38}/1'::sparsevec, '{1:3e38}/1')",
            "cosine_distance('{}/1'::sparsevec, '{}/1')",
        ] {
            assert_eq!(text(&format!("SELECT ({query})::text")), "NaN", "{query}");
        }
    }

    #[pg_test]
    fn sparsevec_different_dimensions_are_an_error() {
        for f in [
            "l2_distance",
            "inner_product",
            "cosine_distance",
            "l1_distance",
            "sparsevec_l2_squared_distance",
            "sparsevec_negative_inner_product",
        ] {
            assert_eq!(
                sql_error(&format!(
                    "SELECT {f}('{{1:1,2:2}}/2'::sparsevec, '{{1:3}}/1')"
                )),
                "22000 different sparsevec dimensions 2 and 1",
                "{f}"
            );
        }
        for op in ["<->", "<#>", "<=>", "<+>"] {
            assert_eq!(
                sql_error(&format!("SELECT '{{}}/3'::sparsevec {op} '{{}}/4'")),
                "22000 different sparsevec dimensions 3 and 4",
                "{op}"
            );
        }
    }

    /// On random sparse data, every distance agrees with the same distance
    /// on the equivalent dense `vector`, operators agree with functions,
    /// and commuted operands give the same result.
    #[pg_test]
    fn sparsevec_distances_agree_with_vector() {
        run("SELECT setseed(0.375)");
        run("CREATE TEMP TABLE p AS
             SELECT i AS id, s.a, s.b FROM generate_series(1, 400) i,
             LATERAL (SELECT 1 + (random() * 400)::int + i * 0 AS d) dd,
             LATERAL (SELECT
                 (SELECT array_agg(CASE WHEN random() < 0.6 THEN 0 ELSE (random() * 2 - 1) * 10 ^ (random() * 6 - 3) END)
                  FROM generate_series(1, dd.d))::vector AS a,
                 (SELECT array_agg(CASE WHEN random() < 0.6 THEN 0 ELSE (random() * 2 - 1) * 10 ^ (random() * 6 - 3) END)
                  FROM generate_series(1, dd.d))::vector AS b) s");
        run("CREATE TEMP TABLE q AS SELECT id, a, b, a::sparsevec AS sa, b::sparsevec AS sb,
                 (SELECT sum(abs(x::float8 * y)) FROM unnest(a::real[], b::real[]) u(x, y)) AS abs_ip
             FROM p");
        assert!(
            one::<i64>("SELECT count(*) FROM q WHERE l2_norm(sa) > 0 AND l2_norm(sb) > 0") > 350
        );
        let disagree = |sparse: &str, dense: &str, tolerance: &str| {
            let query = format!(
                "SELECT count(*) FROM q, LATERAL (SELECT {sparse} AS s, {dense} AS v) r
                 WHERE NOT (s = v OR (s::text = 'NaN' AND v::text = 'NaN') OR abs(s - v) <= {tolerance})"
            );
            one::<i64>(&query)
        };
        let checks = [
            ("l2_distance(sa, sb)", "l2_distance(a, b)", "1e-5 * v"),
            ("sa <-> sb", "a <-> b", "1e-5 * v"),
            ("sb <-> sa", "a <-> b", "1e-5 * v"),
            (
                "sparsevec_l2_squared_distance(sa, sb)",
                "vector_l2_squared_distance(a, b)",
                "2e-5 * v",
            ),
            (
                "inner_product(sa, sb)",
                "inner_product(a, b)",
                "1e-5 * abs_ip",
            ),
            ("sa <#> sb", "a <#> b", "1e-5 * abs_ip"),
            ("sb <#> sa", "a <#> b", "1e-5 * abs_ip"),
            ("cosine_distance(sa, sb)", "cosine_distance(a, b)", "1e-5"),
            ("sa <=> sb", "a <=> b", "1e-5"),
            ("sb <=> sa", "a <=> b", "1e-5"),
            ("l1_distance(sa, sb)", "l1_distance(a, b)", "1e-5 * v"),
            ("sa <+> sb", "a <+> b", "1e-5 * v"),
            ("sb <+> sa", "a <+> b", "1e-5 * v"),
            ("l2_norm(sa)", "vector_norm(a)", "1e-12 * v"),
        ];
        for (sparse, dense, tolerance) in checks {
            assert_eq!(disagree(sparse, dense, tolerance), 0, "{sparse} vs {dense}");
        }
        // Operators and functions are the same computation, exactly.
        check(
            "SELECT bool_and(sa <-> sb = l2_distance(sa, sb) AND sa <#> sb = -inner_product(sa, sb)
                 AND sa <+> sb = l1_distance(sa, sb)
                 AND (sa <=> sb = cosine_distance(sa, sb) OR cosine_distance(sa, sb)::text = 'NaN')
                 AND sa <-> sb = sqrt(sparsevec_l2_squared_distance(sa, sb))) FROM q",
        );
        // Dense to sparse and back is the identity, and zeros are not stored.
        check(
            "SELECT bool_and(sa::vector = a AND sa::vector::sparsevec = sa
                 AND pg_column_size(a::sparsevec) = 16 + 8 * (SELECT count(*) FROM unnest(a::real[]) x WHERE x <> 0))
             FROM q",
        );
    }

    #[pg_test]
    fn sparsevec_norm_and_normalize() {
        close("SELECT l2_norm('{1:1,2:1}/2'::sparsevec)", 2f64.sqrt());
        assert_eq!(one::<f64>("SELECT l2_norm('{1:3,2:4}/2'::sparsevec)"), 5.0);
        assert_eq!(one::<f64>("SELECT l2_norm('{2:1}/2'::sparsevec)"), 1.0);
        assert_eq!(
            one::<f32>("SELECT l2_norm('{1:3e37,2:4e37}/2'::sparsevec)::real"),
            5e37
        );
        assert_eq!(one::<f64>("SELECT l2_norm('{}/2'::sparsevec)"), 0.0);
        assert_eq!(one::<f64>("SELECT l2_norm('{1:2}/1'::sparsevec)"), 2.0);
        // A vector casts implicitly to both halfvec and sparsevec: as in
        // pgvector, l2_norm of a vector is ambiguous (vector_norm is its).
        assert!(sql_error("SELECT l2_norm('[3,4]'::vector)").starts_with("42725 "));
        for (input, output) in [
            ("{1:3,2:4}/2", "{1:0.6,2:0.8}/2"),
            ("{1:3}/2", "{1:1}/2"),
            ("{2:0.1}/2", "{2:1}/2"),
            ("{}/2", "{}/2"),
            ("{1:3e38}/1", "{1:1}/1"),
            ("{1:3e38,2:1e-37}/2", "{1:1}/2"),
            ("{2:3e37,4:3e-37,6:4e37,8:4e-37}/9", "{2:0.6,6:0.8}/9"),
        ] {
            assert_eq!(
                text(&format!("SELECT l2_normalize('{input}'::sparsevec)::text")),
                output
            );
        }
        // Same as normalizing the dense vector.
        run("SELECT setseed(0.5)");
        check(
            "SELECT bool_and(l2_normalize(v::sparsevec)::vector = l2_normalize(v))
             FROM (SELECT (SELECT array_agg(CASE WHEN random() < 0.5 THEN 0 ELSE random() - 0.5 END)
                           FROM generate_series(1, 50) WHERE i > 0)::vector AS v
                   FROM generate_series(1, 200) i) s",
        );
    }

    #[pg_test]
    fn sparsevec_comparison_operators() {
        let a = "'{1:1,2:2,3:3}/3'::sparsevec";
        for (op, same, shorter) in [
            ("<", false, false),
            ("<=", true, false),
            ("=", true, false),
            ("!=", false, true),
            ("<>", false, true),
            (">=", true, true),
            (">", false, true),
        ] {
            assert_eq!(
                one::<bool>(&format!("SELECT {a} {op} '{{1:1,2:2,3:3}}/3'")),
                same,
                "{op}"
            );
            assert_eq!(
                one::<bool>(&format!("SELECT {a} {op} '{{1:1,2:2}}/2'")),
                shorter,
                "{op}"
            );
        }
        for (x, y, want) in [
            ("{1:1,2:2,3:3}/3", "{1:1,2:2,3:3}/3", 0),
            ("{1:1,2:2,3:3}/3", "{}/3", 1),
            ("{}/3", "{1:1,2:2,3:3}/3", -1),
            ("{1:1,2:2}/2", "{1:1,2:2,3:3}/3", -1),
            ("{1:1,2:2,3:3}/3", "{1:1,2:2}/2", 1),
            ("{1:1,2:2}/2", "{1:2,2:3,3:4}/3", -1),
            ("{1:2,2:3}/2", "{1:1,2:2,3:3}/3", 1),
            ("{1:-1}/3", "{}/3", -1),
            ("{2:1}/3", "{1:1}/3", -1),
        ] {
            assert_eq!(
                one::<i32>(&format!("SELECT sparsevec_cmp('{x}', '{y}')")),
                want,
                "{x} {y}"
            );
        }
        // Commutators and negators are declared.
        check(
            "SELECT count(*) = 6 FROM pg_operator
             WHERE oprleft = 'sparsevec'::regtype AND oprright = 'sparsevec'::regtype
               AND oprname IN ('<', '<=', '=', '<>', '>=', '>') AND oprcom <> 0 AND oprnegate <> 0",
        );
        check(
            "SELECT count(*) = 4 FROM pg_operator
             WHERE oprleft = 'sparsevec'::regtype AND oprright = 'sparsevec'::regtype
               AND oprname IN ('<->', '<#>', '<=>', '<+>') AND oprcom = oid",
        );
    }

    /// ORDER BY, DISTINCT, GROUP BY and UNIQUE go through the default btree
    /// operator class; on vectors of one dimension the order is the dense
    /// vectors' order.
    #[pg_test]
    fn sparsevec_btree_ordering() {
        run("SELECT setseed(0.625)");
        run("CREATE TEMP TABLE o AS
             SELECT i AS id, (SELECT array_agg(CASE WHEN random() < 0.7 THEN 0 ELSE round(random() * 4 - 2) END)
                              FROM generate_series(1, 6) WHERE i > 0)::sparsevec(6) AS v
             FROM generate_series(1, 500) i");
        let by_dense = text("SELECT string_agg(id::text, ',' ORDER BY v::vector, id) FROM o");
        assert_eq!(
            text("SELECT string_agg(id::text, ',' ORDER BY v, id) FROM o"),
            by_dense
        );
        run("CREATE INDEX ON o (v)");
        run("SET LOCAL enable_seqscan = off");
        run("SET LOCAL enable_bitmapscan = off");
        let plan = one::<pgrx::datum::Json>("EXPLAIN (FORMAT JSON) SELECT id FROM o ORDER BY v")
            .0
            .to_string();
        assert!(plan.contains("Index"), "{plan}");
        assert_eq!(
            text("SELECT string_agg(id::text, ',') FROM (SELECT id FROM o ORDER BY v, id) s"),
            by_dense
        );
        check("SELECT count(DISTINCT v) = count(DISTINCT v::text) FROM o");
        check("SELECT count(*) = (SELECT count(DISTINCT v::vector) FROM o) FROM (SELECT v FROM o GROUP BY v) g");
        check("SELECT count(*) = 1 FROM (SELECT v FROM o WHERE v = '{}/6' GROUP BY v) g");
        check(
            "SELECT (SELECT count(*) FROM o WHERE v < '{1:1}/6') =
                    (SELECT count(*) FROM o WHERE v::vector < '[1,0,0,0,0,0]')",
        );

        run("CREATE TEMP TABLE u (v sparsevec UNIQUE)");
        run("INSERT INTO u VALUES ('{1:1}/2'), ('{2:1}/2'), ('{1:1}/3')");
        assert!(sql_error("INSERT INTO u VALUES ('{1:1}/2')").starts_with("23505 "));
        assert!(sql_error("INSERT INTO u VALUES ('[1,0]'::vector)").starts_with("23505 "));
        assert_eq!(
            text("SELECT string_agg(v::text, ' ' ORDER BY v DESC) FROM u"),
            "{1:1}/3 {1:1}/2 {2:1}/2"
        );
    }

    #[pg_test]
    fn sparsevec_casts_follow_pgvector_contexts() {
        let context = |source: &str, target: &str| {
            text(&format!(
                "SELECT castcontext::text FROM pg_cast
                 WHERE castsource = '{source}'::regtype AND casttarget = '{target}'::regtype"
            ))
        };
        assert_eq!(context("sparsevec", "sparsevec"), "i");
        assert_eq!(context("vector", "sparsevec"), "i");
        assert_eq!(context("sparsevec", "vector"), "a");
        for array in ["integer[]", "real[]", "double precision[]", "numeric[]"] {
            assert_eq!(context(array, "sparsevec"), "a", "{array}");
        }
        // Assignment: a sparsevec goes into a vector column; it is not
        // implicit, so vector functions do not take one.
        run("CREATE TEMP TABLE dense (v vector)");
        run("INSERT INTO dense VALUES ('{2:1.5}/3'::sparsevec)");
        assert_eq!(text("SELECT v::text FROM dense"), "[0,1.5,0]");
        assert!(sql_error("SELECT vector_dims('{1:1}/2'::sparsevec)").starts_with("42883 "));
        // Implicit: a vector goes wherever a sparsevec is expected.
        run("CREATE TEMP TABLE sparse (v sparsevec)");
        run("INSERT INTO sparse SELECT v FROM dense");
        assert_eq!(text("SELECT v::text FROM sparse"), "{2:1.5}/3");
        assert_eq!(
            one::<f64>("SELECT '[0,1,0]'::vector <-> '{2:4}/3'::sparsevec"),
            3.0
        );
    }

    #[pg_test]
    fn sparsevec_vector_casts() {
        assert_eq!(
            text("SELECT '[0,1.5,0,3.5,0]'::vector::sparsevec::text"),
            "{2:1.5,4:3.5}/5"
        );
        assert_eq!(
            text("SELECT '[0,1.5,0,3.5,0]'::vector::sparsevec(5)::text"),
            "{2:1.5,4:3.5}/5"
        );
        assert_eq!(text("SELECT '[0,-0,0]'::vector::sparsevec::text"), "{}/3");
        assert_eq!(
            sql_error("SELECT '[0,1.5,0,3.5,0]'::vector::sparsevec(4)"),
            "22000 expected 4 dimensions, not 5"
        );
        assert_eq!(
            text("SELECT '{2:1.5,4:3.5}/5'::sparsevec::vector::text"),
            "[0,1.5,0,3.5,0]"
        );
        assert_eq!(
            text("SELECT '{2:1.5,4:3.5}/5'::sparsevec::vector(5)::text"),
            "[0,1.5,0,3.5,0]"
        );
        assert_eq!(
            sql_error("SELECT '{2:1.5,4:3.5}/5'::sparsevec::vector(4)"),
            "22000 expected 4 dimensions, not 5"
        );
        assert_eq!(
            sql_error("SELECT '{}/16001'::sparsevec::vector"),
            "54000 vector cannot have more than 16000 dimensions"
        );
        assert_eq!(
            one::<i32>("SELECT vector_dims('{16000:1}/16000'::sparsevec::vector)"),
            16000
        );
        assert_eq!(
            text("SELECT sparsevec('{1:1}/3'::sparsevec, 3, true)::text"),
            "{1:1}/3"
        );
        assert_eq!(
            sql_error("SELECT sparsevec('{1:1}/3'::sparsevec, 2, true)"),
            "22000 expected 2 dimensions, not 3"
        );
    }

    #[pg_test]
    fn sparsevec_array_casts() {
        for query in [
            "ARRAY[1,0,2,0,3,0]::sparsevec",
            "ARRAY[1.0,0.0,2.0,0.0,3.0,0.0]::sparsevec",
            "ARRAY[1,0,2,0,3,0]::real[]::sparsevec",
            "ARRAY[1,0,2,0,3,0]::double precision[]::sparsevec",
            "ARRAY[1,0,2,0,3,0]::numeric[]::sparsevec",
            "'{1,0,2,0,3,0}'::real[]::sparsevec",
            "'{1,0,2,0,3,0}'::real[]::sparsevec(6)",
            "'{1,0,2,0,3,0}'::double precision[]::sparsevec(6)",
            "array_to_sparsevec('{1,0,2,0,3,0}'::integer[], -1, false)",
        ] {
            assert_eq!(
                text(&format!("SELECT ({query})::text")),
                "{1:1,3:2,5:3}/6",
                "{query}"
            );
        }
        assert_eq!(
            text("SELECT '{1.2345678,0.1,-3e-20}'::numeric[]::sparsevec::text"),
            "{1:1.2345678,2:0.1,3:-3e-20}/3"
        );
        assert_eq!(
            text("SELECT array_fill(0, ARRAY[20000])::sparsevec::text"),
            "{}/20000"
        );
        for (query, error) in [
            (
                "'{1,0,2,0,3,0}'::real[]::sparsevec(5)",
                "22000 expected 5 dimensions, not 6",
            ),
            (
                "'{1,0,2,0,3,0}'::double precision[]::sparsevec(5)",
                "22000 expected 5 dimensions, not 6",
            ),
            (
                "'{NULL}'::real[]::sparsevec",
                "22004 array must not contain nulls",
            ),
            (
                "'{NaN}'::real[]::sparsevec",
                "22000 NaN not allowed in sparsevec",
            ),
            (
                "'{Infinity}'::real[]::sparsevec",
                "22000 infinite value not allowed in sparsevec",
            ),
            (
                "'{-Infinity}'::real[]::sparsevec",
                "22000 infinite value not allowed in sparsevec",
            ),
            (
                "'{1,NaN}'::double precision[]::sparsevec",
                "22000 NaN not allowed in sparsevec",
            ),
            (
                "'{}'::real[]::sparsevec",
                "22000 sparsevec must have at least 1 dimension",
            ),
            ("'{{1}}'::real[]::sparsevec", "22000 array must be 1-D"),
            (
                "array_agg(n)::sparsevec FROM generate_series(1, 16001) n",
                "54000 sparsevec cannot have more than 16000 non-zero elements",
            ),
            // vdb is stricter than pgvector here, as for vector: no
            // infinity from a finite number, no silently dropped element.
            (
                "'{4e38,-4e38}'::double precision[]::sparsevec",
                "22003 value out of range: overflow",
            ),
            (
                "'{1e-46,-1e-46}'::double precision[]::sparsevec",
                "22003 value out of range: underflow",
            ),
        ] {
            assert_eq!(sql_error(&format!("SELECT {query}")), error, "{query}");
        }
        // numeric_float4 reports its own range error.
        assert!(sql_error("SELECT '{1e39}'::numeric[]::sparsevec").starts_with("22003 "));
    }

    #[pg_test]
    fn sparsevec_functions_are_declared_like_pgvector() {
        let names = text(
            "SELECT string_agg(p.oid::regprocedure::text, ' ' ORDER BY p.oid::regprocedure::text COLLATE \"C\")
             FROM pg_proc p
             WHERE (p.prorettype = 'sparsevec'::regtype OR 'sparsevec'::regtype = ANY (p.proargtypes))
               AND p.pronamespace <> 'tests'::regnamespace",
        );
        let want = [
            "array_to_sparsevec(double precision[],integer,boolean)",
            "array_to_sparsevec(integer[],integer,boolean)",
            "array_to_sparsevec(numeric[],integer,boolean)",
            "array_to_sparsevec(real[],integer,boolean)",
            "cosine_distance(sparsevec,sparsevec)",
            "halfvec_to_sparsevec(halfvec,integer,boolean)",
            "inner_product(sparsevec,sparsevec)",
            "l1_distance(sparsevec,sparsevec)",
            "l2_distance(sparsevec,sparsevec)",
            "l2_norm(sparsevec)",
            "l2_normalize(sparsevec)",
            "sparsevec(sparsevec,integer,boolean)",
            "sparsevec_cmp(sparsevec,sparsevec)",
            "sparsevec_eq(sparsevec,sparsevec)",
            "sparsevec_ge(sparsevec,sparsevec)",
            "sparsevec_gt(sparsevec,sparsevec)",
            "sparsevec_in(cstring,oid,integer)",
            "sparsevec_l2_squared_distance(sparsevec,sparsevec)",
            "sparsevec_le(sparsevec,sparsevec)",
            "sparsevec_lt(sparsevec,sparsevec)",
            "sparsevec_ne(sparsevec,sparsevec)",
            "sparsevec_negative_inner_product(sparsevec,sparsevec)",
            "sparsevec_out(sparsevec)",
            "sparsevec_recv(internal,oid,integer)",
            "sparsevec_send(sparsevec)",
            "sparsevec_to_halfvec(sparsevec,integer,boolean)",
            "sparsevec_to_vector(sparsevec,integer,boolean)",
            "vector_to_sparsevec(vector,integer,boolean)",
        ];
        let mut want = want.to_vec();
        want.sort();
        assert_eq!(names, want.join(" "));
        check(
            "SELECT bool_and(provolatile = 'i' AND proisstrict AND proparallel = 's') FROM pg_proc
             WHERE (prorettype = 'sparsevec'::regtype OR 'sparsevec'::regtype = ANY (proargtypes)
                    OR proname = 'sparsevec_typmod_in')
               AND pronamespace <> 'tests'::regnamespace",
        );
        check(
            "SELECT count(*) = 1 FROM pg_opclass
             WHERE opcname = 'sparsevec_ops' AND opcdefault AND opcintype = 'sparsevec'::regtype
               AND opcmethod = (SELECT oid FROM pg_am WHERE amname = 'btree')",
        );
    }

    /// The server survives bad input; a later query still works.
    #[pg_test]
    fn sparsevec_backend_survives_bad_input() {
        for q in [
            "SELECT '{1:'::sparsevec",
            "SELECT '{1:NaN}/1'::sparsevec",
            "SELECT '{}/1'::sparsevec(0)",
            "SELECT '{99999999999999999999:1}/1'::sparsevec",
        ] {
            assert_ne!(sql_error(q), "no error");
        }
        assert_eq!(text("SELECT '{1:1}/2'::sparsevec::text"), "{1:1}/2");
    }
}
