//! The admin HTTP API (axum) served on `[server] http_addr`:
//!
//! | route | who | what |
//! |---|---|---|
//! | `POST /v1/tokens` | admin | create a token from a token document; `201 {"id","secret"}` |
//! | `GET /v1/tokens` | admin | every token (never secrets or hashes) |
//! | `GET /v1/tokens/{id}` | admin | one token |
//! | `DELETE /v1/tokens/{id}` | admin | revoke |
//! | `GET /v1/tokens/{id}/introspect` | admin, or the token itself | effective scope |
//! | `GET /v1/tokens/{id}/download` | admin | a share token's profile, once (then 410) |
//! | `POST /v1/external-tokens/accept` | admin | import a share profile as peer `name` (201) |
//! | `GET /v1/external-tokens` | admin | imported peers (never secrets) |
//! | `DELETE /v1/external-tokens/{id}` | admin | remove a peer (204) |
//! | `POST /v1/catalogs/{name}/refresh` | admin | an Iceberg catalog's tables re-read their metadata at their next query (204) |
//! | `GET /health` | anyone | liveness, always 200 |
//! | `POST /v1/search` | any token | vector search as JSON, under the token's policy |
//! | `POST /v1/exports` | token with `export_destinations` | queue an export job (202) |
//! | `GET /v1/exports`, `GET/DELETE /v1/exports/{id}` | the job's token (admins: any) | job state, cancel |
//! | `GET /metrics` | anyone | Prometheus text format (see [`crate::metrics`]); no token ids or statements |
//! | `GET /ready` | anyone | 200 when the store answers, else 503; Milvus catalogs' and peers' state |
//!
//! Every authentication failure is `401 {"error":"authentication failed"}`;
//! a valid non-admin token gets 403. Each request gets an `x-request-id`
//! (the gateway's; a client's own is recorded in the audit log as
//! `client_request_id`), one audit record and one log line.

mod catalogs;
mod error;
mod exports;
mod extract;
mod federation;
mod health;
mod search;
#[cfg(test)]
mod tests;
mod tokens;

use std::sync::Arc;
use std::time::Instant;

use axum::Router;
use axum::extract::Request;
use axum::http::HeaderValue;
use axum::middleware::{self, Next};
use axum::response::Response;
use axum::routing::get;
use sluice_planner::{Authenticator, Governor};
use tracing::Instrument as _;

pub use error::ApiError;
pub use extract::Caller;

use crate::store::Store;

/// What every handler can reach.
#[derive(Debug, Clone)]
pub struct AppState {
    /// The token store.
    pub store: Store,
    /// Authenticates bearer secrets.
    pub auth: Arc<dyn Authenticator>,
    /// Validates token documents against the catalogs; computes introspection.
    pub governor: Arc<Governor>,
    /// Row limit of token documents without one.
    pub default_row_limit: u64,
    /// Milvus catalogs, whose reachability `/ready` reports.
    pub milvus: Arc<Vec<(String, sluice_connectors::MilvusCatalog)>>,
    /// Iceberg catalogs, which `/ready` probes and
    /// `/v1/catalogs/{name}/refresh` refreshes.
    pub iceberg: Arc<Vec<(String, sluice_connectors::IcebergHandle)>>,
    /// Export jobs (`None`: `[exports] enabled = false`).
    pub exports: Option<Arc<crate::exports::Exports>>,
    /// Where request records go (`None`: not audited, in unit tests).
    pub audit: Option<Arc<crate::audit::AuditLog>>,
    /// The CA certificate (PEM) put in share profiles (`None`: the Flight
    /// port has no TLS).
    pub profile_ca: Option<Arc<String>>,
    /// Imported peers (`None` in unit tests without federation).
    pub peers: Option<crate::federation::Peers>,
}

/// The admin API router.
pub fn router(state: AppState) -> Router {
    router_with(state, Router::new())
}

/// The admin API plus `extra` routes (the Trino protocol), behind the same
/// request-id and access-log middleware.
pub fn router_with(state: AppState, extra: Router) -> Router {
    let audit = state.audit.clone();
    Router::new()
        .route("/v1/tokens", get(tokens::list).post(tokens::create))
        .route("/v1/tokens/{id}", get(tokens::show).delete(tokens::revoke))
        .route("/v1/tokens/{id}/introspect", get(tokens::introspect))
        .route("/v1/tokens/{id}/download", get(tokens::download))
        .route(
            "/v1/external-tokens/accept",
            axum::routing::post(federation::accept),
        )
        .route("/v1/external-tokens", get(federation::list))
        .route(
            "/v1/external-tokens/{id}",
            axum::routing::delete(federation::remove),
        )
        .route(
            "/v1/catalogs/{name}/refresh",
            axum::routing::post(catalogs::refresh),
        )
        .route("/v1/search", axum::routing::post(search::search))
        .route("/v1/exports", get(exports::list).post(exports::submit))
        .route(
            "/v1/exports/{id}",
            get(exports::show).delete(exports::cancel),
        )
        .route("/health", get(health::health))
        .route("/ready", get(health::ready))
        .route("/metrics", get(metrics))
        .with_state(state)
        .merge(extra)
        .fallback(|| async { ApiError::NotFound("no such route".into()) })
        .layer(middleware::from_fn_with_state(audit, request_span))
}

/// `GET /metrics`.
async fn metrics() -> Response {
    use axum::response::IntoResponse as _;
    match crate::metrics::render() {
        Some(text) => (
            [(
                axum::http::header::CONTENT_TYPE,
                "text/plain; version=0.0.4; charset=utf-8",
            )],
            text,
        )
            .into_response(),
        None => ApiError::Internal("the metrics recorder is not installed".into()).into_response(),
    }
}

/// A bounded label for a request path: known words are kept, anything
/// else (ids, slugs, tokens in Trino's `nextUri`) becomes `{id}`, and at
/// most five segments count.
fn route_label(path: &str) -> String {
    const WORDS: [&str; 19] = [
        "v1",
        "catalogs",
        "refresh",
        "tokens",
        "introspect",
        "download",
        "external-tokens",
        "accept",
        "exports",
        "search",
        "statement",
        "queued",
        "executing",
        "query",
        "info",
        "health",
        "ready",
        "metrics",
        "node",
    ];
    let mut out = String::new();
    for seg in path.split('/').filter(|s| !s.is_empty()).take(5) {
        out.push('/');
        out.push_str(if WORDS.contains(&seg) { seg } else { "{id}" });
    }
    if out.is_empty() { "/".into() } else { out }
}

use crate::audit::layer::{REQUEST_ID, client_request_id, new_request_id};

/// Paths that are not audited: probes and scrapes, which carry no token
/// and would drown the log.
const UNAUDITED: [&str; 3] = ["/health", "/ready", "/metrics"];

/// Request id, span, audit record and one access log line per request.
async fn request_span(
    axum::extract::State(audit): axum::extract::State<Option<Arc<crate::audit::AuditLog>>>,
    req: Request,
    next: Next,
) -> Response {
    let id = new_request_id();
    let client_id = client_request_id(req.headers().get(REQUEST_ID));
    let client = req
        .extensions()
        .get::<axum::extract::ConnectInfo<std::net::SocketAddr>>()
        .map(|c| c.0.ip());
    let path = req.uri().path().to_string();
    let protocol =
        if path.starts_with("/v1/statement") || path.starts_with("/v1/query") || path == "/v1/info"
        {
            crate::audit::Protocol::Trino
        } else {
            crate::audit::Protocol::Http
        };
    // The route template, never the concrete path (ids would make every
    // request its own series).
    let route = route_label(req.uri().path());
    let method = req.method().to_string();
    let probe = UNAUDITED.contains(&path.as_str());
    // Probes get no span (nor trace context): they would drown the traces.
    // The span names the route template: Trino's paths hold query slugs.
    let span = if probe {
        tracing::Span::none()
    } else {
        tracing::info_span!(
            "http",
            request_id = %id,
            method = %req.method(),
            route = %route,
            token_id = tracing::field::Empty,
        )
    };
    crate::telemetry::continue_trace(&span, req.headers());
    let trace_id = crate::telemetry::trace_id(&span);
    let start = Instant::now();
    let handle = sluice_planner::AuditHandle::new();
    handle.update(|a| a.trace_id.clone_from(&trace_id));
    let action = format!("{method} {route}");
    let mut resp = sluice_planner::audit::with_handle(handle.clone(), next.run(req))
        .instrument(span.clone())
        .await;
    let elapsed = start.elapsed();
    if let Some(log) = &audit
        && !probe
    {
        let mut facts = handle.snapshot();
        let outcome = facts
            .outcome
            .unwrap_or_else(|| crate::audit::outcome_of_status(resp.status().as_u16()));
        if facts.error.is_none() && outcome != sluice_planner::Outcome::Ok {
            facts.error = Some(format!("HTTP {}", resp.status().as_u16()));
        }
        log.record(
            &crate::audit::RequestInfo {
                request_id: id.clone(),
                client_request_id: client_id,
                trace_id,
                protocol,
                action,
                client,
                started: start,
            },
            facts,
            outcome,
        );
    }
    span.in_scope(|| {
        if probe {
            tracing::debug!(route = %route, status = resp.status().as_u16(), "probe");
        } else {
            tracing::info!(
                status = resp.status().as_u16(),
                latency_ms = elapsed.as_secs_f64() * 1000.0,
                "request"
            );
        }
    });
    let status = resp.status().as_u16().to_string();
    metrics::counter!(
        "sluice_http_requests_total",
        "route" => route.clone(),
        "method" => method.clone(),
        "status" => status
    )
    .increment(1);
    metrics::histogram!(
        "sluice_http_request_duration_seconds",
        "route" => route,
        "method" => method
    )
    .record(elapsed.as_secs_f64());
    if let Ok(v) = HeaderValue::from_str(&id) {
        resp.headers_mut().insert(REQUEST_ID, v);
    }
    crate::telemetry::answer_with(&span, resp.headers_mut());
    resp
}

#[cfg(test)]
mod route_label_tests {
    use super::route_label;

    #[test]
    fn ids_never_become_labels() {
        assert_eq!(route_label("/v1/exports/5776e537-222c"), "/v1/exports/{id}");
        assert_eq!(
            route_label("/v1/tokens/abc/introspect"),
            "/v1/tokens/{id}/introspect"
        );
        assert_eq!(
            route_label("/v1/statement/queued/q1/slug/7/x/y"),
            "/v1/statement/queued/{id}/{id}"
        );
        assert_eq!(route_label("/metrics"), "/metrics");
        assert_eq!(
            route_label("/v1/catalogs/lake/refresh"),
            "/v1/catalogs/{id}/refresh"
        );
        assert_eq!(route_label("/"), "/");
        assert_eq!(route_label("/slc_secret?x"), "/{id}");
    }
}
