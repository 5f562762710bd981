//! sluice-planner: the one place where policy is applied.
//!
//! A [`TokenScope`] (what a token may see) and the gateway's catalogs go in;
//! a scoped DataFusion `SessionContext` comes out, in which every table is the
//! token's *secure view* (DESIGN §4). Every frontend (Flight SQL, Trino HTTP,
//! exports, vector search, federation) plans through [`Governor::plan`] or
//! [`Governor::plan_with`] (with its [`SqlDialect`]).
//!
//! Modules:
//! - [`policy`]: the token scope / grant / mask model (serde form = API
//!   contract); [`token`]: the token document an admin sends, the record
//!   the store keeps, and token secrets;
//! - [`guard`]: the read-only SQL guard;
//! - [`rules`]: parsing and binding of row rules (`token.<attr>`), and the
//!   shared rule compiler;
//! - [`masks`]: mask UDFs;
//! - [`secure_view`]: the secure-view table provider and its execution barrier;
//! - [`scoped_catalog`]: catalogs that list only granted tables;
//! - [`governor`]: catalogs, session building, planning, validation,
//!   governed plans and the row-limited stream;
//! - [`dialect`]: the hook a frontend's SQL dialect plugs into;
//! - [`error`]: errors with kinds, and the one classifier of DataFusion
//!   errors;
//! - [`auth`]: the authenticator interface and the one credential parser
//!   every frontend uses; [`limits`]: the request rate limits it applies;
//! - [`audit`]: what a request did (audit facts) and what policy did to a
//!   result (receipts);
//! - [`connector`]: what the planner asks of connectors beyond DataFusion;
//! - [`coop`]: cancellation of CPU-bound plans;
//! - [`vectors`], [`vector_search`]: vector distances and the
//!   `vector_search` table function;
//! - [`secret`], [`units`]: secrets that never reach a log, durations and
//!   byte sizes as written in configuration.

#![forbid(unsafe_code)]

pub mod audit;
pub mod auth;
pub mod connector;
pub mod coop;
pub mod dialect;
pub mod error;
#[doc(hidden)]
pub mod fuzzing;
pub mod governor;
pub mod guard;
pub mod limits;
pub mod masks;
pub mod policy;
pub mod rules;
pub mod scoped_catalog;
pub mod secret;
pub mod secure_view;
pub mod shapes;
pub mod token;
pub mod units;
pub mod vector_search;
pub mod vectors;

pub use audit::{AuditFacts, AuditHandle, Outcome, PlanFacts, Receipt};
pub use auth::{AuthFailure, AuthFailureKind, Authenticator, Charge, Schemes};
pub use dialect::{DataFusionDialect, RUNTIME_SCHEMA, SYSTEM_CATALOG, SqlDialect};
pub use error::{Error, ErrorKind, Object, Refusal, Result};
pub use governor::{
    CatalogEntry, GovernedPlan, GovernedStream, Governor, SessionOptions, TRUNCATED_METADATA_KEY,
    wire_schema, wire_type,
};
pub use policy::{Columns, DEFAULT_ROW_LIMIT, Grant, Mask, TableClass, TokenScope, TokenType};
pub use secret::Secret;

/// The sluice version (what `version()` answers in Trino sessions).
pub const VERSION: &str = env!("CARGO_PKG_VERSION");
