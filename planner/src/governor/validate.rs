//! Token validation: a token's grants checked against the catalogs
//! before the token is stored, with every problem named.

use std::collections::BTreeSet;
use std::sync::Arc;

use datafusion::datasource::TableProvider;

use super::Governor;
use crate::policy::{Columns, Grant, TableClass, TokenScope};
use crate::rules::RuleCompiler;
use crate::scoped_catalog::is_metadata_table;
use crate::secure_view::SecureView;

impl Governor {
    /// Checks a token's grants against the catalogs: every table (or glob)
    /// matches something, every column, mask and rule resolves, rules are
    /// boolean and use only known `token.` attributes. Returns every
    /// problem found, each a sentence naming it.
    pub async fn validate(&self, scope: &TokenScope) -> Result<(), Vec<String>> {
        let mut problems = Vec::new();
        for (key, value) in &scope.attributes {
            if value.is_array() || value.is_object() {
                problems.push(format!(
                    "attribute \"{key}\" must be a string, number, boolean or null"
                ));
            }
        }
        if scope.row_limit == 0 {
            problems.push("row_limit must be at least 1".to_string());
        }
        let mut seen = BTreeSet::new();
        for grant in &scope.grants {
            if !seen.insert(grant.table.as_str()) {
                problems.push(format!(
                    "two grants for {}: merge them into one (which would apply is ambiguous)",
                    grant.table
                ));
            }
        }
        for grant in &scope.grants {
            let tables = self.matching_tables(&grant.table).await;
            if tables.is_empty() {
                problems.push(format!("grant on {}: no such table", grant.table));
                continue;
            }
            // Rules must resolve in every table a grant matches (a table where
            // they do not would be unqueryable); a glob's columns and masks
            // apply where they exist, but each must exist somewhere.
            if grant.table.ends_with('*') {
                let mut names: Vec<&String> = grant.masks.keys().collect();
                if let Columns::List(cols) = &grant.columns {
                    names.extend(cols);
                }
                for name in names {
                    if !tables
                        .iter()
                        .any(|(_, t, _)| t.schema().field_with_name(name).is_ok())
                    {
                        problems.push(format!(
                            "grant on {}: no matched table has a column \"{name}\"",
                            grant.table
                        ));
                    }
                }
            }
            for (full, provider, class) in tables {
                if let Err(e) = SecureView::compile(
                    &full,
                    provider.schema(),
                    grant,
                    scope,
                    &class,
                    RuleCompiler::shared(),
                    None,
                ) {
                    problems.push(e);
                }
            }
        }
        if problems.is_empty() {
            Ok(())
        } else {
            Err(problems)
        }
    }

    async fn matching_tables(
        &self,
        pattern: &str,
    ) -> Vec<(String, Arc<dyn TableProvider>, TableClass)> {
        let mut out = Vec::new();
        for (cname, entry) in self.catalogs().iter() {
            for sname in entry.provider.schema_names() {
                let Some(schema) = entry.provider.schema(&sname) else {
                    continue;
                };
                for tname in schema.table_names() {
                    if is_metadata_table(&tname) {
                        continue;
                    }
                    let full = format!("{cname}.{sname}.{tname}");
                    let probe = Grant {
                        table: pattern.to_string(),
                        columns: Default::default(),
                        masks: Default::default(),
                        allow_rules: vec![],
                        deny_rules: vec![],
                    };
                    if probe.specificity(&full).is_none() {
                        continue;
                    }
                    if let Ok(Some(t)) = schema.table(&tname).await {
                        let class = entry
                            .tables
                            .get(&format!("{sname}.{tname}"))
                            .cloned()
                            .unwrap_or_default();
                        out.push((full, t, class));
                    }
                }
            }
        }
        out
    }
}
