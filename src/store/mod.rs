//! The token store: SQLite (embedded default) or Postgres (production,
//! shared by replicas), with the same migrations semantics
//! (`migrations/sqlite`, `migrations/postgres`).
//!
//! Every query is written once in SQL both engines accept (`$n`
//! placeholders, `ON CONFLICT`, BIGINT unix-millisecond timestamps, JSON as
//! TEXT) and run against whichever pool is configured.

mod reader;
mod rows;

use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use rand::TryRngCore as _;
use sqlx::migrate::Migrator;
use sqlx::postgres::{PgPool, PgPoolOptions};
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions};

use sluice_connectors::location::{redact_url, split_sqlite_url};

use crate::error::{Error, Result};
use sluice_planner::token::{CreatedToken, TokenRecord, TokenSpec, generate_secret, hash_secret};

use rows::{TokenRow, to_millis};

static SQLITE_MIGRATIONS: Migrator = sqlx::migrate!("./migrations/sqlite");
static POSTGRES_MIGRATIONS: Migrator = sqlx::migrate!("./migrations/postgres");

/// `meta` key of the Flight ticket HMAC key (hex).
const TICKET_KEY: &str = "flight_ticket_key";
const MASK_KEY: &str = "mask_hash_key";
const EXPORT_KEY: &str = "export_fingerprint_key";

/// Runs `$body` with `$pool` bound to whichever pool the store has.
macro_rules! with_pool {
    ($store:expr, $pool:ident => $body:expr) => {
        match &$store.backend {
            Backend::Sqlite($pool) => $body,
            Backend::Postgres($pool) => $body,
        }
    };
}

pub mod audit;
pub mod exports;
pub mod federation;

#[derive(Debug, Clone)]
enum Backend {
    Sqlite(SqlitePool),
    Postgres(PgPool),
}

/// A handle on the token store (cheap to clone: a connection pool).
#[derive(Debug, Clone)]
pub struct Store {
    backend: Backend,
    /// Connections of a SQLite file store held for token lookups
    /// ([`reader`]); `None`: lookups use the pool.
    tokens: Option<Arc<reader::TokenReader>>,
}

/// The columns of `tokens` in [`TokenRow`] order.
const TOKEN_COLUMNS: &str = "id, name, token_type, created_by, created_at, expires_at, revoked_at, \
     provider_base_url, audience, attributes, grants, max_sensitivity, row_limit, \
     allow_attachments, can_export_vectors, rate_limit, admin, export_destinations, query_timeout_ms, \
     budget";

impl Store {
    /// Connects to `url` (`sqlite://…` or `postgres://…`). A SQLite file and
    /// its parent directory are created if missing.
    pub async fn connect(url: &str) -> Result<Self> {
        if let Some((path, query)) = split_sqlite_url(url) {
            let mut opts = if path == ":memory:" {
                SqliteConnectOptions::from_str("sqlite::memory:")?
            } else {
                if let Some(parent) = std::path::Path::new(path).parent()
                    && !parent.as_os_str().is_empty()
                {
                    std::fs::create_dir_all(parent).map_err(Error::io(parent))?;
                }
                let url = match query {
                    Some(q) => format!("sqlite://{path}?{q}"),
                    None => format!("sqlite://{path}"),
                };
                SqliteConnectOptions::from_str(&url)?
                    .create_if_missing(true)
                    .journal_mode(SqliteJournalMode::Wal)
            };
            opts = opts.busy_timeout(Duration::from_secs(5)).foreign_keys(true);
            // An in-memory database lives as long as its one connection:
            // no other connection could read it.
            let memory = path == ":memory:";
            let tokens = (!memory).then(|| {
                let count = std::thread::available_parallelism().map_or(2, usize::from);
                Arc::new(reader::TokenReader::new(opts.clone(), count.min(4)))
            });
            let max = if memory { 1 } else { 8 };
            let pool = SqlitePoolOptions::new()
                .max_connections(max)
                .min_connections(if path == ":memory:" { 1 } else { 0 })
                .idle_timeout(None)
                .max_lifetime(None)
                .acquire_timeout(Duration::from_secs(10))
                .connect_with(opts)
                .await?;
            Ok(Self {
                backend: Backend::Sqlite(pool),
                tokens,
            })
        } else if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            let pool = PgPoolOptions::new()
                .max_connections(16)
                .acquire_timeout(Duration::from_secs(10))
                .connect(url)
                .await?;
            Ok(Self {
                backend: Backend::Postgres(pool),
                tokens: None,
            })
        } else {
            Err(Error::Config(format!(
                "store.url: unsupported store '{}' (expected sqlite:// or postgres://)",
                redact_url(url)
            )))
        }
    }

    /// Wraps an existing Postgres pool (tests use a private schema).
    pub fn from_pg_pool(pool: PgPool) -> Self {
        Self {
            backend: Backend::Postgres(pool),
            tokens: None,
        }
    }

    /// `sqlite` or `postgres`.
    pub fn kind(&self) -> &'static str {
        match self.backend {
            Backend::Sqlite(_) => "sqlite",
            Backend::Postgres(_) => "postgres",
        }
    }

    /// Applies pending migrations (idempotent; Postgres serialises
    /// concurrent replicas with an advisory lock).
    pub async fn migrate(&self) -> Result<()> {
        match &self.backend {
            Backend::Sqlite(p) => SQLITE_MIGRATIONS.run(p).await?,
            Backend::Postgres(p) => POSTGRES_MIGRATIONS.run(p).await?,
        }
        Ok(())
    }

    /// Round-trips a trivial query (readiness).
    pub async fn ping(&self) -> Result<()> {
        with_pool!(self, p => {
            sqlx::query("SELECT 1").execute(p).await?;
        });
        Ok(())
    }

    /// Closes the pool, waiting for connections to be returned.
    pub async fn close(&self) {
        if let Some(reader) = &self.tokens {
            reader.close().await;
        }
        with_pool!(self, p => p.close().await)
    }

    /// The value of a `meta` key.
    pub async fn meta(&self, key: &str) -> Result<Option<String>> {
        let v: Option<(String,)> = with_pool!(self, p => {
            sqlx::query_as("SELECT value FROM meta WHERE key = $1")
                .bind(key)
                .fetch_optional(p)
                .await?
        });
        Ok(v.map(|(v,)| v))
    }

    /// Sets `key` to `value` unless it already has a value; returns the
    /// value in force afterwards (so concurrent replicas agree).
    pub async fn meta_insert_if_absent(&self, key: &str, value: &str) -> Result<String> {
        with_pool!(self, p => {
            sqlx::query("INSERT INTO meta (key, value) VALUES ($1, $2) ON CONFLICT (key) DO NOTHING")
                .bind(key)
                .bind(value)
                .execute(p)
                .await?;
        });
        self.meta(key).await?.ok_or_else(|| Error::Corrupt {
            what: format!("meta.{key}"),
            message: "missing right after insert".into(),
        })
    }

    /// The Flight ticket HMAC key (32 bytes), generated on first use and
    /// shared by every replica using this store.
    pub async fn ticket_key(&self) -> Result<Vec<u8>> {
        self.random_key(TICKET_KEY).await
    }

    /// The key of the `hash` mask (HMAC-SHA256, 32 bytes), generated on
    /// first use and shared by every replica, unless `[policy] mask_key` is
    /// configured.
    pub async fn mask_key(&self) -> Result<Vec<u8>> {
        self.random_key(MASK_KEY).await
    }

    /// The key of export manifests' policy fingerprints (32 bytes),
    /// generated on first use and shared by every replica.
    pub async fn export_key(&self) -> Result<Vec<u8>> {
        self.random_key(EXPORT_KEY).await
    }

    async fn random_key(&self, name: &str) -> Result<Vec<u8>> {
        let mut fresh = [0u8; 32];
        rand::rngs::OsRng
            .try_fill_bytes(&mut fresh)
            .map_err(|e| Error::Refused(format!("random number generator failed: {e}")))?;
        let hex_key = self
            .meta_insert_if_absent(name, &hex::encode(fresh))
            .await?;
        let key = hex::decode(&hex_key).map_err(|e| Error::Corrupt {
            what: format!("meta.{name}"),
            message: e.to_string(),
        })?;
        if key.len() < 32 {
            return Err(Error::Corrupt {
                what: format!("meta.{name}"),
                message: "shorter than 32 bytes".into(),
            });
        }
        Ok(key)
    }

    /// Stores a new token made from `spec` (already validated) and returns
    /// its id and secret. `default_row_limit` applies when the spec has none.
    pub async fn create_token(
        &self,
        spec: &TokenSpec,
        created_by: &str,
        default_row_limit: u64,
    ) -> Result<CreatedToken> {
        let id = uuid::Uuid::new_v4().to_string();
        let secret = generate_secret();
        let row = TokenRow::from_spec(&id, spec, created_by, Utc::now(), default_row_limit)?;
        let hash = hash_secret(secret.expose());
        let sql = format!(
            "INSERT INTO tokens ({TOKEN_COLUMNS}, secret_hash) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18, $19, $20, $21)"
        );
        with_pool!(self, p => {
            sqlx::query(&sql)
                .bind(&row.id)
                .bind(&row.name)
                .bind(&row.token_type)
                .bind(&row.created_by)
                .bind(row.created_at)
                .bind(row.expires_at)
                .bind(row.revoked_at)
                .bind(&row.provider_base_url)
                .bind(&row.audience)
                .bind(&row.attributes)
                .bind(&row.grants)
                .bind(row.max_sensitivity)
                .bind(row.row_limit)
                .bind(row.allow_attachments)
                .bind(row.can_export_vectors)
                .bind(row.rate_limit)
                .bind(row.admin)
                .bind(&row.export_destinations)
                .bind(row.query_timeout_ms)
                .bind(&row.budget)
                .bind(&hash)
                .execute(p)
                .await?;
        });
        Ok(CreatedToken {
            id,
            secret: secret.expose().to_string(),
        })
    }

    /// One token by id.
    pub async fn get_token(&self, id: &str) -> Result<Option<TokenRecord>> {
        let sql = format!("SELECT {TOKEN_COLUMNS} FROM tokens WHERE id = $1");
        let row: Option<TokenRow> = with_pool!(self, p => {
            sqlx::query_as(&sql).bind(id).fetch_optional(p).await?
        });
        row.map(TokenRow::into_record).transpose()
    }

    /// Every token, oldest first.
    pub async fn list_tokens(&self) -> Result<Vec<TokenRecord>> {
        let sql = format!("SELECT {TOKEN_COLUMNS} FROM tokens ORDER BY created_at, id");
        let rows: Vec<TokenRow> = with_pool!(self, p => {
            sqlx::query_as(&sql).fetch_all(p).await?
        });
        rows.into_iter().map(TokenRow::into_record).collect()
    }

    /// The token whose secret hashes to `secret_hash`, with the stored hash
    /// (for the caller's constant-time comparison).
    pub async fn find_by_hash(&self, secret_hash: &str) -> Result<Option<(String, TokenRecord)>> {
        let sql = format!("SELECT {TOKEN_COLUMNS}, secret_hash FROM tokens WHERE secret_hash = $1");
        let row: Option<rows::TokenRowWithHash> = match &self.tokens {
            Some(reader) => reader.fetch_optional(&sql, secret_hash).await?,
            None => with_pool!(self, p => {
                sqlx::query_as(&sql).bind(secret_hash).fetch_optional(p).await?
            }),
        };
        row.map(|r| Ok((r.secret_hash, r.token.into_record()?)))
            .transpose()
    }

    /// Revokes a token (idempotent: an earlier revocation time is kept).
    /// `None` if there is no such token.
    pub async fn revoke_token(&self, id: &str, at: DateTime<Utc>) -> Result<Option<TokenRecord>> {
        with_pool!(self, p => {
            sqlx::query("UPDATE tokens SET revoked_at = $1 WHERE id = $2 AND revoked_at IS NULL")
                .bind(to_millis(at))
                .bind(id)
                .execute(p)
                .await?;
        });
        self.get_token(id).await
    }

    /// Number of admin tokens usable at `now` (not revoked, not expired).
    pub async fn count_active_admins(&self, now: DateTime<Utc>) -> Result<i64> {
        let (n,): (i64,) = with_pool!(self, p => {
            sqlx::query_as(
                "SELECT COUNT(*) FROM tokens WHERE admin = $1 AND revoked_at IS NULL \
                 AND (expires_at IS NULL OR expires_at > $2)",
            )
            .bind(true)
            .bind(to_millis(now))
            .fetch_one(p)
            .await?
        });
        Ok(n)
    }
}

#[cfg(test)]
mod tests;
