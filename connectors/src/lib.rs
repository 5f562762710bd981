//! sluice-connectors: the systems sluice reads from, and where it writes
//! exports.
//!
//! - [`config`]: `[catalogs.<name>]`, by `kind`; [`catalogs`]: every
//!   configured catalog loaded into one governor;
//! - [`iceberg`]: Apache Iceberg catalogs (SQL catalog on SQLite/Postgres,
//!   REST catalog) on the local filesystem, served to DataFusion through
//!   `iceberg-datafusion`;
//! - [`milvus`]: Milvus collections (scan by query with filter pushdown,
//!   native vector search);
//! - [`remote`]: another sluice gateway over Flight SQL (federation);
//! - [`export`]: the export writer (governed results as Parquet on the
//!   local filesystem or S3, streamed, committed atomically);
//! - [`demo`]: the deterministic demo warehouse behind `sluice demo`;
//! - [`s3`], [`location`]: S3 settings, and SQLite URLs, warehouse
//!   locations and paths as operators write them.
//!
//! Connectors know nothing about policy: the planner wraps every table they
//! return in the token's secure view, and the export writer is handed an
//! already-governed stream.

#![forbid(unsafe_code)]

pub mod catalogs;
pub mod config;
pub mod demo;
pub mod error;
pub mod export;
pub mod iceberg;
pub mod location;
pub mod milvus;
pub mod remote;
pub mod s3;

pub use catalogs::{Catalogs, load_catalogs};
pub use config::CatalogConfig;
pub use demo::{DEMO_CATALOG, DemoWarehouse, build_demo_warehouse, demo_catalog_config};
pub use error::{Error, Result};
pub use iceberg::{
    DEFAULT_REFRESH_INTERVAL, IcebergCatalogConfig, IcebergCatalogKind, IcebergHandle, Props,
    load_iceberg_catalog, load_iceberg_catalog_with_handle,
};
pub use milvus::{CatalogStatus, MilvusCatalog, MilvusConfig, load_milvus_catalog};
pub use remote::{Peer, PeerCatalog, PeerConfig, PeerState, PeerStatus};
pub use s3::S3Config;
