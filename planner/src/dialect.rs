//! The dialect hook: what a frontend's SQL dialect adds to the one
//! pipeline, without the planner knowing the dialect.
//!
//! Flight SQL speaks DataFusion's SQL and sees DataFusion's
//! `information_schema` (no dialect). The Trino frontend brings its own
//! [`SqlDialect`]: Trino function spellings and `USING` parameters
//! rewritten on the syntax tree, Trino-shaped `information_schema` and
//! `system.jdbc`. Whatever a dialect does, it does to the token's scoped
//! catalogs and before planning: the policy is applied by the same secure
//! views either way.

use std::fmt;
use std::sync::Arc;

use datafusion::catalog::{CatalogProvider, MemoryCatalogProvider, SchemaProvider};
use datafusion::sql::parser::Statement as DFStatement;
use datafusion::sql::sqlparser::ast::Expr as SqlExpr;

use crate::error::{Error, ErrorKind, Result};

/// Name of the catalog holding the gateway's own tables (and, in the
/// Trino dialect, `system.jdbc`).
pub const SYSTEM_CATALOG: &str = "system";

/// Schema of the [`SYSTEM_CATALOG`] holding the gateway's own tables
/// (`system.runtime.audit_log`, also written `system.audit_log`).
pub const RUNTIME_SCHEMA: &str = "runtime";

/// A frontend's SQL dialect. Every method has the DataFusion behaviour as
/// its default.
pub trait SqlDialect: Send + Sync + fmt::Debug {
    /// Whether sessions get DataFusion's own `information_schema` (a
    /// dialect with metadata of its own says no).
    fn native_information_schema(&self) -> bool {
        true
    }

    /// One of the session's scoped catalogs, as the dialect presents it
    /// (e.g. with its own `information_schema`).
    fn catalog(&self, _name: &str, scoped: Arc<dyn CatalogProvider>) -> Arc<dyn CatalogProvider> {
        scoped
    }

    /// The session's `system` catalog: over the scoped (dialect) catalogs
    /// `visible`, holding `runtime` (the gateway's tables, admin sessions
    /// only) when there is one. `None`: no `system` catalog.
    fn system_catalog(
        &self,
        _visible: Vec<(String, Arc<dyn CatalogProvider>)>,
        runtime: Option<Arc<dyn SchemaProvider>>,
    ) -> Option<Arc<dyn CatalogProvider>> {
        let runtime = runtime?;
        let system = MemoryCatalogProvider::new();
        // A fresh memory catalog accepts any schema name.
        let _ = system.register_schema(RUNTIME_SCHEMA, runtime);
        Some(Arc::new(system))
    }

    /// Rewrites a parsed statement into DataFusion's SQL, replacing its
    /// placeholders with `params` when the frontend has them as literals
    /// (Trino's `EXECUTE … USING`).
    fn rewrite(&self, _statement: &mut DFStatement, params: Option<&[SqlExpr]>) -> Result<()> {
        match params {
            None => Ok(()),
            Some(_) => Err(Error::refused(
                ErrorKind::Unsupported,
                "USING parameters are only supported in Trino sessions",
            )),
        }
    }
}

/// DataFusion's own dialect (Flight SQL, exports, search).
#[derive(Debug, Clone, Copy, Default)]
pub struct DataFusionDialect;

impl SqlDialect for DataFusionDialect {}
