//! One imported share profile: its configuration, the gRPC channel to
//! the provider (plain or TLS, with an optional client certificate), and
//! the provider's tables as last discovered.

use std::collections::BTreeMap;
use std::fmt;
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use arrow::datatypes::SchemaRef;
use arrow::record_batch::RecordBatch;
use arrow_flight::sql::{CommandGetTables, ProstMessageExt};
use datafusion::common::Result as DfResult;
use futures::StreamExt;
use prost::Message;
use sluice_planner::Secret;
use tonic::transport::{Certificate, Channel, ClientTlsConfig, Endpoint, Identity};

use super::state::{Breaker, Failure, PeerState};

/// How to reach and treat one peer.
#[derive(Clone)]
pub struct PeerConfig {
    /// The catalog name the peer is mounted as.
    pub name: String,
    /// The provider's Flight SQL endpoint (`grpc+tls://host:port`,
    /// `grpc://host:port`, `https://…`, `http://…`).
    pub endpoint: String,
    /// The share token's secret.
    pub secret: Secret,
    /// PEM of the CA that signed the provider's certificate (from the
    /// profile); `None`: the web PKI roots.
    pub ca_pem: Option<String>,
    /// PEM certificate chain and key presented to the provider (mTLS).
    pub client_identity: Option<(String, Secret)>,
    /// The provider's catalog mirrored.
    pub remote_catalog: String,
    /// Longest wait for a TCP + TLS connection.
    pub connect_timeout: Duration,
    /// Longest wait for an answer (and between two messages of a stream).
    pub request_timeout: Duration,
    /// Consecutive failures that open the circuit.
    pub failure_threshold: u32,
    /// How long an open circuit fails fast before one probe.
    pub cooldown: Duration,
}

impl fmt::Debug for PeerConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PeerConfig")
            .field("name", &self.name)
            .field("endpoint", &self.endpoint)
            .field("secret", &"[redacted]")
            .field("remote_catalog", &self.remote_catalog)
            .field("mtls", &self.client_identity.is_some())
            .finish()
    }
}

/// Called once when the provider refuses the share token.
pub type OnRevoked = Arc<dyn Fn(&str) + Send + Sync>;

/// Tables of the mirrored catalog: schema → table → Arrow schema.
pub(super) type TableMap = BTreeMap<String, BTreeMap<String, SchemaRef>>;

/// One imported share profile: a Flight SQL client with its circuit breaker
/// and the provider's tables as last discovered.
pub struct Peer {
    pub(super) config: PeerConfig,
    pub(super) channel: Channel,
    pub(super) breaker: Mutex<Breaker>,
    pub(super) tables: RwLock<Option<TableMap>>,
    pub(super) on_revoked: Option<OnRevoked>,
}

impl fmt::Debug for Peer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Peer")
            .field("config", &self.config)
            .field("state", &self.state())
            .finish()
    }
}

/// `grpc+tls://h:p` → `https://h:p`, `grpc://`/`grpc+tcp://` → `http://`.
pub fn channel_uri(endpoint: &str) -> Result<(String, bool), String> {
    let url = url::Url::parse(endpoint.trim())
        .map_err(|e| format!("endpoint '{endpoint}' is not a URL: {e}"))?;
    let tls = match url.scheme() {
        "grpc+tls" | "https" => true,
        "grpc" | "grpc+tcp" | "http" => false,
        other => return Err(format!("endpoint scheme '{other}' is not supported")),
    };
    let host = url
        .host_str()
        .ok_or_else(|| format!("endpoint '{endpoint}' has no host"))?;
    let port = url
        .port()
        .ok_or_else(|| format!("endpoint '{endpoint}' has no port"))?;
    let scheme = if tls { "https" } else { "http" };
    Ok((format!("{scheme}://{host}:{port}"), tls))
}

impl Peer {
    /// A peer (no connection is made until the first request).
    pub fn new(config: PeerConfig, on_revoked: Option<OnRevoked>) -> Result<Arc<Self>, String> {
        let (uri, tls) = channel_uri(&config.endpoint)?;
        let mut endpoint = Endpoint::from_shared(uri.clone())
            .map_err(|e| format!("endpoint '{uri}': {e}"))?
            .connect_timeout(config.connect_timeout)
            .timeout(config.request_timeout)
            .tcp_nodelay(true);
        if tls {
            let host = url::Url::parse(&uri)
                .ok()
                .and_then(|u| u.host_str().map(str::to_string))
                .unwrap_or_default();
            let mut tls_config = ClientTlsConfig::new().domain_name(host);
            tls_config = match &config.ca_pem {
                Some(pem) => tls_config.ca_certificate(Certificate::from_pem(pem)),
                None => tls_config.with_webpki_roots(),
            };
            if let Some((cert, key)) = &config.client_identity {
                tls_config = tls_config.identity(Identity::from_pem(cert, key.expose()));
            }
            endpoint = endpoint
                .tls_config(tls_config)
                .map_err(|e| format!("TLS settings of peer '{}': {e}", config.name))?;
        } else if config.client_identity.is_some() {
            return Err(format!(
                "peer '{}': a client certificate needs a TLS endpoint (grpc+tls://)",
                config.name
            ));
        }
        let channel = endpoint.connect_lazy();
        let peer = Arc::new(Self {
            config,
            channel,
            breaker: Mutex::new(Breaker {
                state: PeerState::Closed,
                failures: 0,
                opened_at: None,
                probing_since: None,
                last_error: None,
            }),
            tables: RwLock::new(None),
            on_revoked,
        });
        peer.publish_state(PeerState::Closed);
        Ok(peer)
    }

    /// The peer's name (its catalog).
    pub fn name(&self) -> &str {
        &self.config.name
    }

    /// The configuration.
    pub fn config(&self) -> &PeerConfig {
        &self.config
    }

    async fn discover_tables(self: &Arc<Self>, probe: bool) -> Result<TableMap, Failure> {
        let command = CommandGetTables {
            catalog: Some(self.config.remote_catalog.clone()),
            db_schema_filter_pattern: None,
            table_name_filter_pattern: None,
            table_types: Vec::new(),
            include_schema: true,
        }
        .as_any()
        .encode_to_vec();
        let mut stream = if probe {
            self.send(command).await?
        } else {
            self.open(command).await?
        };
        let mut tables = TableMap::new();
        while let Some(batch) = stream.next().await {
            collect_tables(&batch?, &mut tables).map_err(Failure::Protocol)?;
        }
        Ok(tables)
    }

    fn store_tables(&self, tables: TableMap) {
        let count: usize = tables.values().map(BTreeMap::len).sum();
        tracing::debug!(peer = %self.config.name, tables = count, "peer tables discovered");
        *self.tables.write().unwrap_or_else(|e| e.into_inner()) = Some(tables);
    }

    /// Discovers the provider's tables (schemas included) in `remote_catalog`.
    pub async fn refresh(self: &Arc<Self>) -> DfResult<()> {
        let result = self.discover_tables(false).await;
        let tables = self.settle(result)?;
        self.store_tables(tables);
        Ok(())
    }

    /// Asks a revoked peer's provider again (bypassing the revocation):
    /// when it accepts the share token, the refusal was not a revocation
    /// (a client certificate it did not accept yet, say) and the peer is
    /// usable again. Returns whether it was restored.
    pub async fn probe_revoked(self: &Arc<Self>) -> bool {
        if self.state() != PeerState::Revoked {
            return false;
        }
        let Ok(tables) = self.discover_tables(true).await else {
            return false;
        };
        self.store_tables(tables);
        let mut b = self.lock();
        b.state = PeerState::Closed;
        b.failures = 0;
        b.last_error = None;
        drop(b);
        self.publish_state(PeerState::Closed);
        tracing::info!(peer = %self.config.name, "the provider accepts the share token again: peer restored");
        true
    }

    /// Whether the tables were discovered at least once.
    pub fn discovered(&self) -> bool {
        self.tables
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .is_some()
    }

    pub(super) fn snapshot(&self) -> TableMap {
        self.tables
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
            .unwrap_or_default()
    }
}

/// Reads a `GetTables` answer (with `table_schema`) into `out`.
fn collect_tables(batch: &RecordBatch, out: &mut TableMap) -> Result<(), String> {
    use arrow::array::{Array, AsArray};
    let column = |name: &str| {
        batch
            .column_by_name(name)
            .ok_or_else(|| format!("GetTables answer has no {name} column"))
    };
    let schemas = column("db_schema_name")?;
    let names = column("table_name")?;
    let ipc = column("table_schema")?;
    let schemas = schemas
        .as_string_opt::<i32>()
        .ok_or("db_schema_name is not a string column")?;
    let names = names
        .as_string_opt::<i32>()
        .ok_or("table_name is not a string column")?;
    let ipc = ipc
        .as_binary_opt::<i32>()
        .ok_or("table_schema is not a binary column")?;
    for i in 0..batch.num_rows() {
        if schemas.is_null(i) || names.is_null(i) || ipc.is_null(i) {
            continue;
        }
        let schema = arrow::ipc::convert::try_schema_from_ipc_buffer(ipc.value(i))
            .map_err(|e| format!("table schema of {}: {e}", names.value(i)))?;
        out.entry(schemas.value(i).to_string())
            .or_default()
            .insert(names.value(i).to_string(), Arc::new(schema));
    }
    Ok(())
}

#[cfg(test)]
pub(super) mod tests {
    use super::*;

    /// A peer nothing answers for (`127.0.0.1:1`), with short timeouts and
    /// a circuit that opens after two failures.
    pub(crate) fn unreachable_peer() -> Arc<Peer> {
        Peer::new(
            PeerConfig {
                name: "partner".into(),
                endpoint: "grpc://127.0.0.1:1".into(),
                secret: Secret::new("slc_x"),
                ca_pem: None,
                client_identity: None,
                remote_catalog: "lake".into(),
                connect_timeout: Duration::from_millis(200),
                request_timeout: Duration::from_millis(500),
                failure_threshold: 2,
                cooldown: Duration::from_millis(300),
            },
            None,
        )
        .unwrap()
    }

    #[test]
    fn endpoints() {
        assert_eq!(
            channel_uri("grpc+tls://h:1").unwrap(),
            ("https://h:1".into(), true)
        );
        assert_eq!(
            channel_uri("grpc://h:1").unwrap(),
            ("http://h:1".into(), false)
        );
        assert!(channel_uri("ftp://h:1").is_err());
        assert!(channel_uri("grpc+tls://h").is_err());
    }
}
