//! The `cold` workload: the cold tier over HTTP. A SHARED table of
//! `--preload` rows (the `queries` workload's shape) is loaded and point
//! lookups of random keys are timed while every row is hot; then FLUSH
//! TABLE moves it into Parquet (its time, rows/s, MB/s of segment written
//! and — with `--server-pid` — the server's peak RSS during it), and the
//! point lookups and the `queries` workload's reads (15 runs each, after
//! 3) run again on the cold rows. Then [`segmented`]: 200k rows in 20
//! flushed segments under mixed queries (KalamDB's published cold-tier
//! figure: mean 152 ms, p99 268 ms on a 10-core M1).

use super::{Args, BoxError, Client};
use std::time::{Duration, Instant};

pub async fn run(args: &Args) -> Result<(), BoxError> {
    let mut admin = Client::connect(args).await?;
    let stamp = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)?
        .as_millis();
    let table = format!("bench.cold{stamp}");
    admin.sql("CREATE NAMESPACE IF NOT EXISTS bench").await?;
    admin
        .sql(&format!(
            "CREATE SHARED TABLE {table} (id BIGINT PRIMARY KEY, room INT, body TEXT)"
        ))
        .await?;
    let rows = args.preload;
    let started = Instant::now();
    for start in (0..rows).step_by(5_000) {
        let values: Vec<String> = (start..(start + 5_000).min(rows))
            .map(|i| format!("({i}, {}, 'message {i} of the benchmark')", i % 10_000))
            .collect();
        admin
            .sql(&format!("INSERT INTO {table} VALUES {}", values.join(",")))
            .await?;
    }
    println!(
        "cold load rows={rows} secs={:.1}",
        started.elapsed().as_secs_f64()
    );
    let mut querier = Client::connect(args).await?;
    points(args, &mut querier, &table, rows, "hot").await?;

    let mut admin = Client::connect(args).await?;
    let started = Instant::now();
    let job = start_flush(&mut admin, &table).await?;
    let before_kib = match args.server_pid {
        Some(pid) => super::live::rss_kib(pid)?,
        None => 0,
    };
    let mut peak_kib = 0;
    loop {
        if let Some(pid) = args.server_pid {
            peak_kib = peak_kib.max(super::live::rss_kib(pid)?);
        }
        let status = admin
            .query(&format!(
                "SELECT status FROM system.jobs WHERE job_id = '{job}'"
            ))
            .await?;
        match status.as_str() {
            "Completed" => break,
            "Failed" | "Cancelled" => return Err(format!("flush {job}: {status}").into()),
            _ => tokio::time::sleep(Duration::from_millis(20)).await,
        }
    }
    let secs = started.elapsed().as_secs_f64();
    let (name, _) = table.split_once('.').expect("qualified");
    let bytes: f64 = admin
        .query(&format!(
            "SELECT metric_value FROM system.stats WHERE namespace_id = '{name}' AND table_name = '{}' AND metric_name = 'cold_bytes'",
            &table[name.len() + 1..]
        ))
        .await?
        .parse()?;
    println!(
        "cold flush rows={rows} secs={secs:.2} rows_per_s={:.0} mb_per_s={:.1} segment_mb={:.1} rss_before_mib={} peak_rss_mib={}",
        rows as f64 / secs,
        bytes / 1e6 / secs,
        bytes / 1e6,
        before_kib / 1024,
        if args.server_pid.is_some() {
            format!("{:.0}", peak_kib as f64 / 1024.0)
        } else {
            "-".into()
        }
    );
    let mut querier = Client::connect(args).await?;
    points(args, &mut querier, &table, rows, "cold").await?;
    let mut fresh = rows * 2;
    // the scans take up to a second each here: fewer runs
    let mut few = args.clone();
    few.requests = 15;
    few.warmup = 3;
    for (name, sql) in super::queries::QUERIES {
        if *name == "insert_1" {
            continue;
        }
        let times =
            super::queries::measure(&few, &mut querier, &table, rows, sql, &mut fresh).await?;
        super::queries::report("kalamdb_cold", name, rows, times);
    }
    let mut admin = Client::connect(args).await?;
    admin.sql(&format!("DROP TABLE {table}")).await?;
    segmented(args, &format!("{table}_seg")).await
}

/// Runs FLUSH TABLE; returns its job's id.
async fn start_flush(admin: &mut Client, table: &str) -> Result<String, BoxError> {
    let reply: serde_json::Value =
        serde_json::from_slice(&admin.run_sql(&format!("FLUSH TABLE {table}")).await?)?;
    let message = reply["results"][0]["message"].as_str().unwrap_or_default();
    Ok(message
        .rsplit("Job ID: ")
        .next()
        .filter(|j| j.starts_with("FL-"))
        .ok_or_else(|| format!("FLUSH TABLE answered {reply}"))?
        .to_string())
}

/// Runs FLUSH TABLE and waits for its job.
pub(crate) async fn flush(admin: &mut Client, table: &str) -> Result<(), BoxError> {
    let job = start_flush(admin, table).await?;
    loop {
        let status = admin
            .query(&format!(
                "SELECT status FROM system.jobs WHERE job_id = '{job}'"
            ))
            .await?;
        match status.as_str() {
            "Completed" => return Ok(()),
            "Failed" | "Cancelled" => return Err(format!("flush {job}: {status}").into()),
            _ => tokio::time::sleep(Duration::from_millis(20)).await,
        }
    }
}

/// 200,000 rows flushed 10,000 at a time into 20 segments, then rounds of
/// mixed queries — count, a filter, a GROUP BY, a point read, ORDER BY …
/// LIMIT — each timed; prints the mean and p99 over all of them.
async fn segmented(args: &Args, table: &str) -> Result<(), BoxError> {
    const ROWS: usize = 200_000;
    const SEGMENTS: usize = 20;
    let mut admin = Client::connect(args).await?;
    admin
        .sql(&format!(
            "CREATE SHARED TABLE {table} (id BIGINT PRIMARY KEY, room INT, body TEXT)"
        ))
        .await?;
    let per = ROWS / SEGMENTS;
    for segment in 0..SEGMENTS {
        for start in (segment * per..(segment + 1) * per).step_by(5_000) {
            let values: Vec<String> = (start..start + 5_000)
                .map(|i| format!("({i}, {}, 'message {i} of the benchmark')", i % 100))
                .collect();
            admin
                .sql(&format!("INSERT INTO {table} VALUES {}", values.join(",")))
                .await?;
        }
        flush(&mut admin, table).await?;
    }
    let mut querier = Client::connect(args).await?;
    let rounds = 10;
    let mut times = Vec::new();
    let mut k: u64 = 7;
    for round in 0..rounds + 2 {
        k = k.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1);
        let id = (k >> 33) % ROWS as u64;
        for sql in [
            format!("SELECT count(*) FROM {table}"),
            format!("SELECT count(*) FROM {table} WHERE room = {}", id % 100),
            format!("SELECT room, count(*) FROM {table} GROUP BY room ORDER BY 2 DESC LIMIT 10"),
            format!("SELECT * FROM {table} WHERE id = {id}"),
            format!("SELECT id, body FROM {table} ORDER BY id DESC LIMIT 10"),
        ] {
            let t = Instant::now();
            querier.run_sql(&sql).await?;
            if round >= 2 {
                times.push(t.elapsed());
            }
        }
    }
    times.sort();
    let ms = |d: Duration| d.as_secs_f64() * 1e3;
    let mean = times.iter().map(|d| ms(*d)).sum::<f64>() / times.len() as f64;
    println!(
        "cold segmented rows={ROWS} segments={SEGMENTS} queries={} mean_ms={mean:.1} p99_ms={:.1}",
        times.len(),
        ms(super::percentile(&times, 0.99)),
    );
    // the admin connection sat idle past the server's idle timeout
    let mut admin = Client::connect(args).await?;
    admin.sql(&format!("DROP TABLE {table}")).await?;
    Ok(())
}

/// `--requests` point lookups of keys spread over the table, after
/// `--warmup`; prints p50 and p99.
async fn points(
    args: &Args,
    querier: &mut Client,
    table: &str,
    rows: usize,
    label: &str,
) -> Result<(), BoxError> {
    let mut times = Vec::with_capacity(args.requests);
    let mut k: u64 = 0x9E37_79B9;
    for run in 0..(args.warmup + args.requests) {
        // a multiplicative hash walk over the keys: no two runs read the
        // same page in a row
        k = k
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        let id = (k >> 33) % rows.max(1) as u64;
        let t = Instant::now();
        querier
            .run_sql(&format!("SELECT * FROM {table} WHERE id = {id}"))
            .await?;
        if run >= args.warmup {
            times.push(t.elapsed());
        }
    }
    times.sort();
    let ms = |d: Duration| d.as_secs_f64() * 1e3;
    println!(
        "cold point tier={label} rows={rows} p50_ms={:.3} p99_ms={:.3} runs={}",
        ms(super::percentile(&times, 0.5)),
        ms(super::percentile(&times, 0.99)),
        times.len()
    );
    Ok(())
}
