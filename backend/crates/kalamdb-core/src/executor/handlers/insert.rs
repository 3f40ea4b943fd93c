//! INSERT ... VALUES / SELECT [ON CONFLICT (pk) DO NOTHING | DO UPDATE SET]
//! [RETURNING]. Literal-only VALUES are typed straight from the AST; any
//! other source (a SELECT, VALUES with expressions) is evaluated by DataFusion
//! for the caller and converted with the same rules. Every row is typed and
//! checked (NOT NULL, primary-key uniqueness against storage and within the
//! statement) before anything is written; then all rows go to storage in one
//! atomic batch.

use super::query::collect_query;
use super::returning::{returning_columns, returning_result};
use crate::app_context::AppContext;
use crate::context::ExecutionContext;
use crate::error::{CoreError, CoreResult};
use crate::result::StatementResult;
use crate::row_reader::RowReader;
use crate::rows::coerce::{coerce, literal_of};
use crate::rows::defaults::{ColumnDefault, DefaultContext, compile_default};
use crate::rows::from_arrow::{ColumnValues, convert_column};
use crate::schema::CachedTable;
use crate::table_store::RowScope;
use crate::write_set::{ChangeOp, Read, RowChange, WriteSet};
use kalamdb_commons::{ColumnDefinition, IndexDefinition, Value};
use kalamdb_sql::parsers::normalize;
use kalamdb_sql::sqlparser::ast::{
    AssignmentTarget, ConflictTarget, Expr, Ident, Insert, OnConflictAction, OnInsert, Parens,
    SetExpr, Statement, TableObject,
};
use serde_json::Value as Json;
use std::collections::HashSet;
use std::sync::Arc;

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
    super::resolve_table_object(app, ctx, name)
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
        let index = table.column_index(&column_name)?;
        if positions[index].replace(value_index).is_some() {
            return Err(CoreError::InvalidSql(format!(
                "Column '{column_name}' is named twice"
            )));
        }
    }
    Ok(positions)
}

/// Where an INSERT's rows come from.
enum Source<'a> {
    /// Literal-only `VALUES` (and `$n`): typed straight from the AST.
    Literals(&'a [Parens<Vec<Expr>>]),
    /// Anything else (`SELECT`, `VALUES` with expressions): evaluated by
    /// DataFusion for the caller, each value already converted to the
    /// column it goes to (one `Vec` per row, in source-column order).
    Computed(Vec<Vec<Value>>),
}

impl Source<'_> {
    fn len(&self) -> usize {
        match self {
            Source::Literals(rows) => rows.len(),
            Source::Computed(rows) => rows.len(),
        }
    }

    fn width(&self, row: usize) -> usize {
        match self {
            Source::Literals(rows) => rows[row].len(),
            Source::Computed(rows) => rows[row].len(),
        }
    }

    fn value(
        &self,
        row: usize,
        position: usize,
        column: &ColumnDefinition,
        params: &[Json],
    ) -> CoreResult<Value> {
        match self {
            Source::Literals(rows) => {
                let expr = &rows[row][position];
                match literal_of(expr, params)? {
                    Some(literal) => coerce(&literal, column),
                    None => Err(CoreError::Internal(format!("{expr} is not a literal"))),
                }
            }
            Source::Computed(rows) => Ok(rows[row][position].clone()),
        }
    }

    /// Whether the value at (row, position) is the `DEFAULT` keyword.
    fn is_default(&self, row: usize, position: usize) -> bool {
        matches!(self, Source::Literals(rows) if is_default(&rows[row][position]))
    }

    /// The literal text of a value, for error messages.
    fn shown(&self, row: usize, position: usize) -> Option<String> {
        match self {
            Source::Literals(rows) => rows[row].get(position).map(ToString::to_string),
            Source::Computed(rows) => rows[row].get(position).map(key_text),
        }
    }
}

/// A computed key value as SQL would show it (`7`, `'abc'`), for errors.
fn key_text(value: &Value) -> String {
    match value {
        Value::Null => "NULL".into(),
        Value::Boolean(v) => v.to_string(),
        Value::Int16(v) => v.to_string(),
        Value::Int32(v) => v.to_string(),
        Value::Int64(v) => v.to_string(),
        Value::Text(v) => format!("'{v}'"),
        other => format!("{other:?}"),
    }
}

/// `DEFAULT` written as a value in VALUES.
fn is_default(expr: &Expr) -> bool {
    matches!(expr, Expr::Identifier(i) if i.quote_style.is_none() && i.value.eq_ignore_ascii_case("default"))
}

/// Reads the source of `insert`: literal VALUES directly, anything else
/// through DataFusion.
async fn source_of<'a>(
    app: &AppContext,
    ctx: &ExecutionContext,
    insert: &'a Insert,
    table: &CachedTable,
    positions: &[Option<usize>],
    width: usize,
    params: &[Json],
) -> CoreResult<Source<'a>> {
    let Some(query) = insert.source.as_deref() else {
        return Err(CoreError::NotSupported(
            "INSERT without VALUES or SELECT is not supported".into(),
        ));
    };
    if let SetExpr::Values(values) = query.body.as_ref()
        && query.with.is_none()
        && query.order_by.is_none()
        && query.limit_clause.is_none()
    {
        let mut all_literal = true;
        'rows: for row in &values.rows {
            for expr in row.iter() {
                if !is_default(expr) && literal_of(expr, params)?.is_none() {
                    all_literal = false;
                    break 'rows;
                }
            }
        }
        if all_literal {
            return Ok(Source::Literals(&values.rows));
        }
    }
    // column of the table each source position feeds
    let mut target_of_position = vec![None; width];
    for (column, position) in positions.iter().enumerate() {
        if let Some(p) = position {
            target_of_position[*p] = Some(column);
        }
    }
    let (schema, batches) = collect_query(
        app,
        ctx,
        Statement::Query(Box::new(query.clone())),
        false,
        params,
    )
    .await?;
    if schema.fields().len() != width {
        return Err(CoreError::InvalidSql(format!(
            "The query returns {} column(s) but {} column(s) are targeted",
            schema.fields().len(),
            width
        )));
    }
    let columns = &table.definition.columns;
    let mut rows = Vec::new();
    for batch in &batches {
        let converted: Vec<ColumnValues> = (0..width)
            .map(|p| {
                let column = target_of_position[p]
                    .map(|i| &columns[i])
                    .ok_or_else(|| CoreError::Internal("unmapped insert column".into()))?;
                convert_column(batch.column(p), column)
            })
            .collect::<CoreResult<_>>()?;
        for r in 0..batch.num_rows() {
            rows.push(
                converted
                    .iter()
                    .map(|c| c.get(r))
                    .collect::<CoreResult<Vec<_>>>()?,
            );
        }
    }
    Ok(Source::Computed(rows))
}

/// What to do with a row whose primary key is taken.
enum OnConflict<'a> {
    Error,
    DoNothing,
    /// `(column, value expression)` per assignment.
    DoUpdate(Vec<(usize, &'a Expr)>),
}

/// The clause's action, and the UNIQUE index it names (`None`: the
/// primary key).
fn conflict_action<'a>(
    table: &CachedTable,
    on: Option<&'a OnInsert>,
) -> CoreResult<(OnConflict<'a>, Option<IndexDefinition>)> {
    let Some(on) = on else {
        return Ok((OnConflict::Error, None));
    };
    let OnInsert::OnConflict(conflict) = on else {
        return Err(CoreError::NotSupported(
            "ON DUPLICATE KEY UPDATE is not supported: use ON CONFLICT (pk) DO UPDATE".into(),
        ));
    };
    if table.keyless() {
        return Err(CoreError::NotSupported(format!(
            "ON CONFLICT needs a primary key; table '{}' has none",
            table.definition.table_ref()
        )));
    }
    let key_names: Vec<&str> = table
        .key
        .iter()
        .map(|&i| table.definition.columns[i].name.as_str())
        .collect();
    // the columns of the key or of a built UNIQUE index, in any order
    let same = |names: &[&str], cols: &[Ident]| {
        cols.len() == names.len()
            && names
                .iter()
                .all(|k| cols.iter().any(|c| normalize(c) == *k))
    };
    let target = match &conflict.conflict_target {
        None => None,
        Some(ConflictTarget::Columns(cols)) if same(&key_names, cols) => None,
        Some(ConflictTarget::Columns(cols))
            if let Some(index) = table.definition.indexes.iter().find(|index| {
                let names: Vec<&str> = index
                    .column_ids
                    .iter()
                    .filter_map(|id| table.definition.column_position_of(*id))
                    .map(|p| table.definition.columns[p].name.as_str())
                    .collect();
                index.unique && crate::indexes::ready(index) && same(&names, cols)
            }) =>
        {
            Some(index.clone())
        }
        Some(other) => {
            return Err(CoreError::InvalidSql(format!(
                "ON CONFLICT target {other} must be the primary key ({}) or the columns of a UNIQUE constraint",
                key_names.join(", ")
            )));
        }
    };
    let action = conflict_clause(table, &conflict.action)?;
    Ok((action, target))
}

fn conflict_clause<'a>(
    table: &CachedTable,
    action: &'a OnConflictAction,
) -> CoreResult<OnConflict<'a>> {
    match action {
        OnConflictAction::DoNothing => Ok(OnConflict::DoNothing),
        OnConflictAction::DoUpdate(update) => {
            if update.selection.is_some() {
                return Err(CoreError::NotSupported(
                    "ON CONFLICT DO UPDATE ... WHERE is not supported yet".into(),
                ));
            }
            let mut sets = Vec::with_capacity(update.assignments.len());
            for assignment in &update.assignments {
                let AssignmentTarget::ColumnName(name) = &assignment.target else {
                    return Err(CoreError::NotSupported(
                        "ON CONFLICT DO UPDATE SET (a, b) = ... is not supported".into(),
                    ));
                };
                let column = name
                    .0
                    .last()
                    .and_then(|p| p.as_ident())
                    .map(normalize)
                    .unwrap_or_default();
                let index = table.column_index(&column)?;
                if table.key.contains(&index) {
                    return Err(CoreError::NotSupported(format!(
                        "The primary key '{column}' cannot be updated"
                    )));
                }
                sets.push((index, &assignment.value));
            }
            Ok(OnConflict::DoUpdate(sets))
        }
    }
}

/// The value `expr` gives column `column` in ON CONFLICT DO UPDATE:
/// `EXCLUDED.c` (the row proposed for insertion), `c` / `t.c` (the row
/// already there), or a literal.
fn conflict_value(
    table: &CachedTable,
    column: usize,
    expr: &Expr,
    proposed: &[Value],
    existing: &[Value],
    params: &[Json],
) -> CoreResult<Value> {
    let named =
        |ident: &kalamdb_sql::sqlparser::ast::Ident| table.column_position(&normalize(ident));
    match expr {
        Expr::CompoundIdentifier(parts) if parts.len() == 2 => {
            let Some(i) = named(&parts[1]) else {
                return Err(CoreError::InvalidSql(format!("Unknown column in {expr}")));
            };
            if normalize(&parts[0]) == "excluded" {
                Ok(proposed[i].clone())
            } else {
                Ok(existing[i].clone())
            }
        }
        Expr::Identifier(ident) => named(ident)
            .map(|i| existing[i].clone())
            .ok_or_else(|| CoreError::InvalidSql(format!("Unknown column {expr}"))),
        _ => match literal_of(expr, params)? {
            Some(literal) => coerce(&literal, &table.definition.columns[column]),
            None => Err(CoreError::NotSupported(format!(
                "ON CONFLICT DO UPDATE SET supports EXCLUDED.column, columns and literals, got {expr}"
            ))),
        },
    }
}

pub async fn execute_insert(
    app: &AppContext,
    ctx: &ExecutionContext,
    insert: &Insert,
    params: &[Json],
) -> CoreResult<StatementResult> {
    let table = target_table(app, ctx, insert)?;
    let def = &table.definition;
    crate::table_access::authorize_table(ctx.role, def, true)?;
    let scope = RowScope::for_table(def, &ctx.user_id)?;
    let (conflict, on_unique) = conflict_action(&table, insert.on.as_ref())?;
    let returning = insert
        .returning
        .as_deref()
        .map(|items| returning_columns(&table, items))
        .transpose()?;
    let positions = column_positions(&table, insert)?;
    let width = if insert.columns.is_empty() {
        def.columns.len()
    } else {
        insert.columns.len()
    };
    let source = source_of(app, ctx, insert, &table, &positions, width, params).await?;
    let reader = RowReader::new(
        Arc::clone(&table),
        ctx.table_store(&app.table_store),
        &scope,
    );

    // Defaults are compiled once per statement; generators run per row.
    let defaults: Vec<ColumnDefault> = def
        .columns
        .iter()
        .map(|c| match c.default {
            Some(_) => compile_default(c),
            None => Ok(ColumnDefault::Null),
        })
        .collect::<CoreResult<_>>()?;
    let default_ctx = DefaultContext::new(&ctx.username, ctx.role.as_str(), &app.snowflake);
    let statement = Prepared {
        table: &table,
        source: &source,
        positions: &positions,
        width,
        defaults: &defaults,
        default_ctx: &default_ctx,
        conflict: &conflict,
        on_unique: on_unique.as_ref(),
        returning: returning.as_deref(),
        reader: &reader,
        params,
    };
    // A commit that finds a key it saw free taken (or a row it updates
    // replaced) fails with WRITE_CONFLICT: a single statement then writes
    // again from the same source rows, now seeing the other commit's row
    // (so it reports the duplicate, or applies its ON CONFLICT clause);
    // inside a transaction COMMIT reports it.
    let mut attempt = 1;
    loop {
        match statement.write(app, ctx).await {
            Err(CoreError::WriteConflict(_))
                if ctx.transaction.is_none() && attempt < crate::executor::WRITE_ATTEMPTS =>
            {
                attempt += 1;
                tokio::task::yield_now().await;
            }
            done => return done,
        }
    }
}

/// An INSERT, checked and with its source rows, ready to be written.
struct Prepared<'a> {
    table: &'a CachedTable,
    source: &'a Source<'a>,
    positions: &'a [Option<usize>],
    width: usize,
    defaults: &'a [ColumnDefault],
    default_ctx: &'a DefaultContext<'a>,
    conflict: &'a OnConflict<'a>,
    /// ON CONFLICT names this UNIQUE index, not the primary key.
    on_unique: Option<&'a IndexDefinition>,
    returning: Option<&'a [usize]>,
    reader: &'a RowReader,
    params: &'a [Json],
}

impl Prepared<'_> {
    /// Builds the rows, checks their keys and commits them (once).
    async fn write(&self, app: &AppContext, ctx: &ExecutionContext) -> CoreResult<StatementResult> {
        let Prepared {
            table,
            source,
            positions,
            width,
            defaults,
            default_ctx,
            conflict,
            on_unique,
            returning,
            reader,
            params,
        } = *self;
        let def = &table.definition;
        let scope = RowScope::for_table(def, &ctx.user_id)?;
        let count = source.len();
        let mut set = WriteSet::with_capacity(def, scope, count);
        let mut keys = Vec::with_capacity(count);
        let mut rows: Vec<Vec<Value>> = Vec::with_capacity(count);
        let mut seqs = Vec::with_capacity(count);
        for row_number in 0..count {
            if source.width(row_number) != width {
                return Err(CoreError::InvalidSql(format!(
                    "Row {} has {} value(s) but {} column(s) are targeted",
                    row_number + 1,
                    source.width(row_number),
                    width
                )));
            }
            let mut values: Vec<Value> = Vec::with_capacity(def.columns.len());
            for (i, column) in def.columns.iter().enumerate() {
                let value = match positions[i] {
                    Some(p) if source.is_default(row_number, p) => {
                        defaults[i].value(column, default_ctx)?
                    }
                    Some(p) => source.value(row_number, p, column, params)?,
                    None => defaults[i].value(column, default_ctx)?,
                };
                super::check_not_null(def, column, &value)?;
                values.push(value);
            }
            let seq = app.snowflake.next_id();
            let key = match table.keyless() {
                false => set.key_of_row(&values)?,
                true => set.key_of_seq(seq),
            };
            keys.push(key);
            rows.push(values);
            seqs.push(seq);
        }

        // the key's values as the statement wrote them, for an error
        let shown_pk = |i: usize| -> Option<String> {
            let shown = table
                .key
                .iter()
                .map(|&k| positions[k].and_then(|p| source.shown(i, p)))
                .collect::<Option<Vec<String>>>()?;
            Some(match shown.as_slice() {
                [one] => one.clone(),
                many => format!("({})", many.join(", ")),
            })
        };
        // what each row's key holds: a keyless row's key is its fresh `_seq`
        let mut slots = vec![Read::Nothing; count];
        if !table.keyless() {
            let mut seen = HashSet::with_capacity(keys.len());
            for (i, key) in keys.iter().enumerate() {
                if !seen.insert(key.as_slice()) {
                    return Err(duplicate(table, shown_pk(i)));
                }
            }
            // A soft-deleted row's key is free again.
            set.read_at = Some(app.writes.committed());
            slots = reader.slots(&keys)?;
        }

        for (i, (key, mut values)) in keys.into_iter().zip(rows).enumerate() {
            let mut op = ChangeOp::Insert;
            let mut old_values = None;
            // the commit checks the key is still free (or the row still the one
            // updated): a concurrent INSERT of the same key loses with
            // WRITE_CONFLICT, and its re-run sees the row
            let mut read = slots[i];
            // ON CONFLICT (unique columns): the row holding the values
            // takes the action; a clash of the key alone stays an error
            let mut action = conflict;
            if let Some(index) = on_unique {
                match unique_holder(reader, index, &key, &values)? {
                    Some(holder) if holder != key => match conflict {
                        OnConflict::DoUpdate(sets) => {
                            if let Some((seq, current)) = reader.get_versioned(&holder)? {
                                let updated = updated_row(table, sets, &values, &current, params)?;
                                set.push(RowChange {
                                    op: ChangeOp::Update,
                                    key: holder,
                                    moved_from: None,
                                    seq: seqs[i],
                                    values: updated,
                                    old_values: Some(current),
                                    read: Read::Row(seq),
                                });
                                continue;
                            }
                        }
                        _ => continue,
                    },
                    Some(_) => {}
                    None => action = &OnConflict::Error,
                }
            }
            if let Read::Row(_) = read {
                match action {
                    OnConflict::Error => return Err(duplicate(table, shown_pk(i))),
                    OnConflict::DoNothing => continue,
                    OnConflict::DoUpdate(sets) => match reader.get_versioned(&key)? {
                        // deleted since: an insert, of a key that must stay free
                        None => read = Read::Free(None),
                        Some((seq, current)) => {
                            read = Read::Row(seq);
                            values = updated_row(table, sets, &values, &current, params)?;
                            op = ChangeOp::Update;
                            old_values = Some(current);
                        }
                    },
                }
            }
            set.push(RowChange {
                op,
                key,
                moved_from: None,
                seq: seqs[i],
                values,
                old_values,
                read,
            });
        }
        let affected = set.len();
        let written: Vec<Vec<u8>> = match returning {
            Some(_) => set.changes.iter().map(|c| set.encode(c)).collect(),
            None => Vec::new(),
        };
        app.writes
            .commit(ctx.transaction.as_deref(), vec![set])
            .await?;
        let message = format!("Inserted {affected} row(s)");
        match returning {
            Some(indices) => returning_result(table, indices, &written, message),
            None => Ok(StatementResult::affected(affected, message)),
        }
    }
}

/// `current` with ON CONFLICT DO UPDATE's `sets` applied (`proposed`: the
/// row the INSERT wanted, EXCLUDED).
fn updated_row(
    table: &CachedTable,
    sets: &[(usize, &Expr)],
    proposed: &[Value],
    current: &[Value],
    params: &[Json],
) -> CoreResult<Vec<Value>> {
    let def = &table.definition;
    let mut updated = current.to_vec();
    for (column, expr) in sets {
        updated[*column] = conflict_value(table, *column, expr, proposed, current, params)?;
    }
    for (column, value) in def.columns.iter().zip(&updated) {
        super::check_not_null(def, column, value)?;
    }
    Ok(updated)
}

/// The key of the row holding `values` in unique index `index` (the row
/// `key` of the same partition would clash with), if any; values with a
/// NULL clash with nothing.
fn unique_holder(
    reader: &RowReader,
    index: &IndexDefinition,
    key: &[u8],
    values: &[Value],
) -> CoreResult<Option<Vec<u8>>> {
    let def = &reader.table().definition;
    let (entry, _, unique) = crate::indexes::row_entry(def, index, key, values)?;
    let Some(values_end) = unique else {
        return Ok(None);
    };
    let prefix = &entry[..values_end];
    let end = kalamdb_store::backend::prefix_end(prefix)
        .ok_or_else(|| CoreError::Internal("unbounded index prefix".into()))?;
    let mut tail = None;
    reader
        .store()
        .scan_index(prefix, &end, false, &mut |_, t| {
            tail = Some(t.to_vec());
            Ok(false)
        })?;
    let Some(tail) = tail else {
        return Ok(None);
    };
    let (_, tail_at) = crate::indexes::scope_of_row_key(def, key)
        .ok_or_else(|| CoreError::Internal("a row key without its partition".into()))?;
    let mut holder = key[..tail_at].to_vec();
    holder.extend_from_slice(&tail);
    Ok(Some(holder))
}

fn duplicate(table: &CachedTable, value: Option<String>) -> CoreError {
    let names: Vec<&str> = table
        .key
        .iter()
        .map(|&i| table.definition.columns[i].name.as_str())
        .collect();
    let pk = match names.as_slice() {
        [] => "_seq".to_string(),
        [one] => one.to_string(),
        many => format!("({})", many.join(", ")),
    };
    CoreError::UniqueViolation(format!(
        "Duplicate key value violates unique constraint on {}.{pk}{}",
        table.definition.table_ref(),
        value
            .map(|v| format!(": {v} already exists"))
            .unwrap_or_default()
    ))
}
