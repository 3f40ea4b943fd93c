"""PostgreSQL's side of the live-latency benchmark: LISTEN/NOTIFY from an
insert trigger, the way applications get change events out of PostgreSQL.

N listener connections LISTEN on one channel; single-row INSERTs are sent
one at a time, and each listener's latency is the time from sending the
INSERT to that listener receiving its notification (the same measure
kalamdb-bench's live-latency workload takes).

    python3 scripts/pg_notify_bench.py --port 15432 --listeners 100 --inserts 1000
"""

import argparse
import selectors
import time

import psycopg2
import psycopg2.extensions


def connect(port):
    conn = psycopg2.connect(host="127.0.0.1", port=port, user="postgres", dbname="postgres")
    conn.set_isolation_level(psycopg2.extensions.ISOLATION_LEVEL_AUTOCOMMIT)
    return conn


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--port", type=int, default=5432)
    ap.add_argument("--listeners", type=int, default=1)
    ap.add_argument("--inserts", type=int, default=1000)
    ap.add_argument("--warmup", type=int, default=100)
    args = ap.parse_args()

    writer = connect(args.port)
    cur = writer.cursor()
    cur.execute(
        "DROP TABLE IF EXISTS live_t; "
        "CREATE TABLE live_t (id BIGINT PRIMARY KEY, name TEXT, score DOUBLE PRECISION); "
        "CREATE OR REPLACE FUNCTION live_t_notify() RETURNS trigger AS $$ "
        "BEGIN PERFORM pg_notify('live_t', NEW.id::text); RETURN NEW; END $$ LANGUAGE plpgsql; "
        "CREATE TRIGGER live_t_changed AFTER INSERT ON live_t "
        "FOR EACH ROW EXECUTE FUNCTION live_t_notify();"
    )

    sel = selectors.DefaultSelector()
    listeners = []
    for _ in range(args.listeners):
        conn = connect(args.port)
        conn.cursor().execute("LISTEN live_t")
        sel.register(conn, selectors.EVENT_READ, conn)
        listeners.append(conn)

    latencies = []
    missing = 0
    for k in range(args.warmup + args.inserts):
        sent = time.perf_counter()
        cur.execute("INSERT INTO live_t VALUES (%s, %s, 1.5)", (k, "name-%d" % k))
        seen = 0
        deadline = sent + 2.0
        while seen < len(listeners):
            left = deadline - time.perf_counter()
            if left <= 0:
                break
            for key, _ in sel.select(timeout=left):
                conn = key.data
                conn.poll()
                now = time.perf_counter()
                for note in conn.notifies:
                    if int(note.payload) == k:
                        seen += 1
                        if k >= args.warmup:
                            latencies.append(now - sent)
                conn.notifies.clear()
        if k >= args.warmup:
            missing += len(listeners) - seen

    latencies.sort()
    pick = lambda q: latencies[round((len(latencies) - 1) * q)] * 1e6 if latencies else 0.0
    print(
        "postgres workload=listen-notify listeners=%d deliveries=%d p50_us=%.1f p99_us=%.1f "
        "inserts=%d missing=%d" % (args.listeners, len(latencies), pick(0.5), pick(0.99), args.inserts, missing)
    )


if __name__ == "__main__":
    main()
