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
use std::time::Instant;

use datafusion::logical_expr::ScalarUDF;
use datafusion::prelude::{ParquetReadOptions, SessionContext};
use futures::TryStreamExt;
use sluice_planner::Mask;
use sluice_planner::masks::{MaskKey, MaskUdf};

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().collect();
    let [_, key, iterations, sql, tables @ ..] = args.as_slice() else {
        return Err(
            "usage: hand_written <mask key> <iterations> <sql> <table>=<parquet dir> ...".into(),
        );
    };
    let ctx = SessionContext::new();
    for table in tables {
        let (name, dir) = table
            .split_once('=')
            .ok_or("tables are given as <name>=<parquet dir>")?;
        ctx.register_parquet(name, dir, ParquetReadOptions::default())
            .await?;
    }
    let key = MaskKey::new(key.as_bytes());
    ctx.register_udf(ScalarUDF::new_from_shared_impl(Arc::new(MaskUdf::new(
        Mask::Hash,
        Some(key),
    ))));
    let mut times = Vec::new();
    let mut rows = 0usize;
    for _ in 0..iterations.parse::<usize>()? {
        let start = Instant::now();
        let stream = ctx.sql(sql).await?.execute_stream().await?;
        rows = stream
            .try_fold(0usize, |n, b| async move { Ok(n + b.num_rows()) })
            .await?;
        times.push(start.elapsed().as_secs_f64() * 1000.0);
    }
    println!("{}", serde_json::json!({"times_ms": times, "rows": rows}));
    Ok(())
}
