//! Shared fixtures of sluice's tests, in one place: the planner, Flight,
//! Trino and binary tests build their catalogs, tokens and authenticators
//! from here instead of copying them.
//!
//! - [`catalog`]: in-memory catalogs, and the governed test catalog
//!   `lake` (`sales.orders`, `sales.customers`, `hr.salaries`) the `.slt`
//!   files run against;
//! - [`tokens`]: token scopes from JSON, and the named test tokens;
//! - [`auth`]: an authenticator over a fixed table of secrets;
//! - [`iceberg`]: the demo warehouse (real Iceberg tables) behind a
//!   governor;
//! - [`sales`]: the small catalog and two tokens of the Flight SQL tests;
//! - [`batches`]: reading results back in assertions;
//! - [`slt`]: the `.slt` runner.

#![forbid(unsafe_code)]

pub mod auth;
pub mod batches;
pub mod catalog;
pub mod fuzz;
pub mod hostile;
pub mod iceberg;
pub mod sales;
pub mod slt;
pub mod tokens;

pub use auth::StaticAuthenticator;
pub use catalog::{MASK_KEY, accounts_with_a_text_tenant, governor, mem_table, raw_catalog};
pub use tokens::{scope, token};
