//! Boots everything from config and shuts it down in order:
//! storage → AppContext (registries, executor) → job manager (recovers
//! persisted jobs) → authenticator → HTTP; on SIGINT/SIGTERM: stop accepting
//! → drain in-flight requests → stop the job manager (running jobs stop at a
//! safe point) → sync the WAL, flush memtables → close RocksDB.

use crate::config::ServerConfig;
use kalamdb_api::server::ConnectionLimits;
use kalamdb_api::telemetry::{Metrics, MetricsAccess};
use kalamdb_api::{ApiLimits, ApiState, router};
use kalamdb_auth::password::hash_password;
use kalamdb_auth::{AuthConfig, Authenticator, LockoutPolicy};
use kalamdb_core::jobs::JobsConfig;
use kalamdb_core::{AppContext, CoreOptions};
use kalamdb_live::{ConnectionConfig, LiveQueryManager};
use kalamdb_store::{RocksDbBackend, RocksDbOptions, StorageBackend};
use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

/// Stack of every runtime thread. Statements are bounded in depth before
/// planning (`sql.max_expression_depth`, `sql.max_query_depth`); this is what
/// lets the deepest statement those limits admit plan and run (parser,
/// planner, optimizer and DataFusion's recursive derives) with room to spare.
/// Only the touched part of a stack is ever backed by memory.
pub const THREAD_STACK_BYTES: usize = 32 << 20;

/// How often recorded histogram samples are folded into their buckets.
const METRICS_UPKEEP: Duration = Duration::from_secs(5);

#[derive(Debug, thiserror::Error)]
pub enum LifecycleError {
    #[error("cannot open storage: {0}")]
    Storage(String),
    #[error("cannot start: {0}")]
    Start(String),
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        addr: String,
        source: std::io::Error,
    },
}

/// The opened database: what a server (or an in-process test) runs on.
pub struct Database {
    pub app: Arc<AppContext>,
    pub auth: Arc<Authenticator>,
    /// Every live subscription; the write funnel publishes to it.
    pub live: Arc<LiveQueryManager>,
    backend: Arc<RocksDbBackend>,
}

impl Database {
    /// Opens (creating on first start) the database under `storage.data_dir`.
    pub fn open(config: &ServerConfig) -> Result<Self, LifecycleError> {
        let options = RocksDbOptions {
            sync_writes: config.storage.sync_writes,
            block_cache_bytes: config.storage.block_cache_mb << 20,
            write_buffer_bytes: config.storage.write_buffer_mb << 20,
        };
        let path = config.storage.data_dir.join("rocksdb");
        let backend = Arc::new(
            RocksDbBackend::open(&path, &options)
                .map_err(|e| LifecycleError::Storage(e.to_string()))?,
        );
        let root_password_hash = config
            .auth
            .root_password
            .as_deref()
            .map(|p| hash_password(p, config.auth.bcrypt_cost))
            .transpose()
            .map_err(|e| LifecycleError::Start(e.to_string()))?;
        let core_options = CoreOptions {
            node_id: config.server.node_id,
            root_password_hash,
            batch_size: config.query.batch_size,
            target_partitions: config.query.target_partitions,
            bcrypt_cost: config.auth.bcrypt_cost,
            jobs: JobsConfig {
                max_concurrent: config.jobs.max_concurrent,
                retry_backoff_ms: config.jobs.retry_backoff_ms,
                max_retries: config.jobs.max_retries,
                node_id: config.server.node_id,
            },
            user_deletion_grace_ms: i64::try_from(
                config
                    .auth
                    .user_deletion_grace_days
                    .saturating_mul(24 * 3600 * 1000),
            )
            .unwrap_or(i64::MAX),
            sql_limits: config.sql.statement_limits(),
            query_limits: config.sql.query_limits(),
            slow_query_ms: config.logging.slow_query_ms,
            local_storage_dir: config
                .storage
                .data_dir
                .join("storage")
                .display()
                .to_string(),
            user_cleanup_interval_ms: i64::try_from(
                config.jobs.user_cleanup_interval_secs.saturating_mul(1000),
            )
            .unwrap_or(i64::MAX),
            stream_eviction_interval_ms: i64::try_from(
                config
                    .jobs
                    .stream_eviction_interval_secs
                    .saturating_mul(1000),
            )
            .unwrap_or(i64::MAX),
            deleted_retention_ms: i64::try_from(
                config
                    .storage
                    .deleted_retention_hours
                    .saturating_mul(3_600_000),
            )
            .unwrap_or(i64::MAX),
            retention_interval_ms: i64::try_from(
                config.jobs.retention_interval_secs.saturating_mul(1000),
            )
            .unwrap_or(i64::MAX),
            compaction_interval_ms: i64::try_from(
                config.jobs.compaction_interval_secs.saturating_mul(1000),
            )
            .unwrap_or(i64::MAX),
        };
        let app = AppContext::open(
            Arc::clone(&backend) as Arc<dyn StorageBackend>,
            &core_options,
        )
        .map_err(|e| LifecycleError::Start(e.to_string()))?;
        let live = Arc::new(LiveQueryManager::new(config.websocket.subscription_queue));
        live.attach(&app);
        let auth = Arc::new(Authenticator::with_config(
            app.meta.clone(),
            &AuthConfig {
                lockout: LockoutPolicy {
                    max_failed: config.auth.max_failed_logins,
                    lockout: Duration::from_secs(config.auth.lockout_seconds),
                },
                jwt: config.jwt_config(),
                bcrypt_cost: config.auth.bcrypt_cost,
            },
        ));
        Ok(Self {
            app,
            auth,
            live,
            backend,
        })
    }

    /// Makes every acknowledged write durable and leaves no WAL to replay.
    pub fn close(self) {
        if let Err(e) = self.app.sync() {
            tracing::error!("syncing the WAL at shutdown failed: {e}");
        }
        if let Err(e) = self.backend.flush_all() {
            tracing::error!("flushing memtables at shutdown failed: {e}");
        }
        drop(self.live);
        drop(self.app);
        drop(self.auth);
        drop(self.backend);
        tracing::info!("storage closed");
    }
}

/// Runs the server until `shutdown` resolves, then shuts down in order.
/// `on_listening` gets the bound address (port 0 picks a free one).
pub async fn run(
    config: ServerConfig,
    shutdown: impl Future<Output = ()> + Send + 'static,
    on_listening: impl FnOnce(SocketAddr),
) -> Result<(), LifecycleError> {
    // first, so everything that opens records into it
    let metrics = config
        .metrics
        .enabled
        .then(|| {
            Metrics::install(MetricsAccess {
                allow_remote: config.metrics.allow_remote,
                token: config.metrics.token.clone(),
            })
            .map(Arc::new)
        })
        .transpose()
        .map_err(|e| LifecycleError::Start(format!("metrics: {e}")))?;
    let database = Database::open(&config)?;
    // before any job runs (no flush is uploading): segment files no
    // manifest references are what a crash before a flush's commit, or a
    // dropped table, left
    let app = &database.app;
    let live_tables: Vec<u64> = app
        .schema_registry
        .tables(None)
        .iter()
        .map(|t| t.definition.table_id.0)
        .collect();
    let everywhere: Vec<(String, String)> = app
        .table_store
        .cold()
        .storages()
        .all()
        .into_iter()
        .map(|s| (s.storage_id, String::new()))
        .collect();
    let orphans = kalamdb_core::cold::sweep_orphans(
        app.table_store.cold(),
        app.table_store.backend().as_ref(),
        live_tables,
        &everywhere,
        i64::MAX,
    )
    .await
    .map_err(|e| LifecycleError::Start(format!("cold tier: {e}")))?;
    if orphans > 0 {
        tracing::info!("removed {orphans} unreferenced segment file(s)");
    }
    database
        .app
        .job_manager
        .start(&database.app)
        .map_err(|e| LifecycleError::Start(format!("job manager: {e}")))?;
    let limits = ApiLimits {
        max_request_bytes: config.limits.max_request_body_bytes,
        max_sql_length: config.limits.max_sql_length,
        body_read_timeout: Duration::from_secs(config.server.body_read_timeout_secs),
    };
    let connection_limits = ConnectionLimits {
        max_connections: config.server.max_connections,
        header_read_timeout: Duration::from_secs(config.server.header_read_timeout_secs),
    };
    let mut state = ApiState::new(
        Arc::clone(&database.app),
        Arc::clone(&database.auth),
        Arc::clone(&database.live),
        limits,
        ConnectionConfig {
            auth_timeout: Duration::from_secs(config.websocket.auth_timeout_secs),
            heartbeat: Duration::from_secs(config.websocket.heartbeat_interval_secs),
            client_timeout: Duration::from_secs(config.websocket.client_timeout_secs),
            max_subscriptions: config.websocket.max_subscriptions_per_connection,
            max_subscriptions_per_user: config.websocket.max_subscriptions_per_user,
            max_message_bytes: config.websocket.max_message_bytes,
            max_messages_per_second: config.websocket.max_messages_per_second,
            max_initial_rows: config.websocket.max_initial_rows,
        },
    );
    if let Some(metrics) = &metrics {
        state = state.with_metrics(Arc::clone(metrics));
    }
    let state = Arc::new(state);
    let app = router(state);
    let addr = format!("{}:{}", config.server.host, config.server.port);
    let listener = tokio::net::TcpListener::bind(&addr)
        .await
        .map_err(|source| LifecycleError::Bind {
            addr: addr.clone(),
            source,
        })?;
    let local = listener
        .local_addr()
        .map_err(|e| LifecycleError::Start(e.to_string()))?;
    tracing::info!(%local, data_dir = %config.storage.data_dir.display(), "kalamdb-server listening");
    on_listening(local);

    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    // STREAM tables past their row cap lose their oldest rows here
    let row_caps = tokio::spawn(kalamdb_core::stream_eviction::run_row_caps(
        Arc::clone(&database.app),
        stop_rx.clone(),
    ));
    // tables' FLUSH_POLICYs start Flush jobs
    let policies = tokio::spawn(kalamdb_core::jobs::executors::flush::run_policies(
        Arc::clone(&database.app),
        stop_rx.clone(),
    ));
    // histogram samples are folded into buckets between scrapes
    let upkeep = metrics.map(|metrics| {
        let mut stop = stop_rx.clone();
        tokio::spawn(async move {
            loop {
                tokio::select! {
                    _ = stop.wait_for(|s| *s) => break,
                    () = tokio::time::sleep(METRICS_UPKEEP) => metrics.run_upkeep(),
                }
            }
        })
    });
    let serve = kalamdb_api::server::serve(listener, app, connection_limits, async move {
        shutdown.await;
        tracing::info!("shutdown requested: no longer accepting connections");
        let _ = stop_tx.send(true);
    });
    let drain_limit = Duration::from_secs(config.server.shutdown_timeout_secs);
    let mut stopped = stop_rx.clone();
    tokio::select! {
        _ = serve => {}
        _ = async {
            let _ = stopped.wait_for(|s| *s).await;
            tokio::time::sleep(drain_limit).await;
        } => {
            tracing::warn!("in-flight requests did not finish within {drain_limit:?}; closing anyway");
        }
    }
    // Jobs get what is left of the drain time to reach a safe point; one that
    // does not is failed by recovery at the next start.
    database.app.job_manager.shutdown(drain_limit).await;
    tracing::info!("job manager stopped");
    let _ = row_caps.await;
    let _ = policies.await;
    if let Some(upkeep) = upkeep {
        let _ = upkeep.await;
    }
    database.close();
    Ok(())
}

/// Resolves on SIGINT or SIGTERM.
pub async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {},
        _ = terminate => {},
    }
}
