//! The provider side: a share token's profile (endpoint, secret, the CA
//! that signed this gateway's certificate), downloaded once, and the PEM
//! helpers it needs.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::config::TlsConfig;
use crate::error::{Error, Result};
use sluice_planner::token::TokenRecord;

/// Version of the profile format.
pub const PROFILE_VERSION: u32 = 1;

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

pub(super) fn pem_key_ok(pem: &str) -> bool {
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
