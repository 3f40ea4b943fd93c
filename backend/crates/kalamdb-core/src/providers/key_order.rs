//! A physical optimizer rule: a sort on the primary key, above filters and
//! repartitions that keep their input's order, is answered by reading the
//! table in that order (forward or backward) instead of sorting.
//!
//! DataFusion's own sort pushdown stops at a `FilterExec`, so
//! `WHERE room = 5 ORDER BY id DESC LIMIT 10` would sort every matching row
//! of the table. Here the scan below the filter reads backward, the sort
//! goes, and its LIMIT moves to the filter: the query reads rows only until
//! it has found ten.

use super::scan::RowScanExec;
use datafusion::common::config::ConfigOptions;
use datafusion::common::tree_node::{Transformed, TransformedResult, TreeNode};
use datafusion::error::Result;
use datafusion::physical_expr::PhysicalSortExpr;
use datafusion::physical_expr::expressions::Column;
use datafusion::physical_optimizer::PhysicalOptimizerRule;
use datafusion::physical_plan::execution_plan::{ChildrenPropertiesMode, ReplaceChildrenOptions};
use datafusion::physical_plan::filter::FilterExec;
use datafusion::physical_plan::limit::{GlobalLimitExec, LocalLimitExec};
use datafusion::physical_plan::repartition::RepartitionExec;
use datafusion::physical_plan::sorts::sort::SortExec;
use datafusion::physical_plan::{
    ExecutionPlan, ExecutionPlanProperties, Partitioning, SortOrderPushdownResult,
};
use std::sync::Arc;

#[derive(Debug, Default)]
pub struct KeyOrderScan;

impl PhysicalOptimizerRule for KeyOrderScan {
    fn optimize(
        &self,
        plan: Arc<dyn ExecutionPlan>,
        _config: &ConfigOptions,
    ) -> Result<Arc<dyn ExecutionPlan>> {
        plan.transform_down(|node| {
            let Some(sort) = node.downcast_ref::<SortExec>() else {
                return Ok(Transformed::no(node));
            };
            let limited = sort.fetch().is_some();
            let order = sort.expr().as_ref();
            let Some((input, covered)) = in_key_order(sort.input(), order, limited)? else {
                return Ok(Transformed::no(node));
            };
            let needed = covered.unwrap_or(order.len());
            // The scan took the sort's first `needed` expressions (the rest
            // never matters past a whole unique key, or reading an index in
            // the sort's whole order).
            let partitions = input.output_partitioning().partition_count();
            if (needed > 0
                && !input
                    .equivalence_properties()
                    .ordering_satisfy(order[..needed].iter().cloned())?)
                || (partitions > 1 && !sort.preserve_partitioning())
            {
                return Ok(Transformed::no(node));
            }
            let replaced = match sort.fetch() {
                None => input,
                Some(n) => input.with_fetch(Some(n)).unwrap_or_else(|| {
                    if sort.preserve_partitioning() {
                        Arc::new(LocalLimitExec::new(input, n))
                    } else {
                        Arc::new(GlobalLimitExec::new(input, 0, Some(n)))
                    }
                }),
            };
            Ok(Transformed::yes(replaced))
        })
        .data()
    }

    fn name(&self) -> &str {
        "KeyOrderScan"
    }

    fn schema_check(&self) -> bool {
        true
    }
}

/// A plan yielding its rows in a sort's order, and after how many of the
/// sort's expressions the rest never matters (`None`: all are needed).
type KeyOrdered = (Arc<dyn ExecutionPlan>, Option<usize>);

/// `plan` rebuilt to yield its rows in `order`, if it is a table scan of
/// ours, under only nodes that keep their input's order and columns, with
/// — when the rows' order past the first n of `order`'s expressions never
/// matters (a whole unique key is sorted on by then) — that n. Under a LIMIT (`limited`) a round-robin repartition of the one
/// scan is left out: each of its partitions would read until it had the
/// whole LIMIT.
fn in_key_order(
    plan: &Arc<dyn ExecutionPlan>,
    order: &[PhysicalSortExpr],
    limited: bool,
) -> Result<Option<KeyOrdered>> {
    if let Some(scan) = plan.downcast_ref::<RowScanExec>() {
        let covered = scan.key_sort(order).map(|(_, covered)| covered);
        return Ok(match (scan.try_pushdown_sort(order)?, covered) {
            (SortOrderPushdownResult::Exact { inner }, Some(covered)) => Some((inner, covered)),
            // under a LIMIT, an index on the sort's column reads n rows
            _ if limited => scan
                .in_index_order(order)
                .map(|exec| (Arc::new(exec) as Arc<dyn ExecutionPlan>, None)),
            _ => None,
        });
    }
    let passes = plan.is::<FilterExec>() || plan.is::<RepartitionExec>();
    let children = plan.children();
    if !passes || children.len() != 1 || plan.maintains_input_order() != [true] {
        return Ok(None);
    }
    // a filter may project: the sort's columns are found in the filter's
    // input by the projection, as far as they are plain columns there (the
    // scan below must not need the rest)
    let mapped: Vec<PhysicalSortExpr>;
    let mapped_from = order.len();
    let order = match plan
        .downcast_ref::<FilterExec>()
        .and_then(|f| f.projection().clone())
    {
        Some(projection) => {
            let input = children[0].schema();
            mapped = order
                .iter()
                .map_while(|sort| {
                    let column = sort.expr.downcast_ref::<Column>()?;
                    let &at = projection.get(column.index())?;
                    Some(PhysicalSortExpr::new(
                        Arc::new(Column::new(input.field(at).name(), at)),
                        sort.options,
                    ))
                })
                .collect();
            if mapped.is_empty() {
                return Ok(None);
            }
            &mapped[..]
        }
        None if plan.schema() == children[0].schema() => order,
        None => return Ok(None),
    };
    let Some((child, covered)) = in_key_order(children[0], order, limited)? else {
        return Ok(None);
    };
    if covered.is_none() && order.len() < mapped_from {
        // the scan sorts on what was mapped, not on the rest
        return Ok(None);
    }
    if limited
        && let Some(repartition) = plan.downcast_ref::<RepartitionExec>()
        && matches!(repartition.partitioning(), Partitioning::RoundRobinBatch(_))
        && child.output_partitioning().partition_count() == 1
    {
        return Ok(Some((child, covered)));
    }
    Arc::clone(plan)
        .replace_children(
            vec![child],
            ReplaceChildrenOptions::new(ChildrenPropertiesMode::Recompute),
        )
        .map(|plan| Some((plan, covered)))
}

/// The server's physical optimizer rules: DataFusion's, with [`KeyOrderScan`]
/// right after DataFusion's own sort pushdown (and before the checks that end
/// the list), and `CooperativeJoins` last (joins yield, so queries stay
/// cancellable).
pub fn physical_rules() -> Vec<Arc<dyn PhysicalOptimizerRule + Send + Sync>> {
    let mut rules = datafusion::physical_optimizer::optimizer::PhysicalOptimizer::new().rules;
    let at = rules
        .iter()
        .position(|r| r.name() == "PushdownSort")
        .map_or(rules.len(), |i| i + 1);
    rules.insert(at, Arc::new(KeyOrderScan));
    rules.push(Arc::new(super::cooperative::CooperativeJoins));
    rules
}
