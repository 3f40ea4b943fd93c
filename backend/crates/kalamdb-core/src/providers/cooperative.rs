//! `CooperativeJoins`: every join's output counts against tokio's
//! cooperative budget, so a query stuck producing join rows still yields to
//! the scheduler every so often.
//!
//! DataFusion makes leaves cooperative (our scan is), but a join can turn
//! one input batch into millions of output rows without polling its inputs
//! again: the task running it (and the partition tasks DataFusion spawns)
//! would never yield, so nothing could stop it — not the query's time limit,
//! not a client that disconnected (hyper notices the closed connection only
//! when the request's future yields), not an abort of its spawned tasks.
//! Wrapping the join in `CooperativeExec` makes it give way every budget's
//! worth of batches (a few milliseconds); the overhead is one counter per
//! batch.

use datafusion::common::config::ConfigOptions;
use datafusion::common::tree_node::{Transformed, TransformedResult, TreeNode};
use datafusion::error::Result;
use datafusion::physical_optimizer::PhysicalOptimizerRule;
use datafusion::physical_plan::ExecutionPlan;
use datafusion::physical_plan::coop::CooperativeExec;
use datafusion::physical_plan::joins::{
    CrossJoinExec, HashJoinExec, NestedLoopJoinExec, SortMergeJoinExec, SymmetricHashJoinExec,
};
use std::sync::Arc;

#[derive(Debug, Default)]
pub struct CooperativeJoins;

fn is_join(plan: &Arc<dyn ExecutionPlan>) -> bool {
    plan.downcast_ref::<CrossJoinExec>().is_some()
        || plan.downcast_ref::<NestedLoopJoinExec>().is_some()
        || plan.downcast_ref::<HashJoinExec>().is_some()
        || plan.downcast_ref::<SortMergeJoinExec>().is_some()
        || plan.downcast_ref::<SymmetricHashJoinExec>().is_some()
}

impl PhysicalOptimizerRule for CooperativeJoins {
    fn optimize(
        &self,
        plan: Arc<dyn ExecutionPlan>,
        _config: &ConfigOptions,
    ) -> Result<Arc<dyn ExecutionPlan>> {
        plan.transform_up(|node| {
            if is_join(&node) {
                Ok(Transformed::yes(
                    Arc::new(CooperativeExec::new(node)) as Arc<dyn ExecutionPlan>
                ))
            } else {
                Ok(Transformed::no(node))
            }
        })
        .data()
    }

    fn name(&self) -> &str {
        "CooperativeJoins"
    }

    fn schema_check(&self) -> bool {
        true
    }
}
