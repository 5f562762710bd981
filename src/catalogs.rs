//! Turns `[catalogs.*]` into a [`Governor`] holding every catalog the
//! gateway serves, with its table classifications.

use std::time::Duration;

use sluice_connectors::{
    IcebergCatalogConfig, IcebergCatalogKind, MilvusCatalog, MilvusConfig, S3Config,
};
use sluice_planner::{CatalogEntry, Governor};

use crate::config::{CatalogConfig, CatalogKind, Config, IcebergCatalogType};
use crate::error::{Error, Result};

/// The connector configuration of catalog `name`.
pub fn iceberg_config(name: &str, cat: &CatalogConfig) -> IcebergCatalogConfig {
    IcebergCatalogConfig {
        name: cat.catalog_name.clone().unwrap_or_else(|| name.to_string()),
        kind: match cat.catalog {
            IcebergCatalogType::Sql => IcebergCatalogKind::Sql,
            IcebergCatalogType::Rest => IcebergCatalogKind::Rest,
        },
        uri: cat.uri.clone(),
        warehouse: cat.warehouse.clone(),
        props: cat.props.0.clone().into_iter().collect(),
        s3: cat.s3.as_ref().map(|s| S3Config {
            endpoint: s.endpoint.clone(),
            region: s.region.clone(),
            access_key_id: s.access_key_id.clone(),
            secret_access_key: s.secret_access_key.as_ref().map(|k| k.expose().to_string()),
            path_style: s.path_style,
        }),
    }
}

/// The connector configuration of Milvus catalog `name`.
pub fn milvus_config(name: &str, cat: &CatalogConfig) -> MilvusConfig {
    MilvusConfig {
        name: name.to_string(),
        uri: cat.uri.clone(),
        database: cat
            .database
            .clone()
            .unwrap_or_else(|| "default".to_string()),
        username: cat.username.clone(),
        password: cat.password.as_ref().map(|p| p.expose().to_string()),
        token: cat.token.as_ref().map(|t| t.expose().to_string()),
        timeout: cat.timeout.unwrap_or(Duration::from_secs(10)),
        refresh_interval: cat.refresh_interval.unwrap_or(Duration::from_secs(30)),
        page_size: cat.page_size.unwrap_or(4096),
        consistency: cat.consistency.clone(),
    }
}

/// The gateway's catalogs: the governor plus the handles `/ready` asks.
#[derive(Debug, Clone, Default)]
pub struct Catalogs {
    /// Plans statements over every catalog.
    pub governor: Governor,
    /// Milvus catalogs by name (their reachability changes at run time).
    pub milvus: Vec<(String, MilvusCatalog)>,
    /// Iceberg catalogs by name, as `/ready` probes them.
    pub iceberg: Vec<(String, sluice_connectors::IcebergProbe)>,
}

/// Loads every configured catalog (connecting to each) into a governor.
pub async fn load_governor(config: &Config) -> Result<Governor> {
    Ok(load_catalogs(config).await?.governor)
}

/// Loads every configured catalog. Iceberg catalogs must answer at start;
/// a Milvus catalog that is down is served empty and retried.
pub async fn load_catalogs(config: &Config) -> Result<Catalogs> {
    let mut governor = Governor::new();
    let mut milvus = Vec::new();
    let mut iceberg = Vec::new();
    for (name, cat) in &config.catalogs {
        match cat.kind {
            CatalogKind::Iceberg => {
                let (provider, probe) =
                    sluice_connectors::load_iceberg_catalog_with_probe(&iceberg_config(name, cat))
                        .await
                        .map_err(|e| Error::Catalog {
                            name: name.clone(),
                            message: e.to_string(),
                        })?;
                tracing::info!(catalog = %name, kind = ?cat.catalog, "catalog loaded");
                iceberg.push((name.clone(), probe));
                governor.add_catalog(
                    name.clone(),
                    CatalogEntry {
                        provider,
                        tables: config.table_classes(name),
                    },
                );
            }
            CatalogKind::Milvus => {
                let catalog = sluice_connectors::load_milvus_catalog(milvus_config(name, cat))
                    .await
                    .map_err(|e| Error::Catalog {
                        name: name.clone(),
                        message: e.to_string(),
                    })?;
                tracing::info!(catalog = %name, status = ?catalog.status(), "milvus catalog loaded");
                governor.add_catalog(
                    name.clone(),
                    CatalogEntry {
                        provider: std::sync::Arc::new(catalog.clone()),
                        tables: config.table_classes(name),
                    },
                );
                governor.add_native_search(name.clone(), MilvusCatalog::native_search);
                milvus.push((name.clone(), catalog));
            }
        }
    }
    Ok(Catalogs {
        governor,
        milvus,
        iceberg,
    })
}
