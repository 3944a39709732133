//! `avg(vector)` and `sum(vector)`, serial and parallel.

#[pgrx::pg_schema]
mod tests {
    use crate::tests::support::{one, run, sql_error};
    use pgrx::prelude::*;

    #[pg_test]
    fn avg_and_sum() {
        run("CREATE TEMP TABLE t (v vector(3))");
        assert!(Spi::get_one::<String>("SELECT avg(v)::text FROM t")
            .expect("query")
            .is_none());
        assert!(Spi::get_one::<String>("SELECT sum(v)::text FROM t")
            .expect("query")
            .is_none());
        run("INSERT INTO t VALUES ('[1,2,3]'), ('[4,5,6]'), (NULL)");
        assert_eq!(one::<String>("SELECT avg(v)::text FROM t"), "[2.5,3.5,4.5]");
        assert_eq!(one::<String>("SELECT sum(v)::text FROM t"), "[5,7,9]");
    }

    #[pg_test]
    fn aggregate_errors() {
        assert_eq!(
            sql_error("SELECT avg(v) FROM (VALUES ('[1,2]'::vector), ('[1,2,3]')) x(v)"),
            "22000 expected 2 dimensions, not 3"
        );
        assert_eq!(
            sql_error("SELECT sum(v) FROM (VALUES ('[1,2]'::vector), ('[1]')) x(v)"),
            "22000 different vector dimensions 2 and 1"
        );
        assert_eq!(
            sql_error("SELECT sum(v) FROM (VALUES ('[3e38]'::vector), ('[3e38]')) x(v)"),
            "22003 value out of range: overflow"
        );
    }

    /// Partial aggregates computed by parallel workers combine to the same answer.
    #[pg_test]
    fn parallel_aggregation() {
        run("CREATE TABLE agg_t AS SELECT i, ARRAY[i % 7, i % 11, 1]::vector AS v FROM generate_series(1, 50000) i");
        run("ANALYZE agg_t");
        let serial_avg = one::<String>("SELECT avg(v)::text FROM agg_t");
        let serial_sum = one::<String>("SELECT sum(v)::text FROM agg_t");
        run("SET LOCAL parallel_setup_cost = 0");
        run("SET LOCAL parallel_tuple_cost = 0");
        run("SET LOCAL min_parallel_table_scan_size = 0");
        run("SET LOCAL max_parallel_workers_per_gather = 2");
        let explain = one::<pgrx::datum::Json>(
            "EXPLAIN (ANALYZE, FORMAT JSON) SELECT avg(v), sum(v) FROM agg_t",
        );
        let explain = explain.0.to_string();
        assert!(
            explain.contains("\"Partial Mode\":\"Partial\""),
            "no partial aggregate in plan: {explain}"
        );
        assert!(
            explain.contains("\"Workers Launched\"") && !explain.contains("\"Workers Launched\":0"),
            "no parallel worker ran: {explain}"
        );
        assert_eq!(one::<String>("SELECT avg(v)::text FROM agg_t"), serial_avg);
        assert_eq!(one::<String>("SELECT sum(v)::text FROM agg_t"), serial_sum);
        let expected_avg = {
            let n = 50000.0f64;
            let s0: f64 = (1..=50000).map(|i| (i % 7) as f64).sum();
            let s1: f64 = (1..=50000).map(|i| (i % 11) as f64).sum();
            crate::vector::text::format(&[(s0 / n) as f32, (s1 / n) as f32, 1.0])
        };
        assert_eq!(serial_avg, expected_avg);
    }
}
