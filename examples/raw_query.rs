//! Baseline for `benches/e2e.py`: runs a query with in-process DataFusion
//! over an Iceberg SQL catalog, *without* sluice's policy, and prints one
//! JSON line of timings (milliseconds per run, rows returned).
//!
//! ```text
//! cargo run --release --example raw_query -- <catalog uri> <warehouse> <catalog name> <iterations> <sql>
//! ```

use std::time::Instant;

use futures::TryStreamExt;
use sluice_connectors::{IcebergCatalogConfig, IcebergCatalogKind, load_iceberg_catalog};

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().collect();
    let [_, uri, warehouse, name, iterations, sql] = args.as_slice() else {
        return Err(
            "usage: raw_query <catalog uri> <warehouse> <catalog name> <iterations> <sql>".into(),
        );
    };
    let cfg = IcebergCatalogConfig {
        catalog: IcebergCatalogKind::Sql,
        catalog_name: Some(name.clone()),
        uri: uri.clone(),
        warehouse: Some(warehouse.clone()),
        props: Default::default(),
        s3: None,
        tables: Default::default(),
        refresh_interval: sluice_connectors::DEFAULT_REFRESH_INTERVAL,
    };
    let ctx = datafusion::prelude::SessionContext::new();
    ctx.register_catalog(name, load_iceberg_catalog(&cfg).await?);
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
