#!/usr/bin/env bash
# Installs what building the server needs on a fresh machine: libclang, for
# the RocksDB bindings. Sourced by scripts/run.sh and scripts/test.sh.

as_root() { if [ "$(id -u)" = 0 ]; then "$@"; else sudo "$@"; fi; }

if ! dpkg -s libclang-dev >/dev/null 2>&1; then
  echo "== installing libclang-dev (needed to build the RocksDB bindings)"
  as_root apt-get update -qq
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq libclang-dev clang >/dev/null
fi
