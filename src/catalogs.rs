//! Turns `[catalogs.*]` into a [`Governor`] holding every catalog the
//! gateway serves, with its table classifications.

use sluice_connectors::{IcebergCatalogConfig, IcebergCatalogKind, S3Config};
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

/// Loads every configured catalog (connecting to each) into a governor.
pub async fn load_governor(config: &Config) -> Result<Governor> {
    let mut governor = Governor::new();
    for (name, cat) in &config.catalogs {
        match cat.kind {
            CatalogKind::Iceberg => {
                let provider = sluice_connectors::load_iceberg_catalog(&iceberg_config(name, cat))
                    .await
                    .map_err(|e| Error::Catalog {
                        name: name.clone(),
                        message: e.to_string(),
                    })?;
                tracing::info!(catalog = %name, kind = ?cat.catalog, "catalog loaded");
                governor.add_catalog(
                    name.clone(),
                    CatalogEntry {
                        provider,
                        tables: config.table_classes(name),
                    },
                );
            }
        }
    }
    Ok(governor)
}
