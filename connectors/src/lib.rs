//! sluice-connectors: the systems sluice reads from.
//!
//! - [`iceberg`]: Apache Iceberg catalogs (SQL catalog on SQLite/Postgres,
//!   REST catalog) on the local filesystem, served to DataFusion through
//!   `iceberg-datafusion`;
//! - [`demo`]: the deterministic demo warehouse behind `sluice demo`.
//!
//! Connectors know nothing about policy: the planner wraps every table they
//! return in the token's secure view.

#![forbid(unsafe_code)]

pub mod demo;
pub mod error;
pub mod iceberg;

pub use demo::{DEMO_CATALOG, DemoWarehouse, build_demo_warehouse, demo_catalog_config};
pub use error::{Error, Result};
pub use iceberg::{IcebergCatalogConfig, IcebergCatalogKind, S3Config, load_iceberg_catalog};
