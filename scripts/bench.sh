#!/usr/bin/env bash
# Reproduces the figures of docs/benchmarks.md on this machine:
# KalamDB over HTTP (kalamdb-bench, keep-alive) against PostgreSQL on loopback
# TCP (pgbench, simple query protocol), both on a fresh data directory.
#
#   bash scripts/bench.sh            # N=20000 requests per latency workload
#   N=5000 bash scripts/bench.sh     # quicker
#   ONLY=live bash scripts/bench.sh  # live queries only (WebSocket vs LISTEN/NOTIFY)
#   ONLY=queries bash scripts/bench.sh  # key ranges, ordered LIMIT, scans (1M rows)
#   ONLY=cold bash scripts/bench.sh     # FLUSH of 1M rows; point lookups hot vs cold; 200k rows in 20 segments
#   ONLY=aggregate bash scripts/bench.sh  # GROUP BY + SUM over 10M rows in Parquet vs DataFusion and DuckDB on the files
#   ONLY=metrics bash scripts/bench.sh  # INSERT and point SELECT with metrics on vs off
#   ONLY=sdk bash scripts/bench.sh      # the TypeScript SDK: live() throughput, INSERT -> callback
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/kalamdb-target}"
N="${N:-20000}"
BATCHES="${BATCHES:-300}"
KPORT="${KPORT:-18080}"
PGPORT="${PGPORT:-15432}"
WORK="$(mktemp -d)"
# the servers started here get their data directory from the environment
# (not on their command line): stop them by pid too, or one left by a
# failed step answers the next run from a deleted directory
trap 'kill $(jobs -p) >/dev/null 2>&1 || true; pkill -f "$WORK" >/dev/null 2>&1 || true; rm -rf "$WORK"' EXIT

source scripts/build-deps.sh
PGBIN="$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -1 || true)"
if [ -z "$PGBIN" ] && [ "${ONLY:-}" != metrics ] && [ "${ONLY:-}" != sdk ] && [ "${ONLY:-}" != aggregate ]; then
  as_root apt-get update -qq && as_root apt-get install -y -qq postgresql >/dev/null
  PGBIN="$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -1)"
fi

cargo build --release --bin kalamdb-server --bin kalamdb-bench >&2
BIN="$CARGO_TARGET_DIR/release"

percentiles() { # pgbench log files -> "p50 p99" in microseconds
  python3 - "$@" <<'PY'
import sys
lat = sorted(int(l.split()[2]) for f in sys.argv[1:] for l in open(f))
p = lambda q: lat[round((len(lat) - 1) * q)]
print(f"p50_us={p(0.5)} p99_us={p(0.99)} n={len(lat)}")
PY
}

# ---------------------------------------------------------------- KalamDB
kalam_run() { # sync_writes
  local dir="$WORK/kalam-$1"
  KALAMDB_DATA_DIR="$dir" KALAMDB_SERVER_PORT="$KPORT" KALAMDB_LOG_LEVEL=warn \
    KALAMDB_LOGGING_STDOUT=false KALAMDB_STORAGE_SYNC_WRITES="$1" \
    "$BIN/kalamdb-server" >"$WORK/kalam-$1.out" 2>&1 &
  local pid=$!
  for _ in $(seq 50); do curl -sf "http://127.0.0.1:$KPORT/health" >/dev/null && break; sleep 0.1; done
  local url="http://127.0.0.1:$KPORT"
  if [ "$1" = false ]; then
    "$BIN/kalamdb-bench" --url "$url" --workload health --requests "$N"
    # authentication overhead: the same tiny reply with and without credentials
    "$BIN/kalamdb-bench" --url "$url" --workload me --requests "$N" --auth basic
    "$BIN/kalamdb-bench" --url "$url" --workload me --requests "$N" --auth bearer
    "$BIN/kalamdb-bench" --url "$url" --workload select1 --requests "$N"
    "$BIN/kalamdb-bench" --url "$url" --workload select1 --requests "$N" --auth bearer
    "$BIN/kalamdb-bench" --url "$url" --workload insert --requests "$N"
    "$BIN/kalamdb-bench" --url "$url" --workload insert --requests "$N" --user-table
    "$BIN/kalamdb-bench" --url "$url" --workload select --requests "$N"
    "$BIN/kalamdb-bench" --url "$url" --workload update --requests "$N"
    # each DELETE removes a different row (the preload outnumbers the requests)
    "$BIN/kalamdb-bench" --url "$url" --workload delete --requests "$N" --preload "$((N * 5 / 4 + 2000))"
    # by primary key, the table's size must not matter: 1M rows
    "$BIN/kalamdb-bench" --url "$url" --workload update --requests "$N" --preload 1000000 | sed "s/^/rows=1000000 /"
    "$BIN/kalamdb-bench" --url "$url" --workload delete --requests "$N" --preload 1000000 | sed "s/^/rows=1000000 /"
    "$BIN/kalamdb-bench" --url "$url" --workload batch --requests "$BATCHES" --warmup 20
  fi
  "$BIN/kalamdb-bench" --url "$url" --workload insert --requests "$((N / 4))" --warmup 200 --concurrency 1 | sed "s/^/sync_writes=$1 /"
  "$BIN/kalamdb-bench" --url "$url" --workload insert --requests "$N" --warmup 500 --concurrency 16 | sed "s/^/sync_writes=$1 /"
  kill -TERM "$pid"; wait "$pid" || true
}

# ------------------------------------------------------- live queries
live_run() {
  local dir="$WORK/kalam-live"
  # the benchmark's users get a cheap password hash; its clients open more
  # subscriptions per user and send more messages than the defaults allow
  KALAMDB_DATA_DIR="$dir" KALAMDB_SERVER_PORT="$KPORT" KALAMDB_LOG_LEVEL=warn \
    KALAMDB_LOGGING_STDOUT=false KALAMDB_AUTH_BCRYPT_COST=4 \
    KALAMDB_WEBSOCKET_MAX_SUBSCRIPTIONS_PER_USER=1000000 \
    KALAMDB_WEBSOCKET_MAX_MESSAGES_PER_SECOND=1000000 \
    "$BIN/kalamdb-server" >"$WORK/kalam-live.out" 2>&1 &
  local pid=$!
  for _ in $(seq 50); do curl -sf "http://127.0.0.1:$KPORT/health" >/dev/null && break; sleep 0.1; done
  local url="http://127.0.0.1:$KPORT" b="$BIN/kalamdb-bench"
  "$b" --url "$url" --workload live-latency --subscribers 1 --requests "$N" --warmup 500
  "$b" --url "$url" --workload live-latency --subscribers 100 --requests 2000 --warmup 200
  "$b" --url "$url" --workload live-latency --subscribers 1000 --requests 300 --warmup 30
  "$b" --url "$url" --workload live-latency --subscribers 100 --user-table --requests 2000 --warmup 200
  "$b" --url "$url" --workload live-latency --subscribers 1000 --user-table --requests 2000 --warmup 200
  # 10,000 subscriptions: paced at 5 and 10 INSERTs/s (50k and 100k
  # deliveries/s), then unpaced (the ceiling)
  "$b" --url "$url" --workload live-fanout --subscribers 10000 --requests 50 --rate 5 --concurrency 2
  "$b" --url "$url" --workload live-fanout --subscribers 10000 --requests 100 --rate 10 --concurrency 2
  "$b" --url "$url" --workload live-fanout --subscribers 10000 --requests 100 --concurrency 4
  "$b" --url "$url" --workload live-foreign --subscribers 10000 --requests 5000 --warmup 500
  kill -TERM "$pid"; wait "$pid" || true
  # memory on a fresh server: nothing else allocated before (the clients
  # hold their sockets without reading while others subscribe, so the
  # silent-client timeout is lifted)
  rm -rf "$dir"
  KALAMDB_DATA_DIR="$dir" KALAMDB_SERVER_PORT="$KPORT" KALAMDB_LOG_LEVEL=warn \
    KALAMDB_LOGGING_STDOUT=false KALAMDB_WEBSOCKET_MAX_SUBSCRIPTIONS_PER_USER=1000000 \
    KALAMDB_WEBSOCKET_CLIENT_TIMEOUT_SECS=3600 \
    KALAMDB_WEBSOCKET_MAX_MESSAGES_PER_SECOND=1000000 \
    "$BIN/kalamdb-server" >"$WORK/kalam-live.out" 2>&1 &
  pid=$!
  for _ in $(seq 50); do curl -sf "http://127.0.0.1:$KPORT/health" >/dev/null && break; sleep 0.1; done
  "$b" --url "$url" --workload live-idle --connections 1000 --subscribers 100000 --server-pid "$pid"
  kill -TERM "$pid"; wait "$pid" || true
}

if [ -z "${ONLY:-}" ]; then
echo "== KalamDB (sync_writes=false: WAL, no fsync)"
kalam_run false
echo "== KalamDB (sync_writes=true: fsync per write group)"
kalam_run true
fi

# ------------- the cost of metrics: two servers, metrics on and off, both
# running; blocks of requests alternate between them (order swapped each
# round) so machine drift hits both alike. A second phase swaps which port
# has metrics on (the two places differ by a few percent on their own); the
# figure is the geometric mean of the two phases' median paired ratios
metrics_server() { # enabled port phase
  KALAMDB_DATA_DIR="$WORK/kalam-metrics-$3-$2" KALAMDB_SERVER_PORT="$2" KALAMDB_LOG_LEVEL=warn \
    KALAMDB_LOGGING_STDOUT=false KALAMDB_METRICS_ENABLED="$1" \
    "$BIN/kalamdb-server" >"$WORK/kalam-metrics-$2.out" 2>&1 &
  for _ in $(seq 50); do curl -sf "http://127.0.0.1:$2/health" >/dev/null && break; sleep 0.1; done
}
metrics_block() { # enabled port workload round phase
  "$BIN/kalamdb-bench" --url "http://127.0.0.1:$2" --workload "$3" --requests "$((N / 4))" --warmup 200 \
    | sed "s/^/metrics=$1 phase=$5 round=$4 /"
}
if [ -z "${ONLY:-}" ] || [ "${ONLY:-}" = metrics ]; then
  echo "== the cost of metrics (single-row INSERT, point SELECT; blocks of $((N / 4)) alternating)"
  for phase in 1 2; do
    if [ "$phase" = 1 ]; then a=true b=false; else a=false b=true; fi
    metrics_server "$a" "$KPORT" "$phase"; a_pid=$!
    metrics_server "$b" "$((KPORT + 1))" "$phase"; b_pid=$!
    for round in $(seq "${ROUNDS:-8}"); do
      for workload in insert select; do
        if [ $((round % 2)) = 1 ]; then
          metrics_block "$a" "$KPORT" "$workload" "$round" "$phase"; metrics_block "$b" "$((KPORT + 1))" "$workload" "$round" "$phase"
        else
          metrics_block "$b" "$((KPORT + 1))" "$workload" "$round" "$phase"; metrics_block "$a" "$KPORT" "$workload" "$round" "$phase"
        fi
      done
    done
    kill -TERM "$a_pid" "$b_pid"; wait "$a_pid" "$b_pid" || true
  done | tee "$WORK/metrics.txt"
  python3 - "$WORK/metrics.txt" <<'PY'
import math, re, statistics, sys
runs = {}
for line in open(sys.argv[1]):
    m = re.search(r"metrics=(\w+) phase=(\d) round=(\d+) .*workload=(\w+) .*p50_us=([\d.]+)", line)
    if m:
        runs.setdefault((m[4], m[1], m[2]), {})[int(m[3])] = float(m[5])
for w in sorted({k[0] for k in runs}):
    ratios, on_all, off_all = [], [], []
    for phase in ("1", "2"):
        on, off = runs[(w, "true", phase)], runs[(w, "false", phase)]
        ratios.append(statistics.median(on[r] / off[r] for r in on if r in off))
        on_all += on.values(); off_all += off.values()
    print(f"{w}: p50 metrics on {statistics.median(on_all):.1f} us, off {statistics.median(off_all):.1f} us; "
          f"on/off per phase {ratios[0]:.3f} {ratios[1]:.3f}, combined {math.sqrt(ratios[0] * ratios[1]):.3f}")
PY
fi
[ "${ONLY:-}" = metrics ] && exit 0

# ------------- the TypeScript SDK: live() throughput and INSERT -> callback
if [ -z "${ONLY:-}" ] || [ "${ONLY:-}" = sdk ]; then
  echo "== TypeScript SDK (one Node.js client, release server)"
  KALAMDB_DATA_DIR="$WORK/kalam-sdk" KALAMDB_SERVER_PORT="$KPORT" KALAMDB_LOG_LEVEL=warn \
    KALAMDB_LOGGING_STDOUT=false "$BIN/kalamdb-server" >"$WORK/kalam-sdk.out" 2>&1 &
  sdk_pid=$!
  for _ in $(seq 50); do curl -sf "http://127.0.0.1:$KPORT/health" >/dev/null && break; sleep 0.1; done
  (cd link/sdks/typescript && npm ci --no-audit --no-fund --loglevel=error && node scripts/build.mjs >/dev/null \
    && node bench/live.mjs --url "http://127.0.0.1:$KPORT" --rows 200000 --samples 2000)
  kill -TERM "$sdk_pid"; wait "$sdk_pid" || true
fi
[ "${ONLY:-}" = sdk ] && exit 0

# ------------------------------------------------------------- PostgreSQL
PGDATA="$WORK/pg"
mkdir -p "$PGDATA"; chmod 755 "$WORK"
chown postgres "$WORK" "$PGDATA" 2>/dev/null || true
runpg() { if [ "$(id -u)" = 0 ]; then su postgres -c "$*"; else bash -c "$*"; fi; }
runpg "$PGBIN/initdb -D $PGDATA -A trust -U postgres" >/dev/null
pg_run() { # synchronous_commit
  runpg "$PGBIN/pg_ctl -D $PGDATA -l $PGDATA/log -o '-p $PGPORT -k $WORK -c synchronous_commit=$1 -c listen_addresses=127.0.0.1' -w start" >/dev/null
  local psql="$PGBIN/psql -h 127.0.0.1 -p $PGPORT -U postgres -q"
  $psql -c "DROP TABLE IF EXISTS t; DROP SEQUENCE IF EXISTS s; CREATE SEQUENCE s; CREATE TABLE t (id BIGINT PRIMARY KEY, name TEXT, score DOUBLE PRECISION); INSERT INTO t SELECT i, 'name-' || i, i + 0.5 FROM generate_series(0, 9999) i; SELECT setval('s', 10000000);" >/dev/null
  echo "INSERT INTO t VALUES (nextval('s'), 'name', 1.5);" > "$WORK/insert.sql"
  printf '\\set id random(0, 9999)\nSELECT * FROM t WHERE id = :id;\n' > "$WORK/select.sql"
  printf '\\set id random(0, 9999)\nUPDATE t SET name = :id, score = 2.25 WHERE id = :id;\n' > "$WORK/update.sql"
  printf '\\set id random(0, 9999)\nDELETE FROM t WHERE id = :id;\n' > "$WORK/delete.sql"
  python3 -c "print('INSERT INTO t VALUES ' + ','.join(\"(nextval('s'), 'name', 1.5)\" for _ in range(1000)) + ';')" > "$WORK/batch.sql"
  chmod a+r "$WORK"/*.sql
  local bench="$PGBIN/pgbench -h 127.0.0.1 -p $PGPORT -U postgres -n -M simple"
  pgb() { # name clients transactions script
    rm -f "$WORK"/pgbench_log.*
    (cd "$WORK" && $bench -c "$2" -j "$2" -t "$(( $3 / $2 ))" -f "$4" --log postgres >"$WORK/pgbench.out" 2>&1)
    local tps; tps=$(grep -E '^tps' "$WORK/pgbench.out" | head -1 | awk '{print $3}')
    echo "postgres synchronous_commit=$1 workload=$(basename "$4" .sql) clients=$2 $(percentiles "$WORK"/pgbench_log.*) tps=$tps"
  }
  if [ "$1" = off ]; then
    pgb "$1" 1 "$N" "$WORK/insert.sql"
    pgb "$1" 1 "$N" "$WORK/select.sql"
    pgb "$1" 1 "$N" "$WORK/update.sql"
    pgb "$1" 1 "$N" "$WORK/delete.sql"
    pgb "$1" 1 "$BATCHES" "$WORK/batch.sql"
  fi
  pgb "$1" 1 "$((N / 4))" "$WORK/insert.sql"
  pgb "$1" 16 "$N" "$WORK/insert.sql"
  runpg "$PGBIN/pg_ctl -D $PGDATA -w stop" >/dev/null
}
if [ -z "${ONLY:-}" ]; then
echo "== PostgreSQL (synchronous_commit=off)"
pg_run off
echo "== PostgreSQL (synchronous_commit=on, the default)"
pg_run on
fi

python3 -c "import psycopg2" 2>/dev/null || python3 -m pip install -q psycopg2-binary

# ------------------- queries beyond the point lookup: KalamDB, then PostgreSQL
if [ -z "${ONLY:-}" ] || [ "${ONLY:-}" = queries ]; then
  ROWS="${ROWS:-1000000}"
  dir="$WORK/kalam-queries"
  KALAMDB_DATA_DIR="$dir" KALAMDB_SERVER_PORT="$KPORT" KALAMDB_LOG_LEVEL=warn \
    KALAMDB_LOGGING_STDOUT=false KALAMDB_AUTH_BCRYPT_COST=4 \
    "$BIN/kalamdb-server" >"$WORK/kalam-queries.out" 2>&1 &
  pid=$!
  for _ in $(seq 50); do curl -sf "http://127.0.0.1:$KPORT/health" >/dev/null && break; sleep 0.1; done
  echo "== KalamDB queries (SHARED table, then a USER table of 100 users)"
  "$BIN/kalamdb-bench" --url "http://127.0.0.1:$KPORT" --workload queries --preload "$ROWS" --requests 15 --warmup 3
  "$BIN/kalamdb-bench" --url "http://127.0.0.1:$KPORT" --workload queries --preload "$ROWS" --requests 15 --warmup 3 --user-table --users 100
  kill -TERM "$pid"; wait "$pid" || true
  echo "== PostgreSQL queries (without, then with an index on room)"
  runpg "$PGBIN/pg_ctl -D $PGDATA -l $PGDATA/log -o '-p $PGPORT -k $WORK -c listen_addresses=127.0.0.1' -w start" >/dev/null
  python3 scripts/pg_query_bench.py --port "$PGPORT" --runs 15 --warmup 3 --rows "$ROWS"
  python3 scripts/pg_query_bench.py --port "$PGPORT" --runs 15 --warmup 3 --rows "$ROWS" --index-room
  python3 scripts/pg_query_bench.py --port "$PGPORT" --runs 15 --warmup 3 --rows "$ROWS" --room-key
  python3 scripts/pg_query_bench.py --port "$PGPORT" --runs 15 --warmup 3 --rows "$ROWS" --users 100
  python3 scripts/pg_query_bench.py --port "$PGPORT" --runs 15 --warmup 3 --rows "$ROWS" --users 100 --index-room
  runpg "$PGBIN/pg_ctl -D $PGDATA -w stop" >/dev/null
fi
[ "${ONLY:-}" = queries ] && exit 0

# ------------------- the cold tier: point lookups hot and cold, FLUSH, reads
if [ -z "${ONLY:-}" ] || [ "${ONLY:-}" = cold ]; then
  ROWS="${ROWS:-1000000}"
  dir="$WORK/kalam-cold"
  KALAMDB_DATA_DIR="$dir" KALAMDB_SERVER_PORT="$KPORT" KALAMDB_LOG_LEVEL=warn \
    KALAMDB_LOGGING_STDOUT=false KALAMDB_AUTH_BCRYPT_COST=4 \
    "$BIN/kalamdb-server" >"$WORK/kalam-cold.out" 2>&1 &
  pid=$!
  for _ in $(seq 50); do curl -sf "http://127.0.0.1:$KPORT/health" >/dev/null && break; sleep 0.1; done
  echo "== KalamDB cold tier (SHARED table of $ROWS rows)"
  "$BIN/kalamdb-bench" --url "http://127.0.0.1:$KPORT" --workload cold --preload "$ROWS" --requests 2000 --warmup 200 --server-pid "$pid"
  kill -TERM "$pid"; wait "$pid" || true
fi
[ "${ONLY:-}" = cold ] && exit 0

# ------- GROUP BY + SUM over 10M rows in Parquet: KalamDB, DataFusion, DuckDB
if [ -z "${ONLY:-}" ] || [ "${ONLY:-}" = aggregate ]; then
  python3 -c "import duckdb" 2>/dev/null || python3 -m pip install -q duckdb
  AROWS="${AROWS:-10000000}"
  dir="$WORK/kalam-aggregate"
  KALAMDB_DATA_DIR="$dir" KALAMDB_SERVER_PORT="$KPORT" KALAMDB_LOG_LEVEL=warn \
    KALAMDB_LOGGING_STDOUT=false KALAMDB_AUTH_BCRYPT_COST=4 \
    "$BIN/kalamdb-server" >"$WORK/kalam-aggregate.out" 2>&1 &
  pid=$!
  for _ in $(seq 50); do curl -sf "http://127.0.0.1:$KPORT/health" >/dev/null && break; sleep 0.1; done
  echo "== GROUP BY + SUM over $AROWS rows in Parquet (KalamDB over HTTP; DataFusion and DuckDB on the same files)"
  "$BIN/kalamdb-bench" --url "http://127.0.0.1:$KPORT" --workload cold-aggregate --preload "$AROWS" \
    --requests 10 --warmup 2 --data-dir "$dir" 2>&1 | tee "$WORK/aggregate.txt"
  segments="$(sed -n 's/^aggregate segments=//p' "$WORK/aggregate.txt")"
  python3 scripts/duckdb_aggregate.py --dir "$segments" --rows "$AROWS" --runs 10 --warmup 2
  kill -TERM "$pid"; wait "$pid" || true
fi
[ "${ONLY:-}" = aggregate ] && exit 0

# --------------------------------- live queries: KalamDB, then PostgreSQL
ulimit -n "$(ulimit -Hn)" 2>/dev/null || true
echo "== KalamDB live queries (WebSocket, sync_writes=false)"
live_run
echo "== PostgreSQL LISTEN/NOTIFY from an insert trigger (synchronous_commit=off)"
runpg "$PGBIN/pg_ctl -D $PGDATA -l $PGDATA/log -o '-p $PGPORT -k $WORK -c synchronous_commit=off -c max_connections=1100 -c listen_addresses=127.0.0.1' -w start" >/dev/null
for n in 1 100 1000; do
  python3 scripts/pg_notify_bench.py --port "$PGPORT" --listeners "$n" \
    --inserts "$([ "$n" = 1 ] && echo "$N" || ([ "$n" = 100 ] && echo 2000 || echo 300))" \
    --warmup "$([ "$n" = 1000 ] && echo 30 || echo 200)"
done
runpg "$PGBIN/pg_ctl -D $PGDATA -w stop" >/dev/null
