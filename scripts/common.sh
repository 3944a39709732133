# Shared by scripts/demo.sh and scripts/test.sh: installs what is missing,
# idempotently, on Debian 12 with PostgreSQL 15. Source it; do not run it.

set -euo pipefail

PGRX_VERSION=0.18.0
PG_MAJOR=15
PG_CONFIG=/usr/bin/pg_config
PG_BIN=/usr/lib/postgresql/$PG_MAJOR/bin
APT_PACKAGES=(postgresql-$PG_MAJOR postgresql-server-dev-$PG_MAJOR libclang-dev clang sudo acl python3 python3-venv)

ROOT_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT_DIR"

log() { printf '\033[1m==> %s\033[0m\n' "$*"; }

# Runs a command as root (directly, or through sudo when not root).
as_root() {
    if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo "$@"; fi
}

# The OS user that owns throwaway clusters: PostgreSQL refuses to run as root.
pg_os_user() {
    if [ "$(id -u)" -eq 0 ]; then echo postgres; else id -un; fi
}

# Runs a command as the cluster owner.
as_pg_user() {
    local user
    user=$(pg_os_user)
    if [ "$user" = "$(id -un)" ]; then "$@"; else runuser -u "$user" -- "$@"; fi
}

install_apt_packages() {
    local missing=()
    for pkg in "${APT_PACKAGES[@]}"; do
        dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || missing+=("$pkg")
    done
    if [ ${#missing[@]} -gt 0 ]; then
        log "installing ${missing[*]}"
        as_root apt-get update -qq
        as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
    fi
}

install_cargo_pgrx() {
    if ! command -v cargo >/dev/null 2>&1 && [ -f "$HOME/.cargo/env" ]; then
        # shellcheck disable=SC1091
        . "$HOME/.cargo/env"
    fi
    if [ "$(cargo pgrx --version 2>/dev/null || true)" != "cargo-pgrx $PGRX_VERSION" ]; then
        log "installing cargo-pgrx $PGRX_VERSION (a few minutes)"
        cargo install cargo-pgrx --version "$PGRX_VERSION" --locked
    fi
    if ! grep -qs "^pg$PG_MAJOR = " "${PGRX_HOME:-$HOME/.pgrx}/config.toml"; then
        log "cargo pgrx init --pg$PG_MAJOR $PG_CONFIG"
        cargo pgrx init --pg$PG_MAJOR "$PG_CONFIG"
    fi
}

setup() {
    install_apt_packages
    install_cargo_pgrx
}

# Builds vdb in release mode and installs it into the system PostgreSQL.
install_vdb_release() {
    log "building and installing vdb (release)"
    if [ "$(id -u)" -eq 0 ]; then
        cargo pgrx install --release --pg-config "$PG_CONFIG"
    else
        cargo pgrx install --release --pg-config "$PG_CONFIG" --sudo
    fi
}

# Gives the cluster owner search (x) permission on every ancestor of $1, so
# a data directory inside the project works even under /root.
grant_traverse() {
    local user dir
    user=$(pg_os_user)
    dir=$1
    while [ "$dir" != "/" ]; do
        if ! as_pg_user test -x "$dir"; then
            log "granting $user search permission on $dir"
            as_root setfacl -m "u:$user:x" "$dir"
        fi
        dir=$(dirname "$dir")
    done
}

# start_cluster DATADIR PORT [SERVER OPTIONS...]: a fresh throwaway cluster
# on 127.0.0.1:PORT, its socket in DATADIR.
start_cluster() {
    local data=$1 port=$2
    shift 2
    local extra="$*"
    stop_cluster "$data"
    rm -rf "$data"
    mkdir -p "$data"
    grant_traverse "$(dirname "$data")"
    as_root chown "$(pg_os_user)" "$data"
    chmod 700 "$data"
    as_pg_user "$PG_BIN/initdb" -D "$data" -A trust -U postgres --no-sync >/dev/null
    as_pg_user "$PG_BIN/pg_ctl" -D "$data" -l "$data/server.log" -w \
        -o "-p $port -c listen_addresses=127.0.0.1 -k $data $extra" start >/dev/null
}

stop_cluster() {
    local data=$1
    if [ -f "$data/postmaster.pid" ]; then
        as_pg_user "$PG_BIN/pg_ctl" -D "$data" -m fast -w stop >/dev/null 2>&1 || true
    fi
}
