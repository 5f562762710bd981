//! Table metadata kept between queries, so a query does not pay a catalog
//! round trip, the metadata JSON and the manifests every time.
//!
//! A table's state (iceberg's `Table`, which also caches the manifest
//! lists and manifests it has read, and its Arrow schema) is served as is
//! until it is `refresh_interval` old; the next query then asks the catalog
//! for the table again (while it does, other queries keep the cached
//! state). The same metadata (location, snapshot, schema, last update)
//! keeps the state and its manifest cache; new metadata replaces it. A
//! query holds the state it started with, so one statement reads one
//! snapshot with one schema.
//!
//! When the catalog fails or does not answer within [`LOAD_TIMEOUT`], the
//! last state is served for at most [`MAX_STALE`] after the last answer;
//! after that the table's queries fail until the catalog answers again. A
//! table the catalog no longer has is not found, also during a later
//! outage.

use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use datafusion::arrow::datatypes::SchemaRef;
use datafusion::common::{DataFusionError, Result};
use iceberg::arrow::schema_to_arrow_schema;

use super::columns::with_view_types;
use iceberg::table::Table;
use iceberg::{Catalog, ErrorKind, TableIdent};

/// How long a query waits for the catalog to load a table's metadata.
pub(super) const LOAD_TIMEOUT: Duration = Duration::from_secs(10);

/// How long after the catalog's last answer the cached metadata may still
/// be served while the catalog fails.
pub(super) const MAX_STALE: Duration = Duration::from_secs(15 * 60);

/// One loaded version of a table.
pub(super) struct TableState {
    pub(super) table: Table,
    /// The current schema in Arrow form (field ids in the fields'
    /// `PARQUET:field_id` metadata; top-level strings and binaries as
    /// views, see [`with_view_types`]).
    pub(super) schema: SchemaRef,
}

/// The table's `FileIO` holds the catalog's properties (credentials of a
/// REST catalog): never printed.
impl fmt::Debug for TableState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TableState")
            .field("table", &self.table.identifier())
            .field("snapshot", &self.table.metadata().current_snapshot_id())
            .finish_non_exhaustive()
    }
}

impl TableState {
    fn new(table: Table) -> iceberg::Result<Self> {
        let schema = Arc::new(with_view_types(schema_to_arrow_schema(
            table.metadata().current_schema(),
        )?));
        Ok(Self { table, schema })
    }

    /// Whether `table` is the same metadata as this state's. The metadata
    /// location alone is not enough: a REST catalog may omit it.
    fn same_as(&self, table: &Table) -> bool {
        let (a, b) = (self.table.metadata(), table.metadata());
        self.table.metadata_location() == table.metadata_location()
            && a.current_snapshot_id() == b.current_snapshot_id()
            && a.current_schema_id() == b.current_schema_id()
            && a.last_updated_ms() == b.last_updated_ms()
            && a.last_sequence_number() == b.last_sequence_number()
    }
}

/// What is known of a table now.
struct Known {
    /// The state to serve (`None`: the catalog said the table is gone).
    state: Option<Arc<TableState>>,
    /// When the catalog last answered (with the table or "not found").
    answered: Instant,
    /// When the state was last compared with the catalog (`None`: expired).
    checked: Option<Instant>,
}

/// A table's state and when it was last compared with the catalog.
pub(super) struct CachedTable {
    catalog: Arc<dyn Catalog>,
    ident: TableIdent,
    refresh: Duration,
    known: RwLock<Known>,
    /// Bumped by [`CachedTable::expire`]: a refresh that started before
    /// stores its result as already expired.
    generation: AtomicU64,
    /// One refresh at a time; queries that find it taken serve the cached
    /// state instead of waiting.
    loading: tokio::sync::Mutex<()>,
}

impl fmt::Debug for CachedTable {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
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
        let now = Instant::now();
        Ok(Self {
            catalog,
            ident,
            refresh,
            known: RwLock::new(Known {
                state: Some(Arc::new(state)),
                answered: now,
                checked: Some(now),
            }),
            generation: AtomicU64::new(0),
            loading: tokio::sync::Mutex::new(()),
        })
    }

    /// The state a query should read: the cached one while it is fresh (or
    /// while another query refreshes it), otherwise what the catalog says
    /// now. `None`: the table is gone. An error: the catalog has failed for
    /// longer than [`MAX_STALE`].
    pub(super) async fn current(&self) -> Result<Option<Arc<TableState>>> {
        if let Some(served) = self.fresh() {
            return served;
        }
        let Ok(_one_at_a_time) = self.loading.try_lock() else {
            return self.served();
        };
        if let Some(served) = self.fresh() {
            return served;
        }
        let generation = self.generation.load(Ordering::SeqCst);
        let loaded = tokio::time::timeout(LOAD_TIMEOUT, self.catalog.load_table(&self.ident)).await;
        let now = Instant::now();
        let next = {
            let known = self.read();
            match loaded {
                Ok(Ok(table)) => match known.state.as_ref() {
                    Some(state) if state.same_as(&table) => Some(Some(Arc::clone(state))),
                    _ => match TableState::new(table) {
                        Ok(state) => {
                            tracing::debug!(table = %self.ident, "iceberg table metadata changed");
                            Some(Some(Arc::new(state)))
                        }
                        Err(e) => {
                            tracing::warn!(table = %self.ident, error = %e, "iceberg table schema unreadable");
                            None
                        }
                    },
                },
                Ok(Err(e)) if e.kind() == ErrorKind::TableNotFound => Some(None),
                Ok(Err(e)) => {
                    tracing::warn!(table = %self.ident, error = %e, "iceberg catalog failed to load a table");
                    None
                }
                Err(_) => {
                    tracing::warn!(table = %self.ident, timeout = ?LOAD_TIMEOUT, "iceberg catalog did not answer in time");
                    None
                }
            }
        };
        let expired = self.generation.load(Ordering::SeqCst) != generation;
        let mut known = self.known.write().unwrap_or_else(|e| e.into_inner());
        // A failure keeps the state; it is retried at the next interval,
        // not by every query.
        if let Some(state) = next {
            known.state = state;
            known.answered = now;
        }
        known.checked = (!expired).then_some(now);
        drop(known);
        self.served()
    }

    /// Makes the next query compare with the catalog.
    pub(super) fn expire(&self) {
        self.generation.fetch_add(1, Ordering::SeqCst);
        self.known
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .checked = None;
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, Known> {
        self.known.read().unwrap_or_else(|e| e.into_inner())
    }

    /// The served state when it was compared with the catalog within the
    /// refresh interval.
    fn fresh(&self) -> Option<Result<Option<Arc<TableState>>>> {
        let fresh = self
            .read()
            .checked
            .is_some_and(|at| at.elapsed() < self.refresh);
        fresh.then(|| self.served())
    }

    /// The cached state, unless the catalog has failed to answer for too
    /// long (a long `refresh_interval` alone never makes a state stale:
    /// the limit counts only once a comparison is due).
    fn served(&self) -> Result<Option<Arc<TableState>>> {
        let known = self.read();
        let due = known.answered.elapsed() > self.refresh;
        if due && known.answered.elapsed() > MAX_STALE.max(self.refresh) {
            return Err(DataFusionError::Execution(format!(
                "the Iceberg catalog has not answered for table {} in {} minutes",
                self.ident,
                MAX_STALE.as_secs() / 60
            )));
        }
        Ok(known.state.clone())
    }
}
