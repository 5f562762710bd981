#!/usr/bin/env bash
# The single test command of sluice (README: ./scripts/test.sh).
#
#   1. Python venv .venv with tests/clients/requirements.txt (pinned), and
#      the npm trino-client of tests/clients/npm (package-lock.json, npm ci;
#      nodejs/npm from Debian if missing);
#   2. a throwaway PostgreSQL cluster on 127.0.0.1 (SLUICE_TEST_POSTGRES_URL),
#      installed from Debian if missing, stopped on exit;
#   3. a real Milvus 2.3.5 standalone (PyPI milvus, from the venv) on
#      127.0.0.1:19530 with the fixture collections of
#      tests/clients/milvus_fixtures.py (SLUICE_TEST_MILVUS_URI), started by
#      tests/clients/milvus_harness.py, stopped on exit; the run fails here
#      (with the server's log tail) if it does not start;
#   4. cargo test --workspace (debug);
#   5. cargo build -p sluice --bin sluice;
#   6. pytest -q tests/clients with SLUICE_BIN = the debug binary;
#   7. a short load run (benches/load.py: 24 clients over ADBC Flight SQL and
#      Trino for 15 s, two abusive ones among them) on the debug binary:
#      0 errors for the well-behaved clients, peak RSS within the bounds.
#      Skipped when pytest arguments select a subset.
#
# Every stage runs even if an earlier one failed (as far as it can), and the
# script exits non-zero if any failed. Extra arguments go to pytest
# (./scripts/test.sh -k oracle). SLUICE_TEST_SKIP_CARGO_TEST=1 skips stage 4
# for quick iterations on the client tests; CI never sets it.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"

export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$HOME/.cache/sluice-target}
VENV=$ROOT/.venv
REQUIREMENTS=$ROOT/tests/clients/requirements.txt
NPM_DIR=$ROOT/tests/clients/npm

log() { printf '\n==> %s\n' "$*" >&2; }
die() { printf 'test.sh: %s\n' "$*" >&2; exit 1; }

as_root() {
  if [ "$(id -u)" = 0 ]; then "$@";
  elif command -v sudo >/dev/null 2>&1; then sudo "$@";
  else die "need root for: $*"; fi
}

APT_UPDATED=0
apt_install() {
  command -v apt-get >/dev/null 2>&1 || die "apt-get not found; install $* by hand"
  if [ "$APT_UPDATED" = 0 ]; then
    as_root env DEBIAN_FRONTEND=noninteractive apt-get update -qq
    APT_UPDATED=1
  fi
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$@" >/dev/null
}

# --- toolchains --------------------------------------------------------------------
if ! command -v cargo >/dev/null 2>&1 && [ -f "$HOME/.cargo/env" ]; then
  # shellcheck disable=SC1091
  . "$HOME/.cargo/env"
fi
command -v cargo >/dev/null 2>&1 || die "cargo not found (install Rust)"
PYTHON=${PYTHON:-python3}
command -v "$PYTHON" >/dev/null 2>&1 || die "$PYTHON not found"

# --- 1. Python venv ------------------------------------------------------------------
setup_venv() {
  if [ ! -x "$VENV/bin/python" ]; then
    log "creating $VENV"
    if ! "$PYTHON" -m venv "$VENV" 2>/dev/null; then
      rm -rf "$VENV"
      apt_install python3-venv
      "$PYTHON" -m venv "$VENV"
    fi
  fi
  local want have
  want=$( (cat "$REQUIREMENTS"; "$VENV/bin/python" -V) | sha256sum | cut -d' ' -f1)
  have=$(cat "$VENV/.requirements.sha256" 2>/dev/null || true)
  if [ "$want" != "$have" ]; then
    log "pip install -r tests/clients/requirements.txt"
    "$VENV/bin/python" -m pip install -q --disable-pip-version-check -r "$REQUIREMENTS"
    echo "$want" >"$VENV/.requirements.sha256"
  fi
}

# --- 1b. npm trino-client -------------------------------------------------------------
# node_modules is reinstalled (npm ci) only when package.json, the lockfile
# or the node version changed since the last install.
setup_npm() {
  if ! command -v node >/dev/null 2>&1 || ! command -v npm >/dev/null 2>&1; then
    log "installing nodejs and npm from Debian"
    apt_install nodejs npm
  fi
  local want have
  want=$( (cat "$NPM_DIR/package.json" "$NPM_DIR/package-lock.json"; node --version) | sha256sum | cut -d' ' -f1)
  have=$(cat "$NPM_DIR/node_modules/.sluice-lock.sha256" 2>/dev/null || true)
  if [ "$want" != "$have" ]; then
    log "npm ci (tests/clients/npm)"
    (cd "$NPM_DIR" && npm ci --no-audit --no-fund --loglevel=error)
    echo "$want" >"$NPM_DIR/node_modules/.sluice-lock.sha256"
  fi
}

# --- 2. PostgreSQL -------------------------------------------------------------------
PG_TMP=""
PG_BIN=""
PG_RUNAS=()

find_pg_bin() {
  local d
  if command -v initdb >/dev/null 2>&1; then
    d=$(dirname "$(readlink -f "$(command -v initdb)")")
    [ -x "$d/pg_ctl" ] && { echo "$d"; return; }
  fi
  for d in $(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V -r); do
    [ -x "$d/initdb" ] && [ -x "$d/pg_ctl" ] && { echo "$d"; return; }
  done
  return 0
}

free_port() {
  "$PYTHON" -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1]); s.close()'
}

stop_postgres() {
  if [ -n "$PG_TMP" ] && [ -d "$PG_TMP" ]; then
    if [ -f "$PG_TMP/data/postmaster.pid" ]; then
      "${PG_RUNAS[@]}" "$PG_BIN/pg_ctl" -D "$PG_TMP/data" -m immediate -w stop >/dev/null 2>&1 || true
    fi
    rm -rf "$PG_TMP"
  fi
}

start_postgres() {
  PG_BIN=$(find_pg_bin)
  if [ -z "$PG_BIN" ]; then
    log "installing PostgreSQL from Debian"
    apt_install postgresql
    PG_BIN=$(find_pg_bin)
    [ -n "$PG_BIN" ] || die "PostgreSQL installed but initdb not found"
  fi
  PG_TMP=$(mktemp -d /tmp/sluice-pg.XXXXXX)
  if [ "$(id -u)" = 0 ]; then
    # PostgreSQL refuses to run as root.
    id postgres >/dev/null 2>&1 || as_root useradd --system --no-create-home --shell /usr/sbin/nologin postgres
    chown -R postgres: "$PG_TMP"
    PG_RUNAS=(runuser -u postgres --)
  else
    PG_RUNAS=(env)
  fi
  local port
  port=$(free_port)
  "${PG_RUNAS[@]}" "$PG_BIN/initdb" -D "$PG_TMP/data" -U sluice --auth=trust -E UTF8 --no-locale >"$PG_TMP/initdb.log" 2>&1 \
    || { cat "$PG_TMP/initdb.log" >&2; die "initdb failed"; }
  "${PG_RUNAS[@]}" "$PG_BIN/pg_ctl" -D "$PG_TMP/data" -l "$PG_TMP/postgres.log" -w -t 60 \
    -o "-h 127.0.0.1 -p $port -k $PG_TMP -c fsync=off -c full_page_writes=off" start >/dev/null \
    || { cat "$PG_TMP/postgres.log" >&2; die "postgres did not start"; }
  "${PG_RUNAS[@]}" "$PG_BIN/createdb" -h 127.0.0.1 -p "$port" -U sluice sluice_test
  export SLUICE_TEST_POSTGRES_URL="postgres://sluice@127.0.0.1:$port/sluice_test"
  export SLUICE_TEST_PG_BIN="$PG_BIN"
  log "PostgreSQL on 127.0.0.1:$port ($SLUICE_TEST_POSTGRES_URL)"
}

# --- 3. Milvus ----------------------------------------------------------------------
MILVUS_TMP=""
MILVUS_HARNESS=$ROOT/tests/clients/milvus_harness.py

stop_milvus() {
  if [ -n "$MILVUS_TMP" ] && [ -d "$MILVUS_TMP" ]; then
    "$VENV/bin/python" "$MILVUS_HARNESS" stop --pidfile "$MILVUS_TMP/milvus.pid" \
      || printf 'test.sh: stopping Milvus failed (see above)\n' >&2
    rm -rf "$MILVUS_TMP"
  fi
}

start_milvus() {
  MILVUS_TMP=$(mktemp -d /tmp/sluice-milvus-run.XXXXXX)
  log "Milvus 2.3.5 (tests/clients/milvus_harness.py start)"
  local uri
  # stderr (progress, and the log tails on failure) goes straight through;
  # stdout is the URI.
  if ! uri=$("$VENV/bin/python" "$MILVUS_HARNESS" start \
      --pidfile "$MILVUS_TMP/milvus.pid" --logfile "$MILVUS_TMP/milvus.log"); then
    if [ -s "$MILVUS_TMP/milvus.log" ]; then
      printf '\n--- %s (last 60 lines) ---\n' "$MILVUS_TMP/milvus.log" >&2
      tail -n 60 "$MILVUS_TMP/milvus.log" >&2 || true
    fi
    die "Milvus did not start (log tails above)"
  fi
  uri=$(printf '%s\n' "$uri" | tail -n 1)
  [ "$uri" = "http://127.0.0.1:19530" ] || die "milvus_harness.py printed an unexpected URI: '$uri'"
  export SLUICE_TEST_MILVUS_URI=$uri
  log "Milvus on $SLUICE_TEST_MILVUS_URI (collections docs, notes, big)"
}

cleanup() {
  stop_milvus || true
  stop_postgres || true
}

trap cleanup EXIT
trap 'exit 130' INT TERM

# --- stages --------------------------------------------------------------------------
FAILED=()
stage() {
  local name=$1; shift
  log "$name"
  if "$@"; then return 0; fi
  FAILED+=("$name")
  return 1
}

setup_venv
setup_npm
start_postgres
start_milvus

if [ "${SLUICE_TEST_SKIP_CARGO_TEST:-0}" != 1 ]; then
  stage "cargo test --workspace" cargo test --workspace || true
fi
if stage "cargo build -p sluice --bin sluice" cargo build -p sluice --bin sluice; then
  export SLUICE_BIN=$CARGO_TARGET_DIR/debug/sluice
  stage "pytest tests/clients" "$VENV/bin/python" -m pytest -q tests/clients "$@" || true
  if [ $# -eq 0 ]; then
    LOAD_DIR=$(mktemp -d)
    stage "short load run (benches/load.py)" "$VENV/bin/python" benches/load.py --binary "$SLUICE_BIN" \
      --clients 24 --seconds 15 --rows 200000 --stream-rows 10000 --abusive 2 --query-timeout 30s \
      --dir "$LOAD_DIR/gw" || true
    rm -rf "$LOAD_DIR"
  fi
else
  FAILED+=("pytest tests/clients (not run: no binary)")
fi

if [ "${#FAILED[@]}" -gt 0 ]; then
  printf '\ntest.sh: FAILED stages:\n' >&2
  printf '  - %s\n' "${FAILED[@]}" >&2
  exit 1
fi
printf '\ntest.sh: all stages passed\n' >&2
