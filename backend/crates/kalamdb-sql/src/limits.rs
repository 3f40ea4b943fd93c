//! Structural limits on a parsed statement, checked before anything recurses
//! over it (planner, optimizer, executor, and the derived `Clone`/`Drop`/
//! `Hash` of plans), so that no statement can overflow a thread's stack.
//!
//! sqlparser bounds nesting through parentheses and subqueries itself (its
//! recursion limit), but builds some shapes in a loop that later code walks
//! recursively: `a + b + … + z` and `x OR y OR …` become left-deep
//! expression trees, `q UNION ALL q UNION ALL …` a left-deep set-operation
//! tree, and a long `WITH` list or a chain of joins a deep plan. Two numbers
//! bound them:
//!
//! - **expression depth**: how deeply expressions nest (a chain of n binary
//!   operators is n deep);
//! - **query depth**: how deep the relational plan can get: each set
//!   operation, each `WITH` entry and each joined table adds a level, and a
//!   subquery adds its own depth to that of the query around it.
//!
//! The expression check stops descending as soon as the limit is passed, and
//! the query check walks set operations with an explicit stack, so the check
//! itself stays shallow whatever it is given.

use datafusion::sql::sqlparser::ast::{
    Expr, Insert, Parens, Query, SetExpr, Statement, UnaryOperator, Visit, Visitor,
};
use std::ops::ControlFlow;

/// The limits a statement must stay within.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SqlLimits {
    pub max_expression_depth: usize,
    pub max_query_depth: usize,
}

impl Default for SqlLimits {
    fn default() -> Self {
        Self {
            max_expression_depth: 1000,
            max_query_depth: 500,
        }
    }
}

/// Which limit a statement passed, and by how much it was measured.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LimitExceeded {
    ExpressionDepth { limit: usize },
    QueryDepth { depth: usize, limit: usize },
}

impl std::fmt::Display for LimitExceeded {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            LimitExceeded::ExpressionDepth { limit } => write!(
                f,
                "Statement is too complex: expressions nest more than {limit} levels deep \
                 (sql.max_expression_depth); split long chains of operators, e.g. use IN (...) \
                 instead of many ORs"
            ),
            LimitExceeded::QueryDepth { depth, limit } => write!(
                f,
                "Statement is too complex: its query is {depth} levels deep (set operations, \
                 WITH entries and joined tables); the limit is {limit} (sql.max_query_depth)"
            ),
        }
    }
}

/// Checks `statement` against `limits`.
pub fn check_limits(statement: &Statement, limits: &SqlLimits) -> Result<(), LimitExceeded> {
    let mut checker = Checker {
        limits,
        expr_depth: 0,
        query_depths: Vec::new(),
    };
    let walked = match statement {
        Statement::Insert(insert) if literal_rows(insert).is_some() => {
            checker.insert_values(insert)
        }
        _ => statement.visit(&mut checker),
    };
    match walked {
        ControlFlow::Continue(()) => Ok(()),
        ControlFlow::Break(e) => Err(e),
    }
}

/// The rows of `INSERT … VALUES` (no WITH, ORDER BY or LIMIT around them).
fn literal_rows(insert: &Insert) -> Option<&[Parens<Vec<Expr>>]> {
    let query = insert.source.as_deref()?;
    match query.body.as_ref() {
        SetExpr::Values(values)
            if query.with.is_none() && query.order_by.is_none() && query.limit_clause.is_none() =>
        {
            Some(&values.rows)
        }
        _ => None,
    }
}

/// A value that is one level deep whatever it is: a literal, a signed
/// literal, a name (`DEFAULT`).
fn is_flat(expr: &Expr) -> bool {
    match expr {
        Expr::Value(_) | Expr::Identifier(_) => true,
        Expr::UnaryOp {
            op: UnaryOperator::Minus | UnaryOperator::Plus,
            expr,
        } => matches!(expr.as_ref(), Expr::Value(_)),
        _ => false,
    }
}

/// Whether a statement written in `sql_bytes` bytes can pass a limit at all:
/// every level of either depth takes at least one token, so at least one
/// byte, and shorter statements need no walk.
pub fn may_exceed(sql_bytes: usize, limits: &SqlLimits) -> bool {
    sql_bytes > limits.max_expression_depth.min(limits.max_query_depth)
}

/// Checks one expression (a column DEFAULT) against `limits`.
pub fn check_expr(expr: &Expr, limits: &SqlLimits) -> Result<(), LimitExceeded> {
    let mut checker = Checker {
        limits,
        expr_depth: 0,
        query_depths: Vec::new(),
    };
    match expr.visit(&mut checker) {
        ControlFlow::Continue(()) => Ok(()),
        ControlFlow::Break(e) => Err(e),
    }
}

impl Checker<'_> {
    /// A large `INSERT … VALUES` is mostly literals, which cannot nest:
    /// only the other values, and the clauses around the rows, are walked.
    fn insert_values(&mut self, insert: &Insert) -> ControlFlow<LimitExceeded> {
        for row in literal_rows(insert).unwrap_or_default() {
            for expr in row.iter().filter(|e| !is_flat(e)) {
                expr.visit(self)?;
            }
        }
        insert.on.visit(self)?;
        insert.returning.visit(self)
    }
}

struct Checker<'a> {
    limits: &'a SqlLimits,
    expr_depth: usize,
    /// Cumulative query depth of each query being visited, innermost last.
    query_depths: Vec<usize>,
}

impl Visitor for Checker<'_> {
    type Break = LimitExceeded;

    fn pre_visit_expr(&mut self, _expr: &Expr) -> ControlFlow<LimitExceeded> {
        self.expr_depth += 1;
        if self.expr_depth > self.limits.max_expression_depth {
            return ControlFlow::Break(LimitExceeded::ExpressionDepth {
                limit: self.limits.max_expression_depth,
            });
        }
        ControlFlow::Continue(())
    }

    fn post_visit_expr(&mut self, _expr: &Expr) -> ControlFlow<LimitExceeded> {
        self.expr_depth -= 1;
        ControlFlow::Continue(())
    }

    fn pre_visit_query(&mut self, query: &Query) -> ControlFlow<LimitExceeded> {
        let outer = self.query_depths.last().copied().unwrap_or(0);
        let depth = outer.saturating_add(own_depth(query));
        if depth > self.limits.max_query_depth {
            return ControlFlow::Break(LimitExceeded::QueryDepth {
                depth,
                limit: self.limits.max_query_depth,
            });
        }
        self.query_depths.push(depth);
        ControlFlow::Continue(())
    }

    fn post_visit_query(&mut self, _query: &Query) -> ControlFlow<LimitExceeded> {
        self.query_depths.pop();
        ControlFlow::Continue(())
    }
}

/// A query's plan depth, not counting subqueries in expressions or derived
/// tables (the visitor adds those when it reaches them): WITH entries, plus
/// the deepest path through its set operations, where a SELECT counts one
/// level per table it reads.
fn own_depth(query: &Query) -> usize {
    let ctes = query.with.as_ref().map_or(0, |w| w.cte_tables.len());
    let mut deepest = 0usize;
    let mut pending: Vec<(&SetExpr, usize)> = vec![(query.body.as_ref(), 1)];
    while let Some((set, depth)) = pending.pop() {
        match set {
            SetExpr::SetOperation { left, right, .. } => {
                pending.push((left, depth + 1));
                pending.push((right, depth + 1));
            }
            SetExpr::Select(select) => {
                let tables: usize = select.from.iter().map(|t| 1 + t.joins.len()).sum();
                deepest = deepest.max(depth + tables);
            }
            SetExpr::Query(inner) => {
                deepest = deepest.max(depth + own_depth(inner));
            }
            _ => deepest = deepest.max(depth),
        }
    }
    ctes + deepest
}

#[cfg(test)]
mod tests {
    use super::*;
    use datafusion::sql::sqlparser::dialect::GenericDialect;
    use datafusion::sql::sqlparser::parser::Parser;

    fn check(sql: &str, limits: SqlLimits) -> Result<(), LimitExceeded> {
        let statements = Parser::parse_sql(&GenericDialect {}, sql).unwrap();
        check_limits(&statements[0], &limits)
    }

    #[test]
    fn statements_shorter_than_the_limits_are_not_walked() {
        // the shortest statements that pass each limit are longer than it
        let limits = SqlLimits {
            max_expression_depth: 20,
            max_query_depth: 8,
        };
        for sql in [
            format!("SELECT {}", vec!["1"; 21].join("+")),
            format!("SELECT {}1", "- ".repeat(21)),
            ["SELECT 1"; 9].join(" UNION ALL "),
            format!("SELECT 1 FROM {}", ["t"; 9].join(",")),
        ] {
            assert!(check(&sql, limits).is_err(), "{sql}");
            assert!(may_exceed(sql.len(), &limits), "{sql}");
        }
    }

    const SMALL: SqlLimits = SqlLimits {
        max_expression_depth: 10,
        max_query_depth: 5,
    };

    #[test]
    fn operator_chains_count_one_level_per_operator() {
        let chain = |n: usize| format!("SELECT {}", vec!["1"; n].join(" + "));
        // n terms: n-1 operators, plus the literal at the bottom.
        assert!(check(&chain(9), SMALL).is_ok());
        assert_eq!(
            check(&chain(11), SMALL),
            Err(LimitExceeded::ExpressionDepth { limit: 10 })
        );
        let ors = format!(
            "SELECT * FROM t WHERE {}",
            (0..20)
                .map(|i| format!("a = {i}"))
                .collect::<Vec<_>>()
                .join(" OR ")
        );
        assert!(check(&ors, SMALL).is_err());
        // wide is fine: a long IN list or argument list is not deep
        let wide = format!(
            "SELECT * FROM t WHERE a IN ({})",
            (0..500)
                .map(|i| i.to_string())
                .collect::<Vec<_>>()
                .join(", ")
        );
        assert!(check(&wide, SMALL).is_ok());
    }

    #[test]
    fn set_operations_ctes_and_joins_add_query_depth() {
        let unions = |n: usize| vec!["SELECT 1"; n].join(" UNION ALL ");
        assert!(check(&unions(4), SMALL).is_ok());
        assert!(matches!(
            check(&unions(6), SMALL),
            Err(LimitExceeded::QueryDepth { limit: 5, .. })
        ));
        let ctes = |n: usize| {
            let list: Vec<String> = (0..n).map(|i| format!("c{i} AS (SELECT {i})")).collect();
            format!("WITH {} SELECT 1", list.join(", "))
        };
        assert!(check(&ctes(3), SMALL).is_ok());
        assert!(check(&ctes(6), SMALL).is_err());
        assert!(check("SELECT * FROM a JOIN b ON true JOIN c ON true", SMALL).is_ok());
        assert!(check("SELECT * FROM a, b, c, d, e, f", SMALL).is_err());
        // a subquery adds its depth to the query around it
        assert!(
            check(
                "SELECT * FROM a, b WHERE x IN (SELECT y FROM c, d, e)",
                SMALL
            )
            .is_err()
        );
    }

    #[test]
    fn values_are_checked_but_literals_are_not_walked() {
        let deep = format!(
            "INSERT INTO t VALUES (1, 'a'), (2, {}), (-3, DEFAULT)",
            vec!["1"; 20].join(" + ")
        );
        assert!(matches!(
            check(&deep, SMALL),
            Err(LimitExceeded::ExpressionDepth { .. })
        ));
        let flat = "INSERT INTO t VALUES (1, 'a'), (-2, +3), (4, DEFAULT) RETURNING *";
        assert!(check(flat, SMALL).is_ok());
        let deep_returning = format!(
            "INSERT INTO t VALUES (1) RETURNING {}",
            vec!["a"; 20].join(" + ")
        );
        assert!(check(&deep_returning, SMALL).is_err());
    }

    #[test]
    fn a_column_default_is_bounded_like_a_statement() {
        let deep = format!(
            "CREATE TABLE t (id INT PRIMARY KEY, v BIGINT DEFAULT {})",
            vec!["1"; 2000].join(" + ")
        );
        let e = crate::parse_sql(&deep).unwrap_err();
        assert!(e.message.contains("max_expression_depth"), "{}", e.message);
        assert!(
            crate::parse_sql("CREATE TABLE t (id INT PRIMARY KEY, v BIGINT DEFAULT 1 + 2)").is_ok()
        );
    }

    #[test]
    fn the_check_stays_shallow_on_huge_input() {
        // 200,000 operators: the checker stops at the limit instead of
        // walking (and overflowing on) the whole chain.
        let sql = format!("SELECT {}", vec!["1"; 200_000].join("+"));
        let statements = Parser::parse_sql(&GenericDialect {}, &sql).unwrap();
        let result = std::thread::Builder::new()
            .stack_size(256 << 10)
            .spawn(move || {
                let r = check_limits(&statements[0], &SqlLimits::default());
                // dropping a 200,000-deep tree needs a bigger stack than the
                // check: hand it back to the caller's
                (r, statements)
            })
            .unwrap()
            .join();
        let (result, statements) = result.unwrap();
        assert!(result.is_err());
        std::thread::Builder::new()
            .stack_size(512 << 20)
            .spawn(move || drop(statements))
            .unwrap()
            .join()
            .unwrap();
    }
}
