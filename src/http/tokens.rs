//! `/v1/tokens` handlers.

use axum::Json;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::StatusCode;

use super::{ApiError, AppState, Caller};
use crate::admin::{self, Introspection};
use crate::store::federation::DownloadRefusal;
use sluice_planner::token::{CreatedShare, TokenRecord, TokenSpec};

/// `POST /v1/tokens`: create a token (admin).
pub(super) async fn create(
    State(state): State<AppState>,
    caller: Caller,
    body: Result<Bytes, axum::extract::rejection::BytesRejection>,
) -> Result<(StatusCode, Json<serde_json::Value>), ApiError> {
    caller.require_admin()?;
    let body = body?;
    let spec = TokenSpec::from_json(&body).map_err(ApiError::BadRequest)?;
    let created = admin::create_token(
        &state.store,
        &state.governor,
        &spec,
        &format!("token:{}", caller.0.token_id),
        state.default_row_limit,
    )
    .await?;
    // A share token's secret is made when its profile is downloaded.
    let body = if spec.token_type == sluice_planner::TokenType::Share {
        serde_json::to_value(CreatedShare::new(&created.id, &spec.name))
    } else {
        serde_json::to_value(&created)
    }
    .map_err(|e| ApiError::Internal(e.to_string()))?;
    Ok((StatusCode::CREATED, Json(body)))
}

/// `GET /v1/tokens/{id}/download`: a share token's profile, once (admin).
/// 410 after the first download, or when the token is revoked or expired.
pub(super) async fn download(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<Json<crate::federation::Profile>, ApiError> {
    caller.require_admin()?;
    match state
        .store
        .download_share_profile(&id, chrono::Utc::now())
        .await?
    {
        Ok((secret, record)) => {
            tracing::info!(token_id = %id, downloaded_by = %caller.0.token_id, "share profile downloaded");
            Ok(Json(crate::federation::build_profile(
                secret.expose(),
                &record,
                state.profile_ca.as_deref().cloned(),
            )))
        }
        Err(DownloadRefusal::NotFound) => {
            Err(ApiError::NotFound(format!("token '{id}' not found")))
        }
        Err(DownloadRefusal::NotShare) => Err(ApiError::BadRequest(format!(
            "token '{id}' is not a share token: only share tokens have a profile"
        ))),
        Err(DownloadRefusal::Gone(why)) => Err(ApiError::Gone(why.to_string())),
    }
}

/// `GET /v1/tokens`: every token (admin).
pub(super) async fn list(
    State(state): State<AppState>,
    caller: Caller,
) -> Result<Json<Vec<TokenRecord>>, ApiError> {
    caller.require_admin()?;
    Ok(Json(state.store.list_tokens().await?))
}

async fn find(state: &AppState, id: &str) -> Result<TokenRecord, ApiError> {
    state
        .store
        .get_token(id)
        .await?
        .ok_or_else(|| ApiError::NotFound(format!("token '{id}' not found")))
}

/// `GET /v1/tokens/{id}` (admin).
pub(super) async fn show(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<Json<TokenRecord>, ApiError> {
    caller.require_admin()?;
    Ok(Json(find(&state, &id).await?))
}

/// `DELETE /v1/tokens/{id}`: revoke (admin). Idempotent; refuses the last
/// active admin token (409).
pub(super) async fn revoke(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<Json<TokenRecord>, ApiError> {
    caller.require_admin()?;
    let record = admin::revoke_token(&state.store, &id, false).await?;
    tracing::info!(token_id = %id, revoked_by = %caller.0.token_id, "token revoked over the admin API");
    Ok(Json(record))
}

/// `GET /v1/tokens/{id}/introspect`: an admin, or the token itself.
pub(super) async fn introspect(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<Json<Introspection>, ApiError> {
    if !caller.0.may_manage(&id) {
        return Err(ApiError::Forbidden(
            "a token may only introspect itself unless it is an admin token".into(),
        ));
    }
    let record = find(&state, &id).await?;
    Ok(Json(admin::introspect(&state.governor, record).await?))
}
