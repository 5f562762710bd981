//! Iceberg catalogs served to DataFusion.

use std::collections::HashMap;
use std::fmt;
use std::sync::Arc;

use ::iceberg::io::LocalFsStorageFactory;
use ::iceberg::{Catalog, CatalogBuilder};
use datafusion::catalog::CatalogProvider;
use iceberg_catalog_rest::{
    REST_CATALOG_PROP_URI, REST_CATALOG_PROP_WAREHOUSE, RestCatalogBuilder,
};
use iceberg_catalog_sql::{
    SQL_CATALOG_PROP_URI, SQL_CATALOG_PROP_WAREHOUSE, SqlBindStyle, SqlCatalogBuilder,
};
use iceberg_datafusion::IcebergCatalogProvider;
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

/// Which kind of Iceberg catalog.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum IcebergCatalogKind {
    /// SQL catalog (pyiceberg's `SqlCatalog`) on SQLite or Postgres.
    #[default]
    Sql,
    /// Iceberg REST catalog.
    Rest,
}

/// S3 settings of a warehouse on S3.
#[derive(Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct S3Config {
    /// Endpoint URL (for S3-compatible servers).
    pub endpoint: Option<String>,
    /// Region.
    pub region: Option<String>,
    /// Access key id.
    pub access_key_id: Option<String>,
    /// Secret access key (never logged).
    pub secret_access_key: Option<String>,
    /// Path-style addressing.
    #[serde(default)]
    pub path_style: bool,
}

impl fmt::Debug for S3Config {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("S3Config")
            .field("endpoint", &self.endpoint)
            .field("region", &self.region)
            .field("access_key_id", &self.access_key_id)
            .field(
                "secret_access_key",
                &self.secret_access_key.as_ref().map(|_| "<redacted>"),
            )
            .field("path_style", &self.path_style)
            .finish()
    }
}

/// How to reach one Iceberg catalog.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IcebergCatalogConfig {
    /// The Iceberg catalog's own name (pyiceberg's `SqlCatalog(name, …)`):
    /// the SQL catalog stores it with every table.
    pub name: String,
    /// SQL or REST.
    pub kind: IcebergCatalogKind,
    /// SQL catalog database URI (`sqlite:/abs/catalog.db`, `postgres://…`)
    /// or REST endpoint.
    pub uri: String,
    /// Warehouse location (`file:///abs/warehouse`).
    pub warehouse: Option<String>,
    /// Extra catalog properties, passed through.
    pub props: HashMap<String, String>,
    /// S3 settings for `s3://` warehouses.
    pub s3: Option<S3Config>,
}

/// Normalises an SQLite URI to the form sqlx expects: pyiceberg writes
/// `sqlite:////abs/path.db`, sqlx wants `sqlite:/abs/path.db`.
pub fn normalize_sqlite_uri(uri: &str) -> String {
    match uri.strip_prefix("sqlite:") {
        Some(rest) if rest.starts_with('/') => format!("sqlite:/{}", rest.trim_start_matches('/')),
        _ => uri.to_string(),
    }
}

/// Connects to an Iceberg catalog.
pub async fn connect(cfg: &IcebergCatalogConfig) -> Result<Arc<dyn Catalog>> {
    let config_err = |message: String| Error::Config {
        catalog: cfg.name.clone(),
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
    let mut props = cfg.props.clone();
    let catalog: Arc<dyn Catalog> = match cfg.kind {
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
                    .load(&cfg.name, props)
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
                    .load(&cfg.name, props)
                    .await?,
            )
        }
    };
    Ok(catalog)
}

/// Connects to an Iceberg catalog and presents it as a DataFusion catalog.
/// Table lists and schemas are read once here (iceberg-datafusion caches
/// them); restart or reload to see tables created later.
pub async fn load_iceberg_catalog(cfg: &IcebergCatalogConfig) -> Result<Arc<dyn CatalogProvider>> {
    Ok(load_iceberg_catalog_with_probe(cfg).await?.0)
}

/// [`load_iceberg_catalog`], plus a probe of the catalog's reachability
/// (for readiness checks).
pub async fn load_iceberg_catalog_with_probe(
    cfg: &IcebergCatalogConfig,
) -> Result<(Arc<dyn CatalogProvider>, IcebergProbe)> {
    let catalog = connect(cfg).await?;
    let provider = IcebergCatalogProvider::try_new(Arc::clone(&catalog)).await?;
    Ok((Arc::new(provider), IcebergProbe(catalog)))
}

/// Asks an Iceberg catalog whether it answers.
#[derive(Clone)]
pub struct IcebergProbe(Arc<dyn Catalog>);

impl fmt::Debug for IcebergProbe {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("IcebergProbe")
    }
}

impl IcebergProbe {
    /// Whether the catalog lists its namespaces within `timeout`.
    pub async fn ready(&self, timeout: std::time::Duration) -> bool {
        match tokio::time::timeout(timeout, self.0.list_namespaces(None)).await {
            Ok(Ok(_)) => true,
            Ok(Err(e)) => {
                tracing::warn!(error = %e, "iceberg catalog readiness check failed");
                false
            }
            Err(_) => false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sqlite_uris() {
        assert_eq!(
            normalize_sqlite_uri("sqlite:////tmp/x/catalog.db"),
            "sqlite:/tmp/x/catalog.db"
        );
        assert_eq!(
            normalize_sqlite_uri("sqlite:///tmp/x.db"),
            "sqlite:/tmp/x.db"
        );
        assert_eq!(normalize_sqlite_uri("sqlite:/tmp/x.db"), "sqlite:/tmp/x.db");
        assert_eq!(normalize_sqlite_uri("postgres://h/db"), "postgres://h/db");
    }
}
