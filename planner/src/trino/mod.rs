//! The Trino dialect of the planner: what the Trino HTTP frontend needs
//! beyond the shared pipeline. Queries still go through
//! [`Governor::plan_with`](crate::Governor::plan_with); this module only
//! adapts the language and the metadata to what Trino clients expect.
//!
//! - [`types`]: Arrow → Trino types (`typeSignature`, JDBC codes);
//! - [`dialect`]: Trino function spellings and `USING` parameters;
//! - [`statement`]: session and metadata statements;
//! - [`metadata`]: Trino's `information_schema` and `system.jdbc`, computed
//!   from the token's scoped catalogs.

pub mod dialect;
pub mod metadata;
pub mod statement;
pub mod types;

pub use statement::{TrinoStatement, classify};
pub use types::TrinoType;

use std::sync::Arc;

use datafusion::sql::sqlparser::ast::Expr as SqlExpr;

use crate::error::{Error, Result};
use crate::governor::{Dialect, GovernedPlan, Governor, SessionOptions};
use crate::policy::TokenScope;
use statement::{quote_ident, quote_literal};

impl Governor {
    /// Plans a classified Trino statement: queries as they are, `SHOW …` /
    /// `DESCRIBE` as queries over the session's Trino metadata (after
    /// checking that what they name exists for the token). Session
    /// statements (`USE`, `PREPARE`, …) are the frontend's and refused here.
    pub async fn plan_trino(
        &self,
        scope: &Arc<TokenScope>,
        statement: &TrinoStatement,
        options: &SessionOptions,
        params: Option<&[SqlExpr]>,
    ) -> Result<GovernedPlan> {
        let options = SessionOptions {
            dialect: Dialect::Trino,
            ..options.clone()
        };
        let sql = match statement {
            TrinoStatement::Query(sql) => {
                return self.plan_with(scope, sql, &options, params).await;
            }
            TrinoStatement::ShowCatalogs { like } => format!(
                "SELECT table_cat AS \"Catalog\" FROM system.jdbc.catalogs{} ORDER BY 1",
                like_clause("WHERE", "table_cat", like)
            ),
            TrinoStatement::ShowSchemas { catalog, like } => {
                let catalog = self.catalog_of(scope, catalog.as_ref(), &options)?;
                format!(
                    "SELECT schema_name AS \"Schema\" FROM {}.information_schema.schemata{} ORDER BY 1",
                    quote_ident(&catalog),
                    like_clause("WHERE", "schema_name", like)
                )
            }
            TrinoStatement::ShowTables { schema, like } => {
                let (catalog, schema) = match schema.as_slice() {
                    [] => (
                        self.catalog_of(scope, None, &options)?,
                        options.schema.clone().ok_or_else(|| {
                            Error::Refused(
                                "Schema must be specified when session schema is not set"
                                    .to_string(),
                            )
                        })?,
                    ),
                    [s] => (self.catalog_of(scope, None, &options)?, s.clone()),
                    [c, s] => (self.catalog_of(scope, Some(c), &options)?, s.clone()),
                    _ => return Err(Error::Refused("SHOW TABLES FROM [catalog.]schema".into())),
                };
                let ctx = self.context_with(scope, &options);
                if ctx
                    .catalog(&catalog)
                    .and_then(|c| c.schema(&schema))
                    .is_none()
                {
                    return Err(Error::NotFound {
                        kind: "Schema",
                        name: format!("{catalog}.{schema}"),
                    });
                }
                format!(
                    "SELECT table_name AS \"Table\" FROM {}.information_schema.tables WHERE table_schema = {}{} ORDER BY 1",
                    quote_ident(&catalog),
                    quote_literal(&schema),
                    like_clause(" AND", "table_name", like)
                )
            }
            TrinoStatement::ShowColumns { table, like } => {
                let (catalog, schema, name) = match table.as_slice() {
                    [t] => (
                        self.catalog_of(scope, None, &options)?,
                        options.schema.clone().ok_or_else(|| {
                            Error::Refused(
                                "Schema must be specified when session schema is not set"
                                    .to_string(),
                            )
                        })?,
                        t.clone(),
                    ),
                    [s, t] => (
                        self.catalog_of(scope, None, &options)?,
                        s.clone(),
                        t.clone(),
                    ),
                    [c, s, t] => (c.clone(), s.clone(), t.clone()),
                    _ => return Err(Error::Refused("DESCRIBE [catalog.][schema.]table".into())),
                };
                let ctx = self.context_with(scope, &options);
                let exists = match ctx.catalog(&catalog).and_then(|c| c.schema(&schema)) {
                    Some(s) if schema != metadata::INFORMATION_SCHEMA => {
                        s.table(&name).await?.is_some()
                    }
                    Some(s) => s.table_exist(&name),
                    None => false,
                };
                if !exists {
                    return Err(Error::NotFound {
                        kind: "Table",
                        name: format!("{catalog}.{schema}.{name}"),
                    });
                }
                format!(
                    "SELECT column_name AS \"Column\", data_type AS \"Type\", '' AS \"Extra\", '' AS \"Comment\" \
                     FROM {}.information_schema.columns WHERE table_schema = {} AND table_name = {}{} \
                     ORDER BY ordinal_position",
                    quote_ident(&catalog),
                    quote_literal(&schema),
                    quote_literal(&name),
                    like_clause(" AND", "column_name", like)
                )
            }
            other => {
                return Err(Error::Refused(format!(
                    "{other:?} is a session statement, not a query"
                )));
            }
        };
        self.plan_with(scope, &sql, &options, None).await
    }

    /// The catalog a statement names, or the session's; the catalog must
    /// be visible to the token.
    fn catalog_of(
        &self,
        scope: &Arc<TokenScope>,
        named: Option<&String>,
        options: &SessionOptions,
    ) -> Result<String> {
        let Some(catalog) = named.or(options.catalog.as_ref()) else {
            return Err(Error::Refused(
                "Catalog must be specified when session catalog is not set".to_string(),
            ));
        };
        let visible = catalog == metadata::SYSTEM_CATALOG
            || (self.catalog_names().contains(catalog) && scope.may_see_prefix(catalog));
        if visible {
            Ok(catalog.clone())
        } else {
            Err(Error::NotFound {
                kind: "Catalog",
                name: catalog.clone(),
            })
        }
    }
}

fn like_clause(keyword: &str, column: &str, like: &Option<String>) -> String {
    match like {
        Some(p) => format!(" {} {column} LIKE {}", keyword.trim(), quote_literal(p)),
        None => String::new(),
    }
}
