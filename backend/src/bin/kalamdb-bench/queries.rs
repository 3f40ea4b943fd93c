//! The `queries` workload: the application queries beyond the point
//! lookup, on one table of `--preload` rows, over HTTP.
//!
//! The table is `(id BIGINT PRIMARY KEY, room INT, body TEXT)` with
//! `room = id % 10000`, loaded in 5,000-row INSERTs. With `--user-table` it
//! is a USER table holding `--users` users' rows (`--preload` in all, ids
//! 0.. in each user's partition), queried as one of those users. Each query
//! runs `--warmup` times unmeasured, then `--requests` times; the line per
//! query gives the median and the fastest run. Then an index on `room` is
//! built (its time printed) and the queries it serves, and a one-row
//! INSERT, run again. For the SHARED table, the same rows then go into a
//! table keyed `PRIMARY KEY (room, id)` and the room queries run on it
//! ([`ROOM_KEY`]). `scripts/pg_query_bench.py` runs the same queries
//! against PostgreSQL and prints the same lines.

use super::{Args, BoxError, Client};
use std::time::{Duration, Instant};

/// The queries, by name; `{k}` is a key near the middle of the table (a
/// different one each run), `{k1}`, `{k2}`, `{k100}` the keys 1, 2 and 100
/// above it (as literals, the way an application sends them), `{r}` a
/// room, `{n}` a key not in the table yet.
pub const QUERIES: &[(&str, &str)] = &[
    ("point", "SELECT * FROM {t} WHERE id = {k}"),
    ("limit_10", "SELECT * FROM {t} LIMIT 10"),
    ("newest_10", "SELECT * FROM {t} ORDER BY id DESC LIMIT 10"),
    (
        "keyset_page",
        "SELECT * FROM {t} WHERE id > {k} ORDER BY id LIMIT 10",
    ),
    ("in_3", "SELECT * FROM {t} WHERE id IN ({k}, {k1}, {k2})"),
    (
        "between_100",
        "SELECT * FROM {t} WHERE id BETWEEN {k} AND {k100}",
    ),
    ("room_eq", "SELECT * FROM {t} WHERE room = {r}"),
    (
        "room_newest_10",
        "SELECT * FROM {t} WHERE room = {r} ORDER BY id DESC LIMIT 10",
    ),
    (
        "rooms_last_10",
        "SELECT * FROM {t} ORDER BY room DESC LIMIT 10",
    ),
    (
        "insert_1",
        "INSERT INTO {t} VALUES ({n}, {r}, 'one more message')",
    ),
    ("count", "SELECT count(*) FROM {t}"),
    (
        "group_by_room",
        "SELECT room, count(*) AS n FROM {t} GROUP BY room ORDER BY n DESC, room LIMIT 10",
    ),
];

pub async fn run(args: &Args) -> Result<(), BoxError> {
    let mut admin = Client::connect(args).await?;
    let stamp = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)?
        .as_millis();
    let table = format!("bench.q{stamp}");
    admin.sql("CREATE NAMESPACE IF NOT EXISTS bench").await?;
    admin
        .sql(&format!(
            "CREATE {} TABLE {table} (id BIGINT PRIMARY KEY, room INT, body TEXT)",
            if args.user_table { "USER" } else { "SHARED" }
        ))
        .await?;
    let users = if args.user_table {
        args.users.max(1)
    } else {
        1
    };
    let per_user = args.preload / users;
    let started = Instant::now();
    let mut token = None;
    for u in 0..users {
        let user = format!("bq{stamp}_{u}");
        if args.user_table {
            admin
                .sql(&format!(
                    "CREATE USER '{user}' WITH PASSWORD 'bench-pass-{u}' ROLE user"
                ))
                .await?;
        }
        for start in (0..per_user).step_by(5_000) {
            let values: Vec<String> = (start..(start + 5_000).min(per_user))
                .map(|i| format!("({i}, {}, 'message {i} of the benchmark')", i % 10_000))
                .collect();
            let insert = format!("INSERT INTO {table} VALUES {}", values.join(","));
            let sql = if args.user_table {
                format!("EXECUTE AS USER '{user}' ({insert})")
            } else {
                insert
            };
            admin.sql(&sql).await?;
        }
        if args.user_table && u == users / 2 {
            // the one whose rows the queries read: a user in the middle
            token = Some(super::live::login(args, &user, &format!("bench-pass-{u}")).await?);
        }
    }
    // connected after the load: an idle keep-alive connection would have
    // been closed by the server meanwhile
    let mut querier = Client::connect(args).await?;
    if let Some(token) = &token {
        querier.set_bearer(token);
    }
    println!(
        "queries load rows={} users={users} secs={:.1}",
        per_user * users,
        started.elapsed().as_secs_f64()
    );
    // the queried user must see exactly its own rows
    let seen: usize = querier
        .query(&format!("SELECT count(*) FROM {table}"))
        .await?
        .parse()?;
    if seen != per_user {
        return Err(format!("count(*) is {seen}, expected {per_user}").into());
    }
    let mut fresh = per_user * 2;
    for (name, sql) in QUERIES {
        let times = measure(args, &mut querier, &table, per_user, sql, &mut fresh).await?;
        report("kalamdb", name, per_user, times);
    }
    // (a fresh connection: the first has been idle longer than the server keeps it)
    let mut admin = Client::connect(args).await?;
    let started = Instant::now();
    admin
        .sql(&format!(
            "CREATE INDEX IF NOT EXISTS q{stamp}_room ON {table} (room)"
        ))
        .await?;
    println!(
        "queries index_build rows={} secs={:.2}",
        per_user * users,
        started.elapsed().as_secs_f64()
    );
    let mut querier = Client::connect(args).await?;
    if let Some(token) = &token {
        querier.set_bearer(token);
    }
    for (name, sql) in QUERIES.iter().filter(|(n, _)| INDEXED.contains(n)) {
        let times = measure(args, &mut querier, &table, per_user, sql, &mut fresh).await?;
        report("kalamdb_room_index", name, per_user, times);
    }
    let mut admin = Client::connect(args).await?;
    admin.sql(&format!("DROP TABLE {table}")).await?;
    if !args.user_table {
        room_key(args, stamp, per_user, &mut fresh).await?;
    }
    Ok(())
}

/// The room queries on a table keyed `(room, id)`: a room's rows are one
/// range of the key.
pub const ROOM_KEY: &[(&str, &str)] = &[
    ("room_eq", "SELECT * FROM {t} WHERE room = {r}"),
    (
        "room_newest_10",
        "SELECT * FROM {t} WHERE room = {r} ORDER BY id DESC LIMIT 10",
    ),
    (
        "room_page_10",
        "SELECT * FROM {t} WHERE room = {r} AND id > {k} ORDER BY id LIMIT 10",
    ),
    (
        "insert_1",
        "INSERT INTO {t} VALUES ({r}, {n}, 'one more message')",
    ),
];

/// Loads `rows` rows (as the first table's) into a new SHARED table keyed
/// `(room, id)` and runs [`ROOM_KEY`] on it.
async fn room_key(
    args: &Args,
    stamp: u128,
    rows: usize,
    fresh: &mut usize,
) -> Result<(), BoxError> {
    let mut admin = Client::connect(args).await?;
    let table = format!("bench.rk{stamp}");
    admin
        .sql(&format!(
            "CREATE SHARED TABLE {table} (room INT, id BIGINT, body TEXT, PRIMARY KEY (room, id))"
        ))
        .await?;
    for start in (0..rows).step_by(5_000) {
        let values: Vec<String> = (start..(start + 5_000).min(rows))
            .map(|i| format!("({}, {i}, 'message {i} of the benchmark')", i % 10_000))
            .collect();
        admin
            .sql(&format!("INSERT INTO {table} VALUES {}", values.join(",")))
            .await?;
    }
    let mut querier = Client::connect(args).await?;
    for (name, sql) in ROOM_KEY {
        let times = measure(args, &mut querier, &table, rows, sql, fresh).await?;
        report("kalamdb_room_key", name, rows, times);
    }
    let mut admin = Client::connect(args).await?;
    admin.sql(&format!("DROP TABLE {table}")).await?;
    Ok(())
}

/// The queries run again once `room` is indexed.
const INDEXED: &[&str] = &["room_eq", "room_newest_10", "rooms_last_10", "insert_1"];

/// Runs one query `--warmup` times, then `--requests` times measured.
pub async fn measure(
    args: &Args,
    querier: &mut Client,
    table: &str,
    per_user: usize,
    sql: &str,
    fresh: &mut usize,
) -> Result<Vec<Duration>, BoxError> {
    let mut times = Vec::with_capacity(args.requests);
    for run in 0..(args.warmup + args.requests) {
        let k = (per_user / 2 + run * 997) % per_user.max(1);
        *fresh += 1;
        let sql = sql
            .replace("{t}", table)
            .replace("{k1}", &(k + 1).to_string())
            .replace("{k2}", &(k + 2).to_string())
            .replace("{k100}", &(k + 100).to_string())
            .replace("{k}", &k.to_string())
            .replace("{n}", &fresh.to_string())
            .replace("{r}", &(4242 + run).to_string());
        let t = Instant::now();
        querier.run_sql(&sql).await?;
        if run >= args.warmup {
            times.push(t.elapsed());
        }
    }
    Ok(times)
}

pub fn report(label: &str, name: &str, rows: usize, mut times: Vec<Duration>) {
    times.sort();
    let ms = |d: Duration| d.as_secs_f64() * 1e3;
    println!(
        "{label} query={name} rows={rows} median_ms={:.3} min_ms={:.3} runs={}",
        ms(super::percentile(&times, 0.5)),
        ms(times.first().copied().unwrap_or_default()),
        times.len()
    );
}
