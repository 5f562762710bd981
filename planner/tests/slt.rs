//! Runs the DataFusion-dialect `.slt` files under `tests/slt/` (repository
//! root) against a governed session over the test catalog (see
//! `sluice_test_support::slt` for the directives and how results compare).
//! The Trino-dialect files under `tests/slt/trino/` run with the Trino
//! frontend's tests.

use std::path::PathBuf;

use sluice_test_support::slt;

#[tokio::test(flavor = "multi_thread")]
async fn slt_files() {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../tests/slt");
    let governor = sluice_test_support::governor().with_target_partitions(2);
    slt::run(&slt::files(&dir), governor, slt::datafusion_planner()).await;
}
