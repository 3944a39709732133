#!/usr/bin/env python3
"""The HNSW algorithm alone, in process: hnswlib on the benchmark's data.

The benchmark (`vdb-bench`) writes the split it measures the engines on as
.npy files into `<data-dir>/hnswlib/<dataset>/`: base.npy (N x d float32),
ids.npy (N int32: the row ids the ground truth names), queries.npy
(Q x d float32) and truth.npy (Q x k int32, exact top k, nearest first),
then runs this script and reads the one JSON object it prints on stdout:

    {"build_secs": .., "build_threads": .., "index_bytes": .., "rows": ..,
     "passes": [{"ef_search": .., "recall": .., "qps": .., "batch_qps": ..,
                 "p50_ms": .., "p99_ms": ..}, ...]}

The index is built with `--m` and `--ef-construction` on `--build-threads`
threads (default: every core). Queries run on one thread: `qps`, `p50_ms`
and `p99_ms` from one `knn_query` call per query (as a database client
sends them), `batch_qps` from one call with every query (no per-call
overhead). `recall` is recall@k against truth.npy. A warm-up pass at
ef_search 40 comes first.

    python3 bench/hnswlib_baseline.py --dir .data/bench/hnswlib/minilm-384 --space cosine
"""

import argparse
import json
import os
import sys
import tempfile
import time


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--dir", required=True, help="folder with base.npy, ids.npy, queries.npy, truth.npy")
    ap.add_argument(
        "--space", choices=["cosine", "l2", "ip"], required=True, help="ip: 1 - dot, the order of <#>"
    )
    ap.add_argument("--m", type=int, default=16)
    ap.add_argument("--ef-construction", type=int, default=64)
    ap.add_argument("--ef", default="10,20,40,80,160,320", help="ef_search values, comma-separated")
    ap.add_argument("--build-threads", type=int, default=0, help="0: every core")
    a = ap.parse_args()

    import hnswlib
    import numpy as np

    path = lambda f: os.path.join(a.dir, f)  # noqa: E731
    base = np.load(path("base.npy"))
    ids = np.load(path("ids.npy")).astype(np.int64)
    queries = np.load(path("queries.npy"))
    truth = np.load(path("truth.npy"))
    k = truth.shape[1]
    n, dims = base.shape
    build_threads = a.build_threads or os.cpu_count() or 1

    index = hnswlib.Index(space=a.space, dim=dims)
    index.init_index(max_elements=n, M=a.m, ef_construction=a.ef_construction, random_seed=100)
    index.set_num_threads(build_threads)
    start = time.perf_counter()
    index.add_items(base, ids)
    build_secs = time.perf_counter() - start
    del base
    print(f"hnswlib: built {n} x {dims} in {build_secs:.1f} s on {build_threads} threads", file=sys.stderr)
    with tempfile.NamedTemporaryFile(dir=a.dir, suffix=".hnsw") as f:
        index.save_index(f.name)
        index_bytes = os.path.getsize(f.name)

    index.set_num_threads(1)
    truth_sets = [set(row.tolist()) for row in truth]

    def run(ef):
        index.set_ef(max(ef, k))
        latencies, hits = [], 0
        start = time.perf_counter()
        for q, expected in zip(queries, truth_sets):
            t = time.perf_counter()
            labels, _ = index.knn_query(q, k=k, num_threads=1)
            latencies.append(time.perf_counter() - t)
            hits += len(expected.intersection(labels[0].tolist()))
        total = time.perf_counter() - start
        start = time.perf_counter()
        index.knn_query(queries, k=k, num_threads=1)
        batch = time.perf_counter() - start
        latencies.sort()
        pct = lambda p: latencies[round((len(latencies) - 1) * p)] * 1e3  # noqa: E731
        return {
            "ef_search": ef,
            "recall": hits / (len(queries) * k),
            "qps": len(queries) / total,
            "batch_qps": len(queries) / batch,
            "p50_ms": pct(0.50),
            "p99_ms": pct(0.99),
        }

    run(40)
    passes = []
    for ef in (int(x) for x in a.ef.split(",")):
        p = run(ef)
        print(
            f"hnswlib: ef {ef}: recall {p['recall']:.3f}, {p['qps']:.0f} QPS ({p['batch_qps']:.0f} in one call)",
            file=sys.stderr,
        )
        passes.append(p)
    json.dump(
        {
            "build_secs": build_secs,
            "build_threads": build_threads,
            "index_bytes": index_bytes,
            "rows": n,
            "passes": passes,
        },
        sys.stdout,
    )
    print()


if __name__ == "__main__":
    main()
