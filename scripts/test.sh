#!/usr/bin/env bash
# Runs every test: the Postgres-free crates' unit tests, then the extension's
# tests against a real PostgreSQL 15 (`cargo pgrx test`, which also runs the
# extension crate's plain #[test]s and its integration tests). Idempotent.
. "$(dirname "$0")/common.sh"

setup

log "formatting and lints"
if cargo fmt --version >/dev/null 2>&1 && cargo clippy --version >/dev/null 2>&1 ||
    rustup component add rustfmt clippy; then
    cargo fmt --all --check
    cargo clippy --workspace --all-targets --features pg_test -- -D warnings
else
    log "rustfmt/clippy unavailable on this machine: lints skipped"
fi

log "unit tests of the Postgres-free crates"
cargo test --workspace --exclude vdb

# PostgreSQL refuses to run as root: pgrx runs initdb and the server as the
# cluster owner, and installs the extension with sudo (see ../shared/SETUP.md).
PGRX_DATA="/tmp/vdb-pgrx-test-$(id -u)"
as_root rm -rf "$PGRX_DATA"
mkdir -p "$PGRX_DATA"
as_root chown "$(pg_os_user)" "$PGRX_DATA"

log "tests against PostgreSQL $PG_MAJOR"
cargo pgrx test "pg$PG_MAJOR" --runas "$(pg_os_user)" --pgdata "$PGRX_DATA/data"
