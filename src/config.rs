//! Configuration: one TOML file plus `SLUICE__SECTION__KEY` environment
//! overrides (DESIGN §8).
//!
//! Every key is documented in `sluice.example.toml` at the repository root.
//! Each section is owned by the code it configures: `[trino]` by
//! `sluice_trino`, `[catalogs.*]` by `sluice_connectors`, `[exports]`,
//! `[federation]`, `[audit]`, `[limits]`, `[tracing]` and `[log]` by their
//! modules here; this module composes them and owns `[server]`, `[store]`
//! and `[policy]`. Loading is two steps: [`Config::load`] extracts the file
//! and the environment with figment, then [`Config::resolve`] fills derived
//! defaults (the SQLite store under the data dir) and turns relative paths
//! into absolute ones against the current directory, so later code never
//! depends on the working directory again.
//!
//! Secrets (store passwords, S3 keys, catalog properties that look like
//! credentials) are redacted in `Debug`, so a config can be logged.

use std::collections::BTreeMap;
use std::fmt;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use figment::Figment;
use figment::providers::{Env, Format, Toml};
use serde::Deserialize;
use sluice_connectors::CatalogConfig;
use sluice_connectors::location::{
    absolute, is_sqlite_url, normalize_sqlite_url, redact_url, sqlite_url,
};
use sluice_trino::TrinoConfig;

use crate::audit::AuditConfig;
use crate::error::{Error, Result};
use crate::exports::ExportsConfig;
use crate::federation::FederationConfig;
use crate::logging::LogConfig;
use crate::store::Store;
use crate::telemetry::TracingConfig;
use sluice_planner::limits::LimitsConfig;

/// Prefix of environment overrides: `SLUICE__SERVER__HTTP_ADDR=…` sets
/// `[server] http_addr`. Keys are lower-cased.
pub const ENV_PREFIX: &str = "SLUICE__";

/// The whole configuration.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    /// Listen addresses and the data directory.
    pub server: ServerConfig,
    /// The token store.
    pub store: StoreConfig,
    /// Gateway-wide policy defaults.
    pub policy: PolicyConfig,
    /// Logging.
    pub log: LogConfig,
    /// The Trino client protocol on `http_addr`.
    pub trino: TrinoConfig,
    /// Export jobs (`/v1/exports`).
    pub exports: ExportsConfig,
    /// Request rate limits.
    pub limits: LimitsConfig,
    /// The audit log.
    pub audit: AuditConfig,
    /// Trace propagation and export.
    pub tracing: TracingConfig,
    /// Federation peers (receiver side).
    pub federation: FederationConfig,
    /// Catalogs by the name clients see (`SELECT … FROM <name>.ns.table`).
    pub catalogs: BTreeMap<String, CatalogConfig>,
}

/// `[server]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ServerConfig {
    /// Flight SQL listen address.
    pub flight_addr: SocketAddr,
    /// Admin HTTP API listen address.
    pub http_addr: SocketAddr,
    /// Directory for the embedded store and local state.
    pub data_dir: PathBuf,
    /// TLS (and mTLS) on the Flight SQL port; plain gRPC when absent.
    pub tls: Option<TlsConfig>,
}

impl Default for ServerConfig {
    fn default() -> Self {
        Self {
            flight_addr: SocketAddr::from(([127, 0, 0, 1], 50051)),
            http_addr: SocketAddr::from(([127, 0, 0, 1], 8080)),
            data_dir: PathBuf::from("./sluice-data"),
            tls: None,
        }
    }
}

/// `[server.tls]`: TLS on the Flight SQL port (`sluice certs create`
/// writes a CA, a server certificate and client certificates).
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TlsConfig {
    /// PEM certificate chain of the server.
    pub cert: PathBuf,
    /// PEM private key of `cert`.
    pub key: PathBuf,
    /// PEM CA certificates that client certificates must chain to. A client
    /// may connect without one; one that does not verify is refused in the
    /// TLS handshake.
    pub client_ca: Option<PathBuf>,
    /// Share tokens (partner gateways) only on connections with a verified
    /// client certificate (needs `client_ca`); they are then refused on the
    /// HTTP port, which has no TLS.
    #[serde(default)]
    pub require_client_cert_for_share: bool,
    /// PEM CA certificate handed to partners in share profiles, to verify
    /// this server. Default: the last certificate of `cert`.
    pub ca: Option<PathBuf>,
}

/// `[store]`.
#[derive(Clone, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct StoreConfig {
    /// `sqlite://path` or `postgres://user:password@host/db`. Default:
    /// `sqlite://<data_dir>/sluice.db`. After [`Config::resolve`] it is
    /// always set, and SQLite paths are absolute.
    pub url: Option<String>,
}

impl StoreConfig {
    /// The resolved store URL (empty before [`Config::resolve`]).
    pub fn url(&self) -> &str {
        self.url.as_deref().unwrap_or_default()
    }
}

impl fmt::Debug for StoreConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("StoreConfig")
            .field("url", &self.url.as_deref().map(redact_url))
            .finish()
    }
}

/// `[policy]`.
#[derive(Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct PolicyConfig {
    /// Row limit of tokens that do not set one.
    pub default_row_limit: u64,
    /// Lifetime of Flight tickets, in seconds.
    pub ticket_ttl_secs: u64,
    /// Key of the `hash` mask (HMAC-SHA256), at least 16 bytes. Default: a
    /// random key generated once and kept in the store. Set it when hashes
    /// must stay comparable across stores (never logged).
    pub mask_key: Option<String>,
}

impl fmt::Debug for PolicyConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PolicyConfig")
            .field("default_row_limit", &self.default_row_limit)
            .field("ticket_ttl_secs", &self.ticket_ttl_secs)
            .field("mask_key", &self.mask_key.as_ref().map(|_| "<redacted>"))
            .finish()
    }
}

impl Default for PolicyConfig {
    fn default() -> Self {
        Self {
            default_row_limit: sluice_planner::DEFAULT_ROW_LIMIT,
            ticket_ttl_secs: 3600,
            mask_key: None,
        }
    }
}

impl PolicyConfig {
    /// Lifetime of Flight tickets.
    pub fn ticket_ttl(&self) -> Duration {
        Duration::from_secs(self.ticket_ttl_secs)
    }
}

impl Config {
    /// Loads `path` (must exist) plus environment overrides, then
    /// [`resolve`](Self::resolve)s against the current directory.
    pub fn load(path: &Path) -> Result<Self> {
        if !path.is_file() {
            return Err(Error::Config(format!(
                "config file {} not found (see sluice.example.toml for every key)",
                path.display()
            )));
        }
        let cwd = std::env::current_dir().map_err(Error::io("."))?;
        Self::from_figment(Self::figment(Some(path)))?.resolve(&cwd)
    }

    /// The figment: the TOML file (if any), then `SLUICE__…` environment
    /// variables on top.
    pub fn figment(path: Option<&Path>) -> Figment {
        let mut f = Figment::new();
        if let Some(path) = path {
            f = f.merge(Toml::file_exact(path));
        }
        f.merge(Env::prefixed(ENV_PREFIX).split("__"))
    }

    /// Extracts a config from a figment (no path resolution).
    pub fn from_figment(figment: Figment) -> Result<Self> {
        figment.extract().map_err(|e| Error::Config(e.to_string()))
    }

    /// Opens the store this configuration names (creating the data
    /// directory) and applies the migrations.
    pub async fn open_store(&self) -> Result<Store> {
        std::fs::create_dir_all(&self.server.data_dir).map_err(Error::io(&self.server.data_dir))?;
        let store = Store::connect(self.store.url()).await?;
        store.migrate().await?;
        Ok(store)
    }

    /// Validates, fills the default store URL and makes every local path
    /// absolute against `base`.
    pub fn resolve(mut self, base: &Path) -> Result<Self> {
        let mut problems = Vec::new();
        self.server.data_dir = absolute(base, &self.server.data_dir);
        self.store.url = Some(match self.store.url.take() {
            None => sqlite_url(&self.server.data_dir.join("sluice.db"), None),
            Some(url) if is_sqlite_url(&url) => match normalize_sqlite_url(&url, base) {
                Ok(u) => u,
                Err(e) => {
                    problems.push(format!("store.url: {e}"));
                    url
                }
            },
            Some(url) if url.starts_with("postgres://") || url.starts_with("postgresql://") => url,
            Some(url) => {
                problems.push(format!(
                    "store.url: unsupported scheme in '{}' (expected sqlite:// or postgres://)",
                    redact_url(&url)
                ));
                url
            }
        });
        if self.policy.default_row_limit == 0 {
            problems.push("policy.default_row_limit must be at least 1".into());
        }
        if self.policy.ticket_ttl_secs == 0 {
            problems.push("policy.ticket_ttl_secs must be at least 1".into());
        }
        problems.extend(self.trino.problems());
        problems.extend(self.limits.problems());
        problems.extend(self.exports.resolve(base, &self.server.data_dir));
        if let Some(u) = &self.tracing.otlp_endpoint
            && !matches!(url::Url::parse(u), Ok(p) if p.scheme() == "http" || p.scheme() == "https")
        {
            problems.push(format!(
                "tracing.otlp_endpoint: '{u}' is not an http(s) URL"
            ));
        }
        if let Some(tls) = &mut self.server.tls {
            tls.cert = absolute(base, &tls.cert);
            tls.key = absolute(base, &tls.key);
            tls.client_ca = tls.client_ca.as_ref().map(|p| absolute(base, p));
            tls.ca = tls.ca.as_ref().map(|p| absolute(base, p));
            if tls.require_client_cert_for_share && tls.client_ca.is_none() {
                problems.push(
                    "server.tls.require_client_cert_for_share needs server.tls.client_ca".into(),
                );
            }
        }
        problems.extend(self.federation.problems());
        if self.audit.queue == 0 || self.audit.retention.is_zero() {
            problems.push("audit.queue and audit.retention must be positive".into());
        }
        for (name, catalog) in &mut self.catalogs {
            problems.extend(catalog.resolve(name, base));
        }
        if problems.is_empty() {
            Ok(self)
        } else {
            Err(Error::Config(problems.join("; ")))
        }
    }
}

#[cfg(test)]
// figment's `Jail::expect_with` fixes the closure's error type.
#[allow(clippy::result_large_err)]
mod tests {
    use sluice_connectors::{IcebergCatalogConfig, MilvusConfig};

    use super::*;
    use crate::logging::LogFormat;

    fn iceberg<'a>(cfg: &'a Config, name: &str) -> &'a IcebergCatalogConfig {
        match &cfg.catalogs[name] {
            CatalogConfig::Iceberg(c) => c,
            other => panic!("{name} is not an Iceberg catalog: {other:?}"),
        }
    }

    fn milvus<'a>(cfg: &'a Config, name: &str) -> &'a MilvusConfig {
        match &cfg.catalogs[name] {
            CatalogConfig::Milvus(c) => c,
            other => panic!("{name} is not a Milvus catalog: {other:?}"),
        }
    }

    const FULL: &str = r#"
[server]
flight_addr = "127.0.0.1:50052"
http_addr = "127.0.0.1:8081"
data_dir = "./data"

[store]
url = "postgres://sluice:hunter2@db.internal/sluice"

[policy]
default_row_limit = 500
ticket_ttl_secs = 60

[log]
format = "json"

[catalogs.lake]
kind = "iceberg"
catalog = "sql"
catalog_name = "warehouse1"
uri = "sqlite:////abs/catalog.db"
warehouse = "./wh"
props = { "s3.secret-access-key" = "abc", "client.region" = "eu" }

[catalogs.lake.s3]
endpoint = "http://127.0.0.1:9000"
secret_access_key = "very-secret"
path_style = true

[catalogs.lake.tables."sales.orders"]
sensitivity_column = "sensitivity"
attachment_columns = ["attachment"]
vector_columns = ["embedding"]
"#;

    #[test]
    fn full_file_parses_and_resolves() {
        figment::Jail::expect_with(|jail| {
            jail.create_file("sluice.toml", FULL)?;
            let cfg = Config::from_figment(Config::figment(Some(Path::new("sluice.toml"))))
                .unwrap()
                .resolve(Path::new("/base"))
                .unwrap();
            assert_eq!(cfg.server.flight_addr.port(), 50052);
            assert_eq!(cfg.server.data_dir, Path::new("/base/data"));
            assert_eq!(cfg.policy.default_row_limit, 500);
            assert_eq!(cfg.log.format, LogFormat::Json);
            let lake = iceberg(&cfg, "lake");
            assert_eq!(lake.uri, "sqlite:///abs/catalog.db");
            assert_eq!(lake.warehouse.as_deref(), Some("file:///base/wh"));
            assert_eq!(lake.catalog_name.as_deref(), Some("warehouse1"));
            let classes = cfg.catalogs["lake"].table_classes();
            assert_eq!(
                classes["sales.orders"].sensitivity_column.as_deref(),
                Some("sensitivity")
            );
            let dbg = format!("{cfg:?}");
            assert!(!dbg.contains("hunter2"), "{dbg}");
            assert!(!dbg.contains("very-secret"), "{dbg}");
            assert!(!dbg.contains("\"abc\""), "{dbg}");
            assert!(dbg.contains("client.region"), "{dbg}");
            Ok(())
        });
    }

    #[test]
    fn example_file_is_valid() {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("sluice.example.toml");
        let cfg = Config::from_figment(Figment::from(Toml::file_exact(path)))
            .unwrap()
            .resolve(Path::new("/base"))
            .unwrap();
        assert_eq!(cfg.store.url(), "sqlite:///base/sluice-data/sluice.db");
        assert_eq!(iceberg(&cfg, "lake").uri, "sqlite:///abs/path/catalog.db");
        assert_eq!(cfg.policy.default_row_limit, 10_000);
    }

    #[test]
    fn env_overrides_file() {
        figment::Jail::expect_with(|jail| {
            jail.create_file("sluice.toml", FULL)?;
            jail.set_env("SLUICE__SERVER__HTTP_ADDR", "127.0.0.1:9999");
            jail.set_env("SLUICE__POLICY__DEFAULT_ROW_LIMIT", "7");
            jail.set_env("SLUICE__LOG__FORMAT", "text");
            jail.set_env("SLUICE__CATALOGS__LAKE__URI", "sqlite:///other.db");
            let cfg = Config::from_figment(Config::figment(Some(Path::new("sluice.toml"))))
                .unwrap()
                .resolve(Path::new("/base"))
                .unwrap();
            assert_eq!(cfg.server.http_addr.port(), 9999);
            assert_eq!(cfg.policy.default_row_limit, 7);
            assert_eq!(cfg.log.format, LogFormat::Text);
            assert_eq!(iceberg(&cfg, "lake").uri, "sqlite:///other.db");
            Ok(())
        });
    }

    #[test]
    fn defaults_put_the_store_under_the_data_dir() {
        let cfg = Config::from_figment(Figment::new())
            .unwrap()
            .resolve(Path::new("/work"))
            .unwrap();
        assert_eq!(cfg.store.url(), "sqlite:///work/sluice-data/sluice.db");
        assert_eq!(cfg.server.http_addr.port(), 8080);
        assert_eq!(cfg.policy.ticket_ttl(), Duration::from_secs(3600));
    }

    #[test]
    fn unknown_keys_are_rejected() {
        figment::Jail::expect_with(|jail| {
            jail.create_file("sluice.toml", "[server]\nflight_adr = \"127.0.0.1:1\"\n")?;
            let err = Config::from_figment(Config::figment(Some(Path::new("sluice.toml"))))
                .unwrap_err()
                .to_string();
            assert!(err.contains("flight_adr"), "{err}");
            Ok(())
        });
    }

    #[test]
    fn bad_values_are_reported() {
        let base = Path::new("/b");
        let mut cfg = Config::default();
        cfg.store.url = Some("mysql://x".into());
        cfg.policy.default_row_limit = 0;
        let err = cfg.resolve(base).unwrap_err().to_string();
        assert!(
            err.contains("store.url") && err.contains("default_row_limit"),
            "{err}"
        );
    }

    #[test]
    fn milvus_catalogs() {
        figment::Jail::expect_with(|jail| {
            jail.create_file(
                "sluice.toml",
                r#"
[catalogs.vec]
kind = "milvus"
uri = "http://127.0.0.1:19530"
password = "hunter2"
timeout = "2s"
refresh_interval = "500ms"
page_size = 1000
consistency = "strong"
"#,
            )?;
            let cfg = Config::from_figment(Config::figment(Some(Path::new("sluice.toml"))))
                .unwrap()
                .resolve(Path::new("/b"))
                .unwrap();
            let vec = milvus(&cfg, "vec");
            assert_eq!(vec.name, "vec");
            assert_eq!(vec.timeout, Duration::from_secs(2));
            assert_eq!(vec.refresh_interval, Duration::from_millis(500));
            assert!(!format!("{vec:?}").contains("hunter2"));
            assert_eq!(vec.database, "default");
            assert_eq!(vec.page_size, 1000);
            Ok(())
        });
        let mut bad = Config::default();
        let toml = r#"
kind = "milvus"
uri = "127.0.0.1:19530"
page_size = 0
"#;
        bad.catalogs.insert(
            "vec".into(),
            Figment::from(Toml::string(toml)).extract().unwrap(),
        );
        let err = bad.resolve(Path::new("/b")).unwrap_err().to_string();
        for needle in ["catalogs.vec.uri", "page_size"] {
            assert!(err.contains(needle), "{needle} in {err}");
        }
        // A setting of the other kind is named with the catalog it is in.
        for (toml, needle) in [
            (
                "[catalogs.lake]\nkind = \"iceberg\"\nuri = \"sqlite:///x.db\"\ntimeout = \"1s\"\n",
                "timeout is a Milvus setting",
            ),
            (
                "[catalogs.vec]\nkind = \"milvus\"\nuri = \"http://h:19530\"\nwarehouse = \"file:///x\"\n",
                "warehouse is an Iceberg setting",
            ),
        ] {
            figment::Jail::expect_with(|jail| {
                jail.create_file("sluice.toml", toml)?;
                let err = Config::from_figment(Config::figment(Some(Path::new("sluice.toml"))))
                    .unwrap_err()
                    .to_string();
                assert!(err.contains(needle), "{needle} in {err}");
                let catalog = if toml.contains("lake") {
                    "catalogs.lake"
                } else {
                    "catalogs.vec"
                };
                assert!(err.contains(catalog), "{catalog} in {err}");
                Ok(())
            });
        }
    }
}
