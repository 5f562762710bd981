//! The plan leaf that talks to Milvus: one paged `query` or one top-k
//! `search`, shown in `EXPLAIN` with the expression sent.

use std::any::Any;
use std::fmt;
use std::sync::Arc;

use arrow::datatypes::SchemaRef;
use datafusion::common::Result as DFResult;
use datafusion::error::DataFusionError;
use datafusion::execution::{SendableRecordBatchStream, TaskContext};
use datafusion::physical_expr::EquivalenceProperties;
use datafusion::physical_plan::execution_plan::{Boundedness, EmissionType};
use datafusion::physical_plan::stream::RecordBatchStreamAdapter;
use datafusion::physical_plan::{
    DisplayAs, DisplayFormatType, ExecutionPlan, Partitioning, PlanProperties,
};
use futures::StreamExt;
use sluice_planner::connector::INTERNAL_DISTANCE_COLUMN as DISTANCE_COLUMN;
use sluice_planner::vectors::Metric;

use super::client::MILVUS_MAX_LIMIT;
use super::pager::Pager;
use super::search::SearchCall;
use super::table::MilvusTable;

#[derive(Debug, Clone)]
pub(super) enum Request {
    /// Page through the rows matching `filter`.
    Query {
        filter: Option<String>,
        limit: Option<usize>,
    },
    /// One top-k search.
    Search {
        filter: Option<String>,
        column: String,
        vector: Vec<f32>,
        k: usize,
        metric: Metric,
    },
}

/// The leaf that talks to Milvus.
#[derive(Debug)]
pub struct MilvusExec {
    table: Arc<MilvusTable>,
    schema: SchemaRef,
    request: Request,
    properties: Arc<PlanProperties>,
    /// The trace id of the request that planned the scan.
    trace: Option<String>,
}

impl MilvusExec {
    pub(super) fn new(table: Arc<MilvusTable>, schema: SchemaRef, request: Request) -> Self {
        let properties = Arc::new(PlanProperties::new(
            EquivalenceProperties::new(Arc::clone(&schema)),
            Partitioning::UnknownPartitioning(1),
            EmissionType::Incremental,
            Boundedness::Bounded,
        ));
        Self {
            table,
            schema,
            request,
            properties,
            trace: sluice_planner::audit::current().and_then(|h| h.snapshot().trace_id),
        }
    }

    fn output_fields(&self) -> Vec<String> {
        self.schema
            .fields()
            .iter()
            .map(|f| f.name().clone())
            .filter(|n| n != DISTANCE_COLUMN)
            .collect()
    }
}

impl DisplayAs for MilvusExec {
    fn fmt_as(&self, _t: DisplayFormatType, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let fields = self.output_fields().join(", ");
        match &self.request {
            Request::Query { filter, limit } => {
                write!(
                    f,
                    "MilvusQueryExec: collection={}, fields=[{fields}]",
                    self.table.collection
                )?;
                if let Some(e) = filter {
                    write!(f, ", expr={e}")?;
                }
                if let Some(l) = limit {
                    write!(f, ", limit={l}")?;
                }
                Ok(())
            }
            Request::Search {
                filter,
                column,
                k,
                metric,
                ..
            } => {
                write!(
                    f,
                    "MilvusSearchExec: collection={}, field={column}, k={k}, metric={}, fields=[{fields}]",
                    self.table.collection,
                    metric.function_name()
                )?;
                if let Some(e) = filter {
                    write!(f, ", expr={e}")?;
                }
                Ok(())
            }
        }
    }
}

impl ExecutionPlan for MilvusExec {
    fn name(&self) -> &str {
        match self.request {
            Request::Query { .. } => "MilvusQueryExec",
            Request::Search { .. } => "MilvusSearchExec",
        }
    }

    fn as_any(&self) -> &dyn Any {
        self
    }

    fn properties(&self) -> &Arc<PlanProperties> {
        &self.properties
    }

    fn children(&self) -> Vec<&Arc<dyn ExecutionPlan>> {
        vec![]
    }

    fn with_new_children(
        self: Arc<Self>,
        children: Vec<Arc<dyn ExecutionPlan>>,
    ) -> DFResult<Arc<dyn ExecutionPlan>> {
        if children.is_empty() {
            Ok(self)
        } else {
            Err(DataFusionError::Internal(
                "MilvusExec has no children".to_string(),
            ))
        }
    }

    fn execute(
        &self,
        partition: usize,
        _context: Arc<TaskContext>,
    ) -> DFResult<SendableRecordBatchStream> {
        if partition != 0 {
            return Err(DataFusionError::Internal(format!(
                "MilvusExec has one partition, asked for {partition}"
            )));
        }
        let shared = self.table.shared()?;
        let schema = Arc::clone(&self.schema);
        let stream = match self.request.clone() {
            Request::Search {
                filter,
                column,
                vector,
                k,
                metric,
            } => {
                let search = SearchCall {
                    shared,
                    table: Arc::clone(&self.table),
                    schema: Arc::clone(&schema),
                    fields: self.output_fields(),
                    filter,
                    column,
                    vector,
                    k,
                    metric,
                    trace: self.trace.clone(),
                };
                futures::stream::once(async move { search.run().await }).boxed()
            }
            Request::Query { filter, limit } => Pager {
                shared,
                table: Arc::clone(&self.table),
                schema: Arc::clone(&schema),
                fields: self.output_fields(),
                filter,
                remaining: limit,
                cursor: None,
                done: false,
                max_rows: MILVUS_MAX_LIMIT,
                trace: self.trace.clone(),
            }
            .into_stream()
            .boxed(),
        };
        Ok(Box::pin(RecordBatchStreamAdapter::new(schema, stream)))
    }
}
