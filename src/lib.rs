//! sluice: a token-scoped SQL gateway (DESIGN.md).
//!
//! This crate is the `sluice` binary's library half: the wiring of the
//! frontends (`sluice_flight`, `sluice_trino`, the admin API here), the
//! planner and the connectors, plus the jobs and operations around them.
//! Everything the binary does is reachable from here so integration tests
//! can drive it.
//!
//! Modules:
//! - [`config`]: the TOML file + `SLUICE__SECTION__KEY` environment overrides;
//! - [`serve`]: wiring of Flight SQL, Trino and the admin API with graceful
//!   shutdown;
//! - [`cli`], [`export_cli`], [`demo`], [`certs`]: the command line;
//! - [`store`]: the token store (SQLite embedded default, Postgres in production);
//! - [`admin`]: token administration shared by the CLI and the HTTP API;
//! - [`auth`]: the [`sluice_planner::Authenticator`] backed by the store
//!   (with the planner's rate limits);
//! - [`http`]: the admin and data HTTP API (`/v1/tokens`, `/v1/search`,
//!   `/v1/exports`, `/health`, `/ready`, `/metrics`);
//! - [`exports`]: export jobs (queue, runners, janitor);
//! - [`federation`]: share profiles and peers mounted as catalogs;
//!   [`seal`]: AES-256-GCM sealing of peers' secrets at rest;
//! - [`audit`], [`metrics`], [`telemetry`], [`logging`]: what every
//!   request leaves behind.

#![forbid(unsafe_code)]

pub mod admin;
pub mod audit;
pub mod auth;
pub mod certs;
pub mod cli;
pub mod config;
pub mod demo;
pub mod error;
pub mod export_cli;
pub mod exports;
pub mod federation;
pub mod http;
pub mod logging;
pub mod metrics;
pub mod seal;
pub mod serve;
pub mod store;
pub mod telemetry;

pub use error::{Error, Result};
