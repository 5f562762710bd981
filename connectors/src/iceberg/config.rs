//! `[catalogs.<name>]` with `kind = "iceberg"`: how to reach one Iceberg
//! catalog, how often its tables' metadata is re-read, and the classes of
//! its tables.

use std::collections::BTreeMap;
use std::fmt;

use std::time::Duration;

use serde::{Deserialize, Serialize};
use sluice_planner::TableClass;
use sluice_planner::units::de_duration;

use crate::location::{is_sensitive_key, redact_url, redact_value};
use crate::s3::S3Config;

/// How long a table's metadata is served before the catalog is asked again.
pub const DEFAULT_REFRESH_INTERVAL: Duration = Duration::from_secs(5);

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
    /// How long a table's metadata (snapshot, schema, manifests) is served
    /// before a query asks the catalog again (`"5s"`, `"500ms"`; `"0s"`:
    /// every query). `POST /v1/catalogs/{name}/refresh` asks at once.
    #[serde(default = "default_refresh_interval", deserialize_with = "de_duration")]
    pub refresh_interval: Duration,
}

fn default_refresh_interval() -> Duration {
    DEFAULT_REFRESH_INTERVAL
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
            .field("refresh_interval", &self.refresh_interval)
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
