//! INSERT ... VALUES. Every row is typed and checked (NOT NULL, primary-key
//! uniqueness against storage and within the statement) before anything is
//! written; then all rows go to storage in one atomic batch.

use super::{StatementHandler, StatementOptions, unexpected};
use crate::app_context::AppContext;
use crate::context::ExecutionContext;
use crate::error::{CoreError, CoreResult};
use crate::executor::StatementResult;
use crate::rows::coerce::{coerce, default_value, literal_of};
use crate::schema::CachedTable;
use crate::table_store::{RowScope, partition_prefix, row_key};
use async_trait::async_trait;
use kalamdb_commons::{ColumnDefinition, Value};
use kalamdb_sql::SqlStatement;
use kalamdb_sql::parsers::normalize;
use kalamdb_sql::sqlparser::ast::{Expr, Insert, SetExpr, Statement, TableObject};
use kalamdb_store::keys::KeyBuilder;
use kalamdb_store::row::encode_row;
use kalamdb_store::{Batch, Partition};
use serde_json::Value as Json;
use std::collections::HashSet;
use std::sync::Arc;

pub struct DmlHandler;

#[async_trait]
impl StatementHandler for DmlHandler {
    async fn execute(
        &self,
        app: &AppContext,
        ctx: &mut ExecutionContext,
        statement: SqlStatement,
        options: &StatementOptions<'_>,
    ) -> CoreResult<StatementResult> {
        match statement {
            SqlStatement::Standard(s) => match *s {
                Statement::Insert(insert) => {
                    execute_insert(app, ctx, &insert, options.params).await
                }
                Statement::Update(update) => {
                    super::update_delete::execute_update(app, ctx, &update, options.params).await
                }
                Statement::Delete(delete) => {
                    super::update_delete::execute_delete(app, ctx, &delete, options.params).await
                }
                other => Err(unexpected(&SqlStatement::Standard(Box::new(other)))),
            },
            other => Err(unexpected(&other)),
        }
    }
}

fn target_table(
    app: &AppContext,
    ctx: &ExecutionContext,
    insert: &Insert,
) -> CoreResult<Arc<CachedTable>> {
    let TableObject::TableName(name) = &insert.table else {
        return Err(CoreError::NotSupported(
            "INSERT INTO a table function is not supported".into(),
        ));
    };
    super::resolve_table(app, ctx, name)
}

/// For each declared column, the position of its value in a VALUES row.
fn column_positions(table: &CachedTable, insert: &Insert) -> CoreResult<Vec<Option<usize>>> {
    let columns = &table.definition.columns;
    if insert.columns.is_empty() {
        return Ok((0..columns.len()).map(Some).collect());
    }
    let mut positions = vec![None; columns.len()];
    for (value_index, name) in insert.columns.iter().enumerate() {
        let ident = name
            .0
            .last()
            .and_then(|p| p.as_ident())
            .ok_or_else(|| CoreError::InvalidSql(format!("Invalid column name '{name}'")))?;
        let column_name = normalize(ident);
        let index = table.column_position(&column_name).ok_or_else(|| {
            CoreError::InvalidSql(format!(
                "Column '{column_name}' does not exist in table '{}'",
                table.definition.table_ref()
            ))
        })?;
        if positions[index].replace(value_index).is_some() {
            return Err(CoreError::InvalidSql(format!(
                "Column '{column_name}' is named twice"
            )));
        }
    }
    Ok(positions)
}

fn value_of(expr: &Expr, column: &ColumnDefinition, params: &[Json]) -> CoreResult<Value> {
    match literal_of(expr, params)? {
        Some(literal) => coerce(&literal, column),
        None => Err(CoreError::NotSupported(format!(
            "Column '{}': only literal values and $n parameters are supported in INSERT ... VALUES yet, got {expr}",
            column.name
        ))),
    }
}

pub async fn execute_insert(
    app: &AppContext,
    ctx: &ExecutionContext,
    insert: &Insert,
    params: &[Json],
) -> CoreResult<StatementResult> {
    if insert.on.is_some() {
        return Err(CoreError::NotSupported(
            "INSERT ... ON CONFLICT is not supported yet".into(),
        ));
    }
    if insert.returning.is_some() {
        return Err(CoreError::NotSupported(
            "INSERT ... RETURNING is not supported yet".into(),
        ));
    }
    let table = target_table(app, ctx, insert)?;
    let def = &table.definition;
    crate::executor::authorization::authorize_table(ctx.role, def, true)?;
    let scope = RowScope::for_table(def, &ctx.user_id)?;
    let rows = match insert.source.as_deref().map(|q| q.body.as_ref()) {
        Some(SetExpr::Values(values)) => &values.rows,
        _ => {
            return Err(CoreError::NotSupported(
                "Only INSERT ... VALUES is supported yet".into(),
            ));
        }
    };
    let positions = column_positions(&table, insert)?;
    let width = if insert.columns.is_empty() {
        def.columns.len()
    } else {
        insert.columns.len()
    };
    let prefix = partition_prefix(def.table_id, &scope);

    // Defaults are computed once per statement (they are literals).
    let mut defaults: Vec<Option<Value>> = vec![None; def.columns.len()];
    for (i, column) in def.columns.iter().enumerate() {
        if positions[i].is_none() {
            defaults[i] = Some(default_value(column)?);
        }
    }

    let mut keys = Vec::with_capacity(rows.len());
    let mut encoded = Vec::with_capacity(rows.len());
    let mut values: Vec<Value> = Vec::with_capacity(def.columns.len());
    for (row_number, row) in rows.iter().enumerate() {
        if row.len() != width {
            return Err(CoreError::InvalidSql(format!(
                "Row {} has {} value(s) but {} column(s) are targeted",
                row_number + 1,
                row.len(),
                width
            )));
        }
        values.clear();
        for (i, column) in def.columns.iter().enumerate() {
            let value = match positions[i] {
                Some(p) => value_of(&row[p], column, params)?,
                None => defaults[i].clone().unwrap_or(Value::Null),
            };
            super::check_not_null(def, column, &value)?;
            values.push(value);
        }
        let seq = app.snowflake.next_id();
        let key = match table.primary_key {
            Some(pk) => row_key(&prefix, &values[pk])?,
            None => KeyBuilder::with_capacity(prefix.len() + 8)
                .raw(&prefix)
                .i64(seq)
                .build(),
        };
        encoded.push(encode_row(
            def.schema_version,
            seq,
            false,
            def.columns.iter().map(|c| c.column_id).zip(values.iter()),
        ));
        keys.push(key);
    }

    if let Some(pk) = table.primary_key {
        let mut seen = HashSet::with_capacity(keys.len());
        for (i, key) in keys.iter().enumerate() {
            if !seen.insert(key.as_slice()) {
                return Err(duplicate(&table, rows[i].get(positions[pk].unwrap_or(0))));
            }
        }
        // A soft-deleted row's key is free again.
        let existing = app.table_store.live_many(&keys)?;
        if let Some(i) = existing.iter().position(|e| *e) {
            return Err(duplicate(&table, rows[i].get(positions[pk].unwrap_or(0))));
        }
    }

    let count = keys.len();
    let mut batch = Batch::with_capacity(count);
    for (key, value) in keys.into_iter().zip(encoded) {
        batch.put(Partition::Data, key, value);
    }
    app.table_store.write_async(batch).await?;
    Ok(StatementResult::affected(
        count,
        format!("Inserted {count} row(s)"),
    ))
}

fn duplicate(table: &CachedTable, value: Option<&Expr>) -> CoreError {
    let pk = table
        .primary_key
        .map(|i| table.definition.columns[i].name.as_str())
        .unwrap_or("_seq");
    CoreError::UniqueViolation(format!(
        "Duplicate key value violates unique constraint on {}.{pk}{}",
        table.definition.table_ref(),
        value
            .map(|v| format!(": {v} already exists"))
            .unwrap_or_default()
    ))
}
