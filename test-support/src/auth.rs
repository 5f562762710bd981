//! [`StaticAuthenticator`]: secrets mapped to scopes, for tests of a
//! frontend's protocol (the store-backed authenticator is tested with the
//! store).

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use sluice_planner::{AuthFailure, AuthFailureKind, Authenticator, TokenScope};

/// Authenticates a fixed set of secrets; every other secret is unknown.
/// Records every call: the secret asked about and whether it was charged
/// to the token's rate (a continuation is not).
#[derive(Debug, Default)]
pub struct StaticAuthenticator {
    tokens: Mutex<HashMap<String, Arc<TokenScope>>>,
    calls: Mutex<Vec<(String, bool)>>,
}

impl StaticAuthenticator {
    /// Accepts each `(secret, scope)`.
    pub fn new<S: Into<String>>(tokens: impl IntoIterator<Item = (S, Arc<TokenScope>)>) -> Self {
        Self {
            tokens: Mutex::new(tokens.into_iter().map(|(s, t)| (s.into(), t)).collect()),
            calls: Mutex::default(),
        }
    }

    /// Refuses `secret` from now on (a revocation).
    pub fn revoke(&self, secret: &str) {
        lock(&self.tokens).remove(secret);
    }

    /// Every call so far, in order: the secret and whether it was charged.
    pub fn calls(&self) -> Vec<(String, bool)> {
        lock(&self.calls).clone()
    }

    /// The calls with `secret` so far: (charged, not charged).
    pub fn count(&self, secret: &str) -> (usize, usize) {
        let calls = lock(&self.calls);
        let of = |charged: bool| {
            calls
                .iter()
                .filter(|(s, c)| s == secret && *c == charged)
                .count()
        };
        (of(true), of(false))
    }

    fn check(&self, secret: &str, charged: bool) -> Result<Arc<TokenScope>, AuthFailure> {
        lock(&self.calls).push((secret.to_string(), charged));
        lock(&self.tokens)
            .get(secret)
            .cloned()
            .ok_or(AuthFailure::new(AuthFailureKind::Unknown))
    }
}

/// A test that panicked while holding a lock leaves its data usable.
fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

#[async_trait]
impl Authenticator for StaticAuthenticator {
    async fn authenticate(
        &self,
        secret: &str,
        _client: Option<IpAddr>,
    ) -> Result<Arc<TokenScope>, AuthFailure> {
        self.check(secret, true)
    }

    async fn authenticate_continuation(
        &self,
        secret: &str,
        _client: Option<IpAddr>,
    ) -> Result<Arc<TokenScope>, AuthFailure> {
        self.check(secret, false)
    }
}
