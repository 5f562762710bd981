//! The admin API's error model: one exhaustive mapping to status codes and
//! `{"error": "..."}` bodies.

use axum::Json;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::json;

use crate::error::Error;

/// An error answer of the admin API.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// Any authentication failure (missing, malformed, unknown, expired,
    /// revoked, wrong audience): always the same answer.
    #[error("authentication failed")]
    Unauthenticated,
    /// Authenticated, but not allowed.
    #[error("{0}")]
    Forbidden(String),
    /// No such resource.
    #[error("{0}")]
    NotFound(String),
    /// The request is invalid; the message names the problem.
    #[error("{0}")]
    BadRequest(String),
    /// The request body is over the limit of what is read (413).
    #[error("{0}")]
    TooLarge(String),
    /// The request conflicts with the current state.
    #[error("{0}")]
    Conflict(String),
    /// The resource existed and is gone for good (410).
    #[error("{0}")]
    Gone(String),
    /// Too many requests of this token at once.
    #[error("{0}")]
    TooManyRequests(String),
    /// The token's cost budget is spent (429 with `Retry-After`: when
    /// its window resets).
    #[error("{message}")]
    BudgetSpent {
        /// Which budget, how much was used, when it resets.
        message: String,
        /// Seconds until the window resets.
        retry_after: Option<u64>,
    },
    /// Refused by a rate limit (429 with `Retry-After`).
    #[error("{0}")]
    Limited(sluice_planner::AuthFailure),
    /// A dependency (the store) is unreachable.
    #[error("service unavailable")]
    Unavailable,
    /// A catalog's backend is unreachable; the message names the catalog.
    #[error("{0}")]
    CatalogUnavailable(String),
    /// A query went over a limit of the gateway (its memory share or its
    /// time limit): well-formed, but not answerable within the limits.
    #[error("{0}")]
    QueryLimit(String),
    /// A query failed while running; the message is safe to show (errors
    /// below a secure view are already opaque).
    #[error("{0}")]
    QueryFailed(String),
    /// Anything else; details are logged, not returned.
    #[error("internal error")]
    Internal(String),
}

impl From<Error> for ApiError {
    fn from(e: Error) -> Self {
        match e {
            Error::InvalidToken(problems) => {
                ApiError::BadRequest(format!("invalid token: {}", problems.join("; ")))
            }
            Error::TokenNotFound(id) => ApiError::NotFound(format!("token '{id}' not found")),
            Error::Refused(m) => ApiError::Conflict(m),
            e if e.is_unavailable() => ApiError::Unavailable,
            other => ApiError::Internal(other.to_string()),
        }
    }
}

impl From<axum::extract::rejection::JsonRejection> for ApiError {
    /// A JSON body that could not be read: over the body limit (413), or
    /// not the JSON the route takes (400, naming the problem).
    fn from(e: axum::extract::rejection::JsonRejection) -> Self {
        match e.status() {
            StatusCode::PAYLOAD_TOO_LARGE => too_large(),
            _ => ApiError::BadRequest(e.body_text()),
        }
    }
}

impl From<axum::extract::rejection::BytesRejection> for ApiError {
    /// A body that could not be read: over the body limit (413), or cut
    /// short (400).
    fn from(e: axum::extract::rejection::BytesRejection) -> Self {
        match e.status() {
            StatusCode::PAYLOAD_TOO_LARGE => too_large(),
            _ => ApiError::BadRequest(e.body_text()),
        }
    }
}

fn too_large() -> ApiError {
    ApiError::TooLarge(format!(
        "the request body is over the {} MiB limit",
        BODY_LIMIT >> 20
    ))
}

/// What axum reads of a request body at most (its default).
pub(super) const BODY_LIMIT: usize = 2 << 20;

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let status = match &self {
            ApiError::Unauthenticated => StatusCode::UNAUTHORIZED,
            ApiError::Forbidden(_) => StatusCode::FORBIDDEN,
            ApiError::NotFound(_) => StatusCode::NOT_FOUND,
            ApiError::BadRequest(_) => StatusCode::BAD_REQUEST,
            ApiError::TooLarge(_) => StatusCode::PAYLOAD_TOO_LARGE,
            ApiError::Conflict(_) => StatusCode::CONFLICT,
            ApiError::Gone(_) => StatusCode::GONE,
            ApiError::TooManyRequests(_) | ApiError::Limited(_) | ApiError::BudgetSpent { .. } => {
                StatusCode::TOO_MANY_REQUESTS
            }
            ApiError::Unavailable | ApiError::CatalogUnavailable(_) => {
                StatusCode::SERVICE_UNAVAILABLE
            }
            ApiError::QueryLimit(_) => StatusCode::UNPROCESSABLE_ENTITY,
            ApiError::QueryFailed(_) => StatusCode::INTERNAL_SERVER_ERROR,
            ApiError::Internal(detail) => {
                tracing::error!(error = %detail, "admin API internal error");
                StatusCode::INTERNAL_SERVER_ERROR
            }
        };
        let mut resp = (status, Json(json!({ "error": self.to_string() }))).into_response();
        let retry_after = match &self {
            ApiError::Limited(f) => f.retry_after_secs(),
            ApiError::BudgetSpent { retry_after, .. } => *retry_after,
            _ => None,
        };
        if let Some(secs) = retry_after {
            resp.headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(secs));
        }
        if status == StatusCode::UNAUTHORIZED {
            resp.headers_mut()
                .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        }
        resp
    }
}
