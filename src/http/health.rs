//! Liveness and readiness.

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::IntoResponse;
use serde_json::json;

use super::AppState;

/// `GET /health`: the process is up (always 200).
pub(super) async fn health() -> impl IntoResponse {
    Json(json!({ "status": "ok" }))
}

/// `GET /ready`: 200 `{"status": "ready", "catalogs": {…}}` when the store
/// and every catalog answer (Milvus: its connection state; Iceberg: listing
/// namespaces within 2 s); otherwise 503 with `"status": "unavailable"` and
/// `not_ready` naming what is not (`store`, `catalog <name>`), so a load
/// balancer sends traffic elsewhere. `peers` shows each federation peer's
/// circuit state (the key is absent without peers); a peer that is down does not make the gateway unready
/// (only queries touching it fail).
pub(super) async fn ready(State(state): State<AppState>) -> impl IntoResponse {
    let mut catalogs = serde_json::Map::new();
    let mut not_ready: Vec<String> = Vec::new();
    for (name, catalog) in state.milvus.iter() {
        let status = catalog.status();
        if !status.ready {
            not_ready.push(format!("catalog {name}"));
        }
        catalogs.insert(
            name.clone(),
            json!({
                "kind": "milvus",
                // No table count: anonymous callers learn nothing of the data.
                "status": if status.ready { "ready" } else { "unavailable" },
            }),
        );
    }
    // Probed together: a slow catalog costs its timeout once.
    let probes = state.iceberg.iter().map(|(name, probe)| async move {
        (name, probe.ready(std::time::Duration::from_secs(2)).await)
    });
    for (name, ready) in futures::future::join_all(probes).await {
        if !ready {
            not_ready.push(format!("catalog {name}"));
        }
        catalogs.insert(
            name.clone(),
            json!({
                "kind": "iceberg",
                "status": if ready { "ready" } else { "unavailable" },
            }),
        );
    }
    if let Err(e) = state.store.ping().await {
        tracing::warn!(error = %e, "readiness check failed: token store unreachable");
        not_ready.insert(0, "store".to_string());
    }
    let peers = state
        .peers
        .as_ref()
        .map(|p| p.statuses())
        .unwrap_or_default();
    let (status, mut body) = if not_ready.is_empty() {
        (
            StatusCode::OK,
            json!({ "status": "ready", "catalogs": catalogs }),
        )
    } else {
        (
            StatusCode::SERVICE_UNAVAILABLE,
            json!({
                "status": "unavailable",
                "not_ready": not_ready,
                "catalogs": catalogs,
            }),
        )
    };
    // Only gateways with peers say so.
    if !peers.is_empty() {
        body["peers"] = serde_json::to_value(peers).unwrap_or_default();
    }
    (status, Json(body))
}
