//! Authentication: the [`Authenticator`] interface the gateway implements
//! over its token store, the failures it reports, and the one ingress of
//! credentials every frontend uses ([`credentials`]).

pub mod credentials;

use std::fmt;
use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;

use crate::policy::TokenScope;

pub use credentials::{
    Charge, Schemes, authenticate, secret_from_authorization, single_authorization,
};

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
    /// The client address made too many failed attempts recently
    /// (brute-force protection); refused before the secret is looked at.
    Throttled,
    /// The token used up its request rate (`rate_limit`).
    RateLimited,
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
            AuthFailureKind::Throttled => "throttled",
            AuthFailureKind::RateLimited => "rate_limited",
        }
    }
}

/// An authentication failure. Its `Display` is identical for every kind
/// that is about the credentials; a refusal by a rate limit (which says
/// nothing about the secret) says so and when to retry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AuthFailure {
    /// Internal reason (never shown to the client).
    pub kind: AuthFailureKind,
    /// Set for [`AuthFailureKind::Throttled`] and
    /// [`AuthFailureKind::RateLimited`]: when a retry can succeed.
    pub retry_after: Option<Duration>,
}

impl AuthFailure {
    /// A failure of the given kind.
    pub fn new(kind: AuthFailureKind) -> Self {
        Self {
            kind,
            retry_after: None,
        }
    }

    /// A refusal by a rate limit (`kind` is `Throttled` or `RateLimited`).
    pub fn limited(kind: AuthFailureKind, retry_after: Duration) -> Self {
        Self {
            kind,
            retry_after: Some(retry_after),
        }
    }

    /// Whole seconds until a retry can succeed (at least 1), for a
    /// `Retry-After` header; `None` unless this is a rate-limit refusal.
    pub fn retry_after_secs(&self) -> Option<u64> {
        self.retry_after
            .map(|d| d.as_secs() + u64::from(d.subsec_nanos() > 0))
            .map(|s| s.max(1))
    }
}

impl fmt::Display for AuthFailure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.retry_after_secs() {
            Some(secs) => write!(f, "too many requests: retry after {secs} s"),
            None => f.write_str("authentication failed"),
        }
    }
}

impl std::error::Error for AuthFailure {}

/// Turns a presented token secret into the token's scope.
#[async_trait]
pub trait Authenticator: Send + Sync + fmt::Debug + 'static {
    /// Checks the secret (constant time), expiry, revocation and audience,
    /// reading the store on every call so revocation takes effect on the next
    /// request on every replica.
    ///
    /// Each call counts as one request against the token's rate limit.
    async fn authenticate(
        &self,
        secret: &str,
        client: Option<IpAddr>,
    ) -> Result<Arc<TokenScope>, AuthFailure>;

    /// [`Authenticator::authenticate`] for the continuation of a request
    /// already counted (fetching the next page of a running query): every
    /// check applies, but the token's request rate is not charged.
    async fn authenticate_continuation(
        &self,
        secret: &str,
        client: Option<IpAddr>,
    ) -> Result<Arc<TokenScope>, AuthFailure> {
        self.authenticate(secret, client).await
    }
}
