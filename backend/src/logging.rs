//! Logging: `<logs>/server.log` rotated daily, plus stdout unless disabled.

use crate::config::ServerConfig;
use tracing_appender::non_blocking::WorkerGuard;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::{EnvFilter, Layer, fmt};

/// Installs the global subscriber. Keep the guard alive until exit so buffered
/// lines reach the file.
pub fn init(config: &ServerConfig) -> std::io::Result<WorkerGuard> {
    let dir = config.logs_dir();
    std::fs::create_dir_all(&dir)?;
    let (file_writer, guard) =
        tracing_appender::non_blocking(tracing_appender::rolling::daily(&dir, "server.log"));
    let filter = || EnvFilter::new(&config.logging.level);
    let file_layer = fmt::layer()
        .with_ansi(false)
        .with_writer(file_writer)
        .with_filter(filter());
    let stdout_layer = config.logging.stdout.then(|| {
        fmt::layer()
            .with_writer(std::io::stdout)
            .with_filter(filter())
    });
    // A second init (tests running several servers in one process) is harmless.
    let _ = tracing_subscriber::registry()
        .with(file_layer)
        .with(stdout_layer)
        .try_init();
    Ok(guard)
}
