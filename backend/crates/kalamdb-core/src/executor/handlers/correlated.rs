//! Correlated subqueries DataFusion 55 cannot plan, answered by nested-loop
//! evaluation: a scalar subquery whose correlation is not an equality
//! (`SELECT (SELECT count(*) FROM t AS x WHERE x.b < t.b) FROM t`), and a
//! correlated `EXISTS` outside a WHERE conjunct. DataFusion decorrelates
//! neither into a join and has no operator that runs a subquery per row; it
//! fails with "Physical plan does not support logical expression …".
//!
//! Here the plan node holding such a subquery (a projection, filter, sort…)
//! has its input run first; then, for each of the input's rows, the
//! subquery runs with the row's values in place of its outer references —
//! once per distinct combination of them — and its answer (the one value,
//! NULL for no row; for EXISTS whether there is a row) becomes a column of
//! the rows. The node reads that column instead of the subquery, over the
//! rows now held in memory, and the plan is planned again. Bounded: at most
//! [`MAX_OUTER_ROWS`] outer rows, every run under the query's own memory and
//! time limits.

use crate::error::{CoreError, CoreResult};
use datafusion::arrow::array::{ArrayRef, new_empty_array};
use datafusion::arrow::compute::concat_batches;
use datafusion::arrow::datatypes::{DataType, Field, Schema};
use datafusion::arrow::record_batch::RecordBatch;
use datafusion::common::tree_node::{Transformed, TreeNode, TreeNodeRecursion};
use datafusion::common::{Column, ScalarValue};
use datafusion::datasource::{MemTable, provider_as_source};
use datafusion::execution::TaskContext;
use datafusion::execution::session_state::SessionState;
use datafusion::logical_expr::{Expr, LogicalPlan, LogicalPlanBuilder, Subquery, col, lit};
use datafusion::physical_plan::collect;
use std::collections::HashMap;
use std::sync::Arc;

/// The most rows a node's input may have when a subquery is evaluated per
/// row of it.
pub const MAX_OUTER_ROWS: usize = 10_000;

/// The most nodes of one plan answered this way.
const MAX_NODES: usize = 16;

/// The name of the in-memory relation a node's input becomes.
const ROWS: &str = "__kalamdb_rows";

/// A correlated subquery as it appears in an expression.
#[derive(Debug, Clone, PartialEq)]
enum Correlated {
    Scalar(Subquery),
    Exists { subquery: Subquery, negated: bool },
}

impl Correlated {
    fn of(expr: &Expr) -> Option<Self> {
        match expr {
            Expr::ScalarSubquery(s) if !s.outer_ref_columns.is_empty() => {
                Some(Correlated::Scalar(s.clone()))
            }
            Expr::Exists(e) if !e.subquery.outer_ref_columns.is_empty() => {
                Some(Correlated::Exists {
                    subquery: e.subquery.clone(),
                    negated: e.negated,
                })
            }
            _ => None,
        }
    }

    fn subquery(&self) -> &Subquery {
        match self {
            Correlated::Scalar(s) => s,
            Correlated::Exists { subquery, .. } => subquery,
        }
    }

    fn data_type(&self) -> DataType {
        match self {
            Correlated::Scalar(s) => s
                .subquery
                .schema()
                .fields()
                .first()
                .map_or(DataType::Null, |f| f.data_type().clone()),
            Correlated::Exists { .. } => DataType::Boolean,
        }
    }
}

/// The correlated subqueries in `node`'s own expressions (not its inputs').
fn correlated_in(node: &LogicalPlan) -> Vec<Correlated> {
    let mut found: Vec<Correlated> = Vec::new();
    let _ = node.apply_expressions(|e| {
        e.apply(|e| {
            if let Some(c) = Correlated::of(e)
                && !found.contains(&c)
            {
                found.push(c);
            }
            Ok(TreeNodeRecursion::Continue)
        })
    });
    found
}

/// Whether `plan` holds a correlated scalar subquery or EXISTS anywhere
/// (a cheap check before anything else is done).
pub fn has_correlated(plan: &LogicalPlan) -> bool {
    let mut found = false;
    let _ = plan.apply_with_subqueries(|node| {
        found |= !correlated_in(node).is_empty();
        Ok(if found {
            TreeNodeRecursion::Stop
        } else {
            TreeNodeRecursion::Continue
        })
    });
    found
}

/// The node of `plan` holding correlated subqueries that no node below it
/// holds (the last such node in pre-order has none below it).
fn innermost(plan: &LogicalPlan) -> Option<LogicalPlan> {
    let mut last = None;
    let _ = plan.apply(|node| {
        if !correlated_in(node).is_empty() {
            last = Some(node.clone());
        }
        Ok(TreeNodeRecursion::Continue)
    });
    last
}

/// `plan` (optimized) with every correlated subquery DataFusion cannot
/// plan answered row by row (see the module comment).
pub async fn answer(
    state: &SessionState,
    mut plan: LogicalPlan,
    task: &Arc<TaskContext>,
) -> CoreResult<LogicalPlan> {
    let mut answered = 0usize;
    while let Some(node) = innermost(&plan) {
        answered += 1;
        if answered > MAX_NODES {
            return Err(CoreError::NotSupported(format!(
                "More than {MAX_NODES} parts of this query hold correlated subqueries evaluated per row"
            )));
        }
        let replacement = answer_node(state, &node, task, answered).await?;
        plan = plan
            .transform_up(|n| {
                Ok(if n == node {
                    Transformed::yes(replacement.clone())
                } else {
                    Transformed::no(n)
                })
            })?
            .data;
    }
    Ok(plan)
}

/// `node` reading its correlated subqueries' answers from a column of its
/// input's rows, computed here; `n` numbers the columns' names.
async fn answer_node(
    state: &SessionState,
    node: &LogicalPlan,
    task: &Arc<TaskContext>,
    n: usize,
) -> CoreResult<LogicalPlan> {
    let subqueries = correlated_in(node);
    let inputs = node.inputs();
    let [input] = inputs.as_slice() else {
        return Err(not_here());
    };
    let input: &LogicalPlan = input;
    let physical = state.create_physical_plan(input).await?;
    let batches = collect(physical, Arc::clone(task)).await?;
    let rows: usize = batches.iter().map(|b| b.num_rows()).sum();
    if rows > MAX_OUTER_ROWS {
        return Err(CoreError::NotSupported(format!(
            "A correlated subquery whose correlation is not an equality is evaluated per row, for at most {MAX_OUTER_ROWS} rows; this one has {rows}. Rewrite it as a join (with GROUP BY for an aggregate)"
        )));
    }
    let arrow_schema = Arc::new(input.schema().as_arrow().clone());
    let outer = match batches.first() {
        Some(first) => concat_batches(&first.schema(), &batches)
            .map_err(datafusion::error::DataFusionError::from)?,
        None => RecordBatch::new_empty(Arc::clone(&arrow_schema)),
    };
    let mut answers: Vec<(String, ArrayRef)> = Vec::with_capacity(subqueries.len());
    for (j, correlated) in subqueries.iter().enumerate() {
        let column = answers_of(state, task, input, &outer, correlated).await?;
        answers.push((format!("__kalamdb_sq{n}_{j}"), column));
    }
    // the rows in memory, their columns named c0.., then the answers
    let mut fields: Vec<Field> = outer
        .schema()
        .fields()
        .iter()
        .enumerate()
        .map(|(i, f)| Field::new(format!("c{i}"), f.data_type().clone(), true))
        .collect();
    let mut columns: Vec<ArrayRef> = outer.columns().to_vec();
    for (name, array) in &answers {
        fields.push(Field::new(name, array.data_type().clone(), true));
        columns.push(Arc::clone(array));
    }
    let schema = Arc::new(Schema::new(fields));
    let batch = RecordBatch::try_new(Arc::clone(&schema), columns)
        .map_err(datafusion::error::DataFusionError::from)?;
    let table = MemTable::try_new(schema, vec![vec![batch]])?;
    // the input's columns under their own qualified names again, then the
    // answers
    let mut projection: Vec<Expr> = input
        .schema()
        .iter()
        .enumerate()
        .map(|(i, (qualifier, field))| {
            Expr::Column(Column::new(Some(ROWS), format!("c{i}")))
                .alias_qualified(qualifier.cloned(), field.name())
        })
        .collect();
    projection.extend(
        answers
            .iter()
            .map(|(name, _)| Expr::Column(Column::new(Some(ROWS), name)).alias(name)),
    );
    let rows_plan = LogicalPlanBuilder::scan(ROWS, provider_as_source(Arc::new(table)), None)?
        .project(projection)?
        .build()?;
    // the node's expressions read the answers
    let keep_names = matches!(node, LogicalPlan::Projection(_));
    let exprs = node
        .expressions()
        .into_iter()
        .enumerate()
        .map(|(i, e)| {
            let replaced = e.transform_up(|e| {
                let Some(c) = Correlated::of(&e) else {
                    return Ok(Transformed::no(e));
                };
                let at = subqueries.iter().position(|s| *s == c);
                Ok(match at {
                    Some(j) => Transformed::yes(col(answers[j].0.as_str())),
                    None => Transformed::no(e),
                })
            })?;
            Ok(match replaced.data {
                Expr::Alias(a) => Expr::Alias(a),
                // a select list keeps its output's (qualified) names
                data if keep_names && replaced.transformed => {
                    let (qualifier, field) = node.schema().qualified_field(i);
                    data.alias_qualified(qualifier.cloned(), field.name())
                }
                data => data,
            })
        })
        .collect::<CoreResult<Vec<Expr>>>()?;
    let rewritten = node.with_new_exprs(exprs, vec![rows_plan])?;
    if keep_names {
        return Ok(rewritten);
    }
    // any other node passes its input's columns on: the answers stay out
    let columns: Vec<Expr> = node
        .schema()
        .iter()
        .map(|(qualifier, field)| Expr::Column(Column::new(qualifier.cloned(), field.name())))
        .collect();
    Ok(LogicalPlanBuilder::from(rewritten)
        .project(columns)?
        .build()?)
}

/// The answer of `correlated` for each row of `outer` (rows of `input`).
async fn answers_of(
    state: &SessionState,
    task: &Arc<TaskContext>,
    input: &LogicalPlan,
    outer: &RecordBatch,
    correlated: &Correlated,
) -> CoreResult<ArrayRef> {
    let subquery = correlated.subquery();
    // where each outer reference is among the input's columns
    let mut references: Vec<Column> = Vec::new();
    for e in &subquery.outer_ref_columns {
        let _ = e.apply(|e| {
            if let Expr::OuterReferenceColumn(_, c) = e
                && !references.contains(c)
            {
                references.push(c.clone());
            }
            Ok(TreeNodeRecursion::Continue)
        });
    }
    let positions = references
        .iter()
        .map(|c| input.schema().index_of_column(c).map_err(|_| not_here()))
        .collect::<CoreResult<Vec<usize>>>()?;
    let data_type = correlated.data_type();
    let mut memo: HashMap<Vec<ScalarValue>, ScalarValue> = HashMap::new();
    let mut values = Vec::with_capacity(outer.num_rows());
    for row in 0..outer.num_rows() {
        let key = positions
            .iter()
            .map(|&i| ScalarValue::try_from_array(outer.column(i), row))
            .collect::<datafusion::error::Result<Vec<_>>>()?;
        if let Some(v) = memo.get(&key) {
            values.push(v.clone());
            continue;
        }
        let bound = bind(&subquery.subquery, &references, &key)?;
        let value = Box::pin(evaluate(state, task, bound, correlated, &data_type)).await?;
        memo.insert(key, value.clone());
        values.push(value);
    }
    if values.is_empty() {
        return Ok(new_empty_array(&data_type));
    }
    Ok(ScalarValue::iter_to_array(values)?)
}

/// `plan` with each outer reference to `references[i]` replaced by the
/// literal `values[i]`.
fn bind(
    plan: &LogicalPlan,
    references: &[Column],
    values: &[ScalarValue],
) -> CoreResult<LogicalPlan> {
    let bound = plan.clone().transform_up_with_subqueries(|node| {
        node.map_expressions(|e| {
            e.transform_up(|e| match e {
                Expr::OuterReferenceColumn(_, ref c) => {
                    match references.iter().position(|r| r == c) {
                        Some(i) => Ok(Transformed::yes(lit(values[i].clone()))),
                        None => Ok(Transformed::no(e)),
                    }
                }
                other => Ok(Transformed::no(other)),
            })
        })
    })?;
    Ok(bound.data)
}

/// Runs one bound subquery: its one value (NULL for no row), or for EXISTS
/// whether it has a row.
async fn evaluate(
    state: &SessionState,
    task: &Arc<TaskContext>,
    plan: LogicalPlan,
    correlated: &Correlated,
    data_type: &DataType,
) -> CoreResult<ScalarValue> {
    let plan = match correlated {
        Correlated::Exists { .. } => LogicalPlanBuilder::from(plan).limit(0, Some(1))?.build()?,
        // two rows are enough to know there are too many
        Correlated::Scalar(_) => LogicalPlanBuilder::from(plan).limit(0, Some(2))?.build()?,
    };
    let physical = super::subquery::physical_plan(state, &plan, task).await?;
    let batches = collect(physical, Arc::clone(task)).await?;
    let rows: usize = batches.iter().map(|b| b.num_rows()).sum();
    Ok(match correlated {
        Correlated::Exists { negated, .. } => ScalarValue::Boolean(Some((rows > 0) != *negated)),
        Correlated::Scalar(_) if rows > 1 => {
            return Err(CoreError::Execution(
                "More than one row returned by a subquery used as an expression".into(),
            ));
        }
        Correlated::Scalar(_) => match batches.iter().find(|b| b.num_rows() > 0) {
            Some(batch) => ScalarValue::try_from_array(batch.column(0), 0)?,
            None => ScalarValue::try_from(data_type)?,
        },
    })
}

fn not_here() -> CoreError {
    CoreError::NotSupported(
        "This correlated subquery is not supported here: rewrite it as a join (with GROUP BY for an aggregate)".into(),
    )
}
