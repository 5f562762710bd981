//! One Milvus collection: its Arrow schema (from the collection's
//! description), and the `TableProvider` that scans it with a query
//! carrying the projection, the translated filters and the limit.

use std::any::Any;
use std::collections::BTreeMap;
use std::fmt;
use std::sync::{Arc, Weak};

use arrow::datatypes::{Field, Schema, SchemaRef};
use async_trait::async_trait;
use datafusion::catalog::{Session, TableProvider};
use datafusion::common::Result as DFResult;
use datafusion::datasource::TableType;
use datafusion::error::DataFusionError;
use datafusion::logical_expr::{Expr, TableProviderFilterPushDown};
use datafusion::physical_plan::ExecutionPlan;
use milvus::v2::prelude::DataType as MilvusType;
use sluice_planner::vectors::Metric;

use super::catalog::Shared;
use super::exec::{MilvusExec, Request};
use super::types::arrow_type;

/// One collection.
pub struct MilvusTable {
    pub(super) shared: Weak<Shared>,
    pub(super) catalog: String,
    pub(super) collection: String,
    pub(super) schema: SchemaRef,
    pub(super) primary_key: String,
    pub(super) pk_is_int: bool,
    /// Metric of each indexed vector field.
    pub(super) metrics: BTreeMap<String, Metric>,
    /// Upper estimate of each field's encoded size per row.
    pub(super) field_bytes: BTreeMap<String, usize>,
}

impl fmt::Debug for MilvusTable {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "MilvusTable({}.{})", self.catalog, self.collection)
    }
}

/// The `TableProvider` of a [`MilvusTable`].
#[derive(Debug)]
pub struct MilvusTableHandle(pub(super) Arc<MilvusTable>);

impl MilvusTable {
    pub(super) fn from_description(
        shared: Weak<Shared>,
        name: &str,
        desc: &milvus::v2::prelude::CollectionDesc,
        metrics: BTreeMap<String, Metric>,
    ) -> Option<Self> {
        let catalog = shared
            .upgrade()
            .map(|s| s.cfg.name.clone())
            .unwrap_or_default();
        let mut fields = Vec::new();
        let mut field_bytes = BTreeMap::new();
        let mut primary = None;
        for f in desc.get_schema().get_fields() {
            if f.is_dynamic() {
                continue;
            }
            let Some(t) = arrow_type(f) else {
                tracing::info!(catalog = %catalog, collection = %name, field = %f.get_name(),
                    kind = ?f.get_data_type(), "milvus field kind not exposed");
                continue;
            };
            if f.is_primary_key() {
                primary = Some((
                    f.get_name().to_string(),
                    f.get_data_type() == MilvusType::Int64,
                ));
            }
            let mut field = Field::new(f.get_name(), t, f.is_nullable());
            if f.get_data_type() == MilvusType::Json {
                field =
                    field.with_metadata([("milvus.kind".to_string(), "json".to_string())].into());
            }
            let bytes = match f.get_data_type() {
                MilvusType::FloatVector => 4 * f.get_dimension() as usize + 16,
                MilvusType::VarChar | MilvusType::Text => {
                    f.get_max_length().clamp(16, 65_536) as usize
                }
                MilvusType::Json => 4096,
                _ => 16,
            };
            field_bytes.insert(f.get_name().to_string(), bytes);
            fields.push(field);
        }
        let (primary_key, pk_is_int) = primary?;
        Some(Self {
            shared,
            catalog,
            collection: name.to_string(),
            schema: Arc::new(Schema::new(fields)),
            primary_key,
            pk_is_int,
            metrics,
            field_bytes,
        })
    }

    /// Rows of `fields` that fit in one answer (the SDK's gRPC client
    /// accepts messages of at most 4 MiB).
    pub(super) fn rows_per_message(&self, fields: &[String]) -> usize {
        const BUDGET: usize = 3 * 1024 * 1024;
        let width: usize = fields
            .iter()
            .map(|f| self.field_bytes.get(f).copied().unwrap_or(16))
            .sum::<usize>()
            .max(1);
        (BUDGET / width).max(1)
    }

    pub(super) fn shared(&self) -> DFResult<Arc<Shared>> {
        self.shared.upgrade().ok_or_else(|| {
            DataFusionError::Execution(format!("catalog {} was unloaded", self.catalog))
        })
    }
}

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
