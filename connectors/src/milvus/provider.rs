//! The DataFusion face of a Milvus collection: the `TableProvider` that
//! scans it with a query carrying the projection, the translated filters
//! and the limit, and the planner's [`NativeVectorSearch`] that plans a
//! top-k search on an indexed vector field.

use std::any::Any;
use std::sync::Arc;

use arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use async_trait::async_trait;
use datafusion::catalog::{Session, TableProvider};
use datafusion::common::Result as DFResult;
use datafusion::datasource::TableType;
use datafusion::error::DataFusionError;
use datafusion::logical_expr::{Expr, TableProviderFilterPushDown};
use datafusion::physical_plan::ExecutionPlan;
use sluice_planner::connector::{INTERNAL_DISTANCE_COLUMN as DISTANCE_COLUMN, NativeVectorSearch};
use sluice_planner::vectors::Metric;

use super::client::MILVUS_MAX_LIMIT;
use super::exec::{MilvusExec, Request};
use super::table::MilvusTable;

/// The `TableProvider` of a [`MilvusTable`].
#[derive(Debug)]
pub struct MilvusTableHandle(pub(super) Arc<MilvusTable>);

#[async_trait]
impl TableProvider for MilvusTableHandle {
    fn as_any(&self) -> &dyn Any {
        self
    }

    fn schema(&self) -> SchemaRef {
        Arc::clone(&self.0.schema)
    }

    fn table_type(&self) -> TableType {
        TableType::Base
    }

    fn supports_filters_pushdown(
        &self,
        filters: &[&Expr],
    ) -> DFResult<Vec<TableProviderFilterPushDown>> {
        // Inexact: DataFusion (or the secure view) re-applies every filter.
        Ok(filters
            .iter()
            .map(|f| {
                if self.0.translate(f).is_some() {
                    TableProviderFilterPushDown::Inexact
                } else {
                    TableProviderFilterPushDown::Unsupported
                }
            })
            .collect())
    }

    async fn scan(
        &self,
        _state: &dyn Session,
        projection: Option<&Vec<usize>>,
        filters: &[Expr],
        limit: Option<usize>,
    ) -> DFResult<Arc<dyn ExecutionPlan>> {
        let table = &self.0;
        let indices: Vec<usize> = match projection {
            Some(p) => p.clone(),
            None => (0..table.schema.fields().len()).collect(),
        };
        let schema = Arc::new(table.schema.project(&indices)?);
        Ok(Arc::new(MilvusExec::new(
            Arc::clone(table),
            schema,
            Request::Query {
                filter: table.filter_expression(filters),
                limit,
            },
        )))
    }
}

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
        let collections = self.collections()?;
        let me = collections
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
