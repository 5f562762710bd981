//! [`StaticAuthenticator`]: secrets mapped to scopes, for tests of a
//! frontend's protocol (the store-backed authenticator is tested with the
//! store).

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use sluice_planner::{AuthFailure, AuthFailureKind, Authenticator, TokenScope};

/// Authenticates a fixed set of secrets; every other secret is unknown.
#[derive(Debug, Default)]
pub struct StaticAuthenticator(Mutex<HashMap<String, Arc<TokenScope>>>);

impl StaticAuthenticator {
    /// Accepts each `(secret, scope)`.
    pub fn new<S: Into<String>>(tokens: impl IntoIterator<Item = (S, Arc<TokenScope>)>) -> Self {
        Self(Mutex::new(
            tokens.into_iter().map(|(s, t)| (s.into(), t)).collect(),
        ))
    }

    /// Refuses `secret` from now on (a revocation).
    pub fn revoke(&self, secret: &str) {
        self.0
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(secret);
    }
}

#[async_trait]
impl Authenticator for StaticAuthenticator {
    async fn authenticate(
        &self,
        secret: &str,
        _client: Option<IpAddr>,
    ) -> Result<Arc<TokenScope>, AuthFailure> {
        self.0
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(secret)
            .cloned()
            .ok_or(AuthFailure::new(AuthFailureKind::Unknown))
    }
}
