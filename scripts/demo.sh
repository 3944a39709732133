#!/usr/bin/env bash
# Builds vdb in release mode, installs it into the system PostgreSQL 15,
# starts a throwaway cluster under .data/demo, loads sample vectors, indexes
# them with vhnsw and prints the 5 nearest neighbours of a query. Idempotent.
. "$(dirname "$0")/common.sh"

DATA_DIR="$ROOT_DIR/.data/demo"
PORT=${VDB_DEMO_PORT:-54329}

setup
install_vdb_release

log "starting a throwaway cluster on 127.0.0.1:$PORT ($DATA_DIR)"
start_cluster "$DATA_DIR" "$PORT"
trap 'stop_cluster "$DATA_DIR"' EXIT

psql() { command psql -X -q -v ON_ERROR_STOP=1 -h 127.0.0.1 -p "$PORT" -U postgres "$@"; }
psql -c "CREATE DATABASE demo"
psql -d demo <<'SQL'
CREATE EXTENSION vdb;
CREATE TABLE items (id bigint PRIMARY KEY, embedding vector(8));
-- 5,000 deterministic points on a twisted curve in 8 dimensions.
INSERT INTO items
SELECT i, ARRAY[sin(i), cos(i), sin(i / 2.0), cos(i / 3.0),
                sin(i / 5.0), cos(i / 7.0), sin(i / 11.0), cos(i / 13.0)]::vector(8)
FROM generate_series(1, 5000) AS i;
CREATE INDEX items_embedding_idx ON items USING vhnsw (embedding vector_l2_ops);
ANALYZE items;
\echo
\echo The plan uses the vhnsw index:
EXPLAIN (COSTS OFF) SELECT id FROM items ORDER BY embedding <-> '[0.5,0.5,0.5,0.5,0.5,0.5,0.5,0.5]' LIMIT 5;
\echo 5 nearest neighbours of [0.5,0.5,0.5,0.5,0.5,0.5,0.5,0.5] by Euclidean distance (<->):
SELECT id, embedding, round((embedding <-> '[0.5,0.5,0.5,0.5,0.5,0.5,0.5,0.5]')::numeric, 6) AS distance
FROM items
ORDER BY embedding <-> '[0.5,0.5,0.5,0.5,0.5,0.5,0.5,0.5]'
LIMIT 5;
SQL
log "demo done; stopping the cluster"
