//! Token administration shared by the CLI and the admin HTTP API: create
//! (with validation against the catalogs), revoke, introspect.

use std::sync::Arc;

use chrono::Utc;
use serde::Serialize;
use sluice_planner::limits::budget::BudgetState;
use sluice_planner::{Governor, TokenScope};

use crate::error::{Error, Result};
use crate::store::Store;
use sluice_planner::token::{CreatedToken, TokenRecord, TokenSpec};

/// Validates `spec` (document checks, then tables, columns, rules and masks
/// against the catalogs through [`Governor::validate`]) and stores it.
pub async fn create_token(
    store: &Store,
    governor: &Governor,
    spec: &TokenSpec,
    created_by: &str,
    default_row_limit: u64,
) -> Result<CreatedToken> {
    validate(governor, spec, default_row_limit).await?;
    let created = store
        .create_token(spec, created_by, default_row_limit)
        .await?;
    tracing::info!(
        token_id = %created.id,
        name = %spec.name,
        admin = spec.admin,
        created_by = %created_by,
        "token created"
    );
    Ok(created)
}

/// Every problem with `spec`, as [`Error::InvalidToken`].
pub async fn validate(governor: &Governor, spec: &TokenSpec, default_row_limit: u64) -> Result<()> {
    let mut problems = spec.check(Utc::now());
    if let Err(p) = crate::exports::normalise_destinations(&spec.export_destinations) {
        problems.extend(p);
    }
    if let Err(more) = governor
        .validate(&spec.scope("(new token)", default_row_limit))
        .await
    {
        problems.extend(more);
    }
    if problems.is_empty() {
        Ok(())
    } else {
        Err(Error::InvalidToken(problems))
    }
}

/// Revokes token `id`. Refuses to revoke the last active admin token unless
/// `force` (the gateway would refuse to start without one).
pub async fn revoke_token(store: &Store, id: &str, force: bool) -> Result<TokenRecord> {
    let now = Utc::now();
    let record = store
        .get_token(id)
        .await?
        .ok_or_else(|| Error::TokenNotFound(id.to_string()))?;
    if !force && record.admin && record.is_active(now) && store.count_active_admins(now).await? <= 1
    {
        return Err(Error::Refused(
            "refusing to revoke the last active admin token: create another admin token first"
                .into(),
        ));
    }
    let revoked = store
        .revoke_token(id, now)
        .await?
        .ok_or_else(|| Error::TokenNotFound(id.to_string()))?;
    tracing::info!(token_id = %id, "token revoked");
    Ok(revoked)
}

/// `active`, `revoked` or `expired`.
pub fn status(record: &TokenRecord) -> &'static str {
    if record.revoked_at.is_some() {
        "revoked"
    } else if record.is_expired(Utc::now()) {
        "expired"
    } else {
        "active"
    }
}

/// A token's effective scope: its record, and every table and column it
/// can see, computed by the same scoped session queries run in.
#[derive(Debug, Serialize)]
pub struct Introspection {
    /// `active`, `revoked` or `expired`.
    pub status: &'static str,
    /// The stored token (grants, flags, audience…), never its secret.
    pub token: TokenRecord,
    /// Tables visible to the token, with their visible columns.
    pub tables: Vec<VisibleTable>,
    /// What the token has spent in the current hour and UTC day (its
    /// limits are `token.budget`), with when each resets; this gateway's
    /// count.
    pub spent: BudgetState,
}

/// One table of a token's scope.
#[derive(Debug, Serialize)]
pub struct VisibleTable {
    /// `catalog.namespace.table`.
    pub table: String,
    /// The grant that applies (its `table` pattern).
    pub grant: Option<String>,
    /// Row rules of that grant.
    pub allow_rules: Vec<String>,
    /// Deny rules of that grant.
    pub deny_rules: Vec<String>,
    /// Visible columns in order.
    pub columns: Vec<VisibleColumn>,
}

/// One visible column.
#[derive(Debug, Serialize)]
pub struct VisibleColumn {
    /// Column name.
    pub name: String,
    /// Arrow type as the token sees it.
    pub data_type: String,
    /// Mask applied to every read, if any.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub mask: Option<String>,
}

/// The effective scope of `record`.
pub async fn introspect(governor: &Governor, record: TokenRecord) -> Result<Introspection> {
    let scope: Arc<TokenScope> = Arc::new(record.scope());
    let ctx = governor.context(&scope);
    let mut tables = Vec::new();
    let mut catalogs = ctx.catalog_names();
    catalogs.sort();
    for cat_name in catalogs {
        let Some(catalog) = ctx.catalog(&cat_name) else {
            continue;
        };
        let mut schemas = catalog.schema_names();
        schemas.sort();
        for schema_name in schemas {
            if schema_name == "information_schema" {
                continue;
            }
            let Some(schema) = catalog.schema(&schema_name) else {
                continue;
            };
            let mut names = schema.table_names();
            names.sort();
            for table_name in names {
                let provider = match schema.table(&table_name).await {
                    Ok(Some(p)) => p,
                    Ok(None) => continue,
                    Err(e) => {
                        return Err(Error::Catalog {
                            name: cat_name.clone(),
                            message: e.to_string(),
                        });
                    }
                };
                let full = format!("{cat_name}.{schema_name}.{table_name}");
                let grant = scope.grant_for(&full);
                let columns = provider
                    .schema()
                    .fields()
                    .iter()
                    .map(|f| VisibleColumn {
                        name: f.name().clone(),
                        data_type: f.data_type().to_string(),
                        mask: grant
                            .and_then(|g| g.masks.get(f.name()))
                            .map(|m| m.to_string()),
                    })
                    .collect();
                tables.push(VisibleTable {
                    table: full,
                    grant: grant.map(|g| g.table.clone()),
                    allow_rules: grant.map(|g| g.allow_rules.clone()).unwrap_or_default(),
                    deny_rules: grant.map(|g| g.deny_rules.clone()).unwrap_or_default(),
                    columns,
                });
            }
        }
    }
    let spent = governor.limits().ledger.state(&record.id, Utc::now());
    Ok(Introspection {
        status: status(&record),
        token: record,
        tables,
        spent,
    })
}
