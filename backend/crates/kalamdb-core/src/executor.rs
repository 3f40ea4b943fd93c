//! The [`SqlExecutor`]: parse → classify → authorize (one gate) → dispatch to
//! the family's [`StatementHandler`]. It is the [`StatementExecutor`] the
//! [`AppContext`] is opened with (see `open.rs`); callers run SQL through
//! [`AppContext::execute`].

pub mod authorization;
pub mod handlers;

use crate::app_context::{AppContext, StatementExecutor};
use crate::context::ExecutionContext;
use crate::error::{CoreError, CoreResult};
use crate::result::{ExecutionError, StatementResult};
use async_trait::async_trait;
use authorization::{StatementFamily, authorize};
use handlers::{
    DmlHandler, JobHandler, LiveHandler, NamespaceHandler, QueryHandler, ShowHandler,
    StatementHandler, StorageHandler, TableDdlHandler, UserHandler,
};

use kalamdb_sql::sqlparser::ast::Statement;
use kalamdb_sql::{SqlStatement, parse_sql_with_limits};
use serde_json::Value as Json;

pub struct SqlExecutor {
    namespace: NamespaceHandler,
    table_ddl: TableDdlHandler,
    storage: StorageHandler,
    dml: DmlHandler,
    query: QueryHandler,
    show: ShowHandler,
    users: UserHandler,
    jobs: JobHandler,
    live: LiveHandler,
}

impl Default for SqlExecutor {
    fn default() -> Self {
        Self::new()
    }
}

impl SqlExecutor {
    pub fn new() -> Self {
        Self {
            namespace: NamespaceHandler,
            table_ddl: TableDdlHandler,
            storage: StorageHandler,
            dml: DmlHandler,
            query: QueryHandler,
            show: ShowHandler,
            users: UserHandler,
            jobs: JobHandler,
            live: LiveHandler,
        }
    }

    fn handler(&self, family: StatementFamily) -> &dyn StatementHandler {
        match family {
            StatementFamily::NamespaceDdl | StatementFamily::Session => &self.namespace,
            StatementFamily::TableDdl => &self.table_ddl,
            StatementFamily::StorageDdl => &self.storage,
            StatementFamily::Dml => &self.dml,
            StatementFamily::Query => &self.query,
            StatementFamily::Show => &self.show,
            StatementFamily::UserManagement => &self.users,
            StatementFamily::JobControl => &self.jobs,
            StatementFamily::Live => &self.live,
        }
    }

    /// Runs every statement of `sql` in order, stopping at the first failure.
    async fn run(
        &self,
        app: &AppContext,
        ctx: &mut ExecutionContext,
        sql: &str,
        params: &[Json],
    ) -> Result<Vec<StatementResult>, ExecutionError> {
        let statements = parse_sql_with_limits(sql, &app.options.sql_limits).map_err(|e| {
            let index = e.in_batch.then_some(e.statement_index);
            ExecutionError {
                error: CoreError::Parse(e),
                statement_index: index,
            }
        })?;
        if statements.is_empty() {
            return Err(CoreError::EmptySql.into());
        }
        let batch = statements.len() > 1;
        if batch && !params.is_empty() {
            return Err(CoreError::ParamsWithBatch.into());
        }
        if !batch && statements[0].placeholders != params.len() {
            let used = statements[0].placeholders;
            return Err(CoreError::InvalidParameter(if used == 0 {
                format!(
                    "{} parameter(s) given, but the statement has no placeholders",
                    params.len()
                )
            } else {
                format!(
                    "The statement uses placeholders up to ${used}, so it needs {used} \
                     parameter(s); {} given",
                    params.len()
                )
            })
            .into());
        }
        let mentions_system_columns = sql.contains(kalamdb_commons::SEQ_COLUMN)
            || sql.contains(kalamdb_commons::DELETED_COLUMN);
        let mut results = Vec::with_capacity(statements.len());
        for (i, parsed) in statements.into_iter().enumerate() {
            let options = handlers::StatementOptions {
                params,
                mentions_system_columns,
            };
            let started = std::time::Instant::now();
            let kind = parsed.statement.kind_name();
            let family = family_label(&parsed.statement);
            let run = match transaction_control(&parsed.statement) {
                Some(control) => self.control_transaction(app, ctx, control).await,
                None => {
                    self.run_statement(app, ctx, parsed.statement, &options)
                        .await
                }
            };
            observe_statement(app, ctx, sql, kind, family, started, run.is_ok());
            match run {
                Ok(result) => results.push(result),
                Err(error) => {
                    // A failing statement voids its transaction: nothing of
                    // it is written.
                    ctx.transaction = None;
                    return Err(ExecutionError {
                        error,
                        statement_index: batch.then_some(i + 1),
                    });
                }
            }
        }
        if ctx.transaction.take().is_some() {
            return Err(CoreError::Execution(
                "BEGIN without COMMIT: the transaction was rolled back".into(),
            )
            .into());
        }
        Ok(results)
    }

    /// BEGIN starts collecting writes in a transaction view; COMMIT writes
    /// them as one atomic batch; ROLLBACK drops them.
    async fn control_transaction(
        &self,
        app: &AppContext,
        ctx: &mut ExecutionContext,
        control: TransactionControl,
    ) -> CoreResult<StatementResult> {
        match control {
            TransactionControl::Begin => {
                if ctx.transaction.is_some() {
                    return Err(CoreError::Execution(
                        "A transaction is already open: COMMIT or ROLLBACK it first".into(),
                    ));
                }
                ctx.transaction = Some(std::sync::Arc::new(crate::write_set::Transaction::begin(
                    std::sync::Arc::clone(app.table_store.backend()),
                )));
                Ok(StatementResult::message("BEGIN"))
            }
            TransactionControl::Commit => {
                let Some(tx) = ctx.transaction.take() else {
                    return Err(CoreError::Execution("COMMIT without BEGIN".into()));
                };
                app.writes.commit_transaction(&tx).await?;
                Ok(StatementResult::message("COMMIT"))
            }
            TransactionControl::Rollback => {
                if ctx.transaction.take().is_none() {
                    return Err(CoreError::Execution("ROLLBACK without BEGIN".into()));
                }
                Ok(StatementResult::message("ROLLBACK"))
            }
        }
    }
}

#[async_trait]
impl StatementExecutor for SqlExecutor {
    async fn execute(
        &self,
        app: &AppContext,
        ctx: &mut ExecutionContext,
        sql: &str,
        params: &[Json],
    ) -> Result<Vec<StatementResult>, ExecutionError> {
        self.run(app, ctx, sql, params).await
    }
}

impl SqlExecutor {
    /// Authorizes and runs one statement; `EXECUTE AS USER` runs its inner
    /// statement with the target user's identity, authorized for that user.
    async fn run_statement(
        &self,
        app: &AppContext,
        ctx: &mut ExecutionContext,
        statement: SqlStatement,
        options: &handlers::StatementOptions<'_>,
    ) -> CoreResult<StatementResult> {
        if let SqlStatement::ExecuteAsUser { user, statement } = statement {
            let target = app
                .meta
                .user(&user)?
                .filter(|u| u.deleted_at.is_none())
                .ok_or_else(|| CoreError::Execution(format!("User '{user}' does not exist")))?;
            authorization::authorize_impersonation(
                ctx.role,
                &ctx.username,
                &target.username,
                target.role,
            )?;
            let mut inner = ctx.clone();
            inner.user_id = target.user_id;
            inner.username = target.username;
            inner.role = target.role;
            let family = classify(&statement)?;
            authorize(inner.role, family, statement.kind_name())?;
            let action = statement.kind_name();
            let mut result = self
                .dispatch(app, &mut inner, family, *statement, options)
                .await?;
            let details = format!("{action}: {}", result.message.as_deref().unwrap_or("ok"));
            audit(app, ctx, "EXECUTE AS USER", &details, Some(&inner.username));
            result.as_user = Some(inner.username);
            return Ok(result);
        }
        let family = classify(&statement)?;
        authorize(ctx.role, family, statement.kind_name())?;
        if ctx.transaction.is_some()
            && !matches!(
                family,
                StatementFamily::Dml | StatementFamily::Query | StatementFamily::Show
            )
        {
            return Err(CoreError::NotSupported(format!(
                "{} cannot run inside a transaction: only INSERT, UPDATE, DELETE and queries can",
                statement.kind_name()
            )));
        }
        let action = statement.kind_name();
        let result = self.dispatch(app, ctx, family, statement, options).await?;
        if matches!(
            family,
            StatementFamily::NamespaceDdl
                | StatementFamily::TableDdl
                | StatementFamily::StorageDdl
                | StatementFamily::UserManagement
                | StatementFamily::JobControl
        ) {
            audit(
                app,
                ctx,
                action,
                result.message.as_deref().unwrap_or("ok"),
                None,
            );
        }
        Ok(result)
    }
}

/// How often a single statement whose write conflicted is run again.
pub(crate) const WRITE_ATTEMPTS: usize = 16;

impl SqlExecutor {
    /// Runs `statement` through its family's handler. A single UPDATE or
    /// DELETE whose write conflicted with another commit (a row it read
    /// changed before it committed) runs again from the start, so
    /// concurrent `SET n = n + 1` never lose an increment; inside a
    /// transaction the conflict is COMMIT's to report.
    async fn dispatch(
        &self,
        app: &AppContext,
        ctx: &mut ExecutionContext,
        family: StatementFamily,
        statement: SqlStatement,
        options: &handlers::StatementOptions<'_>,
    ) -> CoreResult<StatementResult> {
        let handler = self.handler(family);
        if ctx.transaction.is_some() || !reads_before_writing(&statement) {
            return handler.execute(app, ctx, statement, options).await;
        }
        for _ in 1..WRITE_ATTEMPTS {
            match handler.execute(app, ctx, statement.clone(), options).await {
                Err(CoreError::WriteConflict(_)) => tokio::task::yield_now().await,
                done => return done,
            }
        }
        handler.execute(app, ctx, statement, options).await
    }
}

/// Whether a statement computes rows from rows it read (UPDATE, DELETE), so
/// its commit can conflict. (An INSERT, whose keys must still be free at
/// commit, writes again from its source rows by itself: see `insert.rs`.)
fn reads_before_writing(statement: &SqlStatement) -> bool {
    let SqlStatement::Standard(s) = statement else {
        return false;
    };
    matches!(s.as_ref(), Statement::Update(_) | Statement::Delete(_))
}

#[derive(Debug, Clone, Copy)]
enum TransactionControl {
    Begin,
    Commit,
    Rollback,
}

fn transaction_control(statement: &SqlStatement) -> Option<TransactionControl> {
    let SqlStatement::Standard(s) = statement else {
        return None;
    };
    match s.as_ref() {
        Statement::StartTransaction { .. } => Some(TransactionControl::Begin),
        Statement::Commit { chain: false, .. } => Some(TransactionControl::Commit),
        Statement::Rollback {
            chain: false,
            savepoint: None,
        } => Some(TransactionControl::Rollback),
        _ => None,
    }
}

/// The metrics family of a statement (EXECUTE AS USER: its inner one).
fn family_label(statement: &SqlStatement) -> &'static str {
    match statement {
        SqlStatement::ExecuteAsUser { statement, .. } => family_label(statement),
        s if transaction_control(s).is_some() => "transaction",
        s => classify(s).map_or("unknown", StatementFamily::label),
    }
}

/// Counts a finished statement and times it; one slower than
/// `slow_query_ms` is logged with its user and (masked, truncated) SQL —
/// never its parameter values.
fn observe_statement(
    app: &AppContext,
    ctx: &ExecutionContext,
    sql: &str,
    kind: &'static str,
    family: &'static str,
    started: std::time::Instant,
    ok: bool,
) {
    let elapsed = started.elapsed();
    let outcome = if ok { "ok" } else { "error" };
    use kalamdb_commons::metric_handles::{count, observe};
    count(
        "kalamdb_sql_statements_total",
        &[("family", family), ("outcome", outcome)],
        1,
    );
    observe(
        "kalamdb_sql_statement_duration_seconds",
        &[("family", family)],
        elapsed.as_secs_f64(),
    );
    let threshold = app.options.slow_query_ms;
    if threshold > 0 && elapsed.as_millis() >= u128::from(threshold) {
        metrics::counter!("kalamdb_sql_slow_statements_total", "family" => family).increment(1);
        tracing::warn!(
            duration_ms = (elapsed.as_secs_f64() * 1e6).round() / 1e3,
            user = %ctx.username,
            statement = kind,
            outcome,
            sql = %kalamdb_sql::loggable_sql(sql, SLOW_QUERY_SQL_CHARS),
            "slow statement"
        );
    }
}

/// How much of a slow statement's SQL its log line shows.
const SLOW_QUERY_SQL_CHARS: usize = 1000;

/// Records an audited action. A failure to record is logged, not returned:
/// the statement itself has already been committed.
fn audit(
    app: &AppContext,
    ctx: &ExecutionContext,
    action: &str,
    details: &str,
    as_user: Option<&str>,
) {
    let entry = crate::meta_store::AuditEntry {
        audit_id: app.snowflake.next_id(),
        timestamp: kalamdb_commons::now_ms(),
        actor: ctx.username.clone(),
        action: action.to_string(),
        details: details.to_string(),
        client_addr: ctx.client_addr.map(|a| a.to_string()),
        as_user: as_user.map(str::to_string),
    };
    if let Err(e) = app.meta.append_audit(&entry) {
        tracing::error!(request_id = %ctx.request_id, "cannot write the audit log: {e}");
    }
}

/// Which family a statement belongs to; standard statements we do not run
/// are refused here, before authorization.
pub fn classify(statement: &SqlStatement) -> CoreResult<StatementFamily> {
    Ok(match statement {
        SqlStatement::CreateNamespace { .. } | SqlStatement::DropNamespace { .. } => {
            StatementFamily::NamespaceDdl
        }
        SqlStatement::UseNamespace { .. } => StatementFamily::Session,
        SqlStatement::CreateStorage { .. }
        | SqlStatement::AlterStorage { .. }
        | SqlStatement::DropStorage { .. } => StatementFamily::StorageDdl,
        SqlStatement::CreateUser { .. }
        | SqlStatement::AlterUser { .. }
        | SqlStatement::DropUser { .. } => StatementFamily::UserManagement,
        SqlStatement::ExecuteAsUser { statement, .. } => classify(statement)?,
        SqlStatement::KillJob { .. }
        | SqlStatement::BackupDatabase { .. }
        | SqlStatement::RestoreDatabase { .. } => StatementFamily::JobControl,
        SqlStatement::Subscribe { .. } | SqlStatement::KillLiveQuery { .. } => {
            StatementFamily::Live
        }
        SqlStatement::CreateTable(_)
        | SqlStatement::DropTable { .. }
        | SqlStatement::CreateIndex { .. }
        | SqlStatement::DropIndex { .. }
        | SqlStatement::FlushTable { .. }
        | SqlStatement::FlushAll { .. }
        | SqlStatement::CompactTable { .. }
        | SqlStatement::CompactAll { .. } => StatementFamily::TableDdl,
        SqlStatement::ShowNamespaces
        | SqlStatement::ShowTables { .. }
        | SqlStatement::ShowStats { .. }
        | SqlStatement::ShowStorages
        | SqlStatement::ShowBackups
        | SqlStatement::ShowIndexes { .. }
        | SqlStatement::DescribeTable { .. } => StatementFamily::Show,
        SqlStatement::Standard(s) => match s.as_ref() {
            Statement::Query(_) | Statement::Explain { .. } => StatementFamily::Query,
            Statement::Insert(_) | Statement::Update(_) | Statement::Delete(_) => {
                StatementFamily::Dml
            }
            Statement::AlterTable(_) => StatementFamily::TableDdl,
            other => {
                let text = other.to_string();
                let head: String = text
                    .split_whitespace()
                    .take(2)
                    .collect::<Vec<_>>()
                    .join(" ");
                return Err(CoreError::NotSupported(format!(
                    "Unsupported statement: {head}"
                )));
            }
        },
    })
}
