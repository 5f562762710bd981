//! sluice-flight: the Arrow Flight SQL face of sluice.
//!
//! [`flight_service`] returns a tonic service implementing arrow-flight's
//! [`FlightSqlService`](arrow_flight::sql::server::FlightSqlService), behind
//! a check that commands, tickets and action bodies decode (malformed ones
//! are `INVALID_ARGUMENT`, not arrow-flight's `INTERNAL`). Every request goes through the same
//! pipeline as every other sluice frontend: the bearer token is turned into a
//! [`TokenScope`](sluice_planner::TokenScope) by the [`Authenticator`], and
//! every statement is planned by [`Governor::plan`] under that scope, so only
//! the token's secure views exist (DESIGN §4).
//!
//! # Authentication
//!
//! * `Handshake`: `authorization: Basic base64(user:token)` (the password is
//!   the token; padding optional, as Go's ADBC driver omits it) or
//!   `authorization: Bearer <token>`. The bearer is returned in the response
//!   header `authorization: Bearer <token>` and in the `HandshakeResponse`
//!   payload.
//! * Every other call: `authorization: Bearer <token>`.
//! * Every failure (missing, malformed, unknown, expired, revoked, wrong
//!   audience) is `UNAUTHENTICATED` with the message `authentication failed`.
//!
//! # Statelessness
//!
//! Tickets and prepared-statement handles are self-contained: they carry the
//! SQL, the bound parameters (Arrow IPC) and the id of the token that created
//! them, signed with HMAC-SHA256 under [`FlightConfig::ticket_key`] (shared by
//! all replicas). Any replica can serve `DoGet`; the caller is authenticated
//! again, the ticket's token id must equal the caller's, and the SQL is
//! re-planned under the caller's *current* scope, so revocation and policy
//! changes apply immediately. `DoPut` on a prepared statement returns a new
//! handle with the parameters embedded (`DoPutPreparedStatementResult`), and
//! `ClosePreparedStatement` is a no-op.
//!
//! # Truncation trailer
//!
//! A statement's result is capped at the token's `row_limit`. The last
//! record batch of every `DoGet` carries, in its `app_metadata`, the JSON
//! object `{"sluice.truncated": true|false, "rows": N, "sluice.receipt":
//! {…}}` (`rows` = rows sent): a client reading the stream to the end can
//! tell a complete result from a truncated one, and clients that ignore
//! `app_metadata` see exactly the result's batches. A result without rows
//! ends with one zero-row batch carrying it (a message with *only*
//! `app_metadata` and no IPC header would be leaner, but Go's Arrow reader —
//! the ADBC Flight SQL driver — crashes on it and arrow-rs rejects it).
//! With pyarrow 26:
//!
//! ```python
//! reader = client.do_get(endpoint.ticket, options)
//! trailer = None
//! while True:
//!     try:
//!         chunk = reader.read_chunk()
//!     except StopIteration:
//!         break
//!     if chunk.data is not None and chunk.data.num_rows:
//!         handle(chunk.data)
//!     if chunk.app_metadata is not None:
//!         trailer = json.loads(chunk.app_metadata.to_pybytes())
//! # trailer == {"sluice.truncated": False, "rows": 42, …}
//! ```
//!
//! `reader.read_all()` and ADBC return the rows unchanged. In Rust,
//! `arrow_flight::decode::FlightDataDecoder` yields it as the last
//! `DecodedPayload::RecordBatch`, with `inner.app_metadata` set.
//!
//! # Read-only
//!
//! Updates, ingestion, Substrait plans and transactions are refused with
//! `INVALID_ARGUMENT` / `UNIMPLEMENTED` and a message saying sluice is
//! read-only. The planner's SQL guard refuses DDL/DML in queries.
//!
//! # Modules
//!
//! * `service`: [`SluiceFlightSqlService`], the trait implementation: it
//!   authenticates every call and delegates to the modules below;
//! * `auth`: credential extraction (one function) and authentication;
//! * `ticket`: signed, self-contained tickets and handles, parameter codec;
//! * `statement`: `CommandStatementQuery` and `DoGet` streaming;
//! * `prepared`: prepared statements (create, bind, execute, close);
//! * `metadata`: catalogs, schemas, tables, table types, SQL info, XDBC types,
//!   keys;
//! * `error`: the one `Error -> tonic::Status` mapping.

#![forbid(unsafe_code)]

mod auth;
mod error;
#[doc(hidden)]
pub mod fuzzing;
mod metadata;
mod planned;
mod prepared;
mod redeemed;
mod service;
mod statement;
mod ticket;
mod wire;

use std::sync::Arc;
use std::time::Duration;

use arrow_flight::flight_service_server::FlightServiceServer;
use sluice_planner::{Authenticator, Governor};

pub use service::SluiceFlightSqlService;

/// Minimum length of [`FlightConfig::ticket_key`] in bytes.
pub const MIN_TICKET_KEY_LEN: usize = 32;

/// Configuration of the Flight SQL service.
#[derive(Clone)]
pub struct FlightConfig {
    /// HMAC-SHA256 key signing tickets and prepared-statement handles. At
    /// least [`MIN_TICKET_KEY_LEN`] bytes; every replica must use the same key.
    pub ticket_key: Vec<u8>,
    /// Lifetime of a `DoGet` ticket. Prepared-statement handles live for
    /// `max(ticket_ttl, 24 h)`.
    pub ticket_ttl: Duration,
    /// Reported by `GetSqlInfo` as `FLIGHT_SQL_SERVER_NAME`.
    pub server_name: String,
    /// Reported by `GetSqlInfo` as `FLIGHT_SQL_SERVER_VERSION`.
    pub server_version: String,
    /// Share tokens (partner gateways) are accepted only on connections
    /// that presented a client certificate the TLS layer verified (mTLS).
    pub share_needs_client_cert: bool,
}

impl std::fmt::Debug for FlightConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FlightConfig")
            .field("ticket_key", &"<redacted>")
            .field("ticket_ttl", &self.ticket_ttl)
            .field("server_name", &self.server_name)
            .field("server_version", &self.server_version)
            .finish()
    }
}

/// Builds the Flight SQL gRPC service.
///
/// # Panics
///
/// If `config.ticket_key` is shorter than [`MIN_TICKET_KEY_LEN`] bytes: a
/// short key would make tickets forgeable, so this is a startup error.
pub fn flight_service(
    governor: Arc<Governor>,
    auth: Arc<dyn Authenticator>,
    config: FlightConfig,
) -> FlightServiceServer<wire::Checked> {
    FlightServiceServer::new(wire::Checked(SluiceFlightSqlService::new(
        governor, auth, config,
    )))
}
