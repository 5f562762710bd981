//! Baseline for `benches/export.py`: DataFusion's own `write_parquet` of a
//! query over an Iceberg SQL catalog, *without* sluice's policy, to a local
//! directory. Prints one JSON line: milliseconds, rows and bytes written.
//!
//! ```text
//! cargo run --release --example raw_export -- <catalog uri> <warehouse> <catalog name> <out dir> <compression> <sql>
//! ```
//!
//! `<compression>` is DataFusion's spelling (`zstd(1)`, `snappy`, `uncompressed`).

use std::time::Instant;

use datafusion::config::TableParquetOptions;
use datafusion::dataframe::DataFrameWriteOptions;
use sluice_connectors::{IcebergCatalogConfig, IcebergCatalogKind, load_iceberg_catalog};

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().collect();
    let [_, uri, warehouse, name, out, compression, sql] = args.as_slice() else {
        return Err(
            "usage: raw_export <catalog uri> <warehouse> <catalog name> <out dir> \
                    <compression> <sql>"
                .into(),
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
    let mut options = TableParquetOptions::default();
    options.global.compression = Some(compression.clone());
    let start = Instant::now();
    let written = ctx
        .sql(sql)
        .await?
        .write_parquet(out, DataFrameWriteOptions::new(), Some(options))
        .await?;
    let ms = start.elapsed().as_secs_f64() * 1000.0;
    let rows: u64 = written
        .iter()
        .map(|b| {
            b.column(0)
                .as_any()
                .downcast_ref::<arrow::array::UInt64Array>()
                .map_or(0, |a| a.values().iter().sum())
        })
        .sum();
    let bytes: u64 = walk(std::path::Path::new(out));
    println!(
        "{}",
        serde_json::json!({"ms": ms, "rows": rows, "bytes": bytes})
    );
    Ok(())
}

fn walk(dir: &std::path::Path) -> u64 {
    std::fs::read_dir(dir)
        .into_iter()
        .flatten()
        .flatten()
        .map(|e| {
            let p = e.path();
            if p.is_dir() {
                walk(&p)
            } else {
                e.metadata().map_or(0, |m| m.len())
            }
        })
        .sum()
}
