//! Iceberg catalogs served to DataFusion.

use std::collections::BTreeMap;
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
use sluice_planner::TableClass;

use crate::error::{Error, Result};
use crate::location::{is_sensitive_key, redact_url, redact_value};
use crate::s3::S3Config;

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

/// Catalog properties passed through to iceberg-rust. `Debug` redacts
/// values whose key looks like a credential, and URLs' credentials.
#[derive(Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(transparent)]
pub struct Props(pub BTreeMap<String, String>);

impl fmt::Debug for Props {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut m = f.debug_map();
        for (k, v) in &self.0 {
            if is_sensitive_key(k) {
                m.entry(k, &"[redacted]");
            } else {
                m.entry(k, &redact_value(v));
            }
        }
        m.finish()
    }
}

/// `[catalogs.<name>]` with `kind = "iceberg"`: how to reach one Iceberg
/// catalog. `Debug` hides the password of `uri` (a Postgres catalog's).
#[derive(Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IcebergCatalogConfig {
    /// `sql` (default) or `rest`.
    #[serde(default)]
    pub catalog: IcebergCatalogKind,
    /// The Iceberg catalog's own name (pyiceberg's `SqlCatalog(name, …)`):
    /// the SQL catalog stores it with every table. Default (filled when
    /// the configuration is resolved): the section key.
    #[serde(default)]
    pub catalog_name: Option<String>,
    /// SQL catalog database URI (`sqlite:/abs/catalog.db`, `postgres://…`)
    /// or REST endpoint.
    pub uri: String,
    /// Warehouse location (`file:///abs/warehouse`, a plain path, `s3://…`).
    #[serde(default)]
    pub warehouse: Option<String>,
    /// Extra catalog properties, passed through.
    #[serde(default)]
    pub props: Props,
    /// S3 settings for `s3://` warehouses.
    #[serde(default)]
    pub s3: Option<S3Config>,
    /// Classification per `namespace.table`.
    #[serde(default)]
    pub tables: BTreeMap<String, TableClass>,
}

impl fmt::Debug for IcebergCatalogConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("IcebergCatalogConfig")
            .field("catalog", &self.catalog)
            .field("catalog_name", &self.catalog_name)
            .field("uri", &redact_url(&self.uri))
            .field("warehouse", &self.warehouse.as_deref().map(redact_url))
            .field("props", &self.props)
            .field("s3", &self.s3)
            .field("tables", &self.tables)
            .finish()
    }
}

impl IcebergCatalogConfig {
    /// The Iceberg catalog's own name.
    pub fn name(&self) -> &str {
        self.catalog_name.as_deref().unwrap_or_default()
    }
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

    #[test]
    fn debug_hides_the_password_of_the_catalog_uri() {
        let config: IcebergCatalogConfig = serde_json::from_value(serde_json::json!({
            "uri": "postgres://iceberg:hunter2@db:5432/catalog",
            "warehouse": "s3://lake/wh"
        }))
        .unwrap();
        let debug = format!("{config:?}");
        assert!(!debug.contains("hunter2"), "{debug}");
        assert!(
            debug.contains("postgres://iceberg:***@db:5432/catalog"),
            "{debug}"
        );
    }

    #[test]
    fn debug_hides_credentials_in_properties_by_key_and_in_urls() {
        let props = Props(
            [
                ("s3.secret-access-key", "sk-1"),
                ("s3.endpoint", "http://minio:m1n10pw@minio:9000"),
                ("s3.region", "us-east-1"),
            ]
            .into_iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
        );
        let debug = format!("{props:?}");
        assert!(
            !debug.contains("sk-1") && !debug.contains("m1n10pw"),
            "{debug}"
        );
        assert!(debug.contains("us-east-1"), "{debug}");
    }
}
