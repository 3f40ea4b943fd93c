//! The key-read fast path: a SELECT of columns (or `*`) from one table
//! whose WHERE restricts only the primary key — `=`, `IN`, `<`, `<=`, `>`,
//! `>=`, `BETWEEN`, AND / OR, literals or `$n`; for a key of several
//! columns, on its leading columns — with at most `ORDER BY` one key column
//! in key order and `LIMIT n`, reads its keys straight from storage and
//! skips DataFusion planning (several hundred microseconds for a few rows).
//! The keys come from the same rule the planner's scan uses
//! ([`compose`]), read from the SQL text here; the path is taken
//! only where that rule answers the WHERE exactly and the answer is small
//! (at most [`FAST_ROWS`] rows). Anything else goes the general way; results
//! are identical either way.

use crate::app_context::AppContext;
use crate::context::ExecutionContext;
use crate::error::{CoreError, CoreResult};
use crate::providers::key_range::{Compare, KeyPredicate, KeySet, compose};
use crate::providers::scan::{RowScan, ScanTarget};
use crate::result::StatementResult;
use crate::row_reader::RowReader;
use crate::rows::OutputColumn;
use crate::rows::coerce::{Literal, literal_of};
use crate::schema::CachedTable;
use crate::table_store::RowScope;
use kalamdb_commons::{KalamDataType, Value};
use kalamdb_sql::parsers::{normalize, parse_qualified_name_from};
use kalamdb_sql::sqlparser::ast::{
    BinaryOperator, Expr, LimitClause, OrderByKind, Query, Select, SelectItem, TableFactor,
    Value as SqlValue,
};
use serde_json::Value as Json;
use std::sync::Arc;

/// The most rows the fast path answers; a query that would read more is
/// planned (under the caller's query limits).
pub const FAST_ROWS: usize = 1000;

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
    let Ok(select) = kalamdb_sql::ordered_select(query) else {
        return Ok(None);
    };
    if select.from.len() != 1 {
        return Ok(None);
    }
    let Some(limit) = limit_of(query) else {
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
    let Some(order) = order_of(query) else {
        return Ok(None);
    };
    crate::table_access::authorize_table(ctx.role, &table.definition, false)?;
    let Ok(scope) = RowScope::for_table(&table.definition, &ctx.user_id) else {
        return Ok(None);
    };
    let reader = RowReader::new(
        Arc::clone(&table),
        ctx.table_store(&app.table_store),
        &scope,
    );
    let Some(read) = read_of(&table, &reader, select.selection.as_ref(), &order, params)? else {
        return Ok(None);
    };
    if read.whole && limit.is_none_or(|n| n > FAST_ROWS) {
        return Ok(None);
    }
    let Some(indices) = projection(&table, &select.projection) else {
        return Ok(None);
    };
    // bounded by the query, or read one past the bound to learn it is not
    let bounded = limit.is_some_and(|n| n <= FAST_ROWS)
        || matches!(&read.target, ScanTarget::Keys(k) if k.len() <= FAST_ROWS);
    let read_limit = if bounded {
        limit
    } else {
        Some(limit.map_or(FAST_ROWS + 1, |n| n.min(FAST_ROWS + 1)))
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
    let scan = RowScan {
        schema: Arc::clone(&schema),
        columns,
        reader,
        target: read.target,
        include_deleted: false,
        limit: read_limit,
        reverse: read.reverse,
        missing,
    };
    let batches = scan.collect(FAST_ROWS + 1)?;
    if !bounded && batches.iter().map(|b| b.num_rows()).sum::<usize>() > FAST_ROWS {
        // a large answer: the general path, with the caller's limits
        return Ok(None);
    }
    Ok(Some(StatementResult::rows(schema, batches)))
}

/// `LIMIT n` as `Some(Some(n))`, no limit as `Some(None)`; `None` for any
/// other form (OFFSET, an expression).
fn limit_of(query: &Query) -> Option<Option<usize>> {
    match &query.limit_clause {
        None => Some(None),
        Some(LimitClause::LimitOffset {
            limit: Some(Expr::Value(v)),
            offset: None,
            limit_by,
        }) if limit_by.is_empty() => match &v.value {
            SqlValue::Number(n, false) => n.parse().ok().map(Some),
            _ => None,
        },
        Some(_) => None,
    }
}

/// The ORDER BY the fast path can take: none, or bare columns (each ASC or
/// DESC, NULLs where SQL puts them by default). `None` for any other.
enum Order {
    Unordered,
    /// `(column, descending)` per sort expression.
    By(Vec<(String, bool)>),
}

/// The most ORDER BY expressions the fast path reads.
const MAX_ORDER: usize = 16;

fn order_of(query: &Query) -> Option<Order> {
    let Some(order_by) = &query.order_by else {
        return Some(Order::Unordered);
    };
    let OrderByKind::Expressions(exprs) = &order_by.kind else {
        return None;
    };
    if order_by.interpolate.is_some() || exprs.is_empty() || exprs.len() > MAX_ORDER {
        return None;
    }
    let mut by = Vec::with_capacity(exprs.len());
    for expr in exprs {
        if expr.with_fill.is_some() {
            return None;
        }
        let descending = expr.options.asc == Some(false);
        // NULLs last ascending, first descending: the default, and the
        // order an index keeps them in
        if expr.options.nulls_first.is_some_and(|n| n != descending) {
            return None;
        }
        by.push((ident_name(&expr.expr)?, descending));
    }
    Some(Order::By(by))
}

/// The direction a key read must go (true: backward) for its rows to come
/// in `order`, when one does: the sort's columns, those among the first
/// `pinned` key columns (one value in every row read) skipped, are the
/// key's next columns in one direction — until the whole key is covered,
/// after which the rest never matters (the key is unique).
fn key_direction(key_names: &[&str], pinned: usize, order: &Order) -> Option<bool> {
    let Order::By(by) = order else {
        return Some(false);
    };
    let n = key_names.len();
    let mut next = pinned.min(n);
    let mut direction = None;
    for (column, descending) in by {
        if next == n {
            break;
        }
        let at = key_names.iter().position(|k| k == column)?;
        if at < pinned {
            continue;
        }
        if at != next || direction.is_some_and(|d| d != *descending) {
            return None;
        }
        direction = Some(*descending);
        next += 1;
    }
    Some(direction.unwrap_or(false))
}

/// What the fast path reads, and in which direction.
struct Read {
    target: ScanTarget,
    reverse: bool,
    /// A whole index, read for its order: only worth it under a small
    /// LIMIT.
    whole: bool,
}

/// The read answering `selection` exactly in `order`: the primary key's
/// points or ranges (every AND term of `selection` answered by the key
/// rule, [`compose`]), or the entries of a built index on whose leading
/// column `selection` (or, with no WHERE, the order) rests. `None` when
/// neither answers it exactly, or the order is not the read's.
fn read_of(
    table: &CachedTable,
    reader: &RowReader,
    selection: Option<&Expr>,
    order: &Order,
    params: &[Json],
) -> CoreResult<Option<Read>> {
    let def = &table.definition;
    let key_names: Vec<&str> = table
        .key
        .iter()
        .map(|&k| def.columns[k].name.as_str())
        .collect();
    if !table.keyless() {
        let mut conjuncts = Vec::new();
        let plan = match selection {
            None => Some(compose(&vec![Vec::new(); table.key.len()], 0)),
            Some(selection) if and_terms(selection, &mut conjuncts) => {
                let mut columns = Vec::with_capacity(table.key.len());
                for &k in &table.key {
                    let column = &def.columns[k];
                    let mut keys = Vec::with_capacity(conjuncts.len());
                    for conjunct in &conjuncts {
                        keys.push(key_predicate(table, k, conjunct, params)?.values_of(column));
                    }
                    columns.push(keys);
                }
                let plan = compose(&columns, conjuncts.len());
                plan.exact.iter().all(|e| *e).then_some(plan)
            }
            Some(_) => None,
        };
        // the rows come in key order: by the key's columns past those
        // pinned to one value
        let reverse = plan
            .as_ref()
            .and_then(|plan| key_direction(&key_names, plan.pinned, order));
        if let (Some(plan), Some(reverse)) = (plan, reverse) {
            return Ok(Some(Read {
                target: ScanTarget::of(plan.read, reader),
                reverse,
                whole: false,
            }));
        }
    }
    for index in def.indexes.iter().filter(|i| crate::indexes::ready(i)) {
        let Some(at) = index
            .column_ids
            .first()
            .and_then(|id| def.column_position_of(*id))
        else {
            continue;
        };
        let column = &def.columns[at];
        let values = match selection {
            None => KeySet::All,
            Some(selection) => {
                let values = key_predicate(table, at, selection, params)?.values_of(column);
                if !values.exact || values.set == KeySet::All {
                    continue;
                }
                values.set
            }
        };
        // one value's entries are in key order; any other set of them in
        // the index's order
        let single = matches!(&values, KeySet::Points(p) if p.len() <= 1);
        let reverse = match order {
            Order::By(by) => match by.as_slice() {
                [(c, descending)] if *c == column.name => *descending,
                [(c, descending)] if single && key_names.first() == Some(&c.as_str()) => {
                    *descending
                }
                _ => continue,
            },
            Order::Unordered if values != KeySet::All => false,
            Order::Unordered => continue,
        };
        let (target, whole) = match ScanTarget::of_index(index, values, reader) {
            Some(target) => (target, false),
            None => (ScanTarget::whole_index(index, reader), true),
        };
        return Ok(Some(Read {
            target,
            reverse,
            whole,
        }));
    }
    Ok(None)
}

/// `selection` as the key rule reads it ([`KeyPredicate`]). A literal is a
/// key value only when SQL would compare it with the key as it is: a number
/// for a numeric key, a string for a text, date or timestamp key (anything
/// else is left to the planner's coercions).
fn key_predicate<'a>(
    table: &CachedTable,
    pk: usize,
    selection: &'a Expr,
    params: &'a [Json],
) -> CoreResult<KeyPredicate<'a>> {
    let column = &table.definition.columns[pk];
    let is_pk = |e: &Expr| ident_name(e).as_deref() == Some(column.name.as_str());
    let value = |e: &'a Expr| -> CoreResult<Option<Literal<'a>>> {
        let Some(literal) = literal_of(e, params)? else {
            return Ok(None);
        };
        let fits = matches!(
            (&literal, &column.data_type),
            (Literal::Null, _)
                | (
                    Literal::Number(_),
                    KalamDataType::SmallInt | KalamDataType::Int | KalamDataType::BigInt,
                )
                | (
                    Literal::Text(_),
                    KalamDataType::Text | KalamDataType::Date | KalamDataType::Timestamp,
                )
        );
        Ok(fits.then_some(literal))
    };
    let of = |e: &'a Expr| key_predicate(table, pk, e, params).map(Box::new);
    Ok(match selection {
        Expr::Nested(inner) => key_predicate(table, pk, inner, params)?,
        Expr::BinaryOp { left, op, right } => {
            let compare = match op {
                BinaryOperator::And => return Ok(KeyPredicate::And(of(left)?, of(right)?)),
                BinaryOperator::Or => return Ok(KeyPredicate::Or(of(left)?, of(right)?)),
                BinaryOperator::Eq => Compare::Eq,
                BinaryOperator::Lt => Compare::Lt,
                BinaryOperator::LtEq => Compare::LtEq,
                BinaryOperator::Gt => Compare::Gt,
                BinaryOperator::GtEq => Compare::GtEq,
                _ => return Ok(KeyPredicate::Other),
            };
            let (compare, literal) = if is_pk(left) {
                (compare, value(right)?)
            } else if is_pk(right) {
                (compare.flipped(), value(left)?)
            } else {
                return Ok(KeyPredicate::Other);
            };
            literal.map_or(KeyPredicate::Other, |v| KeyPredicate::Compare(compare, v))
        }
        Expr::InList {
            expr,
            list,
            negated: false,
        } if is_pk(expr) => {
            let mut values = Vec::with_capacity(list.len());
            for item in list {
                match value(item)? {
                    Some(v) => values.push(v),
                    None => return Ok(KeyPredicate::Other),
                }
            }
            KeyPredicate::In(values)
        }
        Expr::Between {
            expr,
            negated: false,
            low,
            high,
        } if is_pk(expr) => match (value(low)?, value(high)?) {
            (Some(low), Some(high)) => KeyPredicate::Between(low, high),
            _ => KeyPredicate::Other,
        },
        _ => KeyPredicate::Other,
    })
}

/// The primary key's values (in key order) of `WHERE pk = literal` (either
/// side, `$n` too) — for a key of several columns, one such equality per key
/// column joined by AND — if the condition is exactly that
/// ([`CachedTable::pinned_key`]). A literal that does not convert as INSERT
/// would take it (e.g. 'x' or an out-of-range number against an INT key) is
/// `None`: the general path, with SQL's coercions, answers those.
pub(crate) fn pk_equality(
    table: &CachedTable,
    selection: Option<&Expr>,
    params: &[Json],
) -> CoreResult<Option<Vec<Value>>> {
    let Some(selection) = selection else {
        return Ok(None);
    };
    let mut conjuncts = Vec::new();
    if !and_terms(selection, &mut conjuncts) || conjuncts.len() != table.key.len() {
        return Ok(None);
    }
    let mut key: Vec<Option<Value>> = vec![None; table.key.len()];
    for conjunct in conjuncts {
        let Expr::BinaryOp {
            left,
            op: BinaryOperator::Eq,
            right,
        } = conjunct
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
        let Some((at, value)) = table.pinned_key(&column, &literal) else {
            return Ok(None);
        };
        if key[at].replace(value).is_some() {
            return Ok(None);
        }
    }
    Ok(key.into_iter().collect())
}

/// The terms of `expr`'s top-level AND (parentheses looked through) into
/// `out`; false past [`MAX_TERMS`] of them.
fn and_terms<'a>(expr: &'a Expr, out: &mut Vec<&'a Expr>) -> bool {
    match expr {
        Expr::Nested(inner) => and_terms(inner, out),
        Expr::BinaryOp {
            left,
            op: BinaryOperator::And,
            right,
        } => and_terms(left, out) && and_terms(right, out),
        other => {
            out.push(other);
            out.len() <= MAX_TERMS
        }
    }
}

/// The most AND terms of a WHERE the fast path reads.
const MAX_TERMS: usize = 64;

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

    /// Each query's fast answer is the planner's, byte for byte.
    async fn assert_fast_as_planned(
        app: &AppContext,
        cases: &[(&str, &ExecutionContext)],
        params: &[Json],
    ) {
        for &(sql, ctx) in cases {
            let statement = query_of(sql);
            let Statement::Query(query) = statement.as_ref() else {
                panic!("{sql}");
            };
            let ours = try_execute(app, ctx, query, params)
                .unwrap()
                .unwrap_or_else(|| panic!("no fast path for {sql}"));
            let planned = run_query(app, ctx, (*statement).clone(), false, params)
                .await
                .unwrap();
            assert_eq!(json(&ours), json(&planned), "{sql}");
        }
    }

    fn assert_general(app: &AppContext, ctx: &ExecutionContext, sql: &str) {
        let statement = query_of(sql);
        let Statement::Query(query) = statement.as_ref() else {
            panic!("{sql}");
        };
        assert!(
            try_execute(app, ctx, query, &[]).unwrap().is_none(),
            "{sql} must take the general path"
        );
    }

    fn query_of(sql: &str) -> Box<Statement> {
        let SqlStatement::Standard(statement) = parse_sql(sql).unwrap().remove(0).statement else {
            panic!("{sql}");
        };
        statement
    }

    #[tokio::test]
    async fn key_reads_answer_as_the_planner_does_and_only_where_they_should() {
        let dir = tempfile::tempdir().unwrap();
        let backend =
            Arc::new(RocksDbBackend::open(dir.path(), &RocksDbOptions::default()).unwrap());
        let app = AppContext::open(backend, &CoreOptions::default()).unwrap();
        let mut root = ExecutionContext::new(UserId::new("root"), "root", Role::System);
        let rows: Vec<String> = (-20..2000)
            .map(|i| format!("({i}, {}, 'b{i}')", i % 7))
            .collect();
        let setup = format!(
            "CREATE NAMESPACE app; \
             CREATE SHARED TABLE app.t (id BIGINT PRIMARY KEY, room INT, body TEXT); \
             INSERT INTO app.t VALUES {}; \
             DELETE FROM app.t WHERE id = 5; \
             CREATE SHARED TABLE app.w (w TEXT PRIMARY KEY, n INT); \
             INSERT INTO app.w VALUES ('b', 1), ('ba', 2), ('c', 3), ('', 4); \
             CREATE USER TABLE app.mine (id INT PRIMARY KEY, v TEXT)",
            rows.join(",")
        );
        app.execute(&mut root, &setup, &[]).await.unwrap();
        let mut ann = ExecutionContext::new(UserId::new("ann"), "ann", Role::User);
        let mut bob = ExecutionContext::new(UserId::new("bob"), "bob", Role::User);
        app.execute(
            &mut ann,
            "INSERT INTO app.mine VALUES (1, 'a1'), (3, 'a3')",
            &[],
        )
        .await
        .unwrap();
        app.execute(
            &mut bob,
            "INSERT INTO app.mine VALUES (2, 'b2'), (4, 'b4')",
            &[],
        )
        .await
        .unwrap();
        let params = [serde_json::json!(10), serde_json::json!(15)];
        let fast = [
            ("SELECT * FROM app.t WHERE id = 7", &root),
            ("SELECT * FROM app.t WHERE id = 5", &root),
            (
                "SELECT body, id FROM app.t WHERE id IN (3, -1, 9, NULL)",
                &root,
            ),
            ("SELECT id FROM app.t WHERE id < -15", &root),
            (
                "SELECT id FROM app.t WHERE -15 > id ORDER BY id DESC",
                &root,
            ),
            (
                "SELECT id FROM app.t WHERE id BETWEEN 1 AND 9 ORDER BY id DESC",
                &root,
            ),
            (
                "SELECT id FROM app.t WHERE (id = 0 OR id = 2) OR id IN (1999)",
                &root,
            ),
            (
                "SELECT id FROM app.t WHERE id >= 0 AND id < 3 AND id IN (1, 2, 7)",
                &root,
            ),
            ("SELECT id FROM app.t WHERE id > $1 AND id <= $2", &root),
            ("SELECT * FROM app.t LIMIT 10", &root),
            ("SELECT * FROM app.t ORDER BY id DESC LIMIT 10", &root),
            ("SELECT * FROM app.t ORDER BY id ASC LIMIT 3", &root),
            // past the (unique) key the rest of the sort never matters
            ("SELECT * FROM app.t ORDER BY id, room LIMIT 3", &root),
            (
                "SELECT * FROM app.t WHERE id > 1990 ORDER BY id LIMIT 1000",
                &root,
            ),
            ("SELECT id FROM app.t WHERE id = NULL", &root),
            (
                "SELECT id FROM app.t WHERE id > 3 AND id < 2 LIMIT 5",
                &root,
            ),
            ("SELECT * FROM app.t LIMIT 0", &root),
            ("SELECT w FROM app.w WHERE w > 'b' ORDER BY w DESC", &root),
            ("SELECT * FROM app.w WHERE w IN ('', 'c')", &root),
            ("SELECT * FROM app.mine", &ann),
            ("SELECT * FROM app.mine ORDER BY id DESC LIMIT 5", &bob),
            ("SELECT v FROM app.mine WHERE id IN (1, 2, 3, 4)", &bob),
        ];
        assert_fast_as_planned(&app, &fast, &params).await;
        // other users' rows never come back
        let statement = query_of("SELECT id FROM app.mine ORDER BY id DESC LIMIT 5");
        let Statement::Query(query) = statement.as_ref() else {
            unreachable!()
        };
        let rows = json(&try_execute(&app, &ann, query, &[]).unwrap().unwrap()).1;
        assert_eq!(rows, "[[3],[1]]");
        for sql in [
            // not only the key, a wider read, or a large answer
            "SELECT * FROM app.t WHERE room = 3 LIMIT 5",
            "SELECT * FROM app.t WHERE id < 3 OR id > 1990",
            "SELECT id FROM app.t WHERE (id >= 0 AND id < 3) OR id = 1999",
            "SELECT * FROM app.t WHERE id > 2.5 LIMIT 2",
            "SELECT * FROM app.t WHERE id = '7'",
            "SELECT * FROM app.t",
            "SELECT * FROM app.t WHERE id >= 0",
            "SELECT * FROM app.t LIMIT 1001",
            // other orders, clauses and shapes
            "SELECT * FROM app.t ORDER BY room LIMIT 3",
            "SELECT * FROM app.t ORDER BY room, id LIMIT 3",
            "SELECT * FROM app.t ORDER BY id LIMIT 3 OFFSET 2",
            "SELECT id + 1 FROM app.t WHERE id = 3",
            "SELECT count(*) FROM app.t WHERE id = 3",
            "SELECT * FROM app.t AS x WHERE id = 3",
            "SELECT * FROM app.t WHERE app.t.id = 3",
            "SELECT DISTINCT room FROM app.t WHERE id < 3",
            "SELECT * FROM app.w WHERE w = 5",
        ] {
            assert_general(&app, &root, sql);
        }
    }

    #[tokio::test]
    async fn reads_of_a_key_of_two_columns_answer_as_the_planner_does() {
        let dir = tempfile::tempdir().unwrap();
        let backend =
            Arc::new(RocksDbBackend::open(dir.path(), &RocksDbOptions::default()).unwrap());
        let app = AppContext::open(backend, &CoreOptions::default()).unwrap();
        let mut root = ExecutionContext::new(UserId::new("root"), "root", Role::System);
        let rows: Vec<String> = (-10..300)
            .map(|i: i64| format!("('r{}', {i}, 'b{i}')", i.rem_euclid(4)))
            .collect();
        let setup = format!(
            "CREATE NAMESPACE app; \
             CREATE SHARED TABLE app.m (room TEXT, id BIGINT, body TEXT, PRIMARY KEY (room, id)); \
             INSERT INTO app.m VALUES {}; DELETE FROM app.m WHERE room = 'r1' AND id = 5",
            rows.join(",")
        );
        app.execute(&mut root, &setup, &[]).await.unwrap();
        let params = [serde_json::json!("r2"), serde_json::json!(100)];
        let fast = [
            ("SELECT * FROM app.m WHERE room = 'r1' AND id = 9", &root),
            ("SELECT * FROM app.m WHERE id = 9 AND room = 'r1'", &root),
            ("SELECT * FROM app.m WHERE room = 'r1' AND id = 5", &root),
            ("SELECT * FROM app.m WHERE room = 'r1' AND id = 10", &root),
            (
                "SELECT id FROM app.m WHERE room = 'r3' ORDER BY id DESC LIMIT 3",
                &root,
            ),
            (
                "SELECT id, body FROM app.m WHERE room = $1 AND id > $2 ORDER BY id LIMIT 5",
                &root,
            ),
            (
                "SELECT room, id FROM app.m WHERE room IN ('r0', 'r2') AND id < 3",
                &root,
            ),
            (
                "SELECT room, id FROM app.m WHERE room IN ('r0', 'r2') AND id IN (4, -10, 2) ORDER BY room DESC",
                &root,
            ),
            (
                "SELECT room, id FROM app.m WHERE room = 'r0' AND (id = -8 OR id IN (292, 296)) ORDER BY room",
                &root,
            ),
            ("SELECT room, id FROM app.m ORDER BY room LIMIT 5", &root),
            (
                "SELECT room, id FROM app.m ORDER BY room, id LIMIT 5",
                &root,
            ),
            (
                "SELECT room, id FROM app.m ORDER BY room DESC, id DESC, body LIMIT 5",
                &root,
            ),
            (
                "SELECT id FROM app.m WHERE room = 'r2' ORDER BY room ASC, id DESC LIMIT 4",
                &root,
            ),
            (
                "SELECT id FROM app.m WHERE room = 'r2' AND id = 6 ORDER BY body, room",
                &root,
            ),
            (
                "SELECT room, id FROM app.m ORDER BY room DESC LIMIT 5",
                &root,
            ),
            ("SELECT room FROM app.m WHERE room = 'zz'", &root),
        ];
        assert_fast_as_planned(&app, &fast, &params).await;
        for sql in [
            // a later key column alone, other columns, or another order
            "SELECT * FROM app.m WHERE id = 9",
            "SELECT * FROM app.m WHERE room = 'r1' AND body = 'b9'",
            "SELECT * FROM app.m WHERE room = 'r1' ORDER BY body LIMIT 2",
            "SELECT * FROM app.m WHERE room IN ('r0', 'r1') ORDER BY id LIMIT 3",
            "SELECT * FROM app.m WHERE room > 'r1' AND id = 3",
            "SELECT * FROM app.m ORDER BY id LIMIT 3",
            "SELECT * FROM app.m ORDER BY room, id DESC LIMIT 3",
            "SELECT * FROM app.m ORDER BY room, body LIMIT 3",
            "SELECT * FROM app.m WHERE room IN ('r0', 'r1') ORDER BY room, id DESC LIMIT 3",
        ] {
            assert_general(&app, &root, sql);
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn index_reads_answer_as_the_planner_does() {
        let dir = tempfile::tempdir().unwrap();
        let backend =
            Arc::new(RocksDbBackend::open(dir.path(), &RocksDbOptions::default()).unwrap());
        let app = AppContext::open(backend, &CoreOptions::default()).unwrap();
        app.job_manager.start(&app).unwrap();
        let mut root = ExecutionContext::new(UserId::new("root"), "root", Role::System);
        let rows: Vec<String> = (-20..2000)
            .map(|i| {
                let room = if i % 50 == 0 {
                    "NULL".to_string()
                } else {
                    (i % 7).to_string()
                };
                format!("({i}, {room}, 'b{i}')")
            })
            .collect();
        let setup = format!(
            "CREATE NAMESPACE app; \
             CREATE SHARED TABLE app.x (id BIGINT PRIMARY KEY, room INT, body TEXT); \
             INSERT INTO app.x VALUES {}; \
             DELETE FROM app.x WHERE id = 3; UPDATE app.x SET room = 6 WHERE id = 10; \
             CREATE INDEX x_room ON app.x (room); \
             CREATE USER TABLE app.n (id INT PRIMARY KEY, tag TEXT); CREATE INDEX n_tag ON app.n (tag)",
            rows.join(",")
        );
        app.execute(&mut root, &setup, &[]).await.unwrap();
        let mut ann = ExecutionContext::new(UserId::new("ann"), "ann", Role::User);
        let mut bob = ExecutionContext::new(UserId::new("bob"), "bob", Role::User);
        for (ctx, sql) in [
            (
                &mut ann,
                "INSERT INTO app.n VALUES (1, 'red'), (2, 'blue'), (3, 'red')",
            ),
            (
                &mut bob,
                "INSERT INTO app.n VALUES (4, 'red'), (5, 'green')",
            ),
        ] {
            app.execute(ctx, sql, &[]).await.unwrap();
        }
        let params = [serde_json::json!(4)];
        let fast = [
            (
                "SELECT * FROM app.x WHERE room = 3 ORDER BY id DESC LIMIT 10",
                &root,
            ),
            ("SELECT id FROM app.x WHERE room = $1 ORDER BY id", &root),
            (
                "SELECT id FROM app.x WHERE 5 = room AND room = 5 ORDER BY id LIMIT 7",
                &root,
            ),
            (
                "SELECT id, room FROM app.x ORDER BY room DESC LIMIT 40",
                &root,
            ),
            ("SELECT id, room FROM app.x ORDER BY room LIMIT 5", &root),
            (
                "SELECT id FROM app.x WHERE room IN (1, 2) ORDER BY room LIMIT 20",
                &root,
            ),
            (
                "SELECT id FROM app.x WHERE room > 4 ORDER BY room DESC LIMIT 7",
                &root,
            ),
            (
                "SELECT id FROM app.x WHERE room BETWEEN 1 AND 2 ORDER BY room LIMIT 9",
                &root,
            ),
            ("SELECT id FROM app.x WHERE room = 99", &root),
            ("SELECT body FROM app.x WHERE room = 3 ORDER BY id", &root),
            ("SELECT id FROM app.n WHERE tag = 'red' ORDER BY id", &ann),
            ("SELECT id FROM app.n WHERE tag = 'red' ORDER BY id", &bob),
            ("SELECT tag FROM app.n ORDER BY tag DESC LIMIT 5", &ann),
        ];
        assert_fast_as_planned(&app, &fast, &params).await;
        for sql in [
            // a whole index without a small LIMIT, another order, a
            // predicate the index does not answer exactly
            "SELECT id FROM app.x ORDER BY room",
            "SELECT id FROM app.x ORDER BY room LIMIT 5000",
            "SELECT id FROM app.x WHERE room = 3 ORDER BY body LIMIT 3",
            "SELECT id FROM app.x WHERE room IN (1, 2) ORDER BY id LIMIT 3",
            "SELECT id FROM app.x WHERE room IS NULL",
            "SELECT id FROM app.x WHERE room = 3 OR body = 'b1'",
            "SELECT id FROM app.x ORDER BY room NULLS FIRST LIMIT 3",
        ] {
            assert_general(&app, &root, sql);
        }
    }
}
