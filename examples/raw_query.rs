//! Baseline for `benches/e2e.py`: runs a query with in-process DataFusion
//! over an Iceberg SQL catalog, *without* sluice's policy, and prints one
//! JSON line of timings (milliseconds per run, rows returned).
//!
//! ```text
//! cargo run --release --example raw_query -- <catalog uri> <warehouse> <catalog name> <iterations> <sql>
//! ```

use sluice_connectors::{IcebergCatalogConfig, IcebergCatalogKind, load_iceberg_catalog};

#[path = "support/bench.rs"]
mod bench;

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
    bench::print_timed_runs(&ctx, sql, iterations.parse()?).await
}
