//! `[federation]`: how this gateway reaches its peers (imported share
//! profiles): timeouts, the circuit breaker, how often the store and the
//! peers' tables are read again, and the key sealing their secrets.

use std::fmt;
use std::time::Duration;

use serde::Deserialize;
use sluice_planner::Secret;
use sluice_planner::units::de_duration;

/// `[federation]`: how this gateway reaches its peers (imported share
/// profiles). Durations as in `[trino]`.
#[derive(Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct FederationConfig {
    /// Base64 of 32 bytes: the AES-256-GCM key sealing peers' secrets in
    /// the store (`SLUICE__FEDERATION__SEAL_KEY`). Default: a key generated
    /// once into `<data_dir>/seal.key` (mode 0600). Replicas sharing a
    /// store need the same key.
    pub seal_key: Option<Secret>,
    /// Longest wait for a connection to a peer.
    #[serde(deserialize_with = "de_duration")]
    pub connect_timeout: Duration,
    /// Longest wait for a peer's answer (and between two of its messages).
    #[serde(deserialize_with = "de_duration")]
    pub request_timeout: Duration,
    /// Consecutive failures that open a peer's circuit.
    pub failure_threshold: u32,
    /// How long an open circuit fails fast before one probe.
    #[serde(deserialize_with = "de_duration")]
    pub cooldown: Duration,
    /// How often a peer's tables are rediscovered.
    #[serde(deserialize_with = "de_duration")]
    pub refresh_interval: Duration,
    /// How often the store is read for imported, removed or revoked peers
    /// (what `sluice peer` and other replicas changed).
    #[serde(deserialize_with = "de_duration")]
    pub sync_interval: Duration,
}

impl Default for FederationConfig {
    fn default() -> Self {
        Self {
            seal_key: None,
            connect_timeout: Duration::from_secs(3),
            request_timeout: Duration::from_secs(30),
            failure_threshold: 3,
            cooldown: Duration::from_secs(10),
            refresh_interval: Duration::from_secs(60),
            sync_interval: Duration::from_secs(5),
        }
    }
}

impl fmt::Debug for FederationConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("FederationConfig")
            .field("seal_key", &self.seal_key.as_ref().map(|_| "<redacted>"))
            .field("connect_timeout", &self.connect_timeout)
            .field("request_timeout", &self.request_timeout)
            .field("failure_threshold", &self.failure_threshold)
            .field("cooldown", &self.cooldown)
            .finish_non_exhaustive()
    }
}

impl FederationConfig {
    /// Every problem with the settings.
    pub fn problems(&self) -> Vec<String> {
        let mut problems = Vec::new();
        if self.connect_timeout.is_zero()
            || self.request_timeout.is_zero()
            || self.failure_threshold == 0
            || self.refresh_interval.is_zero()
            || self.sync_interval.is_zero()
        {
            problems.push(
                "federation.connect_timeout, request_timeout, failure_threshold, refresh_interval and sync_interval must be positive"
                    .into(),
            );
        }
        problems
    }
}
