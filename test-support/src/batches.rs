//! Reading results back in assertions: a governed statement's batches, and
//! one column of them as text.

use std::sync::Arc;

use arrow::array::{Array, RecordBatch, StringArray};
use arrow::datatypes::DataType;
use futures::TryStreamExt;
use sluice_planner::{Governor, TokenScope};

/// Plans and runs `sql` for `scope`; every batch of the result.
///
/// # Panics
///
/// When the statement fails (the message names it).
pub async fn collect(governor: &Governor, scope: &Arc<TokenScope>, sql: &str) -> Vec<RecordBatch> {
    let plan = governor
        .plan(scope, sql)
        .await
        .unwrap_or_else(|e| panic!("{sql}: {e}"));
    plan.execute()
        .await
        .unwrap_or_else(|e| panic!("{sql}: {e}"))
        .try_collect()
        .await
        .unwrap_or_else(|e| panic!("{sql}: {e}"))
}

/// Column `col` of `batches` as text (`NULL` for nulls), in row order.
///
/// # Panics
///
/// When the column cannot be cast to text.
pub fn strings(batches: &[RecordBatch], col: usize) -> Vec<String> {
    let mut out = Vec::new();
    for b in batches {
        let a = arrow::compute::cast(b.column(col), &DataType::Utf8).expect("castable to text");
        let a = a
            .as_any()
            .downcast_ref::<StringArray>()
            .expect("a string array");
        for i in 0..a.len() {
            out.push(if a.is_null(i) {
                "NULL".into()
            } else {
                a.value(i).to_string()
            });
        }
    }
    out
}

/// Plans and runs `sql` for `scope`: the number of rows, or the error of
/// planning or running it (for tests that expect refusals).
pub async fn row_count(
    governor: &Governor,
    scope: &Arc<TokenScope>,
    sql: &str,
) -> sluice_planner::Result<u64> {
    let stream = governor.plan(scope, sql).await?.execute().await?;
    let batches: Vec<RecordBatch> = stream
        .map_err(sluice_planner::Error::DataFusion)
        .try_collect()
        .await?;
    Ok(batches.iter().map(|b| b.num_rows() as u64).sum())
}
