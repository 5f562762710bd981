//! `EXPLAIN` for tokens that are not admins, rendered from the plan tree:
//! every node above a secure view as DataFusion shows it, each
//! `SecureViewExec` in its short form (table, masks, whether rows are
//! filtered) and nothing below it: the connector scan and the policy filter
//! read hidden columns. Built from the tree, not by editing text, so no
//! literal can change what is shown.

use std::sync::Arc;

use arrow::array::{RecordBatch, StringArray};
use datafusion::error::DataFusionError;
use datafusion::logical_expr::Explain;
use datafusion::physical_plan::{ExecutionPlan, displayable};
use datafusion::prelude::SessionContext;

use super::plan::friendly;
use crate::error::Result;
use crate::secure_view::SecureViewExec;

/// The two rows (`logical_plan`, `physical_plan`) of a redacted `EXPLAIN`.
pub(super) async fn redacted(ctx: &SessionContext, explain: &Explain) -> Result<RecordBatch> {
    let state = ctx.state();
    let optimized = state.optimize(&explain.plan).map_err(friendly)?;
    let physical = state
        .create_physical_plan(&explain.plan)
        .await
        .map_err(friendly)?;
    let mut lines = Vec::new();
    render(&physical, 0, &mut lines);
    let kinds = StringArray::from(vec!["logical_plan", "physical_plan"]);
    let plans = StringArray::from(vec![
        optimized.display_indent().to_string(),
        lines.join("\n"),
    ]);
    let schema = Arc::new(explain.schema.as_arrow().clone());
    Ok(
        RecordBatch::try_new(schema, vec![Arc::new(kinds), Arc::new(plans)])
            .map_err(DataFusionError::from)?,
    )
}

fn render(plan: &Arc<dyn ExecutionPlan>, depth: usize, out: &mut Vec<String>) {
    let pad = "  ".repeat(depth);
    if let Some(view) = plan.as_any().downcast_ref::<SecureViewExec>() {
        out.push(format!("{pad}{}", view.short_display()));
        return;
    }
    // Scheduling wrappers (see `coop`) say nothing about the query.
    if plan.name() == "CooperativeExec" {
        for child in plan.children() {
            render(child, depth, out);
        }
        return;
    }
    let line = displayable(plan.as_ref()).one_line().to_string();
    out.push(format!("{pad}{}", line.trim_end()));
    for child in plan.children() {
        render(child, depth + 1, out);
    }
}
