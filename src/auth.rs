//! [`Authenticator`] backed by the token store.
//!
//! Every call reads the store (no cache), so a revocation takes effect at
//! the next request on every replica. The presented secret is hashed
//! (SHA-256), looked up by hash, and the stored hash compared again in
//! constant time; then revocation, expiry and audience are checked. Every
//! failure carries an internal [`AuthFailureKind`] but looks the same to the
//! client.

use std::net::IpAddr;
use std::sync::Arc;

use async_trait::async_trait;
use chrono::Utc;
use sluice_planner::{AuthFailure, AuthFailureKind, Authenticator, TokenScope};
use subtle::ConstantTimeEq as _;

use crate::store::Store;
use crate::token::{TokenRecord, hash_secret, looks_like_secret};

/// Authenticates bearer secrets against the [`Store`].
#[derive(Debug, Clone)]
pub struct StoreAuthenticator {
    store: Store,
}

impl StoreAuthenticator {
    /// An authenticator reading `store` on every call.
    pub fn new(store: Store) -> Self {
        Self { store }
    }

    /// The token record behind a secret, with every check applied.
    pub async fn authenticate_record(
        &self,
        secret: &str,
        client: Option<IpAddr>,
    ) -> Result<TokenRecord, AuthFailure> {
        let fail = |kind| {
            tracing::debug!(kind = AuthFailureKind::as_str(&kind), client = ?client, "authentication failed");
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
        self.authenticate_record(secret, client)
            .await
            .map(|r| Arc::new(r.scope()))
    }
}
