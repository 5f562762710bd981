//! Remote sluice (federation, DESIGN §6–7): another gateway's tables,
//! reached over Flight SQL with a share token.
//!
//! A [`Peer`] is one imported share profile. It is mounted as a catalog
//! ([`PeerCatalog`]) whose schemas and tables mirror the provider's catalog
//! `remote_catalog` as the share token sees it (discovered with `GetTables`
//! including schemas, refreshed every `refresh_interval`). A scan sends the
//! pushed-down query — projection, the filters DataFusion's unparser can
//! write as SQL, and the limit — to the provider as one SQL statement and
//! streams the answer: nothing is stored at the receiver.
//!
//! The provider applies its policy to the share token; the receiver's secure
//! view wraps these tables like any other, so the receiver's policy applies
//! on top, and every filter handed down here is re-applied above.
//!
//! Resilience: connect and request timeouts, and a circuit breaker per peer
//! (after `failure_threshold` consecutive failures the peer fails fast for
//! `cooldown`, then one probe decides). A provider that refuses the share
//! token (`UNAUTHENTICATED`: revoked or expired) marks the peer revoked.

use std::any::Any;
use std::collections::BTreeMap;
use std::fmt;
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

use arrow::datatypes::SchemaRef;
use arrow::record_batch::RecordBatch;
use arrow_flight::decode::FlightRecordBatchStream;
use arrow_flight::error::FlightError;
use arrow_flight::flight_service_client::FlightServiceClient;
use arrow_flight::sql::{CommandGetTables, CommandStatementQuery, ProstMessageExt};
use arrow_flight::{FlightDescriptor, FlightInfo};
use async_trait::async_trait;
use datafusion::catalog::{CatalogProvider, SchemaProvider, Session};
use datafusion::common::{Result as DfResult, not_impl_err};
use datafusion::datasource::{TableProvider, TableType};
use datafusion::error::DataFusionError;
use datafusion::execution::{SendableRecordBatchStream, TaskContext};
use datafusion::logical_expr::{Expr, TableProviderFilterPushDown};
use datafusion::physical_expr::EquivalenceProperties;
use datafusion::physical_plan::execution_plan::{Boundedness, EmissionType};
use datafusion::physical_plan::stream::RecordBatchStreamAdapter;
use datafusion::physical_plan::{
    DisplayAs, DisplayFormatType, ExecutionPlan, Partitioning, PlanProperties,
};
use datafusion::sql::unparser::Unparser;
use futures::{StreamExt, TryStreamExt};
use prost::Message;
use sluice_planner::connector::ConnectorUnavailable;
use tonic::transport::{Certificate, Channel, ClientTlsConfig, Endpoint, Identity};

/// Largest gRPC message accepted from a provider.
const MAX_MESSAGE_BYTES: usize = 64 << 20;

/// How to reach and treat one peer.
#[derive(Clone)]
pub struct PeerConfig {
    /// The catalog name the peer is mounted as.
    pub name: String,
    /// The provider's Flight SQL endpoint (`grpc+tls://host:port`,
    /// `grpc://host:port`, `https://…`, `http://…`).
    pub endpoint: String,
    /// The share token's secret (never logged: `Debug` redacts it).
    pub secret: String,
    /// PEM of the CA that signed the provider's certificate (from the
    /// profile); `None`: the web PKI roots.
    pub ca_pem: Option<String>,
    /// PEM certificate chain and key presented to the provider (mTLS).
    pub client_identity: Option<(String, String)>,
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

/// The circuit state of a peer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PeerState {
    /// Requests go through.
    Closed,
    /// Requests fail fast until the cooldown has passed.
    Open,
    /// The cooldown has passed: one probe request is in flight.
    HalfOpen,
    /// The provider refused the share token: every request fails.
    Revoked,
}

impl PeerState {
    /// Label for `/ready` and metrics.
    pub fn as_str(&self) -> &'static str {
        match self {
            PeerState::Closed => "closed",
            PeerState::Open => "open",
            PeerState::HalfOpen => "half_open",
            PeerState::Revoked => "revoked",
        }
    }

    const ALL: [PeerState; 4] = [
        PeerState::Closed,
        PeerState::Open,
        PeerState::HalfOpen,
        PeerState::Revoked,
    ];
}

/// What `/ready` reports of a peer (nothing about its data).
#[derive(Debug, Clone, serde::Serialize)]
pub struct PeerStatus {
    /// Circuit state.
    pub state: &'static str,
    /// Consecutive failures.
    pub failures: u32,
    /// The kind of the last failure (`connect`, `timeout`, `revoked`, …).
    pub last_error: Option<String>,
}

#[derive(Debug)]
struct Breaker {
    state: PeerState,
    failures: u32,
    opened_at: Option<Instant>,
    /// When the half-open probe was let through.
    probing_since: Option<Instant>,
    last_error: Option<String>,
}

/// Called once when the provider refuses the share token.
pub type OnRevoked = Arc<dyn Fn(&str) + Send + Sync>;

/// Tables of the mirrored catalog: schema → table → Arrow schema.
type TableMap = BTreeMap<String, BTreeMap<String, SchemaRef>>;

/// One imported share profile: a Flight SQL client with its circuit breaker
/// and the provider's tables as last discovered.
pub struct Peer {
    config: PeerConfig,
    channel: Channel,
    breaker: Mutex<Breaker>,
    tables: RwLock<Option<TableMap>>,
    on_revoked: Option<OnRevoked>,
}

impl fmt::Debug for Peer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Peer")
            .field("config", &self.config)
            .field("state", &self.state())
            .finish()
    }
}

/// Why a request to a peer failed.
#[derive(Debug)]
enum Failure {
    /// The circuit is open (nothing was sent).
    CircuitOpen(Duration),
    /// Revoked (now or before).
    Revoked,
    /// Connection, TLS or transport failure, or a timeout: counts against
    /// the circuit.
    Down { kind: &'static str, detail: String },
    /// The provider answered with an error about the request (it is up).
    Refused(tonic::Status),
    /// The answer could not be used.
    Protocol(String),
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
                tls_config = tls_config.identity(Identity::from_pem(cert, key));
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

    /// The circuit state.
    pub fn state(&self) -> PeerState {
        self.lock().state
    }

    /// What `/ready` shows.
    pub fn status(&self) -> PeerStatus {
        let b = self.lock();
        PeerStatus {
            state: b.state.as_str(),
            failures: b.failures,
            last_error: b.last_error.clone(),
        }
    }

    /// Marks the peer revoked (the store says so, or the provider did).
    pub fn mark_revoked(&self) {
        let mut b = self.lock();
        if b.state != PeerState::Revoked {
            b.state = PeerState::Revoked;
            b.last_error = Some("revoked".into());
            drop(b);
            self.publish_state(PeerState::Revoked);
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Breaker> {
        self.breaker.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn publish_state(&self, state: PeerState) {
        for s in PeerState::ALL {
            metrics::gauge!("sluice_peer_state", "peer" => self.config.name.clone(), "state" => s.as_str())
                .set(if s == state { 1.0 } else { 0.0 });
        }
    }

    /// Lets a request through, or says why not.
    fn admit(&self) -> Result<(), Failure> {
        let mut b = self.lock();
        match b.state {
            PeerState::Closed => Ok(()),
            PeerState::Revoked => Err(Failure::Revoked),
            PeerState::HalfOpen => {
                // A probe whose request was dropped unsettled (a cancelled
                // query, a LIMIT satisfied early) must not jam the circuit:
                // after the longest a request may take, let another through.
                let limit = self.config.connect_timeout + self.config.request_timeout;
                if b.probing_since.is_none_or(|t| t.elapsed() >= limit) {
                    b.probing_since = Some(Instant::now());
                    Ok(())
                } else {
                    Err(Failure::CircuitOpen(Duration::ZERO))
                }
            }
            PeerState::Open => {
                let since = b.opened_at.map(|t| t.elapsed()).unwrap_or_default();
                if since >= self.config.cooldown {
                    b.state = PeerState::HalfOpen;
                    b.probing_since = Some(Instant::now());
                    drop(b);
                    self.publish_state(PeerState::HalfOpen);
                    tracing::info!(peer = %self.config.name, "peer circuit half-open: probing");
                    Ok(())
                } else {
                    Err(Failure::CircuitOpen(self.config.cooldown - since))
                }
            }
        }
    }

    fn succeeded(&self) {
        let mut b = self.lock();
        b.failures = 0;
        if matches!(b.state, PeerState::Open | PeerState::HalfOpen) {
            b.state = PeerState::Closed;
            b.opened_at = None;
            b.last_error = None;
            drop(b);
            self.publish_state(PeerState::Closed);
            tracing::info!(peer = %self.config.name, "peer circuit closed");
        }
    }

    fn failed(&self, kind: &'static str) {
        let mut b = self.lock();
        if b.state == PeerState::Revoked {
            return;
        }
        b.failures = b.failures.saturating_add(1);
        b.last_error = Some(kind.to_string());
        let open = b.state == PeerState::HalfOpen
            || (b.state == PeerState::Closed && b.failures >= self.config.failure_threshold);
        if open {
            b.state = PeerState::Open;
            b.opened_at = Some(Instant::now());
            let failures = b.failures;
            drop(b);
            self.publish_state(PeerState::Open);
            tracing::warn!(peer = %self.config.name, failures, "peer circuit open");
        }
    }

    /// Records the outcome of a request and turns a failure into the error
    /// the user sees.
    fn settle<T>(&self, result: Result<T, Failure>) -> DfResult<T> {
        let outcome = match &result {
            Ok(_) => "ok",
            Err(Failure::CircuitOpen(_) | Failure::Revoked) => "rejected",
            Err(_) => "error",
        };
        metrics::counter!("sluice_peer_requests_total", "peer" => self.config.name.clone(), "outcome" => outcome)
            .increment(1);
        match result {
            Ok(v) => {
                self.succeeded();
                Ok(v)
            }
            Err(f) => Err(self.error(f)),
        }
    }

    fn error(&self, failure: Failure) -> DataFusionError {
        let name = &self.config.name;
        let reason = match failure {
            Failure::CircuitOpen(wait) => format!(
                "peer '{name}' is unavailable: circuit open after repeated failures, retry in {}s",
                wait.as_secs() + 1
            ),
            Failure::Revoked => {
                self.mark_revoked();
                format!(
                    "peer '{name}': peer access revoked (the provider no longer accepts the share token)"
                )
            }
            Failure::Down { kind, detail } => {
                self.failed(kind);
                tracing::warn!(peer = %name, kind, error = %detail, "peer request failed");
                format!("peer '{name}' is unavailable: {detail}")
            }
            Failure::Refused(status) => {
                self.succeeded();
                tracing::warn!(peer = %name, code = ?status.code(), error = %status.message(), "peer refused the request");
                return DataFusionError::External(Box::new(PeerRefused {
                    peer: name.clone(),
                    message: status.message().to_string(),
                }));
            }
            Failure::Protocol(m) => {
                self.succeeded();
                tracing::warn!(peer = %name, error = %m, "peer answer unusable");
                return DataFusionError::Execution(format!("peer '{name}': {m}"));
            }
        };
        ConnectorUnavailable::peer(name.clone(), reason).into_datafusion()
    }

    fn classify(&self, status: tonic::Status) -> Failure {
        use tonic::Code;
        match status.code() {
            Code::Unauthenticated => {
                if let Some(cb) = &self.on_revoked {
                    cb(&self.config.name);
                }
                Failure::Revoked
            }
            Code::Unavailable | Code::Unknown | Code::Cancelled => Failure::Down {
                kind: "connect",
                detail: describe_transport(&status),
            },
            Code::DeadlineExceeded => Failure::Down {
                kind: "timeout",
                detail: format!("no answer within {:?}", self.config.request_timeout),
            },
            _ => Failure::Refused(status),
        }
    }

    fn client(&self) -> FlightServiceClient<Channel> {
        // Bounded: a provider cannot make the receiver allocate without limit.
        FlightServiceClient::new(self.channel.clone())
            .max_decoding_message_size(MAX_MESSAGE_BYTES)
            .max_encoding_message_size(MAX_MESSAGE_BYTES)
    }

    fn request<T>(&self, message: T) -> Result<tonic::Request<T>, Failure> {
        let mut req = tonic::Request::new(message);
        let value = format!("Bearer {}", self.config.secret)
            .parse()
            .map_err(|_| Failure::Protocol("the share token is not a valid header".into()))?;
        req.metadata_mut().insert("authorization", value);
        if let Some(trace) = sluice_planner::audit::current().and_then(|h| h.snapshot().trace_id) {
            // Not a full traceparent (no parent span id here); the request
            // id correlates the two gateways' audit records.
            if let Ok(v) = trace.parse() {
                req.metadata_mut().insert("x-sluice-origin-trace", v);
            }
        }
        Ok(req)
    }

    /// Sends a Flight SQL command, returns its endpoints' decoded stream.
    async fn open(
        self: &Arc<Self>,
        command: Vec<u8>,
    ) -> Result<futures::stream::BoxStream<'static, Result<RecordBatch, Failure>>, Failure> {
        self.admit()?;
        self.send(command).await
    }

    /// [`Peer::open`] without asking the circuit.
    async fn send(
        self: &Arc<Self>,
        command: Vec<u8>,
    ) -> Result<futures::stream::BoxStream<'static, Result<RecordBatch, Failure>>, Failure> {
        let mut client = self.client();
        let descriptor = FlightDescriptor::new_cmd(command);
        let info: FlightInfo = tokio::time::timeout(
            self.config.request_timeout + self.config.connect_timeout,
            client.get_flight_info(self.request(descriptor)?),
        )
        .await
        .map_err(|_| Failure::Down {
            kind: "timeout",
            detail: format!("no answer within {:?}", self.config.request_timeout),
        })?
        .map_err(|s| self.classify(s))?
        .into_inner();
        let this = Arc::clone(self);
        let idle = self.config.request_timeout;
        let tickets: Vec<_> = info.endpoint.into_iter().filter_map(|e| e.ticket).collect();
        let stream = futures::stream::iter(tickets)
            .then(move |ticket| {
                let this = Arc::clone(&this);
                async move {
                    let mut client = this.client();
                    let response = tokio::time::timeout(idle, client.do_get(this.request(ticket)?))
                        .await
                        .map_err(|_| Failure::Down {
                            kind: "timeout",
                            detail: format!("no answer within {idle:?}"),
                        })?
                        .map_err(|s| this.classify(s))?;
                    let flights = response.into_inner().map_err(FlightError::from);
                    let batches = FlightRecordBatchStream::new_from_flight_data(flights);
                    let this2 = Arc::clone(&this);
                    Ok::<_, Failure>(
                        timeout_each(batches, idle)
                            .map(move |r| r.map_err(|e| this2.flight_failure(e))),
                    )
                }
            })
            .map(|r| match r {
                Ok(s) => s.boxed(),
                Err(f) => futures::stream::once(async move { Err(f) }).boxed(),
            })
            .flatten()
            .boxed();
        Ok(stream)
    }

    fn flight_failure(&self, e: Option<FlightError>) -> Failure {
        match e {
            None => Failure::Down {
                kind: "timeout",
                detail: format!(
                    "no data within {:?} in the middle of a result",
                    self.config.request_timeout
                ),
            },
            Some(FlightError::Tonic(status)) => self.classify(*status),
            Some(other) => Failure::Protocol(other.to_string()),
        }
    }

    /// Runs `sql` at the provider and streams the answer.
    fn query(self: &Arc<Self>, sql: String) -> SendableStream {
        enum Phase {
            Start(Vec<u8>),
            Streaming(futures::stream::BoxStream<'static, Result<RecordBatch, Failure>>),
            Done,
        }
        struct State {
            peer: Arc<Peer>,
            phase: Phase,
            started: Instant,
            first: bool,
        }
        let command = CommandStatementQuery {
            query: sql,
            transaction_id: None,
        }
        .as_any()
        .encode_to_vec();
        let state = State {
            peer: Arc::clone(self),
            phase: Phase::Start(command),
            started: Instant::now(),
            first: true,
        };
        futures::stream::unfold(state, |mut st| async move {
            loop {
                match std::mem::replace(&mut st.phase, Phase::Done) {
                    Phase::Done => return None,
                    Phase::Start(command) => match st.peer.open(command).await {
                        Ok(stream) => st.phase = Phase::Streaming(stream),
                        Err(f) => {
                            let e = st.peer.settle::<()>(Err(f)).err()?;
                            return Some((Err(e), st));
                        }
                    },
                    Phase::Streaming(mut stream) => match stream.next().await {
                        Some(Ok(batch)) => {
                            if st.first {
                                st.first = false;
                                metrics::histogram!("sluice_peer_request_duration_seconds", "peer" => st.peer.config.name.clone())
                                    .record(st.started.elapsed().as_secs_f64());
                            }
                            st.phase = Phase::Streaming(stream);
                            return Some((Ok(batch), st));
                        }
                        Some(Err(f)) => {
                            let e = st.peer.settle::<()>(Err(f)).err()?;
                            return Some((Err(e), st));
                        }
                        None => {
                            let _ = st.peer.settle(Ok(()));
                            return None;
                        }
                    },
                }
            }
        })
        .boxed()
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

    fn snapshot(&self) -> TableMap {
        self.tables
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
            .unwrap_or_default()
    }
}

type SendableStream = futures::stream::BoxStream<'static, DfResult<RecordBatch>>;

/// Items of `stream`, failing with `Err(None)` when one takes longer than `idle`.
fn timeout_each<S>(
    stream: S,
    idle: Duration,
) -> impl futures::Stream<Item = Result<RecordBatch, Option<FlightError>>> + Send
where
    S: futures::Stream<Item = Result<RecordBatch, FlightError>> + Send + Unpin + 'static,
{
    futures::stream::unfold(Some(stream), move |state| async move {
        let mut stream = state?;
        match tokio::time::timeout(idle, stream.next()).await {
            Err(_) => Some((Err(None), None)),
            Ok(None) => None,
            Ok(Some(Ok(b))) => Some((Ok(b), Some(stream))),
            Ok(Some(Err(e))) => Some((Err(Some(e)), None)),
        }
    })
}

fn describe_transport(status: &tonic::Status) -> String {
    use std::error::Error as _;
    let mut text = status.message().to_string();
    let mut source = status.source();
    while let Some(s) = source {
        text = s.to_string();
        source = s.source();
    }
    if text.is_empty() {
        "the connection failed".to_string()
    } else {
        format!("the connection failed ({text})")
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

/// A provider's answer to a request it understood but refused (a planning
/// error at the provider). Its message is the provider's, which applied the
/// share token's policy to it.
#[derive(Debug)]
pub struct PeerRefused {
    /// The peer.
    pub peer: String,
    /// The provider's message.
    pub message: String,
}

impl fmt::Display for PeerRefused {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "peer '{}' refused the query: {}",
            self.peer, self.message
        )
    }
}

impl std::error::Error for PeerRefused {}

/// A peer mounted as a catalog.
#[derive(Debug, Clone)]
pub struct PeerCatalog {
    peer: Arc<Peer>,
}

impl PeerCatalog {
    /// The catalog of `peer`.
    pub fn new(peer: Arc<Peer>) -> Self {
        Self { peer }
    }

    /// The peer.
    pub fn peer(&self) -> &Arc<Peer> {
        &self.peer
    }
}

#[async_trait]
impl sluice_planner::connector::CatalogGate for PeerCatalog {
    /// A peer whose tables were never discovered is asked now, so a
    /// statement naming it gets the peer's error ("unavailable", "access
    /// revoked") rather than "not found".
    async fn ready(&self) -> DfResult<()> {
        sluice_planner::audit::note_peer(self.peer.name());
        if self.peer.discovered() {
            return Ok(());
        }
        if self.peer.state() == PeerState::Revoked {
            return Err(self.peer.error(Failure::Revoked));
        }
        self.peer.refresh().await
    }
}

impl CatalogProvider for PeerCatalog {
    fn as_any(&self) -> &dyn Any {
        self
    }

    fn schema_names(&self) -> Vec<String> {
        self.peer.snapshot().into_keys().collect()
    }

    fn schema(&self, name: &str) -> Option<Arc<dyn SchemaProvider>> {
        let tables = self.peer.snapshot().remove(name)?;
        Some(Arc::new(PeerSchema {
            peer: Arc::clone(&self.peer),
            schema: name.to_string(),
            tables,
        }))
    }

    fn register_schema(
        &self,
        _name: &str,
        _schema: Arc<dyn SchemaProvider>,
    ) -> DfResult<Option<Arc<dyn SchemaProvider>>> {
        not_impl_err!("sluice is read-only: schemas cannot be created")
    }
}

#[derive(Debug)]
struct PeerSchema {
    peer: Arc<Peer>,
    schema: String,
    tables: BTreeMap<String, SchemaRef>,
}

#[async_trait]
impl SchemaProvider for PeerSchema {
    fn as_any(&self) -> &dyn Any {
        self
    }

    fn table_names(&self) -> Vec<String> {
        self.tables.keys().cloned().collect()
    }

    async fn table(&self, name: &str) -> DfResult<Option<Arc<dyn TableProvider>>> {
        Ok(self.tables.get(name).map(|schema| {
            Arc::new(RemoteTable {
                peer: Arc::clone(&self.peer),
                remote: [
                    self.peer.config.remote_catalog.clone(),
                    self.schema.clone(),
                    name.to_string(),
                ],
                schema: Arc::clone(schema),
            }) as Arc<dyn TableProvider>
        }))
    }

    fn table_exist(&self, name: &str) -> bool {
        self.tables.contains_key(name)
    }
}

/// One table of a peer.
#[derive(Debug)]
pub struct RemoteTable {
    peer: Arc<Peer>,
    remote: [String; 3],
    schema: SchemaRef,
}

/// `"a""b"` quoting.
fn quote(ident: &str) -> String {
    format!("\"{}\"", ident.replace('"', "\"\""))
}

impl RemoteTable {
    /// The SQL sent to the provider for a scan.
    pub fn sql(&self, projection: &[usize], filters: &[Expr], limit: Option<usize>) -> String {
        let columns = if projection.is_empty() {
            "1".to_string()
        } else {
            projection
                .iter()
                .map(|i| quote(self.schema.field(*i).name()))
                .collect::<Vec<_>>()
                .join(", ")
        };
        let table = self
            .remote
            .iter()
            .map(|p| quote(p))
            .collect::<Vec<_>>()
            .join(".");
        let mut sql = format!("SELECT {columns} FROM {table}");
        let conditions: Vec<String> = filters.iter().filter_map(to_sql).collect();
        if !conditions.is_empty() {
            sql.push_str(" WHERE ");
            sql.push_str(
                &conditions
                    .iter()
                    .map(|c| format!("({c})"))
                    .collect::<Vec<_>>()
                    .join(" AND "),
            );
        }
        if let Some(n) = limit {
            sql.push_str(&format!(" LIMIT {n}"));
        }
        sql
    }
}

/// `e` as SQL for the provider, if the unparser can write it.
fn to_sql(e: &Expr) -> Option<String> {
    Unparser::default()
        .expr_to_sql(e)
        .ok()
        .map(|s| s.to_string())
}

#[async_trait]
impl TableProvider for RemoteTable {
    fn as_any(&self) -> &dyn Any {
        self
    }

    fn schema(&self) -> SchemaRef {
        Arc::clone(&self.schema)
    }

    fn table_type(&self) -> TableType {
        TableType::Base
    }

    fn supports_filters_pushdown(
        &self,
        filters: &[&Expr],
    ) -> DfResult<Vec<TableProviderFilterPushDown>> {
        // Inexact: the provider filters, and DataFusion filters again.
        Ok(filters
            .iter()
            .map(|f| match to_sql(f) {
                Some(_) => TableProviderFilterPushDown::Inexact,
                None => TableProviderFilterPushDown::Unsupported,
            })
            .collect())
    }

    async fn scan(
        &self,
        _state: &dyn Session,
        projection: Option<&Vec<usize>>,
        filters: &[Expr],
        limit: Option<usize>,
    ) -> DfResult<Arc<dyn ExecutionPlan>> {
        let projection: Vec<usize> = match projection {
            Some(p) => p.clone(),
            None => (0..self.schema.fields().len()).collect(),
        };
        let schema = Arc::new(self.schema.project(&projection)?);
        let sql = self.sql(&projection, filters, limit);
        sluice_planner::audit::note_peer(self.peer.name());
        Ok(Arc::new(RemoteScanExec::new(
            Arc::clone(&self.peer),
            sql,
            schema,
        )))
    }
}

/// Streams one SQL statement's answer from a peer.
#[derive(Debug)]
pub struct RemoteScanExec {
    peer: Arc<Peer>,
    sql: String,
    schema: SchemaRef,
    properties: Arc<PlanProperties>,
}

impl RemoteScanExec {
    fn new(peer: Arc<Peer>, sql: String, schema: SchemaRef) -> Self {
        let properties = Arc::new(PlanProperties::new(
            EquivalenceProperties::new(Arc::clone(&schema)),
            Partitioning::UnknownPartitioning(1),
            EmissionType::Incremental,
            Boundedness::Bounded,
        ));
        Self {
            peer,
            sql,
            schema,
            properties,
        }
    }

    /// The statement sent to the provider.
    pub fn sql(&self) -> &str {
        &self.sql
    }
}

impl DisplayAs for RemoteScanExec {
    fn fmt_as(&self, _t: DisplayFormatType, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "RemoteScanExec: peer={} sql={}",
            self.peer.name(),
            self.sql
        )
    }
}

impl ExecutionPlan for RemoteScanExec {
    fn name(&self) -> &str {
        "RemoteScanExec"
    }

    fn as_any(&self) -> &dyn Any {
        self
    }

    fn properties(&self) -> &Arc<PlanProperties> {
        &self.properties
    }

    fn children(&self) -> Vec<&Arc<dyn ExecutionPlan>> {
        Vec::new()
    }

    fn with_new_children(
        self: Arc<Self>,
        children: Vec<Arc<dyn ExecutionPlan>>,
    ) -> DfResult<Arc<dyn ExecutionPlan>> {
        if children.is_empty() {
            Ok(self)
        } else {
            Err(DataFusionError::Internal(
                "RemoteScanExec has no children".into(),
            ))
        }
    }

    fn execute(
        &self,
        partition: usize,
        _context: Arc<TaskContext>,
    ) -> DfResult<SendableRecordBatchStream> {
        if partition != 0 {
            return Err(DataFusionError::Internal(format!(
                "RemoteScanExec has one partition, not {partition}"
            )));
        }
        let schema = Arc::clone(&self.schema);
        let expected = Arc::clone(&schema);
        let stream = self
            .peer
            .query(self.sql.clone())
            .map(move |batch| conform(batch?, &expected));
        Ok(Box::pin(RecordBatchStreamAdapter::new(schema, stream)))
    }
}

/// A provider batch with the table's schema (names and nullability as
/// discovered; types cast strictly where the provider answered
/// differently, e.g. after its table changed since discovery).
fn conform(batch: RecordBatch, schema: &SchemaRef) -> DfResult<RecordBatch> {
    // An empty projection asked for `SELECT 1`: only the row count counts.
    if !schema.fields().is_empty() && batch.num_columns() != schema.fields().len() {
        return Err(DataFusionError::Execution(format!(
            "the peer answered {} columns, {} were asked",
            batch.num_columns(),
            schema.fields().len()
        )));
    }
    sluice_planner::governor::conform(batch, schema)
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow::datatypes::{DataType, Field, Schema};
    use datafusion::prelude::{col, lit};

    fn table() -> RemoteTable {
        let peer = Peer::new(
            PeerConfig {
                name: "partner".into(),
                endpoint: "grpc://127.0.0.1:1".into(),
                secret: "slc_x".into(),
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
        .unwrap();
        RemoteTable {
            peer,
            remote: ["lake".into(), "sales".into(), "or\"ders".into()],
            schema: Arc::new(Schema::new(vec![
                Field::new("id", DataType::Int64, false),
                Field::new("Region", DataType::Utf8, true),
            ])),
        }
    }

    // A runtime: the lazy channel needs one.
    #[tokio::test]
    async fn pushed_down_sql() {
        let t = table();
        assert_eq!(
            t.sql(&[0, 1], &[], None),
            r#"SELECT "id", "Region" FROM "lake"."sales"."or""ders""#
        );
        let region = Expr::Column(datafusion::common::Column::new_unqualified("Region"));
        let f = col("id").gt(lit(3)).and(region.eq(lit("it's")));
        let sql = t.sql(&[1], &[f], Some(7));
        assert!(
            sql.starts_with(r#"SELECT "Region" FROM "lake"."sales"."or""ders" WHERE ("#),
            "{sql}"
        );
        assert!(sql.contains("'it''s'"), "{sql}");
        assert!(sql.contains(r#""Region" = "#), "{sql}");
        assert!(sql.ends_with(" LIMIT 7"), "{sql}");
        assert_eq!(
            t.sql(&[], &[], Some(1)),
            r#"SELECT 1 FROM "lake"."sales"."or""ders" LIMIT 1"#
        );
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

    /// A peer that refuses connections: failures open the circuit, which
    /// then fails fast; after the cooldown one probe is let through.
    #[tokio::test]
    async fn circuit_opens_and_probes() {
        let t = table();
        let peer = Arc::clone(&t.peer);
        for _ in 0..2 {
            let e = peer.refresh().await.unwrap_err().to_string();
            assert!(e.contains("peer 'partner' is unavailable"), "{e}");
        }
        assert_eq!(peer.state(), PeerState::Open);
        let started = Instant::now();
        let e = peer.refresh().await.unwrap_err().to_string();
        assert!(e.contains("circuit open"), "{e}");
        assert!(started.elapsed() < Duration::from_millis(100));
        tokio::time::sleep(Duration::from_millis(350)).await;
        // The probe fails too: open again.
        let e = peer.refresh().await.unwrap_err().to_string();
        assert!(!e.contains("circuit open"), "{e}");
        assert_eq!(peer.state(), PeerState::Open);
        peer.mark_revoked();
        let e = peer.refresh().await.unwrap_err().to_string();
        assert!(e.contains("peer access revoked"), "{e}");
    }
}
