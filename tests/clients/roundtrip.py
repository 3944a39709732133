"""pgvector-python's Vector, HalfVector, Bit and SparseVector against vdb
through psycopg 3, used the way an application uses them: register_vector on
the connection, values passed as query parameters, results read back as
those classes.

Run by tests/clients.rs as `roundtrip.py CONNINFO` against a database where
vdb is created. Prints one `ok: ...` line per check, `skipped: ...` for a
check this build cannot run, and exits non-zero at the first mismatch.

Every value crosses the wire in all four combinations of parameter format
(`%t` text, `%b` binary) and result format (`binary=False/True`). The mixed
ones are what prove compatibility: a server whose binary receive and send
were wrong in the same way would still round-trip binary to binary, but not
binary in, text out.
"""

import sys
from importlib.metadata import version

import numpy as np
import psycopg
from pgvector import Bit, HalfVector, SparseVector, Vector
from pgvector.psycopg import register_vector

PARAMS = [("text", "%t"), ("binary", "%b")]
RESULTS = [("text", False), ("binary", True)]
COMBINATIONS = "text/binary parameters x text/binary results"


class Mismatch(Exception):
    pass


def expect(condition, what):
    # Not `assert`: the checks must hold under `python -O` too.
    if not condition:
        raise Mismatch(what)


def same_bits(got, want, what):
    """Equal bit for bit (so -0.0 is not 0.0), same dtype and length."""
    got = np.asarray(got)
    want = np.asarray(want)
    expect(
        got.dtype == want.dtype and got.shape == want.shape,
        f"{what}: got {got.dtype}{got.shape}, want {want.dtype}{want.shape}",
    )
    unsigned = {2: np.uint16, 4: np.uint32}[want.dtype.itemsize]
    differ = np.flatnonzero(got.view(unsigned) != want.view(unsigned))
    expect(
        differ.size == 0,
        f"{what}: {differ.size} coordinates differ, first at {differ[:1]}: "
        f"got {got[differ[:1]]}, want {want[differ[:1]]}",
    )


def fetch(conn, query, params, binary):
    """All rows of `query`, after checking the server really answered in the
    requested format (so a binary check cannot silently run as text)."""
    cur = conn.execute(query, params, binary=binary)
    fmt = cur.pgresult.fformat(0)
    expect(fmt == int(binary), f"{query}: result format {fmt}, asked binary={binary}")
    return cur.fetchall()


def round_trip(conn, table, column_type, values, check):
    """Inserts every value with each parameter format, reads every row back
    with each result format, and calls check(got, index, binary, what) on
    each (binary: the result format)."""
    conn.execute(f"CREATE TABLE {table} (id int PRIMARY KEY, x {column_type})")
    for p, (pname, placeholder) in enumerate(PARAMS):
        for i, value in enumerate(values):
            conn.execute(
                f"INSERT INTO {table} VALUES (%s, {placeholder})",
                (p * len(values) + i, value),
            )
    for rname, binary in RESULTS:
        rows = fetch(conn, f"SELECT id, x FROM {table} ORDER BY id", (), binary)
        expect(len(rows) == len(PARAMS) * len(values), f"{table}: {len(rows)} rows")
        for row_id, got in rows:
            p, i = divmod(row_id, len(values))
            check(got, i, binary, f"{table} value {i}, {PARAMS[p][0]} in, {rname} out")


def check_vector(conn):
    rng = np.random.default_rng(7)
    f32 = np.finfo(np.float32)
    arrays = [
        # float64, as numpy users usually write it: sent as float32.
        np.array([1.5, 2, 3]),
        # Shortest text forms, signed zero, subnormal, extremes.
        np.array([0.1, -0.0, 1e-45, f32.tiny, f32.max, -f32.max, 1 / 3], dtype=np.float32),
        rng.standard_normal(1).astype(np.float32),
        rng.standard_normal(300).astype(np.float32),
        (rng.standard_normal(2000) * 1e6).astype(np.float32),
    ]
    values = arrays + [
        Vector([1.5, -2.25, 3.0]),
        Vector(rng.standard_normal(16000).astype(np.float32)),
    ]
    expected = [np.asarray(a, dtype=np.float32) for a in arrays] + [
        v.to_numpy() for v in values[len(arrays):]
    ]

    def check(got, i, binary, what):
        expect(isinstance(got, Vector), f"{what}: loaded as {type(got).__name__}")
        same_bits(got.to_numpy(), expected[i], what)

    round_trip(conn, "vectors", "vector", values, check)

    # The server reads the coordinates as sent: a distance it computes from
    # binary parameters agrees with numpy's.
    a, b = expected[3], rng.standard_normal(300).astype(np.float32)
    (d,) = fetch(conn, "SELECT %b <-> %b", (Vector(a), Vector(b)), False)[0]
    want = float(np.linalg.norm(a.astype(np.float64) - b.astype(np.float64)))
    expect(abs(d - want) <= 1e-5 * want, f"vector <->: got {d}, want {want}")
    print(f"ok: vector: {len(values)} values (numpy and Vector), {COMBINATIONS}; <-> as numpy")


def check_halfvec(conn):
    rng = np.random.default_rng(11)
    exact = [
        1.5, -2.0, 0.25, 1000.5, 0.0999755859375,
        65504.0, -65504.0,  # largest half
        6.103515625e-05,  # smallest normal half
        5.960464477539063e-08,  # smallest subnormal half
        -0.0,
    ]
    values = [
        HalfVector(exact),
        HalfVector(rng.standard_normal(700).astype(np.float16)),
        HalfVector(np.array([3.0, -4.0])),  # float64 ndarray: converted by the client
        HalfVector((rng.standard_normal(16000) * 100).astype(np.float16)),
    ]
    expected = [np.array(exact, dtype=np.float16)] + [v.to_numpy() for v in values[1:]]

    def check(got, i, binary, what):
        expect(isinstance(got, HalfVector), f"{what}: loaded as {type(got).__name__}")
        same_bits(got.to_numpy(), expected[i], what)

    round_trip(conn, "halves", "halfvec", values, check)

    # Values that are not halves: the server rounds them to the nearest
    # half. They reach a halfvec column as an application sends float
    # embeddings (a numpy array or a Vector, cast by the server) or as text.
    inexact = [0.1, 1 / 3, -0.3, 2049.0, 65519.0, 1e-8]
    nearest = np.array(inexact, dtype=np.float32).astype(np.float16)
    for x, h in zip(inexact, nearest):
        # Preconditions of the check itself: x really rounds, and the
        # nearest half is the same whether or not x went through float32.
        expect(float(h) != x, f"{x} is a half")
        expect(np.float16(x) == h, f"{x} rounds differently through float32")
    text = "[" + ",".join(repr(x) for x in inexact) + "]"
    sent = [
        ("numpy %t", "%t", np.array(inexact)),
        ("numpy %b", "%b", np.array(inexact)),
        ("Vector %b", "%b", Vector(inexact)),
        ("str", "%s", text),
    ]
    conn.execute("CREATE TABLE rounded (id int PRIMARY KEY, h halfvec)")
    for i, (_, placeholder, value) in enumerate(sent):
        conn.execute(f"INSERT INTO rounded VALUES (%s, {placeholder})", (i, value))
    for rname, binary in RESULTS:
        for i, got in fetch(conn, "SELECT id, h FROM rounded ORDER BY id", (), binary):
            same_bits(got.to_numpy(), nearest, f"{inexact} sent as {sent[i][0]}, {rname} out")
    print(
        f"ok: halfvec: {len(values)} exact values, {COMBINATIONS}; "
        f"{inexact} round to nearest halves"
    )


def bit_from_result(got, binary, what):
    # pgvector-python registers no loader for bit: psycopg returns the
    # text form as str and the binary form as bytes, and an application
    # builds the Bit itself.
    if binary:
        expect(isinstance(got, bytes), f"{what}: binary bit loaded as {type(got).__name__}")
        return Bit.from_binary(got)
    expect(isinstance(got, str), f"{what}: text bit loaded as {type(got).__name__}")
    return Bit.from_text(got)


def check_bit(conn):
    rng = np.random.default_rng(13)
    values = [
        Bit("101"),
        Bit("1"),
        Bit("0" * 8),
        Bit("1" * 9),
        Bit([True, False, False, True, True]),
        Bit(b"\xa5\x0f"),
        Bit(rng.integers(0, 2, 1000).astype(bool)),
    ]
    texts = ["101", "1", "0" * 8, "1" * 9, "10011", "1010010100001111", values[-1].to_text()]

    def check(got, i, binary, what):
        bit = bit_from_result(got, binary, what)
        expect(bit == values[i], f"{what}: got {bit!r}, want {values[i]!r}")
        expect(bit.to_text() == texts[i], f"{what}: got {bit.to_text()}, want {texts[i]}")

    round_trip(conn, "bits", "bit varying", values, check)

    # Hamming distances computed by the server, against Python's own count.
    n, width = 60, 64
    stored = [Bit(rng.integers(0, 2, width).astype(bool)) for _ in range(n)]
    query = Bit(rng.integers(0, 2, width).astype(bool))
    conn.execute(f"CREATE TABLE hbits (id int PRIMARY KEY, b bit({width}))")
    with conn.cursor() as cur:
        cur.executemany("INSERT INTO hbits VALUES (%s, %b)", list(enumerate(stored)))

    def hamming(a, b):
        return (int(a.to_text(), 2) ^ int(b.to_text(), 2)).bit_count()

    want = [hamming(b, query) for b in stored]
    expect(len(set(want)) > 5, "degenerate hamming data")
    for pname, placeholder in PARAMS:
        for rname, binary in RESULTS:
            rows = fetch(
                conn,
                f"SELECT id, b <~> {placeholder}, hamming_distance(b, {placeholder}), b "
                "FROM hbits ORDER BY id",
                (query, query),
                binary,
            )
            what = f"hamming, {pname} query, {rname} out"
            expect([r[0] for r in rows] == list(range(n)), f"{what}: ids")
            for i, op, fn, b in rows:
                expect(op == want[i] and fn == want[i], f"{what}: row {i}: {op}, {fn}, want {want[i]}")
                expect(bit_from_result(b, binary, what) == stored[i], f"{what}: row {i} bits")
        rows = fetch(
            conn, f"SELECT id FROM hbits ORDER BY b <~> {placeholder}, id LIMIT 10", (query,), False
        )
        nearest = sorted(range(n), key=lambda i: (want[i], i))[:10]
        expect([r[0] for r in rows] == nearest, f"ORDER BY <~>, {pname} query: {rows} vs {nearest}")
    print(
        f"ok: bit: {len(values)} values, {COMBINATIONS}; "
        f"<~> and hamming_distance match Python's count on {n} rows"
    )


def check_sparsevec(conn):
    (regtype,) = conn.execute("SELECT to_regtype('sparsevec')").fetchone()
    if regtype is None:
        print("skipped: sparsevec not in this build")
        return
    rng = np.random.default_rng(17)
    dense = np.zeros(1000, dtype=np.float32)
    dense[rng.choice(1000, 50, replace=False)] = rng.standard_normal(50).astype(np.float32)
    values = [
        SparseVector({0: 1.5, 4: -2.25, 9: 3.0}, 10),
        SparseVector({}, 5),
        SparseVector([0.0, 0.5, 0.0, -4.0]),
        SparseVector(dense),
        SparseVector({2: float(np.float32(0.1)), 99_999: -1e-45}, 100_000),
    ]

    def check(got, i, binary, what):
        want = values[i]
        expect(isinstance(got, SparseVector), f"{what}: loaded as {type(got).__name__}")
        expect(got.dimensions() == want.dimensions(), f"{what}: dims {got.dimensions()}")
        expect(got.indices() == want.indices(), f"{what}: indices {got.indices()[:5]}...")
        # Text results are the shortest float32 forms ("0.1"), binary ones
        # exact float32s: both are the same float32.
        same_bits(
            np.array(got.values(), dtype=np.float32),
            np.array(want.values(), dtype=np.float32),
            what,
        )

    round_trip(conn, "sparse", "sparsevec", values, check)
    print(f"ok: sparsevec: {len(values)} values, {COMBINATIONS}")


def check_vhnsw_halfvec(conn):
    rng = np.random.default_rng(19)
    n, dims = 300, 16
    data = rng.standard_normal((n, dims)).astype(np.float16)
    conn.execute(f"CREATE TABLE hitems (id int PRIMARY KEY, h halfvec({dims}))")
    with conn.cursor() as cur:
        cur.executemany(
            "INSERT INTO hitems VALUES (%s, %b)", [(i, HalfVector(data[i])) for i in range(n)]
        )
    conn.execute("CREATE INDEX hitems_h ON hitems USING vhnsw (h halfvec_l2_ops)")
    conn.execute("SET enable_seqscan = off")
    query_sql = "SELECT id, h, h <-> %b FROM hitems ORDER BY h <-> %b LIMIT 1"

    plan = "\n".join(
        r[0] for r in conn.execute("EXPLAIN " + query_sql, (HalfVector(data[0]),) * 2)
    )
    expect("hitems_h" in plan, f"the query does not use the vhnsw index:\n{plan}")

    exact64 = data.astype(np.float64)
    targets = rng.choice(n, 8, replace=False)
    for k, target in enumerate(targets):
        # The first query is a stored vector itself; the others are near one.
        noise = 0 if k == 0 else rng.standard_normal(dims) * 0.05
        q = (data[target].astype(np.float64) + noise).astype(np.float16)
        dist = np.linalg.norm(exact64 - q.astype(np.float64), axis=1)
        order = np.argsort(dist)
        best = int(order[0])
        # A clear winner, so float32 arithmetic in the server cannot flip it.
        expect(dist[order[1]] - dist[best] > 1e-3, f"query {k}: no clear nearest")
        (row,) = fetch(conn, query_sql, (HalfVector(q), HalfVector(q)), True)
        got_id, got_h, got_d = row
        what = f"vhnsw query {k}"
        expect(got_id == best, f"{what}: nearest id {got_id}, want {best}")
        same_bits(got_h.to_numpy(), data[best], f"{what}: vector")
        expect(
            abs(got_d - dist[best]) <= 1e-5 * max(dist[best], 1e-3),
            f"{what}: distance {got_d}, want {dist[best]}",
        )
    print(f"ok: vhnsw (h halfvec_l2_ops): {len(targets)} HalfVector queries, nearest ids as numpy's")


def main():
    conninfo = sys.argv[1]
    with psycopg.connect(conninfo, autocommit=True) as conn:
        register_vector(conn)
        check_vector(conn)
        check_halfvec(conn)
        check_bit(conn)
        check_sparsevec(conn)
        check_vhnsw_halfvec(conn)
    print(f"ok: pgvector {version('pgvector')}, psycopg {psycopg.__version__} ({psycopg.pq.__impl__})")


if __name__ == "__main__":
    try:
        main()
    except Mismatch as e:
        print(f"MISMATCH: {e}", file=sys.stderr)
        sys.exit(1)
