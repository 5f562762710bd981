//! Authentication of Flight calls: the `authorization` metadata, read by
//! the planner's one credential parser (Bearer on every call; Basic, where
//! the password is the token, on the handshake), and the mTLS requirement
//! of share tokens.

use std::net::IpAddr;
use std::sync::Arc;

use sluice_planner::auth::{Charge, Schemes};
use sluice_planner::{AuthFailureKind, Authenticator, Secret, TokenScope, TokenType};

use crate::error::{Error, Result};

/// Name of the metadata key carrying credentials.
pub(crate) const AUTHORIZATION: &str = "authorization";

/// Authenticates the caller of a request, passing the peer address for
/// audience checks. When `share_needs_client_cert`, a share token is
/// refused on a connection without a verified client certificate, with
/// the same answer as any other authentication failure (the TLS layer has
/// already rejected certificates that do not chain to the client CA). A
/// rate-limit refusal stays one (it says when to retry).
pub(crate) async fn authenticate<T>(
    authenticator: &dyn Authenticator,
    request: &tonic::Request<T>,
    schemes: Schemes,
    share_needs_client_cert: bool,
    charge: Charge,
) -> Result<(Secret, Arc<TokenScope>)> {
    let peer: Option<IpAddr> = request.remote_addr().map(|a| a.ip());
    let authorization = sluice_planner::auth::single_authorization(
        request
            .metadata()
            .get_all(AUTHORIZATION)
            .iter()
            .map(|v| v.as_bytes()),
    );
    let certified = request.peer_certs().is_some_and(|certs| !certs.is_empty());
    let admit = |scope: &TokenScope| {
        if !share_needs_client_cert || scope.token_type != TokenType::Share || certified {
            return Ok(());
        }
        tracing::info!(token_id = %scope.token_id, "share token refused: no client certificate");
        metrics::counter!("sluice_auth_failures_total", "kind" => "client_certificate")
            .increment(1);
        Err(AuthFailureKind::Audience)
    };
    sluice_planner::auth::authenticate(authenticator, authorization, schemes, peer, charge, admit)
        .await
        .map_err(|failure| match failure.retry_after {
            Some(_) => Error::Limited(failure),
            None => Error::Unauthenticated(failure.kind),
        })
}
