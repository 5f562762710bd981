//! sluice: a token-scoped SQL gateway (DESIGN.md).
//!
//! This crate is the `sluice` binary's library half: everything the binary
//! does is reachable from here so integration tests can drive it.
//!
//! Modules:
//! - [`config`]: the TOML file + `SLUICE__SECTION__KEY` environment overrides;
//! - [`store`]: the token store (SQLite embedded default, Postgres in production);
//! - [`token`]: the token document accepted by the admin API and the CLI;
//! - [`admin`]: token administration shared by the CLI and the HTTP API;
//! - [`auth`]: the [`sluice_planner::Authenticator`] backed by the store;
//! - [`catalogs`]: turns `[catalogs.*]` into a [`sluice_planner::Governor`];
//! - [`http`]: the admin HTTP API (`/v1/tokens`, `/v1/search`, `/v1/exports`, `/health`, `/ready`);
//! - [`exports`]: export jobs (queue, runners, janitor);
//! - [`federation`]: share profiles and peers mounted as catalogs;
//! - [`seal`]: AES-256-GCM sealing of peers' secrets at rest;
//! - [`certs`]: `sluice certs create` (rcgen CA, server and client certificates);
//! - [`metrics`]: the Prometheus recorder behind `/metrics`;
//! - [`serve`]: wiring of Flight SQL + HTTP with graceful shutdown;
//! - [`cli`]: the command line (`init`, `serve`, `token`, `demo`, `export`);
//! - [`demo`]: the one-command demo (warehouse, tokens, snippets).

#![forbid(unsafe_code)]

pub mod admin;
pub mod audit;
pub mod auth;
pub mod catalogs;
pub mod certs;
pub mod cli;
pub mod config;
pub mod demo;
pub mod error;
pub mod export_cli;
pub mod exports;
pub mod federation;
pub mod http;
pub mod limits;
pub mod logging;
pub mod metrics;
pub mod seal;
pub mod serve;
pub mod store;
pub mod telemetry;
pub mod token;
pub mod trino;

pub use error::{Error, Result};
