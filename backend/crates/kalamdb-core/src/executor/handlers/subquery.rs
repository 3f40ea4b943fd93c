//! `IN (SELECT …)` where DataFusion 55 cannot plan it: outside a WHERE
//! conjunct (in a select list — `SELECT 1 IN (SELECT …)`, `NULL NOT IN
//! (SELECT …)` —, a CASE, an ORDER BY), DataFusion neither decorrelates
//! the subquery into a join nor has a physical operator for it, and fails
//! with "Physical plan does not support logical expression InSubquery".
//! An uncorrelated one is answered here: the subquery runs first (under the
//! query's own limits), and the `IN` becomes a list of its values, which
//! keeps SQL's NULL semantics (`x IN (…, NULL)` is NULL when x is not
//! found; `NULL IN (…)` is NULL; anything `IN` an empty set is false, `NOT
//! IN` it true). A correlated one in those places is still refused, with a
//! clear error (docs/sql.md).

use crate::error::{CoreError, CoreResult};
use datafusion::common::tree_node::{Transformed, TreeNode, TreeNodeRecursion};
use datafusion::execution::TaskContext;
use datafusion::execution::session_state::SessionState;
use datafusion::logical_expr::expr::InList;
use datafusion::logical_expr::{Expr, LogicalPlan, Subquery, lit};
use datafusion::physical_plan::{ExecutionPlan, collect};
use kalamdb_commons::ErrorCode;
use kalamdb_commons::error_code::HasErrorCode;
use std::sync::Arc;

/// The most values an `IN (SELECT …)` answered here may have.
pub const MAX_IN_VALUES: usize = 100_000;

/// Whether `plan` holds an `IN (SELECT …)` anywhere (a cheap check before
/// anything else is done).
fn has_in_subquery(plan: &LogicalPlan) -> bool {
    let mut found = false;
    let _ = plan.apply(|node| {
        node.apply_expressions(|e| {
            e.apply(|e| {
                found |= matches!(e, Expr::InSubquery(_));
                Ok(if found {
                    TreeNodeRecursion::Stop
                } else {
                    TreeNodeRecursion::Continue
                })
            })
        })
    });
    found
}

/// The uncorrelated `IN (SELECT …)` subqueries left in an optimized plan.
fn left_in_subqueries(plan: &LogicalPlan) -> CoreResult<Vec<Subquery>> {
    let mut found: Vec<Subquery> = Vec::new();
    plan.apply(|node| {
        node.apply_expressions(|e| {
            e.apply(|e| {
                if let Expr::InSubquery(in_subquery) = e
                    && in_subquery.subquery.outer_ref_columns.is_empty()
                    && !found.contains(&in_subquery.subquery)
                {
                    found.push(in_subquery.subquery.clone());
                }
                Ok(TreeNodeRecursion::Continue)
            })
        })
    })?;
    Ok(found)
}

/// The physical plan of `plan`, with every `IN (SELECT …)` DataFusion
/// cannot plan answered first (see the module comment).
pub async fn physical_plan(
    state: &SessionState,
    plan: &LogicalPlan,
    task: &Arc<TaskContext>,
) -> CoreResult<Arc<dyn ExecutionPlan>> {
    if let LogicalPlan::Explain(explain) = plan
        && let Err(e) = state.create_physical_plan(&explain.plan).await
    {
        // EXPLAIN shows a plan only to a caller who may run it: a refusal
        // is the SELECT's own error, not a row of the plan
        let e = CoreError::from(e);
        if e.error_code() == ErrorCode::PermissionDenied {
            return Err(e);
        }
    }
    let correlated = super::correlated::has_correlated(plan);
    if matches!(plan, LogicalPlan::Explain(_)) || !(correlated || has_in_subquery(plan)) {
        return Ok(state.create_physical_plan(plan).await?);
    }
    let mut optimized = state.optimize(plan)?;
    if correlated && super::correlated::has_correlated(&optimized) {
        // answered row by row, then planned again
        optimized = super::correlated::answer(state, optimized, task).await?;
        optimized = state.optimize(&optimized)?;
    }
    let subqueries = left_in_subqueries(&optimized)?;
    if subqueries.is_empty() {
        return Ok(state
            .query_planner()
            .create_physical_plan(&optimized, state)
            .await?);
    }
    let mut answers = Vec::with_capacity(subqueries.len());
    for subquery in subqueries {
        let physical = state.create_physical_plan(&subquery.subquery).await?;
        let batches = collect(physical, Arc::clone(task)).await?;
        let rows: usize = batches.iter().map(|b| b.num_rows()).sum();
        if rows > MAX_IN_VALUES {
            return Err(CoreError::NotSupported(format!(
                "An IN (SELECT …) outside WHERE returns {rows} rows here; at most {MAX_IN_VALUES} are supported (move it into WHERE, or join)"
            )));
        }
        let mut values = Vec::with_capacity(rows);
        for batch in &batches {
            let column = batch.column(0);
            for i in 0..batch.num_rows() {
                values.push(lit(datafusion::common::ScalarValue::try_from_array(
                    column, i,
                )?));
            }
        }
        answers.push((subquery, values));
    }
    let answer = |e: Expr| {
        e.transform_up(|e| match e {
            Expr::InSubquery(in_subquery) => {
                match answers.iter().find(|(s, _)| *s == in_subquery.subquery) {
                    Some((_, values)) if values.is_empty() => {
                        Ok(Transformed::yes(lit(in_subquery.negated)))
                    }
                    Some((_, values)) => Ok(Transformed::yes(Expr::InList(InList {
                        expr: in_subquery.expr,
                        list: values.clone(),
                        negated: in_subquery.negated,
                    }))),
                    None => Ok(Transformed::no(Expr::InSubquery(in_subquery))),
                }
            }
            other => Ok(Transformed::no(other)),
        })
    };
    let rewritten = optimized
        .transform_up(|node| {
            // a select list keeps its output names
            let names = matches!(node, LogicalPlan::Projection(_));
            node.map_expressions(|e| {
                let name = e.schema_name().to_string();
                let answered = answer(e)?;
                Ok(match answered.data {
                    Expr::Alias(_) => answered,
                    data if names && answered.transformed => Transformed::yes(data.alias(name)),
                    data => Transformed::new_transformed(data, answered.transformed),
                })
            })
        })?
        .data;
    // planned again: the lists get the coercions a written IN list gets
    Ok(state.create_physical_plan(&rewritten).await?)
}

/// DataFusion's refusal of a subquery it cannot plan, said plainly.
pub fn explain_refusal(error: CoreError) -> CoreError {
    let text = error.to_string();
    if text.contains("subquery can only be used in") && text.contains("Sort:") {
        return CoreError::NotSupported(
            "IN (SELECT …) in ORDER BY is not supported: select it (SELECT …, x IN (SELECT …) AS f) and ORDER BY f".into(),
        );
    }
    if text.contains("Correlated scalar subquery can only be used in") {
        return CoreError::NotSupported(
            "A correlated subquery in ORDER BY (or GROUP BY, a join condition) is not supported: select it with an alias (SELECT …, (SELECT …) AS s) and use s".into(),
        );
    }
    if text.contains("Physical plan does not support logical expression ScalarSubquery")
        || text.contains("Physical plan does not support logical expression InSubquery")
        || text.contains("Physical plan does not support logical expression Exists")
    {
        return CoreError::NotSupported(
            "This subquery is not supported yet: a correlated IN (SELECT …) outside WHERE, or a correlated subquery nested where it cannot be evaluated per row. Rewrite it as a join (with GROUP BY for an aggregate)".into(),
        );
    }
    error
}
