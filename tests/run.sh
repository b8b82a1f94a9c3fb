#!/usr/bin/env bash
# The test command: ./tests/run.sh [extra arguments for cargo nextest run]
#
# 1. Installs the third-party clients the compatibility tests drive:
#    pynsq into tests/.venv, nsqjs into tests/compat/node_modules.
# 2. Builds the workspace (debug), so target/debug/nsqd is current.
# 3. Runs every test of the workspace with cargo-nextest (or cargo test when
#    nextest is not installed); the runner's summary is the last output.
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."
root="$(pwd)"

# --- pynsq (Python) -------------------------------------------------------
venv="tests/.venv"
req="tests/compat/requirements.txt"
want="$(sha256sum "$req" | cut -d' ' -f1)"
if [ ! -x "$venv/bin/python" ] || [ "$(cat "$venv/.requirements.sha256" 2>/dev/null || true)" != "$want" ]; then
    echo "run.sh: installing pynsq into $venv" >&2
    rm -rf "$venv"
    python3 -m venv "$venv"
    "$venv/bin/python" -m pip install --quiet --disable-pip-version-check -r "$req"
    echo "$want" > "$venv/.requirements.sha256"
fi
"$venv/bin/python" -c 'import nsq, tornado' \
    || { echo "run.sh: pynsq does not import from $venv" >&2; exit 1; }

# --- nsqjs (Node) ---------------------------------------------------------
compat="tests/compat"
lock_sum="$(sha256sum "$compat/package-lock.json" | cut -d' ' -f1)"
if [ ! -d "$compat/node_modules/nsqjs" ] || [ "$(cat "$compat/node_modules/.lock.sha256" 2>/dev/null || true)" != "$lock_sum" ]; then
    echo "run.sh: installing nsqjs into $compat/node_modules" >&2
    (cd "$compat" && npm ci --no-audit --no-fund --loglevel=error)
    echo "$lock_sum" > "$compat/node_modules/.lock.sha256"
fi

# --- build and test -------------------------------------------------------
cargo build --workspace
target="${CARGO_TARGET_DIR:-$root/target}"
export NSQD_BIN="$target/debug/nsqd"
export NSQLOOKUPD_BIN="$target/debug/nsqlookupd"
export LOADGEN_BIN="$target/debug/loadgen"
# Test failures are anyhow errors with their own context; their backtraces
# (enabled by RUST_BACKTRACE) only bury the message.
export RUST_LIB_BACKTRACE="${RUST_LIB_BACKTRACE:-0}"

if cargo nextest --version >/dev/null 2>&1; then
    exec cargo nextest run --workspace --no-fail-fast "$@"
else
    echo "run.sh: cargo-nextest not found, falling back to cargo test" >&2
    exec cargo test --workspace --no-fail-fast "$@"
fi
