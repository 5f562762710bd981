//! Iceberg catalogs served to DataFusion with sluice's own scan.
//!
//! iceberg-rust does the metadata work (catalogs, snapshots, manifests,
//! planning files with partition and statistics pruning, delete files);
//! this module keeps tables' metadata between queries ([`cache`]) and runs
//! a table's files in parallel DataFusion partitions ([`split`], [`scan`])
//! with the current schema's columns: DataFusion's Parquet reader with
//! columns matched by field id ([`parquet`], [`field_ids`]) where it reads
//! exactly, iceberg's reader otherwise ([`columns`]).

mod cache;
mod catalog;
mod columns;
mod config;
mod connect;
mod field_ids;
mod parquet;
mod scan;
mod split;
mod table;

use std::sync::Arc;

use datafusion::catalog::CatalogProvider;

pub use catalog::IcebergHandle;
pub use config::{
    DEFAULT_REFRESH_INTERVAL, IcebergCatalogConfig, IcebergCatalogKind, Props, normalize_sqlite_uri,
};
pub use connect::connect;

use crate::error::Result;

/// Connects to an Iceberg catalog and presents it as a DataFusion catalog.
/// Namespaces and tables are listed once here; restart to see tables
/// created later. Tables' metadata follows the catalog within
/// `refresh_interval`.
pub async fn load_iceberg_catalog(cfg: &IcebergCatalogConfig) -> Result<Arc<dyn CatalogProvider>> {
    Ok(load_iceberg_catalog_with_handle(cfg).await?.0)
}

/// [`load_iceberg_catalog`], plus the handle that probes the catalog's
/// reachability and refreshes its tables on demand.
pub async fn load_iceberg_catalog_with_handle(
    cfg: &IcebergCatalogConfig,
) -> Result<(Arc<dyn CatalogProvider>, IcebergHandle)> {
    let client = connect(cfg).await?;
    let tables = Arc::new(catalog::IcebergCatalog::load(&client, cfg.refresh_interval).await?);
    let handle = IcebergHandle::new(client, Arc::clone(&tables));
    Ok((tables, handle))
}

/// An iceberg error as DataFusion carries it.
fn external(e: iceberg::Error) -> datafusion::common::DataFusionError {
    datafusion::common::DataFusionError::External(Box::new(e))
}
