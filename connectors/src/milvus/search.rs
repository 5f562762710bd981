//! One native vector search: Milvus' ANN `search` over a vector field with
//! the projection and the translated filters, run when the plan executes,
//! and its hits (scores as distances) turned into a batch.

use std::sync::Arc;

use arrow::array::{ArrayRef, Float64Array, RecordBatch, RecordBatchOptions};
use arrow::datatypes::SchemaRef;
use datafusion::common::Result as DFResult;
use datafusion::error::DataFusionError;
use milvus::v2::prelude::{SearchRequest, SearchVectors};
use sluice_planner::connector::INTERNAL_DISTANCE_COLUMN as DISTANCE_COLUMN;
use sluice_planner::vectors::Metric;

use super::client::Shared;
use super::table::MilvusTable;
use super::types::{ids_array, milvus_metric, to_arrow};

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
