#!/usr/bin/env bash
# Benchmarks vdb's vhnsw against pgvector's hnsw on one throwaway server,
# with hnswlib in process beside them as the HNSW algorithm's ceiling.
#
#   scripts/bench.sh [--scale-out] [vdb-bench options]   e.g. --dataset gmm --rows 1000000
#
# Datasets: --dataset glove-50 (the default), minilm-384, synth-1536,
# gmm-128, glove-50-ip and minilm-384-ip (inner product on vectors that
# are not unit length), or several comma-separated. minilm-384 is made once by
# bench/embed.py (Debian's package descriptions embedded with
# all-MiniLM-L6-v2: about an hour on 2 cores, resumable). The Python side
# (the embedding, hnswlib) runs in a virtualenv under .data/bench/venv that
# pip fills on first use. --no-hnswlib leaves hnswlib out; --hnswlib-only
# runs only hnswlib, without PostgreSQL.
#
# --mixed measures both engines' query rate while a client inserts rows;
# --vacuum their deletes (10 %, 50 %), VACUUM and ten update rounds.
#
# --scale-out also starts three shard servers (ports +1..+3) and measures
# the same data split over 2 and 3 of them behind postgres_fdw.
#
# --citus also starts a Citus coordinator and two workers (ports +4..+6)
# and measures the data as a distributed table (4 shards; --citus-shards N)
# against the same rows in one table on that coordinator. Citus is not in
# Debian's packages: install it into PostgreSQL 15 yourself; without it
# --citus says so and is skipped.
#
# pgvector is measured when the server can CREATE EXTENSION vector (it is
# not part of vdb and never built here: install it beside vdb yourself, see
# ../shared/BENCHMARKS.md) and VDB_BENCH_PGVECTOR is not 0; otherwise vdb
# runs alone. Results are printed,
# and a recall/QPS plot is written to bench/out/.
. "$(dirname "$0")/common.sh"

DATA_DIR="$ROOT_DIR/.data/bench-cluster"
PORT=${VDB_BENCH_PORT:-54339}

for arg in "$@"; do
    if [ "$arg" = --hnswlib-only ]; then
        cargo build --release -p vdb-bench
        exec "$ROOT_DIR/target/release/vdb-bench" --data-dir "$ROOT_DIR/.data/bench" --out "$ROOT_DIR/bench/out" "$@"
    fi
done

setup
install_vdb_release
cargo build --release -p vdb-bench

log "starting a throwaway cluster on 127.0.0.1:$PORT"
start_cluster "$DATA_DIR" "$PORT" \
    -c shared_buffers=4GB -c maintenance_work_mem=4GB -c max_wal_size=8GB -c checkpoint_timeout=30min

SHARDS=0
CITUS=0
passthrough=()
for arg in "$@"; do
    case "$arg" in
        --scale-out) SHARDS=3 ;;
        --citus) CITUS=1 ;;
        *) passthrough+=("$arg") ;;
    esac
done
if [ "$CITUS" = 1 ] && [ ! -f "$(pg_config --sharedir)/extension/citus.control" ]; then
    log "skipped: --citus (Citus is not installed into PostgreSQL $PG_MAJOR)"
    CITUS=0
fi
CITUS_NODES=(coordinator worker1 worker2)
stop_all() {
    stop_cluster "$DATA_DIR"
    for i in $(seq 1 "$SHARDS"); do stop_cluster "$DATA_DIR-shard$i"; done
    if [ "$CITUS" = 1 ]; then
        for node in "${CITUS_NODES[@]}"; do stop_cluster "$DATA_DIR-citus-$node"; done
    fi
}
trap stop_all EXIT
shard_args=()
for i in $(seq 1 "$SHARDS"); do
    log "starting shard server $i on 127.0.0.1:$((PORT + i))"
    start_cluster "$DATA_DIR-shard$i" "$((PORT + i))" \
        -c shared_buffers=1GB -c maintenance_work_mem=2GB -c max_wal_size=8GB -c checkpoint_timeout=30min
    shard_args+=(--shard "host=127.0.0.1 port=$((PORT + i)) user=postgres dbname=postgres")
done

citus_args=()
if [ "$CITUS" = 1 ]; then
    for i in 0 1 2; do
        node=${CITUS_NODES[$i]}
        log "starting Citus $node on 127.0.0.1:$((PORT + 4 + i))"
        start_cluster "$DATA_DIR-citus-$node" "$((PORT + 4 + i))" \
            -c shared_preload_libraries=citus -c max_prepared_transactions=100 \
            -c shared_buffers=1GB -c maintenance_work_mem=2GB -c max_wal_size=8GB -c checkpoint_timeout=30min
        command psql -X -q -v ON_ERROR_STOP=1 -h 127.0.0.1 -p "$((PORT + 4 + i))" -U postgres \
            -c "CREATE EXTENSION citus"
    done
    command psql -X -q -v ON_ERROR_STOP=1 -h 127.0.0.1 -p "$((PORT + 4))" -U postgres \
        -c "SELECT citus_set_coordinator_host('127.0.0.1', $((PORT + 4)))" \
        -c "SELECT citus_add_node('127.0.0.1', $((PORT + 5)))" \
        -c "SELECT citus_add_node('127.0.0.1', $((PORT + 6)))" \
        -c "CREATE EXTENSION vdb" >/dev/null
    citus_args+=(--citus "host=127.0.0.1 port=$((PORT + 4)) user=postgres dbname=postgres")
fi

conn() { echo "host=127.0.0.1 port=$PORT user=postgres dbname=$1"; }
psql() { command psql -X -q -v ON_ERROR_STOP=1 -h 127.0.0.1 -p "$PORT" -U postgres "$@"; }
psql -c "CREATE DATABASE vdb_bench"
args=(--vdb "$(conn vdb_bench)")
if [ "${VDB_BENCH_PGVECTOR:-1}" = 1 ] && [ -f "$(pg_config --sharedir)/extension/vector.control" ]; then
    psql -c "CREATE DATABASE pgvector_bench"
    args+=(--pgvector "$(conn pgvector_bench)")
else
    log "pgvector is not installed: measuring vdb alone"
fi
"$ROOT_DIR/target/release/vdb-bench" "${args[@]}" --data-dir "$ROOT_DIR/.data/bench" --out "$ROOT_DIR/bench/out" \
    ${shard_args[@]+"${shard_args[@]}"} ${citus_args[@]+"${citus_args[@]}"} ${passthrough[@]+"${passthrough[@]}"}
