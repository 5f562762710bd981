//! Native vector search: Milvus' ANN `search` behind the planner's
//! [`NativeVectorSearch`], and the call that runs it and turns its hits
//! (scores as distances) into a batch.

use std::sync::Arc;

use arrow::array::{ArrayRef, Float64Array, RecordBatch, RecordBatchOptions};
use arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use async_trait::async_trait;
use datafusion::catalog::Session;
use datafusion::common::Result as DFResult;
use datafusion::error::DataFusionError;
use datafusion::logical_expr::Expr;
use datafusion::physical_plan::ExecutionPlan;
use milvus::v2::prelude::{SearchRequest, SearchVectors};
use sluice_planner::connector::{INTERNAL_DISTANCE_COLUMN as DISTANCE_COLUMN, NativeVectorSearch};
use sluice_planner::vectors::Metric;

use super::MILVUS_MAX_LIMIT;
use super::catalog::Shared;
use super::exec::{MilvusExec, Request};
use super::table::MilvusTable;
use super::types::{ids_array, milvus_metric, to_arrow};

#[async_trait]
impl NativeVectorSearch for MilvusTable {
    fn index_metric(&self, column: &str) -> Option<Metric> {
        self.metrics.get(column).copied()
    }

    fn filter_is_exact(&self, filter: &Expr) -> bool {
        self.translate(filter).is_some()
    }

    fn max_results(&self, projection: &[usize]) -> usize {
        let names: Vec<String> = projection
            .iter()
            .map(|i| self.schema.field(*i).name().clone())
            .collect();
        self.rows_per_message(&names).min(MILVUS_MAX_LIMIT)
    }

    async fn search(
        &self,
        _state: &dyn Session,
        projection: &[usize],
        filters: &[Expr],
        column: &str,
        vector: &[f32],
        k: usize,
        metric: Metric,
    ) -> DFResult<Arc<dyn ExecutionPlan>> {
        let mut expr = Vec::with_capacity(filters.len());
        for f in filters {
            match self.translate(f) {
                Some(t) => expr.push(format!("({t})")),
                None => {
                    return Err(DataFusionError::Internal(
                        "a native search filter has no Milvus expression".to_string(),
                    ));
                }
            }
        }
        let mut fields: Vec<Field> = projection
            .iter()
            .map(|i| self.schema.field(*i).clone())
            .collect();
        let names: Vec<String> = fields.iter().map(|f| f.name().clone()).collect();
        if k > self.rows_per_message(&names) {
            return Err(DataFusionError::Plan(format!(
                "vector_search: {k} results of {} do not fit in one Milvus answer (4 MiB); \
                 lower k or select fewer columns",
                self.collection
            )));
        }
        fields.push(Field::new(DISTANCE_COLUMN, DataType::Float64, true));
        let shared = self.shared()?;
        let me = shared
            .tables
            .read()
            .expect("milvus tables lock")
            .get(&self.collection)
            .cloned()
            .ok_or_else(|| {
                DataFusionError::Execution(format!(
                    "collection {} disappeared from catalog {}",
                    self.collection, self.catalog
                ))
            })?;
        Ok(Arc::new(MilvusExec::new(
            me,
            Arc::new(Schema::new(fields)),
            Request::Search {
                filter: (!expr.is_empty()).then(|| expr.join(" and ")),
                column: column.to_string(),
                vector: vector.to_vec(),
                k,
                metric,
            },
        )))
    }
}

/// One top-k search, run when the plan executes.
pub(super) struct SearchCall {
    pub(super) shared: Arc<Shared>,
    pub(super) table: Arc<MilvusTable>,
    pub(super) schema: SchemaRef,
    pub(super) fields: Vec<String>,
    pub(super) filter: Option<String>,
    pub(super) column: String,
    pub(super) vector: Vec<f32>,
    pub(super) k: usize,
    pub(super) metric: Metric,
    pub(super) trace: Option<String>,
}

impl SearchCall {
    pub(super) async fn run(self) -> DFResult<RecordBatch> {
        let mut builder = SearchRequest::builder()
            .database_name(self.shared.cfg.database.clone())
            .collection_name(self.table.collection.clone())
            .vector_field(self.column.clone())
            .vectors(SearchVectors::Float(vec![self.vector.clone()]))
            .limit(self.k as i64)
            .metric_type(milvus_metric(self.metric))
            .output_fields(self.fields.clone());
        if let Some(level) = self.shared.consistency() {
            builder = builder.consistency_level(level);
        }
        if let Some(f) = &self.filter {
            builder = builder.filter(f.clone());
        }
        let request = builder
            .build()
            .map_err(|e| DataFusionError::External(Box::new(e)))?;
        let response = self
            .shared
            .call_traced("vector search", self.trace.as_deref(), |c| async move {
                c.search(request).await
            })
            .await?;
        let hits = response.results().get_results().first();
        let rows = hits.map_or(0, |h| h.get_scores().len());
        // No hits: Milvus answers without any output field.
        if rows == 0 {
            return Ok(RecordBatch::new_empty(Arc::clone(&self.schema)));
        }
        let mut columns = Vec::with_capacity(self.schema.fields().len());
        for field in self.schema.fields() {
            let name = field.name();
            if name == DISTANCE_COLUMN {
                let scores = hits.map(|h| h.get_scores()).unwrap_or(&[]);
                let d: Vec<f64> = scores
                    .iter()
                    .map(|s| {
                        let s = f64::from(*s);
                        match self.metric {
                            // Milvus ranks L2 by the squared distance.
                            Metric::L2 => s.max(0.0).sqrt(),
                            // … and COSINE by the similarity.
                            Metric::Cosine => 1.0 - s,
                            Metric::InnerProduct => s,
                        }
                    })
                    .collect();
                columns.push(Arc::new(Float64Array::from(d)) as ArrayRef);
                continue;
            }
            let Some(h) = hits else {
                columns.push(arrow::array::new_empty_array(field.data_type()));
                continue;
            };
            match h.get_output_field(name) {
                Some(data) => columns.push(to_arrow(data, field, rows)?),
                None if *name == self.table.primary_key => columns.push(ids_array(h.get_ids())?),
                None => {
                    return Err(DataFusionError::Execution(format!(
                        "milvus search answered without field \"{name}\""
                    )));
                }
            }
        }
        Ok(RecordBatch::try_new_with_options(
            Arc::clone(&self.schema),
            columns,
            &RecordBatchOptions::new().with_row_count(Some(rows)),
        )?)
    }
}
