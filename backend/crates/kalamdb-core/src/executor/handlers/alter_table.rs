//! ALTER TABLE: ADD / DROP / RENAME COLUMN, MODIFY COLUMN / ALTER COLUMN
//! (widening types, SET/DROP NOT NULL, SET/DROP DEFAULT) and
//! SET TBLPROPERTIES; ADD [CONSTRAINT name] UNIQUE (columns), which is
//! CREATE UNIQUE INDEX (built over the existing rows). Each statement writes a new schema version and swaps
//! the cached definition in one step (under the DDL lock), so a concurrent
//! statement sees the old or the new schema, never a mix. No row is
//! rewritten: rows are stored by column id, so a dropped column's values are
//! ignored, a renamed column keeps its id, a widened one is widened when
//! read, and rows written before an ADD COLUMN read its literal DEFAULT (or
//! NULL).

use crate::app_context::AppContext;
use crate::context::ExecutionContext;
use crate::error::{CoreError, CoreResult};
use crate::result::StatementResult;
use crate::row_reader::RowReader;
use crate::rows::defaults::{ColumnDefault, compile_default};
use crate::schema::CachedTable;
use kalamdb_commons::{
    ColumnDefinition, DELETED_COLUMN, KalamDataType, SEQ_COLUMN, TableDefinition, TableType,
};
use kalamdb_sql::parsers::normalize;
use kalamdb_sql::parsers::table::{apply_table_option, column_spec};
use kalamdb_sql::sqlparser::ast::{
    AlterColumnOperation, AlterTable, AlterTableOperation, ColumnOption, Expr, Ident,
    TableConstraint,
};
use kalamdb_sql::types::kalam_type;
use kalamdb_store::Batch;
use std::sync::Arc;

fn invalid(message: String) -> CoreError {
    CoreError::InvalidSql(message)
}

/// Whether a stored value of type `from` reads correctly as `to`.
fn widens(from: KalamDataType, to: KalamDataType) -> bool {
    use KalamDataType as T;
    from == to
        || matches!(
            (from, to),
            (T::SmallInt, T::Int | T::BigInt)
                | (T::Int, T::BigInt | T::Double)
                | (T::Float, T::Double)
                | (T::Timestamp, T::DateTime)
                | (T::DateTime, T::Timestamp)
        )
}

/// Whether the table holds any row (of any user, soft-deleted included).
fn has_rows(app: &AppContext, table: &Arc<CachedTable>) -> CoreResult<bool> {
    let reader = RowReader::all_partitions(Arc::clone(table), app.table_store.clone());
    let mut any = false;
    reader.scan_rows(reader.start(), true, &mut |_, _| {
        any = true;
        Ok(false)
    })?;
    Ok(any)
}

pub async fn alter_table(
    app: &AppContext,
    ctx: &ExecutionContext,
    alter: &AlterTable,
) -> CoreResult<StatementResult> {
    if let [AlterTableOperation::AddConstraint { constraint, .. }] = alter.operations.as_slice() {
        return add_constraint(app, ctx, alter, constraint).await;
    }
    let _ddl = app.ddl_lock.lock().await;
    let table = match super::resolve_table_object(app, ctx, &alter.name) {
        Ok(t) => t,
        Err(CoreError::TableNotFound(_)) if alter.if_exists => {
            return Ok(StatementResult::message(format!(
                "Table '{}' does not exist",
                alter.name
            )));
        }
        Err(e) => return Err(e),
    };
    let mut def = table.definition.clone();
    if matches!(def.table_type, TableType::Stream | TableType::System) {
        return Err(CoreError::NotSupported(format!(
            "{} tables cannot be altered",
            def.table_type
        )));
    }
    // Column ids are never reused, even after DROP COLUMN.
    let mut next_id = app
        .meta
        .table_versions(def.table_id)?
        .iter()
        .flat_map(|v| v.columns.iter().map(|c| c.column_id))
        .chain(def.columns.iter().map(|c| c.column_id))
        .max()
        .unwrap_or(0)
        + 1;
    let position = |def: &kalamdb_commons::TableDefinition, ident: &Ident| {
        let name = normalize(ident);
        def.columns
            .iter()
            .position(|c| c.name == name)
            .ok_or_else(|| {
                invalid(format!(
                    "Column '{name}' does not exist in table '{}'",
                    def.table_ref()
                ))
            })
    };
    let mut changes = Vec::new();
    for op in &alter.operations {
        match op {
            AlterTableOperation::AddColumn {
                if_not_exists,
                column_def,
                column_position: None,
                ..
            } => {
                let spec =
                    column_spec(column_def.clone(), &[]).map_err(|e| invalid(e.to_string()))?;
                if def.columns.iter().any(|c| c.name == spec.name) {
                    if *if_not_exists {
                        continue;
                    }
                    return Err(CoreError::AlreadyExists(format!(
                        "Column '{}' already exists in table '{}'",
                        spec.name,
                        def.table_ref()
                    )));
                }
                if spec.primary_key {
                    return Err(CoreError::NotSupported(
                        "A PRIMARY KEY column cannot be added to an existing table".into(),
                    ));
                }
                if spec.unique {
                    return Err(CoreError::NotSupported(format!(
                        "ADD COLUMN cannot add a UNIQUE column: add '{}' and then CREATE UNIQUE INDEX on it",
                        spec.name
                    )));
                }
                let mut column = ColumnDefinition {
                    column_id: next_id,
                    name: spec.name.clone(),
                    data_type: spec.data_type,
                    nullable: spec.nullable,
                    primary_key: false,
                    default: spec.default,
                    backfill: None,
                };
                next_id += 1;
                if let ColumnDefault::Value(_) = compile_default(&column)? {
                    column.backfill = column.default.clone();
                }
                if !column.nullable && column.backfill.is_none() && has_rows(app, &table)? {
                    return Err(CoreError::Execution(format!(
                        "Column '{}' is NOT NULL but table '{}' has rows: give it a literal DEFAULT for them",
                        column.name,
                        def.table_ref()
                    )));
                }
                changes.push(format!("added {}", column.name));
                def.columns.push(column);
            }
            AlterTableOperation::DropColumn {
                column_names,
                if_exists,
                ..
            } => {
                for ident in column_names {
                    let i = match position(&def, ident) {
                        Ok(i) => i,
                        Err(_) if *if_exists => continue,
                        Err(e) => return Err(e),
                    };
                    if def.columns[i].primary_key {
                        return Err(CoreError::NotSupported(format!(
                            "The primary key '{}' cannot be dropped",
                            def.columns[i].name
                        )));
                    }
                    if def.columns.len() == 1 {
                        return Err(invalid("A table keeps at least one column".into()));
                    }
                    refuse_if_indexed(&def, i, "dropped")?;
                    changes.push(format!("dropped {}", def.columns[i].name));
                    def.columns.remove(i);
                }
            }
            AlterTableOperation::RenameColumn {
                old_column_name,
                new_column_name,
            } => {
                let i = position(&def, old_column_name)?;
                let new = normalize(new_column_name);
                if new == SEQ_COLUMN || new == DELETED_COLUMN {
                    return Err(invalid(format!(
                        "Column name '{new}' is reserved for a system column"
                    )));
                }
                if def.columns.iter().any(|c| c.name == new) {
                    return Err(CoreError::AlreadyExists(format!(
                        "Column '{new}' already exists"
                    )));
                }
                changes.push(format!("renamed {} to {new}", def.columns[i].name));
                def.columns[i].name = new;
            }
            AlterTableOperation::ModifyColumn {
                col_name,
                data_type,
                options,
                column_position: None,
            } => {
                let i = position(&def, col_name)?;
                let to = kalam_type(data_type).map_err(invalid)?;
                if to != def.columns[i].data_type {
                    refuse_if_indexed(&def, i, "retyped")?;
                }
                change_type(&mut def.columns[i], to)?;
                for option in options {
                    match option {
                        ColumnOption::Null => def.columns[i].nullable = true,
                        ColumnOption::NotNull => set_not_null(app, &table, &mut def.columns[i])?,
                        other => {
                            return Err(CoreError::NotSupported(format!(
                                "MODIFY COLUMN option '{other}' is not supported"
                            )));
                        }
                    }
                }
                changes.push(format!("modified {}", def.columns[i].name));
            }
            AlterTableOperation::AlterColumn { column_name, op } => {
                let i = position(&def, column_name)?;
                if matches!(op, AlterColumnOperation::SetDataType { .. }) {
                    refuse_if_indexed(&def, i, "retyped")?;
                }
                let column = &mut def.columns[i];
                match op {
                    AlterColumnOperation::SetDataType {
                        data_type,
                        using: None,
                        ..
                    } => change_type(column, kalam_type(data_type).map_err(invalid)?)?,
                    AlterColumnOperation::DropNotNull if !column.primary_key => {
                        column.nullable = true
                    }
                    AlterColumnOperation::SetNotNull => set_not_null(app, &table, column)?,
                    AlterColumnOperation::SetDefault { value } => {
                        let mut probe = column.clone();
                        probe.default = Some(value.to_string());
                        compile_default(&probe)?;
                        column.default = probe.default;
                    }
                    AlterColumnOperation::DropDefault => column.default = None,
                    other => {
                        return Err(CoreError::NotSupported(format!(
                            "ALTER COLUMN {other} is not supported"
                        )));
                    }
                }
                changes.push(format!("altered {}", def.columns[i].name));
            }
            AlterTableOperation::SetTblProperties { table_properties } => {
                for option in table_properties {
                    apply_table_option(option, &mut def.options).map_err(invalid)?;
                }
                // new flushes go to the new storage; segments stay where
                // they were written (each names its storage)
                app.table_store
                    .cold()
                    .storages()
                    .require(&def.options.storage_id)?;
                if def.options.access_level.is_some() && def.table_type != TableType::Shared {
                    return Err(invalid("ACCESS_LEVEL applies to SHARED tables only".into()));
                }
                changes.push("set properties".into());
            }
            other => {
                return Err(CoreError::NotSupported(format!(
                    "ALTER TABLE {other} is not supported"
                )));
            }
        }
    }
    if changes.is_empty() {
        return Ok(StatementResult::message(format!(
            "Table '{}' unchanged",
            def.table_ref()
        )));
    }
    def.schema_version += 1;
    let version = def.schema_version;
    let name = def.table_ref();
    let mut batch = Batch::new();
    app.meta.put_table(&mut batch, &def)?;
    app.schema_registry.commit_table(batch, def)?;
    Ok(StatementResult::message(format!(
        "Table '{name}' altered ({}); schema version {version}",
        changes.join(", ")
    )))
}

/// `ALTER TABLE t ADD [CONSTRAINT name] UNIQUE (columns)`: a unique index,
/// built over the rows already there (refused if two hold the same values).
async fn add_constraint(
    app: &AppContext,
    ctx: &ExecutionContext,
    alter: &AlterTable,
    constraint: &TableConstraint,
) -> CoreResult<StatementResult> {
    let TableConstraint::Unique(unique) = constraint else {
        return Err(CoreError::NotSupported(format!(
            "ALTER TABLE ADD {constraint} is not supported: only UNIQUE (columns) can be added"
        )));
    };
    let mut columns = Vec::with_capacity(unique.columns.len());
    for column in &unique.columns {
        let Expr::Identifier(ident) = &column.column.expr else {
            return Err(invalid(format!(
                "Invalid UNIQUE column '{}'",
                column.column.expr
            )));
        };
        columns.push(normalize(ident));
    }
    let table = kalamdb_sql::parsers::parse_qualified_name_from(&alter.name).map_err(invalid)?;
    super::index::create_index(
        app,
        ctx,
        unique.name.as_ref().map(normalize),
        &table,
        &columns,
        true,
        false,
    )
    .await
}

/// An indexed column keeps its type and stays: its entries are encoded by
/// it (DROP INDEX first).
fn refuse_if_indexed(def: &TableDefinition, column: usize, what: &str) -> CoreResult<()> {
    let id = def.columns[column].column_id;
    match def.indexes.iter().find(|i| i.column_ids.contains(&id)) {
        Some(index) => Err(CoreError::NotSupported(format!(
            "Column '{}' is in index '{}' and cannot be {what}: DROP INDEX {} first",
            def.columns[column].name, index.name, index.name
        ))),
        None => Ok(()),
    }
}

fn change_type(column: &mut ColumnDefinition, to: KalamDataType) -> CoreResult<()> {
    if column.data_type == to {
        return Ok(());
    }
    if column.primary_key {
        return Err(CoreError::NotSupported(format!(
            "The type of the primary key '{}' cannot change",
            column.name
        )));
    }
    if !widens(column.data_type, to) {
        return Err(CoreError::NotSupported(format!(
            "Column '{}': {} cannot become {to} without rewriting rows; only widening \
             (SMALLINT → INT → BIGINT, INT → DOUBLE, FLOAT → DOUBLE) is supported",
            column.name, column.data_type
        )));
    }
    if let Some(text) = &column.backfill {
        let mut probe = column.clone();
        probe.data_type = to;
        probe.default = Some(text.clone());
        compile_default(&probe)?;
    }
    column.data_type = to;
    Ok(())
}

/// SET NOT NULL: allowed once no live row (of any user) holds NULL there.
fn set_not_null(
    app: &AppContext,
    table: &Arc<CachedTable>,
    column: &mut ColumnDefinition,
) -> CoreResult<()> {
    if !column.nullable {
        return Ok(());
    }
    let index = table
        .definition
        .columns
        .iter()
        .position(|c| c.column_id == column.column_id);
    let backfilled = index.is_some_and(|i| table.backfill[i].is_some());
    let mut nulls = 0u64;
    let reader = RowReader::all_partitions(Arc::clone(table), app.table_store.clone());
    reader.scan_rows(reader.start(), false, &mut |_, row| {
        let mut present = false;
        for item in row.columns() {
            let (id, _) = item?;
            present |= id == column.column_id;
        }
        if !present && !backfilled {
            nulls += 1;
        }
        Ok(nulls == 0)
    })?;
    if nulls > 0 {
        return Err(CoreError::NotNullViolation(format!(
            "Column '{}' holds NULL in existing rows; set them first",
            column.name
        )));
    }
    column.nullable = false;
    Ok(())
}
