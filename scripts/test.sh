#!/usr/bin/env bash
# Runs every check and test of the workspace. Installs what a fresh machine
# lacks first (the RocksDB bindings need libclang; tests use cargo-nextest,
# moto's S3 server, Prometheus, Node packages and Chromium for the TypeScript
# SDK).
set -euo pipefail
cd "$(dirname "$0")/.."

source scripts/build-deps.sh
if ! cargo nextest --version >/dev/null 2>&1; then
  echo "== installing cargo-nextest"
  cargo install cargo-nextest --locked
fi
if ! python3 -c "import moto.server" >/dev/null 2>&1; then
  echo "== installing moto (an S3-compatible server for the storage tests)"
  python3 -m pip install --quiet 'moto[server]'
fi
if ! command -v prometheus >/dev/null 2>&1; then
  echo "== installing prometheus (the metrics test lets a real Prometheus scrape the server)"
  as_root apt-get update -qq
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends prometheus >/dev/null
fi
if ! command -v chromium >/dev/null 2>&1; then
  echo "== installing chromium (the TypeScript SDK's example is tested in a real browser)"
  as_root apt-get update -qq
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends chromium >/dev/null
fi
rustup component list --installed 2>/dev/null | grep -q '^clippy' || rustup component add clippy rustfmt

# Build output lives outside the checkout so repeated runs rebuild only our crates.
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/kalamdb-target}"
export CARGO_TERM_COLOR="${CARGO_TERM_COLOR:-never}"

echo "== cargo fmt"
cargo fmt --all -- --check
echo "== cargo clippy"
cargo clippy --workspace --all-targets -- -D warnings
echo "== cargo nextest"
cargo nextest run --workspace --no-fail-fast

# the TypeScript SDK against the server binary the Rust tests just built
echo "== TypeScript SDK (link/sdks/typescript)"
(
  cd link/sdks/typescript
  npm ci --no-audit --no-fund --loglevel=error
  npm run --silent typecheck
  npm run --silent docs >/dev/null
  KALAMDB_SERVER_BIN="$CARGO_TARGET_DIR/debug/kalamdb-server" npm test --silent
)
