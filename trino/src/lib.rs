//! sluice-trino: the Trino client protocol, so unmodified Trino clients
//! (the `trino` Python client and its SQLAlchemy dialect, `trino-client`
//! for Node, BI tools) query sluice through the same policy pipeline as
//! Flight SQL.
//!
//! | route | what |
//! |---|---|
//! | `POST /v1/statement` | run a statement (body = SQL); first result page |
//! | `GET /v1/statement/executing/{id}/{slug}/{n}` | page `n` (`nextUri`); re-GET of the last page answers it again |
//! | `DELETE /v1/statement/executing/{id}/{slug}/{n}` | cancel: 204, the stream is dropped |
//! | `GET /v1/info` | server info (no authentication, like Trino) |
//! | `GET /v1/query` | the caller's queries (an admin token sees all) |
//! | `GET /v1/query/{id}` | one query (`infoUri`), for the token that runs it |
//!
//! Authentication: `Authorization: Basic` (any user, password = token
//! secret) or `Bearer <secret>`, on every request. Every failure is the same
//! `401` with `WWW-Authenticate: Basic realm="Trino"`. `X-Trino-User` is
//! recorded, never used for authorisation. A query can only be polled, seen
//! or cancelled with the token that started it; for any other token it does
//! not exist.
//!
//! Modules, from the wire inwards:
//! - [`config`]: the `[trino]` section;
//! - `auth`, `session`: credentials and `X-Trino-*` session headers;
//! - `submit`, `poll`, `info`: the routes; `response`: the JSON documents;
//! - [`query`]: running queries (admission, producer, pages);
//! - [`encode`]: Arrow → Trino JSON rows; [`types`]: Trino type names;
//! - [`error`]: Trino's error shape and the one mapping from planner
//!   errors;
//! - [`statement`]: classification of session and metadata statements;
//! - [`dialect`]: the planner's dialect hook for Trino (function spellings,
//!   `USING` parameters, metadata catalogs); [`metadata`]: Trino's
//!   `information_schema` and `system.jdbc`; [`plan`]: metadata statements
//!   as governed queries.

#![forbid(unsafe_code)]

mod auth;
pub mod config;
pub mod dialect;
pub mod encode;
pub mod error;
#[doc(hidden)]
pub mod fuzzing;
mod info;
pub mod metadata;
pub mod plan;
mod poll;
pub mod query;
mod response;
mod session;
pub mod statement;
mod submit;
#[cfg(test)]
mod tests;
pub mod types;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Instant;

use axum::Router;
use axum::routing::{get, post};
use sluice_planner::{Authenticator, Governor};

pub use config::TrinoConfig;
pub use dialect::TrinoDialect;
pub use query::Queries;

/// Warning name of a result cut at the token's `row_limit`.
pub const ROW_LIMIT_WARNING: &str = "SLUICE_ROW_LIMIT";
/// Response header set on the final page of a truncated result.
pub const TRUNCATED_HEADER: &str = "x-sluice-truncated";
/// Response header with the result's receipt (see
/// [`sluice_planner::Receipt`]) on every answer about a planned query;
/// its `truncated` is final on the last page.
pub const RECEIPT_HEADER: &str = "x-sluice-receipt";
/// Session property lowering the run-time limit.
pub const MAX_RUN_TIME_PROPERTY: &str = "query_max_run_time";

/// What the Trino handlers share.
#[derive(Debug, Clone)]
pub struct TrinoState {
    /// Plans statements in the token's scoped session.
    pub governor: Arc<Governor>,
    /// Authenticates every request.
    pub auth: Arc<dyn Authenticator>,
    /// Running queries.
    pub queries: Arc<Queries>,
    /// Base of `nextUri` / `infoUri` (else from `Host`).
    pub external_url: Option<String>,
    /// The listening address (base URL when `Host` is missing).
    pub local_addr: SocketAddr,
    /// Server start (for `/v1/info`).
    pub started: Instant,
}

impl TrinoState {
    /// State for `config`, serving on `local_addr`; starts the reaper of
    /// abandoned queries.
    pub fn new(
        governor: Arc<Governor>,
        auth: Arc<dyn Authenticator>,
        config: &TrinoConfig,
        local_addr: SocketAddr,
    ) -> Self {
        let queries = Queries::new(config.limits());
        queries.spawn_reaper();
        if config.external_url.is_none() && !local_addr.ip().is_loopback() {
            tracing::warn!(
                http_addr = %local_addr,
                "trino.external_url is not set: nextUri is built as http:// + the request's Host; \
                 behind a TLS proxy set it, or clients are sent back to plain http"
            );
        }
        Self {
            governor,
            auth,
            queries,
            external_url: config
                .external_url
                .as_ref()
                .map(|u| u.trim_end_matches('/').to_string()),
            local_addr,
            started: Instant::now(),
        }
    }
}

/// The Trino protocol routes.
pub fn router(state: TrinoState) -> Router {
    Router::new()
        .route("/v1/statement", post(submit::post_statement))
        .route(
            "/v1/statement/executing/{id}/{slug}/{token}",
            get(poll::get_page).delete(poll::delete_page),
        )
        .route("/v1/info", get(info::info))
        .route("/v1/query", get(info::list_queries))
        .route("/v1/query/{id}", get(info::query_info))
        .with_state(state)
}
