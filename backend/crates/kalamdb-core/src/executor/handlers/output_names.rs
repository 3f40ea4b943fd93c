//! Duplicate output column names, which SQL allows (`SELECT $1, $1`,
//! `SELECT a, a`, `SELECT 1 AS x, 2 AS x`, two `x IN (SELECT …)`, which
//! DataFusion names alike) and DataFusion's planner refuses.
//!
//! Before planning, every repeated item of the outermost SELECT list is
//! given a unique internal alias; after planning its output field gets the
//! name the item would have had, so the reply shows the duplicates as
//! written.

use crate::error::{CoreError, CoreResult};
use datafusion::arrow::datatypes::{Schema, SchemaRef};
use datafusion::arrow::record_batch::RecordBatch;
use kalamdb_sql::sqlparser::ast::{Ident, SelectItem, SetExpr, Statement};
use std::collections::HashMap;
use std::sync::Arc;

/// An output column renamed for planning: its position, and the position of
/// the item whose name it shares (or the alias it was written with).
#[derive(Debug)]
pub struct Renamed {
    position: usize,
    name: DuplicateName,
}

#[derive(Debug)]
enum DuplicateName {
    SameAs(usize),
    Alias(String),
}

const INTERNAL_PREFIX: &str = "__kalamdb_duplicate_";

/// Aliases the repeats of the outermost SELECT list (one without wildcards,
/// so item positions are output positions).
pub fn alias_duplicates(statement: &mut Statement) -> Vec<Renamed> {
    let Statement::Query(query) = statement else {
        return Vec::new();
    };
    let SetExpr::Select(select) = query.body.as_mut() else {
        return Vec::new();
    };
    if select.projection.len() < 2
        || select.projection.iter().any(|i| {
            matches!(
                i,
                SelectItem::Wildcard(_) | SelectItem::QualifiedWildcard(..)
            )
        })
    {
        return Vec::new();
    }
    let mut first: HashMap<String, usize> = HashMap::new();
    let mut renamed = Vec::new();
    for (position, item) in select.projection.iter_mut().enumerate() {
        let key = match item {
            // DataFusion names every `x IN (SELECT …)` just "IN" (or "NOT
            // IN"): two of them are duplicates to it whatever x is
            SelectItem::UnnamedExpr(kalamdb_sql::sqlparser::ast::Expr::InSubquery {
                negated,
                ..
            }) => format!("in-subquery:{negated}"),
            SelectItem::UnnamedExpr(e) => format!("e:{e}"),
            SelectItem::ExprWithAlias { alias, .. } => format!("a:{}", normalized(alias)),
            _ => continue,
        };
        let Some(&earlier) = first.get(&key) else {
            first.insert(key, position);
            continue;
        };
        let internal = Ident::new(format!("{INTERNAL_PREFIX}{position}"));
        let name = match item {
            SelectItem::UnnamedExpr(e) => {
                let expr = std::mem::replace(
                    e,
                    kalamdb_sql::sqlparser::ast::Expr::Identifier(Ident::new("")),
                );
                *item = SelectItem::ExprWithAlias {
                    expr,
                    alias: internal,
                };
                DuplicateName::SameAs(earlier)
            }
            SelectItem::ExprWithAlias { alias, .. } => {
                let written = normalized(alias);
                *alias = internal;
                DuplicateName::Alias(written)
            }
            _ => continue,
        };
        renamed.push(Renamed { position, name });
    }
    renamed
}

/// Unquoted identifiers fold to lower case, as DataFusion does.
fn normalized(ident: &Ident) -> String {
    match ident.quote_style {
        Some(_) => ident.value.clone(),
        None => ident.value.to_ascii_lowercase(),
    }
}

/// The planned output schema with the duplicates' names put back.
pub fn restore(planned: &Schema, renamed: &[Renamed]) -> SchemaRef {
    if renamed.is_empty() {
        return Arc::new(planned.clone());
    }
    let mut fields: Vec<_> = planned
        .fields()
        .iter()
        .map(|f| f.as_ref().clone())
        .collect();
    for r in renamed {
        let name = match &r.name {
            DuplicateName::SameAs(i) => fields.get(*i).map(|f| f.name().clone()),
            DuplicateName::Alias(a) => Some(a.clone()),
        };
        if let (Some(name), Some(field)) = (name, fields.get_mut(r.position)) {
            *field = field.clone().with_name(name);
        }
    }
    Arc::new(Schema::new_with_metadata(
        fields,
        planned.metadata().clone(),
    ))
}

/// `batch` under the restored schema (same columns, names put back).
pub fn with_schema(
    batch: RecordBatch,
    schema: &SchemaRef,
    renamed: &[Renamed],
) -> CoreResult<RecordBatch> {
    if renamed.is_empty() {
        return Ok(batch);
    }
    RecordBatch::try_new(Arc::clone(schema), batch.columns().to_vec())
        .map_err(|e| CoreError::Internal(format!("renaming output columns: {e}")))
}
