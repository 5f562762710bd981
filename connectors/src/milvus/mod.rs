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
//! Files: `config` (the `[catalogs.<name>]` section), `catalog` (the state
//! the tables share, the collection list and its background refresh, the
//! catalog and schema providers), `client` (the connection, every call
//! under its deadline), `table` (a collection as a `TableProvider`), `expr`
//! (filters as Milvus expressions), `types` (Milvus data in Arrow), `exec`
//! (the plan leaf), `pager` (the keyset pager over `query`), `search`
//! (native vector search).
//!
//! [`NativeVectorSearch`]: sluice_planner::connector::NativeVectorSearch
//! [`ConnectorUnavailable`]: sluice_planner::connector::ConnectorUnavailable

mod catalog;
mod client;
mod config;
mod exec;
mod expr;
mod pager;
mod search;
mod table;
mod types;

use std::sync::Arc;

pub use catalog::{CatalogStatus, MilvusCatalog};
pub use config::MilvusConfig;
pub use exec::MilvusExec;
pub use table::{MilvusTable, MilvusTableHandle};

use catalog::Shared;
use config::consistency_level;

use crate::error::{Error, Result};

/// Largest page / top-k Milvus accepts.
const MILVUS_MAX_LIMIT: usize = 16_384;

/// Connects to Milvus and serves its collections. The gateway starts even
/// when Milvus is down: the catalog is then empty, reports not ready and
/// keeps retrying every `refresh_interval`.
pub async fn load_milvus_catalog(cfg: MilvusConfig) -> Result<MilvusCatalog> {
    if cfg.page_size == 0 || cfg.page_size > MILVUS_MAX_LIMIT {
        return Err(Error::Config {
            catalog: cfg.name.clone(),
            message: format!("page_size must be between 1 and {MILVUS_MAX_LIMIT}"),
        });
    }
    if let Some(c) = &cfg.consistency
        && consistency_level(c).is_none()
    {
        return Err(Error::Config {
            catalog: cfg.name.clone(),
            message: format!(
                "consistency must be strong, session, bounded or eventually, not {c:?}"
            ),
        });
    }
    let shared = Arc::new(Shared::new(cfg));
    if let Err(e) = shared.refresh_recording().await {
        tracing::warn!(catalog = %shared.cfg.name, error = %e, "milvus catalog not available at start; retrying in the background");
    }
    shared.spawn_refresh();
    Ok(MilvusCatalog { shared })
}
