//! Runs the Trino-dialect `.slt` files under `tests/slt/trino/`
//! (repository root) against a governed session over the test catalog (see
//! `sluice_test_support::slt` for the directives and how results compare).
//! `USE DIALECT trino` plans like the Trino frontend: statements classified,
//! metadata statements as queries over Trino's metadata, in a session whose
//! catalog is `lake` and schema `sales`.

use std::path::PathBuf;
use std::sync::Arc;

use sluice_planner::SessionOptions;
use sluice_test_support::slt::{self, Planner};
use sluice_trino::TrinoDialect;
use sluice_trino::plan::plan_trino;
use sluice_trino::statement::classify;

fn trino_planner() -> Planner {
    Arc::new(|governor, scope, dialect, sql| {
        Box::pin(async move {
            if dialect != "trino" {
                return governor.plan(&scope, &sql).await;
            }
            let statement = classify(&sql)?;
            let options = SessionOptions {
                dialect: Arc::new(TrinoDialect),
                catalog: Some("lake".into()),
                schema: Some("sales".into()),
            };
            plan_trino(&governor, &scope, &statement, &options, None).await
        })
    })
}

#[tokio::test(flavor = "multi_thread")]
async fn slt_files() {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../tests/slt/trino");
    let governor = sluice_test_support::governor().with_target_partitions(2);
    slt::run(&slt::files(&dir), governor, trino_planner()).await;
}
