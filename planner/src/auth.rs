//! The authenticator interface every frontend calls.

use std::fmt;
use std::net::IpAddr;
use std::sync::Arc;

use async_trait::async_trait;

use crate::policy::TokenScope;

/// Why authentication failed. For metrics and internal logs only: clients
/// always receive the same uninformative answer (see [`AuthFailure`]'s
/// `Display`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AuthFailureKind {
    /// No credentials were presented, or they could not be parsed.
    Malformed,
    /// No token with this secret.
    Unknown,
    /// The token has expired.
    Expired,
    /// The token was revoked.
    Revoked,
    /// The client is outside the token's audience.
    Audience,
    /// The store could not be reached.
    Unavailable,
}

impl AuthFailureKind {
    /// Label for metrics.
    pub fn as_str(&self) -> &'static str {
        match self {
            AuthFailureKind::Malformed => "malformed",
            AuthFailureKind::Unknown => "unknown",
            AuthFailureKind::Expired => "expired",
            AuthFailureKind::Revoked => "revoked",
            AuthFailureKind::Audience => "audience",
            AuthFailureKind::Unavailable => "unavailable",
        }
    }
}

/// An authentication failure. Its `Display` is identical for every kind.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AuthFailure {
    /// Internal reason (never shown to the client).
    pub kind: AuthFailureKind,
}

impl AuthFailure {
    /// A failure of the given kind.
    pub fn new(kind: AuthFailureKind) -> Self {
        Self { kind }
    }
}

impl fmt::Display for AuthFailure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("authentication failed")
    }
}

impl std::error::Error for AuthFailure {}

/// Turns a presented token secret into the token's scope.
#[async_trait]
pub trait Authenticator: Send + Sync + fmt::Debug + 'static {
    /// Checks the secret (constant time), expiry, revocation and audience,
    /// reading the store on every call so revocation takes effect on the next
    /// request on every replica.
    async fn authenticate(
        &self,
        secret: &str,
        client: Option<IpAddr>,
    ) -> Result<Arc<TokenScope>, AuthFailure>;
}
