//! Casts between `vector`, `vector(n)` and arrays.

#[pgrx::pg_schema]
mod tests {
    use crate::tests::support::{one, run, sql_error};
    use pgrx::prelude::*;

    #[pg_test]
    fn arrays_to_vector() {
        assert_eq!(
            one::<String>("SELECT '{1,2,3}'::integer[]::vector::text"),
            "[1,2,3]"
        );
        assert_eq!(
            one::<String>("SELECT '{1.5,2,3}'::real[]::vector::text"),
            "[1.5,2,3]"
        );
        assert_eq!(
            one::<String>("SELECT '{1.5,2,3}'::double precision[]::vector::text"),
            "[1.5,2,3]"
        );
        assert_eq!(
            one::<String>("SELECT '{1.5,2,3}'::numeric[]::vector::text"),
            "[1.5,2,3]"
        );
        assert_eq!(one::<String>("SELECT ARRAY[1,2]::vector(2)::text"), "[1,2]");
    }

    #[pg_test]
    fn vector_to_arrays() {
        assert_eq!(
            one::<Vec<f32>>("SELECT '[1,2.5]'::vector::real[]"),
            vec![1.0, 2.5]
        );
        assert_eq!(
            one::<Vec<f64>>("SELECT '[1,2.5]'::vector::double precision[]"),
            vec![1.0, 2.5]
        );
        assert_eq!(
            one::<String>("SELECT '[1.5,2.5,-7,1e9]'::vector::integer[]::text"),
            "{2,2,-7,1000000000}"
        );
        assert_eq!(
            sql_error("SELECT '[3e9]'::vector::integer[]"),
            "22003 integer out of range"
        );
        // numeric[] holds the shortest decimal of each real: exact, and
        // casting back gives the same vector.
        assert_eq!(
            one::<String>("SELECT '[1.2345678,0.1,-3e-20,16777216]'::vector::numeric[]::text"),
            "{1.2345678,0.1,-0.00000000000000000003,16777216}"
        );
        assert!(one::<bool>(
            "SELECT v::numeric[]::vector = v FROM (SELECT '[1.2345678,0.1,-3e-20,3.4028235e38]'::vector AS v) s"
        ));
        // Neither is implicit or on assignment: no silent rounding.
        run("CREATE TEMP TABLE ints (a integer[])");
        assert!(sql_error("INSERT INTO ints VALUES ('[1,2]'::vector)").starts_with("42804 "));
        // vector -> real[] is implicit, as in pgvector.
        run("CREATE TEMP TABLE arr (a real[])");
        run("INSERT INTO arr VALUES ('[7,8]'::vector)");
        assert_eq!(one::<f32>("SELECT a[2] FROM arr"), 8.0);
    }

    #[pg_test]
    fn assignment_casts_and_typmods() {
        run("CREATE TEMP TABLE t (v vector(3))");
        run(
            "INSERT INTO t VALUES (ARRAY[1,2,3]), (ARRAY[1.5,2,3]::real[]), ('{4,5,6}'::numeric[])",
        );
        assert_eq!(one::<i64>("SELECT count(*) FROM t"), 3);
        assert_eq!(
            sql_error("INSERT INTO t VALUES ('[1,2,3,4]')"),
            "22000 expected 3 dimensions, not 4"
        );
        assert_eq!(
            sql_error("INSERT INTO t VALUES (ARRAY[1,2])"),
            "22000 expected 3 dimensions, not 2"
        );
        assert_eq!(
            sql_error("SELECT '[1,2]'::vector::vector(3)"),
            "22000 expected 3 dimensions, not 2"
        );
        assert_eq!(
            sql_error("UPDATE t SET v = '[1,2]'"),
            "22000 expected 3 dimensions, not 2"
        );
        assert_eq!(
            one::<String>("SELECT format_type(atttypid, atttypmod) FROM pg_attribute WHERE attrelid = 't'::regclass AND attname = 'v'"),
            "vector(3)"
        );
    }

    #[pg_test]
    fn cast_errors() {
        assert_eq!(
            sql_error("SELECT '{1,NULL}'::real[]::vector"),
            "22004 array must not contain nulls"
        );
        assert_eq!(
            sql_error("SELECT '{{1,2},{3,4}}'::real[]::vector"),
            "22000 array must be 1-D"
        );
        assert_eq!(
            sql_error("SELECT '{}'::real[]::vector"),
            "22000 vector must have at least 1 dimension"
        );
        assert_eq!(
            sql_error("SELECT '{NaN}'::real[]::vector"),
            "22000 NaN not allowed in vector"
        );
        assert_eq!(
            sql_error("SELECT '{Infinity}'::double precision[]::vector"),
            "22000 infinite value not allowed in vector"
        );
        assert_eq!(
            sql_error("SELECT '{1e300}'::double precision[]::vector"),
            "22003 value out of range: overflow"
        );
        assert_eq!(
            sql_error("SELECT '{1e-300}'::double precision[]::vector"),
            "22003 value out of range: underflow"
        );
        assert!(sql_error("SELECT '{1e39}'::numeric[]::vector").starts_with("22003 "));
        assert!(sql_error("SELECT array_fill(1, ARRAY[16001])::vector")
            .starts_with("54000 vector cannot have more than 16000 dimensions"));
    }
}
