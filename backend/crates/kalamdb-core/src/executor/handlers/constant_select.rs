//! `SELECT <literals>` without FROM (`SELECT 1` is what connection pools and
//! health checks send) answered without planning. Only shapes whose result is
//! certain to equal DataFusion's — names, types and values — are taken; the
//! test below holds the two paths to that.

use super::key_read::simple_query;
use crate::error::{CoreError, CoreResult};
use crate::result::StatementResult;
use datafusion::arrow::array::{ArrayRef, BooleanArray, Int64Array, StringArray};
use datafusion::arrow::datatypes::{DataType, Field, Schema};
use datafusion::arrow::record_batch::RecordBatch;
use kalamdb_sql::sqlparser::ast::{Expr, Query, SelectItem, Value};
use std::collections::HashSet;
use std::sync::Arc;

enum Constant {
    Int(i64),
    Text(String),
    Bool(bool),
}

fn constant(expr: &Expr) -> Option<(Constant, String)> {
    let Expr::Value(v) = expr else {
        return None;
    };
    match &v.value {
        Value::Number(n, false) if n.bytes().all(|b| b.is_ascii_digit()) => {
            let i: i64 = n.parse().ok()?;
            Some((Constant::Int(i), format!("Int64({i})")))
        }
        Value::SingleQuotedString(s) if !s.contains(['"', '\\']) => {
            Some((Constant::Text(s.clone()), format!("Utf8(\"{s}\")")))
        }
        Value::Boolean(b) => Some((Constant::Bool(*b), format!("Boolean({b})"))),
        _ => None,
    }
}

pub fn try_execute(query: &Query) -> CoreResult<Option<StatementResult>> {
    let Some(select) = simple_query(query) else {
        return Ok(None);
    };
    if !select.from.is_empty() || select.selection.is_some() || select.projection.is_empty() {
        return Ok(None);
    }
    let mut fields = Vec::with_capacity(select.projection.len());
    let mut columns: Vec<ArrayRef> = Vec::with_capacity(select.projection.len());
    let mut names = HashSet::new();
    for item in &select.projection {
        let (value, name) = match item {
            SelectItem::UnnamedExpr(e) => match constant(e) {
                Some(c) => c,
                None => return Ok(None),
            },
            SelectItem::ExprWithAlias { expr, alias } if alias.quote_style.is_none() => {
                match constant(expr) {
                    Some((c, _)) => (c, alias.value.to_ascii_lowercase()),
                    None => return Ok(None),
                }
            }
            _ => return Ok(None),
        };
        if !names.insert(name.clone()) {
            // DataFusion rejects duplicate names; let it say so.
            return Ok(None);
        }
        let (data_type, array): (DataType, ArrayRef) = match value {
            Constant::Int(i) => (DataType::Int64, Arc::new(Int64Array::from(vec![i]))),
            Constant::Text(s) => (DataType::Utf8, Arc::new(StringArray::from(vec![s]))),
            Constant::Bool(b) => (DataType::Boolean, Arc::new(BooleanArray::from(vec![b]))),
        };
        fields.push(Field::new(name, data_type, false));
        columns.push(array);
    }
    let schema = Arc::new(Schema::new(fields));
    let batch = RecordBatch::try_new(Arc::clone(&schema), columns)
        .map_err(|e| CoreError::Internal(e.to_string()))?;
    Ok(Some(StatementResult::rows(schema, vec![batch])))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::executor::handlers::query::run_query;
    use crate::executor::handlers::test_support::json;
    use crate::{AppContext, CoreOptions, ExecutionContext};
    use kalamdb_commons::{Role, UserId};
    use kalamdb_sql::sqlparser::ast::Statement;
    use kalamdb_sql::{SqlStatement, parse_sql};
    use kalamdb_store::{RocksDbBackend, RocksDbOptions};

    #[tokio::test]
    async fn constant_selects_equal_datafusions_answers() {
        let dir = tempfile::tempdir().unwrap();
        let backend =
            Arc::new(RocksDbBackend::open(dir.path(), &RocksDbOptions::default()).unwrap());
        let app = AppContext::open(backend, &CoreOptions::default()).unwrap();
        let ctx = ExecutionContext::new(UserId::new("root"), "root", Role::System);
        for sql in [
            "SELECT 1",
            "SELECT 0",
            "SELECT 9223372036854775807",
            "SELECT 1 AS one, 'a' AS b, true",
            "SELECT 'hello', false, 42",
            "select 7 as Seven",
        ] {
            let SqlStatement::Standard(statement) = parse_sql(sql).unwrap().remove(0).statement
            else {
                panic!("{sql}");
            };
            let Statement::Query(query) = statement.as_ref() else {
                panic!("{sql}");
            };
            let fast = try_execute(query)
                .unwrap()
                .unwrap_or_else(|| panic!("no fast path for {sql}"));
            let planned = run_query(&app, &ctx, (*statement).clone(), false, &[])
                .await
                .unwrap();
            assert_eq!(json(&fast), json(&planned), "{sql}");
        }
        for sql in [
            "SELECT 1, 1",
            "SELECT 1.5",
            "SELECT -1",
            "SELECT 'a\"b'",
            "SELECT 1 WHERE false",
            "SELECT 1 LIMIT 0",
        ] {
            let SqlStatement::Standard(statement) = parse_sql(sql).unwrap().remove(0).statement
            else {
                panic!("{sql}");
            };
            let Statement::Query(query) = statement.as_ref() else {
                panic!("{sql}");
            };
            assert!(
                try_execute(query).unwrap().is_none(),
                "{sql} must take the general path"
            );
        }
    }
}
