//! `[catalogs.<name>]`: what a catalog is, by its `kind`. Each connector
//! owns its settings ([`IcebergCatalogConfig`], [`MilvusConfig`]); this
//! module tells them apart and resolves what depends on where the
//! configuration lives.

use std::collections::{BTreeMap, HashMap};
use std::path::Path;

use serde::{Deserialize, Deserializer};
use sluice_planner::TableClass;

use crate::iceberg::{IcebergCatalogConfig, IcebergCatalogKind};
use crate::location::{is_sqlite_url, normalize_sqlite_url, normalize_warehouse};
use crate::milvus::MilvusConfig;

/// A configured catalog.
#[derive(Debug, Clone)]
pub enum CatalogConfig {
    /// `kind = "iceberg"`: an Iceberg catalog (SQL or REST).
    Iceberg(IcebergCatalogConfig),
    /// `kind = "milvus"`: a Milvus database, its collections as tables.
    Milvus(MilvusConfig),
}

/// Keys only a Milvus catalog has, and keys only an Iceberg catalog has:
/// set on the other kind, they are named as such (`refresh_interval` is
/// both kinds').
const MILVUS_KEYS: &[&str] = &[
    "database",
    "username",
    "password",
    "token",
    "timeout",
    "page_size",
    "consistency",
];
const ICEBERG_KEYS: &[&str] = &["catalog", "catalog_name", "warehouse", "props", "s3"];

impl<'de> Deserialize<'de> for CatalogConfig {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        use serde::de::Error as _;
        let mut map = serde_json::Map::<String, serde_json::Value>::deserialize(d)?;
        let kind = match map.remove("kind") {
            Some(serde_json::Value::String(k)) => k,
            Some(other) => {
                return Err(D::Error::custom(format!(
                    "kind must be \"iceberg\" or \"milvus\", not {other}"
                )));
            }
            None => return Err(D::Error::missing_field("kind")),
        };
        let (others, other_kind, other_tag) = match kind.as_str() {
            "iceberg" => (MILVUS_KEYS, "a Milvus", "milvus"),
            "milvus" => (ICEBERG_KEYS, "an Iceberg", "iceberg"),
            other => {
                return Err(D::Error::custom(format!(
                    "unknown catalog kind \"{other}\" (expected iceberg or milvus)"
                )));
            }
        };
        if let Some(key) = map.keys().find(|k| others.contains(&k.as_str())) {
            return Err(D::Error::custom(format!(
                "{key} is {other_kind} setting (kind = \"{other_tag}\")"
            )));
        }
        let value = serde_json::Value::Object(map);
        match kind.as_str() {
            "iceberg" => serde_json::from_value(value).map(CatalogConfig::Iceberg),
            _ => serde_json::from_value(value).map(CatalogConfig::Milvus),
        }
        .map_err(D::Error::custom)
    }
}

impl CatalogConfig {
    /// Classification of the catalog's tables, keyed `namespace.table`.
    pub fn tables(&self) -> &BTreeMap<String, TableClass> {
        match self {
            CatalogConfig::Iceberg(c) => &c.tables,
            CatalogConfig::Milvus(c) => &c.tables,
        }
    }

    /// The classification as the governor takes it.
    pub fn table_classes(&self) -> HashMap<String, TableClass> {
        self.tables()
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect()
    }

    /// Fills what derives from the catalog's name `name` and makes local
    /// locations absolute against `base`; returns every problem, each
    /// naming its key (`catalogs.<name>.<key>`).
    pub fn resolve(&mut self, name: &str, base: &Path) -> Vec<String> {
        let mut problems = Vec::new();
        if name == sluice_planner::SYSTEM_CATALOG {
            problems
                .push("catalogs.system: the name is reserved for Trino's system catalog".into());
        }
        if name.is_empty() || name.contains('.') || name.contains(char::is_whitespace) {
            problems.push(format!(
                "catalogs.{name}: catalog names must be non-empty, without dots or spaces"
            ));
        }
        for table in self.tables().keys() {
            let parts: Vec<&str> = table.split('.').collect();
            if parts.len() < 2 || parts.iter().any(|p| p.is_empty()) {
                problems.push(format!(
                    "catalogs.{name}.tables.\"{table}\": expected \"namespace.table\""
                ));
            }
        }
        match self {
            CatalogConfig::Iceberg(cat) => {
                if cat.uri.trim().is_empty() {
                    problems.push(format!("catalogs.{name}.uri must be set"));
                }
                cat.catalog_name.get_or_insert_with(|| name.to_string());
                if cat.catalog == IcebergCatalogKind::Sql && is_sqlite_url(&cat.uri) {
                    match normalize_sqlite_url(&cat.uri, base) {
                        Ok(u) => cat.uri = u,
                        Err(e) => problems.push(format!("catalogs.{name}.uri: {e}")),
                    }
                }
                if let Some(w) = &cat.warehouse {
                    cat.warehouse = Some(normalize_warehouse(w, base));
                }
            }
            CatalogConfig::Milvus(cat) => {
                cat.name = name.to_string();
                if cat.uri.trim().is_empty() {
                    problems.push(format!("catalogs.{name}.uri must be set"));
                } else if !(cat.uri.starts_with("http://") || cat.uri.starts_with("https://")) {
                    problems.push(format!(
                        "catalogs.{name}.uri: a Milvus endpoint looks like http://host:19530"
                    ));
                }
                if cat.timeout.is_zero() || cat.refresh_interval.is_zero() {
                    problems.push(format!(
                        "catalogs.{name}: timeout and refresh_interval must be positive"
                    ));
                }
                if cat.page_size == 0 || cat.page_size > 16_384 {
                    problems.push(format!("catalogs.{name}.page_size must be 1..=16384"));
                }
            }
        }
        problems
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    fn parse(json: serde_json::Value) -> Result<CatalogConfig, String> {
        serde_json::from_value(json).map_err(|e| e.to_string())
    }

    #[test]
    fn the_kind_chooses_the_settings() {
        let cat = parse(serde_json::json!({
            "kind": "milvus", "uri": "http://127.0.0.1:19530", "password": "hunter2",
            "timeout": "2s", "refresh_interval": "500ms", "page_size": 1000,
            "consistency": "strong"
        }))
        .unwrap();
        let CatalogConfig::Milvus(m) = &cat else {
            panic!("a Milvus catalog: {cat:?}");
        };
        assert_eq!(m.timeout, Duration::from_secs(2));
        assert_eq!(m.refresh_interval, Duration::from_millis(500));
        assert_eq!(m.database, "default");
        assert_eq!(m.page_size, 1000);
        assert!(!format!("{cat:?}").contains("hunter2"));
        let cat = parse(serde_json::json!({"kind": "iceberg", "uri": "sqlite:///x.db"})).unwrap();
        let CatalogConfig::Iceberg(i) = &cat else {
            panic!("an Iceberg catalog: {cat:?}");
        };
        assert_eq!(i.refresh_interval, crate::iceberg::DEFAULT_REFRESH_INTERVAL);
        let cat = parse(serde_json::json!({
            "kind": "iceberg", "uri": "sqlite:///x.db", "refresh_interval": "0s"
        }))
        .unwrap();
        let CatalogConfig::Iceberg(i) = &cat else {
            panic!("an Iceberg catalog: {cat:?}");
        };
        assert!(
            i.refresh_interval.is_zero(),
            "0s: every query asks the catalog"
        );
    }

    #[test]
    fn settings_of_the_other_kind_are_named() {
        let err = parse(serde_json::json!({
            "kind": "iceberg", "uri": "sqlite:///x.db", "timeout": "1s"
        }))
        .unwrap_err();
        assert_eq!(err, "timeout is a Milvus setting (kind = \"milvus\")");
        let err = parse(serde_json::json!({
            "kind": "milvus", "uri": "http://h:19530", "warehouse": "file:///x"
        }))
        .unwrap_err();
        assert_eq!(err, "warehouse is an Iceberg setting (kind = \"iceberg\")");
        assert!(parse(serde_json::json!({"kind": "hive", "uri": "x"})).is_err());
        assert!(parse(serde_json::json!({"kind": "iceberg", "uri": "x", "nope": 1})).is_err());
    }

    #[test]
    fn resolving_names_every_problem() {
        let mut cat = parse(serde_json::json!({
            "kind": "milvus", "uri": "127.0.0.1:19530", "page_size": 0
        }))
        .unwrap();
        let problems = cat.resolve("vec", Path::new("/b")).join("; ");
        assert!(problems.contains("catalogs.vec.uri"), "{problems}");
        assert!(problems.contains("catalogs.vec.page_size"), "{problems}");
        let mut cat = parse(serde_json::json!({
            "kind": "iceberg", "uri": "sqlite://./c.db", "warehouse": "./wh"
        }))
        .unwrap();
        assert!(cat.resolve("lake", Path::new("/b")).is_empty());
        let CatalogConfig::Iceberg(c) = cat else {
            panic!("an Iceberg catalog");
        };
        assert_eq!(c.uri, "sqlite:///b/c.db");
        assert_eq!(c.warehouse.as_deref(), Some("file:///b/wh"));
        assert_eq!(c.catalog_name.as_deref(), Some("lake"));
    }
}
