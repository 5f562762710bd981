//! Table metadata kept between queries, so a query does not pay a catalog
//! round trip, the metadata JSON and the manifests every time.
//!
//! A table's state (iceberg's `Table`, which also caches the manifest
//! lists and manifests it has read, and its Arrow schema) is served as is
//! until it is `refresh_interval` old; the next query then asks the catalog
//! for the table's metadata location. An unchanged location keeps the
//! state (and its manifest cache); a new one (a new snapshot, a schema
//! change) replaces it. A query holds the state it started with, so one
//! statement always reads one snapshot with one schema.

use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use datafusion::arrow::datatypes::SchemaRef;
use iceberg::arrow::schema_to_arrow_schema;
use iceberg::table::Table;
use iceberg::{Catalog, ErrorKind, TableIdent};

/// One loaded version of a table.
#[derive(Debug)]
pub(super) struct TableState {
    pub(super) table: Table,
    /// The current schema in Arrow form (field ids in the fields'
    /// `PARQUET:field_id` metadata).
    pub(super) schema: SchemaRef,
}

impl TableState {
    fn new(table: Table) -> iceberg::Result<Self> {
        let schema = Arc::new(schema_to_arrow_schema(table.metadata().current_schema())?);
        Ok(Self { table, schema })
    }

    fn location(&self) -> Option<&str> {
        self.table.metadata_location()
    }
}

/// A table's state and when it was last compared with the catalog.
pub(super) struct CachedTable {
    catalog: Arc<dyn Catalog>,
    ident: TableIdent,
    refresh: Duration,
    /// The state and when it was last compared (`None`: expired).
    state: RwLock<(Arc<TableState>, Option<Instant>)>,
    /// One refresh at a time: concurrent queries of a stale table wait for
    /// it instead of all asking the catalog.
    loading: tokio::sync::Mutex<()>,
}

impl std::fmt::Debug for CachedTable {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CachedTable")
            .field("ident", &self.ident)
            .field("refresh", &self.refresh)
            .finish_non_exhaustive()
    }
}

impl CachedTable {
    /// Loads `ident` from `catalog`.
    pub(super) async fn load(
        catalog: Arc<dyn Catalog>,
        ident: TableIdent,
        refresh: Duration,
    ) -> iceberg::Result<Self> {
        let state = TableState::new(catalog.load_table(&ident).await?)?;
        Ok(Self {
            catalog,
            ident,
            refresh,
            state: RwLock::new((Arc::new(state), Some(Instant::now()))),
            loading: tokio::sync::Mutex::new(()),
        })
    }

    /// The state a query should read: the cached one while it is fresh,
    /// otherwise what the catalog says now. `None`: the table was dropped.
    /// When the catalog cannot answer, the last state is served (and the
    /// failure logged): a catalog outage should not stop reads of data
    /// that is still there; `/ready` reports the catalog.
    pub(super) async fn current(&self) -> Option<Arc<TableState>> {
        if let Some(state) = self.fresh() {
            return Some(state);
        }
        let _one_at_a_time = self.loading.lock().await;
        if let Some(state) = self.fresh() {
            return Some(state);
        }
        let cached = self.read().0;
        let state = match self.catalog.load_table(&self.ident).await {
            Ok(table) if table.metadata_location() == cached.location() => cached,
            Ok(table) => match TableState::new(table) {
                Ok(state) => {
                    tracing::debug!(table = %self.ident, "iceberg table metadata changed");
                    Arc::new(state)
                }
                Err(e) => {
                    tracing::warn!(table = %self.ident, error = %e, "iceberg table schema unreadable; serving the last one");
                    cached
                }
            },
            Err(e) if e.kind() == ErrorKind::TableNotFound => return None,
            Err(e) => {
                tracing::warn!(table = %self.ident, error = %e, "iceberg catalog did not answer; serving the last metadata");
                cached
            }
        };
        *self.state.write().unwrap_or_else(|e| e.into_inner()) =
            (Arc::clone(&state), Some(Instant::now()));
        Some(state)
    }

    /// Makes the next query compare with the catalog.
    pub(super) fn expire(&self) {
        self.state.write().unwrap_or_else(|e| e.into_inner()).1 = None;
    }

    fn read(&self) -> (Arc<TableState>, Option<Instant>) {
        let state = self.state.read().unwrap_or_else(|e| e.into_inner());
        (Arc::clone(&state.0), state.1)
    }

    fn fresh(&self) -> Option<Arc<TableState>> {
        let (state, checked) = self.read();
        checked
            .is_some_and(|at| at.elapsed() < self.refresh)
            .then_some(state)
    }
}
