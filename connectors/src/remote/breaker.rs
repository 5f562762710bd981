//! The circuit breaker of a peer: its transitions (closed, open,
//! half-open, revoked), how a failed request is classified, and the error
//! a user sees for it.

use std::fmt;
use std::time::{Duration, Instant};

use arrow_flight::error::FlightError;
use datafusion::common::Result as DfResult;
use datafusion::error::DataFusionError;
use sluice_planner::connector::ConnectorUnavailable;

use super::peer::Peer;
use super::state::{Breaker, Failure, PeerState, PeerStatus};

impl Peer {
    /// The circuit state.
    pub fn state(&self) -> PeerState {
        self.lock().state
    }

    /// What `/ready` shows.
    pub fn status(&self) -> PeerStatus {
        let b = self.lock();
        PeerStatus {
            state: b.state.as_str(),
            failures: b.failures,
            last_error: b.last_error.clone(),
        }
    }

    /// Marks the peer revoked (the store says so, or the provider did).
    pub fn mark_revoked(&self) {
        let mut b = self.lock();
        if b.state != PeerState::Revoked {
            b.state = PeerState::Revoked;
            b.last_error = Some("revoked".into());
            drop(b);
            self.publish_state(PeerState::Revoked);
        }
    }

    pub(super) fn lock(&self) -> std::sync::MutexGuard<'_, Breaker> {
        self.breaker.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub(super) fn publish_state(&self, state: PeerState) {
        for s in PeerState::ALL {
            metrics::gauge!("sluice_peer_state", "peer" => self.config.name.clone(), "state" => s.as_str())
                .set(if s == state { 1.0 } else { 0.0 });
        }
    }

    /// Lets a request through, or says why not.
    pub(super) fn admit(&self) -> Result<(), Failure> {
        let mut b = self.lock();
        match b.state {
            PeerState::Closed => Ok(()),
            PeerState::Revoked => Err(Failure::Revoked),
            PeerState::HalfOpen => {
                // A probe whose request was dropped unsettled (a cancelled
                // query, a LIMIT satisfied early) must not jam the circuit:
                // after the longest a request may take, let another through.
                let limit = self.config.connect_timeout + self.config.request_timeout;
                if b.probing_since.is_none_or(|t| t.elapsed() >= limit) {
                    b.probing_since = Some(Instant::now());
                    Ok(())
                } else {
                    Err(Failure::CircuitOpen(Duration::ZERO))
                }
            }
            PeerState::Open => {
                let since = b.opened_at.map(|t| t.elapsed()).unwrap_or_default();
                if since >= self.config.cooldown {
                    b.state = PeerState::HalfOpen;
                    b.probing_since = Some(Instant::now());
                    drop(b);
                    self.publish_state(PeerState::HalfOpen);
                    tracing::info!(peer = %self.config.name, "peer circuit half-open: probing");
                    Ok(())
                } else {
                    Err(Failure::CircuitOpen(self.config.cooldown - since))
                }
            }
        }
    }

    fn succeeded(&self) {
        let mut b = self.lock();
        b.failures = 0;
        if matches!(b.state, PeerState::Open | PeerState::HalfOpen) {
            b.state = PeerState::Closed;
            b.opened_at = None;
            b.last_error = None;
            drop(b);
            self.publish_state(PeerState::Closed);
            tracing::info!(peer = %self.config.name, "peer circuit closed");
        }
    }

    fn failed(&self, kind: &'static str) {
        let mut b = self.lock();
        if b.state == PeerState::Revoked {
            return;
        }
        b.failures = b.failures.saturating_add(1);
        b.last_error = Some(kind.to_string());
        let open = b.state == PeerState::HalfOpen
            || (b.state == PeerState::Closed && b.failures >= self.config.failure_threshold);
        if open {
            b.state = PeerState::Open;
            b.opened_at = Some(Instant::now());
            let failures = b.failures;
            drop(b);
            self.publish_state(PeerState::Open);
            tracing::warn!(peer = %self.config.name, failures, "peer circuit open");
        }
    }

    /// Records the outcome of a request and turns a failure into the error
    /// the user sees.
    pub(super) fn settle<T>(&self, result: Result<T, Failure>) -> DfResult<T> {
        let outcome = match &result {
            Ok(_) => "ok",
            Err(Failure::CircuitOpen(_) | Failure::Revoked) => "rejected",
            Err(_) => "error",
        };
        metrics::counter!("sluice_peer_requests_total", "peer" => self.config.name.clone(), "outcome" => outcome)
            .increment(1);
        match result {
            Ok(v) => {
                self.succeeded();
                Ok(v)
            }
            Err(f) => Err(self.error(f)),
        }
    }

    pub(super) fn error(&self, failure: Failure) -> DataFusionError {
        let name = &self.config.name;
        let reason = match failure {
            Failure::CircuitOpen(wait) => format!(
                "peer '{name}' is unavailable: circuit open after repeated failures, retry in {}s",
                wait.as_secs() + 1
            ),
            Failure::Revoked => {
                self.mark_revoked();
                format!(
                    "peer '{name}': peer access revoked (the provider no longer accepts the share token)"
                )
            }
            Failure::Down { kind, detail } => {
                self.failed(kind);
                tracing::warn!(peer = %name, kind, error = %detail, "peer request failed");
                // Transport errors name the provider's hosts, addresses and
                // TLS details: they stay in the log.
                let shown = match kind {
                    CONNECT => "the connection failed (details in the gateway log)",
                    _ => detail.as_str(),
                };
                format!("peer '{name}' is unavailable: {shown}")
            }
            Failure::Refused(status) => {
                self.succeeded();
                tracing::warn!(peer = %name, code = ?status.code(), error = %status.message(), "peer refused the request");
                return DataFusionError::External(Box::new(PeerRefused {
                    peer: name.clone(),
                    message: status.message().to_string(),
                }));
            }
            Failure::Protocol(m) => {
                self.succeeded();
                tracing::warn!(peer = %name, error = %m, "peer answer unusable");
                return DataFusionError::Execution(format!("peer '{name}': {m}"));
            }
        };
        ConnectorUnavailable::peer(name.clone(), reason).into_datafusion()
    }

    pub(super) fn classify(&self, status: tonic::Status) -> Failure {
        use tonic::Code;
        match status.code() {
            Code::Unauthenticated => {
                if let Some(cb) = &self.on_revoked {
                    cb(&self.config.name);
                }
                Failure::Revoked
            }
            Code::Unavailable | Code::Unknown | Code::Cancelled => Failure::Down {
                kind: CONNECT,
                detail: describe_transport(&status),
            },
            Code::DeadlineExceeded => Failure::Down {
                kind: "timeout",
                detail: format!("no answer within {:?}", self.config.request_timeout),
            },
            _ => Failure::Refused(status),
        }
    }

    pub(super) fn flight_failure(&self, e: Option<FlightError>) -> Failure {
        match e {
            None => Failure::Down {
                kind: "timeout",
                detail: format!(
                    "no data within {:?} in the middle of a result",
                    self.config.request_timeout
                ),
            },
            Some(FlightError::Tonic(status)) => self.classify(*status),
            Some(other) => Failure::Protocol(other.to_string()),
        }
    }
}

/// The kind of a failure to reach the provider at all.
const CONNECT: &str = "connect";

/// What went wrong on the transport, for the log.
fn describe_transport(status: &tonic::Status) -> String {
    use std::error::Error as _;
    let mut text = status.message().to_string();
    let mut source = status.source();
    while let Some(s) = source {
        text = s.to_string();
        source = s.source();
    }
    if text.is_empty() {
        "the connection failed".to_string()
    } else {
        format!("the connection failed ({text})")
    }
}

/// A provider's answer to a request it understood but refused (a planning
/// error at the provider). Its message is the provider's, which applied the
/// share token's policy to it.
#[derive(Debug)]
pub struct PeerRefused {
    /// The peer.
    pub peer: String,
    /// The provider's message.
    pub message: String,
}

impl fmt::Display for PeerRefused {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "peer '{}' refused the query: {}",
            self.peer, self.message
        )
    }
}

impl std::error::Error for PeerRefused {}

#[cfg(test)]
mod tests {
    use super::super::peer::tests::unreachable_peer;
    use super::*;

    /// A peer that refuses connections: failures open the circuit, which
    /// then fails fast; after the cooldown one probe is let through.
    #[tokio::test]
    async fn circuit_opens_and_probes() {
        let peer = unreachable_peer();
        for _ in 0..2 {
            let e = peer.refresh().await.unwrap_err().to_string();
            assert!(e.contains("peer 'partner' is unavailable"), "{e}");
        }
        assert_eq!(peer.state(), PeerState::Open);
        let started = Instant::now();
        let e = peer.refresh().await.unwrap_err().to_string();
        assert!(e.contains("circuit open"), "{e}");
        assert!(started.elapsed() < Duration::from_millis(100));
        tokio::time::sleep(Duration::from_millis(350)).await;
        // The probe fails too: open again.
        let e = peer.refresh().await.unwrap_err().to_string();
        assert!(!e.contains("circuit open"), "{e}");
        assert_eq!(peer.state(), PeerState::Open);
        peer.mark_revoked();
        let e = peer.refresh().await.unwrap_err().to_string();
        assert!(e.contains("peer access revoked"), "{e}");
    }

    /// A peer that cannot be reached answers with what happened, never
    /// with the transport's detail (its address, resolver or TLS text).
    #[tokio::test]
    async fn peer_transport_detail_stays_in_the_log() {
        let peer = unreachable_peer();
        let e = peer.refresh().await.unwrap_err().to_string();
        assert!(
            e.contains(
                "peer 'partner' is unavailable: the connection failed (details in the gateway log)"
            ),
            "{e}"
        );
        for detail in ["127.0.0.1", "refused", "tcp", "transport"] {
            assert!(!e.to_ascii_lowercase().contains(detail), "{e}");
        }
    }
}
