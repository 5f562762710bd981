//! sluice-planner: the one place where policy is applied.
//!
//! A [`TokenScope`] (what a token may see) and the gateway's catalogs go in;
//! a scoped DataFusion `SessionContext` comes out, in which every table is the
//! token's *secure view* (DESIGN §4). Every frontend (Flight SQL, Trino HTTP,
//! exports, vector search, federation) plans through [`Governor::plan`].
//!
//! Modules:
//! - [`policy`]: the token / grant / mask model (serde form = API contract);
//! - [`guard`]: the read-only SQL guard;
//! - [`rules`]: parsing and binding of row rules (`token.<attr>`);
//! - [`masks`]: mask UDFs;
//! - [`secure_view`]: the secure-view table provider and its execution barrier;
//! - [`scoped_catalog`]: catalogs that list only granted tables;
//! - [`governor`]: session building, planning, row-limit enforcement;
//! - [`auth`]: the authenticator interface frontends call;
//! - [`trino`]: the Trino dialect (types, functions, metadata statements);
//! - [`vectors`]: vector distance functions.

#![forbid(unsafe_code)]

pub mod audit;
pub mod auth;
pub mod connector;
pub mod coop;
pub mod error;
pub mod governor;
pub mod guard;
pub mod masks;
pub mod policy;
pub mod rules;
pub mod scoped_catalog;
pub mod secure_view;
pub mod trino;
pub mod vector_search;
pub mod vectors;

pub use audit::{AuditFacts, AuditHandle, Outcome, PlanFacts, Receipt};
pub use auth::{AuthFailure, AuthFailureKind, Authenticator};
pub use error::{Error, Result};
pub use governor::{
    CatalogEntry, Dialect, GovernedPlan, GovernedStream, Governor, SessionOptions,
    TRUNCATED_METADATA_KEY,
};
pub use policy::{Columns, DEFAULT_ROW_LIMIT, Grant, Mask, TableClass, TokenScope, TokenType};

/// The sluice version (what `version()` answers in Trino sessions).
pub const VERSION: &str = env!("CARGO_PKG_VERSION");
