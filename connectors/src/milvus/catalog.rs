//! The catalog of one Milvus database: the state its tables share (the
//! configuration, the client, the collection list, the status `/ready`
//! reports), the collection list read at start and refreshed in the
//! background, and the DataFusion catalog and schema over it.

use std::any::Any;
use std::collections::BTreeMap;
use std::fmt;
use std::sync::{Arc, RwLock};

use async_trait::async_trait;
use datafusion::catalog::{CatalogProvider, SchemaProvider, TableProvider};
use datafusion::common::Result as DFResult;
use datafusion::error::DataFusionError;
use milvus::v2::prelude::{
    ClientV2, DescribeCollectionRequest, DescribeIndexRequest, ListCollectionsRequest,
};
use sluice_planner::connector::NativeVectorSearch;

use super::config::MilvusConfig;
use super::table::{MilvusTable, MilvusTableHandle};
use super::types::metric_of;

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

/// What the catalog, its schema and its tables share.
pub(super) struct Shared {
    pub(super) cfg: MilvusConfig,
    pub(super) client: tokio::sync::Mutex<Option<ClientV2>>,
    pub(super) tables: RwLock<BTreeMap<String, Arc<MilvusTable>>>,
    pub(super) status: RwLock<CatalogStatus>,
}

/// A Milvus database as a DataFusion catalog.
#[derive(Clone)]
pub struct MilvusCatalog {
    pub(super) shared: Arc<Shared>,
}

impl fmt::Debug for MilvusCatalog {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MilvusCatalog")
            .field("config", &self.shared.cfg)
            .finish()
    }
}

impl Shared {
    /// The state of a catalog not connected yet.
    pub(super) fn new(cfg: MilvusConfig) -> Self {
        Self {
            cfg,
            client: tokio::sync::Mutex::new(None),
            tables: RwLock::new(BTreeMap::new()),
            status: RwLock::new(CatalogStatus {
                ready: false,
                error: Some("not connected yet".to_string()),
                tables: 0,
            }),
        }
    }

    /// Re-reads the collection list and schemas.
    async fn refresh(self: &Arc<Self>) -> DFResult<()> {
        let db = self.cfg.database.clone();
        let names = self
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
            match MilvusTable::from_description(Arc::downgrade(self), &name, desc, metrics) {
                Some(t) => {
                    tables.insert(name, Arc::new(t));
                }
                None => tracing::warn!(
                    catalog = %self.cfg.name, collection = %name,
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

    pub(super) async fn refresh_recording(self: &Arc<Self>) -> DFResult<()> {
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
    pub(super) fn spawn_refresh(self: &Arc<Self>) {
        let weak = Arc::downgrade(self);
        let every = self.cfg.refresh_interval;
        tokio::spawn(async move {
            loop {
                tokio::time::sleep(every).await;
                let Some(shared) = weak.upgrade() else { break };
                let was_ready = shared.status.read().expect("milvus status lock").ready;
                match shared.refresh_recording().await {
                    Ok(()) if !was_ready => {
                        tracing::info!(catalog = %shared.cfg.name, "milvus catalog available")
                    }
                    Err(e) if was_ready => {
                        tracing::warn!(catalog = %shared.cfg.name, error = %e, "milvus catalog unavailable")
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
        self.shared
            .status
            .read()
            .expect("milvus status lock")
            .clone()
    }

    /// Re-reads the collection list now.
    pub async fn refresh(&self) -> DFResult<()> {
        self.shared.refresh_recording().await
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
        vec![self.shared.cfg.database.clone()]
    }

    fn schema(&self, name: &str) -> Option<Arc<dyn SchemaProvider>> {
        (name == self.shared.cfg.database).then(|| {
            Arc::new(MilvusSchema {
                shared: Arc::clone(&self.shared),
            }) as Arc<dyn SchemaProvider>
        })
    }
}

struct MilvusSchema {
    shared: Arc<Shared>,
}

impl fmt::Debug for MilvusSchema {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "MilvusSchema({})", self.shared.cfg.name)
    }
}

#[async_trait]
impl SchemaProvider for MilvusSchema {
    fn as_any(&self) -> &dyn Any {
        self
    }

    fn table_names(&self) -> Vec<String> {
        self.shared
            .tables
            .read()
            .expect("milvus tables lock")
            .keys()
            .cloned()
            .collect()
    }

    async fn table(&self, name: &str) -> DFResult<Option<Arc<dyn TableProvider>>> {
        let found = self
            .shared
            .tables
            .read()
            .expect("milvus tables lock")
            .get(name)
            .cloned();
        Ok(found.map(|t| Arc::new(MilvusTableHandle(t)) as Arc<dyn TableProvider>))
    }

    fn table_exist(&self, name: &str) -> bool {
        self.shared
            .tables
            .read()
            .expect("milvus tables lock")
            .contains_key(name)
    }
}
