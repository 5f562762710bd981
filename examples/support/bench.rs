//! What the bench baselines share: Parquet directories registered as
//! tables, and a statement timed over several runs. Each example includes
//! this file and uses part of it.
#![allow(dead_code)]

use std::time::Instant;

/// The baselines run on the gateway's allocator (see `src/main.rs`), so a
/// comparison measures the gateway, not the allocator.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

use datafusion::prelude::{ParquetReadOptions, SessionContext};
use futures::TryStreamExt;

/// Registers each `<name>=<parquet dir>` of `tables` in `ctx`.
pub(crate) async fn register_parquet_tables(
    ctx: &SessionContext,
    tables: &[String],
) -> Result<(), Box<dyn std::error::Error>> {
    for table in tables {
        let (name, dir) = table
            .split_once('=')
            .ok_or("tables are given as <name>=<parquet dir>")?;
        ctx.register_parquet(name, dir, ParquetReadOptions::default())
            .await?;
    }
    Ok(())
}

/// Runs `sql` `iterations` times and prints one JSON line: milliseconds per
/// run (`times_ms`) and the rows of the last run (`rows`).
pub(crate) async fn print_timed_runs(
    ctx: &SessionContext,
    sql: &str,
    iterations: usize,
) -> Result<(), Box<dyn std::error::Error>> {
    let mut times = Vec::new();
    let mut rows = 0usize;
    for _ in 0..iterations {
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
