//! `/v1/exports`: export jobs (see [`crate::exports`]).
//!
//! | route | answer |
//! |---|---|
//! | `POST /v1/exports` | 202 and the job (`Location: /v1/exports/{id}`) |
//! | `GET /v1/exports` | `{"jobs": [...]}`: the caller's jobs, newest first (`?all=true`: every token's, admins only) |
//! | `GET /v1/exports/{id}` | the job; 404 when it is not the caller's |
//! | `DELETE /v1/exports/{id}` | cancels; the job afterwards; 409 when it has ended |

use axum::Json;
use axum::extract::{Path, Query, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};

use super::extract::Caller;
use super::search::query_error;
use super::{ApiError, AppState};
use crate::exports::{ExportRequest, Exports, Refusal};

fn service(state: &AppState) -> Result<&std::sync::Arc<Exports>, ApiError> {
    state
        .exports
        .as_ref()
        .ok_or_else(|| ApiError::NotFound("exports are disabled on this gateway".into()))
}

impl From<Refusal> for ApiError {
    fn from(r: Refusal) -> Self {
        match r {
            Refusal::Invalid(m) => ApiError::BadRequest(m),
            Refusal::Forbidden(m) => ApiError::Forbidden(m),
            Refusal::NotFound(m) => ApiError::NotFound(m),
            Refusal::Conflict(m) => ApiError::Conflict(m),
            Refusal::TooMany(m) => ApiError::TooManyRequests(m),
            Refusal::Unavailable(m) => ApiError::CatalogUnavailable(m),
            Refusal::Query(e) => query_error(e),
            Refusal::Store(e) => e.into(),
        }
    }
}

/// `POST /v1/exports`.
pub(super) async fn submit(
    State(state): State<AppState>,
    caller: Caller,
    body: Result<Json<ExportRequest>, axum::extract::rejection::JsonRejection>,
) -> Result<Response, ApiError> {
    let exports = service(&state)?;
    let Json(req) = body.map_err(ApiError::from)?;
    // The destinations live on the token record (not in the planner's scope).
    let allowed = state
        .store
        .get_token(&caller.0.token_id)
        .await?
        .map(|r| r.export_destinations)
        .unwrap_or_default();
    let job = exports.submit(&caller.0, &allowed, req).await?;
    let location = format!("/v1/exports/{}", job.id());
    Ok((
        StatusCode::ACCEPTED,
        [(header::LOCATION, location)],
        Json(job),
    )
        .into_response())
}

/// `?all=true`.
#[derive(Debug, serde::Deserialize)]
pub(super) struct ListQuery {
    #[serde(default)]
    all: bool,
}

/// `GET /v1/exports`.
pub(super) async fn list(
    State(state): State<AppState>,
    caller: Caller,
    Query(q): Query<ListQuery>,
) -> Result<Response, ApiError> {
    let exports = service(&state)?;
    if q.all {
        caller.require_admin()?;
    }
    let jobs = exports.list(&caller.0, q.all).await?;
    Ok(Json(serde_json::json!({ "jobs": jobs })).into_response())
}

/// `GET /v1/exports/{id}`.
pub(super) async fn show(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    let exports = service(&state)?;
    Ok(Json(exports.get(&caller.0, &id).await?).into_response())
}

/// `DELETE /v1/exports/{id}`.
pub(super) async fn cancel(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    let exports = service(&state)?;
    Ok(Json(exports.cancel(&caller.0, &id).await?).into_response())
}
