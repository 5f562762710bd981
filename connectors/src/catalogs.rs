//! The gateway's catalogs, loaded from `[catalogs.*]` into one
//! [`Governor`]: each connector's provider with its table classes, plus the
//! handles `/ready` asks about their backends.

use std::collections::BTreeMap;
use std::sync::Arc;

use sluice_planner::{CatalogEntry, Governor};

use crate::config::CatalogConfig;
use crate::error::{Error, Result};
use crate::iceberg::{IcebergHandle, load_iceberg_catalog_with_handle};
use crate::milvus::{MilvusCatalog, load_milvus_catalog};

/// The loaded catalogs.
#[derive(Debug, Clone, Default)]
pub struct Catalogs {
    /// Plans statements over every catalog.
    pub governor: Governor,
    /// Milvus catalogs by name (their reachability changes at run time).
    pub milvus: Vec<(String, MilvusCatalog)>,
    /// Iceberg catalogs by name (`/ready` probes them; refresh on demand).
    pub iceberg: Vec<(String, IcebergHandle)>,
}

/// Loads every configured catalog (connecting to each) into a governor.
/// Iceberg catalogs must answer at start; a Milvus catalog that is down is
/// served empty and retried.
pub async fn load_catalogs(configs: &BTreeMap<String, CatalogConfig>) -> Result<Catalogs> {
    let mut catalogs = Catalogs::default();
    for (name, config) in configs {
        let failed = |source: Error| Error::Load {
            catalog: name.clone(),
            source: Box::new(source),
        };
        let provider = match config {
            CatalogConfig::Iceberg(cfg) => {
                let (provider, handle) = load_iceberg_catalog_with_handle(cfg)
                    .await
                    .map_err(failed)?;
                tracing::info!(catalog = %name, kind = ?cfg.catalog, "catalog loaded");
                catalogs.iceberg.push((name.clone(), handle));
                provider
            }
            CatalogConfig::Milvus(cfg) => {
                let catalog = load_milvus_catalog(cfg.clone()).await.map_err(failed)?;
                tracing::info!(catalog = %name, status = ?catalog.status(), "milvus catalog loaded");
                catalogs
                    .governor
                    .add_native_search(name.clone(), MilvusCatalog::native_search);
                catalogs.milvus.push((name.clone(), catalog.clone()));
                Arc::new(catalog)
            }
        };
        catalogs.governor.add_catalog(
            name.clone(),
            CatalogEntry {
                provider,
                tables: config.table_classes(),
            },
        );
    }
    Ok(catalogs)
}
