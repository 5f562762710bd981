//! Row <-> record conversion: timestamps as unix milliseconds, JSON
//! documents as TEXT, identical for SQLite and Postgres.

use chrono::{DateTime, TimeZone, Utc};
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::error::{Error, Result};
use sluice_planner::token::{TokenRecord, TokenSpec};

/// One `tokens` row, without the secret hash.
#[derive(Debug, sqlx::FromRow)]
pub(super) struct TokenRow {
    pub(super) id: String,
    pub(super) name: String,
    pub(super) token_type: String,
    pub(super) created_by: String,
    pub(super) created_at: i64,
    pub(super) expires_at: Option<i64>,
    pub(super) revoked_at: Option<i64>,
    pub(super) provider_base_url: Option<String>,
    pub(super) audience: String,
    pub(super) attributes: String,
    pub(super) grants: String,
    pub(super) max_sensitivity: i64,
    pub(super) row_limit: i64,
    pub(super) allow_attachments: bool,
    pub(super) can_export_vectors: bool,
    pub(super) rate_limit: Option<i64>,
    pub(super) admin: bool,
    pub(super) export_destinations: String,
    pub(super) query_timeout_ms: Option<i64>,
    pub(super) budget: Option<String>,
}

/// A `tokens` row with its secret hash (authentication only).
#[derive(sqlx::FromRow)]
pub(super) struct TokenRowWithHash {
    #[sqlx(flatten)]
    pub(super) token: TokenRow,
    pub(super) secret_hash: String,
}

/// Unix milliseconds of a time.
pub(super) fn to_millis(t: DateTime<Utc>) -> i64 {
    t.timestamp_millis()
}

pub(super) fn from_millis(what: &str, ms: i64) -> Result<DateTime<Utc>> {
    Utc.timestamp_millis_opt(ms)
        .single()
        .ok_or_else(|| Error::Corrupt {
            what: what.to_string(),
            message: format!("{ms} is not a valid unix-millisecond timestamp"),
        })
}

fn to_json<T: Serialize>(what: &str, v: &T) -> Result<String> {
    serde_json::to_string(v).map_err(|e| Error::Corrupt {
        what: what.to_string(),
        message: e.to_string(),
    })
}

fn from_json<T: DeserializeOwned>(what: &str, s: &str) -> Result<T> {
    serde_json::from_str(s).map_err(|e| Error::Corrupt {
        what: what.to_string(),
        message: e.to_string(),
    })
}

impl TokenRow {
    pub(super) fn from_spec(
        id: &str,
        spec: &TokenSpec,
        created_by: &str,
        now: DateTime<Utc>,
        default_row_limit: u64,
    ) -> Result<Self> {
        let row_limit = spec.row_limit.unwrap_or(default_row_limit);
        Ok(Self {
            id: id.to_string(),
            name: spec.name.clone(),
            token_type: spec.token_type.as_str().to_string(),
            created_by: created_by.to_string(),
            created_at: to_millis(now),
            expires_at: spec.expires_at.map(to_millis),
            revoked_at: None,
            provider_base_url: spec.provider_base_url.clone(),
            audience: to_json("audience", &spec.audience)?,
            attributes: to_json("attributes", &spec.attributes)?,
            grants: to_json("grants", &spec.grants)?,
            max_sensitivity: spec.max_sensitivity,
            row_limit: i64::try_from(row_limit)
                .map_err(|_| Error::InvalidToken(vec!["row_limit is too large".into()]))?,
            allow_attachments: spec.allow_attachments,
            can_export_vectors: spec.can_export_vectors,
            rate_limit: spec.rate_limit.map(i64::from),
            query_timeout_ms: spec
                .query_timeout
                .map(|t| i64::try_from(t.as_millis()).unwrap_or(i64::MAX)),
            budget: if spec.budget.is_unlimited() {
                None
            } else {
                Some(to_json("budget", &spec.budget)?)
            },
            admin: spec.admin,
            export_destinations: to_json(
                "export_destinations",
                &crate::exports::normalise_destinations(&spec.export_destinations)
                    .map_err(Error::InvalidToken)?,
            )?,
        })
    }

    pub(super) fn into_record(self) -> Result<TokenRecord> {
        let what = |field: &str| format!("tokens.{field} of token {}", self.id);
        Ok(TokenRecord {
            token_type: self.token_type.parse().map_err(|message| Error::Corrupt {
                what: what("token_type"),
                message,
            })?,
            created_at: from_millis(&what("created_at"), self.created_at)?,
            expires_at: self
                .expires_at
                .map(|ms| from_millis(&what("expires_at"), ms))
                .transpose()?,
            revoked_at: self
                .revoked_at
                .map(|ms| from_millis(&what("revoked_at"), ms))
                .transpose()?,
            audience: from_json(&what("audience"), &self.audience)?,
            attributes: from_json(&what("attributes"), &self.attributes)?,
            grants: from_json(&what("grants"), &self.grants)?,
            row_limit: u64::try_from(self.row_limit).map_err(|_| Error::Corrupt {
                what: what("row_limit"),
                message: "negative".into(),
            })?,
            rate_limit: self
                .rate_limit
                .map(|r| u32::try_from(r).unwrap_or(u32::MAX)),
            query_timeout: self
                .query_timeout_ms
                .map(|ms| std::time::Duration::from_millis(u64::try_from(ms).unwrap_or(0))),
            budget: self
                .budget
                .as_deref()
                .map(|b| from_json(&what("budget"), b))
                .transpose()?
                .unwrap_or_default(),
            max_sensitivity: self.max_sensitivity,
            allow_attachments: self.allow_attachments,
            can_export_vectors: self.can_export_vectors,
            admin: self.admin,
            export_destinations: from_json(
                &what("export_destinations"),
                &self.export_destinations,
            )?,
            id: self.id,
            name: self.name,
            created_by: self.created_by,
            provider_base_url: self.provider_base_url,
        })
    }
}
