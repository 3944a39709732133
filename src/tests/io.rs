//! Text and binary I/O against the server.

#[pgrx::pg_schema]
mod tests {
    use crate::tests::support::{check, one, run, sql_error, write_copy_file};
    use crate::vector::binary;
    use pgrx::prelude::*;
    use proptest::prelude::*;
    use proptest::test_runner::{Config, TestRunner};

    fn bits(v: &[f32]) -> Vec<u32> {
        v.iter().map(|x| x.to_bits()).collect()
    }

    fn finite_floats(max_len: usize) -> impl Strategy<Value = Vec<f32>> {
        proptest::collection::vec(
            any::<u32>()
                .prop_map(f32::from_bits)
                .prop_filter("finite", |x| x.is_finite()),
            1..max_len,
        )
    }

    #[pg_test]
    fn text_input_and_output() {
        assert_eq!(
            one::<String>("SELECT '[1,2.5,-3e-2]'::vector::text"),
            "[1,2.5,-0.03]"
        );
        assert_eq!(one::<String>("SELECT ' [ 1 , 2 ] '::vector::text"), "[1,2]");
        assert_eq!(
            one::<String>("SELECT E'\\t[1,\\n2]\\n'::vector::text"),
            "[1,2]"
        );
        assert_eq!(
            one::<String>("SELECT '[1e-7,1234567,-0]'::vector::text"),
            "[1e-07,1.234567e+06,-0]"
        );
        assert_eq!(
            one::<String>("SELECT '[1,2,3]'::vector(3)::text"),
            "[1,2,3]"
        );
        assert_eq!(
            one::<i32>("SELECT vector_dims(array_fill(1.5, ARRAY[16000])::vector)"),
            16000
        );
    }

    /// Every element prints exactly as PostgreSQL prints the same `real`.
    #[pg_test]
    fn output_matches_postgres_real_output() {
        run("SELECT setseed(0.25)");
        run("CREATE TEMP TABLE f AS
             SELECT ((random() * 2 - 1) * 10 ^ (random() * 76 - 38))::real AS x
             FROM generate_series(1, 20000)
             UNION ALL SELECT unnest('{0,-0,1,100000,1e6,0.0001,1e-5,1.4e-45,3.4028235e38,-1.1754944e-38}'::real[])");
        let mismatches = one::<i64>(
            "SELECT count(*) FROM f WHERE format('[%s]', x)::vector::text <> format('[%s]', x::text)",
        );
        assert_eq!(mismatches, 0);
    }

    /// Text round trip through the server is exact, bit for bit.
    #[pg_test]
    fn text_round_trips_exactly() {
        let mut runner = TestRunner::new(Config::with_cases(64));
        runner
            .run(&finite_floats(40), |values| {
                let text = crate::vector::text::format(&values);
                let back = Spi::get_one_with_args::<Vec<f32>>(
                    "SELECT ($1::vector)::text::vector::real[]",
                    &[text.clone().into()],
                )
                .expect("query")
                .expect("not null");
                prop_assert_eq!(bits(&back), bits(&values), "{}", text);
                Ok(())
            })
            .expect("text round trip");
    }

    #[pg_test]
    fn binary_send_is_pgvector_format() {
        let bytes = one::<Vec<u8>>("SELECT vector_send('[1,-2]')");
        assert_eq!(bytes, vec![0, 2, 0, 0, 0x3f, 0x80, 0, 0, 0xc0, 0, 0, 0]);
    }

    fn copy_file(tag: &str) -> String {
        format!("/tmp/vdb_test_{}_{tag}.bin", std::process::id())
    }

    /// `COPY ... (FORMAT binary)` out and back in reproduces every value
    /// exactly; this exercises `vector_send` and `vector_recv`.
    #[pg_test]
    fn binary_copy_round_trips_exactly() {
        run("CREATE TEMP TABLE src (id int, v vector)");
        run("CREATE TEMP TABLE dst (id int, v vector)");
        let path = copy_file("roundtrip");
        let mut runner = TestRunner::new(Config::with_cases(32));
        runner
            .run(
                &proptest::collection::vec(finite_floats(50), 1..8),
                |rows| {
                    run("TRUNCATE src, dst");
                    for (i, values) in rows.iter().enumerate() {
                        Spi::run_with_args(
                            "INSERT INTO src VALUES ($1, $2::vector)",
                            &[
                                (i as i32).into(),
                                crate::vector::text::format(values).into(),
                            ],
                        )
                        .expect("insert");
                    }
                    run(&format!("COPY src TO '{path}' (FORMAT binary)"));
                    run(&format!("COPY dst FROM '{path}' (FORMAT binary)"));
                    for (i, values) in rows.iter().enumerate() {
                        let back = Spi::get_one_with_args::<Vec<f32>>(
                            "SELECT v::real[] FROM dst WHERE id = $1",
                            &[(i as i32).into()],
                        )
                        .expect("query")
                        .expect("row");
                        prop_assert_eq!(bits(&back), bits(values));
                    }
                    Ok(())
                },
            )
            .expect("binary round trip");
        let _ = std::fs::remove_file(&path);
    }

    #[pg_test]
    fn binary_input_is_validated() {
        run("CREATE TEMP TABLE t (v vector)");
        run("CREATE TEMP TABLE t3 (v vector(3))");
        let path = copy_file("bad");
        let copy_error = |table: &str, payload: Vec<u8>| {
            write_copy_file(&path, &payload);
            sql_error(&format!("COPY {table} FROM '{path}' (FORMAT binary)"))
        };

        let good = binary::encode(&[1.0, 2.0]);
        assert_eq!(copy_error("t", good.clone()), "no error");
        check("SELECT v = '[1,2]' FROM t");

        let mut short = good.clone();
        short.pop();
        assert!(copy_error("t", short).starts_with("22P03 invalid binary data for type vector"));
        let mut long = good.clone();
        long.extend_from_slice(&[0, 0, 0, 0]);
        assert!(copy_error("t", long).starts_with("22P03 "));
        assert!(copy_error("t", vec![0, 1]).starts_with("22P03 "));
        assert_eq!(
            copy_error("t", binary::encode(&[f32::NAN])),
            "22000 NaN not allowed in vector"
        );
        assert_eq!(
            copy_error("t", binary::encode(&[1.0, f32::INFINITY])),
            "22000 infinite value not allowed in vector"
        );
        assert_eq!(
            copy_error("t", vec![0, 0, 0, 0]),
            "22000 vector must have at least 1 dimension"
        );
        assert_eq!(copy_error("t3", good), "22000 expected 3 dimensions, not 2");
        let mut unused = binary::encode(&[1.0]);
        unused[3] = 7;
        assert_eq!(
            copy_error("t", unused),
            "22000 expected unused to be 0, not 7"
        );
        let _ = std::fs::remove_file(&path);
    }
}
