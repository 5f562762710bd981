//! Bench baseline (`benches/engine.py`): a statement with the policy
//! written by hand, run by in-process DataFusion over Parquet directories
//! (no gateway, no Iceberg), printing one JSON line of timings
//! (milliseconds per run) and the rows returned. `sluice_mask_hash(text)`
//! is the gateway's own `hash` mask under the key given, so a hashed column
//! costs the same here as through the gateway.
//!
//! ```text
//! cargo run --release --example hand_written -- <mask key> <iterations> <sql> <table>=<parquet dir> ...
//! ```

use std::sync::Arc;

use datafusion::logical_expr::ScalarUDF;
use datafusion::prelude::SessionContext;
use sluice_planner::Mask;
use sluice_planner::masks::{MaskKey, MaskUdf};

#[path = "support/bench.rs"]
mod bench;

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().collect();
    let [_, key, iterations, sql, tables @ ..] = args.as_slice() else {
        return Err(
            "usage: hand_written <mask key> <iterations> <sql> <table>=<parquet dir> ...".into(),
        );
    };
    let ctx = SessionContext::new();
    bench::register_parquet_tables(&ctx, tables).await?;
    let key = MaskKey::new(key.as_bytes());
    ctx.register_udf(ScalarUDF::new_from_shared_impl(Arc::new(MaskUdf::new(
        Mask::Hash,
        Some(key),
    ))));
    bench::print_timed_runs(&ctx, sql, iterations.parse()?).await
}
