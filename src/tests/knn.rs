//! Exact nearest-neighbour queries agree with a top-k computed in Rust.

#[pgrx::pg_schema]
mod tests {
    use crate::tests::support::run;
    use pgrx::prelude::*;
    use vdb_core::distance::scalar;

    /// Loads 100,000 random 16-d vectors (seeded), then for several queries
    /// checks `ORDER BY embedding <op> q LIMIT 10` against a brute-force
    /// top 10 computed here with the scalar reference kernels.
    #[pg_test]
    fn order_by_distance_matches_brute_force() {
        run("SELECT setseed(0.5)");
        run("CREATE TABLE items AS
             SELECT i AS id, ARRAY(SELECT random() * 2 - 1 + i * 0 FROM generate_series(1, 16))::vector(16) AS embedding
             FROM generate_series(1, 100000) i");
        let rows: Vec<(i32, Vec<f32>)> = Spi::connect(|client| {
            client
                .select("SELECT id, embedding::real[] FROM items", None, &[])
                .expect("select")
                .map(|row| {
                    (
                        row.get::<i32>(1).expect("id").expect("not null"),
                        row.get::<Vec<f32>>(2).expect("vector").expect("not null"),
                    )
                })
                .collect()
        });
        assert_eq!(rows.len(), 100_000);

        type Kernel = fn(&[f32], &[f32]) -> f64;
        let metrics: [(&str, Kernel); 4] = [
            ("<->", |a, b| scalar::l2_squared(a, b)),
            ("<#>", |a, b| -scalar::dot(a, b)),
            ("<=>", scalar::cosine_distance),
            ("<+>", scalar::l1),
        ];
        for q in 0..5 {
            let query: Vec<f32> = (0..16)
                .map(|i| (((q * 31 + i * 17) % 23) as f32 - 11.0) / 11.0)
                .collect();
            let text = crate::vector::text::format(&query);
            for (op, kernel) in metrics {
                let mut expected: Vec<(f64, i32)> = rows
                    .iter()
                    .map(|(id, v)| (kernel(&query, v), *id))
                    .collect();
                expected.sort_by(|a, b| a.0.total_cmp(&b.0).then(a.1.cmp(&b.1)));
                let expected: Vec<i32> = expected.iter().take(10).map(|e| e.1).collect();
                let got: Vec<i32> = Spi::connect(|client| {
                    client
                        .select(
                            &format!("SELECT id FROM items ORDER BY embedding {op} $1::vector, id LIMIT 10"),
                            None,
                            &[text.clone().into()],
                        )
                        .expect("knn query")
                        .map(|row| row.get::<i32>(1).expect("id").expect("not null"))
                        .collect()
                });
                assert_eq!(got, expected, "query {q}, operator {op}");
            }
        }
    }
}
