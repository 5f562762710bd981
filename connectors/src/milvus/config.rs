//! `[catalogs.<name>]` with `kind = "milvus"`: how to reach one Milvus
//! database, and the read consistency levels it may name.

use std::collections::BTreeMap;
use std::fmt;
use std::time::Duration;

use milvus::v2::prelude::ConsistencyLevel;
use serde::Deserialize;
use sluice_planner::units::de_duration;
use sluice_planner::{Secret, TableClass};

use crate::location::redact_url;

/// `[catalogs.<name>]` with `kind = "milvus"`: how to reach one Milvus
/// database. Durations as in `[trino]` (`"10s"`, `"500ms"`). `Debug`
/// hides the password of `uri` (the secrets are [`Secret`]s).
#[derive(Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct MilvusConfig {
    /// The catalog name (in errors and logs): the section key, filled when
    /// the configuration is resolved.
    #[serde(skip)]
    pub name: String,
    /// gRPC endpoint, `http://host:19530`.
    pub uri: String,
    /// Milvus database (`default`); its name is the schema name.
    pub database: String,
    /// User name (with `password`), when authentication is on.
    pub username: Option<String>,
    /// Password (never logged).
    pub password: Option<Secret>,
    /// API token instead of user/password (never logged).
    pub token: Option<Secret>,
    /// Deadline of every call (connect, list, query page, search).
    #[serde(deserialize_with = "de_duration")]
    pub timeout: Duration,
    /// How often the collection list is re-read.
    #[serde(deserialize_with = "de_duration")]
    pub refresh_interval: Duration,
    /// Rows per query page (at most 16384).
    pub page_size: usize,
    /// Consistency level of reads (`strong`, `session`, `bounded`,
    /// `eventually`); `None`: each collection's own.
    pub consistency: Option<String>,
    /// Classification per `database.collection`.
    pub tables: BTreeMap<String, TableClass>,
}

impl fmt::Debug for MilvusConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MilvusConfig")
            .field("name", &self.name)
            .field("uri", &redact_url(&self.uri))
            .field("database", &self.database)
            .field("username", &self.username)
            .field("password", &self.password)
            .field("token", &self.token)
            .field("timeout", &self.timeout)
            .field("refresh_interval", &self.refresh_interval)
            .field("page_size", &self.page_size)
            .field("consistency", &self.consistency)
            .field("tables", &self.tables)
            .finish()
    }
}

impl Default for MilvusConfig {
    fn default() -> Self {
        Self {
            name: String::new(),
            uri: String::new(),
            database: "default".to_string(),
            username: None,
            password: None,
            token: None,
            timeout: Duration::from_secs(10),
            refresh_interval: Duration::from_secs(30),
            page_size: 4096,
            consistency: None,
            tables: BTreeMap::new(),
        }
    }
}

pub(super) fn consistency_level(name: &str) -> Option<ConsistencyLevel> {
    match name.to_ascii_lowercase().as_str() {
        "strong" => Some(ConsistencyLevel::Strong),
        "session" => Some(ConsistencyLevel::Session),
        "bounded" => Some(ConsistencyLevel::Bounded),
        "eventually" => Some(ConsistencyLevel::Eventually),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_hides_every_secret_of_a_milvus_catalog() {
        let config: MilvusConfig = serde_json::from_value(serde_json::json!({
            "uri": "http://root:hunter2@milvus:19530",
            "password": "pass-word-1",
            "token": "tok-en-2"
        }))
        .unwrap();
        let debug = format!("{config:?}");
        for secret in ["hunter2", "pass-word-1", "tok-en-2"] {
            assert!(!debug.contains(secret), "{debug}");
        }
        assert!(debug.contains("http://root:***@milvus:19530"), "{debug}");
    }
}
