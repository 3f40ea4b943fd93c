#!/usr/bin/env bash
# Builds (release) and runs the server; installs what a fresh machine lacks
# first. Arguments go to kalamdb-server (e.g. --config server.toml).
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/build-deps.sh
exec cargo run --release --bin kalamdb-server -- "$@"
