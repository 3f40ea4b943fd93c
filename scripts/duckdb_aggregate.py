"""Times the cold-aggregate benchmark's query in DuckDB on the segment files
kalamdb-bench printed (`aggregate segments=<dir>`), with DuckDB's default
threads (the machine's cores), and prints a line in kalamdb-bench's format."""
import argparse
import time

import duckdb

parser = argparse.ArgumentParser()
parser.add_argument("--dir", required=True)
parser.add_argument("--runs", type=int, default=10)
parser.add_argument("--warmup", type=int, default=2)
parser.add_argument("--rows", type=int, required=True)
args = parser.parse_args()

con = duckdb.connect()
files = f"{args.dir}/*.parquet"
query = f"SELECT grp, SUM(amount) AS total FROM read_parquet('{files}') GROUP BY grp"
times = []
for i in range(args.warmup + args.runs):
    started = time.perf_counter()
    rows = con.execute(query).fetchall()
    elapsed = (time.perf_counter() - started) * 1000
    if i == 0:
        want = sum((r * 7) % 10007 for r in range(args.rows))
        total = sum(r[1] for r in rows)
        assert len(rows) == 1000 and total == want, (len(rows), total, want)
    if i >= args.warmup:
        times.append(elapsed)
threads = con.execute("SELECT current_setting('threads')").fetchone()[0]
times.sort()
p = lambda q: times[round((len(times) - 1) * q)]
print(
    f"aggregate engine=duckdb rows={args.rows} runs={len(times)} "
    f"mean_ms={sum(times) / len(times):.1f} p50_ms={p(0.5):.1f} "
    f"min_ms={p(0.0):.1f} max_ms={p(1.0):.1f} threads={threads}"
)
