//! UPDATE and DELETE on USER and SHARED tables.
//!
//! Which rows, and their new values, are found by a query planned on
//! DataFusion for the caller (`SELECT key, new values FROM t WHERE NOT
//! _deleted AND (cond)`), so the WHERE clause is full SQL and a USER table is
//! only ever read in the caller's own partition. Each matched row is then
//! re-read from storage, changed, given a new `_seq`, and all of them are
//! written in one atomic batch. DELETE is soft: the row stays with
//! `_deleted = true` (hidden from queries that do not name `_deleted`).
//! A table without a primary key is keyed by `_seq`, so its rows move to
//! their new `_seq` key.
//!
//! The common case — `WHERE pk = literal` setting literal values, or
//! deleting by primary key — skips DataFusion: one key read, one write, the
//! same values and errors as the general path.

use super::key_read::pk_equality;
use super::query::collect_query;
use crate::app_context::AppContext;
use crate::context::ExecutionContext;
use crate::error::{CoreError, CoreResult};
use crate::result::StatementResult;
use crate::row_reader::RowReader;
use crate::rows::coerce::{coerce, literal_of};
use crate::rows::from_arrow::{ColumnValues, convert_column, stored_value};
use crate::schema::CachedTable;
use crate::table_store::RowScope;
use crate::write_set::{ChangeOp, Read, RowChange, WriteSet};
use datafusion::arrow::record_batch::RecordBatch;
use kalamdb_commons::Value;
use kalamdb_sql::parsers::normalize;
use kalamdb_sql::sqlparser::ast::{
    AssignmentTarget, Delete, Expr, FromTable, TableFactor, TableWithJoins, Update,
};
use kalamdb_sql::sqlparser::dialect::GenericDialect;
use kalamdb_sql::sqlparser::parser::Parser;
use serde_json::Value as Json;
use std::sync::Arc;

struct Target {
    table: Arc<CachedTable>,
    /// The caller's rows (through its transaction's view inside BEGIN …
    /// COMMIT).
    reader: RowReader,
    /// `"ns"."t" [AS alias]`, for the matching query.
    from: String,
    scope: RowScope,
}

fn quote(ident: &str) -> String {
    format!("\"{}\"", ident.replace('"', "\"\""))
}

fn not_supported(what: &str) -> CoreError {
    CoreError::NotSupported(format!("{what} is not supported yet"))
}

fn target_of(
    app: &AppContext,
    ctx: &ExecutionContext,
    target: &TableWithJoins,
) -> CoreResult<Target> {
    if !target.joins.is_empty() {
        return Err(not_supported("UPDATE/DELETE with a join"));
    }
    let TableFactor::Table { name, alias, .. } = &target.relation else {
        return Err(CoreError::InvalidSql(format!(
            "'{}' is not a table",
            target.relation
        )));
    };
    let table = super::resolve_table_object(app, ctx, name)?;
    let def = &table.definition;
    crate::table_access::authorize_table(ctx.role, def, true)?;
    let scope = RowScope::for_table(def, &ctx.user_id)?;
    let mut from = format!("{}.{}", quote(def.namespace.as_str()), quote(&def.name));
    if let Some(alias) = alias {
        from.push_str(&format!(" AS {}", quote(&normalize(&alias.name))));
    }
    Ok(Target {
        reader: RowReader::new(
            Arc::clone(&table),
            ctx.table_store(&app.table_store),
            &scope,
        ),
        scope,
        table,
        from,
    })
}

/// Runs `SELECT key, extra..., _seq FROM target WHERE NOT _deleted AND
/// (cond)` for the caller.
async fn matching(
    app: &AppContext,
    ctx: &ExecutionContext,
    target: &Target,
    extra: &[String],
    selection: Option<&Expr>,
    params: &[Json],
) -> CoreResult<Vec<RecordBatch>> {
    // the key's columns (or `_seq`) first: `rewrite` reads them
    let key = match target.table.keyless() {
        false => target
            .table
            .key
            .iter()
            .map(|&i| quote(&target.table.definition.columns[i].name))
            .collect::<Vec<_>>()
            .join(", "),
        true => kalamdb_commons::SEQ_COLUMN.to_string(),
    };
    let mut sql = format!("SELECT {key}");
    for e in extra {
        sql.push_str(", ");
        sql.push_str(e);
    }
    // last: the version each row was read at (see `rewrite_row`)
    sql.push_str(", ");
    sql.push_str(kalamdb_commons::SEQ_COLUMN);
    sql.push_str(&format!(
        " FROM {} WHERE NOT {}",
        target.from,
        kalamdb_commons::DELETED_COLUMN
    ));
    if let Some(cond) = selection {
        sql.push_str(&format!(" AND ({cond})"));
    }
    let statement = Parser::new(&GenericDialect {})
        .try_with_sql(&sql)
        .and_then(|mut p| p.parse_statement())
        .map_err(|e| CoreError::InvalidSql(e.to_string()))?;
    let (_, batches) = collect_query(app, ctx, statement, true, params).await?;
    Ok(batches)
}

/// Describes the rewrite of the live row under `old_key` (`change` edits
/// its values, `deleted` soft-deletes it) with a new `_seq`; false if there
/// is no live row there. `read_at`: the `_seq` of the version `change`'s
/// values were computed from, which must still be the stored one.
fn rewrite_row(
    app: &AppContext,
    target: &Target,
    out: &mut Written,
    old_key: Vec<u8>,
    read_at: Option<i64>,
    deleted: bool,
    change: impl FnOnce(&mut [Value]) -> CoreResult<()>,
) -> CoreResult<bool> {
    let table = &target.table;
    let def = &table.definition;
    let Some((read_seq, old_values)) = target.reader.get_versioned(&old_key)? else {
        return Ok(false);
    };
    if read_at.is_some_and(|seq| seq != read_seq) {
        // the new values were computed from a version since replaced
        return Err(CoreError::WriteConflict(format!(
            "A row of table {} changed while this statement was computing it; run it again",
            def.table_ref()
        )));
    }
    let mut values = old_values.clone();
    change(&mut values)?;
    for (column, value) in def.columns.iter().zip(&values) {
        super::check_not_null(def, column, value)?;
    }
    let seq = app.snowflake.next_id();
    let (key, moved_from) = match table.keyless() {
        false => (old_key, None),
        true => (out.set.key_of_seq(seq), Some(old_key)),
    };
    out.set.push(RowChange {
        op: if deleted {
            ChangeOp::Delete
        } else {
            ChangeOp::Update
        },
        key,
        moved_from,
        seq,
        values,
        old_values: Some(old_values),
        read: Read::Row(read_seq),
    });
    Ok(true)
}

/// What a statement changes, and whether it returns the rows (RETURNING).
struct Written {
    set: WriteSet,
    returning: bool,
}

impl Written {
    fn new(target: &Target, returning: bool) -> Self {
        Self {
            set: WriteSet::new(&target.table.definition, target.scope.clone()),
            returning,
        }
    }
}

/// Rewrites each matched row (`change` edits its values) into one batch.
async fn rewrite(
    app: &AppContext,
    target: &Target,
    out: &mut Written,
    batches: &[RecordBatch],
    deleted: bool,
    mut change: impl FnMut(usize, usize, &mut [Value]) -> CoreResult<()>,
) -> CoreResult<()> {
    let key_width = target.table.key.len().max(1);
    for (b, record_batch) in batches.iter().enumerate() {
        let read_at = record_batch
            .column(record_batch.num_columns() - 1)
            .as_any()
            .downcast_ref::<datafusion::arrow::array::Int64Array>()
            .ok_or_else(|| CoreError::Internal("_seq is not a BIGINT".into()))?;
        for row in 0..record_batch.num_rows() {
            let key_values = (0..key_width)
                .map(|c| stored_value(record_batch.column(c).as_ref(), row))
                .collect::<CoreResult<Vec<Value>>>()?;
            let old_key = match (target.table.keyless(), key_values.as_slice()) {
                (false, key) => out.set.key_of(key)?,
                (true, [Value::Int64(seq)]) => out.set.key_of_seq(*seq),
                (true, _) => return Err(CoreError::Internal("_seq is not a BIGINT".into())),
            };
            let read_at = Some(read_at.value(row));
            rewrite_row(app, target, out, old_key, read_at, deleted, |v| {
                change(b, row, v)
            })?;
        }
    }
    Ok(())
}

/// Commits what the statement changed (the write funnel) and builds its
/// reply.
async fn commit(
    app: &AppContext,
    ctx: &ExecutionContext,
    target: &Target,
    out: Written,
    returning: Option<Vec<usize>>,
    verb: &str,
) -> CoreResult<StatementResult> {
    let count = out.set.len();
    let rows: Vec<Vec<u8>> = match out.returning {
        true => out.set.changes.iter().map(|c| out.set.encode(c)).collect(),
        false => Vec::new(),
    };
    app.writes
        .commit(ctx.transaction.as_deref(), vec![out.set])
        .await?;
    let message = format!("{verb} {count} row(s)");
    match returning {
        Some(indices) => {
            super::returning::returning_result(&target.table, &indices, &rows, message)
        }
        None => Ok(StatementResult::affected(count, message)),
    }
}

/// `WHERE pk = literal` (for a key of several columns: `a = x AND b = y`,
/// one equality per key column) with only literal (or `$n`) values to set:
/// one key read and one write, no DataFusion planning. `None` when the
/// statement does not have that shape.
async fn by_primary_key(
    app: &AppContext,
    target: &Target,
    out: &mut Written,
    selection: Option<&Expr>,
    params: &[Json],
    deleted: bool,
    sets: &[(usize, &Expr)],
) -> CoreResult<bool> {
    let table = &target.table;
    if table.keyless() {
        return Ok(false);
    }
    let Some(key_values) = pk_equality(table, selection, params)? else {
        return Ok(false);
    };
    let mut values = Vec::with_capacity(sets.len());
    for (i, expr) in sets {
        let Some(literal) = literal_of(expr, params)? else {
            return Ok(false);
        };
        values.push((*i, coerce(&literal, &table.definition.columns[*i])?));
    }
    let key = out.set.key_of(&key_values)?;
    rewrite_row(app, target, out, key, None, deleted, |row| {
        for (i, v) in values {
            row[i] = v;
        }
        Ok(())
    })?;
    Ok(true)
}

pub async fn execute_update(
    app: &AppContext,
    ctx: &ExecutionContext,
    update: &Update,
    params: &[Json],
) -> CoreResult<StatementResult> {
    if update.from.is_some() {
        return Err(not_supported("UPDATE ... FROM"));
    }
    if update.limit.is_some() || !update.order_by.is_empty() || update.or.is_some() {
        return Err(not_supported("UPDATE with ORDER BY, LIMIT or OR"));
    }
    let target = target_of(app, ctx, &update.table)?;
    let table = &target.table;
    let returning = update
        .returning
        .as_deref()
        .map(|items| super::returning::returning_columns(table, items))
        .transpose()?;
    let mut out = Written::new(&target, returning.is_some());
    let mut assigned: Vec<usize> = Vec::with_capacity(update.assignments.len());
    let mut exprs = Vec::with_capacity(update.assignments.len());
    for assignment in &update.assignments {
        let AssignmentTarget::ColumnName(name) = &assignment.target else {
            return Err(not_supported("UPDATE ... SET (a, b) = ..."));
        };
        let column = name
            .0
            .last()
            .and_then(|p| p.as_ident())
            .map(normalize)
            .ok_or_else(|| CoreError::InvalidSql(format!("Invalid column name '{name}'")))?;
        let index = table.column_index(&column)?;
        if table.key.contains(&index) {
            return Err(CoreError::NotSupported(format!(
                "The primary key '{column}' cannot be updated: DELETE the row and INSERT it again"
            )));
        }
        if assigned.contains(&index) {
            return Err(CoreError::InvalidSql(format!(
                "Column '{column}' is assigned twice"
            )));
        }
        assigned.push(index);
        exprs.push(assignment.value.to_string());
    }
    let sets: Vec<(usize, &Expr)> = assigned
        .iter()
        .zip(&update.assignments)
        .map(|(i, a)| (*i, &a.value))
        .collect();
    if by_primary_key(
        app,
        &target,
        &mut out,
        update.selection.as_ref(),
        params,
        false,
        &sets,
    )
    .await?
    {
        return commit(app, ctx, &target, out, returning, "Updated").await;
    }
    let batches = matching(app, ctx, &target, &exprs, update.selection.as_ref(), params).await?;
    let columns = &table.definition.columns;
    let key_width = table.key.len().max(1);
    let converted: Vec<Vec<ColumnValues>> = batches
        .iter()
        .map(|b| {
            assigned
                .iter()
                .enumerate()
                .map(|(j, &i)| convert_column(b.column(key_width + j), &columns[i]))
                .collect()
        })
        .collect::<CoreResult<_>>()?;
    rewrite(app, &target, &mut out, &batches, false, |b, row, values| {
        for (j, &i) in assigned.iter().enumerate() {
            values[i] = converted[b][j].get(row)?;
        }
        Ok(())
    })
    .await?;
    commit(app, ctx, &target, out, returning, "Updated").await
}

pub async fn execute_delete(
    app: &AppContext,
    ctx: &ExecutionContext,
    delete: &Delete,
    params: &[Json],
) -> CoreResult<StatementResult> {
    if delete.using.is_some()
        || !delete.tables.is_empty()
        || delete.limit.is_some()
        || !delete.order_by.is_empty()
    {
        return Err(not_supported(
            "DELETE with USING, several tables, ORDER BY or LIMIT",
        ));
    }
    let (FromTable::WithFromKeyword(from) | FromTable::WithoutKeyword(from)) = &delete.from;
    let [target] = from.as_slice() else {
        return Err(not_supported("DELETE from several tables"));
    };
    let target = target_of(app, ctx, target)?;
    let returning = delete
        .returning
        .as_deref()
        .map(|items| super::returning::returning_columns(&target.table, items))
        .transpose()?;
    let mut out = Written::new(&target, returning.is_some());
    let selection = delete.selection.as_ref();
    if !by_primary_key(app, &target, &mut out, selection, params, true, &[]).await? {
        let batches = matching(app, ctx, &target, &[], selection, params).await?;
        rewrite(app, &target, &mut out, &batches, true, |_, _, _| Ok(())).await?;
    }
    commit(app, ctx, &target, out, returning, "Deleted").await
}
