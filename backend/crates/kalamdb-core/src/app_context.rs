//! [`AppContext`]: everything a statement handler may touch, built once at
//! start-up. All data access goes through its registries and stores.
//!
//! It holds the executor and the job manager by their contracts
//! ([`StatementExecutor`], [`JobRegistry`]); `open.rs` opens it with
//! KalamDB's own, so nothing here imports the executor or the job executors
//! that in turn use the context.

use crate::context::ExecutionContext;
use crate::error::{CoreError, CoreResult};
use crate::jobs::{JobRegistry, JobsConfig, SystemClock, UnifiedJobManager};
use crate::meta_store::{MetaStore, NamespaceRecord, UserRecord};
use crate::providers::{CATALOG_NAME, KalamCatalog};
use crate::result::{ExecutionError, StatementResult};
use crate::schema::SchemaRegistry;
use crate::stream_store::{RowBackend, StreamTables};
use crate::system_tables::SystemTablesRegistry;
use crate::table_store::TableStore;
use crate::write_set::{ChangeSink, WriteFunnel};
use async_trait::async_trait;
use datafusion::catalog::{CatalogProviderList, MemoryCatalogProviderList};
use datafusion::execution::FunctionRegistry;
use datafusion::execution::session_state::{SessionState, SessionStateBuilder};
use datafusion::prelude::SessionConfig;
use kalamdb_commons::snowflake::SnowflakeGenerator;
use kalamdb_commons::{DEFAULT_NAMESPACE, NamespaceId, Role, UserId};
use kalamdb_store::{Batch, StorageBackend};
use serde_json::Value as Json;
use std::sync::Arc;
use tokio::sync::Mutex;

/// The account created on first start.
pub const ROOT_USER: &str = "root";

#[derive(Debug, Clone)]
pub struct CoreOptions {
    /// Snowflake node id (0..1023).
    pub node_id: u16,
    /// bcrypt hash for `root`, set on first start only.
    pub root_password_hash: Option<String>,
    /// Rows per Arrow batch in scans.
    pub batch_size: usize,
    /// DataFusion's parallelism for one query.
    pub target_partitions: usize,
    /// bcrypt cost for passwords set by SQL.
    pub bcrypt_cost: u32,
    pub jobs: JobsConfig,
    /// How long a dropped user's rows are kept before UserCleanup purges them.
    pub user_deletion_grace_ms: i64,
    /// How often a UserCleanup job is scheduled (0: never).
    pub user_cleanup_interval_ms: i64,
    /// How often a StreamEviction job is scheduled (0: never).
    pub stream_eviction_interval_ms: i64,
    /// How long soft-deleted rows are kept (tables' DELETED_RETENTION_HOURS
    /// overrides it); resuming a live query from further back is refused.
    pub deleted_retention_ms: i64,
    /// How often a Retention job is scheduled (0: never).
    pub retention_interval_ms: i64,
    /// How often a Compact job runs over every table (0: never).
    pub compaction_interval_ms: i64,
    /// The `local` storage's directory, as shown in `system.storages`.
    pub local_storage_dir: String,
    /// Structural limits every statement is checked against after parsing.
    pub sql_limits: kalamdb_sql::SqlLimits,
    /// Time and memory one query may use, by role.
    pub query_limits: crate::query_limits::RoleQueryLimits,
    /// Statements slower than this are logged (0: never).
    pub slow_query_ms: u64,
}

impl Default for CoreOptions {
    fn default() -> Self {
        Self {
            node_id: 0,
            root_password_hash: None,
            batch_size: 8192,
            target_partitions: 2,
            bcrypt_cost: 12,
            jobs: JobsConfig::default(),
            user_deletion_grace_ms: 7 * 24 * 3600 * 1000,
            user_cleanup_interval_ms: 3600 * 1000,
            stream_eviction_interval_ms: 60 * 1000,
            deleted_retention_ms: 168 * 3600 * 1000,
            retention_interval_ms: 3600 * 1000,
            compaction_interval_ms: 3600 * 1000,
            local_storage_dir: "./data/storage".into(),
            sql_limits: kalamdb_sql::SqlLimits::default(),
            query_limits: crate::query_limits::RoleQueryLimits::default(),
            slow_query_ms: 0,
        }
    }
}

/// Runs SQL for a caller: parse, authorize, dispatch, collect results.
#[async_trait]
pub trait StatementExecutor: Send + Sync {
    /// Runs every statement of `sql` in order, stopping at the first failure.
    async fn execute(
        &self,
        app: &AppContext,
        ctx: &mut ExecutionContext,
        sql: &str,
        params: &[Json],
    ) -> Result<Vec<StatementResult>, ExecutionError>;
}

/// The job manager, running jobs against the [`AppContext`].
pub type JobManager = UnifiedJobManager<AppContext>;

pub struct AppContext {
    pub meta: MetaStore,
    pub schema_registry: Arc<SchemaRegistry>,
    pub system_tables: Arc<SystemTablesRegistry>,
    pub table_store: TableStore,
    /// STREAM tables' rows (in memory; the storage above routes them here).
    pub streams: Arc<StreamTables>,
    /// The handler-based executor every statement runs through.
    executor: Arc<dyn StatementExecutor>,
    /// Runs every background job; started by the server's lifecycle.
    pub job_manager: Arc<JobManager>,
    /// One generator for `_seq`, job-free ids and `SNOWFLAKE_ID()`.
    pub snowflake: Arc<SnowflakeGenerator>,
    pub options: CoreOptions,
    /// Serializes DDL so id allocation and cache swaps never interleave.
    pub ddl_lock: Mutex<()>,
    /// The DataFusion session every query clones its state from.
    session_state: SessionState,
    /// The unbound catalog each query binds to its caller.
    pub(crate) catalog: KalamCatalog,
    /// The one way rows reach storage (and committed changes the sink).
    pub writes: Arc<WriteFunnel>,
}

impl AppContext {
    /// Opens the database's metadata (bootstrapping it on first start) and
    /// builds every registry around `executor` and the job executors in
    /// `jobs`.
    pub fn assemble(
        backend: Arc<dyn StorageBackend>,
        options: &CoreOptions,
        executor: Arc<dyn StatementExecutor>,
        jobs: JobRegistry<AppContext>,
    ) -> CoreResult<Arc<Self>> {
        let streams = Arc::new(StreamTables::new());
        let backend: Arc<dyn StorageBackend> =
            Arc::new(RowBackend::new(backend, Arc::clone(&streams)));
        let meta = MetaStore::new(Arc::clone(&backend));
        if meta.check_format()? {
            bootstrap(&meta, options)?;
        }
        let schema_registry = Arc::new(SchemaRegistry::load(meta.clone(), Arc::clone(&streams))?);
        let local_dir = (!options.local_storage_dir.is_empty())
            .then(|| std::path::PathBuf::from(&options.local_storage_dir));
        let storages = Arc::new(crate::storages::StorageRegistry::new(local_dir));
        storages.load(&meta)?;
        let system_tables = Arc::new(SystemTablesRegistry::new(
            Arc::clone(&schema_registry),
            Arc::clone(&storages),
        ));
        let table_store =
            TableStore::with_cold(backend, Arc::new(crate::cold::ColdTier::new(storages)));

        let catalog = KalamCatalog::new(
            Arc::clone(&schema_registry),
            Arc::clone(&system_tables),
            table_store.clone(),
        );
        let catalogs = Arc::new(MemoryCatalogProviderList::new());
        catalogs.register_catalog(CATALOG_NAME.to_string(), Arc::new(catalog.clone()));
        let config = SessionConfig::new()
            .with_default_catalog_and_schema(CATALOG_NAME, DEFAULT_NAMESPACE)
            .with_create_default_catalog_and_schema(false)
            .with_information_schema(true)
            .with_batch_size(options.batch_size)
            .with_target_partitions(options.target_partitions.max(1));
        let mut session_state = SessionStateBuilder::new()
            .with_config(config)
            .with_default_features()
            .with_physical_optimizer_rules(crate::providers::key_order::physical_rules())
            .with_catalog_list(catalogs)
            .build();

        session_state.add_analyzer_rule(Arc::new(
            crate::checked_arithmetic::CheckIntegerOverflow::default(),
        ));
        let snowflake = Arc::new(SnowflakeGenerator::new(options.node_id));
        for udf in crate::functions::shared_udfs(Arc::clone(&snowflake)) {
            session_state
                .register_udf(Arc::new(udf))
                .map_err(|e| CoreError::Internal(format!("registering {e}")))?;
        }
        let job_manager = Arc::new(UnifiedJobManager::new(
            meta.clone(),
            JobsConfig {
                node_id: options.node_id,
                ..options.jobs.clone()
            },
            Arc::new(SystemClock),
            jobs,
        ));
        let writes = Arc::new(WriteFunnel::new(
            table_store.clone(),
            Arc::clone(&snowflake),
            Arc::clone(&streams),
            Arc::clone(schema_registry.indexes()),
        ));
        Ok(Arc::new(Self {
            meta,
            schema_registry,
            system_tables,
            table_store,
            streams,
            executor,
            job_manager,
            snowflake,
            catalog,
            ddl_lock: Mutex::new(()),
            options: options.clone(),
            session_state,
            writes,
        }))
    }

    /// Runs `sql` for the caller `ctx` (see [`StatementExecutor::execute`]).
    pub async fn execute(
        &self,
        ctx: &mut ExecutionContext,
        sql: &str,
        params: &[Json],
    ) -> Result<Vec<StatementResult>, ExecutionError> {
        self.executor.execute(self, ctx, sql, params).await
    }

    /// Wires the sink committed changes go to (once, before serving);
    /// `false` if one was set already.
    pub fn set_change_sink(&self, sink: Arc<dyn ChangeSink>) -> bool {
        self.writes.set_sink(sink)
    }

    pub fn session_state(&self) -> &SessionState {
        &self.session_state
    }

    /// Makes everything acknowledged so far durable (called at shutdown).
    pub fn sync(&self) -> CoreResult<()> {
        Ok(self.table_store.backend().sync_wal()?)
    }
}

/// First start: the `default` namespace and the `root` account.
fn bootstrap(meta: &MetaStore, options: &CoreOptions) -> CoreResult<()> {
    let now = kalamdb_commons::now_ms();
    let mut batch = Batch::new();
    meta.put_namespace(
        &mut batch,
        &NamespaceRecord {
            name: NamespaceId::new(DEFAULT_NAMESPACE),
            created_at: now,
        },
    )?;
    meta.put_user(
        &mut batch,
        &UserRecord {
            user_id: UserId::new(ROOT_USER),
            username: ROOT_USER.to_string(),
            role: Role::System,
            password_hash: options.root_password_hash.clone(),
            email: None,
            allow_remote: false,
            created_at: now,
            updated_at: now,
            deleted_at: None,
            token_generation: 0,
        },
    )?;
    meta.backend()
        .write(batch)
        .map_err(|e| CoreError::Internal(format!("bootstrap failed: {e}")))?;
    tracing::info!("initialized a new database: namespace 'default', user 'root'");
    Ok(())
}
