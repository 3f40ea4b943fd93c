//! `kalamdb-server [--config server.toml]`

use clap::Parser;
use kalamdb_server::config::ServerConfig;
use kalamdb_server::{lifecycle, logging};
use std::path::PathBuf;
use std::process::ExitCode;

#[derive(Parser)]
#[command(
    name = "kalamdb-server",
    version,
    about = "KalamDB: SQL-first realtime database server"
)]
struct Args {
    /// Path to server.toml (every key has a default; KALAMDB_* variables override).
    #[arg(long, short)]
    config: Option<PathBuf>,
}

fn main() -> ExitCode {
    let args = Args::parse();
    let config = match ServerConfig::load(args.config.as_deref()) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("kalamdb-server: {e}");
            return ExitCode::from(2);
        }
    };
    let _log_guard = match logging::init(&config) {
        Ok(g) => g,
        Err(e) => {
            eprintln!("kalamdb-server: cannot open the logs directory: {e}");
            return ExitCode::from(2);
        }
    };
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .thread_stack_size(kalamdb_server::lifecycle::THREAD_STACK_BYTES)
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("kalamdb-server: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let result = runtime.block_on(lifecycle::run(
        config,
        lifecycle::shutdown_signal(),
        |addr| println!("kalamdb-server listening on http://{addr}"),
    ));
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("kalamdb-server: {e}");
            ExitCode::FAILURE
        }
    }
}
