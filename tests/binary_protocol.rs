//! A client speaking the binary protocol, as pgvector's client libraries do:
//! vectors sent as binary parameters (`vector_recv`) and read as binary
//! results (`vector_send`), on a cluster of its own.

mod support;

use bytes::{BufMut, BytesMut};
use postgres::types::{to_sql_checked, FromSql, IsNull, ToSql, Type};
use std::error::Error;
use support::Cluster;

type BoxError = Box<dyn Error + Sync + Send>;

/// A vector in pgvector's binary format.
#[derive(Debug, Clone, PartialEq)]
struct Vector(Vec<f32>);

impl ToSql for Vector {
    fn to_sql(&self, _: &Type, out: &mut BytesMut) -> Result<IsNull, BoxError> {
        out.put_i16(i16::try_from(self.0.len())?);
        out.put_i16(0);
        for x in &self.0 {
            out.put_f32(*x);
        }
        Ok(IsNull::No)
    }
    fn accepts(ty: &Type) -> bool {
        ty.name() == "vector"
    }
    to_sql_checked!();
}

impl<'a> FromSql<'a> for Vector {
    fn from_sql(_: &Type, raw: &'a [u8]) -> Result<Self, BoxError> {
        let dim = usize::from(u16::from_be_bytes([raw[0], raw[1]]));
        if raw.len() != 4 + 4 * dim {
            return Err("length disagrees with header".into());
        }
        Ok(Vector(
            raw[4..]
                .chunks_exact(4)
                .map(|c| f32::from_be_bytes([c[0], c[1], c[2], c[3]]))
                .collect(),
        ))
    }
    fn accepts(ty: &Type) -> bool {
        ty.name() == "vector"
    }
}

/// Arbitrary bytes sent as a binary `vector` parameter.
#[derive(Debug)]
struct RawVector(Vec<u8>);

impl ToSql for RawVector {
    fn to_sql(&self, _: &Type, out: &mut BytesMut) -> Result<IsNull, BoxError> {
        out.put_slice(&self.0);
        Ok(IsNull::No)
    }
    fn accepts(ty: &Type) -> bool {
        ty.name() == "vector"
    }
    to_sql_checked!();
}

fn setup() -> (Cluster, postgres::Client) {
    support::require_vdb();
    let cluster = Cluster::start("binary", &[]);
    let mut client = cluster.connect("postgres");
    client
        .batch_execute("CREATE EXTENSION vdb; CREATE TABLE t (id int, v vector, v3 vector(3))")
        .expect("setup");
    (cluster, client)
}

fn sqlstate(err: &postgres::Error) -> String {
    err.code()
        .map(|c| c.code().to_string())
        .unwrap_or_else(|| format!("no SQLSTATE: {err}"))
}

#[test]
fn binary_parameters_and_results_round_trip_exactly() {
    let (_cluster, mut client) = setup();
    let mut state = 0x9e37_79b9u32;
    let mut next = || {
        state ^= state << 13;
        state ^= state >> 17;
        state ^= state << 5;
        state
    };
    let mut vectors = vec![Vector(vec![0.0, -0.0, 1.0e-45, f32::MAX, f32::MIN, 1.0])];
    for len in [1usize, 2, 3, 17, 300, 2000] {
        let v: Vec<f32> = (0..len)
            .map(|_| f32::from_bits(next()))
            .filter(|x| x.is_finite())
            .collect();
        if !v.is_empty() {
            vectors.push(Vector(v));
        }
    }
    for (i, v) in vectors.iter().enumerate() {
        client
            .execute("INSERT INTO t (id, v) VALUES ($1, $2)", &[&(i as i32), v])
            .expect("insert");
    }
    for (i, v) in vectors.iter().enumerate() {
        let row = client
            .query_one("SELECT v, v::text FROM t WHERE id = $1", &[&(i as i32)])
            .expect("select");
        let back: Vector = row.get(0);
        let bits = |v: &Vector| v.0.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
        assert_eq!(bits(&back), bits(v), "binary round trip of vector {i}");
        // The text form of the same value reads back to the same bits.
        let text: String = row.get(1);
        let reparsed: Vector = client
            .query_one("SELECT $1::text::vector", &[&text])
            .expect("reparse")
            .get(0);
        assert_eq!(bits(&reparsed), bits(v), "text round trip of vector {i}");
    }
    // Distances computed on binary parameters.
    let d: f64 = client
        .query_one(
            "SELECT $1::vector <-> $2::vector",
            &[&Vector(vec![0.0, 0.0]), &Vector(vec![3.0, 4.0])],
        )
        .expect("distance")
        .get(0);
    assert_eq!(d, 5.0);
}

#[test]
fn malformed_binary_parameters_are_rejected() {
    let (cluster, mut client) = setup();
    let good = {
        let mut b = vec![0, 2, 0, 0];
        b.extend_from_slice(&1.0f32.to_be_bytes());
        b.extend_from_slice(&2.0f32.to_be_bytes());
        b
    };
    let insert = |client: &mut postgres::Client, bytes: Vec<u8>| {
        client
            .execute("INSERT INTO t (v) VALUES ($1)", &[&RawVector(bytes)])
            .map(|_| ())
            .map_err(|e| sqlstate(&e))
    };
    assert_eq!(insert(&mut client, good.clone()), Ok(()));
    assert_eq!(
        insert(&mut client, good[..good.len() - 1].to_vec()),
        Err("22P03".into())
    );
    assert_eq!(
        insert(&mut client, [good.clone(), vec![0; 4]].concat()),
        Err("22P03".into())
    );
    assert_eq!(insert(&mut client, vec![0, 0, 0, 0]), Err("22000".into()));
    let mut nan = good.clone();
    nan[4..8].copy_from_slice(&f32::NAN.to_be_bytes());
    assert_eq!(insert(&mut client, nan), Err("22000".into()));
    let err = client
        .execute("INSERT INTO t (v3) VALUES ($1)", &[&Vector(vec![1.0, 2.0])])
        .expect_err("typmod");
    assert_eq!(sqlstate(&err), "22000", "{err}");
    // The backend is still healthy after every rejection.
    let n: i64 = client
        .query_one("SELECT count(*) FROM t", &[])
        .expect("count")
        .get(0);
    assert_eq!(n, 1, "{}", cluster.log());
}
