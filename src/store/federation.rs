//! Federation in the store: share-profile downloads (provider side) and
//! imported peers, `external_tokens` (receiver side).

use chrono::{DateTime, Utc};

use super::{Backend, Store};
use crate::error::Result;
use sluice_planner::Secret;

use sluice_planner::token::{TokenRecord, generate_secret, hash_secret};

use super::rows::to_millis;

/// Why a share profile cannot be downloaded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DownloadRefusal {
    /// No token with this id.
    NotFound,
    /// The token is not a share token.
    NotShare,
    /// Downloaded before, revoked or expired.
    Gone(&'static str),
}

/// One imported peer as stored (its secrets sealed).
#[derive(Clone, sqlx::FromRow)]
pub struct ExternalTokenRow {
    /// Row id.
    pub id: String,
    /// The provider's Flight SQL endpoint.
    pub provider_base_url: String,
    /// The peer's name: the catalog it is mounted as.
    pub owner_name: String,
    /// The share token, sealed.
    pub sealed_token: Vec<u8>,
    /// Who imported it.
    pub imported_by: String,
    /// When (unix ms).
    pub imported_at: i64,
    /// False once removed.
    pub is_active: bool,
    /// The provider's id of the share token.
    pub token_id: String,
    /// The provider's catalog mirrored.
    pub remote_catalog: String,
    /// Expiry of the share token (unix ms).
    pub expires_at: Option<i64>,
    /// PEM of the provider's CA.
    pub ca_cert: Option<String>,
    /// PEM client certificate chain.
    pub client_cert: Option<String>,
    /// Its key, sealed.
    pub sealed_client_key: Option<Vec<u8>>,
    /// When the provider refused the share token (unix ms).
    pub revoked_at: Option<i64>,
}

impl std::fmt::Debug for ExternalTokenRow {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ExternalTokenRow")
            .field("id", &self.id)
            .field("owner_name", &self.owner_name)
            .field("provider_base_url", &self.provider_base_url)
            .field("revoked_at", &self.revoked_at)
            .finish_non_exhaustive()
    }
}

const EXTERNAL_COLUMNS: &str = "id, provider_base_url, owner_name, sealed_token, imported_by, \
     imported_at, is_active, token_id, remote_catalog, expires_at, ca_cert, client_cert, \
     sealed_client_key, revoked_at";

impl Store {
    /// Generates a share token's secret and returns it with the token,
    /// exactly once: the secret is made at this moment, only its hash is
    /// stored, and a second call (or a call for a revoked or expired token)
    /// is refused.
    pub async fn download_share_profile(
        &self,
        id: &str,
        now: DateTime<Utc>,
    ) -> Result<std::result::Result<(Secret, TokenRecord), DownloadRefusal>> {
        let Some(record) = self.get_token(id).await? else {
            return Ok(Err(DownloadRefusal::NotFound));
        };
        if record.token_type != sluice_planner::TokenType::Share {
            return Ok(Err(DownloadRefusal::NotShare));
        }
        if record.revoked_at.is_some() {
            return Ok(Err(DownloadRefusal::Gone("the share token is revoked")));
        }
        if record.is_expired(now) {
            return Ok(Err(DownloadRefusal::Gone("the share token has expired")));
        }
        let secret = generate_secret();
        // Conditional: of two concurrent downloads exactly one succeeds.
        let done = with_pool!(self, p => {
            sqlx::query(
                "UPDATE tokens SET secret_hash = $1, profile_downloaded_at = $2 \
                 WHERE id = $3 AND token_type = 'share' AND profile_downloaded_at IS NULL \
                 AND revoked_at IS NULL",
            )
            .bind(hash_secret(secret.expose()))
            .bind(to_millis(now))
            .bind(id)
            .execute(p)
            .await?
            .rows_affected()
        });
        if done != 1 {
            return Ok(Err(DownloadRefusal::Gone(
                "the share profile was already downloaded",
            )));
        }
        Ok(Ok((secret, record)))
    }

    /// Stores an imported peer. `Ok(false)`: the name is taken.
    pub async fn insert_external_token(&self, row: &ExternalTokenRow) -> Result<bool> {
        let sql = format!(
            "INSERT INTO external_tokens ({EXTERNAL_COLUMNS}) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14) \
             ON CONFLICT (owner_name) DO NOTHING"
        );
        let n = with_pool!(self, p => {
            sqlx::query(&sql)
                .bind(&row.id)
                .bind(&row.provider_base_url)
                .bind(&row.owner_name)
                .bind(&row.sealed_token)
                .bind(&row.imported_by)
                .bind(row.imported_at)
                .bind(row.is_active)
                .bind(&row.token_id)
                .bind(&row.remote_catalog)
                .bind(row.expires_at)
                .bind(&row.ca_cert)
                .bind(&row.client_cert)
                .bind(&row.sealed_client_key)
                .bind(row.revoked_at)
                .execute(p)
                .await?
                .rows_affected()
        });
        Ok(n == 1)
    }

    /// Every imported peer, by name.
    pub async fn list_external_tokens(&self) -> Result<Vec<ExternalTokenRow>> {
        let sql = format!(
            "SELECT {EXTERNAL_COLUMNS} FROM external_tokens WHERE is_active = $1 ORDER BY owner_name"
        );
        Ok(with_pool!(self, p => {
            sqlx::query_as::<_, ExternalTokenRow>(&sql)
                .bind(true)
                .fetch_all(p)
                .await?
        }))
    }

    /// Removes an imported peer (by id or name); its sealed secrets go with
    /// the row. Returns the removed row.
    pub async fn delete_external_token(
        &self,
        id_or_name: &str,
    ) -> Result<Option<ExternalTokenRow>> {
        let sql = format!(
            "DELETE FROM external_tokens WHERE id = $1 OR owner_name = $1 RETURNING {EXTERNAL_COLUMNS}"
        );
        Ok(with_pool!(self, p => {
            sqlx::query_as::<_, ExternalTokenRow>(&sql)
                .bind(id_or_name)
                .fetch_optional(p)
                .await?
        }))
    }

    /// Clears a recorded revocation (the provider accepts the token again).
    pub async fn clear_external_token_revoked(&self, name: &str) -> Result<()> {
        with_pool!(self, p => {
            sqlx::query("UPDATE external_tokens SET revoked_at = NULL WHERE owner_name = $1")
                .bind(name)
                .execute(p)
                .await?;
        });
        Ok(())
    }

    /// Records that the provider refused peer `name`'s share token.
    pub async fn mark_external_token_revoked(&self, name: &str, at: DateTime<Utc>) -> Result<()> {
        with_pool!(self, p => {
            sqlx::query(
                "UPDATE external_tokens SET revoked_at = $1 WHERE owner_name = $2 AND revoked_at IS NULL",
            )
            .bind(to_millis(at))
            .bind(name)
            .execute(p)
            .await?;
        });
        Ok(())
    }
}
