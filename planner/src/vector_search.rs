//! The `vector_search(table, query_vector, k [, column] [, metric] [, filter])`
//! table function.
//!
//! It returns the `k` rows of `table` nearest to `query_vector` **among
//! the rows the token may see**: the token's visible columns plus
//! `_distance`, ordered by it (the vector column only with
//! `can_export_vectors`). Ranking happens under the policy:
//!
//! ```text
//! ProjectionExec                      <- columns the query uses
//!   SortExec: _distance, fetch=k      <- top-k of visible rows
//!     FilterExec: _distance IS NOT NULL [AND filter]
//!       SecureViewExec                <- barrier
//!         ProjectionExec (masks, _distance)
//!           FilterExec (row policy)
//!             <native search | connector scan>
//! ```
//!
//! On a table whose connector searches natively (Milvus) the search gets
//! the row policy (and the pre-filter) as its own filter, so its top-k
//! ranks only visible rows; that path is taken only when every conjunct of
//! the policy is evaluated exactly by the backend and the metric is the
//! index's. Otherwise the exact path scans the visible rows and ranks
//! them in sluice. Either way the policy filter above the backend is
//! re-applied, and the distance is computed from the vector below the
//! barrier, so a token that cannot read the vector still gets distances.
//!
//! A `WHERE` on the function's output applies after the top-k (it can
//! only remove rows from the k); the `filter` argument (a SQL boolean
//! expression over the visible columns, seeing masked values) applies
//! before it.

use std::any::Any;
use std::collections::HashMap;
use std::ops::ControlFlow;
use std::sync::{Arc, Mutex};

use arrow::array::{Array, AsArray, ListArray, RecordBatch, RecordBatchOptions};
use arrow::datatypes::{DataType, Field, Float32Type, Schema, SchemaRef};
use async_trait::async_trait;
use datafusion::catalog::{Session, TableFunctionImpl, TableProvider};
use datafusion::common::{Column, DFSchema, Result, ScalarValue, plan_datafusion_err, plan_err};
use datafusion::datasource::TableType;
use datafusion::execution::context::ExecutionProps;
use datafusion::logical_expr::{Expr, TableProviderFilterPushDown};
use datafusion::physical_expr::{PhysicalSortExpr, create_physical_expr};
use datafusion::physical_plan::coalesce_partitions::CoalescePartitionsExec;
use datafusion::physical_plan::filter::FilterExec;
use datafusion::physical_plan::projection::ProjectionExec;
use datafusion::physical_plan::sorts::sort::SortExec;
use datafusion::physical_plan::{ExecutionPlan, ExecutionPlanProperties};
use datafusion::prelude::{SessionContext, col, lit};
use datafusion::sql::TableReference;
use datafusion::sql::parser::Statement as DFStatement;
use datafusion::sql::sqlparser::ast::{
    Expr as SqlExpr, ExprWithAlias, FunctionArg, FunctionArgExpr, TableFactor, Value, Visit,
    Visitor,
};

use crate::connector::{
    DISTANCE_COLUMN, INTERNAL_DISTANCE_COLUMN, NativeSearchLookup, NativeVectorSearch,
};
use crate::error::opaque_failure;
use crate::limits::StatementBounds;
use crate::limits::parse::parse_expr;
use crate::secure_view::{SecureView, SecureViewProvider, scan_source};
use crate::vectors::{DistanceUdf, Metric};

/// The SQL name of the table function.
pub const FUNCTION_NAME: &str = "vector_search";

/// Largest `k` (Milvus' own top-k limit, applied to every backend).
pub const MAX_K: usize = 16_384;

/// A table of one statement, resolved in the token's scoped session.
#[derive(Debug, Clone)]
struct Resolved {
    view: Arc<SecureView>,
    inner: Arc<dyn TableProvider>,
    native: Option<Arc<dyn NativeVectorSearch>>,
    filters: HashMap<String, Expr>,
}

/// The table function of one scoped session. Table functions are planned
/// synchronously, so [`VectorSearchFunction::prepare`] resolves the tables
/// (and pre-filters) a statement names before it is planned.
#[derive(Debug, Default)]
pub struct VectorSearchFunction {
    resolved: Mutex<HashMap<String, Resolved>>,
}

/// The literal arguments of one `vector_search(...)` in a statement.
#[derive(Debug)]
struct Call {
    table: String,
    filter: Option<String>,
}

struct CallFinder(Vec<Call>);

impl Visitor for CallFinder {
    type Break = ();

    fn pre_visit_table_factor(&mut self, factor: &TableFactor) -> ControlFlow<()> {
        if let TableFactor::Table {
            name,
            args: Some(args),
            ..
        } = factor
            && name
                .0
                .last()
                .and_then(|p| p.as_ident())
                .is_some_and(|i| i.value.eq_ignore_ascii_case(FUNCTION_NAME))
        {
            let literal = |i: usize| match args.args.get(i) {
                Some(FunctionArg::Unnamed(FunctionArgExpr::Expr(SqlExpr::Value(v)))) => {
                    match &v.value {
                        Value::SingleQuotedString(s) => Some(s.clone()),
                        _ => None,
                    }
                }
                _ => None,
            };
            if let Some(table) = literal(0) {
                self.0.push(Call {
                    table,
                    filter: literal(5),
                });
            }
        }
        ControlFlow::Continue(())
    }
}

impl VectorSearchFunction {
    /// Resolves the tables of every `vector_search(...)` in `statement`
    /// through `ctx` (the token's scoped session, so a table the token may
    /// not see is "not found" exactly like in `FROM`), and parses their
    /// pre-filters against the views.
    pub async fn prepare(
        &self,
        ctx: &SessionContext,
        statement: &DFStatement,
        native: &HashMap<String, NativeSearchLookup>,
        bounds: &StatementBounds,
    ) -> Result<()> {
        let mut finder = CallFinder(Vec::new());
        match statement {
            DFStatement::Statement(s) => {
                let _ = s.visit(&mut finder);
            }
            DFStatement::Explain(e) => {
                if let DFStatement::Statement(s) = e.statement.as_ref() {
                    let _ = s.visit(&mut finder);
                }
            }
            _ => {}
        }
        for call in finder.0 {
            let known = self
                .resolved
                .lock()
                .expect("vector_search lock")
                .contains_key(&call.table);
            if !known {
                let resolved = resolve(ctx, &call.table, native).await?;
                self.resolved
                    .lock()
                    .expect("vector_search lock")
                    .insert(call.table.clone(), resolved);
            }
            if let Some(text) = call.filter {
                let view = self.resolved.lock().expect("vector_search lock")[&call.table]
                    .view
                    .schema();
                let df_schema = DFSchema::try_from(view)?;
                // Client text inside a string literal: parsed metered and
                // bounded like the statement around it.
                let sql_expr = parse_expr(&text, bounds).map_err(|e| match e {
                    crate::Error::Refused(r) => r.into_datafusion(),
                    crate::Error::DataFusion(e) => plan_datafusion_err!(
                        "vector_search filter {text:?}: {}",
                        e.strip_backtrace()
                    ),
                })?;
                let expr = ctx
                    .state()
                    .create_logical_expr_from_sql_expr(
                        ExprWithAlias {
                            expr: sql_expr,
                            alias: None,
                        },
                        &df_schema,
                    )
                    .map_err(|e| {
                        plan_datafusion_err!(
                            "vector_search filter {text:?}: {}",
                            e.strip_backtrace()
                        )
                    })?;
                check_filter(&expr)?;
                // Typed like the columns, so a backend can evaluate it.
                let expr = crate::rules::RuleCompiler::shared()
                    .normalize(expr.clone(), &df_schema)
                    .unwrap_or(expr);
                self.resolved
                    .lock()
                    .expect("vector_search lock")
                    .get_mut(&call.table)
                    .expect("resolved above")
                    .filters
                    .insert(text, expr);
            }
        }
        Ok(())
    }
}

async fn resolve(
    ctx: &SessionContext,
    table: &str,
    native: &HashMap<String, NativeSearchLookup>,
) -> Result<Resolved> {
    let reference = TableReference::parse_str(table);
    let not_found = || plan_datafusion_err!("table '{table}' not found");
    let resolved_ref = {
        let state = ctx.state();
        let defaults = &state.config().options().catalog;
        reference
            .clone()
            .resolve(&defaults.default_catalog, &defaults.default_schema)
    };
    let provider = ctx
        .table_provider(reference)
        .await
        .map_err(|_| not_found())?;
    let Some(view) = provider.as_any().downcast_ref::<SecureViewProvider>() else {
        return Err(not_found());
    };
    let inner = Arc::clone(view.inner());
    let native = native
        .get(resolved_ref.catalog.as_ref())
        .and_then(|lookup| lookup(&inner));
    Ok(Resolved {
        view: Arc::clone(view.view()),
        inner,
        native,
        filters: HashMap::new(),
    })
}

/// A pre-filter is a plain row expression: no subqueries, aggregates,
/// window functions or volatile functions.
fn check_filter(expr: &Expr) -> Result<()> {
    let mut bad = None;
    expr.apply(|e| {
        let what = match e {
            Expr::ScalarSubquery(_) | Expr::Exists(_) | Expr::InSubquery(_) => Some("a subquery"),
            Expr::AggregateFunction(_) => Some("an aggregate"),
            Expr::WindowFunction(_) => Some("a window function"),
            Expr::Placeholder(_) => Some("a parameter"),
            _ if e.is_volatile_node() => Some("a volatile function"),
            _ => None,
        };
        if let Some(w) = what {
            bad = Some(w);
            return Ok(datafusion::common::tree_node::TreeNodeRecursion::Stop);
        }
        Ok(datafusion::common::tree_node::TreeNodeRecursion::Continue)
    })?;
    match bad {
        Some(w) => plan_err!("vector_search filter must be a row condition, not {w}"),
        None => Ok(()),
    }
}

use datafusion::common::tree_node::TreeNode;

/// Evaluates a constant argument.
fn constant(expr: &Expr, what: &str) -> Result<ScalarValue> {
    if let Expr::Literal(v, _) = expr {
        return Ok(v.clone());
    }
    let schema = DFSchema::empty();
    let physical = create_physical_expr(expr, &schema, &ExecutionProps::new())
        .map_err(|_| plan_datafusion_err!("vector_search: {what} must be a constant"))?;
    if !expr.column_refs().is_empty() {
        return plan_err!("vector_search: {what} must be a constant");
    }
    let batch = RecordBatch::try_new_with_options(
        Arc::new(Schema::empty()),
        vec![],
        &RecordBatchOptions::new().with_row_count(Some(1)),
    )?;
    let value = physical.evaluate(&batch)?.into_array(1)?;
    ScalarValue::try_from_array(&value, 0)
}

fn query_vector(expr: &Expr) -> Result<Vec<f32>> {
    // An array literal arrives uncoerced (`[1, 0.5]` mixes integers and
    // decimals): read its elements one by one.
    if let Expr::ScalarFunction(f) = expr
        && f.name() == "make_array"
    {
        let mut v = Vec::with_capacity(f.args.len());
        for a in &f.args {
            let x = constant(a, "the query vector")?;
            if !x.data_type().is_numeric() {
                return plan_err!("vector_search: the query vector must be an array of numbers");
            }
            match x.cast_to(&DataType::Float32)? {
                ScalarValue::Float32(Some(x)) if x.is_finite() => v.push(x),
                ScalarValue::Float32(None) => {
                    return plan_err!("vector_search: the query vector has NULL elements");
                }
                _ => {
                    return plan_err!("vector_search: the query vector has non-finite elements");
                }
            }
        }
        if v.is_empty() {
            return plan_err!("vector_search: the query vector is empty");
        }
        return Ok(v);
    }
    let value = constant(expr, "the query vector")?;
    let array = match &value {
        ScalarValue::List(a) => a.value(0),
        ScalarValue::LargeList(a) => a.value(0),
        ScalarValue::FixedSizeList(a) => a.value(0),
        _ => return plan_err!("vector_search: the query vector must be an array of numbers"),
    };
    if !array.data_type().is_numeric() {
        return plan_err!("vector_search: the query vector must be an array of numbers");
    }
    if array.null_count() > 0 {
        return plan_err!("vector_search: the query vector has NULL elements");
    }
    let floats = arrow::compute::cast(&array, &DataType::Float32)?;
    let v: Vec<f32> = floats.as_primitive::<Float32Type>().values().to_vec();
    if v.is_empty() {
        return plan_err!("vector_search: the query vector is empty");
    }
    if v.iter().any(|x| !x.is_finite()) {
        return plan_err!("vector_search: the query vector has non-finite elements");
    }
    Ok(v)
}

fn optional_string(args: &[Expr], i: usize, what: &str) -> Result<Option<String>> {
    let Some(e) = args.get(i) else {
        return Ok(None);
    };
    match constant(e, what)? {
        ScalarValue::Utf8(s) | ScalarValue::LargeUtf8(s) | ScalarValue::Utf8View(s) => Ok(s),
        ScalarValue::Null => Ok(None),
        _ => plan_err!("vector_search: {what} must be a string or NULL"),
    }
}

/// Parses a metric name (`cosine`, `l2`, `ip` and spellings).
pub fn parse_metric(s: &str) -> Result<Metric> {
    match s.trim().to_ascii_lowercase().as_str() {
        "cosine" | "cosine_distance" => Ok(Metric::Cosine),
        "l2" | "l2_distance" | "euclidean" => Ok(Metric::L2),
        "ip" | "inner_product" | "dot" => Ok(Metric::InnerProduct),
        other => plan_err!(
            "vector_search: unknown metric {other:?} (use 'cosine', 'l2' or 'inner_product')"
        ),
    }
}

impl TableFunctionImpl for VectorSearchFunction {
    fn call(&self, args: &[Expr]) -> Result<Arc<dyn TableProvider>> {
        if !(3..=6).contains(&args.len()) {
            return plan_err!(
                "vector_search(table, query_vector, k [, column] [, metric] [, filter]) takes \
                 3 to 6 arguments, got {}",
                args.len()
            );
        }
        let table = match &args[0] {
            Expr::Literal(ScalarValue::Utf8(Some(s)), _) => s.clone(),
            _ => {
                return plan_err!(
                    "vector_search: the table must be a string literal such as 'catalog.schema.table'"
                );
            }
        };
        let resolved = self
            .resolved
            .lock()
            .expect("vector_search lock")
            .get(&table)
            .cloned()
            .ok_or_else(|| plan_datafusion_err!("table '{table}' not found"))?;
        let vector = query_vector(&args[1])?;
        let k = match constant(&args[2], "k")? {
            v if v.data_type().is_integer() => match v.cast_to(&DataType::Int64)? {
                ScalarValue::Int64(Some(k)) if k >= 1 && k as usize <= MAX_K => k as usize,
                _ => return plan_err!("vector_search: k must be between 1 and {MAX_K}"),
            },
            _ => return plan_err!("vector_search: k must be an integer"),
        };
        let view = &resolved.view;
        let column = match optional_string(args, 3, "the column")? {
            Some(c) => view
                .searchable_vectors
                .iter()
                .find(|v| v.eq_ignore_ascii_case(&c))
                .cloned()
                .ok_or_else(|| {
                    plan_datafusion_err!(
                        "vector_search: column \"{c}\" not found or not a searchable vector \
                         column of {table}"
                    )
                })?,
            None => match view.searchable_vectors.as_slice() {
                [only] => only.clone(),
                [] => return plan_err!("vector_search: {table} has no searchable vector column"),
                many => {
                    return plan_err!(
                        "vector_search: {table} has several vector columns ({}); name one as \
                         the fourth argument",
                        many.join(", ")
                    );
                }
            },
        };
        let source_index = view.source_schema().index_of(&column)?;
        if let DataType::FixedSizeList(_, n) = view.source_schema().field(source_index).data_type()
            && *n as usize != vector.len()
        {
            return plan_err!(
                "vector_search: the query vector has {} dimensions, column \"{column}\" has {n}",
                vector.len()
            );
        }
        let index_metric = resolved
            .native
            .as_ref()
            .and_then(|n| n.index_metric(&column));
        let metric = match optional_string(args, 4, "the metric")? {
            Some(m) => parse_metric(&m)?,
            None => index_metric.unwrap_or(Metric::Cosine),
        };
        let filter = match optional_string(args, 5, "the filter")? {
            Some(text) => Some(resolved.filters.get(&text).cloned().ok_or_else(|| {
                plan_datafusion_err!("vector_search: the filter must be a string literal")
            })?),
            None => None,
        };
        if view.schema().field_with_name(DISTANCE_COLUMN).is_ok() {
            return plan_err!(
                "vector_search: {table} has a column named {DISTANCE_COLUMN}, which the result \
                 needs for the distance"
            );
        }
        let mut fields: Vec<Field> = view
            .schema()
            .fields()
            .iter()
            .map(|f| f.as_ref().clone())
            .collect();
        fields.push(Field::new(DISTANCE_COLUMN, DataType::Float64, true));
        Ok(Arc::new(VectorSearchTable {
            native: resolved
                .native
                .clone()
                .filter(|_| index_metric == Some(metric)),
            resolved,
            column,
            source_index,
            vector,
            k,
            metric,
            filter,
            schema: Arc::new(Schema::new(fields)),
        }))
    }
}

/// The result of one `vector_search(...)` call.
#[derive(Debug)]
pub struct VectorSearchTable {
    resolved: Resolved,
    /// The native search, when the metric is the index's.
    native: Option<Arc<dyn NativeVectorSearch>>,
    column: String,
    source_index: usize,
    vector: Vec<f32>,
    k: usize,
    metric: Metric,
    filter: Option<Expr>,
    schema: SchemaRef,
}

impl VectorSearchTable {
    /// The secure view of the searched table.
    pub fn view(&self) -> &Arc<SecureView> {
        &self.resolved.view
    }

    /// The native search with its filters, when it ranks exactly the
    /// visible rows (and the pre-filter's).
    fn native_plan(&self) -> Option<(Arc<dyn NativeVectorSearch>, Vec<Expr>)> {
        let native = self.native.as_ref()?;
        let view = &self.resolved.view;
        if !view.pruning_complete {
            return None;
        }
        let mut filters = view.pruning.clone();
        if let Some(f) = &self.filter {
            // The pre-filter sees masked values; the backend sees raw ones.
            let unmasked = f.column_refs().iter().all(|c| {
                view.columns
                    .iter()
                    .any(|vc| vc.name == c.name && vc.mask.is_none())
            });
            if !unmasked {
                return None;
            }
            filters.push(f.clone());
        }
        filters
            .iter()
            .all(|f| native.filter_is_exact(f))
            .then(|| (Arc::clone(native), filters))
    }
}

#[async_trait]
impl TableProvider for VectorSearchTable {
    fn as_any(&self) -> &dyn Any {
        self
    }

    fn schema(&self) -> SchemaRef {
        Arc::clone(&self.schema)
    }

    fn table_type(&self) -> TableType {
        TableType::Temporary
    }

    fn supports_filters_pushdown(
        &self,
        filters: &[&Expr],
    ) -> Result<Vec<TableProviderFilterPushDown>> {
        // A WHERE on the output filters the k results; it never reaches
        // below the ranking.
        Ok(vec![
            TableProviderFilterPushDown::Unsupported;
            filters.len()
        ])
    }

    async fn scan(
        &self,
        state: &dyn Session,
        projection: Option<&Vec<usize>>,
        _filters: &[Expr],
        _limit: Option<usize>,
    ) -> Result<Arc<dyn ExecutionPlan>> {
        let view = &self.resolved.view;
        // The view columns the query reads (and the pre-filter needs).
        let n = view.columns.len();
        let mut wanted: std::collections::BTreeSet<usize> = match projection {
            Some(p) => p.iter().copied().filter(|i| *i < n).collect(),
            None => (0..n).collect(),
        };
        if let Some(f) = &self.filter {
            for c in f.column_refs() {
                if let Some(i) = view.columns.iter().position(|vc| vc.name == c.name) {
                    wanted.insert(i);
                }
            }
        }
        let wanted: Vec<usize> = wanted.into_iter().collect();
        let distance = col(Column::new_unqualified(INTERNAL_DISTANCE_COLUMN));
        let native = match self.native_plan() {
            Some((native, filters)) => {
                let source = view.source_columns(&wanted, &filters, &[])?;
                (native.max_results(&source) >= self.k).then_some((native, filters, source))
            }
            None => None,
        };
        let barrier = match native {
            Some((native, filters, source)) => {
                let found = native
                    .search(
                        state,
                        &source,
                        &filters,
                        &self.column,
                        &self.vector,
                        self.k,
                        self.metric,
                    )
                    .await
                    .map_err(|e| opaque_failure(&view.table, &e))?;
                view.enforce(
                    state,
                    found,
                    &wanted,
                    vec![(distance.clone(), INTERNAL_DISTANCE_COLUMN.to_string())],
                )?
            }
            None => {
                let hints = view.pruning.clone();
                let source = view.source_columns(&wanted, &hints, &[self.source_index])?;
                let scan = scan_source(&self.resolved.inner, state, &source, &hints)
                    .await
                    .map_err(|e| opaque_failure(&view.table, &e))?;
                let query =
                    ScalarValue::List(Arc::new(
                        ListArray::from_iter_primitive::<Float32Type, _, _>(vec![Some(
                            self.vector.iter().map(|x| Some(*x)),
                        )]),
                    ));
                let udf = datafusion::logical_expr::ScalarUDF::new_from_impl(DistanceUdf::new(
                    self.metric,
                ));
                let d = udf.call(vec![col(Column::new_unqualified(&self.column)), lit(query)]);
                view.enforce(
                    state,
                    scan,
                    &wanted,
                    vec![(d, INTERNAL_DISTANCE_COLUMN.to_string())],
                )?
            }
        };

        // Above the barrier: the pre-filter and the ranking, over visible
        // rows and masked values only.
        let out_schema = DFSchema::try_from(barrier.schema())?;
        let mut keep = distance.clone().is_not_null();
        if let Some(f) = &self.filter {
            keep = keep.and(f.clone());
        }
        let predicate = state.create_physical_expr(keep, &out_schema)?;
        let mut plan: Arc<dyn ExecutionPlan> = Arc::new(FilterExec::try_new(predicate, barrier)?);
        if plan.output_partitioning().partition_count() > 1 {
            plan = Arc::new(CoalescePartitionsExec::new(plan));
        }
        let options = arrow::compute::SortOptions {
            // Inner product is a similarity: larger is nearer.
            descending: self.metric == Metric::InnerProduct,
            nulls_first: false,
        };
        let sort_key = state.create_physical_expr(distance, &out_schema)?;
        let ordering =
            datafusion::physical_expr::LexOrdering::new([PhysicalSortExpr::new(sort_key, options)])
                .expect("one sort expression");
        let plan: Arc<dyn ExecutionPlan> =
            Arc::new(SortExec::new(ordering, plan).with_fetch(Some(self.k)));
        // Output: the projected columns, the distance under its public name.
        let all: Vec<usize> = (0..self.schema.fields().len()).collect();
        let exprs = projection
            .unwrap_or(&all)
            .iter()
            .map(|i| {
                let name = self.schema.field(*i).name().clone();
                let source = if name == DISTANCE_COLUMN && *i == n {
                    INTERNAL_DISTANCE_COLUMN.to_string()
                } else {
                    name.clone()
                };
                Ok((
                    state
                        .create_physical_expr(col(Column::new_unqualified(&source)), &out_schema)?,
                    name,
                ))
            })
            .collect::<Result<Vec<_>>>()?;
        Ok(Arc::new(ProjectionExec::try_new(exprs, plan)?))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn metrics_parse() {
        assert_eq!(parse_metric("COSINE").unwrap(), Metric::Cosine);
        assert_eq!(parse_metric("l2").unwrap(), Metric::L2);
        assert_eq!(parse_metric("ip").unwrap(), Metric::InnerProduct);
        assert!(parse_metric("manhattan").is_err());
    }

    #[test]
    fn constant_vectors() {
        use datafusion::functions_nested::expr_fn::make_array;
        let v = query_vector(&make_array(vec![lit(1.5), lit(-2), lit(0.25f32)])).unwrap();
        assert_eq!(v, vec![1.5, -2.0, 0.25]);
        assert!(query_vector(&lit(3)).is_err());
        assert!(query_vector(&make_array(vec![col("a")])).is_err());
    }
}
