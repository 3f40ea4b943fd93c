//! The shape of a query: whether it is one plain SELECT (projection, one
//! table, WHERE), and if not, which clause makes it more than that. The
//! point-lookup fast path and live queries take only plain SELECTs.

use crate::sqlparser::ast::{Expr, GroupByExpr, Query, Select, SetExpr, Visit, Visitor};
use std::ops::ControlFlow;

/// The SELECT of `query` if it has no clauses beyond projection, FROM and
/// WHERE (and FROM names at most one table, without joins); otherwise the
/// clause it has, as SQL names it.
pub fn plain_select(query: &Query) -> Result<&Select, &'static str> {
    if query.with.is_some() {
        return Err("WITH");
    }
    if query.order_by.is_some() {
        return Err("ORDER BY");
    }
    if query.limit_clause.is_some() || query.fetch.is_some() {
        return Err("LIMIT");
    }
    ordered_select(query)
}

/// [`plain_select`], where the query may also have ORDER BY and LIMIT (the
/// caller looks at them).
pub fn ordered_select(query: &Query) -> Result<&Select, &'static str> {
    let clause = if query.with.is_some() {
        "WITH"
    } else if query.fetch.is_some() {
        "LIMIT"
    } else if !query.locks.is_empty() {
        "FOR UPDATE"
    } else if query.for_clause.is_some() || query.settings.is_some() {
        "FOR"
    } else if query.format_clause.is_some() || !query.pipe_operators.is_empty() {
        "FORMAT"
    } else {
        ""
    };
    if !clause.is_empty() {
        return Err(clause);
    }
    let select = match query.body.as_ref() {
        SetExpr::Select(select) => select,
        SetExpr::SetOperation { .. } => return Err("UNION / INTERSECT / EXCEPT"),
        SetExpr::Query(_) => return Err("a parenthesised query"),
        SetExpr::Values(_) => return Err("VALUES"),
        _ => return Err("a statement other than SELECT"),
    };
    let clause = if select.distinct.is_some() {
        "DISTINCT"
    } else if select.from.len() > 1 || select.from.iter().any(|f| !f.joins.is_empty()) {
        "JOIN"
    } else if !matches!(&select.group_by, GroupByExpr::Expressions(e, m) if e.is_empty() && m.is_empty())
    {
        "GROUP BY"
    } else if select.having.is_some() {
        "HAVING"
    } else if !select.named_window.is_empty() || select.qualify.is_some() {
        "WINDOW"
    } else if select.top.is_some()
        || select.select_modifiers.is_some()
        || select.exclude.is_some()
        || select.into.is_some()
        || !select.lateral_views.is_empty()
        || select.prewhere.is_some()
        || !select.connect_by.is_empty()
        || !select.cluster_by.is_empty()
        || !select.distribute_by.is_empty()
        || !select.sort_by.is_empty()
        || select.value_table_mode.is_some()
    {
        "a dialect-specific clause"
    } else {
        ""
    };
    if clause.is_empty() {
        Ok(select)
    } else {
        Err(clause)
    }
}

/// Whether `expr` contains a subquery (`(SELECT …)`, `EXISTS`, `IN (SELECT …)`).
pub fn has_subquery(expr: &Expr) -> bool {
    struct Finder;
    impl Visitor for Finder {
        type Break = ();
        fn pre_visit_expr(&mut self, expr: &Expr) -> ControlFlow<()> {
            match expr {
                Expr::Subquery(_) | Expr::Exists { .. } | Expr::InSubquery { .. } => {
                    ControlFlow::Break(())
                }
                _ => ControlFlow::Continue(()),
            }
        }
    }
    expr.visit(&mut Finder).is_break()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::SqlStatement;

    fn shape(sql: &str) -> Result<(), &'static str> {
        let SqlStatement::Standard(s) = crate::parse_sql(sql).unwrap().remove(0).statement else {
            panic!("not standard");
        };
        let crate::sqlparser::ast::Statement::Query(q) = *s else {
            panic!("not a query");
        };
        plain_select(&q).map(drop)
    }

    #[test]
    fn plain_selects_pass_and_every_other_shape_is_named() {
        assert_eq!(
            shape("SELECT * FROM t WHERE a IN (1, 2) AND b IS NULL"),
            Ok(())
        );
        assert_eq!(shape("SELECT a, b FROM ns.t"), Ok(()));
        assert_eq!(shape("SELECT * FROM t ORDER BY a"), Err("ORDER BY"));
        assert_eq!(shape("SELECT * FROM t LIMIT 3"), Err("LIMIT"));
        assert_eq!(shape("WITH x AS (SELECT 1) SELECT * FROM x"), Err("WITH"));
        assert_eq!(
            shape("SELECT * FROM t UNION SELECT * FROM u"),
            Err("UNION / INTERSECT / EXCEPT")
        );
        assert_eq!(shape("SELECT * FROM t JOIN u ON t.a = u.a"), Err("JOIN"));
        assert_eq!(shape("SELECT * FROM t, u"), Err("JOIN"));
        assert_eq!(
            shape("SELECT a, count(*) FROM t GROUP BY a"),
            Err("GROUP BY")
        );
        assert_eq!(shape("SELECT DISTINCT a FROM t"), Err("DISTINCT"));
    }

    #[test]
    fn subqueries_are_found_anywhere_in_an_expression() {
        let expr = |sql: &str| {
            crate::sqlparser::parser::Parser::new(&crate::sqlparser::dialect::GenericDialect {})
                .try_with_sql(sql)
                .unwrap()
                .parse_expr()
                .unwrap()
        };
        assert!(!has_subquery(&expr("a = 1 AND b IN (1, 2)")));
        assert!(has_subquery(&expr("a = 1 AND b IN (SELECT x FROM u)")));
        assert!(has_subquery(&expr("NOT EXISTS (SELECT 1)")));
        assert!(has_subquery(&expr("a > (SELECT max(x) FROM u)")));
    }
}
