//! What a peer's sealed secrets are bound to (see [`crate::seal`]): the
//! row and every plain column that decides where the secret is sent.

use sha2::{Digest, Sha256};

use crate::store::federation::ExternalTokenRow;

/// Seal purposes (bound into the ciphertext).
pub(super) const SEAL_TOKEN: &str = "token";
pub(super) const SEAL_CLIENT_KEY: &str = "client_key";

/// What a peer's sealed secrets are bound to: the row and every plain
/// column that decides where the secret is sent (endpoint, trusted CA,
/// client certificate, catalog). Someone who can write to the store but
/// lacks the seal key cannot redirect a secret: it no longer opens.
pub(super) fn seal_binding(
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

pub(super) fn row_binding(row: &ExternalTokenRow) -> String {
    seal_binding(
        &row.id,
        &row.provider_base_url,
        row.ca_cert.as_deref(),
        row.client_cert.as_deref(),
        &row.remote_catalog,
    )
}
