//! The authenticated caller of an admin API request: `Authorization:
//! Bearer <secret>`, read by the planner's one credential parser and
//! checked against the store on every request.

use std::net::SocketAddr;
use std::sync::Arc;

use axum::extract::{ConnectInfo, FromRequestParts};
use axum::http::header::AUTHORIZATION;
use axum::http::request::Parts;
use sluice_planner::auth::{Charge, Schemes};
use sluice_planner::{AuthFailureKind, TokenScope};

use super::{ApiError, AppState};

/// The token that made the request, authenticated against the store on
/// every request (`Authorization: Bearer <secret>`).
#[derive(Debug, Clone)]
pub struct Caller(pub Arc<TokenScope>);

impl Caller {
    /// Admin tokens only (403 otherwise).
    pub fn require_admin(&self) -> Result<(), ApiError> {
        if self.0.is_admin() {
            Ok(())
        } else {
            Err(ApiError::Forbidden(
                "this operation needs an admin token".into(),
            ))
        }
    }
}

impl FromRequestParts<AppState> for Caller {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let client = ConnectInfo::<SocketAddr>::from_request_parts(parts, state)
            .await
            .ok()
            .map(|c| c.0.ip());
        let authorization = sluice_planner::auth::single_authorization(
            parts
                .headers
                .get_all(AUTHORIZATION)
                .iter()
                .map(|v| v.as_bytes()),
        );
        let result = sluice_planner::auth::authenticate(
            state.auth.as_ref(),
            authorization,
            Schemes::Bearer,
            client,
            Charge::Request,
            |_| Ok(()),
        )
        .await;
        match result {
            Ok((_secret, scope)) => Ok(Caller(scope)),
            Err(f) if f.kind == AuthFailureKind::Unavailable => Err(ApiError::Unavailable),
            Err(f) if f.retry_after.is_some() => Err(ApiError::Limited(f)),
            Err(f) => {
                tracing::info!(reason = f.kind.as_str(), client = ?client, "admin API authentication failed");
                Err(ApiError::Unauthenticated)
            }
        }
    }
}
