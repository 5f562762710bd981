//! A peer mounted as a catalog: schemas and tables as the provider's
//! catalog shows them to the share token, and the gate that asks a peer
//! never discovered before a statement names it.

use std::any::Any;
use std::collections::BTreeMap;
use std::sync::Arc;

use arrow::datatypes::SchemaRef;
use async_trait::async_trait;
use datafusion::catalog::{CatalogProvider, SchemaProvider};
use datafusion::common::{Result as DfResult, not_impl_err};
use datafusion::datasource::TableProvider;

use super::peer::Peer;
use super::state::{Failure, PeerState};
use super::table::RemoteTable;

/// A peer mounted as a catalog.
#[derive(Debug, Clone)]
pub struct PeerCatalog {
    peer: Arc<Peer>,
}

impl PeerCatalog {
    /// The catalog of `peer`.
    pub fn new(peer: Arc<Peer>) -> Self {
        Self { peer }
    }

    /// The peer.
    pub fn peer(&self) -> &Arc<Peer> {
        &self.peer
    }
}

#[async_trait]
impl sluice_planner::connector::CatalogGate for PeerCatalog {
    /// A peer whose tables were never discovered is asked now, so a
    /// statement naming it gets the peer's error ("unavailable", "access
    /// revoked") rather than "not found".
    async fn ready(&self) -> DfResult<()> {
        sluice_planner::audit::note_peer(self.peer.name());
        if self.peer.discovered() {
            return Ok(());
        }
        if self.peer.state() == PeerState::Revoked {
            return Err(self.peer.error(Failure::Revoked));
        }
        self.peer.refresh().await
    }
}

impl CatalogProvider for PeerCatalog {
    fn as_any(&self) -> &dyn Any {
        self
    }

    fn schema_names(&self) -> Vec<String> {
        self.peer.snapshot().into_keys().collect()
    }

    fn schema(&self, name: &str) -> Option<Arc<dyn SchemaProvider>> {
        let tables = self.peer.snapshot().remove(name)?;
        Some(Arc::new(PeerSchema {
            peer: Arc::clone(&self.peer),
            schema: name.to_string(),
            tables,
        }))
    }

    fn register_schema(
        &self,
        _name: &str,
        _schema: Arc<dyn SchemaProvider>,
    ) -> DfResult<Option<Arc<dyn SchemaProvider>>> {
        not_impl_err!("sluice is read-only: schemas cannot be created")
    }
}

#[derive(Debug)]
struct PeerSchema {
    peer: Arc<Peer>,
    schema: String,
    tables: BTreeMap<String, SchemaRef>,
}

#[async_trait]
impl SchemaProvider for PeerSchema {
    fn as_any(&self) -> &dyn Any {
        self
    }

    fn table_names(&self) -> Vec<String> {
        self.tables.keys().cloned().collect()
    }

    async fn table(&self, name: &str) -> DfResult<Option<Arc<dyn TableProvider>>> {
        Ok(self.tables.get(name).map(|schema| {
            Arc::new(RemoteTable {
                peer: Arc::clone(&self.peer),
                remote: [
                    self.peer.config.remote_catalog.clone(),
                    self.schema.clone(),
                    name.to_string(),
                ],
                schema: Arc::clone(schema),
            }) as Arc<dyn TableProvider>
        }))
    }

    fn table_exist(&self, name: &str) -> bool {
        self.tables.contains_key(name)
    }
}
