//! `halfvec` and the `bit` distances: I/O, operators, functions, casts,
//! aggregates and errors against pgvector's surface.

#[pgrx::pg_schema]
mod tests {
    use crate::tests::support::{check, close, one, run, sql_error};
    use pgrx::prelude::*;

    fn text(query: &str) -> String {
        one::<String>(query)
    }

    #[pg_test]
    fn text_io_rounds_to_half_and_prints_like_real() {
        assert_eq!(text("SELECT '[1,2.5,-3]'::halfvec::text"), "[1,2.5,-3]");
        // 0.1 is not a half: the nearest one, printed as a real prints it.
        assert_eq!(text("SELECT '[0.1]'::halfvec::text"), "[0.099975586]");
        assert_eq!(
            text("SELECT '[ 65504 , -1e-9 ]'::halfvec::text"),
            "[65504,-0]"
        );
        assert_eq!(text("SELECT '[1,2,3]'::halfvec(3)::text"), "[1,2,3]");
        // Text round trips exactly.
        check("SELECT v::text::halfvec = v FROM (SELECT '[0.1,0.2,1e-5,-7.25]'::halfvec v) t");
        assert_eq!(one::<i32>("SELECT vector_dims('[1,2,3]'::halfvec)"), 3);
    }

    #[pg_test]
    fn halfvec_input_errors_match_pgvector() {
        for (literal, want) in [
            (
                "[65520]",
                "22003 \"65520\" is out of range for type halfvec",
            ),
            (
                "[-1e39]",
                "22003 \"-1e39\" is out of range for type halfvec",
            ),
            ("[NaN]", "22000 NaN not allowed in halfvec"),
            ("[1,-inf]", "22000 infinite value not allowed in halfvec"),
            ("[]", "22000 halfvec must have at least 1 dimension"),
            (
                "[1,",
                "22P02 invalid input syntax for type halfvec: \"[1,\"",
            ),
            (
                "[1,,2]",
                "22P02 invalid input syntax for type halfvec: \"[1,,2]\"",
            ),
            (
                "[1]x",
                "22P02 invalid input syntax for type halfvec: \"[1]x\"",
            ),
        ] {
            assert_eq!(
                sql_error(&format!("SELECT '{literal}'::halfvec")),
                want,
                "{literal}"
            );
        }
        assert_eq!(
            sql_error("SELECT '[1,2]'::halfvec(3)"),
            "22000 expected 3 dimensions, not 2"
        );
        assert_eq!(
            sql_error("SELECT '[1]'::halfvec(0)"),
            "22023 dimensions for type halfvec must be at least 1"
        );
        assert_eq!(
            sql_error("SELECT '[1]'::halfvec(16001)"),
            "22023 dimensions for type halfvec cannot exceed 16000"
        );
        assert_eq!(
            sql_error("SELECT array_fill(1, ARRAY[16001])::halfvec"),
            "54000 halfvec cannot have more than 16000 dimensions"
        );
        check("SELECT vector_dims(array_fill(1, ARRAY[16000])::halfvec) = 16000");
    }

    #[pg_test]
    fn halfvec_send_is_pgvector_format() {
        let bytes = one::<Vec<u8>>("SELECT halfvec_send('[1,-2]')");
        // dim 2, unused 0, then the halves 0x3c00 (1) and 0xc000 (-2).
        assert_eq!(bytes, vec![0, 2, 0, 0, 0x3c, 0x00, 0xc0, 0x00]);
    }

    /// `COPY ... (FORMAT binary)` out and back reproduces every value: this
    /// runs `halfvec_send` and `halfvec_recv`.
    #[pg_test]
    fn halfvec_binary_copy_round_trips() {
        run("CREATE TABLE src AS SELECT i, ARRAY[i * 0.37, -i, 1.0 / i]::halfvec AS h FROM generate_series(1, 200) i");
        run("CREATE TABLE dst (i int, h halfvec(3))");
        let path = format!("/tmp/vdb-halfvec-copy-{}.bin", std::process::id());
        run(&format!("COPY src TO '{path}' (FORMAT binary)"));
        run(&format!("COPY dst FROM '{path}' (FORMAT binary)"));
        let _ = std::fs::remove_file(&path);
        assert_eq!(
            one::<i64>("SELECT count(*) FROM src JOIN dst USING (i) WHERE src.h = dst.h"),
            200
        );
    }

    #[pg_test]
    fn halfvec_distances_match_the_same_values_as_vector() {
        run("SELECT setseed(0.3)");
        run("CREATE TABLE pairs AS SELECT i,
                 ARRAY(SELECT random() * 8 - 4 + i * 0 FROM generate_series(1, 384))::halfvec AS a,
                 ARRAY(SELECT random() * 8 - 4 + i * 0 FROM generate_series(1, 384))::halfvec AS b
             FROM generate_series(1, 20) i");
        // Every half is exact as a real, so the vector distances of the
        // same values are the reference.
        for (half, reference) in [
            ("a <-> b", "a::vector <-> b::vector"),
            ("l2_distance(a, b)", "l2_distance(a::vector, b::vector)"),
            ("a <#> b", "a::vector <#> b::vector"),
            ("inner_product(a, b)", "inner_product(a::vector, b::vector)"),
            ("a <=> b", "a::vector <=> b::vector"),
            (
                "cosine_distance(a, b)",
                "cosine_distance(a::vector, b::vector)",
            ),
            ("a <+> b", "a::vector <+> b::vector"),
            ("l1_distance(a, b)", "l1_distance(a::vector, b::vector)"),
            (
                "halfvec_l2_squared_distance(a, b)",
                "vector_l2_squared_distance(a::vector, b::vector)",
            ),
            (
                "halfvec_negative_inner_product(a, b)",
                "vector_negative_inner_product(a::vector, b::vector)",
            ),
            ("l2_norm(a)", "vector_norm(a::vector)"),
        ] {
            let worst = one::<f64>(&format!(
                "SELECT max(abs(({half}) - ({reference})) / greatest(abs({reference}), 1)) FROM pairs"
            ));
            assert!(worst <= 1e-5, "{half}: relative error {worst}");
        }
        assert!(one::<f64>("SELECT '[0,0]'::halfvec <=> '[1,2]'").is_nan());
        // Sums past the largest half are summed in single precision.
        close("SELECT '[300]'::halfvec <-> '[0]'", 300.0);
        close(
            "SELECT inner_product('[60000,60000]'::halfvec, '[60000,60000]')",
            7.2e9,
        );
        close("SELECT halfvec_spherical_distance('[1,0]', '[-1,0]')", 1.0);
        close("SELECT halfvec_spherical_distance('[1,0]', '[0,1]')", 0.5);
        close("SELECT vector_spherical_distance('[1,0]', '[0,1]')", 0.5);
        assert_eq!(
            sql_error("SELECT '[1,2]'::halfvec <-> '[1,2,3]'"),
            "22000 different halfvec dimensions 2 and 3"
        );
    }

    #[pg_test]
    fn halfvec_arithmetic_and_functions() {
        assert_eq!(
            text("SELECT ('[1,2]'::halfvec + '[0.5,-4]')::text"),
            "[1.5,-2]"
        );
        assert_eq!(
            text("SELECT ('[1,2]'::halfvec - '[0.5,-4]')::text"),
            "[0.5,6]"
        );
        assert_eq!(
            text("SELECT ('[1,2]'::halfvec * '[0.5,-4]')::text"),
            "[0.5,-8]"
        );
        assert_eq!(text("SELECT ('[1,2]'::halfvec || '[3]')::text"), "[1,2,3]");
        assert_eq!(
            sql_error("SELECT '[60000]'::halfvec + '[60000]'"),
            "22003 value out of range: overflow"
        );
        assert_eq!(
            sql_error("SELECT '[1e-4]'::halfvec * '[1e-4]'"),
            "22003 value out of range: underflow"
        );
        assert_eq!(
            sql_error(
                "SELECT array_fill(1, ARRAY[8000])::halfvec || array_fill(1, ARRAY[8001])::halfvec"
            ),
            "54000 halfvec cannot have more than 16000 dimensions"
        );
        assert_eq!(
            text("SELECT l2_normalize('[3,4]'::halfvec)::text"),
            "[0.6,0.8]"
                .replace("0.6", "0.60009766")
                .replace("0.8", "0.7998047")
        );
        assert_eq!(text("SELECT l2_normalize('[0,0]'::halfvec)::text"), "[0,0]");
        close("SELECT l2_norm('[3,4]'::halfvec)", 5.0);
        assert_eq!(
            text("SELECT binary_quantize('[1,-2,0,3]'::halfvec)::text"),
            "1001"
        );
        assert_eq!(
            text("SELECT subvector('[1,2,3,4]'::halfvec, 2, 2)::text"),
            "[2,3]"
        );
        assert_eq!(
            sql_error("SELECT subvector('[1,2]'::halfvec, 3, 1)"),
            "22000 halfvec must have at least 1 dimension"
        );
    }

    #[pg_test]
    fn halfvec_ordering_btree_and_aggregates() {
        check("SELECT '[1,2]'::halfvec < '[1,3]' AND '[1,2]'::halfvec < '[1,2,0]' AND '[2]'::halfvec > '[1,9]'");
        check("SELECT '[1,2]'::halfvec = '[1,2]' AND '[1,2]'::halfvec <> '[2,1]' AND '[1]'::halfvec <= '[1]' AND '[1]'::halfvec >= '[1]'");
        assert_eq!(one::<i32>("SELECT halfvec_cmp('[1,2]', '[1,1]')"), 1);
        run("CREATE TABLE hv AS SELECT ARRAY[i % 3, i % 2]::halfvec AS h FROM generate_series(1, 12) i");
        run("CREATE INDEX ON hv (h)");
        assert_eq!(one::<i64>("SELECT count(DISTINCT h) FROM hv"), 6);
        assert_eq!(
            text("SELECT string_agg(h::text, ' ' ORDER BY h) FROM (SELECT DISTINCT h FROM hv) d"),
            "[0,0] [0,1] [1,0] [1,1] [2,0] [2,1]"
        );
        assert_eq!(text("SELECT avg(h)::text FROM hv"), "[1,0.5]");
        assert_eq!(text("SELECT sum(h)::text FROM hv"), "[12,6]");
        assert!(
            Spi::get_one::<String>("SELECT avg(h)::text FROM hv WHERE false")
                .expect("runs")
                .is_none()
        );
        assert_eq!(
            sql_error("SELECT sum(h) FROM (VALUES ('[40000]'::halfvec), ('[40000]')) t(h)"),
            "22003 value out of range: overflow"
        );
    }

    #[pg_test]
    fn halfvec_casts_as_pgvector_defines_them() {
        assert_eq!(text("SELECT '[1,2.5]'::vector::halfvec::text"), "[1,2.5]");
        assert_eq!(text("SELECT '[1,2.5]'::halfvec::vector::text"), "[1,2.5]");
        assert_eq!(
            text("SELECT '[0,2.5,0,-1]'::halfvec::sparsevec::text"),
            "{2:2.5,4:-1}/4"
        );
        assert_eq!(
            text("SELECT '{2:0.1,4:-1}/4'::sparsevec::halfvec::text"),
            "[0,0.099975586,0,-1]"
        );
        assert_eq!(
            sql_error("SELECT '{1:70000}/2'::sparsevec::halfvec"),
            "22003 \"70000\" is out of range for type halfvec"
        );
        assert_eq!(
            sql_error("SELECT '{1:1}/16001'::sparsevec::halfvec"),
            "54000 halfvec cannot have more than 16000 dimensions"
        );
        assert_eq!(text("SELECT ARRAY[1,2]::halfvec::text"), "[1,2]");
        assert_eq!(
            text("SELECT ARRAY[1.5,2]::real[]::halfvec::text"),
            "[1.5,2]"
        );
        assert_eq!(
            text("SELECT ARRAY[1.5,2]::float8[]::halfvec::text"),
            "[1.5,2]"
        );
        assert_eq!(
            text("SELECT ARRAY[1.5,2]::numeric[]::halfvec::text"),
            "[1.5,2]"
        );
        assert_eq!(text("SELECT '[1.5,2]'::halfvec::real[]::text"), "{1.5,2}");
        assert_eq!(
            sql_error("SELECT '[70000]'::vector::halfvec"),
            "22003 \"70000\" is out of range for type halfvec"
        );
        assert_eq!(
            sql_error("SELECT ARRAY[[1,2]]::halfvec"),
            "22000 array must be 1-D"
        );
        assert_eq!(
            sql_error("SELECT ARRAY[1,NULL]::halfvec"),
            "22004 array must not contain nulls"
        );
        assert_eq!(
            sql_error("SELECT '[1,2]'::halfvec::halfvec(3)"),
            "22000 expected 3 dimensions, not 2"
        );
        // Contexts: vector to halfvec is implicit, the rest assignment.
        assert_eq!(
            text("SELECT string_agg(castsource::regtype || '>' || casttarget::regtype || ':' || castcontext::text, ' ' ORDER BY castsource::regtype::text, casttarget::regtype::text)
                  FROM pg_cast WHERE casttarget = 'halfvec'::regtype OR castsource = 'halfvec'::regtype"),
            "double precision[]>halfvec:a halfvec>halfvec:i halfvec>real[]:a halfvec>sparsevec:i halfvec>vector:a integer[]>halfvec:a numeric[]>halfvec:a real[]>halfvec:a sparsevec>halfvec:a vector>halfvec:i"
        );
        // A vector column takes a halfvec on assignment, and back.
        run("CREATE TABLE mixed (v vector(2), h halfvec(2))");
        run("INSERT INTO mixed VALUES ('[1,2]'::halfvec, '[3,4]'::vector)");
        assert_eq!(text("SELECT v::text || h::text FROM mixed"), "[1,2][3,4]");
    }

    #[pg_test]
    fn bit_distances() {
        close("SELECT hamming_distance(B'1010', B'0110')", 2.0);
        close("SELECT B'1010' <~> B'0110'", 2.0);
        // Intersection 1 (third bit), union 3.
        close("SELECT jaccard_distance(B'1010', B'0110')", 1.0 - 1.0 / 3.0);
        close("SELECT B'1010' <%> B'0110'", 1.0 - 1.0 / 3.0);
        close("SELECT B'0000' <%> B'0000'", 1.0);
        close("SELECT B'1111' <%> B'1111'", 0.0);
        assert_eq!(
            sql_error("SELECT B'101' <~> B'10'"),
            "22000 different bit lengths 3 and 2"
        );
        // Long strings against a count done in SQL.
        run("SELECT setseed(0.7)");
        run("CREATE TABLE bits AS SELECT i, (SELECT string_agg((random() < 0.3)::int::text, '') FROM generate_series(1, 1000 + i * 0))::bit(1000) AS a,
                 (SELECT string_agg((random() < 0.5)::int::text, '') FROM generate_series(1, 1000 + i * 0))::bit(1000) AS b
             FROM generate_series(1, 10) i");
        check("SELECT bool_and((a <~> b) = length(replace((a # b)::text, '0', ''))) FROM bits");
        check("SELECT bool_and(abs((a <%> b) - (1 - length(replace((a & b)::text, '0', ''))::float8 / length(replace((a | b)::text, '0', '')))) < 1e-12) FROM bits");
        assert_eq!(
            text("SELECT binary_quantize('[1,-1,2]'::vector)::text"),
            "101"
        );
    }
}
