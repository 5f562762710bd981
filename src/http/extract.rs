//! The authenticated caller of an admin API request.

use std::net::SocketAddr;
use std::sync::Arc;

use axum::extract::{ConnectInfo, FromRequestParts};
use axum::http::header::AUTHORIZATION;
use axum::http::request::Parts;
use sluice_planner::{AuthFailureKind, TokenScope};

use super::{ApiError, AppState};

/// The token that made the request, authenticated against the store on
/// every request (`Authorization: Bearer <secret>`).
#[derive(Debug, Clone)]
pub struct Caller(pub Arc<TokenScope>);

impl Caller {
    /// Admin tokens only (403 otherwise).
    pub fn require_admin(&self) -> Result<(), ApiError> {
        if self.0.admin {
            Ok(())
        } else {
            Err(ApiError::Forbidden(
                "this operation needs an admin token".into(),
            ))
        }
    }
}

/// The secret of an `Authorization: Bearer …` header.
fn bearer(parts: &Parts) -> Option<&str> {
    let value = parts.headers.get(AUTHORIZATION)?.to_str().ok()?;
    let (scheme, secret) = value.trim().split_once(' ')?;
    scheme
        .eq_ignore_ascii_case("bearer")
        .then(|| secret.trim())
        .filter(|s| !s.is_empty())
}

impl FromRequestParts<AppState> for Caller {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let client = ConnectInfo::<SocketAddr>::from_request_parts(parts, state)
            .await
            .ok()
            .map(|c| c.0.ip());
        // A missing header goes through the authenticator too (as an empty,
        // malformed secret) so every failure takes the same path.
        let secret = bearer(parts).unwrap_or_default();
        match state.auth.authenticate(secret, client).await {
            Ok(scope) => {
                tracing::Span::current().record("token_id", scope.token_id.as_str());
                sluice_planner::audit::note(|a| a.token_id = Some(scope.token_id.clone()));
                Ok(Caller(scope))
            }
            Err(f) if f.kind == AuthFailureKind::Unavailable => Err(ApiError::Unavailable),
            Err(f) if f.retry_after.is_some() => Err(ApiError::Limited(f)),
            Err(f) => {
                tracing::info!(reason = f.kind.as_str(), client = ?client, "admin API authentication failed");
                Err(ApiError::Unauthenticated)
            }
        }
    }
}
