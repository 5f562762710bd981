//! An Iceberg catalog served to DataFusion: its namespaces and tables as
//! listed when the catalog was loaded, each table's metadata cached
//! ([`CachedTable`]), and the handle `/ready` and the refresh endpoint use.

use std::any::Any;
use std::collections::BTreeMap;
use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use datafusion::catalog::{CatalogProvider, SchemaProvider};
use datafusion::common::Result;
use datafusion::datasource::TableProvider;
use futures::future::try_join_all;
use iceberg::{Catalog, NamespaceIdent};

use super::cache::CachedTable;
use super::table::IcebergTable;

/// The namespaces of one Iceberg catalog.
#[derive(Debug)]
pub(super) struct IcebergCatalog {
    namespaces: BTreeMap<String, Arc<IcebergNamespace>>,
}

impl IcebergCatalog {
    /// Lists `catalog`'s namespaces and tables and loads every table's
    /// metadata (a table that cannot be loaded fails the start: better
    /// than a table that is silently missing).
    pub(super) async fn load(
        catalog: &Arc<dyn Catalog>,
        refresh: Duration,
    ) -> iceberg::Result<Self> {
        let mut namespaces = BTreeMap::new();
        for namespace in catalog.list_namespaces(None).await? {
            let idents = catalog.list_tables(&namespace).await?;
            let tables = try_join_all(idents.into_iter().map(|ident| {
                let catalog = Arc::clone(catalog);
                async move {
                    let name = ident.name().to_string();
                    let table = CachedTable::load(catalog, ident, refresh).await?;
                    Ok::<_, iceberg::Error>((name, Arc::new(table)))
                }
            }))
            .await?;
            namespaces.insert(
                namespace_name(&namespace),
                Arc::new(IcebergNamespace {
                    tables: tables.into_iter().collect(),
                }),
            );
        }
        Ok(Self { namespaces })
    }

    /// Makes every table compare its metadata with the catalog at its next
    /// query.
    pub(super) fn expire(&self) {
        for namespace in self.namespaces.values() {
            for table in namespace.tables.values() {
                table.expire();
            }
        }
    }
}

fn namespace_name(namespace: &NamespaceIdent) -> String {
    namespace.as_ref().join(".")
}

impl CatalogProvider for IcebergCatalog {
    fn as_any(&self) -> &dyn Any {
        self
    }

    fn schema_names(&self) -> Vec<String> {
        self.namespaces.keys().cloned().collect()
    }

    fn schema(&self, name: &str) -> Option<Arc<dyn SchemaProvider>> {
        self.namespaces
            .get(name)
            .map(|n| Arc::clone(n) as Arc<dyn SchemaProvider>)
    }
}

/// The tables of one namespace.
#[derive(Debug)]
struct IcebergNamespace {
    tables: BTreeMap<String, Arc<CachedTable>>,
}

#[async_trait]
impl SchemaProvider for IcebergNamespace {
    fn as_any(&self) -> &dyn Any {
        self
    }

    fn table_names(&self) -> Vec<String> {
        self.tables.keys().cloned().collect()
    }

    /// The table as of now (within the refresh interval), pinned for the
    /// statement that looks it up.
    async fn table(&self, name: &str) -> Result<Option<Arc<dyn TableProvider>>> {
        let Some(cached) = self.tables.get(name) else {
            return Ok(None);
        };
        Ok(cached
            .current()
            .await?
            .map(|state| Arc::new(IcebergTable::new(state)) as Arc<dyn TableProvider>))
    }

    fn table_exist(&self, name: &str) -> bool {
        self.tables.contains_key(name)
    }
}

/// What the gateway keeps of a loaded Iceberg catalog besides its
/// DataFusion provider: readiness and refresh on demand.
#[derive(Clone)]
pub struct IcebergHandle {
    catalog: Arc<dyn Catalog>,
    tables: Arc<IcebergCatalog>,
}

impl fmt::Debug for IcebergHandle {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("IcebergHandle")
    }
}

impl IcebergHandle {
    pub(super) fn new(catalog: Arc<dyn Catalog>, tables: Arc<IcebergCatalog>) -> Self {
        Self { catalog, tables }
    }

    /// Whether the catalog lists its namespaces within `timeout`.
    pub async fn ready(&self, timeout: Duration) -> bool {
        match tokio::time::timeout(timeout, self.catalog.list_namespaces(None)).await {
            Ok(Ok(_)) => true,
            Ok(Err(e)) => {
                tracing::warn!(error = %e, "iceberg catalog readiness check failed");
                false
            }
            Err(_) => false,
        }
    }

    /// Makes the next query of every table read the catalog's current
    /// metadata (new snapshots, schema changes) instead of waiting for the
    /// refresh interval.
    pub fn refresh(&self) {
        self.tables.expire();
    }
}
