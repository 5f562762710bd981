//! Catalogs and schemas as one token sees them (DESIGN §4.1).
//!
//! A table without a grant does not exist: it is not listed, and looking it
//! up answers exactly like a table that does not exist. Granted tables are
//! returned as [`SecureViewProvider`]s. Scoped catalogs are read-only.

use std::any::Any;
use std::collections::HashMap;
use std::sync::Arc;

use async_trait::async_trait;
use datafusion::catalog::{CatalogProvider, SchemaProvider};
use datafusion::common::{Result, not_impl_err};
use datafusion::datasource::TableProvider;

use crate::error::{ErrorKind, Refusal};
use crate::masks::MaskKey;
use crate::policy::{TableClass, TokenScope};
use crate::rules::RuleCompiler;
use crate::secure_view::{SecureView, SecureViewProvider};

/// A catalog filtered to one token's grants.
#[derive(Debug)]
pub struct ScopedCatalog {
    name: String,
    inner: Arc<dyn CatalogProvider>,
    classes: Arc<HashMap<String, TableClass>>,
    scope: Arc<TokenScope>,
    compiler: Arc<RuleCompiler>,
    mask_key: Option<MaskKey>,
}

impl ScopedCatalog {
    /// Scopes `inner` (served as `name`) to `scope`.
    pub fn new(
        name: String,
        inner: Arc<dyn CatalogProvider>,
        classes: Arc<HashMap<String, TableClass>>,
        scope: Arc<TokenScope>,
        compiler: Arc<RuleCompiler>,
        mask_key: Option<MaskKey>,
    ) -> Self {
        Self {
            name,
            inner,
            classes,
            scope,
            compiler,
            mask_key,
        }
    }

    fn scoped_schema(&self, schema: &str, inner: Arc<dyn SchemaProvider>) -> ScopedSchema {
        ScopedSchema {
            prefix: format!("{}.{schema}", self.name),
            namespace: schema.to_string(),
            inner,
            classes: Arc::clone(&self.classes),
            scope: Arc::clone(&self.scope),
            compiler: Arc::clone(&self.compiler),
            mask_key: self.mask_key.clone(),
        }
    }
}

impl CatalogProvider for ScopedCatalog {
    fn as_any(&self) -> &dyn Any {
        self
    }

    fn schema_names(&self) -> Vec<String> {
        self.inner
            .schema_names()
            .into_iter()
            .filter(|s| {
                self.inner
                    .schema(s)
                    .is_some_and(|inner| !self.scoped_schema(s, inner).table_names().is_empty())
            })
            .collect()
    }

    fn schema(&self, name: &str) -> Option<Arc<dyn SchemaProvider>> {
        let inner = self.inner.schema(name)?;
        let scoped = self.scoped_schema(name, inner);
        // A schema without any granted table is invisible.
        (!scoped.table_names().is_empty()).then(|| Arc::new(scoped) as Arc<dyn SchemaProvider>)
    }

    fn register_schema(
        &self,
        _name: &str,
        _schema: Arc<dyn SchemaProvider>,
    ) -> Result<Option<Arc<dyn SchemaProvider>>> {
        not_impl_err!("sluice is read-only: schemas cannot be created")
    }
}

/// A schema filtered to one token's grants.
#[derive(Debug)]
pub struct ScopedSchema {
    prefix: String,
    namespace: String,
    inner: Arc<dyn SchemaProvider>,
    classes: Arc<HashMap<String, TableClass>>,
    scope: Arc<TokenScope>,
    compiler: Arc<RuleCompiler>,
    mask_key: Option<MaskKey>,
}

impl ScopedSchema {
    fn full_name(&self, table: &str) -> String {
        format!("{}.{table}", self.prefix)
    }

    fn granted(&self, table: &str) -> bool {
        !is_metadata_table(table) && self.scope.grant_for(&self.full_name(table)).is_some()
    }
}

#[async_trait]
impl SchemaProvider for ScopedSchema {
    fn as_any(&self) -> &dyn Any {
        self
    }

    fn table_names(&self) -> Vec<String> {
        let mut names: Vec<String> = self
            .inner
            .table_names()
            .into_iter()
            .filter(|t| self.granted(t))
            .collect();
        names.sort();
        names
    }

    async fn table(&self, name: &str) -> Result<Option<Arc<dyn TableProvider>>> {
        let full = self.full_name(name);
        if is_metadata_table(name) {
            return Ok(None);
        }
        let Some(grant) = self.scope.effective_grant(&full) else {
            return Ok(None);
        };
        let Some(inner) = self.inner.table(name).await? else {
            return Ok(None);
        };
        let class = self
            .classes
            .get(&format!("{}.{name}", self.namespace))
            .cloned()
            .unwrap_or_default();
        let view = SecureView::compile(
            &full,
            inner.schema(),
            &grant,
            &self.scope,
            &class,
            &self.compiler,
            self.mask_key.as_ref(),
        )
        .map_err(|e| {
            Refusal::new(
                ErrorKind::InvalidPolicy,
                format!("the policy for {full} cannot be applied: {e}"),
            )
            .into_datafusion()
        })?;
        Ok(Some(Arc::new(SecureViewProvider::new(
            inner,
            Arc::new(view),
        ))))
    }

    fn table_exist(&self, name: &str) -> bool {
        self.granted(name) && self.inner.table_exist(name)
    }

    fn register_table(
        &self,
        _name: String,
        _table: Arc<dyn TableProvider>,
    ) -> Result<Option<Arc<dyn TableProvider>>> {
        not_impl_err!("sluice is read-only: tables cannot be created")
    }

    fn deregister_table(&self, _name: &str) -> Result<Option<Arc<dyn TableProvider>>> {
        not_impl_err!("sluice is read-only: tables cannot be dropped")
    }
}

/// Connector metadata tables (Iceberg's `t$snapshots`, `t$manifests`, …)
/// describe every row and file of a table, hidden ones included: no token
/// sees them through a grant on the table.
pub fn is_metadata_table(name: &str) -> bool {
    name.contains('$')
}
