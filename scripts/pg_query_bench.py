"""PostgreSQL's side of kalamdb-bench's `queries` workload: the same table,
rows and queries, timed the same way (median and fastest of --runs after
--warmup unmeasured runs, each a round trip on one connection), printed as
the same lines.

    python3 scripts/pg_query_bench.py --port 15432 --rows 1000000
    python3 scripts/pg_query_bench.py --port 15432 --rows 1000000 --users 100

With --users the table is keyed (user_id, id), each user holding
rows / users rows, and every query reads one user's rows, as a USER table
in KalamDB is read. --index-room adds an index on room (per user: on
(user_id, room)). --room-key keys the table (room, id) instead and runs the
room queries of ROOM_KEY.
"""

import argparse
import io
import time

import psycopg2
import psycopg2.extensions

# the names and SQL of kalamdb-bench's queries.rs; {w} is the user's
# restriction in the per-user form
QUERIES = [
    ("point", "SELECT * FROM t WHERE {w} id = {k}"),
    ("limit_10", "SELECT * FROM t {where_w} LIMIT 10"),
    ("newest_10", "SELECT * FROM t {where_w} ORDER BY id DESC LIMIT 10"),
    ("keyset_page", "SELECT * FROM t WHERE {w} id > {k} ORDER BY id LIMIT 10"),
    ("in_3", "SELECT * FROM t WHERE {w} id IN ({k}, {k1}, {k2})"),
    ("between_100", "SELECT * FROM t WHERE {w} id BETWEEN {k} AND {k100}"),
    ("room_eq", "SELECT * FROM t WHERE {w} room = {r}"),
    ("room_newest_10", "SELECT * FROM t WHERE {w} room = {r} ORDER BY id DESC LIMIT 10"),
    ("rooms_last_10", "SELECT * FROM t {where_w} ORDER BY room DESC LIMIT 10"),
    ("insert_1", "INSERT INTO t VALUES ({u} {n}, {r}, 'one more message')"),
    ("count", "SELECT count(*) FROM t {where_w}"),
    (
        "group_by_room",
        "SELECT room, count(*) AS n FROM t {where_w} GROUP BY room ORDER BY n DESC, room LIMIT 10",
    ),
]

# kalamdb-bench's ROOM_KEY: a table keyed (room, id)
ROOM_KEY = [
    ("room_eq", "SELECT * FROM t WHERE room = {r}"),
    ("room_newest_10", "SELECT * FROM t WHERE room = {r} ORDER BY id DESC LIMIT 10"),
    ("room_page_10", "SELECT * FROM t WHERE room = {r} AND id > {k} ORDER BY id LIMIT 10"),
    ("insert_1", "INSERT INTO t VALUES ({r}, {n}, 'one more message')"),
]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--port", type=int, default=5432)
    ap.add_argument("--rows", type=int, default=1_000_000)
    ap.add_argument("--users", type=int, default=0)
    ap.add_argument("--runs", type=int, default=7)
    ap.add_argument("--warmup", type=int, default=2)
    ap.add_argument("--index-room", action="store_true")
    ap.add_argument("--room-key", action="store_true")
    args = ap.parse_args()

    conn = psycopg2.connect(host="127.0.0.1", port=args.port, user="postgres", dbname="postgres")
    conn.set_isolation_level(psycopg2.extensions.ISOLATION_LEVEL_AUTOCOMMIT)
    cur = conn.cursor()
    users = max(args.users, 1)
    per_user = args.rows // users
    started = time.perf_counter()
    cur.execute("DROP TABLE IF EXISTS t")
    if args.room_key:
        cur.execute("CREATE TABLE t (room INT, id BIGINT, body TEXT, PRIMARY KEY (room, id))")
    elif args.users:
        cur.execute(
            "CREATE TABLE t (user_id TEXT, id BIGINT, room INT, body TEXT, PRIMARY KEY (user_id, id))"
        )
    else:
        cur.execute("CREATE TABLE t (id BIGINT PRIMARY KEY, room INT, body TEXT)")
    for u in range(users):
        buf = io.StringIO()
        for i in range(per_user):
            if args.room_key:
                buf.write(f"{i % 10000}\t{i}\tmessage {i} of the benchmark\n")
                continue
            prefix = f"u{u}\t" if args.users else ""
            buf.write(f"{prefix}{i}\t{i % 10000}\tmessage {i} of the benchmark\n")
        buf.seek(0)
        if args.room_key:
            columns = ("room", "id", "body")
        else:
            columns = ("user_id", "id", "room", "body") if args.users else ("id", "room", "body")
        cur.copy_from(buf, "t", columns=columns)
    if args.index_room:
        built = time.perf_counter()
        cur.execute(
            "CREATE INDEX t_room ON t (user_id, room)" if args.users else "CREATE INDEX t_room ON t (room)"
        )
        print(f"queries index_build rows={per_user * users} secs={time.perf_counter() - built:.2f}")
    cur.execute("VACUUM ANALYZE t")
    print(
        f"queries load rows={per_user * users} users={users} secs={time.perf_counter() - started:.1f}"
    )
    me = f"u{users // 2}"
    w = f"user_id = '{me}' AND" if args.users else ""
    where_w = f"WHERE user_id = '{me}'" if args.users else ""
    label = "postgres" + ("_room_index" if args.index_room else "") + ("_room_key" if args.room_key else "")
    u = f"'{me}'," if args.users else ""
    fresh = per_user * 2
    for name, sql in ROOM_KEY if args.room_key else QUERIES:
        times = []
        for run in range(args.warmup + args.runs):
            k = (per_user // 2 + run * 997) % max(per_user, 1)
            fresh += 1
            q = sql.format(
                w=w, where_w=where_w, u=u, n=fresh, k=k, k1=k + 1, k2=k + 2, k100=k + 100, r=4242 + run
            )
            t = time.perf_counter()
            cur.execute(q)
            if cur.description is not None:
                cur.fetchall()
            if run >= args.warmup:
                times.append(time.perf_counter() - t)
        times.sort()
        median = times[round((len(times) - 1) * 0.5)]
        print(
            f"{label} query={name} rows={per_user} median_ms={median * 1e3:.3f} "
            f"min_ms={times[0] * 1e3:.3f} runs={len(times)}"
        )
    cur.execute("DROP TABLE t")


if __name__ == "__main__":
    main()
