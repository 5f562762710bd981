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

/// `GET /ready`: 200 when the store answers, else 503. The body also
/// reports each Milvus catalog (`ready` / `unavailable`); an unreachable
/// catalog makes the status `degraded` but not 503, since every other
/// catalog keeps serving.
pub(super) async fn ready(State(state): State<AppState>) -> impl IntoResponse {
    let mut catalogs = serde_json::Map::new();
    let mut degraded = false;
    for (name, catalog) in state.milvus.iter() {
        let status = catalog.status();
        degraded |= !status.ready;
        catalogs.insert(
            name.clone(),
            json!({
                "kind": "milvus",
                // No table count: anonymous callers learn nothing of the data.
                "status": if status.ready { "ready" } else { "unavailable" },
            }),
        );
    }
    match state.store.ping().await {
        Ok(()) => (
            StatusCode::OK,
            Json(json!({
                "status": if degraded { "degraded" } else { "ready" },
                "catalogs": catalogs,
            })),
        ),
        Err(e) => {
            tracing::warn!(error = %e, "readiness check failed: token store unreachable");
            (
                StatusCode::SERVICE_UNAVAILABLE,
                Json(json!({
                    "status": "unavailable",
                    "error": "token store unreachable",
                    "catalogs": catalogs,
                })),
            )
        }
    }
}
