//! Runs the `.slt` files under `tests/slt/` (repository root) against a
//! governed session over the test catalog of `common.rs`.
//!
//! `USE TOKEN <name>` (as a `statement ok`) switches the token for the
//! following records; `USE DIALECT trino` / `USE DIALECT datafusion`
//! switches the session dialect (Trino: catalog `lake`, schema `sales`,
//! statements classified and planned like the Trino frontend does). `SLUICE_SLT_COMPLETE=1` rewrites the expected results.

mod common;

use std::path::PathBuf;
use std::sync::Arc;

use arrow::util::display::{ArrayFormatter, FormatOptions};
use async_trait::async_trait;
use futures::TryStreamExt;
use sluice_planner::{Dialect, Governor, SessionOptions, TokenScope};
use sqllogictest::{DBOutput, DefaultColumnType};

struct GovernedDb {
    governor: Arc<Governor>,
    scope: Arc<TokenScope>,
    trino: bool,
}

#[derive(Debug, thiserror::Error)]
#[error("{0}")]
struct SltError(String);

#[async_trait]
impl sqllogictest::AsyncDB for GovernedDb {
    type Error = SltError;
    type ColumnType = DefaultColumnType;

    async fn run(&mut self, sql: &str) -> Result<DBOutput<DefaultColumnType>, SltError> {
        if let Some(name) = sql.trim().strip_prefix("USE TOKEN ") {
            self.scope = common::token(name.trim());
            return Ok(DBOutput::StatementComplete(0));
        }
        if let Some(d) = sql.trim().strip_prefix("USE DIALECT ") {
            self.trino = d.trim().eq_ignore_ascii_case("trino");
            return Ok(DBOutput::StatementComplete(0));
        }
        let err = |e: sluice_planner::Error| SltError(e.to_string());
        let plan = if self.trino {
            let statement = sluice_planner::trino::classify(sql).map_err(err)?;
            let options = SessionOptions {
                dialect: Dialect::Trino,
                catalog: Some("lake".into()),
                schema: Some("sales".into()),
            };
            self.governor
                .plan_trino(&self.scope, &statement, &options, None)
                .await
                .map_err(err)?
        } else {
            self.governor.plan(&self.scope, sql).await.map_err(err)?
        };
        let schema = plan.schema();
        let is_explain = schema.fields().len() == 2 && schema.field(0).name() == "plan_type";
        let stream = plan.execute().await.map_err(err)?;
        let truncated = stream.truncation_flag();
        let batches: Vec<_> = stream
            .try_collect()
            .await
            .map_err(|e| SltError(e.to_string()))?;
        let options = FormatOptions::default().with_null("NULL");
        let mut rows = Vec::new();
        for batch in &batches {
            let formatters: Vec<_> = batch
                .columns()
                .iter()
                .map(|c| ArrayFormatter::try_new(c.as_ref(), &options).unwrap())
                .collect();
            for r in 0..batch.num_rows() {
                let values: Vec<String> =
                    formatters.iter().map(|f| f.value(r).to_string()).collect();
                if is_explain {
                    // One row per plan line, so EXPLAIN output reads naturally in the file.
                    for (i, line) in values[1].lines().enumerate() {
                        let label = if i == 0 {
                            values[0].clone()
                        } else {
                            String::new()
                        };
                        rows.push(vec![label, line.trim_end().to_string()]);
                    }
                } else {
                    rows.push(values);
                }
            }
        }
        if truncated.load(std::sync::atomic::Ordering::Acquire) {
            rows.push(vec!["-- truncated".to_string()]);
        }
        let width = rows.first().map_or(schema.fields().len(), Vec::len).max(1);
        Ok(DBOutput::Rows {
            types: vec![DefaultColumnType::Any; width],
            rows,
        })
    }

    async fn shutdown(&mut self) {}

    fn engine_name(&self) -> &str {
        "sluice"
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn slt_files() {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../tests/slt");
    let governor = Arc::new(common::governor().with_target_partitions(2));
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "slt"))
        .collect();
    files.sort();
    assert!(!files.is_empty(), "no .slt files in {}", dir.display());
    let complete = std::env::var("SLUICE_SLT_COMPLETE").is_ok_and(|v| v == "1");
    let mut failures = Vec::new();
    for file in &files {
        let g = Arc::clone(&governor);
        let mut runner = sqllogictest::Runner::new(move || {
            let governor = Arc::clone(&g);
            async move {
                Ok::<_, SltError>(GovernedDb {
                    governor,
                    scope: common::token("admin"),
                    trino: false,
                })
            }
        });
        runner.with_column_validator(|_, _| true);
        runner.with_validator(whitespace_insensitive);
        if complete {
            runner
                .update_test_file(
                    file,
                    " ",
                    whitespace_insensitive,
                    sqllogictest::default_normalizer,
                    sqllogictest::strict_column_validator,
                )
                .await
                .unwrap();
        } else if let Err(e) = runner.run_file_async(file).await {
            failures.push(format!("{}: {e}", file.display()));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
}

/// Compares rows with runs of white space folded, so indented EXPLAIN lines
/// compare equal however the file's indentation was normalised.
fn whitespace_insensitive(
    _normalizer: sqllogictest::Normalizer,
    actual: &[Vec<String>],
    expected: &[String],
) -> bool {
    let fold = |s: &str| s.split_whitespace().collect::<Vec<_>>().join(" ");
    let actual: Vec<String> = actual.iter().map(|row| fold(&row.join(" "))).collect();
    let expected: Vec<String> = expected.iter().map(|l| fold(l)).collect();
    actual == expected
}
