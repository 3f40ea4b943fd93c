//! RETURNING of INSERT, UPDATE and DELETE: which columns, and the written
//! rows as a result.

use crate::error::{CoreError, CoreResult};
use crate::result::StatementResult;
use crate::rows::{BatchBuilder, OutputColumn};
use crate::schema::CachedTable;
use kalamdb_sql::parsers::normalize;
use kalamdb_sql::sqlparser::ast::{Expr, SelectItem};
use kalamdb_store::row::RowView;
use std::sync::Arc;

/// Declared-column positions of a RETURNING list (`*` or column names).
pub fn returning_columns(table: &CachedTable, items: &[SelectItem]) -> CoreResult<Vec<usize>> {
    let mut out = Vec::new();
    for item in items {
        match item {
            SelectItem::Wildcard(_) => out.extend(0..table.definition.columns.len()),
            SelectItem::UnnamedExpr(Expr::Identifier(ident)) => {
                let name = normalize(ident);
                out.push(table.column_index(&name)?);
            }
            other => {
                return Err(CoreError::NotSupported(format!(
                    "RETURNING supports * and column names, got {other}"
                )));
            }
        }
    }
    Ok(out)
}

/// The rows a statement wrote (encoded), projected for RETURNING.
pub fn returning_result(
    table: &CachedTable,
    indices: &[usize],
    written: &[Vec<u8>],
    message: String,
) -> CoreResult<StatementResult> {
    let schema = Arc::new(
        table
            .schema
            .project(indices)
            .map_err(|e| CoreError::Internal(e.to_string()))?,
    );
    let columns = indices
        .iter()
        .map(|&i| OutputColumn::declared(&table.definition.columns[i]))
        .collect();
    let mut builder = BatchBuilder::new(Arc::clone(&schema), columns, written.len())?;
    for bytes in written {
        builder.push(&RowView::decode(bytes)?)?;
    }
    let batch = builder.finish()?;
    let mut result = StatementResult::rows(schema, vec![batch]);
    result.message = Some(message);
    Ok(result)
}
