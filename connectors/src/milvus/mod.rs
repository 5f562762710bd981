//! Milvus collections served to DataFusion (`milvus-sdk-rust`, gRPC).
//!
//! One catalog per configured Milvus database: schema = the database name,
//! tables = its collections. Scalar fields map to Arrow types, a
//! `FloatVector(dim)` field to `FixedSizeList(Float32, dim)`; JSON fields
//! are text; other field kinds (binary/sparse/half vectors, arrays,
//! the dynamic field) are not exposed.
//!
//! Scans run Milvus `query` calls that carry the projection and a boolean
//! expression translated from the filters (comparisons, `IN`, `AND`/`OR`/
//! `NOT`, `LIKE 'prefix%'`); they page through the collection by primary
//! key (`pk > last` with a page limit) so a large collection is never held
//! whole. Filters that do not translate stay in DataFusion. Vector search
//! uses Milvus' native ANN `search` ([`NativeVectorSearch`]).
//!
//! Availability: the collection list is read at start and refreshed in the
//! background; every call has a deadline. An unreachable or slow server
//! gives [`ConnectorUnavailable`] (a clear error naming the catalog) and
//! never blocks other catalogs; [`MilvusCatalog::status`] feeds `/ready`.
//!
//! Files, each using only the ones listed before it: `config` (the
//! `[catalogs.<name>]` section), `types` (Milvus data in Arrow), `client`
//! (the configuration and connection a catalog and its tables share, every
//! call under its deadline), `table` (a collection's description), `expr`
//! (filters as Milvus expressions), `pager` (the keyset pager over
//! `query`), `search` (one native vector search call), `exec` (the plan
//! leaf), `provider` (a collection as a `TableProvider` and its
//! `NativeVectorSearch`), `catalog` (loading the catalog, the collection
//! list and its background refresh, the catalog and schema providers).
//!
//! [`NativeVectorSearch`]: sluice_planner::connector::NativeVectorSearch
//! [`ConnectorUnavailable`]: sluice_planner::connector::ConnectorUnavailable

mod catalog;
mod client;
mod config;
mod exec;
mod expr;
mod pager;
mod provider;
mod search;
mod table;
mod types;

pub use catalog::{CatalogStatus, MilvusCatalog, load_milvus_catalog};
pub use config::MilvusConfig;
pub use exec::MilvusExec;
pub use provider::MilvusTableHandle;
pub use table::MilvusTable;
