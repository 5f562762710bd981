//! The receiver side, importing: a profile validated and stored in
//! `external_tokens` with its secret (and an optional client key) sealed,
//! and what the API shows of imported peers.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::profile::{PROFILE_VERSION, Profile, fingerprint, pem_certificates, pem_key_ok};
use super::seal_binding::{SEAL_CLIENT_KEY, SEAL_TOKEN, seal_binding};
use crate::error::Error;
use crate::seal::SealKey;
use crate::store::Store;
use crate::store::federation::ExternalTokenRow;

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
    if !sluice_planner::token::looks_like_secret(&p.token) {
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

#[cfg(test)]
pub(crate) mod tests {
    use chrono::Utc;

    use super::*;
    use crate::federation::seal_binding::row_binding;

    pub(crate) fn profile() -> Profile {
        Profile {
            version: 1,
            token_id: "t1".into(),
            name: "partner".into(),
            endpoint: "grpc://127.0.0.1:1".into(),
            token: sluice_planner::token::generate_secret()
                .expose()
                .to_string(),
            expires_at: None,
            ca_cert: None,
            ca_fingerprint: None,
        }
    }

    /// A request to import a valid profile as peer `name`.
    pub(crate) fn request(name: &str) -> AcceptRequest {
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
}
