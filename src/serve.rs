//! `sluice serve`: Flight SQL on `flight_addr` and the admin HTTP API on
//! `http_addr`, sharing one store, one governor and one authenticator;
//! graceful shutdown on SIGINT / SIGTERM.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;

use chrono::Utc;
use sluice_flight::FlightConfig;
use sluice_planner::{Authenticator, Governor};
use tokio::net::TcpListener;
use tokio::sync::watch;

use crate::auth::StoreAuthenticator;
use sluice_connectors::location::redact_url;

use crate::config::Config;
use crate::error::{Error, Result};
use crate::http::{self, AppState};
use crate::store::Store;

/// Everything the servers share.
#[derive(Debug, Clone)]
pub struct Gateway {
    /// The token store.
    pub store: Store,
    /// Catalogs and policy.
    pub governor: Arc<Governor>,
    /// Bearer authentication.
    pub auth: Arc<dyn Authenticator>,
    /// Flight ticket settings.
    pub flight: FlightConfig,
    /// Row limit of token documents without one.
    pub default_row_limit: u64,
    /// The Trino protocol settings.
    pub trino: sluice_trino::TrinoConfig,
    /// Milvus catalogs (their reachability is reported by `/ready`).
    pub milvus: Vec<(String, sluice_connectors::MilvusCatalog)>,
    /// Iceberg catalogs (probed by `/ready`).
    pub iceberg: Vec<(String, sluice_connectors::IcebergHandle)>,
    /// Export jobs (`None` when `[exports] enabled = false`).
    pub exports: Option<Arc<crate::exports::Exports>>,
    /// The audit log's settings.
    pub audit: crate::audit::AuditConfig,
    /// Bearer authentication of the HTTP port (refuses share tokens when
    /// they need a client certificate).
    pub http_auth: Arc<dyn Authenticator>,
    /// TLS of the Flight SQL port.
    pub tls: Option<tonic::transport::ServerTlsConfig>,
    /// The CA certificate (PEM) put in share profiles.
    pub profile_ca: Option<Arc<String>>,
    /// Federation peers.
    pub peers: Option<crate::federation::Peers>,
}

/// The Flight port's TLS settings from `[server.tls]`, and the CA that
/// share profiles carry.
fn server_tls(
    tls: &crate::config::TlsConfig,
) -> Result<(tonic::transport::ServerTlsConfig, String)> {
    use tonic::transport::{Certificate, Identity, ServerTlsConfig};
    let read = |p: &std::path::Path| {
        std::fs::read(p)
            .map_err(|e| Error::Config(format!("server.tls: cannot read {}: {e}", p.display())))
    };
    let mut config =
        ServerTlsConfig::new().identity(Identity::from_pem(read(&tls.cert)?, read(&tls.key)?));
    if let Some(ca) = &tls.client_ca {
        let pem = read(ca)?;
        let text = String::from_utf8_lossy(&pem);
        crate::federation::pem_certificates(&text)
            .map_err(|e| Error::Config(format!("server.tls.client_ca {}: {e}", ca.display())))?;
        // Optional: local clients without certificates still connect; a
        // certificate that does not chain to `client_ca` fails the handshake.
        config = config
            .client_ca_root(Certificate::from_pem(pem))
            .client_auth_optional(true);
    }
    Ok((config, crate::federation::profile_ca(tls)?))
}

/// Bound listening sockets (bind first, so `:0` ports are known).
#[derive(Debug)]
pub struct Listeners {
    /// Flight SQL.
    pub flight: TcpListener,
    /// Admin HTTP API.
    pub http: TcpListener,
}

impl Listeners {
    /// Binds both addresses.
    pub async fn bind(flight: SocketAddr, http: SocketAddr) -> Result<Self> {
        let bind = |what: &'static str| {
            move |e: std::io::Error| Error::Server {
                what,
                message: format!("cannot listen: {e}"),
            }
        };
        Ok(Self {
            flight: TcpListener::bind(flight)
                .await
                .map_err(bind("Flight SQL server"))?,
            http: TcpListener::bind(http).await.map_err(bind("HTTP server"))?,
        })
    }
}

/// Opens the store, checks it is initialised, loads the catalogs.
pub async fn prepare(config: &Config) -> Result<Gateway> {
    let store = Store::connect(config.store.url()).await?;
    store.migrate().await?;
    if store.count_active_admins(Utc::now()).await? == 0 {
        return Err(Error::Refused(format!(
            "the token store ({}) has no active admin token: run `sluice init --config FILE` first",
            redact_url(config.store.url())
        )));
    }
    let ticket_key = store.ticket_key().await?;
    let mask_key = match &config.policy.mask_key {
        Some(k) if k.len() >= 16 => k.as_bytes().to_vec(),
        Some(_) => {
            return Err(Error::Refused(
                "[policy] mask_key must be at least 16 bytes long".to_string(),
            ));
        }
        None => store.mask_key().await?,
    };
    let catalogs = sluice_connectors::load_catalogs(&config.catalogs).await?;
    let query_limits = sluice_planner::limits::Limits::new(
        config.limits.clone(),
        Some(config.server.data_dir.join("spill")),
    )
    .map_err(|e| Error::Refused(e.message()))?;
    tracing::info!(
        memory_limit = query_limits.memory.memory_limit(),
        query_memory_limit = query_limits.memory.query_limit(),
        "query memory bounds"
    );
    seed_budgets(&store, &query_limits.ledger).await?;
    let governor = Arc::new(
        catalogs
            .governor
            .with_limits(Arc::new(query_limits))
            .with_mask_key(&mask_key)
            .with_system_table(
                crate::audit::table::TABLE,
                Arc::new(crate::audit::table::AuditTable::new(store.clone())),
            ),
    );
    let limits = sluice_planner::limits::RateLimits::new(
        config.limits.rate_limit_per_minute,
        config.limits.auth_failures_per_minute,
    );
    let limits = Arc::new(limits);
    let auth: Arc<dyn Authenticator> = Arc::new(StoreAuthenticator::with_limits(
        store.clone(),
        Arc::clone(&limits),
    ));
    let share_needs_client_cert = config
        .server
        .tls
        .as_ref()
        .is_some_and(|t| t.require_client_cert_for_share);
    let http_auth: Arc<dyn Authenticator> = if share_needs_client_cert {
        Arc::new(StoreAuthenticator::with_limits(store.clone(), limits).refusing_share_tokens())
    } else {
        Arc::clone(&auth)
    };
    let (tls, profile_ca) = match &config.server.tls {
        Some(t) => {
            let (tls, ca) = server_tls(t)?;
            (Some(tls), Some(Arc::new(ca)))
        }
        None => (None, None),
    };
    let seal = crate::seal::SealKey::load(
        config.federation.seal_key.as_ref().map(|k| k.expose()),
        &config.server.data_dir,
    )?;
    let peers = crate::federation::Peers::new(
        store.clone(),
        seal,
        config.federation.clone(),
        Arc::clone(&governor),
        config.catalogs.keys().cloned().collect(),
    );
    if let Err(e) = peers.sync_and_discover().await {
        tracing::warn!(error = %e, "federation peers not mounted at start; retried while serving");
    }
    let exports = if config.exports.enabled {
        Some(Arc::new(crate::exports::Exports::new(
            store.clone(),
            Arc::clone(&governor),
            config.exports.clone(),
            store.export_key().await?,
        )?))
    } else {
        None
    };
    Ok(Gateway {
        exports,
        http_auth,
        tls,
        profile_ca,
        peers: Some(peers),
        audit: config.audit.clone(),
        store,
        governor,
        auth,
        flight: FlightConfig {
            ticket_key,
            ticket_ttl: config.policy.ticket_ttl(),
            server_name: "sluice".into(),
            server_version: env!("CARGO_PKG_VERSION").into(),
            share_needs_client_cert,
        },
        default_row_limit: config.policy.default_row_limit,
        trino: config.trino.clone(),
        milvus: catalogs.milvus,
        iceberg: catalogs.iceberg,
    })
}

/// Seeds each token's budget totals of the current hour and day from the
/// audit log, so a restart does not hand out budgets again. A store that
/// cannot answer stops the start: serving with budgets at zero would hand
/// them out again.
async fn seed_budgets(store: &Store, ledger: &sluice_planner::limits::Ledger) -> Result<()> {
    use sluice_planner::limits::budget::{Spent, window_starts};
    let now = chrono::Utc::now();
    let (hour, day) = window_starts(now);
    let spent = |rows: Vec<(String, i64, i64)>| {
        rows.into_iter()
            .map(|(token, bytes, out)| {
                let spent = Spent {
                    bytes_scanned: u64::try_from(bytes).unwrap_or(0),
                    rows_returned: u64::try_from(out).unwrap_or(0),
                };
                (token, spent)
            })
            .collect::<std::collections::HashMap<_, _>>()
    };
    let hourly = spent(store.audit_spent_since(hour.timestamp_millis()).await?);
    let daily = spent(store.audit_spent_since(day.timestamp_millis()).await?);
    for (token, day_spent) in &daily {
        let hour_spent = hourly.get(token).copied().unwrap_or_default();
        ledger.seed(token, hour_spent, *day_spent, now);
    }
    Ok(())
}

/// Loads every configured catalog into a governor (for commands that
/// validate tokens against the catalogs).
pub async fn load_governor(config: &Config) -> Result<Governor> {
    Ok(sluice_connectors::load_catalogs(&config.catalogs)
        .await?
        .governor)
}

/// Serves until `shutdown` completes, then drains both servers.
pub async fn run(
    gateway: Gateway,
    listeners: Listeners,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<()> {
    // Install the metrics recorder before anything records.
    let _ = crate::metrics::handle();
    let (tx, rx) = watch::channel(false);
    let stopped = |mut rx: watch::Receiver<bool>| async move {
        let _ = rx.wait_for(|stop| *stop).await;
    };
    tokio::spawn(async move {
        shutdown.await;
        let _ = tx.send(true);
    });

    let addr = |l: &TcpListener| {
        l.local_addr()
            .map(|a| a.to_string())
            .unwrap_or_else(|_| "?".into())
    };
    let flight_addr = addr(&listeners.flight);
    let http_addr = addr(&listeners.http);

    let flight_service = sluice_flight::flight_service(
        Arc::clone(&gateway.governor),
        Arc::clone(&gateway.auth),
        gateway.flight.clone(),
    );
    let audit = crate::audit::AuditLog::start(gateway.store.clone(), &gateway.audit, rx.clone());
    if !gateway.audit.enabled {
        tracing::warn!("[audit] enabled = false: requests are neither audited nor counted");
    }
    let mut builder = tonic::transport::Server::builder();
    if let Some(tls) = gateway.tls.clone() {
        builder = builder.tls_config(tls).map_err(|e| Error::Server {
            what: "Flight SQL server",
            message: format!("TLS: {e}"),
        })?;
    }
    if let Some(peers) = &gateway.peers {
        peers.start(rx.clone());
    }
    let flight = builder
        .layer(crate::audit::layer::FlightAuditLayer::new(Arc::clone(
            &audit,
        )))
        .add_service(flight_service)
        .serve_with_incoming_shutdown(
            // Without TCP_NODELAY, Nagle's algorithm holds small answers
            // (GetFlightInfo, short DoGet streams) for the client's delayed
            // ACK: about 40 ms per call.
            tonic::transport::server::TcpIncoming::from(listeners.flight).with_nodelay(Some(true)),
            stopped(rx.clone()),
        );
    let flight = async move {
        flight.await.map_err(|e| Error::Server {
            what: "Flight SQL server",
            message: e.to_string(),
        })
    };

    if let Some(exports) = &gateway.exports {
        exports.start(rx.clone(), Arc::clone(&audit));
    }
    let trino_state = gateway.trino.enabled.then(|| {
        sluice_trino::TrinoState::new(
            Arc::clone(&gateway.governor),
            Arc::clone(&gateway.http_auth),
            &gateway.trino,
            listeners
                .http
                .local_addr()
                .unwrap_or_else(|_| SocketAddr::from(([127, 0, 0, 1], 8080))),
        )
    });
    let trino_queries = trino_state.as_ref().map(|s| Arc::clone(&s.queries));
    let app = http::router_with(
        AppState {
            store: gateway.store.clone(),
            auth: Arc::clone(&gateway.http_auth),
            governor: Arc::clone(&gateway.governor),
            default_row_limit: gateway.default_row_limit,
            milvus: Arc::new(gateway.milvus.clone()),
            iceberg: Arc::new(gateway.iceberg.clone()),
            exports: gateway.exports.clone(),
            audit: Some(Arc::clone(&audit)),
            profile_ca: gateway.profile_ca.clone(),
            peers: gateway.peers.clone(),
        },
        trino_state.map(sluice_trino::router).unwrap_or_default(),
    );
    let http = axum::serve(
        axum::serve::ListenerExt::tap_io(listeners.http, |tcp| {
            if let Err(e) = tcp.set_nodelay(true) {
                tracing::debug!(error = %e, "TCP_NODELAY not set");
            }
        }),
        app.into_make_service_with_connect_info::<SocketAddr>(),
    )
    .with_graceful_shutdown(stopped(rx));
    let http = async move {
        http.await.map_err(|e| Error::Server {
            what: "HTTP server",
            message: e.to_string(),
        })
    };

    tracing::info!(
        flight_addr = %flight_addr,
        http_addr = %http_addr,
        store = gateway.store.kind(),
        "sluice serving"
    );
    let result = tokio::try_join!(flight, http).map(|_| ());
    if let Some(q) = trino_queries {
        q.shutdown();
    }
    if let Some(exports) = &gateway.exports {
        exports.stopped(std::time::Duration::from_secs(30)).await;
    }
    audit.stopped(std::time::Duration::from_secs(10)).await;
    gateway.store.close().await;
    // The exporter's client blocks: flush off the runtime's workers.
    let _ = tokio::task::spawn_blocking(crate::telemetry::shutdown).await;
    tracing::info!("sluice stopped");
    result
}

/// Loads everything from `config`, binds, and serves until SIGINT/SIGTERM.
pub async fn serve(config: &Config) -> Result<()> {
    let gateway = prepare(config).await?;
    let listeners = Listeners::bind(config.server.flight_addr, config.server.http_addr).await?;
    run(gateway, listeners, shutdown_signal()).await
}

/// Completes on SIGINT (Ctrl-C) or SIGTERM.
pub async fn shutdown_signal() {
    let ctrl_c = async {
        if let Err(e) = tokio::signal::ctrl_c().await {
            tracing::error!(error = %e, "cannot listen for Ctrl-C");
            std::future::pending::<()>().await;
        }
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(e) => {
                tracing::error!(error = %e, "cannot listen for SIGTERM");
                std::future::pending::<()>().await;
            }
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => tracing::info!("SIGINT received, shutting down"),
        () = term => tracing::info!("SIGTERM received, shutting down"),
    }
}

#[cfg(test)]
mod tests {
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};

    use super::*;
    use sluice_planner::token::TokenSpec;

    async fn http_get(addr: SocketAddr, path: &str) -> String {
        let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
        s.write_all(
            format!("GET {path} HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n").as_bytes(),
        )
        .await
        .unwrap();
        let mut out = String::new();
        s.read_to_string(&mut out).await.unwrap();
        out
    }

    /// Both servers come up on the bound sockets and stop on the shutdown signal.
    #[tokio::test]
    async fn serves_and_shuts_down() {
        let store = Store::connect("sqlite::memory:").await.unwrap();
        store.migrate().await.unwrap();
        store
            .create_token(&TokenSpec::admin("admin", 10), "test", 10)
            .await
            .unwrap();
        let gateway = Gateway {
            flight: FlightConfig {
                ticket_key: store.ticket_key().await.unwrap(),
                ticket_ttl: std::time::Duration::from_secs(60),
                server_name: "sluice".into(),
                server_version: "test".into(),
                share_needs_client_cert: false,
            },
            auth: Arc::new(StoreAuthenticator::new(store.clone())),
            http_auth: Arc::new(StoreAuthenticator::new(store.clone())),
            tls: None,
            profile_ca: None,
            peers: None,
            store,
            governor: Arc::new(Governor::new()),
            default_row_limit: 10,
            trino: Default::default(),
            milvus: Vec::new(),
            iceberg: Vec::new(),
            exports: None,
            audit: Default::default(),
        };
        let any = SocketAddr::from(([127, 0, 0, 1], 0));
        let listeners = Listeners::bind(any, any).await.unwrap();
        let http_addr = listeners.http.local_addr().unwrap();
        let flight_addr = listeners.flight.local_addr().unwrap();
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        let server = tokio::spawn(run(gateway, listeners, async {
            let _ = rx.await;
        }));

        let health = http_get(http_addr, "/health").await;
        assert!(health.starts_with("HTTP/1.1 200"), "{health}");
        let ready = http_get(http_addr, "/ready").await;
        assert!(ready.starts_with("HTTP/1.1 200"), "{ready}");
        let tokens = http_get(http_addr, "/v1/tokens").await;
        assert!(tokens.starts_with("HTTP/1.1 401"), "{tokens}");
        // The Flight port accepts connections.
        tokio::net::TcpStream::connect(flight_addr).await.unwrap();

        tx.send(()).unwrap();
        tokio::time::timeout(std::time::Duration::from_secs(10), server)
            .await
            .expect("servers stop after the shutdown signal")
            .unwrap()
            .unwrap();
        assert!(tokio::net::TcpStream::connect(http_addr).await.is_err());
    }

    #[tokio::test]
    async fn refuses_without_admin() {
        let dir = tempfile::tempdir().unwrap();
        let mut config = Config::default();
        config.server.data_dir = dir.path().to_path_buf();
        let config = config.resolve(dir.path()).unwrap();
        let err = prepare(&config).await.unwrap_err().to_string();
        assert!(err.contains("run `sluice init"), "{err}");
    }
}
