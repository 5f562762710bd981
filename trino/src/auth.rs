//! Authentication of Trino requests: `Authorization: Basic` (any user,
//! password = token secret) or `Bearer <secret>` on every request, read by
//! the planner's one credential parser. Every failure is the same `401`
//! with `WWW-Authenticate: Basic realm="Trino"`.

use std::net::SocketAddr;
use std::sync::Arc;

use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use sluice_planner::auth::{Charge, Schemes};
use sluice_planner::{AuthFailureKind, TokenScope};

use crate::TrinoState;

fn unauthorized() -> Response {
    let mut resp = (StatusCode::UNAUTHORIZED, "Unauthorized").into_response();
    resp.headers_mut().insert(
        header::WWW_AUTHENTICATE,
        HeaderValue::from_static("Basic realm=\"Trino\""),
    );
    resp
}

/// The caller of a request, or the answer that refuses it.
pub(crate) async fn authenticate(
    state: &TrinoState,
    headers: &HeaderMap,
    client: SocketAddr,
    charge: Charge,
) -> Result<Arc<TokenScope>, Response> {
    let authorization = sluice_planner::auth::single_authorization(
        headers
            .get_all(header::AUTHORIZATION)
            .iter()
            .map(|v| v.as_bytes()),
    );
    let result = sluice_planner::auth::authenticate(
        state.auth.as_ref(),
        authorization,
        Schemes::BearerOrBasic,
        Some(client.ip()),
        charge,
        |_| Ok(()),
    )
    .await;
    match result {
        Ok((_secret, scope)) => Ok(scope),
        Err(f) if f.kind == AuthFailureKind::Unavailable => {
            Err((StatusCode::SERVICE_UNAVAILABLE, "service unavailable").into_response())
        }
        Err(f) if f.retry_after.is_some() => {
            let mut resp = (StatusCode::TOO_MANY_REQUESTS, f.to_string()).into_response();
            if let Some(secs) = f.retry_after_secs() {
                resp.headers_mut()
                    .insert(header::RETRY_AFTER, HeaderValue::from(secs));
            }
            Err(resp)
        }
        Err(f) => {
            tracing::info!(reason = f.kind.as_str(), client = %client.ip(), "Trino authentication failed");
            Err(unauthorized())
        }
    }
}
