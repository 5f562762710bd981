//! Remote sluice (federation, DESIGN §6–7): another gateway's tables,
//! reached over Flight SQL with a share token.
//!
//! A [`Peer`] is one imported share profile. It is mounted as a catalog
//! ([`PeerCatalog`]) whose schemas and tables mirror the provider's catalog
//! `remote_catalog` as the share token sees it (discovered with `GetTables`
//! including schemas, refreshed every `refresh_interval`). A scan sends the
//! pushed-down query — projection, the filters DataFusion's unparser can
//! write as SQL, and the limit — to the provider as one SQL statement and
//! streams the answer: nothing is stored at the receiver.
//!
//! The provider applies its policy to the share token; the receiver's secure
//! view wraps these tables like any other, so the receiver's policy applies
//! on top, and every filter handed down here is re-applied above.
//!
//! Resilience: connect and request timeouts, and a circuit breaker per peer
//! (after `failure_threshold` consecutive failures the peer fails fast for
//! `cooldown`, then one probe decides). A provider that refuses the share
//! token (`UNAUTHENTICATED`: revoked or expired) marks the peer revoked.
//!
//! Files, each using only the ones listed before it: `state` (the circuit
//! states, what the breaker keeps, why a request failed), `peer` (a peer,
//! its configuration and channel, discovery of the provider's tables),
//! `breaker` (the circuit breaker's transitions, how failures are
//! classified, the errors users see), `flight` (the Flight SQL requests
//! and their streamed answers), `table` (a remote table: filters as SQL,
//! the scan), `catalog` (the peer as a catalog).

mod breaker;
mod catalog;
mod flight;
mod peer;
mod state;
mod table;

pub use breaker::PeerRefused;
pub use catalog::PeerCatalog;
pub use peer::{OnRevoked, Peer, PeerConfig, channel_uri};
pub use state::{PeerState, PeerStatus};
pub use table::{RemoteScanExec, RemoteTable};
