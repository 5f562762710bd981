//! Cancellation of CPU-bound plans.
//!
//! DataFusion yields to the runtime when its *leaf* streams run out of
//! tokio's cooperative budget. A join can produce any number of batches
//! from one input batch without touching a leaf, and an aggregate above
//! it loops over them inside a single poll: such a task never yields, so
//! it can be neither cancelled nor timed out, and it holds its thread.
//! [`CooperativeJoins`] puts a `CooperativeExec` (which spends budget on
//! every batch) above every join, so every plan yields regularly.

use std::sync::Arc;

use datafusion::common::Result;
use datafusion::common::tree_node::{Transformed, TreeNode};
use datafusion::config::ConfigOptions;
use datafusion::physical_optimizer::PhysicalOptimizerRule;
use datafusion::physical_plan::ExecutionPlan;
use datafusion::physical_plan::coop::CooperativeExec;

/// Operators that can emit many batches per input batch.
const AMPLIFYING: &[&str] = &[
    "CrossJoinExec",
    "NestedLoopJoinExec",
    "HashJoinExec",
    "SortMergeJoinExec",
    "SymmetricHashJoinExec",
    "PiecewiseMergeJoinExec",
    "UnnestExec",
];

/// Wraps every join (and unnest) in a `CooperativeExec`.
#[derive(Debug, Default)]
pub struct CooperativeJoins;

impl PhysicalOptimizerRule for CooperativeJoins {
    fn optimize(
        &self,
        plan: Arc<dyn ExecutionPlan>,
        _config: &ConfigOptions,
    ) -> Result<Arc<dyn ExecutionPlan>> {
        plan.transform_up(|node| {
            if AMPLIFYING.contains(&node.name()) {
                Ok(Transformed::yes(Arc::new(CooperativeExec::new(node)) as _))
            } else {
                Ok(Transformed::no(node))
            }
        })
        .map(|t| t.data)
    }

    fn name(&self) -> &str {
        "sluice_cooperative_joins"
    }

    fn schema_check(&self) -> bool {
        true
    }
}
