//! A statement planned in a token's scoped session, policy applied: its
//! announced schema, parameters, what it reads, and its run.

use std::sync::Arc;

use arrow::datatypes::{DataType, FieldRef, Schema, SchemaRef};
use datafusion::common::ScalarValue;
use datafusion::common::tree_node::TreeNodeRecursion;
use datafusion::datasource::source_as_provider;
use datafusion::logical_expr::{LogicalPlan, LogicalPlanBuilder};
use datafusion::physical_plan::memory::MemoryStream;
use datafusion::prelude::SessionContext;

use super::plan::friendly;
use super::stream::GovernedStream;
use crate::audit::PlanFacts;
use crate::error::{Error, ErrorKind, Result};
use crate::limits::run::spawn_stream;
use crate::limits::{Limits, Meter, QueryControl, Usage};
use crate::policy::TokenScope;
use crate::secure_view::{SecureView, SecureViewProvider};
use crate::vector_search::VectorSearchTable;

/// A statement planned in a token's scoped session, policy applied.
#[derive(Clone)]
pub struct GovernedPlan {
    scope: Arc<TokenScope>,
    ctx: SessionContext,
    plan: LogicalPlan,
    facts: PlanFacts,
    limits: Arc<Limits>,
    control: Arc<QueryControl>,
}

impl GovernedPlan {
    /// The plan of `scope` in its session `ctx`, with its facts.
    pub(super) fn new(
        scope: Arc<TokenScope>,
        ctx: SessionContext,
        plan: LogicalPlan,
        limits: Arc<Limits>,
        control: Arc<QueryControl>,
    ) -> Self {
        let views = secure_views(&plan);
        let schema = announced_schema(plan.schema().as_arrow());
        let facts = PlanFacts::of(&plan, &views, &schema);
        Self {
            scope,
            ctx,
            plan,
            facts,
            limits,
            control,
        }
    }

    /// The token this plan was made for.
    pub fn scope(&self) -> &Arc<TokenScope> {
        &self.scope
    }

    /// The (policy-scoped) logical plan.
    pub fn logical_plan(&self) -> &LogicalPlan {
        &self.plan
    }

    /// The limits the plan runs under (and its gateway's runtime).
    pub fn limits(&self) -> &Arc<Limits> {
        &self.limits
    }

    /// The scoped session the plan lives in.
    pub fn context(&self) -> &SessionContext {
        &self.ctx
    }

    /// What the plan reads and what policy does to it: the client's
    /// receipt (before execution: not truncated) and the audit facts. The
    /// governor has recorded them in the request's audit facts already.
    pub fn facts(&self) -> &PlanFacts {
        &self.facts
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
        secure_views(&self.plan)
    }

    /// The Arrow schema of the result, as announced to clients before the
    /// statement runs. Every field is nullable (the physical plan may be
    /// less precise about nullability than the logical one), view types
    /// are plain ([`super::wire`]), and the result stream is conformed to
    /// exactly this schema.
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
                    Error::refused(
                        ErrorKind::InvalidParameters,
                        format!("named parameter {k} is not supported; use $1, $2, … or ?"),
                    )
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

    /// Lets the plan run as long as its stream is read (exports: their
    /// jobs have their own cancellation); planning was bounded already.
    pub fn without_time_limit(self) -> Self {
        self.control.clear_deadline();
        self
    }

    /// Moves the statement's deadline `by` later: time its frontend kept
    /// it waiting for a slot of its own (Trino's `QUEUED`).
    pub fn postpone_deadline(&self, by: std::time::Duration) {
        self.control.postpone(by);
    }

    /// Optimises and runs the plan; the stream stops after `row_limit` rows.
    ///
    /// It waits for an execution slot (admission), runs on the execution
    /// runtime within the statement's time limit (counted from planning,
    /// not counting waits for a slot),
    /// and stops when the returned stream is dropped.
    pub async fn execute(self) -> Result<GovernedStream> {
        let limit = self.scope.row_limit;
        let announced = self.schema();
        let now = chrono::Utc::now();
        let ledger = &self.limits.ledger;
        ledger.check(&self.scope.token_id, &self.scope.budget, now)?;
        if let Some(usage) = self.ctx.state().config().get_extension::<Usage>() {
            usage.meter_to(Some(Meter::new(
                Arc::clone(ledger),
                self.scope.token_id.clone(),
                self.scope.budget.clone(),
            )));
        }
        let charge = self.charge();
        if let LogicalPlan::Explain(explain) = &self.plan
            && !self.scope.is_admin()
        {
            let batch = super::explain::redacted(&self.ctx, explain).await?;
            let stream = MemoryStream::try_new(vec![batch], Arc::clone(&announced), None)?;
            return Ok(GovernedStream::new(Box::pin(stream), limit).conform_to(announced));
        }
        let plan = match &self.plan {
            LogicalPlan::Explain(_) | LogicalPlan::DescribeTable(_) | LogicalPlan::Analyze(_) => {
                self.plan
            }
            // One row more than the limit tells a truncated result from a
            // complete one.
            _ => LogicalPlanBuilder::from(self.plan)
                .limit(
                    0,
                    Some(usize::try_from(limit.saturating_add(1)).unwrap_or(usize::MAX)),
                )?
                .build()?,
        };
        let queued = std::time::Instant::now();
        let slot = self.limits.admission.admit(&self.scope.token_id).await?;
        // The time limit counts planning and running, not waiting for a
        // slot (which `limits.queue_timeout` bounds).
        self.control.postpone(queued.elapsed());
        self.control
            .start_unless_started(self.limits.query_timeout(self.scope.query_timeout));
        let ctx = self.ctx;
        // The run holds the query's capped share of the memory pool (the
        // session's own pool lends nothing, see `BaseState`).
        let runtime_env = self.limits.memory.query_runtime();
        let start = async move {
            let frame = ctx.execute_logical_plan(plan).await?;
            let task = Arc::new(frame.task_ctx().with_runtime(runtime_env));
            let physical = frame.create_physical_plan().await?;
            datafusion::physical_plan::execute_stream(physical, task)
        };
        let runtime = self.limits.runtime.handle();
        let stream = spawn_stream(runtime, Arc::clone(&announced), start, self.control, slot)
            .await
            .map_err(|e| match e {
                Error::DataFusion(e) => friendly(e),
                other => other,
            })?;
        Ok(GovernedStream::new(stream, limit)
            .conform_to(announced)
            .on_end(charge))
    }

    /// What charges a run once its stream ends: the bytes its secure views
    /// read and the rows it returned, to the token's budget and to the
    /// audit record of the request that runs it, if it is current here
    /// (Flight SQL's `DoGet`; Trino records the figure when the query's
    /// last page is fetched, see [`GovernedStream::bytes_scanned`]).
    fn charge(&self) -> impl FnOnce(u64) -> u64 + Send + 'static {
        let usage = self.ctx.state().config().get_extension::<Usage>();
        let limits = Arc::clone(&self.limits);
        let token = self.scope.token_id.clone();
        let audit = crate::audit::current();
        move |rows| {
            // Metered bytes were charged as they were read.
            let (bytes, unmetered) = usage.map_or((0, 0), |u| u.take_bytes_scanned());
            limits
                .ledger
                .charge(&token, unmetered, rows, chrono::Utc::now());
            if let Some(audit) = audit {
                audit.update(|a| a.bytes_scanned += bytes);
            }
            bytes
        }
    }
}

/// The secure views `plan` reads (each table once, in plan order).
fn secure_views(plan: &LogicalPlan) -> Vec<Arc<SecureView>> {
    let mut views: Vec<Arc<SecureView>> = Vec::new();
    let _ = plan.apply_with_subqueries(|node| {
        if let LogicalPlan::TableScan(scan) = node
            && let Ok(provider) = source_as_provider(&scan.source)
        {
            let any = provider.as_any();
            let view = any
                .downcast_ref::<SecureViewProvider>()
                .map(|p| Arc::clone(p.view()))
                .or_else(|| {
                    any.downcast_ref::<VectorSearchTable>()
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

impl std::fmt::Debug for GovernedPlan {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GovernedPlan")
            .field("token_id", &self.scope.token_id)
            .field("plan", &self.plan.display_indent().to_string())
            .finish()
    }
}

/// The result's wire schema ([`super::wire`]) with every column nullable.
fn announced_schema(schema: &Schema) -> SchemaRef {
    let wire = super::wire::wire_schema(schema);
    let fields: Vec<FieldRef> = wire
        .fields()
        .iter()
        .map(|f| Arc::new(f.as_ref().clone().with_nullable(true)))
        .collect();
    Arc::new(Schema::new_with_metadata(fields, wire.metadata().clone()))
}
