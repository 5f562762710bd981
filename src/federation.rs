//! Federation (DESIGN §7): share profiles on the provider side, imported
//! peers mounted as catalogs on the receiver side.
//!
//! Provider: a `share` token's profile ([`Profile`]) holds the endpoint, the
//! secret and the CA that signed the provider's certificate. It is served
//! once by `GET /v1/tokens/{id}/download` (the secret is generated then).
//!
//! Receiver: [`accept`] validates a profile and stores it in
//! `external_tokens` with the secret (and an optional client key) sealed
//! ([`SealKey`]). [`Peers`] mounts every stored peer as a catalog named
//! after it, keeps the set in step with the store (`sync_interval`: what
//! `sluice peer` or another replica changed), rediscovers tables
//! (`refresh_interval`), and records a provider's refusal of the share
//! token as a revocation.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use sluice_connectors::remote::{OnRevoked, Peer, PeerCatalog, PeerConfig, PeerState, PeerStatus};
use sluice_planner::{CatalogEntry, Governor};
use tokio::sync::watch;

use crate::config::{FederationConfig, TlsConfig};
use crate::error::{Error, Result};
use crate::seal::SealKey;
use crate::store::Store;
use crate::store::federation::ExternalTokenRow;
use crate::token::TokenRecord;

/// Version of the profile format.
pub const PROFILE_VERSION: u32 = 1;

/// Seal purposes (bound into the ciphertext).
const SEAL_TOKEN: &str = "token";
const SEAL_CLIENT_KEY: &str = "client_key";

/// What a peer's sealed secrets are bound to: the row and every plain
/// column that decides where the secret is sent (endpoint, trusted CA,
/// client certificate, catalog). Someone who can write to the store but
/// lacks the seal key cannot redirect a secret: it no longer opens.
fn seal_binding(
    id: &str,
    endpoint: &str,
    ca_cert: Option<&str>,
    client_cert: Option<&str>,
    remote_catalog: &str,
) -> String {
    let mut h = Sha256::new();
    for part in [
        endpoint,
        ca_cert.unwrap_or(""),
        client_cert.unwrap_or(""),
        remote_catalog,
    ] {
        h.update((part.len() as u64).to_be_bytes());
        h.update(part.as_bytes());
    }
    format!("{id}#{}", hex::encode(h.finalize()))
}

fn row_binding(row: &ExternalTokenRow) -> String {
    seal_binding(
        &row.id,
        &row.provider_base_url,
        row.ca_cert.as_deref(),
        row.client_cert.as_deref(),
        &row.remote_catalog,
    )
}

/// A share profile: everything a partner needs to reach this gateway.
#[derive(Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Profile {
    /// Format version (1).
    pub version: u32,
    /// The provider's id of the share token.
    pub token_id: String,
    /// The share token's name.
    #[serde(default)]
    pub name: String,
    /// The provider's Flight SQL endpoint (`grpc+tls://host:port`).
    pub endpoint: String,
    /// The share token's secret.
    pub token: String,
    /// When the share token expires.
    #[serde(default)]
    pub expires_at: Option<DateTime<Utc>>,
    /// PEM of the CA that signed the provider's certificate.
    #[serde(default)]
    pub ca_cert: Option<String>,
    /// `sha256:<hex>` of `ca_cert`'s DER.
    #[serde(default)]
    pub ca_fingerprint: Option<String>,
}

impl std::fmt::Debug for Profile {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Profile")
            .field("token_id", &self.token_id)
            .field("endpoint", &self.endpoint)
            .field("token", &"[redacted]")
            .finish_non_exhaustive()
    }
}

/// The DER certificates of a PEM text.
pub fn pem_certificates(pem: &str) -> std::result::Result<Vec<Vec<u8>>, String> {
    use rustls_pki_types::CertificateDer;
    use rustls_pki_types::pem::PemObject as _;
    let certs: Vec<Vec<u8>> = CertificateDer::pem_slice_iter(pem.as_bytes())
        .map(|c| c.map(|c| c.as_ref().to_vec()))
        .collect::<std::result::Result<_, _>>()
        .map_err(|e| format!("not PEM certificates: {e}"))?;
    if certs.is_empty() {
        return Err("no PEM certificate found".into());
    }
    Ok(certs)
}

fn pem_key_ok(pem: &str) -> bool {
    use rustls_pki_types::PrivateKeyDer;
    use rustls_pki_types::pem::PemObject as _;
    PrivateKeyDer::from_pem_slice(pem.as_bytes()).is_ok()
}

/// `sha256:<hex>` of a DER certificate.
pub fn fingerprint(der: &[u8]) -> String {
    format!("sha256:{}", hex::encode(Sha256::digest(der)))
}

/// The CA a provider hands out in its profiles (`[server.tls] ca`, else
/// the last certificate of `cert`), as PEM.
pub fn profile_ca(tls: &TlsConfig) -> Result<String> {
    let path = tls.ca.as_ref().unwrap_or(&tls.cert);
    let text = std::fs::read_to_string(path)
        .map_err(|e| Error::Config(format!("server.tls: cannot read {}: {e}", path.display())))?;
    let certs = pem_certificates(&text)
        .map_err(|e| Error::Config(format!("server.tls: {}: {e}", path.display())))?;
    let last = certs.last().expect("pem_certificates returns at least one");
    Ok(der_to_pem(last))
}

fn der_to_pem(der: &[u8]) -> String {
    use base64::Engine as _;
    let b64 = base64::engine::general_purpose::STANDARD.encode(der);
    let mut out = String::from("-----BEGIN CERTIFICATE-----\n");
    for chunk in b64.as_bytes().chunks(64) {
        out.push_str(std::str::from_utf8(chunk).expect("base64 is ASCII"));
        out.push('\n');
    }
    out.push_str("-----END CERTIFICATE-----\n");
    out
}

/// The profile of a share token whose secret was just generated.
pub fn build_profile(secret: &str, record: &TokenRecord, ca_pem: Option<String>) -> Profile {
    let ca_fingerprint = ca_pem
        .as_deref()
        .and_then(|p| pem_certificates(p).ok())
        .and_then(|c| c.first().map(|d| fingerprint(d)));
    Profile {
        version: PROFILE_VERSION,
        token_id: record.id.clone(),
        name: record.name.clone(),
        endpoint: record.provider_base_url.clone().unwrap_or_default(),
        token: secret.to_string(),
        expires_at: record.expires_at,
        ca_cert: ca_pem,
        ca_fingerprint,
    }
}

/// `POST /v1/external-tokens/accept` / `sluice peer import`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AcceptRequest {
    /// The peer's name: the catalog its tables appear in.
    pub name: String,
    /// The provider's profile.
    pub profile: Profile,
    /// The provider's catalog to mirror (default `lake`).
    #[serde(default)]
    pub remote_catalog: Option<String>,
    /// PEM client certificate chain (mTLS).
    #[serde(default)]
    pub client_cert: Option<String>,
    /// PEM key of `client_cert`.
    #[serde(default)]
    pub client_key: Option<String>,
}

impl std::fmt::Debug for AcceptRequest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AcceptRequest")
            .field("name", &self.name)
            .field("profile", &self.profile)
            .finish_non_exhaustive()
    }
}

/// Why a profile was not accepted.
#[derive(Debug)]
pub enum AcceptError {
    /// The request is invalid (400).
    Invalid(String),
    /// The name is taken (409).
    Taken(String),
    /// The store failed.
    Store(Error),
}

/// What the API shows of an imported peer (never a secret).
#[derive(Debug, Clone, Serialize)]
pub struct PeerView {
    /// Row id.
    pub id: String,
    /// Name = catalog.
    pub name: String,
    /// The provider's endpoint.
    pub endpoint: String,
    /// The provider's catalog mirrored.
    pub remote_catalog: String,
    /// The provider's id of the share token.
    pub token_id: String,
    /// Expiry of the share token.
    pub expires_at: Option<DateTime<Utc>>,
    /// When it was imported.
    pub imported_at: Option<DateTime<Utc>>,
    /// Who imported it.
    pub imported_by: String,
    /// Whether a client certificate is presented.
    pub mtls: bool,
    /// `closed`, `open`, `half_open`, `revoked` (or `unmounted` when this
    /// gateway has not mounted it yet).
    pub state: String,
}

impl PeerView {
    /// The view of a stored row, with its live state if mounted.
    pub fn of(row: &ExternalTokenRow, state: Option<&'static str>) -> Self {
        Self {
            id: row.id.clone(),
            name: row.owner_name.clone(),
            endpoint: row.provider_base_url.clone(),
            remote_catalog: row.remote_catalog.clone(),
            token_id: row.token_id.clone(),
            expires_at: row.expires_at.and_then(DateTime::from_timestamp_millis),
            imported_at: DateTime::from_timestamp_millis(row.imported_at),
            imported_by: row.imported_by.clone(),
            mtls: row.client_cert.is_some(),
            state: match (state, row.revoked_at) {
                (Some(s), _) => s.to_string(),
                (None, Some(_)) => "revoked".to_string(),
                (None, None) => "unmounted".to_string(),
            },
        }
    }
}

/// Names a peer cannot take.
const RESERVED: &[&str] = &["system", "information_schema", "sluice", "datafusion"];

/// Checks `request` and stores it. `local_catalogs` are the configured
/// catalog names (a peer cannot shadow one).
pub async fn accept(
    store: &Store,
    key: &SealKey,
    local_catalogs: &[String],
    request: AcceptRequest,
    imported_by: &str,
) -> std::result::Result<ExternalTokenRow, AcceptError> {
    let invalid = |m: String| AcceptError::Invalid(m);
    let name = request.name.trim().to_string();
    let name_ok = !name.is_empty()
        && name.len() <= 63
        && name.starts_with(|c: char| c.is_ascii_lowercase())
        && name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_');
    if !name_ok {
        return Err(invalid(format!(
            "name '{name}' must be 1 to 63 lower-case ASCII letters, digits or '_', starting with a letter"
        )));
    }
    if RESERVED.contains(&name.as_str()) || local_catalogs.iter().any(|c| c == &name) {
        return Err(AcceptError::Taken(format!(
            "name '{name}' is already a catalog of this gateway"
        )));
    }
    let p = &request.profile;
    if p.version != PROFILE_VERSION {
        return Err(invalid(format!(
            "profile version {} is not supported (expected {PROFILE_VERSION})",
            p.version
        )));
    }
    if !crate::token::looks_like_secret(&p.token) {
        return Err(invalid("profile.token is not a sluice token secret".into()));
    }
    if p.token_id.trim().is_empty() {
        return Err(invalid("profile.token_id is empty".into()));
    }
    let (_, tls) = sluice_connectors::remote::channel_uri(&p.endpoint)
        .map_err(|e| invalid(format!("profile.endpoint: {e}")))?;
    if let Some(exp) = p.expires_at
        && exp <= Utc::now()
    {
        return Err(invalid("the profile's share token has expired".into()));
    }
    if let Some(ca) = &p.ca_cert {
        let certs = pem_certificates(ca).map_err(|e| invalid(format!("profile.ca_cert: {e}")))?;
        if let Some(fp) = &p.ca_fingerprint
            && !certs
                .iter()
                .any(|d| fingerprint(d).eq_ignore_ascii_case(fp.trim()))
        {
            return Err(invalid(
                "profile.ca_fingerprint does not match profile.ca_cert".into(),
            ));
        }
    }
    match (&request.client_cert, &request.client_key) {
        (Some(cert), Some(key)) => {
            pem_certificates(cert).map_err(|e| invalid(format!("client_cert: {e}")))?;
            if !pem_key_ok(key) {
                return Err(invalid("client_key is not a PEM private key".into()));
            }
            if !tls {
                return Err(invalid(
                    "a client certificate needs a TLS endpoint (grpc+tls://)".into(),
                ));
            }
        }
        (None, None) => {}
        _ => {
            return Err(invalid("client_cert and client_key go together".into()));
        }
    }
    let remote_catalog = request
        .remote_catalog
        .clone()
        .unwrap_or_else(|| "lake".to_string());
    if remote_catalog.is_empty() || remote_catalog.contains(['.', '"']) {
        return Err(invalid(format!(
            "remote_catalog '{remote_catalog}' is not a catalog name"
        )));
    }
    let id = uuid::Uuid::new_v4().to_string();
    let endpoint = p.endpoint.trim().to_string();
    let binding = seal_binding(
        &id,
        &endpoint,
        p.ca_cert.as_deref(),
        request.client_cert.as_deref(),
        &remote_catalog,
    );
    let row = ExternalTokenRow {
        sealed_token: key.seal(p.token.as_bytes(), &binding, SEAL_TOKEN),
        sealed_client_key: request
            .client_key
            .as_ref()
            .map(|k| key.seal(k.as_bytes(), &binding, SEAL_CLIENT_KEY)),
        id,
        provider_base_url: endpoint,
        owner_name: name.clone(),
        imported_by: imported_by.to_string(),
        imported_at: Utc::now().timestamp_millis(),
        is_active: true,
        token_id: p.token_id.clone(),
        remote_catalog,
        expires_at: p.expires_at.map(|t| t.timestamp_millis()),
        ca_cert: p.ca_cert.clone(),
        client_cert: request.client_cert.clone(),
        revoked_at: None,
    };
    match store.insert_external_token(&row).await {
        Ok(true) => {
            tracing::info!(peer = %row.owner_name, endpoint = %row.provider_base_url, imported_by, "peer imported");
            Ok(row)
        }
        Ok(false) => Err(AcceptError::Taken(format!(
            "a peer named '{name}' is already imported"
        ))),
        Err(e) => Err(AcceptError::Store(e)),
    }
}

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
            .map_err(|_| Error::Refused(format!("peer {}: sealed token is not text", row.id)))?;
        let client_identity = match (&row.client_cert, &row.sealed_client_key) {
            (Some(cert), Some(sealed)) => {
                let k = String::from_utf8(key.open(sealed, &binding, SEAL_CLIENT_KEY)?).map_err(
                    |_| Error::Refused(format!("peer {}: sealed key is not text", row.id)),
                )?;
                Some((cert.clone(), k))
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

    fn profile() -> Profile {
        Profile {
            version: 1,
            token_id: "t1".into(),
            name: "partner".into(),
            endpoint: "grpc://127.0.0.1:1".into(),
            token: crate::token::TokenSecret::generate().expose().to_string(),
            expires_at: None,
            ca_cert: None,
            ca_fingerprint: None,
        }
    }

    fn request(name: &str) -> AcceptRequest {
        AcceptRequest {
            name: name.into(),
            profile: profile(),
            remote_catalog: None,
            client_cert: None,
            client_key: None,
        }
    }

    #[tokio::test]
    async fn accept_validates_and_seals() {
        let store = Store::connect("sqlite::memory:").await.unwrap();
        store.migrate().await.unwrap();
        let key = SealKey::from_bytes(&[1u8; 32]).unwrap();
        let local = vec!["lake".to_string()];
        for bad in ["", "Partner", "1x", "a.b", "a-b", &"x".repeat(64)] {
            let e = accept(&store, &key, &local, request(bad), "t")
                .await
                .unwrap_err();
            assert!(matches!(e, AcceptError::Invalid(_)), "{bad}: {e:?}");
        }
        for taken in ["lake", "system"] {
            let e = accept(&store, &key, &local, request(taken), "t")
                .await
                .unwrap_err();
            assert!(matches!(e, AcceptError::Taken(_)), "{taken}: {e:?}");
        }
        let mut r = request("partner");
        r.profile.token = "nope".into();
        assert!(matches!(
            accept(&store, &key, &local, r, "t").await.unwrap_err(),
            AcceptError::Invalid(_)
        ));
        let mut r = request("partner");
        r.client_cert = Some("x".into());
        assert!(matches!(
            accept(&store, &key, &local, r, "t").await.unwrap_err(),
            AcceptError::Invalid(_)
        ));

        let r = request("partner");
        let secret = r.profile.token.clone();
        let row = accept(&store, &key, &local, r, "t").await.unwrap();
        assert!(
            !row.sealed_token
                .windows(secret.len())
                .any(|w| w == secret.as_bytes())
        );
        assert!(matches!(
            accept(&store, &key, &local, request("partner"), "t")
                .await
                .unwrap_err(),
            AcceptError::Taken(_)
        ));
        let listed = store.list_external_tokens().await.unwrap();
        assert_eq!(listed.len(), 1);
        assert_eq!(
            key.open(
                &listed[0].sealed_token,
                &row_binding(&listed[0]),
                SEAL_TOKEN
            )
            .unwrap(),
            secret.as_bytes()
        );
        store
            .mark_external_token_revoked("partner", Utc::now())
            .await
            .unwrap();
        assert!(
            store.list_external_tokens().await.unwrap()[0]
                .revoked_at
                .is_some()
        );
        assert!(
            store
                .delete_external_token("partner")
                .await
                .unwrap()
                .is_some()
        );
        assert!(
            store
                .delete_external_token(&row.id)
                .await
                .unwrap()
                .is_none()
        );
    }

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
