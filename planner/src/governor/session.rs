//! The session builder: the one place that turns a [`TokenScope`] into a
//! DataFusion `SessionContext` in which only the token's secure views
//! exist.

use std::sync::Arc;

use datafusion::catalog::{CatalogProvider, MemorySchemaProvider, SchemaProvider};
use datafusion::execution::SessionStateBuilder;
use datafusion::prelude::{SessionConfig, SessionContext};

use super::{Governor, SessionOptions};
use crate::dialect::SYSTEM_CATALOG;
use crate::limits::Usage;
use crate::limits::{QueryControl, functions};
use crate::policy::TokenScope;
use crate::rules::RuleCompiler;
use crate::scoped_catalog::ScopedCatalog;
use crate::vector_search::VectorSearchFunction;

/// DataFusion's physical optimizer rules without its physical filter
/// pushdown, plus [`crate::coop::CooperativeJoins`].
///
/// DataFusion 53's physical `FilterPushdown` maps a filter's columns into a
/// child by *name*: above a join whose sides share a column name
/// (`a.customer_id`, `b.customer_id`) a filter on one lands on the other,
/// and a `WHERE` on the outer side of a `RIGHT JOIN` is silently dropped
/// (found by the generated oracle; apache/datafusion#21246, fixed upstream
/// after 53 by #25259). Sluice's connectors take their filters from the
/// logical plan, so the physical rule only fed dynamic filters (TopK, join)
/// to nodes that cannot use them here: correctness first.
pub(crate) fn physical_optimizer_rules()
-> Vec<Arc<dyn datafusion::physical_optimizer::PhysicalOptimizerRule + Send + Sync>> {
    let mut rules: Vec<_> = datafusion::physical_optimizer::optimizer::PhysicalOptimizer::new()
        .rules
        .into_iter()
        .filter(|rule| !rule.name().starts_with("FilterPushdown"))
        .collect();
    rules.push(Arc::new(crate::coop::CooperativeJoins));
    rules
}

impl Governor {
    /// The token's scoped session: only its secure views exist in it.
    pub fn context(&self, scope: &Arc<TokenScope>) -> SessionContext {
        self.context_with(scope, &SessionOptions::default())
    }

    /// The token's scoped session with a frontend's settings.
    pub fn context_with(
        &self,
        scope: &Arc<TokenScope>,
        options: &SessionOptions,
    ) -> SessionContext {
        self.session(scope, options, &QueryControl::new()).0
    }

    /// The scoped session and its `vector_search` function (which must
    /// resolve a statement's tables before it is planned), for the one
    /// statement `control` controls (its bounded functions ask it whether
    /// to go on).
    pub(super) fn session(
        &self,
        scope: &Arc<TokenScope>,
        options: &SessionOptions,
        control: &Arc<QueryControl>,
    ) -> (SessionContext, Arc<VectorSearchFunction>) {
        let dialect = &options.dialect;
        let catalogs = self.catalogs();
        // Federation peers never become the default: mounting one must not
        // redirect unqualified names (and their filters) to a partner.
        let gated = self.gates();
        let default_catalog = options.catalog.clone().unwrap_or_else(|| {
            catalogs
                .keys()
                .find(|c| !gated.contains_key(*c) && scope.may_see_prefix(c))
                .cloned()
                .unwrap_or_else(|| "sluice".to_string())
        });
        let default_schema = options
            .schema
            .clone()
            .unwrap_or_else(|| "default".to_string());
        let mut config = SessionConfig::new()
            .with_information_schema(dialect.native_information_schema())
            .with_create_default_catalog_and_schema(false)
            .with_default_catalog_and_schema(default_catalog, default_schema);
        if let Some(n) = self.target_partitions {
            config = config.with_target_partitions(n);
        }
        // Each spilling sort and aggregation partition sets this much aside
        // to merge its spill files: keep it a small part of the query's
        // share, or the reservations alone exhaust it.
        let partitions = config.target_partitions().max(1);
        let reserve =
            (self.limits.memory.query_limit() / (4 * partitions)).clamp(64 << 10, 64 << 20);
        config.options_mut().execution.sort_spill_reservation_bytes = reserve;
        // Identifiers are case-insensitive like in Trino and Iceberg tooling.
        config.options_mut().sql_parser.enable_ident_normalization = true;
        // Parsing stops at this depth (limits::bounds).
        config.options_mut().sql_parser.recursion_limit = self.limits.bounds.parser_depth();
        // DataFusion 53 loses the NULL group of `DISTINCT … ORDER BY … LIMIT`
        // when it pushes the limit into the aggregate (found by the oracle);
        // correctness first.
        config
            .options_mut()
            .optimizer
            .enable_distinct_aggregation_soft_limit = false;
        config.options_mut().optimizer.enable_topk_aggregation = false;
        // The statement's secure views count what they read into it.
        let config = config.with_extension(Arc::new(Usage::default()));
        let state = SessionStateBuilder::new()
            .with_config(config)
            .with_default_features()
            .with_physical_optimizer_rules(physical_optimizer_rules())
            .with_runtime_env(self.limits.memory.query_runtime())
            .build();
        let bounded = functions::bounded(
            state.scalar_functions(),
            control,
            self.limits.config.max_function_output,
        );
        let ctx = SessionContext::new_with_state(state);
        for udf in crate::vectors::udfs().into_iter().chain(bounded) {
            ctx.register_udf(udf);
        }
        let search = Arc::new(VectorSearchFunction::default());
        ctx.register_udtf(
            crate::vector_search::FUNCTION_NAME,
            Arc::clone(&search) as Arc<dyn datafusion::catalog::TableFunctionImpl>,
        );
        let mut visible: Vec<(String, Arc<dyn CatalogProvider>)> = Vec::new();
        for (name, entry) in catalogs.iter() {
            if !scope.may_see_prefix(name) {
                continue;
            }
            let scoped: Arc<dyn CatalogProvider> = Arc::new(ScopedCatalog::new(
                name.clone(),
                Arc::clone(&entry.provider),
                Arc::new(entry.tables.clone()),
                Arc::clone(scope),
                Arc::clone(RuleCompiler::shared()),
                self.mask_key.clone(),
            ));
            let catalog = dialect.catalog(name, scoped);
            ctx.register_catalog(name, Arc::clone(&catalog));
            visible.push((name.clone(), catalog));
        }
        if !catalogs.contains_key(SYSTEM_CATALOG)
            && let Some(system) = dialect.system_catalog(visible, self.runtime_schema(scope))
        {
            ctx.register_catalog(SYSTEM_CATALOG, system);
        }
        (ctx, search)
    }

    /// The `system.runtime` schema of an admin token's session.
    fn runtime_schema(&self, scope: &TokenScope) -> Option<Arc<dyn SchemaProvider>> {
        if !scope.is_admin() || self.system_tables.is_empty() {
            return None;
        }
        let schema = MemorySchemaProvider::new();
        for (name, table) in &self.system_tables {
            // A fresh memory schema accepts every name once.
            let _ = schema.register_table(name.clone(), Arc::clone(table));
        }
        Some(Arc::new(schema))
    }
}
