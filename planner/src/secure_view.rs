//! The secure view: how one table looks to one token (DESIGN §4).
//!
//! [`SecureViewProvider`] wraps the connector's table provider. Its schema
//! has only the visible columns (granted, not attachment / vector unless
//! allowed), masked columns typed as their mask's output. Its scan builds
//!
//! ```text
//! SecureViewExec            <- barrier: no filter, limit, projection or sort
//!   ProjectionExec (masks)     pushdown passes through it from above
//!     FilterExec (row policy)
//!       <connector scan>    <- policy predicates (and safe user predicates)
//!                              also handed to the connector for pruning
//! ```
//!
//! The barrier is what guarantees DESIGN §4.5: DataFusion's optimizers may
//! move user predicates down to the secure view but never below it, so a
//! user expression is only ever evaluated on rows the policy has already
//! admitted, and only on masked values. Predicates handed to the connector
//! are pruning hints: they are re-applied above, and only predicates that
//! cannot fail and do not touch masked columns are handed down.

use std::any::Any;
use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::sync::Arc;

use arrow::datatypes::{DataType, Field, FieldRef, Schema, SchemaRef};
use arrow::record_batch::{RecordBatch, RecordBatchOptions};
use async_trait::async_trait;
use datafusion::catalog::Session;
use datafusion::common::tree_node::{Transformed, TreeNode};
use datafusion::common::{Column, DFSchema, Result};
use datafusion::datasource::{TableProvider, TableType};
use datafusion::execution::{SendableRecordBatchStream, TaskContext};
use datafusion::logical_expr::{Expr, Operator, TableProviderFilterPushDown};
use datafusion::physical_expr::EquivalenceProperties;
use datafusion::physical_plan::filter::FilterExec;
use datafusion::physical_plan::projection::ProjectionExec;
use datafusion::physical_plan::stream::RecordBatchStreamAdapter;
use datafusion::physical_plan::{
    DisplayAs, DisplayFormatType, ExecutionPlan, ExecutionPlanProperties, PlanProperties,
};
use datafusion::prelude::{col, lit};
use futures::StreamExt;
use sha2::{Digest, Sha256};

use crate::error::opaque_failure;
use crate::limits::budget::Usage;
use crate::masks::{MaskKey, mask_expr, masked_type};
use crate::policy::{Grant, Mask, TableClass, TokenScope};
use crate::rules::RuleCompiler;

/// One column of a secure view.
#[derive(Debug, Clone)]
pub struct ViewColumn {
    /// Name (same as in the underlying table).
    pub name: String,
    /// Index in the underlying table's schema.
    pub source_index: usize,
    /// Mask applied, if any.
    pub mask: Option<Mask>,
}

/// The compiled policy of one table for one token.
#[derive(Debug)]
pub struct SecureView {
    /// Fully qualified name (`catalog.namespace.table`).
    pub table: String,
    /// Visible columns, in the table's order.
    pub columns: Vec<ViewColumn>,
    /// Columns of the table that the token cannot see (not granted,
    /// attachment or vector).
    pub blocked_columns: Vec<String>,
    /// Columns the grant names explicitly but the token's flags withhold,
    /// with the reason (`attachment` or `vector`): what an export's manifest
    /// lists as left out. Columns that are not named are never listed.
    pub withheld_columns: Vec<(String, &'static str)>,
    /// The row policy over the underlying table's columns; `None` = all rows.
    pub predicate: Option<Expr>,
    /// Conjuncts equivalent to the policy, simple enough to hand to the
    /// connector for pruning.
    pub pruning: Vec<Expr>,
    /// Whether `pruning` is the whole policy: a row is visible iff every
    /// conjunct is TRUE (none had to be left out as unsafe).
    pub pruning_complete: bool,
    /// Granted, unmasked vector columns `vector_search` may rank by
    /// (readable or not).
    pub searchable_vectors: Vec<String>,
    /// Short hash identifying the policy (grant, bound attributes, flags).
    pub fingerprint: String,
    /// Key of the `hash` mask (keyed BLAKE3); `None`: plain BLAKE3.
    pub mask_key: Option<MaskKey>,
    source_schema: SchemaRef,
    schema: SchemaRef,
}

impl SecureView {
    /// Compiles the view of `table` (schema `source`) under `grant`.
    pub fn compile(
        table: &str,
        source: SchemaRef,
        grant: &Grant,
        scope: &TokenScope,
        class: &TableClass,
        compiler: &RuleCompiler,
        mask_key: Option<&MaskKey>,
    ) -> Result<Self, String> {
        let is_attachment = |f: &Field| class.attachment_columns.iter().any(|c| c == f.name());
        let is_vector = |f: &Field| match &class.vector_columns {
            Some(cols) => cols.iter().any(|c| c == f.name()),
            None => is_float_list(f.data_type()),
        };
        let hidden_kind = |f: &Field| -> Option<&'static str> {
            if is_attachment(f) && !scope.allow_attachments {
                return Some("attachment");
            }
            (is_vector(f) && !scope.can_export_vectors).then_some("vector")
        };
        let is_masked = |f: &Field| grant.masks.keys().any(|c| c.eq_ignore_ascii_case(f.name()));
        // Vector search may rank by a granted, unmasked float-list vector
        // even when the token cannot read the vector itself.
        let searchable_vectors: Vec<String> = source
            .fields()
            .iter()
            .filter(|f| {
                is_vector(f)
                    && is_float_list(f.data_type())
                    && grant.columns.contains(f.name())
                    && (scope.allow_attachments || !is_attachment(f))
                    && !is_masked(f)
            })
            .map(|f| f.name().clone())
            .collect();

        // An exact grant must name existing columns. A glob grant's columns
        // and masks apply to the tables that have them (validation checks
        // that each name exists in at least one matched table).
        let is_glob = grant.table.ends_with('*');
        if !is_glob {
            if let crate::policy::Columns::List(cols) = &grant.columns {
                for c in cols {
                    if source.field_with_name(c).is_err() {
                        return Err(format!("grant on {table}: unknown column \"{c}\""));
                    }
                }
            }
            for c in grant.masks.keys() {
                if source.field_with_name(c).is_err() {
                    return Err(format!("grant on {table}: mask on unknown column \"{c}\""));
                }
            }
        }
        for c in grant.masks.keys() {
            if let crate::policy::Columns::List(cols) = &grant.columns
                && !cols.iter().any(|g| g.eq_ignore_ascii_case(c))
            {
                return Err(format!(
                    "grant on {table}: mask on column \"{c}\" which is not granted"
                ));
            }
        }

        let mut columns = Vec::new();
        let mut blocked_columns = Vec::new();
        let mut withheld_columns = Vec::new();
        let mut fields = Vec::new();
        for (i, f) in source.fields().iter().enumerate() {
            let granted = grant.columns.contains(f.name());
            // Only columns the grant names: a `*` or glob grant never
            // reveals the names of columns the token cannot see.
            let named = matches!(&grant.columns, crate::policy::Columns::List(_));
            if let (true, true, Some(kind)) = (granted, named, hidden_kind(f)) {
                withheld_columns.push((f.name().clone(), kind));
            }
            if !granted || hidden_kind(f).is_some() {
                blocked_columns.push(f.name().clone());
                continue;
            }
            // Masks match column names case-insensitively: a mask must never
            // miss its column over a difference in case.
            let mask = grant
                .masks
                .iter()
                .find(|(c, _)| c.eq_ignore_ascii_case(f.name()))
                .map(|(_, m)| *m);
            fields.push(match &mask {
                // Connector metadata (Iceberg's field ids) would reveal how many
                // columns are hidden and where: drop it.
                None => Field::new(f.name(), plain_type(f.data_type()), f.is_nullable()),
                Some(m) => Field::new(f.name(), plain_type(&masked_type(m, f.data_type())), true),
            });
            columns.push(ViewColumn {
                name: f.name().clone(),
                source_index: i,
                mask,
            });
        }

        let df_schema = DFSchema::try_from(Arc::clone(&source))
            .map_err(|e| format!("table {table}: {}", e.strip_backtrace()))?;
        let compile = |rule: &String| compiler.compile(rule, &scope.attributes, &df_schema);
        let allow = grant
            .allow_rules
            .iter()
            .map(compile)
            .collect::<Result<Vec<_>, _>>()?;
        let deny = grant
            .deny_rules
            .iter()
            .map(compile)
            .collect::<Result<Vec<_>, _>>()?;

        // Enforcement: sensitivity <= clearance IS TRUE
        //          AND (allow_1 IS TRUE OR …)      (when there are allow rules)
        //          AND deny_i IS FALSE              (TRUE or NULL hides the row)
        // Pruning hints are the same conditions in a form a connector can use:
        // each keeps exactly the rows where it is TRUE.
        let mut enforce = Vec::new();
        let mut pruning: Vec<Expr> = Vec::new();
        if let Some(sc) = &class.sensitivity_column {
            let f = source.field_with_name(sc).map_err(|_| {
                format!("table {table}: sensitivity column \"{sc}\" does not exist")
            })?;
            if !f.data_type().is_integer() {
                return Err(format!(
                    "table {table}: sensitivity column \"{sc}\" must be an integer column, not {}",
                    f.data_type()
                ));
            }
            let c = Expr::Column(Column::new_unqualified(sc));
            let cond = c.lt_eq(lit(scope.max_sensitivity));
            enforce.push(cond.clone().is_true());
            pruning.push(cond);
        }
        if !allow.is_empty() {
            let any = allow.iter().cloned().reduce(Expr::or).expect("non-empty");
            enforce.push(
                allow
                    .iter()
                    .map(|e| e.clone().is_true())
                    .reduce(Expr::or)
                    .expect("non-empty"),
            );
            pruning.push(any);
        }
        for d in deny {
            enforce.push(d.clone().is_false());
            pruning.push(Expr::Not(Box::new(d)));
        }
        // Enforcement runs in a FilterExec, which keeps exactly the rows whose
        // predicate is TRUE. There, `c1 AND (a1 OR a2) AND NOT d` keeps the
        // same rows as the spelled-out `c1 IS TRUE AND (a1 IS TRUE OR …) AND
        // d IS FALSE` (NULL and FALSE are both dropped), and once coerced and
        // simplified it is cheaper (casts unwrapped, no IS wrappers). The
        // spelled-out form is the fallback if simplification fails.
        let spelled_out = enforce.into_iter().reduce(Expr::and);
        let predicate = match pruning.iter().cloned().reduce(Expr::and) {
            Some(plain) => compiler.normalize(plain, &df_schema).ok().or(spelled_out),
            None => spelled_out,
        };
        // Hints must be typed like the columns (a connector cannot compare a
        // double column with an integer literal) and must not be able to fail.
        let conjuncts = pruning.len();
        let pruning: Vec<Expr> = pruning
            .into_iter()
            .filter_map(|e| compiler.normalize(e, &df_schema).ok())
            .filter(is_safe_predicate)
            .collect();
        let pruning_complete = pruning.len() == conjuncts;

        let fingerprint = {
            let mut h = Sha256::new();
            h.update(serde_json::to_vec(grant).unwrap_or_default());
            h.update(serde_json::to_vec(&scope.attributes).unwrap_or_default());
            h.update(scope.max_sensitivity.to_le_bytes());
            h.update([
                u8::from(scope.allow_attachments),
                u8::from(scope.can_export_vectors),
            ]);
            h.update(serde_json::to_vec(class).unwrap_or_default());
            hex::encode(&h.finalize()[..8])
        };

        Ok(Self {
            table: table.to_string(),
            columns,
            blocked_columns,
            withheld_columns,
            predicate,
            pruning,
            pruning_complete,
            searchable_vectors,
            fingerprint,
            mask_key: mask_key.cloned(),
            schema: Arc::new(Schema::new(fields)),
            source_schema: source,
        })
    }

    /// The view's schema (what the token sees).
    pub fn schema(&self) -> SchemaRef {
        Arc::clone(&self.schema)
    }

    /// Names of masked columns with their masks.
    pub fn masks(&self) -> BTreeMap<String, Mask> {
        self.columns
            .iter()
            .filter_map(|c| c.mask.map(|m| (c.name.clone(), m)))
            .collect()
    }

    /// The underlying table's schema.
    pub fn source_schema(&self) -> &SchemaRef {
        &self.source_schema
    }

    /// Indices (in the underlying table) of the columns a scan must
    /// produce: the view columns `wanted`, those the row policy and `hints`
    /// read, and the source columns `extra`.
    pub fn source_columns(
        &self,
        wanted: &[usize],
        hints: &[Expr],
        extra: &[usize],
    ) -> Result<Vec<usize>> {
        let mut needed: BTreeSet<usize> = wanted
            .iter()
            .map(|i| self.columns[*i].source_index)
            .collect();
        needed.extend(extra);
        let mut referenced = Vec::new();
        if let Some(p) = &self.predicate {
            referenced.extend(p.column_refs().into_iter().cloned());
        }
        for h in hints {
            referenced.extend(h.column_refs().into_iter().cloned());
        }
        for c in referenced {
            needed.insert(self.source_schema.index_of(&c.name)?);
        }
        Ok(needed.into_iter().collect())
    }

    /// Puts the policy on top of `input` (a scan of the underlying table,
    /// named columns): the row filter, then the view columns `wanted`
    /// (masked) followed by `extra` expressions over `input`'s columns,
    /// then the barrier.
    pub fn enforce(
        self: &Arc<Self>,
        state: &dyn Session,
        input: Arc<dyn ExecutionPlan>,
        wanted: &[usize],
        extra: Vec<(Expr, String)>,
    ) -> Result<Arc<dyn ExecutionPlan>> {
        let input_schema = DFSchema::try_from(input.schema())?;
        let mut plan = input;
        if let Some(p) = &self.predicate {
            let predicate = state.create_physical_expr(p.clone(), &input_schema)?;
            plan = Arc::new(FilterExec::try_new(predicate, plan)?);
        }
        let mut exprs = Vec::with_capacity(wanted.len() + extra.len());
        for i in wanted {
            let vc = &self.columns[*i];
            let source_type = self.source_schema.field(vc.source_index).data_type();
            let c = col(Column::new_unqualified(&vc.name));
            let e = match &vc.mask {
                None => c,
                Some(m) => mask_expr(m, c, source_type, self.mask_key.as_ref())?,
            };
            exprs.push((
                state.create_physical_expr(e, &input_schema)?,
                vc.name.clone(),
            ));
        }
        for (e, name) in extra {
            exprs.push((state.create_physical_expr(e, &input_schema)?, name));
        }
        let plan: Arc<dyn ExecutionPlan> = Arc::new(ProjectionExec::try_new(exprs, plan)?);
        Ok(Arc::new(SecureViewExec::new(plan, Arc::clone(self))))
    }
}

/// Whether `t` is a list of floating point numbers (an embedding).
pub fn is_float_list(t: &DataType) -> bool {
    match t {
        DataType::List(f)
        | DataType::LargeList(f)
        | DataType::FixedSizeList(f, _)
        | DataType::ListView(f) => f.data_type().is_floating(),
        _ => false,
    }
}

/// A predicate that cannot raise an error on any row and uses only columns,
/// literals, comparisons and boolean logic. Only such predicates are handed
/// to connectors below the policy filter.
pub fn is_safe_predicate(e: &Expr) -> bool {
    use Operator::*;
    match e {
        Expr::Column(_) | Expr::Literal(..) => true,
        Expr::BinaryExpr(b) => {
            matches!(
                b.op,
                Eq | NotEq | Lt | LtEq | Gt | GtEq | And | Or | IsDistinctFrom | IsNotDistinctFrom
            ) && is_safe_predicate(&b.left)
                && is_safe_predicate(&b.right)
        }
        Expr::Not(x)
        | Expr::IsNull(x)
        | Expr::IsNotNull(x)
        | Expr::IsTrue(x)
        | Expr::IsFalse(x)
        | Expr::IsNotTrue(x)
        | Expr::IsNotFalse(x)
        | Expr::IsUnknown(x)
        | Expr::IsNotUnknown(x) => is_safe_predicate(x),
        Expr::InList(l) => {
            is_safe_predicate(&l.expr) && l.list.iter().all(|x| matches!(x, Expr::Literal(..)))
        }
        Expr::Between(b) => {
            is_safe_predicate(&b.expr) && is_safe_predicate(&b.low) && is_safe_predicate(&b.high)
        }
        Expr::Like(l) => {
            is_safe_predicate(&l.expr)
                && matches!(*l.pattern, Expr::Literal(..))
                && l.escape_char.is_none()
        }
        _ => false,
    }
}

fn unqualify(e: Expr) -> Result<Expr> {
    e.transform(|e| {
        Ok(match e {
            Expr::Column(c) if c.relation.is_some() => {
                Transformed::yes(Expr::Column(Column::new_unqualified(c.name)))
            }
            other => Transformed::no(other),
        })
    })
    .map(|t| t.data)
}

/// Scans the columns `source` of the connector's table `inner`, handing it
/// the `hints` it can use for pruning (it re-applies nothing: the policy
/// filter above does).
pub async fn scan_source(
    inner: &Arc<dyn TableProvider>,
    state: &dyn Session,
    source: &[usize],
    hints: &[Expr],
) -> Result<Arc<dyn ExecutionPlan>> {
    scan_source_limited(inner, state, source, hints, None).await
}

/// [`scan_source`] that may stop after `limit` rows: only pass one when
/// every row the connector returns is kept (no row policy, no filter).
async fn scan_source_limited(
    inner: &Arc<dyn TableProvider>,
    state: &dyn Session,
    source: &[usize],
    hints: &[Expr],
    limit: Option<usize>,
) -> Result<Arc<dyn ExecutionPlan>> {
    let refs: Vec<&Expr> = hints.iter().collect();
    let support = inner.supports_filters_pushdown(&refs)?;
    let pushed: Vec<Expr> = hints
        .iter()
        .zip(support)
        .filter(|(_, s)| *s != TableProviderFilterPushDown::Unsupported)
        .map(|(h, _)| h.clone())
        .collect();
    inner
        .scan(state, Some(&source.to_vec()), &pushed, limit)
        .await
}

/// The table provider presenting a [`SecureView`] over a connector's table.
#[derive(Debug)]
pub struct SecureViewProvider {
    inner: Arc<dyn TableProvider>,
    view: Arc<SecureView>,
}

impl SecureViewProvider {
    /// Wraps `inner` (whose schema the view was compiled against).
    pub fn new(inner: Arc<dyn TableProvider>, view: Arc<SecureView>) -> Self {
        Self { inner, view }
    }

    /// The compiled view.
    pub fn view(&self) -> &Arc<SecureView> {
        &self.view
    }

    /// The connector's table under the view.
    pub fn inner(&self) -> &Arc<dyn TableProvider> {
        &self.inner
    }

    /// User predicates that may be handed to the connector: safe, and
    /// touching only unmasked visible columns.
    fn pushable_user_filter(&self, f: &Expr) -> Option<Expr> {
        let f = unqualify(f.clone()).ok()?;
        if !is_safe_predicate(&f) {
            return None;
        }
        let ok = f.column_refs().iter().all(|c| {
            self.view
                .columns
                .iter()
                .any(|vc| vc.name == c.name && vc.mask.is_none())
        });
        ok.then_some(f)
    }
}

#[async_trait]
impl TableProvider for SecureViewProvider {
    fn as_any(&self) -> &dyn Any {
        self
    }

    fn schema(&self) -> SchemaRef {
        self.view.schema()
    }

    fn table_type(&self) -> TableType {
        TableType::Base
    }

    fn supports_filters_pushdown(
        &self,
        filters: &[&Expr],
    ) -> Result<Vec<TableProviderFilterPushDown>> {
        // Inexact: DataFusion keeps every user filter above the view; the
        // safe ones are also handed to the connector for pruning.
        Ok(vec![TableProviderFilterPushDown::Inexact; filters.len()])
    }

    async fn scan(
        &self,
        state: &dyn Session,
        projection: Option<&Vec<usize>>,
        filters: &[Expr],
        limit: Option<usize>,
    ) -> Result<Arc<dyn ExecutionPlan>> {
        let view = &self.view;
        // DataFusion hands a limit down only when no filter is left above
        // the scan; without a row policy every connector row is kept, so
        // the connector may stop after `limit` rows (a remote peer sends
        // it to the provider as LIMIT).
        let limit = limit.filter(|_| view.predicate.is_none() && filters.is_empty());
        let wanted: Vec<usize> = match projection {
            Some(p) => p.clone(),
            None => (0..view.columns.len()).collect(),
        };

        let mut hints: Vec<Expr> = view.pruning.clone();
        hints.extend(filters.iter().filter_map(|f| self.pushable_user_filter(f)));
        let source_projection = view.source_columns(&wanted, &hints, &[])?;
        // A connector failing while it builds its scan (listing files,
        // asking a backend) answers like one failing while it reads.
        let scan = scan_source_limited(&self.inner, state, &source_projection, &hints, limit)
            .await
            .map_err(|e| opaque_failure(&view.table, &e))?;
        view.enforce(state, scan, &wanted, Vec::new())
    }
}

/// The barrier above a secure view's subtree. It passes batches through
/// unchanged and refuses every pushdown from its parents (filters, dynamic
/// filters, limits, projections, sorts: it claims no input order and no
/// output ordering), so no user expression is evaluated below the policy. It reports unknown statistics, so no aggregate can be
/// answered from the connector's row counts.
#[derive(Debug)]
pub struct SecureViewExec {
    input: Arc<dyn ExecutionPlan>,
    view: Arc<SecureView>,
    schema: SchemaRef,
    /// Per output column: whether the input's type carries nested field
    /// metadata that the output drops (the arrays are cast).
    recast: Arc<[bool]>,
    properties: Arc<PlanProperties>,
}

impl SecureViewExec {
    /// Wraps the policy-enforcing subtree of `view`.
    pub fn new(input: Arc<dyn ExecutionPlan>, view: Arc<SecureView>) -> Self {
        // The output carries no field or schema metadata, nested fields'
        // included: connector metadata (Iceberg field ids) would reveal how
        // many columns are hidden.
        let fields: Vec<Field> = input
            .schema()
            .fields()
            .iter()
            .map(|f| Field::new(f.name(), plain_type(f.data_type()), f.is_nullable()))
            .collect();
        let recast = input
            .schema()
            .fields()
            .iter()
            .zip(&fields)
            .map(|(from, to)| from.data_type() != to.data_type())
            .collect();
        let schema = Arc::new(Schema::new(fields));
        let properties = Arc::new(PlanProperties::new(
            EquivalenceProperties::new(Arc::clone(&schema)),
            input.output_partitioning().clone(),
            input.pipeline_behavior(),
            input.boundedness(),
        ));
        Self {
            input,
            view,
            schema,
            recast,
            properties,
        }
    }

    /// The view this node enforces.
    pub fn view(&self) -> &Arc<SecureView> {
        &self.view
    }

    /// How the node is shown to tokens that are not admins: the table, its
    /// masks and whether rows are filtered; no rule text, no fingerprint,
    /// nothing about hidden columns.
    pub fn short_display(&self) -> String {
        let mut s = format!("SecureViewExec: table={}", self.view.table);
        let masks = self.view.masks();
        if !masks.is_empty() {
            let m: Vec<String> = masks.iter().map(|(c, m)| format!("{c}:{m}")).collect();
            s.push_str(&format!(", masks=[{}]", m.join(", ")));
        }
        s.push_str(if self.view.predicate.is_some() {
            ", rows=filtered"
        } else {
            ", rows=all"
        });
        s
    }
}

impl DisplayAs for SecureViewExec {
    fn fmt_as(&self, _t: DisplayFormatType, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Keep this order: `governor::redact_explain` cuts the line at `, rows=`
        // for tokens that may not see their policy's internals.
        write!(
            f,
            "SecureViewExec: table={}, policy={}",
            self.view.table, self.view.fingerprint
        )?;
        let masks = self.view.masks();
        if !masks.is_empty() {
            let m: Vec<String> = masks.iter().map(|(c, m)| format!("{c}:{m}")).collect();
            write!(f, ", masks=[{}]", m.join(", "))?;
        }
        match &self.view.predicate {
            Some(p) => write!(f, ", rows=[{p}]")?,
            None => write!(f, ", rows=all")?,
        }
        if !self.view.blocked_columns.is_empty() {
            write!(f, ", hidden_columns={}", self.view.blocked_columns.len())?;
        }
        Ok(())
    }
}

impl ExecutionPlan for SecureViewExec {
    fn name(&self) -> &str {
        "SecureViewExec"
    }

    fn as_any(&self) -> &dyn Any {
        self
    }

    fn properties(&self) -> &Arc<PlanProperties> {
        &self.properties
    }

    fn children(&self) -> Vec<&Arc<dyn ExecutionPlan>> {
        vec![&self.input]
    }

    fn maintains_input_order(&self) -> Vec<bool> {
        // `false` keeps sort pushdown from moving a user's ORDER BY (whose
        // expressions could fail or probe on hidden rows) below the barrier.
        vec![false]
    }

    fn benefits_from_input_partitioning(&self) -> Vec<bool> {
        vec![false]
    }

    fn with_new_children(
        self: Arc<Self>,
        mut children: Vec<Arc<dyn ExecutionPlan>>,
    ) -> Result<Arc<dyn ExecutionPlan>> {
        if children.len() != 1 {
            return datafusion::common::internal_err!("SecureViewExec takes exactly one child");
        }
        let input = children.remove(0);
        Ok(Arc::new(SecureViewExec::new(input, Arc::clone(&self.view))))
    }

    fn execute(
        &self,
        partition: usize,
        context: Arc<TaskContext>,
    ) -> Result<SendableRecordBatchStream> {
        let schema = Arc::clone(&self.schema);
        let recast = Arc::clone(&self.recast);
        let table = self.view.table.clone();
        // What leaves the view is what the statement read: its bytes count
        // against the token's budget.
        let usage = context.session_config().get_extension::<Usage>();
        let input = self
            .input
            .execute(partition, context)
            .map_err(|e| opaque_failure(&table, &e))?;
        let batches = input.map(move |batch| {
            // An error below the barrier comes from the row policy, a mask
            // or the connector, and its message may quote values of rows
            // or columns the token cannot see: log it, answer opaquely.
            let batch = batch.map_err(|e| opaque_failure(&table, &e))?;
            if let Some(usage) = &usage {
                usage
                    .scanned(crate::limits::measure::visible_bytes(&batch))
                    .map_err(|e| e.into_datafusion())?;
            }
            let columns = batch
                .columns()
                .iter()
                .zip(schema.fields())
                .zip(recast.iter())
                .map(|((c, f), &recast)| match recast {
                    // Only nested field metadata differs: a relabelling.
                    true => arrow::compute::cast(c, f.data_type()),
                    false => Ok(Arc::clone(c)),
                })
                .collect::<std::result::Result<Vec<_>, _>>()?;
            let options = RecordBatchOptions::new().with_row_count(Some(batch.num_rows()));
            Ok(RecordBatch::try_new_with_options(
                Arc::clone(&schema),
                columns,
                &options,
            )?)
        });
        Ok(Box::pin(RecordBatchStreamAdapter::new(
            Arc::clone(&self.schema),
            batches,
        )))
    }
}

/// `t` without field metadata at any depth (list elements, struct and map
/// fields). Connector metadata on nested fields (Iceberg's element field
/// ids) would leak like a column's, and aggregates that rebuild nested
/// values (`count(DISTINCT list)`) produce types without it.
pub(crate) fn plain_type(t: &DataType) -> DataType {
    map_children(
        t,
        |f| {
            Arc::new(Field::new(
                f.name(),
                plain_type(f.data_type()),
                f.is_nullable(),
            ))
        },
        plain_type,
    )
}

/// `t` with `field` applied to each of its child fields (list elements,
/// struct and map fields) and `value` to a dictionary's value type; other
/// types as they are.
pub(crate) fn map_children(
    t: &DataType,
    field: impl Fn(&FieldRef) -> FieldRef,
    value: impl Fn(&DataType) -> DataType,
) -> DataType {
    match t {
        DataType::List(f) => DataType::List(field(f)),
        DataType::LargeList(f) => DataType::LargeList(field(f)),
        DataType::ListView(f) => DataType::ListView(field(f)),
        DataType::LargeListView(f) => DataType::LargeListView(field(f)),
        DataType::FixedSizeList(f, n) => DataType::FixedSizeList(field(f), *n),
        DataType::Struct(fs) => DataType::Struct(fs.iter().map(field).collect()),
        DataType::Map(f, sorted) => DataType::Map(field(f), *sorted),
        DataType::Dictionary(k, v) => DataType::Dictionary(k.clone(), Box::new(value(v))),
        other => other.clone(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use datafusion::prelude::Expr;

    #[test]
    fn safe_predicates() {
        assert!(is_safe_predicate(
            &col("a").eq(lit(1)).and(col("b").is_null())
        ));
        assert!(is_safe_predicate(
            &col("a").in_list(vec![lit(1), lit(2)], false)
        ));
        assert!(!is_safe_predicate(&(lit(1) / col("a")).eq(lit(1))));
        assert!(!is_safe_predicate(&Expr::Not(Box::new(
            datafusion::prelude::cast(col("a"), DataType::Int32).eq(lit(1))
        ))));
    }

    #[test]
    fn float_lists() {
        let item = Arc::new(Field::new("item", DataType::Float32, true));
        assert!(is_float_list(&DataType::List(Arc::clone(&item))));
        assert!(is_float_list(&DataType::FixedSizeList(item, 8)));
        let ints = Arc::new(Field::new("item", DataType::Int32, true));
        assert!(!is_float_list(&DataType::List(ints)));
    }
}
