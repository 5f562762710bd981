//! Connecting to an Iceberg catalog (SQL or REST) with iceberg-rust.

use std::sync::Arc;

use iceberg::io::LocalFsStorageFactory;
use iceberg::{Catalog, CatalogBuilder};
use iceberg_catalog_rest::{
    REST_CATALOG_PROP_URI, REST_CATALOG_PROP_WAREHOUSE, RestCatalogBuilder,
};
use iceberg_catalog_sql::{
    SQL_CATALOG_PROP_URI, SQL_CATALOG_PROP_WAREHOUSE, SqlBindStyle, SqlCatalogBuilder,
};

use super::config::{IcebergCatalogConfig, IcebergCatalogKind, normalize_sqlite_uri};
use crate::error::{Error, Result};

/// Connects to an Iceberg catalog.
pub async fn connect(cfg: &IcebergCatalogConfig) -> Result<Arc<dyn Catalog>> {
    let config_err = |message: String| Error::Config {
        catalog: cfg.name().to_string(),
        message,
    };
    let warehouse_is_s3 = cfg
        .warehouse
        .as_deref()
        .is_some_and(|w| w.starts_with("s3://") || w.starts_with("s3a://"));
    if warehouse_is_s3 || cfg.s3.is_some() {
        return Err(config_err(
            "S3 warehouses are not supported by this build yet (iceberg-rust 0.10 needs the \
             iceberg-storage-opendal crate); use a file:// warehouse"
                .to_string(),
        ));
    }
    let mut props: std::collections::HashMap<String, String> =
        cfg.props.0.clone().into_iter().collect();
    let catalog: Arc<dyn Catalog> = match cfg.catalog {
        IcebergCatalogKind::Sql => {
            let uri = normalize_sqlite_uri(&cfg.uri);
            let bind = if uri.starts_with("sqlite:") {
                SqlBindStyle::QMark
            } else {
                SqlBindStyle::DollarNumeric
            };
            props.insert(SQL_CATALOG_PROP_URI.to_string(), uri);
            if let Some(w) = &cfg.warehouse {
                props.insert(SQL_CATALOG_PROP_WAREHOUSE.to_string(), w.clone());
            }
            Arc::new(
                SqlCatalogBuilder::default()
                    .sql_bind_style(bind)
                    .with_storage_factory(Arc::new(LocalFsStorageFactory))
                    .load(cfg.name(), props)
                    .await?,
            )
        }
        IcebergCatalogKind::Rest => {
            props.insert(REST_CATALOG_PROP_URI.to_string(), cfg.uri.clone());
            if let Some(w) = &cfg.warehouse {
                props.insert(REST_CATALOG_PROP_WAREHOUSE.to_string(), w.clone());
            }
            Arc::new(
                RestCatalogBuilder::default()
                    .with_storage_factory(Arc::new(LocalFsStorageFactory))
                    .load(cfg.name(), props)
                    .await?,
            )
        }
    };
    Ok(catalog)
}
