//! The circuit state of a peer: the states (closed, open, half-open,
//! revoked), what the breaker keeps of a peer and `/ready` shows of it,
//! and why a request failed (down, refused, revoked, unusable), the
//! breaker's input.

use std::time::{Duration, Instant};

/// The circuit state of a peer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PeerState {
    /// Requests go through.
    Closed,
    /// Requests fail fast until the cooldown has passed.
    Open,
    /// The cooldown has passed: one probe request is in flight.
    HalfOpen,
    /// The provider refused the share token: every request fails.
    Revoked,
}

impl PeerState {
    /// Label for `/ready` and metrics.
    pub fn as_str(&self) -> &'static str {
        match self {
            PeerState::Closed => "closed",
            PeerState::Open => "open",
            PeerState::HalfOpen => "half_open",
            PeerState::Revoked => "revoked",
        }
    }

    pub(super) const ALL: [PeerState; 4] = [
        PeerState::Closed,
        PeerState::Open,
        PeerState::HalfOpen,
        PeerState::Revoked,
    ];
}

/// What `/ready` reports of a peer (nothing about its data).
#[derive(Debug, Clone, serde::Serialize)]
pub struct PeerStatus {
    /// Circuit state.
    pub state: &'static str,
    /// Consecutive failures.
    pub failures: u32,
    /// The kind of the last failure (`connect`, `timeout`, `revoked`, …).
    pub last_error: Option<String>,
}

#[derive(Debug)]
pub(super) struct Breaker {
    pub(super) state: PeerState,
    pub(super) failures: u32,
    pub(super) opened_at: Option<Instant>,
    /// When the half-open probe was let through.
    pub(super) probing_since: Option<Instant>,
    pub(super) last_error: Option<String>,
}

/// Why a request to a peer failed.
#[derive(Debug)]
pub(super) enum Failure {
    /// The circuit is open (nothing was sent).
    CircuitOpen(Duration),
    /// Revoked (now or before).
    Revoked,
    /// Connection, TLS or transport failure, or a timeout: counts against
    /// the circuit.
    Down { kind: &'static str, detail: String },
    /// The provider answered with an error about the request (it is up).
    Refused(tonic::Status),
    /// The answer could not be used.
    Protocol(String),
}
