//! The `cold-aggregate` workload: `GROUP BY` + `SUM` over a table whose
//! rows all live in Parquet. A SHARED table of `--preload` rows (`id`,
//! `grp` INT with 1,000 values, `amount` BIGINT) is loaded over HTTP (two
//! connections) and flushed; then the aggregate runs `--requests` times
//! (after `--warmup`) over HTTP, and the same query runs on the very same
//! segment files in DataFusion directly (a `SessionContext` on the files in
//! this process, the machine's cores as partitions). DuckDB on the same
//! files is timed by `scripts/duckdb_aggregate.py` (bench.sh runs it after
//! this, on the directory printed as `segments=`).

use super::{Args, BoxError, Client};
use datafusion::prelude::{ParquetReadOptions, SessionContext};
use std::path::{Path, PathBuf};
use std::time::Instant;

/// The aggregate, with `{t}` for the table.
pub const QUERY: &str = "SELECT grp, SUM(amount) AS total FROM {t} GROUP BY grp";

fn row(i: usize) -> String {
    format!("({i}, {}, {})", i % 1000, (i * 7) % 10_007)
}

pub async fn run(args: &Args) -> Result<(), BoxError> {
    let data_dir = args
        .data_dir
        .clone()
        .ok_or("cold-aggregate needs --data-dir (the server's data directory)")?;
    let mut admin = Client::connect(args).await?;
    let stamp = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)?
        .as_millis();
    let name = format!("agg{stamp}");
    let table = format!("bench.{name}");
    admin.sql("CREATE NAMESPACE IF NOT EXISTS bench").await?;
    admin
        .sql(&format!(
            "CREATE SHARED TABLE {table} (id BIGINT PRIMARY KEY, grp INT, amount BIGINT)"
        ))
        .await?;
    let rows = args.preload;
    let started = Instant::now();
    let mut loaders = Vec::new();
    for part in 0..2 {
        let args = args.clone();
        let table = table.clone();
        loaders.push(tokio::spawn(async move {
            let mut client = Client::connect(&args).await?;
            for start in (part * 5_000..rows).step_by(10_000) {
                let values: Vec<String> = (start..(start + 5_000).min(rows)).map(row).collect();
                client
                    .sql(&format!("INSERT INTO {table} VALUES {}", values.join(",")))
                    .await?;
            }
            Ok::<_, BoxError>(())
        }));
    }
    for loader in loaders {
        loader.await??;
    }
    println!(
        "aggregate load rows={rows} secs={:.1}",
        started.elapsed().as_secs_f64()
    );
    // the server closes a connection left idle through the load
    let mut admin = Client::connect(args).await?;
    let started = Instant::now();
    super::cold::flush(&mut admin, &table).await?;
    println!(
        "aggregate flush rows={rows} secs={:.1}",
        started.elapsed().as_secs_f64()
    );
    let want: i64 = (0..rows).map(|i| ((i * 7) % 10_007) as i64).sum();

    let sql = QUERY.replace("{t}", &table);
    let mut client = Client::connect(args).await?;
    let mut times = Vec::new();
    for i in 0..args.warmup + args.requests {
        let t = Instant::now();
        let reply: serde_json::Value = serde_json::from_slice(&client.run_sql(&sql).await?)?;
        let elapsed = t.elapsed();
        if i == 0 {
            check(&reply, want)?;
        }
        if i >= args.warmup {
            times.push(elapsed.as_secs_f64() * 1000.0);
        }
    }
    report("kalamdb", rows, &mut times);

    let dir = segments_dir(&data_dir, &name)?;
    println!("aggregate segments={}", dir.display());
    let ctx = SessionContext::new();
    ctx.register_parquet(
        "t",
        dir.display().to_string(),
        ParquetReadOptions::default(),
    )
    .await?;
    let sql = QUERY.replace("{t}", "t");
    let mut times = Vec::new();
    for i in 0..args.warmup + args.requests {
        let t = Instant::now();
        let batches = ctx.sql(&sql).await?.collect().await?;
        let elapsed = t.elapsed();
        if i == 0 {
            let groups: usize = batches.iter().map(|b| b.num_rows()).sum();
            if groups != 1000 {
                return Err(format!("DataFusion answered {groups} groups").into());
            }
        }
        if i >= args.warmup {
            times.push(elapsed.as_secs_f64() * 1000.0);
        }
    }
    report("datafusion", rows, &mut times);
    Ok(())
}

/// The reply holds 1,000 groups whose totals add up to `want`.
fn check(reply: &serde_json::Value, want: i64) -> Result<(), BoxError> {
    let rows = reply["results"][0]["rows"]
        .as_array()
        .ok_or_else(|| format!("the aggregate answered {reply}"))?;
    let total: i64 = rows
        .iter()
        .map(|r| match &r[1] {
            serde_json::Value::String(s) => s.parse().unwrap_or(0),
            other => other.as_i64().unwrap_or(0),
        })
        .sum();
    if rows.len() != 1000 || total != want {
        return Err(format!(
            "the aggregate answered {} groups, total {total} (want 1000, {want})",
            rows.len()
        )
        .into());
    }
    Ok(())
}

fn report(engine: &str, rows: usize, times: &mut [f64]) {
    times.sort_by(f64::total_cmp);
    let p = |q: f64| times[((times.len() - 1) as f64 * q).round() as usize];
    let mean = times.iter().sum::<f64>() / times.len() as f64;
    println!(
        "aggregate engine={engine} rows={rows} runs={} mean_ms={mean:.1} p50_ms={:.1} min_ms={:.1} max_ms={:.1}",
        times.len(),
        p(0.5),
        p(0.0),
        p(1.0)
    );
}

/// The directory under `root` named `table` that holds `.parquet` files.
fn segments_dir(root: &Path, table: &str) -> Result<PathBuf, BoxError> {
    let mut stack = vec![root.to_path_buf()];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir)? {
            let path = entry?.path();
            if path.is_dir() {
                stack.push(path);
            } else if path.extension().is_some_and(|e| e == "parquet")
                && dir.file_name().is_some_and(|n| n == table)
            {
                return Ok(dir);
            }
        }
    }
    Err(format!("no segments of {table} under {}", root.display()).into())
}
