//! Logging: `<logs>/server.log` rotated daily, plus stdout unless disabled,
//! and `<logs>/jobs.log` (daily) with one line per job event:
//! `<time> [JobId] LEVEL message`, so `grep '\[FL-4fT9a2xQ\]' jobs.log` tells
//! one job's story.
//!
//! Every event inside a request carries its span, `request{id=…}`, with the
//! id an error reply and the `x-request-id` header show. `logging.format =
//! "json"` writes one JSON object per line instead (span fields included).

use crate::config::{LogFormat, ServerConfig};
use kalamdb_core::jobs::JOBS_LOG_TARGET;
use std::fmt::Write as _;
use tracing::field::{Field, Visit};
use tracing::{Event, Subscriber};
use tracing_appender::non_blocking::WorkerGuard;
use tracing_subscriber::filter::Targets;
use tracing_subscriber::fmt::format::Writer;
use tracing_subscriber::fmt::{FmtContext, FormatEvent, FormatFields};
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::registry::LookupSpan;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::{EnvFilter, Layer, fmt};

/// Keeps the log writers flushing; hold it until exit.
pub struct LogGuards {
    _server: WorkerGuard,
    _jobs: WorkerGuard,
}

#[derive(Default)]
struct JobFields {
    job_id: String,
    message: String,
}

impl Visit for JobFields {
    fn record_str(&mut self, field: &Field, value: &str) {
        match field.name() {
            "job_id" => self.job_id = value.to_string(),
            "message" => self.message = value.to_string(),
            _ => {}
        }
    }

    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        match field.name() {
            "job_id" => self.job_id = format!("{value:?}"),
            "message" => {
                let _ = write!(self.message, "{value:?}");
            }
            _ => {}
        }
    }
}

/// `<RFC 3339 time> [JobId] LEVEL message`
struct JobLine;

impl<S, N> FormatEvent<S, N> for JobLine
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    N: for<'a> FormatFields<'a> + 'static,
{
    fn format_event(
        &self,
        _ctx: &FmtContext<'_, S, N>,
        mut writer: Writer<'_>,
        event: &Event<'_>,
    ) -> std::fmt::Result {
        let mut fields = JobFields::default();
        event.record(&mut fields);
        let now = chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
        writeln!(
            writer,
            "{now} [{}] {} {}",
            fields.job_id.trim_matches('"'),
            event.metadata().level(),
            fields.message
        )
    }
}

/// Installs the global subscriber.
pub fn init(config: &ServerConfig) -> std::io::Result<LogGuards> {
    let dir = config.logs_dir();
    std::fs::create_dir_all(&dir)?;
    let (file_writer, server_guard) =
        tracing_appender::non_blocking(tracing_appender::rolling::daily(&dir, "server.log"));
    let (jobs_writer, jobs_guard) =
        tracing_appender::non_blocking(tracing_appender::rolling::daily(&dir, "jobs.log"));
    let filter = || EnvFilter::new(&config.logging.level);
    let json = config.logging.format == LogFormat::Json;
    let file_layer = if json {
        fmt::layer()
            .json()
            .with_current_span(true)
            .with_span_list(false)
            .with_writer(file_writer)
            .with_filter(filter())
            .boxed()
    } else {
        fmt::layer()
            .with_ansi(false)
            .with_writer(file_writer)
            .with_filter(filter())
            .boxed()
    };
    let stdout_layer = config.logging.stdout.then(|| {
        if json {
            fmt::layer()
                .json()
                .with_current_span(true)
                .with_span_list(false)
                .with_writer(std::io::stdout)
                .with_filter(filter())
                .boxed()
        } else {
            fmt::layer()
                .with_writer(std::io::stdout)
                .with_filter(filter())
                .boxed()
        }
    });
    // Every job event, whatever the server's log level.
    let jobs_layer = fmt::layer()
        .with_ansi(false)
        .event_format(JobLine)
        .with_writer(jobs_writer)
        .with_filter(Targets::new().with_target(JOBS_LOG_TARGET, tracing::Level::INFO));
    // A second init (tests running several servers in one process) is harmless.
    let _ = tracing_subscriber::registry()
        .with(file_layer)
        .with(stdout_layer)
        .with(jobs_layer)
        .try_init();
    Ok(LogGuards {
        _server: server_guard,
        _jobs: jobs_guard,
    })
}
