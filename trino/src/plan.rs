//! Planning a classified Trino statement through the governor: queries as
//! they are, `SHOW …` / `DESCRIBE` as queries over the session's
//! Trino-shaped metadata, after checking that what they name exists for
//! the token. Either way the one pipeline plans them, in the token's scoped
//! session with the [`TrinoDialect`](crate::TrinoDialect).

use std::sync::Arc;

use datafusion::sql::sqlparser::ast::Expr as SqlExpr;
use sluice_planner::{
    Error, ErrorKind, GovernedPlan, Governor, Object, Result, SYSTEM_CATALOG, SessionOptions,
    TokenScope,
};

use crate::metadata::INFORMATION_SCHEMA;
use crate::statement::{TrinoStatement, quote_ident, quote_literal};

/// Plans `statement` (a query or a metadata statement) for `scope`.
/// Session statements (`USE`, `PREPARE`, …) are the frontend's and
/// refused here.
pub async fn plan_trino(
    governor: &Governor,
    scope: &Arc<TokenScope>,
    statement: &TrinoStatement,
    options: &SessionOptions,
    params: Option<&[SqlExpr]>,
) -> Result<GovernedPlan> {
    let sql = match statement {
        TrinoStatement::Query(sql) => {
            return governor.plan_with(scope, sql, options, params).await;
        }
        TrinoStatement::ShowCatalogs { like } => format!(
            "SELECT table_cat AS \"Catalog\" FROM system.jdbc.catalogs{} ORDER BY 1",
            like_clause("WHERE", "table_cat", like)
        ),
        TrinoStatement::ShowSchemas { catalog, like } => {
            let catalog = catalog_of(governor, scope, catalog.as_ref(), options)?;
            format!(
                "SELECT schema_name AS \"Schema\" FROM {}.information_schema.schemata{} ORDER BY 1",
                quote_ident(&catalog),
                like_clause("WHERE", "schema_name", like)
            )
        }
        TrinoStatement::ShowTables { schema, like } => {
            let (catalog, schema) = visible_schema(governor, scope, schema, options)?;
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
                    catalog_of(governor, scope, None, options)?,
                    session_schema(options)?,
                    t.clone(),
                ),
                [s, t] => (
                    catalog_of(governor, scope, None, options)?,
                    s.clone(),
                    t.clone(),
                ),
                [c, s, t] => (c.clone(), s.clone(), t.clone()),
                _ => {
                    return Err(Error::refused(
                        ErrorKind::Unsupported,
                        "DESCRIBE [catalog.][schema.]table",
                    ));
                }
            };
            let ctx = governor.context_with(scope, options);
            let exists = match ctx.catalog(&catalog).and_then(|c| c.schema(&schema)) {
                Some(s) if schema != INFORMATION_SCHEMA => s.table(&name).await?.is_some(),
                Some(s) => s.table_exist(&name),
                None => false,
            };
            if !exists {
                return Err(Error::not_found(
                    Object::Table,
                    format!("{catalog}.{schema}.{name}"),
                ));
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
            return Err(Error::refused(
                ErrorKind::Unsupported,
                format!("{other:?} is a session statement, not a query"),
            ));
        }
    };
    governor.plan_with(scope, &sql, options, None).await
}

/// The schema `parts` (`[catalog, schema]`, `[schema]` or none: the
/// session's) names, when the token can see it.
pub fn visible_schema(
    governor: &Governor,
    scope: &Arc<TokenScope>,
    parts: &[String],
    options: &SessionOptions,
) -> Result<(String, String)> {
    let (catalog, schema) = match parts {
        [] => (
            catalog_of(governor, scope, None, options)?,
            session_schema(options)?,
        ),
        [s] => (catalog_of(governor, scope, None, options)?, s.clone()),
        [c, s] => (catalog_of(governor, scope, Some(c), options)?, s.clone()),
        _ => {
            return Err(Error::refused(
                ErrorKind::Unsupported,
                "SHOW TABLES FROM [catalog.]schema",
            ));
        }
    };
    let ctx = governor.context_with(scope, options);
    if ctx
        .catalog(&catalog)
        .and_then(|c| c.schema(&schema))
        .is_none()
    {
        return Err(Error::not_found(
            Object::Schema,
            format!("{catalog}.{schema}"),
        ));
    }
    Ok((catalog, schema))
}

/// The session's schema, which a statement without one needs.
fn session_schema(options: &SessionOptions) -> Result<String> {
    options.schema.clone().ok_or_else(|| {
        Error::refused(
            ErrorKind::MissingName(Object::Schema),
            "Schema must be specified when session schema is not set",
        )
    })
}

/// The catalog a statement names, or the session's; the catalog must be
/// visible to the token.
fn catalog_of(
    governor: &Governor,
    scope: &Arc<TokenScope>,
    named: Option<&String>,
    options: &SessionOptions,
) -> Result<String> {
    let Some(catalog) = named.or(options.catalog.as_ref()) else {
        return Err(Error::refused(
            ErrorKind::MissingName(Object::Catalog),
            "Catalog must be specified when session catalog is not set",
        ));
    };
    let visible = catalog == SYSTEM_CATALOG
        || (governor.catalog_names().contains(catalog) && scope.may_see_prefix(catalog));
    if visible {
        Ok(catalog.clone())
    } else {
        Err(Error::not_found(Object::Catalog, catalog))
    }
}

fn like_clause(keyword: &str, column: &str, like: &Option<String>) -> String {
    match like {
        Some(p) => format!(" {} {column} LIKE {}", keyword.trim(), quote_literal(p)),
        None => String::new(),
    }
}
