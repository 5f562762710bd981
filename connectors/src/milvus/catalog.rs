//! The catalog of one Milvus database: loading it, the collection list
//! read at start and refreshed in the background, the status `/ready`
//! reports, and the DataFusion catalog and schema over the collections.

use std::any::Any;
use std::collections::BTreeMap;
use std::fmt;
use std::sync::{Arc, RwLock};

use async_trait::async_trait;
use datafusion::catalog::{CatalogProvider, SchemaProvider, TableProvider};
use datafusion::common::Result as DFResult;
use datafusion::error::DataFusionError;
use milvus::v2::prelude::{
    DescribeCollectionRequest, DescribeIndexRequest, ListCollectionsRequest,
};
use sluice_planner::connector::NativeVectorSearch;

use super::client::{MILVUS_MAX_LIMIT, Shared};
use super::config::{MilvusConfig, consistency_level};
use super::provider::MilvusTableHandle;
use super::table::{Collections, MilvusTable};
use super::types::metric_of;
use crate::error::{Error, Result};

/// Whether the catalog is reachable, as `/ready` reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CatalogStatus {
    /// The last refresh succeeded.
    pub ready: bool,
    /// Why the last refresh failed.
    pub error: Option<String>,
    /// Collections known.
    pub tables: usize,
}

/// What the catalog and its schema share: the connection, the collections
/// and the status.
struct CatalogState {
    shared: Arc<Shared>,
    tables: Arc<Collections>,
    status: RwLock<CatalogStatus>,
}

/// A Milvus database as a DataFusion catalog.
#[derive(Clone)]
pub struct MilvusCatalog {
    state: Arc<CatalogState>,
}

impl fmt::Debug for MilvusCatalog {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MilvusCatalog")
            .field("config", &self.state.shared.cfg)
            .finish()
    }
}

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
    let state = Arc::new(CatalogState::new(cfg));
    if let Err(e) = state.refresh_recording().await {
        tracing::warn!(catalog = %state.shared.cfg.name, error = %e, "milvus catalog not available at start; retrying in the background");
    }
    state.spawn_refresh();
    Ok(MilvusCatalog { state })
}

impl CatalogState {
    /// The state of a catalog not connected yet.
    fn new(cfg: MilvusConfig) -> Self {
        Self {
            shared: Arc::new(Shared::new(cfg)),
            tables: Arc::new(RwLock::new(BTreeMap::new())),
            status: RwLock::new(CatalogStatus {
                ready: false,
                error: Some("not connected yet".to_string()),
                tables: 0,
            }),
        }
    }

    /// Re-reads the collection list and schemas.
    async fn refresh(self: &Arc<Self>) -> DFResult<()> {
        let db = self.shared.cfg.database.clone();
        let names = self
            .shared
            .call("listing collections", |c| {
                let db = db.clone();
                async move {
                    c.list_collections(
                        ListCollectionsRequest::builder()
                            .database_name(db)
                            .build()?,
                    )
                    .await
                }
            })
            .await?
            .collection_names()
            .to_vec();
        let mut tables = BTreeMap::new();
        for name in names {
            let request = DescribeCollectionRequest::builder()
                .database_name(db.clone())
                .collection_name(name.clone())
                .build()
                .map_err(|e| DataFusionError::External(Box::new(e)))?;
            let desc = self
                .shared
                .call("describing a collection", |c| async move {
                    c.describe_collection(request).await
                })
                .await?;
            let desc = desc.description();
            let mut metrics = BTreeMap::new();
            for vector in desc.get_vector_field_names() {
                let request = DescribeIndexRequest::builder()
                    .database_name(db.clone())
                    .collection_name(name.clone())
                    .field_name(vector.clone())
                    .build()
                    .map_err(|e| DataFusionError::External(Box::new(e)))?;
                // No index: no native search on that field (exact search only).
                if let Ok(index) = self
                    .shared
                    .call("describing an index", |c| async move {
                        c.describe_index(request).await
                    })
                    .await
                    && let Some(metric) = index
                        .indexes()
                        .iter()
                        .find_map(|i| metric_of(i.get_metric_type()))
                {
                    metrics.insert(vector.clone(), metric);
                }
            }
            match MilvusTable::from_description(
                Arc::downgrade(&self.shared),
                Arc::downgrade(&self.tables),
                &name,
                desc,
                metrics,
            ) {
                Some(t) => {
                    tables.insert(name, Arc::new(t));
                }
                None => tracing::warn!(
                    catalog = %self.shared.cfg.name, collection = %name,
                    "collection not exposed: no primary key sluice can page by"
                ),
            }
        }
        let count = tables.len();
        *self.tables.write().expect("milvus tables lock") = tables;
        *self.status.write().expect("milvus status lock") = CatalogStatus {
            ready: true,
            error: None,
            tables: count,
        };
        Ok(())
    }

    async fn refresh_recording(self: &Arc<Self>) -> DFResult<()> {
        let result = self.refresh().await;
        if let Err(e) = &result {
            let mut status = self.status.write().expect("milvus status lock");
            status.ready = false;
            status.error = Some(e.to_string());
        }
        result
    }

    /// Re-reads the collection list every `refresh_interval` while the
    /// catalog lives, logging when it becomes available or unavailable.
    fn spawn_refresh(self: &Arc<Self>) {
        let weak = Arc::downgrade(self);
        let every = self.shared.cfg.refresh_interval;
        tokio::spawn(async move {
            loop {
                tokio::time::sleep(every).await;
                let Some(state) = weak.upgrade() else { break };
                let was_ready = state.status.read().expect("milvus status lock").ready;
                match state.refresh_recording().await {
                    Ok(()) if !was_ready => {
                        tracing::info!(catalog = %state.shared.cfg.name, "milvus catalog available")
                    }
                    Err(e) if was_ready => {
                        tracing::warn!(catalog = %state.shared.cfg.name, error = %e, "milvus catalog unavailable")
                    }
                    _ => {}
                }
            }
        });
    }
}

impl MilvusCatalog {
    /// Reachability as of the last refresh.
    pub fn status(&self) -> CatalogStatus {
        self.state
            .status
            .read()
            .expect("milvus status lock")
            .clone()
    }

    /// Re-reads the collection list now.
    pub async fn refresh(&self) -> DFResult<()> {
        self.state.refresh_recording().await
    }

    /// The native vector search of `table` if it is a Milvus table (the
    /// planner's lookup for this catalog).
    pub fn native_search(table: &Arc<dyn TableProvider>) -> Option<Arc<dyn NativeVectorSearch>> {
        table
            .as_any()
            .downcast_ref::<MilvusTableHandle>()
            .map(|h| Arc::clone(&h.0) as Arc<dyn NativeVectorSearch>)
    }
}

impl CatalogProvider for MilvusCatalog {
    fn as_any(&self) -> &dyn Any {
        self
    }

    fn schema_names(&self) -> Vec<String> {
        vec![self.state.shared.cfg.database.clone()]
    }

    fn schema(&self, name: &str) -> Option<Arc<dyn SchemaProvider>> {
        (name == self.state.shared.cfg.database).then(|| {
            Arc::new(MilvusSchema {
                state: Arc::clone(&self.state),
            }) as Arc<dyn SchemaProvider>
        })
    }
}

struct MilvusSchema {
    state: Arc<CatalogState>,
}

impl fmt::Debug for MilvusSchema {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "MilvusSchema({})", self.state.shared.cfg.name)
    }
}

#[async_trait]
impl SchemaProvider for MilvusSchema {
    fn as_any(&self) -> &dyn Any {
        self
    }

    fn table_names(&self) -> Vec<String> {
        self.state
            .tables
            .read()
            .expect("milvus tables lock")
            .keys()
            .cloned()
            .collect()
    }

    async fn table(&self, name: &str) -> DFResult<Option<Arc<dyn TableProvider>>> {
        let found = self
            .state
            .tables
            .read()
            .expect("milvus tables lock")
            .get(name)
            .cloned();
        Ok(found.map(|t| Arc::new(MilvusTableHandle(t)) as Arc<dyn TableProvider>))
    }

    fn table_exist(&self, name: &str) -> bool {
        self.state
            .tables
            .read()
            .expect("milvus tables lock")
            .contains_key(name)
    }
}
