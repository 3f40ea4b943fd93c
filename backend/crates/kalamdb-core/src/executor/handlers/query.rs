//! SELECT and EXPLAIN on DataFusion, plus SHOW/DESCRIBE (which are queries
//! over system tables). One shared base session; each query clones its state
//! (cheap next to building a `SessionContext`) and sets the caller's namespace.

use super::{
    StatementHandler, StatementOptions, constant_select, key_read, output_names, system_columns,
    unexpected,
};
use crate::app_context::AppContext;
use crate::context::ExecutionContext;
use crate::error::{CoreError, CoreResult};
use crate::providers::catalog::ScopedCatalogs;
use crate::query_scope::QueryScope;
use crate::result::StatementResult;
use async_trait::async_trait;
use datafusion::arrow::datatypes::SchemaRef;
use datafusion::arrow::record_batch::RecordBatch;
use datafusion::common::ScalarValue;
use datafusion::execution::FunctionRegistry;
use datafusion::execution::TaskContext;
use datafusion::execution::context::SQLOptions;
use datafusion::execution::memory_pool::MemoryConsumer;
use datafusion::logical_expr::{Analyze, Explain, LogicalPlan, ScalarUDF};
use datafusion::physical_plan::execute_stream;
use datafusion::sql::parser::Statement as DFStatement;
use futures::StreamExt;
use kalamdb_sql::SqlStatement;
use kalamdb_sql::sqlparser::ast::Statement;
use serde_json::Value as Json;
use std::sync::Arc;

pub struct QueryHandler;

#[async_trait]
impl StatementHandler for QueryHandler {
    async fn execute(
        &self,
        app: &AppContext,
        ctx: &mut ExecutionContext,
        statement: SqlStatement,
        options: &StatementOptions<'_>,
    ) -> CoreResult<StatementResult> {
        match statement {
            SqlStatement::Standard(s) => {
                if let Statement::Query(query) = s.as_ref()
                    && !options.mentions_system_columns
                {
                    if let Some(result) = constant_select::try_execute(query)? {
                        return Ok(result);
                    }
                    if let Some(result) = key_read::try_execute(app, ctx, query, options.params)? {
                        return Ok(result);
                    }
                }
                run_query(
                    app,
                    ctx,
                    *s,
                    options.mentions_system_columns,
                    options.params,
                )
                .await
            }
            other => Err(unexpected(&other)),
        }
    }
}

/// Plans and runs one read-only statement on DataFusion for the caller,
/// binding `$n` placeholders to `params`.
pub async fn run_query(
    app: &AppContext,
    ctx: &ExecutionContext,
    statement: Statement,
    system_columns: bool,
    params: &[Json],
) -> CoreResult<StatementResult> {
    let (schema, batches) = collect_query(app, ctx, statement, system_columns, params).await?;
    Ok(StatementResult::rows(schema, batches))
}

/// A bound parameter as DataFusion sees it.
fn scalar_of(param: &Json) -> ScalarValue {
    match param {
        Json::Null => ScalarValue::Null,
        Json::Bool(b) => ScalarValue::Boolean(Some(*b)),
        Json::Number(n) => match n.as_i64() {
            Some(i) => ScalarValue::Int64(Some(i)),
            None => ScalarValue::Float64(n.as_f64()),
        },
        Json::String(s) => ScalarValue::Utf8(Some(s.clone())),
        other => ScalarValue::Utf8(Some(other.to_string())),
    }
}

/// [`run_query`]'s planning and execution: the output schema and batches,
/// within the caller's time and memory limits.
pub async fn collect_query(
    app: &AppContext,
    ctx: &ExecutionContext,
    statement: Statement,
    system_columns: bool,
    params: &[Json],
) -> CoreResult<(SchemaRef, Vec<RecordBatch>)> {
    within_time_limit(
        app,
        ctx,
        plan_and_collect(app, ctx, statement, system_columns, params),
    )
    .await
}

async fn plan_and_collect(
    app: &AppContext,
    ctx: &ExecutionContext,
    mut statement: Statement,
    system_columns: bool,
    params: &[Json],
) -> CoreResult<(SchemaRef, Vec<RecordBatch>)> {
    if system_columns {
        system_columns::hide_system_columns_in_wildcards(&mut statement, app, ctx);
    }
    let duplicates = output_names::alias_duplicates(&mut statement);
    let mut state = app.session_state().clone();
    state.config_mut().options_mut().catalog.default_schema = ctx.namespace.to_string();
    // now() and friends read the statement's start time, not the base session's.
    state.mark_start_execution();
    // Every table this query resolves, and every catalog listing it reads,
    // is bound to the caller.
    let scope = Arc::new(QueryScope {
        user_id: ctx.user_id.clone(),
        role: ctx.role,
        include_system_columns: system_columns,
    });
    state.register_catalog_list(Arc::new(ScopedCatalogs::new(
        app.catalog.scoped(scope, ctx.table_store(&app.table_store)),
    )));
    for udf in [
        crate::functions::Caller::user(&ctx.username),
        crate::functions::Caller::role(ctx.role.as_str()),
    ] {
        state.register_udf(Arc::new(ScalarUDF::from(udf)))?;
    }
    let mut plan = state
        .statement_to_plan(DFStatement::Statement(Box::new(statement)))
        .await?;
    if !params.is_empty() {
        plan = plan.with_param_values(params.iter().map(scalar_of).collect::<Vec<_>>())?;
    }
    if let LogicalPlan::Explain(Explain { plan: inner, .. })
    | LogicalPlan::Analyze(Analyze { input: inner, .. }) = &plan
        && matches!(inner.as_ref(), LogicalPlan::Dml(_))
    {
        return Err(CoreError::NotSupported(
            "EXPLAIN shows how a query reads; it does not explain INSERT, UPDATE or DELETE".into(),
        ));
    }
    SQLOptions::new()
        .with_allow_ddl(false)
        .with_allow_dml(false)
        .with_allow_statements(false)
        .verify_plan(&plan)?;
    let schema = output_names::restore(plan.schema().as_arrow(), &duplicates);
    let limits = app.options.query_limits.for_role(ctx.role);
    let runtime = limits.runtime(state.runtime_env());
    let task = Arc::new(TaskContext::from(&state).with_runtime(Arc::clone(&runtime)));
    let physical = super::subquery::physical_plan(&state, &plan, &task)
        .await
        .map_err(super::subquery::explain_refusal)?;
    // The collected result counts against the query's memory too.
    let held = MemoryConsumer::new("query result").register(&runtime.memory_pool);
    let mut stream = execute_stream(physical, task)?;
    let mut batches = Vec::new();
    while let Some(batch) = stream.next().await {
        let batch = batch?;
        held.try_grow(batch.get_array_memory_size())?;
        batches.push(output_names::with_schema(batch, &schema, &duplicates)?);
    }
    Ok((schema, batches))
}

/// Runs a query's planning and execution under the caller's time limit; on
/// expiry the work is dropped (DataFusion stops every task of the plan).
async fn within_time_limit<T>(
    app: &AppContext,
    ctx: &ExecutionContext,
    work: impl std::future::Future<Output = CoreResult<T>>,
) -> CoreResult<T> {
    let Some(limit) = app.options.query_limits.for_role(ctx.role).timeout else {
        return work.await;
    };
    match tokio::time::timeout(limit, work).await {
        Ok(result) => result,
        Err(_) => Err(CoreError::QueryTimeout(format!(
            "The query was cancelled after {} ms, the time limit for role '{}' \
             (sql.query_timeout_ms)",
            limit.as_millis(),
            ctx.role.as_str()
        ))),
    }
}
