//! The governor: builds a token's scoped session and plans statements in it.

use std::collections::{BTreeMap, HashMap};
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::task::{Context, Poll};

use arrow::datatypes::{DataType, SchemaRef};
use arrow::record_batch::RecordBatch;
use datafusion::catalog::{CatalogProvider, SchemaProvider};
use datafusion::common::ScalarValue;
use datafusion::error::DataFusionError;
use datafusion::execution::RecordBatchStream;
use datafusion::logical_expr::LogicalPlan;
use datafusion::physical_plan::SendableRecordBatchStream;
use datafusion::prelude::SessionContext;
use futures::Stream;

use datafusion::common::SchemaError;
use datafusion::datasource::TableProvider;
use datafusion::execution::SessionStateBuilder;
use datafusion::logical_expr::LogicalPlanBuilder;
use datafusion::physical_plan::memory::MemoryStream;
use datafusion::prelude::{SQLOptions, SessionConfig};
use datafusion::sql::parser::Statement as DFStatement;
use datafusion::sql::sqlparser::ast::Statement as SqlStatement;
use std::sync::OnceLock;

use crate::error::{Error, Result};
use crate::guard;
use crate::masks::MaskKey;
use crate::policy::{TableClass, TokenScope};
use crate::rules::RuleCompiler;
use crate::scoped_catalog::ScopedCatalog;
use crate::secure_view::{SecureView, SecureViewExec};
use crate::trino::metadata::{SYSTEM_CATALOG, SystemCatalog, TrinoCatalog};
use crate::vector_search::VectorSearchFunction;
use datafusion::sql::sqlparser::ast::Expr as SqlExpr;

/// Key of the Flight `app_metadata` / schema metadata / Trino warning that
/// reports a truncated result.
pub const TRUNCATED_METADATA_KEY: &str = "sluice.truncated";

/// One catalog the gateway serves.
#[derive(Debug, Clone)]
pub struct CatalogEntry {
    /// The underlying (unrestricted) catalog.
    pub provider: Arc<dyn CatalogProvider>,
    /// Classification per `namespace.table`.
    pub tables: HashMap<String, TableClass>,
}

/// The SQL dialect of a session.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Dialect {
    /// DataFusion's SQL and metadata (Flight SQL).
    #[default]
    DataFusion,
    /// Trino's: Trino function spellings, Trino-shaped
    /// `information_schema` and `system.jdbc` (Trino HTTP).
    Trino,
}

/// Per-session settings of a frontend.
#[derive(Debug, Clone, Default)]
pub struct SessionOptions {
    /// The dialect.
    pub dialect: Dialect,
    /// Catalog of unqualified names (default: the first visible catalog).
    pub catalog: Option<String>,
    /// Schema of unqualified names (default: `default`).
    pub schema: Option<String>,
}

/// Holds the gateway's catalogs and turns token scopes into scoped sessions.
#[derive(Debug, Clone, Default)]
pub struct Governor {
    /// Copy-on-write, shared by clones: peers are mounted and unmounted
    /// while the gateway runs.
    catalogs: Arc<std::sync::RwLock<Arc<BTreeMap<String, CatalogEntry>>>>,
    /// Gates of mounted catalogs (federation peers), shared by clones.
    gates: Arc<std::sync::RwLock<HashMap<String, Arc<dyn crate::connector::CatalogGate>>>>,
    native_search: HashMap<String, crate::connector::NativeSearchLookup>,
    target_partitions: Option<usize>,
    mask_key: Option<MaskKey>,
    system_tables: Vec<(String, Arc<dyn TableProvider>)>,
}

/// Schema of the `system` catalog holding the gateway's own tables
/// (`system.runtime.audit_log`, also written `system.audit_log`).
pub const RUNTIME_SCHEMA: &str = "runtime";

/// A statement planned in a token's scoped session, policy applied.
#[derive(Clone)]
pub struct GovernedPlan {
    scope: Arc<TokenScope>,
    ctx: SessionContext,
    plan: LogicalPlan,
}

/// The result stream of a governed statement: at most `row_limit` rows;
/// [`GovernedStream::truncated`] tells whether rows were cut.
pub struct GovernedStream {
    inner: SendableRecordBatchStream,
    remaining: u64,
    truncated: Arc<AtomicBool>,
    done: bool,
    schema: Option<SchemaRef>,
}

impl Governor {
    /// A governor without catalogs.
    pub fn new() -> Self {
        Self::default()
    }

    /// Serves `entry` as catalog `name`.
    pub fn add_catalog(&mut self, name: impl Into<String>, entry: CatalogEntry) {
        self.mount(name, entry);
    }

    /// Serves `entry` as catalog `name` from now on, in this governor and
    /// every clone of it (federation peers are mounted while serving).
    pub fn mount(&self, name: impl Into<String>, entry: CatalogEntry) {
        let mut guard = self.catalogs.write().unwrap_or_else(|e| e.into_inner());
        let mut next = BTreeMap::clone(&guard);
        next.insert(name.into(), entry);
        *guard = Arc::new(next);
    }

    /// [`Governor::mount`] with a gate awaited before planning statements
    /// that name the catalog.
    pub fn mount_gated(
        &self,
        name: impl Into<String>,
        entry: CatalogEntry,
        gate: Arc<dyn crate::connector::CatalogGate>,
    ) {
        let name = name.into();
        self.gates
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .insert(name.clone(), gate);
        self.mount(name, entry);
    }

    /// Whether catalog `name` is gated (a federation peer).
    pub fn is_gated(&self, name: &str) -> bool {
        self.gates
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .contains_key(name)
    }

    /// Awaits the gates of the catalogs `statement` names that the token
    /// may see (others stay "not found").
    async fn open_gates(
        &self,
        scope: &TokenScope,
        state: &datafusion::execution::SessionState,
        statement: &DFStatement,
    ) -> Result<()> {
        let gates = self.gates.read().unwrap_or_else(|e| e.into_inner()).clone();
        if gates.is_empty() {
            return Ok(());
        }
        let default_catalog = state.config().options().catalog.default_catalog.clone();
        let Ok(references) = state.resolve_table_references(statement) else {
            // Planning reports what is wrong with the statement.
            return Ok(());
        };
        let mut opened = std::collections::BTreeSet::new();
        for r in references {
            let catalog = r.catalog().unwrap_or(&default_catalog).to_string();
            if let Some(gate) = gates.get(&catalog)
                && scope.may_see_prefix(&catalog)
                && opened.insert(catalog)
            {
                gate.ready().await?;
            }
        }
        Ok(())
    }

    /// Stops serving catalog `name` (statements planned from now on do not
    /// see it). Returns whether it was served.
    pub fn unmount(&self, name: &str) -> bool {
        self.gates
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .remove(name);
        let mut guard = self.catalogs.write().unwrap_or_else(|e| e.into_inner());
        if !guard.contains_key(name) {
            return false;
        }
        let mut next = BTreeMap::clone(&guard);
        next.remove(name);
        *guard = Arc::new(next);
        true
    }

    /// The catalogs served now.
    fn catalogs(&self) -> Arc<BTreeMap<String, CatalogEntry>> {
        Arc::clone(&self.catalogs.read().unwrap_or_else(|e| e.into_inner()))
    }

    /// Lets `vector_search` use the native search of catalog `name`'s
    /// tables (found by `lookup`).
    pub fn add_native_search(
        &mut self,
        name: impl Into<String>,
        lookup: crate::connector::NativeSearchLookup,
    ) {
        self.native_search.insert(name.into(), lookup);
    }

    /// Fixes DataFusion's `target_partitions` (default: the number of cores).
    pub fn with_target_partitions(mut self, n: usize) -> Self {
        self.target_partitions = Some(n.max(1));
        self
    }

    /// Keys the `hash` mask: HMAC-SHA256 under `key` instead of plain
    /// SHA-256, so masked values cannot be recovered by hashing guesses.
    pub fn with_mask_key(mut self, key: &[u8]) -> Self {
        self.mask_key = Some(MaskKey::new(key));
        self
    }

    /// Adds a gateway table (`system.runtime.<name>`, also reachable as
    /// `system.<name>`) that only admin tokens' sessions contain. It is
    /// not policy-scoped: admins see all of it (still capped at their
    /// `row_limit`).
    pub fn with_system_table(
        mut self,
        name: impl Into<String>,
        table: Arc<dyn TableProvider>,
    ) -> Self {
        self.system_tables.push((name.into(), table));
        self
    }

    /// Names of all configured catalogs (not scoped: for operators).
    pub fn catalog_names(&self) -> Vec<String> {
        self.catalogs().keys().cloned().collect()
    }

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
        self.session(scope, options).0
    }

    fn session(
        &self,
        scope: &Arc<TokenScope>,
        options: &SessionOptions,
    ) -> (SessionContext, Arc<VectorSearchFunction>) {
        let trino = options.dialect == Dialect::Trino;
        let catalogs = self.catalogs();
        // Federation peers never become the default: mounting one must not
        // redirect unqualified names (and their filters) to a partner.
        let gated = self.gates.read().unwrap_or_else(|e| e.into_inner()).clone();
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
            // Trino sessions get Trino's information_schema from the catalogs.
            .with_information_schema(!trino)
            .with_create_default_catalog_and_schema(false)
            .with_default_catalog_and_schema(default_catalog, default_schema);
        if let Some(n) = self.target_partitions {
            config = config.with_target_partitions(n);
        }
        // Identifiers are case-insensitive like in Trino and Iceberg tooling.
        config.options_mut().sql_parser.enable_ident_normalization = true;
        // DataFusion 53 loses the NULL group of `DISTINCT … ORDER BY … LIMIT`
        // when it pushes the limit into the aggregate (found by the oracle);
        // correctness first.
        config
            .options_mut()
            .optimizer
            .enable_distinct_aggregation_soft_limit = false;
        config.options_mut().optimizer.enable_topk_aggregation = false;
        let state = SessionStateBuilder::new()
            .with_config(config)
            .with_default_features()
            .with_physical_optimizer_rule(Arc::new(crate::coop::CooperativeJoins))
            .build();
        let ctx = SessionContext::new_with_state(state);
        for udf in crate::vectors::udfs() {
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
            let mut catalog: Arc<dyn CatalogProvider> = Arc::new(ScopedCatalog::new(
                name.clone(),
                Arc::clone(&entry.provider),
                Arc::new(entry.tables.clone()),
                Arc::clone(scope),
                Arc::clone(compiler()),
                self.mask_key.clone(),
            ));
            if trino {
                catalog = Arc::new(TrinoCatalog::new(name.clone(), catalog));
            }
            ctx.register_catalog(name, Arc::clone(&catalog));
            visible.push((name.clone(), catalog));
        }
        let runtime = self.runtime_schema(scope);
        if !catalogs.contains_key(SYSTEM_CATALOG) {
            if trino {
                ctx.register_catalog(
                    SYSTEM_CATALOG,
                    Arc::new(SystemCatalog::new(visible).with_runtime(runtime)),
                );
            } else if let Some(runtime) = runtime {
                let system = datafusion::catalog::MemoryCatalogProvider::new();
                let _ = system.register_schema(RUNTIME_SCHEMA, runtime);
                ctx.register_catalog(SYSTEM_CATALOG, Arc::new(system));
            }
        }
        (ctx, search)
    }

    /// The `system.runtime` schema of an admin token's session.
    fn runtime_schema(&self, scope: &TokenScope) -> Option<Arc<dyn SchemaProvider>> {
        if !scope.admin || self.system_tables.is_empty() {
            return None;
        }
        let schema = datafusion::catalog::MemorySchemaProvider::new();
        for (name, table) in &self.system_tables {
            let _ = schema.register_table(name.clone(), Arc::clone(table));
        }
        Some(Arc::new(schema))
    }

    /// Parses, guards and plans `sql` in the token's scoped session. The
    /// plan may contain placeholders (`$1`, `?`); bind them with
    /// [`GovernedPlan::bind`].
    pub async fn plan(&self, scope: &Arc<TokenScope>, sql: &str) -> Result<GovernedPlan> {
        self.plan_with(scope, sql, &SessionOptions::default(), None)
            .await
    }

    /// [`Governor::plan`] in a session with `options`. In the Trino
    /// dialect, Trino function spellings are translated and `params` (the
    /// literals of `EXECUTE … USING`) replace the `?` placeholders.
    pub async fn plan_with(
        &self,
        scope: &Arc<TokenScope>,
        sql: &str,
        options: &SessionOptions,
        params: Option<&[SqlExpr]>,
    ) -> Result<GovernedPlan> {
        let (ctx, search) = self.session(scope, options);
        let state = ctx.state();
        let dialect = state.config().options().sql_parser.dialect;
        let mut statement = state.sql_to_statement(sql, &dialect).map_err(friendly)?;
        guard::check(&statement)?;
        if options.dialect == Dialect::Trino {
            crate::trino::dialect::rewrite(&mut statement, params)?;
        } else if params.is_some() {
            return Err(Error::Refused(
                "USING parameters are only supported in Trino sessions".to_string(),
            ));
        }
        if scope.admin && !self.system_tables.is_empty() {
            // `system.<table>` means the gateway's table only when the
            // default catalog has no schema of that name.
            let default_catalog = state.config().options().catalog.default_catalog.clone();
            let shadowed = ctx
                .catalog(&default_catalog)
                .is_some_and(|c| c.schema(SYSTEM_CATALOG).is_some());
            if !shadowed {
                let names: Vec<&str> = self.system_tables.iter().map(|(n, _)| n.as_str()).collect();
                qualify_system_tables(&mut statement, &names);
            }
        }
        number_placeholders(&mut statement)?;
        self.open_gates(scope, &state, &statement).await?;
        search
            .prepare(&ctx, &statement, &self.native_search)
            .await
            .map_err(friendly)?;
        let plan = state.statement_to_plan(statement).await.map_err(friendly)?;
        SQLOptions::new()
            .with_allow_ddl(false)
            .with_allow_dml(false)
            .with_allow_statements(false)
            .verify_plan(&plan)
            .map_err(|e| Error::Refused(e.strip_backtrace()))?;
        Ok(GovernedPlan {
            scope: Arc::clone(scope),
            ctx,
            plan,
        })
    }

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
        let mut seen = std::collections::BTreeSet::new();
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
                if let crate::policy::Columns::List(cols) = &grant.columns {
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
                    compiler(),
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
                    if crate::scoped_catalog::is_metadata_table(&tname) {
                        continue;
                    }
                    let full = format!("{cname}.{sname}.{tname}");
                    let probe = crate::policy::Grant {
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

/// Spells `system.<table>` as `system.runtime.<table>` for the gateway's
/// own `tables` (admin sessions whose default catalog has no `system`
/// schema): the two-part name would otherwise mean schema `system` of the
/// default catalog.
fn qualify_system_tables(statement: &mut DFStatement, tables: &[&str]) {
    use datafusion::sql::sqlparser::ast::{Ident, ObjectNamePart, visit_relations_mut};
    use std::ops::ControlFlow;
    let visit = |s: &mut SqlStatement| {
        let _ = visit_relations_mut(s, |name| {
            if let [
                ObjectNamePart::Identifier(first),
                ObjectNamePart::Identifier(table),
            ] = name.0.as_slice()
                && first.quote_style.is_none()
                && first.value.eq_ignore_ascii_case(SYSTEM_CATALOG)
                && tables.iter().any(|t| {
                    if table.quote_style.is_none() {
                        t.eq_ignore_ascii_case(&table.value)
                    } else {
                        *t == table.value
                    }
                })
            {
                name.0
                    .insert(1, ObjectNamePart::Identifier(Ident::new(RUNTIME_SCHEMA)));
            }
            ControlFlow::<()>::Continue(())
        });
    };
    each_sql_statement(statement, visit);
}

/// Runs `visit` on the SQL statement of `statement` (also the one under
/// `EXPLAIN`).
fn each_sql_statement(statement: &mut DFStatement, mut visit: impl FnMut(&mut SqlStatement)) {
    match statement {
        DFStatement::Statement(s) => visit(s),
        DFStatement::Explain(e) => {
            if let DFStatement::Statement(s) = e.statement.as_mut() {
                visit(s);
            }
        }
        _ => {}
    }
}

/// Numbers positional `?` placeholders as `$1, $2, …` in order of
/// appearance (DataFusion only understands numbered ones).
fn number_placeholders(statement: &mut DFStatement) -> Result<()> {
    use datafusion::sql::sqlparser::ast::{Expr as SqlExpr, Value, visit_expressions_mut};
    use std::ops::ControlFlow;
    let mut n = 0usize;
    let mut numbered = false;
    let visit = |s: &mut SqlStatement| {
        let _ = visit_expressions_mut(s, |e| {
            if let SqlExpr::Value(v) = e
                && let Value::Placeholder(p) = &mut v.value
            {
                if p == "?" {
                    n += 1;
                    *p = format!("${n}");
                } else {
                    numbered = true;
                }
            }
            ControlFlow::<()>::Continue(())
        });
    };
    each_sql_statement(statement, visit);
    if n > 0 && numbered {
        return Err(Error::Refused(
            "use either ? or $1, $2, … placeholders in one statement, not both".to_string(),
        ));
    }
    Ok(())
}

/// The process-wide rule compiler (stateless after construction).
pub(crate) fn compiler() -> &'static Arc<RuleCompiler> {
    static COMPILER: OnceLock<Arc<RuleCompiler>> = OnceLock::new();
    COMPILER.get_or_init(|| Arc::new(RuleCompiler::new()))
}

/// Rewrites DataFusion's "no field named" into the uniform message of
/// DESIGN §4.2, so a column that does not exist and one that is not granted
/// are indistinguishable.
fn friendly(e: DataFusionError) -> Error {
    if let DataFusionError::SchemaError(inner, _) = e.find_root()
        && let SchemaError::FieldNotFound { field, .. } = inner.as_ref()
    {
        return Error::DataFusion(DataFusionError::Plan(format!(
            "column \"{}\" not found or not allowed",
            field.name
        )));
    }
    Error::DataFusion(e)
}

impl GovernedPlan {
    /// The token this plan was made for.
    pub fn scope(&self) -> &Arc<TokenScope> {
        &self.scope
    }

    /// The (policy-scoped) logical plan.
    pub fn logical_plan(&self) -> &LogicalPlan {
        &self.plan
    }

    /// The scoped session the plan lives in.
    pub fn context(&self) -> &SessionContext {
        &self.ctx
    }

    /// Sets the number of rows per record batch when the plan runs (the
    /// session's `batch_size`; exports lower it so wide rows stay small).
    pub fn set_batch_size(&self, rows: usize) {
        self.ctx
            .state_ref()
            .write()
            .config_mut()
            .options_mut()
            .execution
            .batch_size = rows.max(1);
    }

    /// The secure views the statement reads (each table once, in plan
    /// order), including tables in subqueries and `vector_search` calls.
    pub fn secure_views(&self) -> Vec<Arc<SecureView>> {
        use datafusion::common::tree_node::TreeNodeRecursion;
        use datafusion::datasource::source_as_provider;
        let mut views: Vec<Arc<SecureView>> = Vec::new();
        let _ = self.plan.apply_with_subqueries(|node| {
            if let LogicalPlan::TableScan(scan) = node
                && let Ok(provider) = source_as_provider(&scan.source)
            {
                let any = provider.as_any();
                let view = any
                    .downcast_ref::<crate::secure_view::SecureViewProvider>()
                    .map(|p| Arc::clone(p.view()))
                    .or_else(|| {
                        any.downcast_ref::<crate::vector_search::VectorSearchTable>()
                            .map(|t| Arc::clone(t.view()))
                    });
                if let Some(v) = view
                    && !views.iter().any(|w| w.table == v.table)
                {
                    views.push(v);
                }
            }
            Ok(TreeNodeRecursion::Continue)
        });
        views
    }

    /// The Arrow schema of the result, as announced to clients before the
    /// statement runs. Every field is nullable (the physical plan may be
    /// less precise about nullability than the logical one), and the result
    /// stream is conformed to exactly this schema.
    pub fn schema(&self) -> SchemaRef {
        announced_schema(self.plan.schema().as_arrow())
    }

    /// Types of the placeholders `$1..$n`, in order (`None` when DataFusion
    /// cannot infer one).
    pub fn parameter_types(&self) -> Result<Vec<Option<DataType>>> {
        let types = self.plan.get_parameter_types()?;
        let mut ordered: Vec<(usize, Option<DataType>)> = types
            .into_iter()
            .map(|(k, v)| {
                let idx = k.trim_start_matches('$').parse::<usize>().map_err(|_| {
                    Error::Refused(format!(
                        "named parameter {k} is not supported; use $1, $2, … or ?"
                    ))
                })?;
                Ok((idx, v))
            })
            .collect::<Result<_>>()?;
        ordered.sort_by_key(|(i, _)| *i);
        Ok(ordered.into_iter().map(|(_, t)| t).collect())
    }

    /// Replaces the placeholders with `params` (in order).
    pub fn bind(self, params: Vec<ScalarValue>) -> Result<GovernedPlan> {
        if params.is_empty() && self.parameter_types()?.is_empty() {
            return Ok(self);
        }
        let plan = self.plan.with_param_values(params)?;
        Ok(GovernedPlan { plan, ..self })
    }

    /// Optimises and runs the plan; the stream stops after `row_limit` rows.
    pub async fn execute(self) -> Result<GovernedStream> {
        let limit = self.scope.row_limit;
        let announced = self.schema();
        if let LogicalPlan::Explain(explain) = &self.plan
            && !self.scope.admin
        {
            let batch = explain_redacted(&self.ctx, explain).await?;
            let stream = MemoryStream::try_new(vec![batch], Arc::clone(&announced), None)?;
            return Ok(GovernedStream::new(Box::pin(stream), limit).conform_to(announced));
        }
        let plan = match &self.plan {
            // One row more than the limit tells a truncated result from a complete one.
            LogicalPlan::Explain(_) | LogicalPlan::DescribeTable(_) | LogicalPlan::Analyze(_) => {
                self.plan
            }
            _ => LogicalPlanBuilder::from(self.plan)
                .limit(
                    0,
                    Some(usize::try_from(limit.saturating_add(1)).unwrap_or(usize::MAX)),
                )?
                .build()?,
        };
        let df = self
            .ctx
            .execute_logical_plan(plan)
            .await
            .map_err(friendly)?;
        let stream = df.execute_stream().await.map_err(friendly)?;
        Ok(GovernedStream::new(stream, limit).conform_to(announced))
    }
}

fn announced_schema(schema: &arrow::datatypes::Schema) -> SchemaRef {
    let fields: Vec<arrow::datatypes::FieldRef> = schema
        .fields()
        .iter()
        .map(|f| Arc::new(f.as_ref().clone().with_nullable(true)))
        .collect();
    Arc::new(arrow::datatypes::Schema::new_with_metadata(
        fields,
        schema.metadata().clone(),
    ))
}

/// Gives `batch` exactly `schema`'s fields, casting (strictly: a value that
/// does not fit is an error, never NULL) columns whose type differs: the
/// physical plan chose another (e.g. Int32 for a UNION the logical plan
/// typed Int64), or a federation peer answered with another. The columns
/// are taken in order; a batch without columns keeps its row count.
pub fn conform(batch: RecordBatch, schema: &SchemaRef) -> datafusion::error::Result<RecordBatch> {
    if batch.schema_ref().as_ref() == schema.as_ref() {
        return Ok(batch);
    }
    let columns = batch
        .columns()
        .iter()
        .zip(schema.fields())
        .map(|(c, f)| {
            if c.data_type() == f.data_type() {
                Ok(Arc::clone(c))
            } else {
                let strict = arrow::compute::CastOptions {
                    safe: false,
                    ..Default::default()
                };
                arrow::compute::cast_with_options(c, f.data_type(), &strict)
            }
        })
        .collect::<Result<Vec<_>, _>>()?;
    let options =
        arrow::record_batch::RecordBatchOptions::new().with_row_count(Some(batch.num_rows()));
    Ok(RecordBatch::try_new_with_options(
        Arc::clone(schema),
        columns,
        &options,
    )?)
}

/// EXPLAIN for tokens that are not admins, rendered from the plan tree:
/// every node above a secure view as DataFusion shows it, each
/// `SecureViewExec` in its short form (table, masks, whether rows are
/// filtered) and nothing below it: the connector scan and the policy filter
/// read hidden columns. Built from the tree, not by editing text, so no
/// literal can change what is shown.
async fn explain_redacted(
    ctx: &SessionContext,
    explain: &datafusion::logical_expr::Explain,
) -> Result<RecordBatch> {
    use arrow::array::StringArray;
    use datafusion::physical_plan::displayable;
    let state = ctx.state();
    let optimized = state.optimize(&explain.plan).map_err(friendly)?;
    let physical = state
        .create_physical_plan(&explain.plan)
        .await
        .map_err(friendly)?;
    let mut lines = Vec::new();
    render_redacted(&physical, 0, &mut lines, &|p| {
        displayable(p).one_line().to_string()
    });
    let kinds = StringArray::from(vec!["logical_plan", "physical_plan"]);
    let plans = StringArray::from(vec![
        optimized.display_indent().to_string(),
        lines.join("\n"),
    ]);
    let schema = Arc::new(explain.schema.as_arrow().clone());
    Ok(
        RecordBatch::try_new(schema, vec![Arc::new(kinds), Arc::new(plans)])
            .map_err(DataFusionError::from)?,
    )
}

fn render_redacted(
    plan: &Arc<dyn datafusion::physical_plan::ExecutionPlan>,
    depth: usize,
    out: &mut Vec<String>,
    show: &dyn Fn(&dyn datafusion::physical_plan::ExecutionPlan) -> String,
) {
    let pad = "  ".repeat(depth);
    if let Some(view) = plan.as_any().downcast_ref::<SecureViewExec>() {
        out.push(format!("{pad}{}", view.short_display()));
        return;
    }
    // Scheduling wrappers (see `coop`) say nothing about the query.
    if plan.name() == "CooperativeExec" {
        for child in plan.children() {
            render_redacted(child, depth, out, show);
        }
        return;
    }
    out.push(format!("{pad}{}", show(plan.as_ref()).trim_end()));
    for child in plan.children() {
        render_redacted(child, depth + 1, out, show);
    }
}

impl GovernedStream {
    /// Caps `inner` at `limit` rows.
    pub fn new(inner: SendableRecordBatchStream, limit: u64) -> Self {
        Self {
            inner,
            remaining: limit,
            truncated: Arc::new(AtomicBool::new(false)),
            done: false,
            schema: None,
        }
    }

    /// Conforms every batch to `schema` (see [`GovernedPlan::schema`]).
    pub fn conform_to(mut self, schema: SchemaRef) -> Self {
        self.schema = Some(schema);
        self
    }

    /// Whether rows were cut so far (final once the stream has ended).
    pub fn truncated(&self) -> bool {
        self.truncated.load(Ordering::Acquire)
    }

    /// A handle to the truncation flag that outlives the stream.
    pub fn truncation_flag(&self) -> Arc<AtomicBool> {
        Arc::clone(&self.truncated)
    }
}

impl Stream for GovernedStream {
    type Item = datafusion::error::Result<RecordBatch>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        loop {
            if self.done {
                return Poll::Ready(None);
            }
            let batch = match self.inner.as_mut().poll_next(cx) {
                Poll::Ready(Some(Ok(b))) => b,
                Poll::Ready(None) => {
                    self.done = true;
                    return Poll::Ready(None);
                }
                other => return other,
            };
            let batch = match &self.schema {
                Some(schema) => match conform(batch, schema) {
                    Ok(b) => b,
                    Err(e) => return Poll::Ready(Some(Err(e))),
                },
                None => batch,
            };
            let n = batch.num_rows() as u64;
            if n == 0 {
                continue;
            }
            if n <= self.remaining {
                self.remaining -= n;
                return Poll::Ready(Some(Ok(batch)));
            }
            // More rows than allowed: cut, flag, stop pulling.
            self.truncated.store(true, Ordering::Release);
            self.done = true;
            let keep = self.remaining as usize;
            self.remaining = 0;
            if keep == 0 {
                return Poll::Ready(None);
            }
            return Poll::Ready(Some(Ok(batch.slice(0, keep))));
        }
    }
}

impl RecordBatchStream for GovernedStream {
    fn schema(&self) -> SchemaRef {
        self.schema.clone().unwrap_or_else(|| self.inner.schema())
    }
}

impl std::fmt::Debug for GovernedPlan {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GovernedPlan")
            .field("token_id", &self.scope.token_id)
            .field("plan", &self.plan.display_indent().to_string())
            .finish()
    }
}

impl std::fmt::Debug for GovernedStream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GovernedStream")
            .field("remaining", &self.remaining)
            .field("truncated", &self.truncated())
            .finish()
    }
}
