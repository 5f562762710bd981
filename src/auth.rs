//! [`Authenticator`] backed by the token store.
//!
//! Every call reads the store (no cache), so a revocation takes effect at
//! the next request on every replica. The presented secret is hashed
//! (SHA-256), looked up by hash, and the stored hash compared again in
//! constant time; then revocation, expiry and audience are checked. Every
//! failure carries an internal [`AuthFailureKind`] but looks the same to the
//! client.
//!
//! Rate limits ([`RateLimits`]) are applied here too, so every frontend
//! gets them: failed attempts from a client address beyond its bucket are
//! refused as rate limited, and each authenticated request (but not the
//! continuation of one, see [`Authenticator::authenticate_continuation`])
//! is charged to its token.

use std::net::IpAddr;
use std::sync::Arc;

use async_trait::async_trait;
use chrono::Utc;
use sluice_planner::{AuthFailure, AuthFailureKind, Authenticator, TokenScope};
use subtle::ConstantTimeEq as _;

use crate::store::Store;
use sluice_planner::limits::RateLimits;
use sluice_planner::token::{TokenRecord, hash_secret, looks_like_secret};

/// Authenticates bearer secrets against the [`Store`].
#[derive(Debug, Clone)]
pub struct StoreAuthenticator {
    store: Store,
    limits: Arc<RateLimits>,
    refuse_share: bool,
}

impl StoreAuthenticator {
    /// An authenticator reading `store` on every call, without rate limits.
    pub fn new(store: Store) -> Self {
        Self::with_limits(store, Arc::new(RateLimits::unlimited()))
    }

    /// An authenticator reading `store` on every call, applying `limits`.
    pub fn with_limits(store: Store, limits: Arc<RateLimits>) -> Self {
        Self {
            store,
            limits,
            refuse_share: false,
        }
    }

    /// This authenticator refuses share tokens like any invalid secret (the
    /// HTTP port, when share tokens need a client certificate it cannot
    /// verify).
    pub fn refusing_share_tokens(mut self) -> Self {
        self.refuse_share = true;
        self
    }

    /// The token record behind a secret, with every check applied; the
    /// request is charged to the token's rate when `charge` is set.
    ///
    /// A failed authentication drains the client address's bucket; once it
    /// is empty, further failures from the address are answered with a
    /// rate-limit refusal (429 / `RESOURCE_EXHAUSTED`) instead of 401. A
    /// valid secret is never refused for its address, so clients that share
    /// an address (a NAT, a proxy) cannot lock each other out.
    pub async fn authenticate_record(
        &self,
        secret: &str,
        client: Option<IpAddr>,
        charge: bool,
    ) -> Result<TokenRecord, AuthFailure> {
        let record = match self.check(secret, client).await {
            Ok(record) => record,
            Err(failure) if failure.kind == AuthFailureKind::Unavailable => return Err(failure),
            Err(failure) => {
                if let Err(wait) = self.limits.fail_from(client) {
                    metrics::counter!("sluice_rate_limited_total", "limit" => "auth_failures")
                        .increment(1);
                    tracing::info!(client = ?client, "authentication refused: too many failed attempts from this address");
                    return Err(AuthFailure::limited(AuthFailureKind::Throttled, wait));
                }
                return Err(failure);
            }
        };
        if charge && let Err(wait) = self.limits.charge(&record.id, record.rate_limit) {
            metrics::counter!("sluice_rate_limited_total", "limit" => "token").increment(1);
            tracing::info!(token_id = %record.id, "request refused: the token's rate limit is used up");
            return Err(AuthFailure::limited(AuthFailureKind::RateLimited, wait));
        }
        Ok(record)
    }

    async fn check(
        &self,
        secret: &str,
        client: Option<IpAddr>,
    ) -> Result<TokenRecord, AuthFailure> {
        let fail = |kind: AuthFailureKind| {
            tracing::debug!(kind = kind.as_str(), client = ?client, "authentication failed");
            metrics::counter!("sluice_auth_failures_total", "kind" => kind.as_str()).increment(1);
            AuthFailure::new(kind)
        };
        let secret = secret.trim();
        // Hash before deciding anything, so malformed and unknown secrets
        // cost the same work.
        let presented = hash_secret(secret);
        if !looks_like_secret(secret) {
            return Err(fail(AuthFailureKind::Malformed));
        }
        let found = match self.store.find_by_hash(&presented).await {
            Ok(found) => found,
            Err(e) => {
                tracing::error!(error = %e, "token store unavailable during authentication");
                return Err(fail(AuthFailureKind::Unavailable));
            }
        };
        let Some((stored, record)) = found else {
            // Same comparison work as a hit.
            let _ = presented.as_bytes().ct_eq(presented.as_bytes());
            return Err(fail(AuthFailureKind::Unknown));
        };
        if !bool::from(stored.as_bytes().ct_eq(presented.as_bytes())) {
            return Err(fail(AuthFailureKind::Unknown));
        }
        let now = Utc::now();
        if record.revoked_at.is_some() {
            return Err(fail(AuthFailureKind::Revoked));
        }
        if record.is_expired(now) {
            return Err(fail(AuthFailureKind::Expired));
        }
        if !record.audience.allows_client(client) {
            return Err(fail(AuthFailureKind::Audience));
        }
        if self.refuse_share && record.token_type == sluice_planner::TokenType::Share {
            return Err(fail(AuthFailureKind::Audience));
        }
        Ok(record)
    }
}

#[async_trait]
impl Authenticator for StoreAuthenticator {
    async fn authenticate(
        &self,
        secret: &str,
        client: Option<IpAddr>,
    ) -> Result<Arc<TokenScope>, AuthFailure> {
        self.authenticate_record(secret, client, true)
            .await
            .map(|r| Arc::new(r.scope()))
    }

    async fn authenticate_continuation(
        &self,
        secret: &str,
        client: Option<IpAddr>,
    ) -> Result<Arc<TokenScope>, AuthFailure> {
        self.authenticate_record(secret, client, false)
            .await
            .map(|r| Arc::new(r.scope()))
    }
}
