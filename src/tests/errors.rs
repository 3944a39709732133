//! Bad input gets a clear ERROR with pgvector's SQLSTATE, never a crash.

#[pgrx::pg_schema]
mod tests {
    use crate::tests::support::{one, sql_error};
    use pgrx::prelude::*;

    #[pg_test]
    fn malformed_text() {
        assert_eq!(
            sql_error("SELECT '[1,2'::vector"),
            "22P02 invalid input syntax for type vector: \"[1,2\""
        );
        assert_eq!(
            sql_error("SELECT '1,2'::vector"),
            "22P02 invalid input syntax for type vector: \"1,2\""
        );
        assert_eq!(
            sql_error("SELECT '[1,,2]'::vector"),
            "22P02 invalid input syntax for type vector: \"[1,,2]\""
        );
        assert_eq!(
            sql_error("SELECT '[1,2]x'::vector"),
            "22P02 invalid input syntax for type vector: \"[1,2]x\""
        );
        assert_eq!(
            sql_error("SELECT '[a]'::vector"),
            "22P02 invalid input syntax for type vector: \"[a]\""
        );
        assert_eq!(
            sql_error("SELECT ''::vector"),
            "22P02 invalid input syntax for type vector: \"\""
        );
    }

    #[pg_test]
    fn non_finite_and_out_of_range_elements() {
        assert_eq!(
            sql_error("SELECT '[NaN]'::vector"),
            "22000 NaN not allowed in vector"
        );
        assert_eq!(
            sql_error("SELECT '[1,Infinity]'::vector"),
            "22000 infinite value not allowed in vector"
        );
        assert_eq!(
            sql_error("SELECT '[-inf]'::vector"),
            "22000 infinite value not allowed in vector"
        );
        assert_eq!(
            sql_error("SELECT '[1e39]'::vector"),
            "22003 \"1e39\" is out of range for type vector"
        );
        assert_eq!(
            sql_error("SELECT '[-1e-50]'::vector"),
            "22003 \"-1e-50\" is out of range for type vector"
        );
        assert_eq!(
            sql_error("SELECT '[3e38]'::vector + '[3e38]'"),
            "22003 value out of range: overflow"
        );
        assert_eq!(
            sql_error("SELECT '[-3e38]'::vector - '[3e38]'"),
            "22003 value out of range: overflow"
        );
        assert_eq!(
            sql_error("SELECT '[1e30]'::vector * '[1e30]'"),
            "22003 value out of range: overflow"
        );
        assert_eq!(
            sql_error("SELECT '[1e-30]'::vector * '[1e-30]'"),
            "22003 value out of range: underflow"
        );
    }

    #[pg_test]
    fn dimension_errors() {
        assert_eq!(
            sql_error("SELECT '[]'::vector"),
            "22000 vector must have at least 1 dimension"
        );
        assert_eq!(
            sql_error("SELECT '[1,2,3]'::vector(2)"),
            "22000 expected 2 dimensions, not 3"
        );
        assert_eq!(
            sql_error("SELECT '[1,2]'::vector <-> '[1,2,3]'"),
            "22000 different vector dimensions 2 and 3"
        );
        assert_eq!(
            sql_error("SELECT '[1,2]'::vector + '[1]'"),
            "22000 different vector dimensions 2 and 1"
        );
        assert_eq!(
            sql_error("SELECT cosine_distance('[1]'::vector, '[1,2]')"),
            "22000 different vector dimensions 1 and 2"
        );
        let text = format!("[{}]", vec!["0"; 16001].join(","));
        assert_eq!(
            sql_error(&format!("SELECT '{text}'::vector")),
            "54000 vector cannot have more than 16000 dimensions"
        );
        assert_eq!(
            sql_error("SELECT '[1]'::vector(16001)"),
            "22023 dimensions for type vector cannot exceed 16000"
        );
        assert_eq!(
            sql_error("SELECT '[1]'::vector(0)"),
            "22023 dimensions for type vector must be at least 1"
        );
        assert_eq!(
            sql_error("SELECT '[1]'::vector(1,2)"),
            "22023 invalid type modifier"
        );
        assert!(sql_error("SELECT subvector('[1,2,3]'::vector, 5, 1)")
            .starts_with("22000 vector must have at least 1 dimension"));
        assert!(sql_error("SELECT subvector('[1,2,3]'::vector, 1, 0)").starts_with("22000 "));
        let concat =
            "SELECT array_fill(1, ARRAY[9000])::vector || array_fill(1, ARRAY[9000])::vector";
        assert!(sql_error(concat).starts_with("54000 "));
    }

    #[pg_test]
    fn poincare_requires_points_inside_the_ball() {
        let msg = "22000 poincare_distance requires points strictly inside the unit ball";
        assert_eq!(sql_error("SELECT poincare_distance('[1,0]', '[0,0]')"), msg);
        assert_eq!(
            sql_error("SELECT poincare_distance('[0,0]', '[0.8,0.8]')"),
            msg
        );
        assert!(one::<f64>("SELECT poincare_distance('[0.99,0]', '[0,0]')") > 5.0);
    }

    /// The server survives all of the above: a later query still works.
    #[pg_test]
    fn backend_survives_bad_input() {
        for q in [
            "SELECT '[1,'::vector",
            "SELECT '[NaN]'::vector",
            "SELECT '[1]'::vector(0)",
        ] {
            assert_ne!(sql_error(q), "no error");
        }
        assert_eq!(one::<i32>("SELECT vector_dims('[1,2]'::vector)"), 2);
    }
}
