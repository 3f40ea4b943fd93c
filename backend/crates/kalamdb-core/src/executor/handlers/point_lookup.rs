//! The point-read fast path: `SELECT cols|* FROM t WHERE pk = literal` reads
//! one key straight from storage, skipping DataFusion planning (hundreds of
//! microseconds for a one-row answer). Anything that does not match the shape
//! exactly goes the general way; results are identical either way.

use crate::app_context::AppContext;
use crate::context::ExecutionContext;
use crate::error::{CoreError, CoreResult};
use crate::providers::scan::{RowScan, ScanTarget};
use crate::result::StatementResult;
use crate::row_reader::RowReader;
use crate::rows::OutputColumn;
use crate::rows::coerce::literal_of;
use crate::schema::CachedTable;
use crate::table_store::RowScope;
use kalamdb_commons::Value;
use kalamdb_sql::parsers::{normalize, parse_qualified_name_from};
use kalamdb_sql::sqlparser::ast::{BinaryOperator, Expr, Query, Select, SelectItem, TableFactor};
use serde_json::Value as Json;
use std::sync::Arc;

/// The SELECT of `query` if it has no clauses beyond projection, FROM and
/// WHERE (and FROM has no joins).
pub(crate) fn simple_query(query: &Query) -> Option<&Select> {
    kalamdb_sql::plain_select(query).ok()
}

fn ident_name(expr: &Expr) -> Option<String> {
    match expr {
        Expr::Identifier(i) => Some(normalize(i)),
        _ => None,
    }
}

/// Runs the fast path if `query` has its shape; `Ok(None)` otherwise.
pub fn try_execute(
    app: &AppContext,
    ctx: &ExecutionContext,
    query: &Query,
    params: &[Json],
) -> CoreResult<Option<StatementResult>> {
    let Some(select) = simple_query(query).filter(|s| s.from.len() == 1) else {
        return Ok(None);
    };
    let TableFactor::Table {
        name,
        alias: None,
        args: None,
        with_hints,
        version: None,
        with_ordinality: false,
        partitions,
        json_path: None,
        sample: None,
        index_hints,
    } = &select.from[0].relation
    else {
        return Ok(None);
    };
    if !with_hints.is_empty() || !partitions.is_empty() || !index_hints.is_empty() {
        return Ok(None);
    }
    let Ok(name) = parse_qualified_name_from(name) else {
        return Ok(None);
    };
    // A name that resolves to nothing is DataFusion's to report.
    let Ok(table) = super::resolve_table(app, ctx, &name) else {
        return Ok(None);
    };
    if table.primary_key.is_none() {
        return Ok(None);
    }
    crate::table_access::authorize_table(ctx.role, &table.definition, false)?;
    let Ok(scope) = RowScope::for_table(&table.definition, &ctx.user_id) else {
        return Ok(None);
    };
    let Some(pk_value) = pk_equality(&table, select.selection.as_ref(), params)? else {
        return Ok(None);
    };
    let Some(indices) = projection(&table, &select.projection) else {
        return Ok(None);
    };
    let columns = indices
        .iter()
        .map(|&i| OutputColumn::declared(&table.definition.columns[i]))
        .collect();
    let schema = Arc::new(
        table
            .schema
            .project(&indices)
            .map_err(|e| CoreError::Internal(e.to_string()))?,
    );
    let missing = indices.iter().map(|&i| table.backfill[i].clone()).collect();
    let reader = RowReader::new(table, ctx.table_store(&app.table_store), &scope);
    let key = reader.key_of(&pk_value)?;
    let scan = RowScan {
        schema: Arc::clone(&schema),
        columns,
        reader,
        target: ScanTarget::Keys(vec![key]),
        include_deleted: false,
        limit: Some(1),
        reverse: false,
        missing,
    };
    let batches = scan.collect(1)?;
    Ok(Some(StatementResult::rows(schema, batches)))
}

/// The primary-key value of `WHERE pk = literal` (either side, `$n` too), if
/// the condition is exactly that ([`CachedTable::pinned_key`]). A literal
/// that does not convert as INSERT would take it (e.g. 'x' or an
/// out-of-range number against an INT key) is `None`: the general path, with
/// SQL's coercions, answers those.
pub(crate) fn pk_equality(
    table: &CachedTable,
    selection: Option<&Expr>,
    params: &[Json],
) -> CoreResult<Option<Value>> {
    let Some(Expr::BinaryOp {
        left,
        op: BinaryOperator::Eq,
        right,
    }) = selection
    else {
        return Ok(None);
    };
    let (column, literal_side) = match (ident_name(left), ident_name(right)) {
        (Some(c), None) => (c, right),
        (None, Some(c)) => (c, left),
        _ => return Ok(None),
    };
    let Some(literal) = literal_of(literal_side, params)? else {
        return Ok(None);
    };
    Ok(table.pinned_key(&column, &literal))
}

/// Declared-column positions for `*` or a list of bare column names.
fn projection(table: &CachedTable, items: &[SelectItem]) -> Option<Vec<usize>> {
    match items {
        [SelectItem::Wildcard(opts)]
            if opts.opt_ilike.is_none()
                && opts.opt_exclude.is_none()
                && opts.opt_except.is_none()
                && opts.opt_replace.is_none()
                && opts.opt_rename.is_none() =>
        {
            Some((0..table.definition.columns.len()).collect())
        }
        items => items
            .iter()
            .map(|item| match item {
                SelectItem::UnnamedExpr(e) => ident_name(e).and_then(|n| table.column_position(&n)),
                _ => None,
            })
            .collect(),
    }
}
