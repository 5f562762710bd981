//! Rate limits count statements: a Flight SQL query is `GetFlightInfo`
//! (charged, as it plans the statement) and then `DoGet` of the ticket it
//! returned. The first redemption of a genuine, unexpired ticket on this
//! gateway is the same statement, so it is not charged again; a ticket
//! redeemed again (a replay, a second reader) is charged like any request.
//! Redeemed tickets are remembered by their signature until they expire
//! (each replica remembers its own: behind N replicas a ticket can be
//! redeemed uncharged once per replica).

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant, SystemTime};

use sluice_planner::auth::Charge;

use crate::ticket::{Kind, TicketSigner};

/// Tickets remembered at most; beyond it every redemption is charged.
const CAPACITY: usize = 100_000;

/// Signatures of the tickets redeemed on this gateway, until they expire.
#[derive(Debug, Default)]
pub(crate) struct Redeemed {
    seen: Mutex<HashMap<Vec<u8>, Instant>>,
}

impl Redeemed {
    /// How the `DoGet` of `ticket` is charged: a continuation the first
    /// time a genuine unexpired ticket is redeemed here, a request
    /// otherwise.
    pub(crate) fn charge(&self, signer: &TicketSigner, ticket: &[u8], ttl: Duration) -> Charge {
        let Some(signature) = signer.genuine_signature(ticket, Kind::Ticket, SystemTime::now())
        else {
            return Charge::Request;
        };
        let now = Instant::now();
        let mut seen = self.seen.lock().unwrap_or_else(|e| e.into_inner());
        if seen.len() >= CAPACITY {
            seen.retain(|_, until| *until > now);
            if seen.len() >= CAPACITY {
                return Charge::Request;
            }
        }
        match seen.insert(signature, now + ttl) {
            None => Charge::Continuation,
            Some(_) => Charge::Request,
        }
    }
}
