//! Configuration: one TOML file plus `SLUICE__SECTION__KEY` environment
//! overrides (DESIGN §8).
//!
//! Every key is documented in `sluice.example.toml` at the repository root.
//! Loading is two steps: [`Config::load`] extracts the file and the
//! environment with figment, then [`Config::resolve`] fills derived defaults
//! (the SQLite store under the data dir) and turns relative paths into
//! absolute ones against the current directory, so later code never depends
//! on the working directory again.
//!
//! Secrets (store passwords, S3 keys, catalog properties that look like
//! credentials) are redacted in `Debug`, so a config can be logged.

use std::collections::BTreeMap;
use std::fmt;
use std::net::SocketAddr;
use std::path::{Component, Path, PathBuf};
use std::time::Duration;

use figment::Figment;
use figment::providers::{Env, Format, Toml};
use serde::{Deserialize, Serialize};
use sluice_planner::TableClass;

use crate::error::{Error, Result};

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

/// `[federation]`: how this gateway reaches its peers (imported share
/// profiles). Durations as in `[trino]`.
#[derive(Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct FederationConfig {
    /// Base64 of 32 bytes: the AES-256-GCM key sealing peers' secrets in
    /// the store (`SLUICE__FEDERATION__SEAL_KEY`). Default: a key generated
    /// once into `<data_dir>/seal.key` (mode 0600). Replicas sharing a
    /// store need the same key.
    pub seal_key: Option<Secret>,
    /// Longest wait for a connection to a peer.
    #[serde(deserialize_with = "de_duration")]
    pub connect_timeout: Duration,
    /// Longest wait for a peer's answer (and between two of its messages).
    #[serde(deserialize_with = "de_duration")]
    pub request_timeout: Duration,
    /// Consecutive failures that open a peer's circuit.
    pub failure_threshold: u32,
    /// How long an open circuit fails fast before one probe.
    #[serde(deserialize_with = "de_duration")]
    pub cooldown: Duration,
    /// How often a peer's tables are rediscovered.
    #[serde(deserialize_with = "de_duration")]
    pub refresh_interval: Duration,
    /// How often the store is read for imported, removed or revoked peers
    /// (what `sluice peer` and other replicas changed).
    #[serde(deserialize_with = "de_duration")]
    pub sync_interval: Duration,
}

impl Default for FederationConfig {
    fn default() -> Self {
        Self {
            seal_key: None,
            connect_timeout: Duration::from_secs(3),
            request_timeout: Duration::from_secs(30),
            failure_threshold: 3,
            cooldown: Duration::from_secs(10),
            refresh_interval: Duration::from_secs(60),
            sync_interval: Duration::from_secs(5),
        }
    }
}

impl fmt::Debug for FederationConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("FederationConfig")
            .field("seal_key", &self.seal_key.as_ref().map(|_| "<redacted>"))
            .field("connect_timeout", &self.connect_timeout)
            .field("request_timeout", &self.request_timeout)
            .field("failure_threshold", &self.failure_threshold)
            .field("cooldown", &self.cooldown)
            .finish_non_exhaustive()
    }
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

/// `[trino]`: the Trino client protocol (`POST /v1/statement`) on
/// `http_addr`. Durations are written like Trino's (`"500ms"`, `"30s"`,
/// `"5m"`, `"1h"`, `"1.5d"`).
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct TrinoConfig {
    /// Serve the Trino protocol.
    pub enabled: bool,
    /// A query whose client has not polled for this long is cancelled and
    /// its resources freed (Trino's `query.client.timeout`).
    #[serde(deserialize_with = "de_duration")]
    pub client_timeout: Duration,
    /// Longest a query may run; the session property
    /// `query_max_run_time` can only lower it.
    #[serde(deserialize_with = "de_duration")]
    pub max_run_time: Duration,
    /// How long one poll waits for data before answering without any.
    #[serde(deserialize_with = "de_duration")]
    pub max_wait: Duration,
    /// Most rows in one result page.
    pub page_max_rows: usize,
    /// Most bytes of JSON row data in one result page (a page holds at
    /// least one row).
    pub page_max_bytes: usize,
    /// Queries executing at once; further ones wait in state QUEUED.
    pub max_concurrent_queries: usize,
    /// Queries waiting at once; beyond that a query fails with
    /// QUERY_QUEUE_FULL. Queries whose pages were not all fetched count.
    pub max_queued_queries: usize,
    /// Live queries of one token (running, queued or not fully fetched);
    /// beyond that its new queries fail with QUERY_REJECTED, so one token
    /// cannot take every slot.
    pub max_queries_per_token: usize,
    /// Base URL of `nextUri` / `infoUri` when sluice runs behind a proxy
    /// (default: `http://` + the request's `Host`).
    pub external_url: Option<String>,
}

impl Default for TrinoConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            client_timeout: Duration::from_secs(300),
            max_run_time: Duration::from_secs(3600),
            max_wait: Duration::from_secs(1),
            page_max_rows: 65_536,
            page_max_bytes: 1 << 20,
            max_concurrent_queries: 16,
            max_queued_queries: 100,
            max_queries_per_token: 8,
            external_url: None,
        }
    }
}

/// `[exports]`: governed Parquet exports to object storage.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ExportsConfig {
    /// Serve `/v1/exports` and run export jobs.
    pub enabled: bool,
    /// Directory of `file://` destinations (`file:///a/b` is `<root>/a/b`).
    /// Default: `<data_dir>/exports`.
    pub root: Option<PathBuf>,
    /// Jobs running at once on this gateway; the rest wait as `queued`.
    pub concurrency: usize,
    /// Most queued jobs (every token); beyond that submissions get 503.
    pub max_queued: usize,
    /// Most queued or running jobs of one token; beyond that 429.
    pub max_jobs_per_token: usize,
    /// Most running jobs of one token on one gateway; its other jobs wait
    /// while other tokens' jobs run.
    pub max_running_per_token: usize,
    /// Buffer memory of one job (row group in progress and upload parts),
    /// in bytes or with a unit (`"256MiB"`); at least 32 MiB.
    #[serde(deserialize_with = "de_bytes")]
    pub memory_limit: u64,
    /// Default size limit of one Parquet file (`max_file_bytes` of a request
    /// overrides it); at least 64 KiB.
    #[serde(deserialize_with = "de_bytes")]
    pub max_file_bytes: u64,
    /// Most rows in one row group (a row group also ends at a quarter of
    /// `memory_limit`).
    pub row_group_rows: usize,
    /// How long failing object store requests are retried.
    #[serde(deserialize_with = "de_duration")]
    pub retry_timeout: Duration,
    /// How often leftovers of failed jobs are cleaned up and jobs of
    /// stopped gateways are marked failed.
    #[serde(deserialize_with = "de_duration")]
    pub cleanup_interval: Duration,
    /// Longest a job may run before it fails.
    #[serde(deserialize_with = "de_duration")]
    pub max_run_time: Duration,
    /// Most bytes one job may write.
    #[serde(deserialize_with = "de_bytes")]
    pub max_bytes_per_job: u64,
    /// Most files one job may write.
    pub max_files_per_job: u64,
    /// How long ended jobs are kept.
    #[serde(deserialize_with = "de_duration")]
    pub retention: Duration,
    /// S3 access for `s3://` destinations.
    pub s3: S3Settings,
}

impl Default for ExportsConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            root: None,
            concurrency: 2,
            max_queued: 100,
            max_jobs_per_token: 4,
            max_running_per_token: 1,
            memory_limit: 256 << 20,
            max_file_bytes: 512 << 20,
            row_group_rows: 1 << 20,
            retry_timeout: Duration::from_secs(30),
            cleanup_interval: Duration::from_secs(30),
            max_run_time: Duration::from_secs(6 * 3600),
            max_bytes_per_job: 1 << 40,
            max_files_per_job: 10_000,
            retention: Duration::from_secs(30 * 86400),
            s3: S3Settings::default(),
        }
    }
}

/// Smallest `[exports] memory_limit`.
pub const MIN_EXPORT_MEMORY: u64 = 32 << 20;
/// Smallest `max_file_bytes`.
pub const MIN_FILE_BYTES: u64 = 64 << 10;

/// Parses a byte size: an integer, optionally with a unit (`B`, `KiB`,
/// `MiB`, `GiB`, `TiB`, or `KB`/`MB`/`GB` as powers of 1000).
pub fn parse_bytes(text: &str) -> std::result::Result<u64, String> {
    let t = text.trim();
    let split = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
    let (number, unit) = t.split_at(split);
    let n: u64 = number
        .parse()
        .map_err(|_| format!("invalid byte size '{text}'"))?;
    let scale: u64 = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 1,
        "kib" | "k" => 1 << 10,
        "mib" | "m" => 1 << 20,
        "gib" | "g" => 1 << 30,
        "tib" | "t" => 1 << 40,
        "kb" => 1_000,
        "mb" => 1_000_000,
        "gb" => 1_000_000_000,
        "tb" => 1_000_000_000_000,
        other => return Err(format!("unknown byte unit '{other}' in '{text}'")),
    };
    n.checked_mul(scale)
        .ok_or_else(|| format!("byte size '{text}' is too large"))
}

fn de_bytes<'de, D: serde::Deserializer<'de>>(d: D) -> std::result::Result<u64, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Size {
        Int(u64),
        Text(String),
    }
    match Size::deserialize(d)? {
        Size::Int(n) => Ok(n),
        Size::Text(t) => parse_bytes(&t).map_err(serde::de::Error::custom),
    }
}

/// Parses a Trino-style duration: a decimal number and a unit (`ns`, `us`,
/// `ms`, `s`, `m`, `h`, `d`).
pub fn parse_duration(text: &str) -> std::result::Result<Duration, String> {
    let t = text.trim();
    let split = t
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .ok_or_else(|| format!("duration '{text}' needs a unit (ms, s, m, h, d)"))?;
    let (number, unit) = t.split_at(split);
    let value: f64 = number
        .parse()
        .map_err(|_| format!("invalid duration '{text}'"))?;
    let scale = match unit.trim() {
        "ns" => 1e-9,
        "us" => 1e-6,
        "ms" => 1e-3,
        "s" => 1.0,
        "m" => 60.0,
        "h" => 3600.0,
        "d" => 86400.0,
        other => return Err(format!("unknown duration unit '{other}' in '{text}'")),
    };
    Duration::try_from_secs_f64(value * scale).map_err(|_| format!("invalid duration '{text}'"))
}

fn de_opt_duration<'de, D: serde::Deserializer<'de>>(
    d: D,
) -> std::result::Result<Option<Duration>, D::Error> {
    de_duration(d).map(Some)
}

fn de_duration<'de, D: serde::Deserializer<'de>>(d: D) -> std::result::Result<Duration, D::Error> {
    let text = String::deserialize(d)?;
    parse_duration(&text).map_err(serde::de::Error::custom)
}

/// Log line format.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, Serialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    /// Human-readable lines.
    #[default]
    Text,
    /// One JSON object per line.
    Json,
}

/// `[limits]`: token buckets refilled continuously; a full bucket holds a
/// minute's worth of requests. Each replica keeps its own buckets.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct LimitsConfig {
    /// Requests per minute of tokens whose document sets no `rate_limit`
    /// (0: unlimited).
    pub rate_limit_per_minute: u32,
    /// Failed authentications per minute allowed from one client address
    /// (IPv6: one /64) before every authentication from it is refused
    /// with 429 / `RESOURCE_EXHAUSTED` until the bucket refills (0: off).
    pub auth_failures_per_minute: u32,
}

impl Default for LimitsConfig {
    fn default() -> Self {
        Self {
            rate_limit_per_minute: 1200,
            auth_failures_per_minute: 30,
        }
    }
}

/// `[tracing]`: W3C trace context is always continued and returned; spans
/// are exported only when `otlp_endpoint` is set.
#[derive(Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct TracingConfig {
    /// Continue and return trace context (turn off only to measure its
    /// cost).
    pub enabled: bool,
    /// OTLP/HTTP traces URL of a collector
    /// (`http://127.0.0.1:4318/v1/traces`); none: nothing is exported.
    pub otlp_endpoint: Option<String>,
    /// `service.name` of the exported spans.
    pub service_name: String,
}

impl fmt::Debug for TracingConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TracingConfig")
            .field("enabled", &self.enabled)
            .field(
                "otlp_endpoint",
                &self.otlp_endpoint.as_deref().map(redact_url),
            )
            .field("service_name", &self.service_name)
            .finish()
    }
}

impl Default for TracingConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            otlp_endpoint: None,
            service_name: "sluice".into(),
        }
    }
}

/// `[audit]`: one record per request, written in the background.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AuditConfig {
    /// Write audit records and request metrics (turn off only to measure
    /// their cost: a gateway without an audit log is not deployable).
    pub enabled: bool,
    /// Records waiting to be written; when full, new records are dropped
    /// and counted (`sluice_audit_dropped_total`), never waited for.
    pub queue: usize,
    /// How long records are kept (`"30d"`, `"12h"`).
    #[serde(deserialize_with = "de_duration")]
    pub retention: Duration,
}

impl Default for AuditConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            queue: 10_000,
            retention: Duration::from_secs(30 * 86400),
        }
    }
}

/// `[log]`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct LogConfig {
    /// `text` or `json`.
    pub format: LogFormat,
    /// A `tracing` filter (`info`, `sluice=debug,info`). `RUST_LOG` wins.
    pub filter: Option<String>,
}

/// What kind of system a catalog is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum CatalogKind {
    /// Apache Iceberg.
    Iceberg,
    /// A Milvus database (collections as tables).
    Milvus,
}

/// Which Iceberg catalog implementation to talk to.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum IcebergCatalogType {
    /// SQL catalog (SQLite or Postgres; pyiceberg's `SqlCatalog`).
    #[default]
    Sql,
    /// REST catalog.
    Rest,
}

/// `[catalogs.<name>]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CatalogConfig {
    /// `iceberg` or `milvus`.
    pub kind: CatalogKind,
    /// `sql` (default) or `rest`.
    #[serde(default)]
    pub catalog: IcebergCatalogType,
    /// The Iceberg catalog's own name; default: the section key.
    #[serde(default)]
    pub catalog_name: Option<String>,
    /// SQL catalog database URI, or the REST endpoint.
    pub uri: String,
    /// Warehouse location (`file:///…`, a plain path, or `s3://…`).
    #[serde(default)]
    pub warehouse: Option<String>,
    /// Extra catalog properties passed through verbatim.
    #[serde(default)]
    pub props: Props,
    /// S3 settings for `s3://` warehouses.
    #[serde(default)]
    pub s3: Option<S3Settings>,
    /// Classification per `namespace.table`.
    #[serde(default)]
    pub tables: BTreeMap<String, TableClassConfig>,
    /// Milvus: the database served (its name is the schema name); default
    /// `default`.
    #[serde(default)]
    pub database: Option<String>,
    /// Milvus: user name (with `password`).
    #[serde(default)]
    pub username: Option<String>,
    /// Milvus: password (redacted in `Debug`).
    #[serde(default)]
    pub password: Option<Secret>,
    /// Milvus: API token instead of user/password (redacted in `Debug`).
    #[serde(default)]
    pub token: Option<Secret>,
    /// Milvus: deadline of every call (connect, list, query page, search);
    /// default 10s.
    #[serde(default, deserialize_with = "de_opt_duration")]
    pub timeout: Option<Duration>,
    /// Milvus: how often the collection list is re-read; default 30s.
    #[serde(default, deserialize_with = "de_opt_duration")]
    pub refresh_interval: Option<Duration>,
    /// Milvus: rows per query page (1..=16384); default 4096.
    #[serde(default)]
    pub page_size: Option<usize>,
    /// Milvus: consistency level of reads (`strong`, `session`, `bounded`,
    /// `eventually`); default: each collection's own.
    #[serde(default)]
    pub consistency: Option<String>,
}

/// Catalog properties. `Debug` redacts values whose key looks like a credential.
#[derive(Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(transparent)]
pub struct Props(pub BTreeMap<String, String>);

impl fmt::Debug for Props {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        const SENSITIVE: [&str; 6] = ["secret", "password", "token", "credential", "key", "auth"];
        let mut m = f.debug_map();
        for (k, v) in &self.0 {
            let lk = k.to_ascii_lowercase();
            if SENSITIVE.iter().any(|s| lk.contains(s)) {
                m.entry(k, &"[redacted]");
            } else {
                m.entry(k, v);
            }
        }
        m.finish()
    }
}

/// `[catalogs.<name>.s3]`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct S3Settings {
    /// Custom endpoint (MinIO, …).
    pub endpoint: Option<String>,
    /// Region.
    pub region: Option<String>,
    /// Access key id.
    pub access_key_id: Option<String>,
    /// Secret access key (redacted in `Debug`).
    pub secret_access_key: Option<Secret>,
    /// Path-style addressing (needed by most S3-compatible servers).
    pub path_style: bool,
}

/// `[catalogs.<name>.tables."ns.table"]`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct TableClassConfig {
    /// Integer column holding each row's sensitivity.
    pub sensitivity_column: Option<String>,
    /// Attachment columns (hidden unless `allow_attachments`).
    pub attachment_columns: Vec<String>,
    /// Embedding columns (hidden unless `can_export_vectors`). Default:
    /// every list / fixed-size list of floating point column.
    pub vector_columns: Option<Vec<String>>,
}

impl From<&TableClassConfig> for TableClass {
    fn from(c: &TableClassConfig) -> Self {
        TableClass {
            sensitivity_column: c.sensitivity_column.clone(),
            attachment_columns: c.attachment_columns.clone(),
            vector_columns: c.vector_columns.clone(),
        }
    }
}

/// A secret string: `Debug` never shows it.
#[derive(Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(transparent)]
pub struct Secret(String);

impl Secret {
    /// Wraps a secret.
    pub fn new(s: impl Into<String>) -> Self {
        Self(s.into())
    }

    /// The secret itself, for handing to the component that needs it.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("\"[redacted]\"")
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
        let t = &self.trino;
        if t.page_max_rows == 0 || t.page_max_bytes == 0 {
            problems.push("trino.page_max_rows and trino.page_max_bytes must be at least 1".into());
        }
        if t.max_concurrent_queries == 0 || t.max_queries_per_token == 0 {
            problems.push(
                "trino.max_concurrent_queries and trino.max_queries_per_token must be at least 1"
                    .into(),
            );
        }
        if t.client_timeout < t.max_wait * 2 {
            problems.push(
                "trino.client_timeout must be at least twice trino.max_wait (a poll waits up to max_wait)"
                    .into(),
            );
        }
        if t.client_timeout.is_zero() || t.max_run_time.is_zero() {
            problems.push("trino.client_timeout and trino.max_run_time must be positive".into());
        }
        if let Some(u) = &t.external_url
            && url::Url::parse(u).is_err()
        {
            problems.push(format!("trino.external_url: '{u}' is not a URL"));
        }
        let e = &mut self.exports;
        e.root = Some(absolute(
            base,
            &e.root
                .take()
                .unwrap_or_else(|| self.server.data_dir.join("exports")),
        ));
        if e.concurrency == 0 || e.max_jobs_per_token == 0 || e.max_running_per_token == 0 {
            problems.push(
                "exports.concurrency, max_jobs_per_token and max_running_per_token must be at least 1"
                    .into(),
            );
        }
        if e.memory_limit < MIN_EXPORT_MEMORY {
            problems.push("exports.memory_limit must be at least 32MiB".into());
        }
        if e.max_file_bytes < MIN_FILE_BYTES {
            problems.push("exports.max_file_bytes must be at least 64KiB".into());
        }
        if e.row_group_rows == 0 {
            problems.push("exports.row_group_rows must be at least 1".into());
        }
        if e.max_run_time.is_zero() || e.max_bytes_per_job == 0 || e.max_files_per_job == 0 {
            problems.push(
                "exports.max_run_time, max_bytes_per_job and max_files_per_job must be positive"
                    .into(),
            );
        }
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
        let f = &self.federation;
        if f.connect_timeout.is_zero()
            || f.request_timeout.is_zero()
            || f.failure_threshold == 0
            || f.refresh_interval.is_zero()
            || f.sync_interval.is_zero()
        {
            problems.push(
                "federation.connect_timeout, request_timeout, failure_threshold, refresh_interval and sync_interval must be positive"
                    .into(),
            );
        }
        if self.audit.queue == 0 || self.audit.retention.is_zero() {
            problems.push("audit.queue and audit.retention must be positive".into());
        }
        if e.retry_timeout.is_zero() || e.cleanup_interval.is_zero() {
            problems
                .push("exports.retry_timeout and exports.cleanup_interval must be positive".into());
        }
        if let Some(u) = &e.s3.endpoint
            && url::Url::parse(u).is_err()
        {
            problems.push(format!("exports.s3.endpoint: '{u}' is not a URL"));
        }
        for (name, cat) in &mut self.catalogs {
            if name == "system" {
                problems.push(
                    "catalogs.system: the name is reserved for Trino's system catalog".into(),
                );
            }
            if name.is_empty() || name.contains('.') || name.contains(char::is_whitespace) {
                problems.push(format!(
                    "catalogs.{name}: catalog names must be non-empty, without dots or spaces"
                ));
            }
            if cat.uri.trim().is_empty() {
                problems.push(format!("catalogs.{name}.uri must be set"));
            }
            if cat.kind == CatalogKind::Milvus {
                if !(cat.uri.starts_with("http://") || cat.uri.starts_with("https://")) {
                    problems.push(format!(
                        "catalogs.{name}.uri: a Milvus endpoint looks like http://host:19530"
                    ));
                }
                if cat.warehouse.is_some() || cat.s3.is_some() || cat.catalog_name.is_some() {
                    problems.push(format!(
                        "catalogs.{name}: warehouse, s3 and catalog_name are Iceberg settings"
                    ));
                }
                if cat.timeout.is_some_and(|t| t.is_zero())
                    || cat.refresh_interval.is_some_and(|t| t.is_zero())
                {
                    problems.push(format!(
                        "catalogs.{name}: timeout and refresh_interval must be positive"
                    ));
                }
                if cat.page_size.is_some_and(|p| p == 0 || p > 16_384) {
                    problems.push(format!("catalogs.{name}.page_size must be 1..=16384"));
                }
                continue;
            }
            let milvus_only = [
                ("database", cat.database.is_some()),
                ("username", cat.username.is_some()),
                ("password", cat.password.is_some()),
                ("token", cat.token.is_some()),
                ("timeout", cat.timeout.is_some()),
                ("refresh_interval", cat.refresh_interval.is_some()),
                ("page_size", cat.page_size.is_some()),
                ("consistency", cat.consistency.is_some()),
            ];
            for (key, set) in milvus_only {
                if set {
                    problems.push(format!(
                        "catalogs.{name}.{key} is a Milvus setting (kind = \"milvus\")"
                    ));
                }
            }
            if cat.catalog == IcebergCatalogType::Sql && is_sqlite_url(&cat.uri) {
                match normalize_sqlite_url(&cat.uri, base) {
                    Ok(u) => cat.uri = u,
                    Err(e) => problems.push(format!("catalogs.{name}.uri: {e}")),
                }
            }
            if let Some(w) = &cat.warehouse {
                cat.warehouse = Some(normalize_warehouse(w, base));
            }
            for table in cat.tables.keys() {
                let parts: Vec<&str> = table.split('.').collect();
                if parts.len() < 2 || parts.iter().any(|p| p.is_empty()) {
                    problems.push(format!(
                        "catalogs.{name}.tables.\"{table}\": expected \"namespace.table\""
                    ));
                }
            }
        }
        if problems.is_empty() {
            Ok(self)
        } else {
            Err(Error::Config(problems.join("; ")))
        }
    }

    /// Table classifications of one catalog, keyed `namespace.table`.
    pub fn table_classes(&self, catalog: &str) -> std::collections::HashMap<String, TableClass> {
        self.catalogs
            .get(catalog)
            .map(|c| {
                c.tables
                    .iter()
                    .map(|(k, v)| (k.clone(), v.into()))
                    .collect()
            })
            .unwrap_or_default()
    }
}

/// Whether `url` is a SQLite URL (`sqlite:` scheme).
pub fn is_sqlite_url(url: &str) -> bool {
    url.get(..7)
        .is_some_and(|s| s.eq_ignore_ascii_case("sqlite:"))
}

/// The file path (or `:memory:`) and query string of a SQLite URL.
///
/// Accepted forms: `sqlite:///abs/x.db` (sqlx), `sqlite:////abs/x.db`
/// (SQLAlchemy / pyiceberg), `sqlite://./rel.db`, `sqlite://rel.db`,
/// `sqlite:rel.db`, `sqlite::memory:`; any may end in `?key=value…`.
pub fn split_sqlite_url(url: &str) -> Option<(&str, Option<&str>)> {
    if !is_sqlite_url(url) {
        return None;
    }
    let rest = &url[7..];
    let rest = rest.strip_prefix("//").unwrap_or(rest);
    // SQLAlchemy's absolute form has four slashes: keep exactly one.
    let rest = if rest.starts_with("//") {
        &rest[1..]
    } else {
        rest
    };
    Some(match rest.split_once('?') {
        Some((p, q)) => (p, Some(q)),
        None => (rest, None),
    })
}

/// Rewrites a SQLite URL to sqlx's absolute form `sqlite:///abs/path[?query]`,
/// resolving a relative path against `base`.
pub fn normalize_sqlite_url(url: &str, base: &Path) -> std::result::Result<String, String> {
    let (path, query) = split_sqlite_url(url).ok_or_else(|| format!("not a sqlite URL: {url}"))?;
    if path.is_empty() {
        return Err(format!("no database path in '{url}'"));
    }
    if path == ":memory:" {
        return Ok(url.to_string());
    }
    Ok(sqlite_url(&absolute(base, Path::new(path)), query))
}

fn sqlite_url(path: &Path, query: Option<&str>) -> String {
    let mut s = format!("sqlite://{}", path.display());
    if let Some(q) = query {
        s.push('?');
        s.push_str(q);
    }
    s
}

/// A warehouse location: URLs with a scheme other than `file:` are kept;
/// plain paths and `file:` URLs become `file:///abs/path`.
pub fn normalize_warehouse(w: &str, base: &Path) -> String {
    let path = if let Some(rest) = w.strip_prefix("file://") {
        rest
    } else if let Some(rest) = w.strip_prefix("file:") {
        rest
    } else if w.contains("://") {
        return w.to_string();
    } else {
        w
    };
    format!("file://{}", absolute(base, Path::new(path)).display())
}

/// `path` made absolute against `base`, with `.` components removed.
pub fn absolute(base: &Path, path: &Path) -> PathBuf {
    let joined = if path.is_absolute() {
        path.to_path_buf()
    } else {
        base.join(path)
    };
    joined
        .components()
        .filter(|c| !matches!(c, Component::CurDir))
        .collect()
}

/// A URL with its password (if any) replaced by `***`, for logs and errors.
pub fn redact_url(url: &str) -> String {
    match url::Url::parse(url) {
        Ok(mut u) if u.password().is_some() => {
            // Cannot fail: the URL has a host (it has a password).
            let _ = u.set_password(Some("***"));
            u.to_string()
        }
        Ok(_) => url.to_string(),
        Err(_) => "[unparseable url]".to_string(),
    }
}

#[cfg(test)]
// figment's `Jail::expect_with` fixes the closure's error type.
#[allow(clippy::result_large_err)]
mod tests {
    use super::*;

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
            let lake = &cfg.catalogs["lake"];
            assert_eq!(lake.uri, "sqlite:///abs/catalog.db");
            assert_eq!(lake.warehouse.as_deref(), Some("file:///base/wh"));
            assert_eq!(lake.catalog_name.as_deref(), Some("warehouse1"));
            let classes = cfg.table_classes("lake");
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
        assert_eq!(cfg.catalogs["lake"].uri, "sqlite:///abs/path/catalog.db");
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
            assert_eq!(cfg.catalogs["lake"].uri, "sqlite:///other.db");
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
            let vec = &cfg.catalogs["vec"];
            assert_eq!(vec.kind, CatalogKind::Milvus);
            assert_eq!(vec.timeout, Some(Duration::from_secs(2)));
            assert_eq!(vec.refresh_interval, Some(Duration::from_millis(500)));
            assert!(!format!("{vec:?}").contains("hunter2"));
            let m = crate::catalogs::milvus_config("vec", vec);
            assert_eq!(m.database, "default");
            assert_eq!(m.page_size, 1000);
            assert!(!format!("{m:?}").contains("hunter2"));
            Ok(())
        });
        let mut bad = Config::default();
        let toml = r#"
kind = "milvus"
uri = "127.0.0.1:19530"
warehouse = "file:///x"
page_size = 0
"#;
        bad.catalogs.insert(
            "vec".into(),
            Figment::from(Toml::string(toml)).extract().unwrap(),
        );
        let iceberg = r#"
kind = "iceberg"
uri = "sqlite:///x.db"
timeout = "1s"
"#;
        bad.catalogs.insert(
            "lake".into(),
            Figment::from(Toml::string(iceberg)).extract().unwrap(),
        );
        let err = bad.resolve(Path::new("/b")).unwrap_err().to_string();
        for needle in [
            "catalogs.vec.uri",
            "Iceberg settings",
            "page_size",
            "catalogs.lake.timeout is a Milvus setting",
        ] {
            assert!(err.contains(needle), "{needle} in {err}");
        }
    }

    #[test]
    fn sqlite_urls() {
        let b = Path::new("/cwd");
        let n = |u: &str| normalize_sqlite_url(u, b).unwrap();
        assert_eq!(n("sqlite:///abs/x.db"), "sqlite:///abs/x.db");
        assert_eq!(n("sqlite:////abs/x.db"), "sqlite:///abs/x.db");
        assert_eq!(n("sqlite://./rel/x.db"), "sqlite:///cwd/rel/x.db");
        assert_eq!(n("sqlite://rel.db"), "sqlite:///cwd/rel.db");
        assert_eq!(n("sqlite:rel.db?mode=rwc"), "sqlite:///cwd/rel.db?mode=rwc");
        assert_eq!(n("sqlite::memory:"), "sqlite::memory:");
        assert!(normalize_sqlite_url("sqlite://", b).is_err());
        assert_eq!(normalize_warehouse("./wh", b), "file:///cwd/wh");
        assert_eq!(normalize_warehouse("file:///abs/wh", b), "file:///abs/wh");
        assert_eq!(normalize_warehouse("s3://bucket/wh", b), "s3://bucket/wh");
    }

    #[test]
    fn redaction() {
        assert_eq!(
            redact_url("postgres://u:p4ss@h:5432/db"),
            "postgres://u:***@h:5432/db"
        );
        assert_eq!(redact_url("postgres://h/db"), "postgres://h/db");
        assert_eq!(format!("{:?}", Secret::new("x")), "\"[redacted]\"");
    }
}
