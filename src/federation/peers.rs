//! The receiver side, serving: every stored peer mounted as a catalog named
//! after it, kept in step with the store (`sync_interval`: what `sluice
//! peer` or another replica changed), its tables rediscovered
//! (`refresh_interval`), and a provider's refusal of the share token
//! recorded as a revocation.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use chrono::Utc;
use sluice_connectors::remote::{OnRevoked, Peer, PeerCatalog, PeerConfig, PeerState, PeerStatus};
use sluice_planner::{CatalogEntry, Governor, Secret};
use tokio::sync::watch;

use super::config::FederationConfig;
use super::seal_binding::{SEAL_CLIENT_KEY, SEAL_TOKEN, row_binding};
use crate::error::{Error, Result};
use crate::seal::SealKey;
use crate::store::Store;
use crate::store::federation::ExternalTokenRow;

/// The peers mounted in this gateway.
#[derive(Debug, Clone)]
pub struct Peers {
    inner: Arc<PeersInner>,
}

#[derive(Debug)]
struct PeersInner {
    store: Store,
    key: SealKey,
    config: FederationConfig,
    governor: Arc<Governor>,
    /// Configured catalog names (peers cannot take them).
    local: Vec<String>,
    /// name → (row id, peer)
    mounted: Mutex<BTreeMap<String, (String, Arc<Peer>)>>,
}

impl Peers {
    /// No peer mounted yet.
    pub fn new(
        store: Store,
        key: SealKey,
        config: FederationConfig,
        governor: Arc<Governor>,
        local: Vec<String>,
    ) -> Self {
        Self {
            inner: Arc::new(PeersInner {
                store,
                key,
                config,
                governor,
                local,
                mounted: Mutex::new(BTreeMap::new()),
            }),
        }
    }

    /// The sealing key.
    pub fn key(&self) -> &SealKey {
        &self.inner.key
    }

    /// Configured catalog names.
    pub fn local_catalogs(&self) -> &[String] {
        &self.inner.local
    }

    fn mounted(&self) -> std::sync::MutexGuard<'_, BTreeMap<String, (String, Arc<Peer>)>> {
        self.inner.mounted.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The state of every mounted peer, for `/ready`.
    pub fn statuses(&self) -> BTreeMap<String, PeerStatus> {
        self.mounted()
            .iter()
            .map(|(n, (_, p))| (n.clone(), p.status()))
            .collect()
    }

    /// The live state of a mounted peer.
    pub fn state(&self, name: &str) -> Option<&'static str> {
        self.mounted().get(name).map(|(_, p)| p.state().as_str())
    }

    fn peer_config(&self, row: &ExternalTokenRow) -> Result<PeerConfig> {
        let key = &self.inner.key;
        let binding = row_binding(row);
        let secret = String::from_utf8(key.open(&row.sealed_token, &binding, SEAL_TOKEN)?)
            .map(Secret::new)
            .map_err(|_| Error::Refused(format!("peer {}: sealed token is not text", row.id)))?;
        let client_identity = match (&row.client_cert, &row.sealed_client_key) {
            (Some(cert), Some(sealed)) => {
                let k = String::from_utf8(key.open(sealed, &binding, SEAL_CLIENT_KEY)?).map_err(
                    |_| Error::Refused(format!("peer {}: sealed key is not text", row.id)),
                )?;
                Some((cert.clone(), Secret::new(k)))
            }
            _ => None,
        };
        let c = &self.inner.config;
        Ok(PeerConfig {
            name: row.owner_name.clone(),
            endpoint: row.provider_base_url.clone(),
            secret,
            ca_pem: row.ca_cert.clone(),
            client_identity,
            remote_catalog: row.remote_catalog.clone(),
            connect_timeout: c.connect_timeout,
            request_timeout: c.request_timeout,
            failure_threshold: c.failure_threshold,
            cooldown: c.cooldown,
        })
    }

    fn on_revoked(&self) -> OnRevoked {
        let store = self.inner.store.clone();
        Arc::new(move |name: &str| {
            let store = store.clone();
            let name = name.to_string();
            tracing::warn!(peer = %name, "the provider refused the share token: peer access revoked");
            if let Ok(rt) = tokio::runtime::Handle::try_current() {
                rt.spawn(async move {
                    if let Err(e) = store.mark_external_token_revoked(&name, Utc::now()).await {
                        tracing::error!(peer = %name, error = %e, "cannot record the revocation");
                    }
                });
            }
        })
    }

    /// Brings the mounted peers in step with the store; returns the peers
    /// mounted now (to discover their tables).
    pub async fn sync(&self) -> Result<Vec<Arc<Peer>>> {
        let rows = self.inner.store.list_external_tokens().await?;
        let mut fresh = Vec::new();
        let wanted: HashMap<&str, &ExternalTokenRow> =
            rows.iter().map(|r| (r.owner_name.as_str(), r)).collect();
        let mut mounted = self.mounted();
        let gone: Vec<String> = mounted
            .iter()
            .filter(|(name, (id, _))| wanted.get(name.as_str()).is_none_or(|r| &r.id != id))
            .map(|(name, _)| name.clone())
            .collect();
        for name in gone {
            mounted.remove(&name);
            self.inner.governor.unmount(&name);
            tracing::info!(peer = %name, "peer unmounted");
        }
        for row in &rows {
            if let Some((_, peer)) = mounted.get(&row.owner_name) {
                if row.revoked_at.is_some() {
                    peer.mark_revoked();
                }
                continue;
            }
            if self.inner.local.contains(&row.owner_name) {
                tracing::warn!(peer = %row.owner_name, "peer not mounted: a configured catalog has its name");
                continue;
            }
            let peer = match self
                .peer_config(row)
                .and_then(|c| Peer::new(c, Some(self.on_revoked())).map_err(Error::Refused))
            {
                Ok(p) => p,
                Err(e) => {
                    tracing::error!(peer = %row.owner_name, error = %e, "peer not mounted");
                    continue;
                }
            };
            if row.revoked_at.is_some() {
                peer.mark_revoked();
            } else {
                fresh.push(Arc::clone(&peer));
            }
            let catalog = Arc::new(PeerCatalog::new(Arc::clone(&peer)));
            self.inner.governor.mount_gated(
                row.owner_name.clone(),
                CatalogEntry {
                    provider: Arc::clone(&catalog) as _,
                    tables: HashMap::new(),
                },
                catalog,
            );
            tracing::info!(peer = %row.owner_name, endpoint = %row.provider_base_url, "peer mounted");
            mounted.insert(row.owner_name.clone(), (row.id.clone(), peer));
        }
        Ok(fresh)
    }

    /// Asks the providers of revoked peers again; a peer whose provider
    /// accepts its share token again is restored (in the store too).
    async fn probe_revoked(&self) {
        let revoked: Vec<Arc<Peer>> = self
            .mounted()
            .values()
            .map(|(_, p)| Arc::clone(p))
            .filter(|p| p.state() == PeerState::Revoked)
            .collect();
        for peer in revoked {
            if peer.probe_revoked().await
                && let Err(e) = self
                    .inner
                    .store
                    .clear_external_token_revoked(peer.name())
                    .await
            {
                tracing::error!(peer = %peer.name(), error = %e, "cannot record the restored peer");
            }
        }
    }

    /// Unmounts peer `name` now (its row was deleted here).
    pub fn unmount(&self, name: &str) {
        if self.mounted().remove(name).is_some() {
            self.inner.governor.unmount(name);
            tracing::info!(peer = %name, "peer unmounted");
        }
    }

    /// Mounts what the store holds and discovers the tables, each peer
    /// bounded by its timeouts (a peer that is down stays mounted, empty,
    /// and is retried).
    pub async fn sync_and_discover(&self) -> Result<()> {
        let fresh = self.sync().await?;
        discover(fresh).await;
        Ok(())
    }

    /// Keeps peers in step with the store and their tables fresh until
    /// `stop`.
    pub fn start(&self, mut stop: watch::Receiver<bool>) {
        let this = self.clone();
        tokio::spawn(async move {
            let sync_every = this.inner.config.sync_interval;
            let refresh_every = this.inner.config.refresh_interval;
            let mut since_refresh = Duration::ZERO;
            loop {
                tokio::select! {
                    _ = tokio::time::sleep(sync_every) => {}
                    _ = stop.wait_for(|s| *s) => break,
                }
                since_refresh += sync_every;
                let fresh = match this.sync().await {
                    Ok(f) => f,
                    Err(e) => {
                        tracing::warn!(error = %e, "cannot read the peers from the store");
                        Vec::new()
                    }
                };
                let refresh_all = since_refresh >= refresh_every;
                if refresh_all {
                    since_refresh = Duration::ZERO;
                }
                let peers: Vec<Arc<Peer>> = this
                    .mounted()
                    .values()
                    .map(|(_, p)| Arc::clone(p))
                    .filter(|p| {
                        p.state() != PeerState::Revoked
                            && (refresh_all
                                || !p.discovered()
                                || fresh.iter().any(|f| Arc::ptr_eq(f, p)))
                    })
                    .collect();
                // In the background: a slow peer does not hold up the others.
                tokio::spawn(discover(peers));
                if refresh_all {
                    this.probe_revoked().await;
                }
            }
        });
    }
}

async fn discover(peers: Vec<Arc<Peer>>) {
    let tasks = peers.into_iter().map(|p| async move {
        if let Err(e) = p.refresh().await {
            tracing::warn!(peer = %p.name(), error = %e, "peer tables not discovered");
        }
    });
    futures::future::join_all(tasks).await;
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::federation::accept::accept;
    use crate::federation::accept::tests::request;

    #[tokio::test]
    async fn peers_mount_and_unmount_with_the_store() {
        let store = Store::connect("sqlite::memory:").await.unwrap();
        store.migrate().await.unwrap();
        let key = SealKey::from_bytes(&[1u8; 32]).unwrap();
        let governor = Arc::new(Governor::new());
        let peers = Peers::new(
            store.clone(),
            key.clone(),
            FederationConfig::default(),
            Arc::clone(&governor),
            Vec::new(),
        );
        accept(&store, &key, &[], request("partner"), "t")
            .await
            .unwrap();
        let fresh = peers.sync().await.unwrap();
        assert_eq!(fresh.len(), 1);
        assert_eq!(governor.catalog_names(), vec!["partner".to_string()]);
        assert_eq!(peers.state("partner"), Some("closed"));
        store
            .mark_external_token_revoked("partner", Utc::now())
            .await
            .unwrap();
        assert!(peers.sync().await.unwrap().is_empty());
        assert_eq!(peers.state("partner"), Some("revoked"));
        store.delete_external_token("partner").await.unwrap();
        peers.sync().await.unwrap();
        assert!(governor.catalog_names().is_empty());
        assert!(peers.statuses().is_empty());
    }
}
