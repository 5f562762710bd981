//! The session builder: the one place that turns a [`TokenScope`] into a
//! DataFusion `SessionContext` in which only the token's secure views
//! exist.

use std::sync::Arc;

use datafusion::catalog::{
    CatalogProvider, MemoryCatalogProviderList, MemorySchemaProvider, SchemaProvider,
};
use datafusion::execution::{FunctionRegistry as _, SessionState, SessionStateBuilder};
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

/// What every statement's session starts from: DataFusion's built-in
/// functions and rules, the vector functions and the gateway's settings.
///
/// Building this is most of what a fresh session costs (every function
/// registered under every alias, every optimizer rule allocated), and none
/// of it depends on the token: a session clones it and adds only what is
/// its own — the token's catalogs in a new catalog list, the dialect's
/// settings, the statement's usage meter and bounded functions.
///
/// Its runtime environment lends no memory
/// ([`MemoryBounds::planning_runtime`](crate::limits::MemoryBounds::planning_runtime)):
/// a statement executes under its own capped share of the gateway's pool
/// ([`MemoryBounds::query_runtime`](crate::limits::MemoryBounds::query_runtime)),
/// given to the run's task context ([`super::governed`]).
pub(super) struct BaseState {
    state: SessionState,
}

impl BaseState {
    fn new(governor: &Governor) -> Self {
        let mut config = SessionConfig::new()
            .with_create_default_catalog_and_schema(false)
            // Sessions set these per statement.
            .with_information_schema(false);
        if let Some(n) = governor.target_partitions {
            config = config.with_target_partitions(n);
        }
        let limits = &governor.limits;
        // Each spilling sort and aggregation partition sets this much aside
        // to merge its spill files: keep it a small part of the query's
        // share, or the reservations alone exhaust it.
        let partitions = config.target_partitions().max(1);
        let reserve = (limits.memory.query_limit() / (4 * partitions)).clamp(64 << 10, 64 << 20);
        config.options_mut().execution.sort_spill_reservation_bytes = reserve;
        // Identifiers are case-insensitive like in Trino and Iceberg tooling.
        config.options_mut().sql_parser.enable_ident_normalization = true;
        // Parsing stops at this depth (limits::bounds).
        config.options_mut().sql_parser.recursion_limit = limits.bounds.parser_depth();
        // DataFusion 53 loses the NULL group of `DISTINCT … ORDER BY … LIMIT`
        // when it pushes the limit into the aggregate (found by the oracle);
        // correctness first.
        config
            .options_mut()
            .optimizer
            .enable_distinct_aggregation_soft_limit = false;
        config.options_mut().optimizer.enable_topk_aggregation = false;
        let mut state = SessionStateBuilder::new()
            .with_config(config)
            .with_default_features()
            .with_physical_optimizer_rules(physical_optimizer_rules())
            .with_runtime_env(limits.memory.planning_runtime())
            .build();
        for udf in crate::vectors::udfs() {
            let _ = state.register_udf(Arc::new(udf));
        }
        Self { state }
    }
}

impl std::fmt::Debug for BaseState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BaseState")
            .field("scalar_functions", &self.state.scalar_functions().len())
            .finish_non_exhaustive()
    }
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
        let mut state = self.base_state().state.clone();
        // The base's catalog list is shared by every clone of it: each
        // session gets its own, holding only this token's catalogs.
        state.register_catalog_list(Arc::new(MemoryCatalogProviderList::new()));
        let config = state.config_mut();
        let catalog_options = &mut config.options_mut().catalog;
        catalog_options.information_schema = dialect.native_information_schema();
        catalog_options.default_catalog = default_catalog;
        catalog_options.default_schema = default_schema;
        // The statement's secure views count what they read into it.
        config.set_extension(Arc::new(Usage::default()));
        for udf in functions::bounded(
            state.scalar_functions(),
            control,
            self.limits.config.max_function_output,
        ) {
            // Replaces the unbounded built-in of the same name.
            let _ = state.register_udf(Arc::new(udf));
        }
        let search = Arc::new(VectorSearchFunction::default());
        state.register_udtf(
            crate::vector_search::FUNCTION_NAME,
            Arc::clone(&search) as Arc<dyn datafusion::catalog::TableFunctionImpl>,
        );
        let ctx = SessionContext::new_with_state(state);
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

    /// The state every session is cloned from, built on first use.
    fn base_state(&self) -> &BaseState {
        self.base.get_or_init(|| BaseState::new(self))
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
