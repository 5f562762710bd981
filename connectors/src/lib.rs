//! sluice-connectors: the systems sluice reads from.
//!
//! - [`iceberg`]: Apache Iceberg catalogs (SQL catalog on SQLite/Postgres,
//!   REST catalog) on the local filesystem, served to DataFusion through
//!   `iceberg-datafusion`;
//! - [`milvus`]: Milvus collections (scan by query with filter pushdown,
//!   native vector search);
//! - [`demo`]: the deterministic demo warehouse behind `sluice demo`;
//! - [`remote`]: another sluice gateway over Flight SQL (federation);
//! - [`export`]: the export writer (governed results as Parquet on the
//!   local filesystem or S3, streamed, committed atomically).
//!
//! Connectors know nothing about policy: the planner wraps every table they
//! return in the token's secure view, and the export writer is handed an
//! already-governed stream.

#![forbid(unsafe_code)]

pub mod demo;
pub mod error;
pub mod export;
pub mod iceberg;
pub mod milvus;
pub mod remote;

pub use demo::{DEMO_CATALOG, DemoWarehouse, build_demo_warehouse, demo_catalog_config};
pub use error::{Error, Result};
pub use iceberg::{
    IcebergCatalogConfig, IcebergCatalogKind, IcebergProbe, S3Config, load_iceberg_catalog,
    load_iceberg_catalog_with_probe,
};
pub use milvus::{CatalogStatus, MilvusCatalog, MilvusConfig, load_milvus_catalog};
pub use remote::{Peer, PeerCatalog, PeerConfig, PeerState, PeerStatus};
