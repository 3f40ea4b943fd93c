//! `kalam`: run SQL against a KalamDB server from the command line.
//!
//! `kalam -c "SELECT 1"` runs one command; without `-c` each line of standard
//! input is run in turn.

use clap::Parser;
use kalam_link::{KalamLinkClient, QueryResult};
use std::io::BufRead;
use std::process::ExitCode;

#[derive(Parser)]
#[command(name = "kalam", version, about = "KalamDB command-line shell")]
struct Args {
    /// Server URL.
    #[arg(long, env = "KALAM_URL", default_value = "http://127.0.0.1:8080")]
    url: String,
    #[arg(long, short, env = "KALAM_USER", default_value = "root")]
    user: String,
    #[arg(long, short, env = "KALAM_PASSWORD", default_value = "")]
    password: String,
    /// SQL to run; reads standard input when absent.
    #[arg(long, short)]
    command: Option<String>,
}

fn print_result(result: &QueryResult) {
    if let (Some(schema), Some(rows)) = (&result.schema, &result.rows) {
        let header: Vec<&str> = schema.iter().map(|c| c.name.as_str()).collect();
        println!("{}", header.join("\t"));
        for row in rows {
            let cells: Vec<String> = row
                .iter()
                .map(|v| match v {
                    serde_json::Value::Null => "NULL".to_string(),
                    serde_json::Value::String(s) => s.clone(),
                    other => other.to_string(),
                })
                .collect();
            println!("{}", cells.join("\t"));
        }
        println!("({} row(s))", result.row_count);
    } else if let Some(message) = &result.message {
        println!("{message}");
    }
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> ExitCode {
    let args = Args::parse();
    let client = KalamLinkClient::new(&args.url, &args.user, &args.password);
    let commands: Vec<String> = match args.command {
        Some(c) => vec![c],
        None => std::io::stdin()
            .lock()
            .lines()
            .map_while(Result::ok)
            .filter(|l| !l.trim().is_empty())
            .collect(),
    };
    let mut failed = false;
    for sql in commands {
        match client.execute_sql(&sql, &[]).await {
            Ok(results) => results.iter().for_each(print_result),
            Err(e) => {
                eprintln!("error: {e}");
                failed = true;
            }
        }
    }
    if failed {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    }
}
