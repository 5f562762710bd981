//! `/v1/external-tokens`: peers imported from share profiles (admin).

use axum::Json;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::StatusCode;

use super::{ApiError, AppState, Caller};
use crate::federation::{AcceptError, AcceptRequest, PeerView, Peers};

fn peers(state: &AppState) -> Result<&Peers, ApiError> {
    state
        .peers
        .as_ref()
        .ok_or_else(|| ApiError::NotFound("federation is not enabled on this gateway".into()))
}

/// `POST /v1/external-tokens/accept`: import a share profile as peer
/// `name`, mounted at once as catalog `name`.
pub(super) async fn accept(
    State(state): State<AppState>,
    caller: Caller,
    body: Result<Bytes, axum::extract::rejection::BytesRejection>,
) -> Result<(StatusCode, Json<PeerView>), ApiError> {
    caller.require_admin()?;
    let body = body?;
    let peers = peers(&state)?;
    let request: AcceptRequest =
        serde_path_to_error::deserialize(&mut serde_json::Deserializer::from_slice(&body))
            .map_err(|e| ApiError::BadRequest(format!("invalid request: {e}")))?;
    let row = crate::federation::accept(
        &state.store,
        peers.key(),
        peers.local_catalogs(),
        request,
        &format!("token:{}", caller.0.token_id),
    )
    .await
    .map_err(|e| match e {
        AcceptError::Invalid(m) => ApiError::BadRequest(m),
        AcceptError::Taken(m) => ApiError::Conflict(m),
        AcceptError::Store(e) => e.into(),
    })?;
    // Mount now and discover the tables (bounded by the peer's timeouts);
    // a peer that does not answer yet stays mounted and is retried.
    if let Err(e) = peers.sync_and_discover().await {
        tracing::warn!(error = %e, "peer mount after import failed; the sync loop retries");
    }
    Ok((
        StatusCode::CREATED,
        Json(PeerView::of(&row, peers.state(&row.owner_name))),
    ))
}

/// `GET /v1/external-tokens`: every imported peer with its state.
pub(super) async fn list(
    State(state): State<AppState>,
    caller: Caller,
) -> Result<Json<Vec<PeerView>>, ApiError> {
    caller.require_admin()?;
    let peers = peers(&state)?;
    let rows = state.store.list_external_tokens().await?;
    Ok(Json(
        rows.iter()
            .map(|r| PeerView::of(r, peers.state(&r.owner_name)))
            .collect(),
    ))
}

/// `DELETE /v1/external-tokens/{id}` (id or name): remove a peer; its
/// catalog disappears at once here, within `sync_interval` elsewhere.
pub(super) async fn remove(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<StatusCode, ApiError> {
    caller.require_admin()?;
    let peers = peers(&state)?;
    match state.store.delete_external_token(&id).await? {
        Some(row) => {
            peers.unmount(&row.owner_name);
            tracing::info!(peer = %row.owner_name, removed_by = %caller.0.token_id, "peer removed");
            Ok(StatusCode::NO_CONTENT)
        }
        None => Err(ApiError::NotFound(format!("peer '{id}' not found"))),
    }
}
