//! The `.slt` runner: `sqllogictest` records run against a governed
//! session over the test catalog, with the named test tokens.
//!
//! Directives (as `statement ok` records): `USE TOKEN <name>` switches the
//! token for the following records; `USE DIALECT <name>` the dialect
//! (`datafusion` is the default; a frontend's runner plans the others).
//! Results are compared cell by cell: each row has exactly the record's
//! columns (`query TT` has two), NULL prints as `NULL` and an empty string
//! as `(empty)`, so neither can pass for the other or vanish; white space
//! inside a cell is folded, so indented EXPLAIN lines compare however the
//! file was indented. A result cut at the token's `row_limit` ends with a
//! `-- truncated` row. `SLUICE_SLT_COMPLETE=1` rewrites the expected
//! results.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use arrow::util::display::{ArrayFormatter, FormatOptions};
use async_trait::async_trait;
use futures::TryStreamExt;
use futures::future::BoxFuture;
use sluice_planner::{Error, GovernedPlan, Governor, TokenScope};
use sqllogictest::{DBOutput, DefaultColumnType};

/// How a runner plans a statement in a dialect (`datafusion` or one of a
/// frontend's).
pub type Planner = Arc<
    dyn Fn(
            Arc<Governor>,
            Arc<TokenScope>,
            String,
            String,
        ) -> BoxFuture<'static, Result<GovernedPlan, Error>>
        + Send
        + Sync,
>;

/// A planner that knows only DataFusion's dialect.
pub fn datafusion_planner() -> Planner {
    Arc::new(|governor, scope, dialect, sql| {
        Box::pin(async move {
            if dialect != "datafusion" {
                return Err(Error::refused(
                    sluice_planner::ErrorKind::Unsupported,
                    format!("this runner does not know the {dialect} dialect"),
                ));
            }
            governor.plan(&scope, &sql).await
        })
    })
}

struct GovernedDb {
    governor: Arc<Governor>,
    planner: Planner,
    scope: Arc<TokenScope>,
    dialect: String,
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
            self.scope = crate::tokens::token(name.trim());
            return Ok(DBOutput::StatementComplete(0));
        }
        if let Some(d) = sql.trim().strip_prefix("USE DIALECT ") {
            self.dialect = d.trim().to_ascii_lowercase();
            return Ok(DBOutput::StatementComplete(0));
        }
        let err = |e: Error| SltError(e.to_string());
        let plan = (self.planner)(
            Arc::clone(&self.governor),
            Arc::clone(&self.scope),
            self.dialect.clone(),
            sql.to_string(),
        )
        .await
        .map_err(err)?;
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
            let formatters = batch
                .columns()
                .iter()
                .map(|c| ArrayFormatter::try_new(c.as_ref(), &options))
                .collect::<Result<Vec<_>, _>>()
                .map_err(|e| SltError(e.to_string()))?;
            for r in 0..batch.num_rows() {
                let values: Vec<String> = formatters
                    .iter()
                    .map(|f| cell(f.value(r).to_string()))
                    .collect();
                if is_explain {
                    // One row per plan line, so EXPLAIN output reads
                    // naturally in the file.
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
        Ok(DBOutput::Rows {
            types: vec![DefaultColumnType::Any; schema.fields().len()],
            rows,
        })
    }

    async fn shutdown(&mut self) {}

    fn engine_name(&self) -> &str {
        "sluice"
    }
}

/// A value as the files show it: an empty string is `(empty)`.
fn cell(value: String) -> String {
    if value.is_empty() {
        "(empty)".to_string()
    } else {
        value
    }
}

/// The `.slt` files directly in `dir`, in name order.
///
/// # Panics
///
/// When `dir` cannot be read or holds no `.slt` file.
pub fn files(dir: &Path) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|e| e == "slt"))
        .collect();
    files.sort();
    assert!(!files.is_empty(), "no .slt files in {}", dir.display());
    files
}

/// Runs `files` against `governor`, starting each file as the `admin`
/// token in the `datafusion` dialect; every failure is collected.
///
/// # Panics
///
/// When a record fails (all failures are listed), or a file cannot be
/// rewritten under `SLUICE_SLT_COMPLETE=1`.
pub async fn run(files: &[PathBuf], governor: Governor, planner: Planner) {
    let governor = Arc::new(governor);
    let complete = std::env::var("SLUICE_SLT_COMPLETE").is_ok_and(|v| v == "1");
    let mut failures = Vec::new();
    for file in files {
        let g = Arc::clone(&governor);
        let p = Arc::clone(&planner);
        let mut runner = sqllogictest::Runner::new(move || {
            let governor = Arc::clone(&g);
            let planner = Arc::clone(&p);
            async move {
                Ok::<_, SltError>(GovernedDb {
                    governor,
                    planner,
                    scope: crate::tokens::token("admin"),
                    dialect: "datafusion".to_string(),
                })
            }
        });
        runner.with_column_validator(same_column_count);
        runner.with_validator(cells_match);
        if complete {
            runner
                .update_test_file(
                    file,
                    " ",
                    cells_match,
                    sqllogictest::default_normalizer,
                    same_column_count,
                )
                .await
                .unwrap_or_else(|e| panic!("{}: {e}", file.display()));
        } else if let Err(e) = runner.run_file_async(file).await {
            failures.push(format!("{}: {e}", file.display()));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
}

/// A record's declared columns (`query TTI`) are exactly the result's.
#[allow(clippy::ptr_arg)]
fn same_column_count(actual: &Vec<DefaultColumnType>, expected: &Vec<DefaultColumnType>) -> bool {
    actual.len() == expected.len()
}

/// Every row equals its expected line, cell after cell (the cells are
/// joined by a space), with runs of white space folded.
fn cells_match(
    _normalizer: sqllogictest::Normalizer,
    actual: &[Vec<String>],
    expected: &[String],
) -> bool {
    let fold = |s: &str| s.split_whitespace().collect::<Vec<_>>().join(" ");
    actual.len() == expected.len()
        && actual
            .iter()
            .zip(expected)
            .all(|(row, line)| fold(&row.join(" ")) == fold(line))
}
