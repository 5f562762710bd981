//! One Iceberg table as DataFusion sees it for one statement: the state
//! the statement started with, planned into an [`IcebergScanExec`].

use std::any::Any;
use std::sync::Arc;

use async_trait::async_trait;
use datafusion::arrow::datatypes::SchemaRef;
use datafusion::catalog::Session;
use datafusion::common::tree_node::{Transformed, TransformedResult, TreeNode};
use datafusion::common::{Result, ScalarValue};
use datafusion::datasource::{TableProvider, TableType};
use datafusion::logical_expr::{Expr, TableProviderFilterPushDown};
use datafusion::physical_plan::ExecutionPlan;
use futures::TryStreamExt;
use iceberg::scan::FileScanTask;
use iceberg_datafusion::physical_plan::convert_filters_to_predicate;

use super::cache::TableState;
use super::columns::ColumnMap;
use super::external;
use super::parquet;
use super::scan::{IcebergScanExec, Reader};
use super::split::split_tasks;

/// A table pinned to one loaded state.
#[derive(Debug)]
pub(super) struct IcebergTable {
    state: Arc<TableState>,
}

impl IcebergTable {
    pub(super) fn new(state: Arc<TableState>) -> Self {
        Self { state }
    }
}

#[async_trait]
impl TableProvider for IcebergTable {
    fn as_any(&self) -> &dyn Any {
        self
    }

    fn schema(&self) -> SchemaRef {
        Arc::clone(&self.state.schema)
    }

    fn table_type(&self) -> TableType {
        TableType::Base
    }

    /// Filters prune (partitions, manifests, files, row groups, pages,
    /// rows in iceberg's reader) but DataFusion still applies them: the
    /// conversion to iceberg predicates covers a subset of expressions.
    fn supports_filters_pushdown(
        &self,
        filters: &[&Expr],
    ) -> Result<Vec<TableProviderFilterPushDown>> {
        Ok(vec![TableProviderFilterPushDown::Inexact; filters.len()])
    }

    async fn scan(
        &self,
        session: &dyn Session,
        projection: Option<&Vec<usize>>,
        filters: &[Expr],
        limit: Option<usize>,
    ) -> Result<Arc<dyn ExecutionPlan>> {
        let full = &self.state.schema;
        let indices: Vec<usize> = match projection {
            Some(p) => p.clone(),
            None => (0..full.fields().len()).collect(),
        };
        let output = Arc::new(full.project(&indices)?);
        let names: Vec<String> = output.fields().iter().map(|f| f.name().clone()).collect();

        let table = &self.state.table;
        let metadata = table.metadata();
        let current = metadata.current_schema();
        let columns = ColumnMap::new(current, &names, output)?;
        // Filters name current columns: bound to an older snapshot's
        // schema they could mean other columns, so they prune only when
        // the schemas agree (the filter above the scan applies them anyway).
        let same_schema = match metadata.current_snapshot() {
            Some(snapshot) => {
                snapshot.schema(metadata).map_err(external)?.schema_id() == current.schema_id()
            }
            None => true,
        };
        let predicate = if same_schema {
            convert_filters_to_predicate(&plain_literals(filters)?)
        } else {
            None
        };
        // No names: the tasks are given the current schema and the field
        // ids to read below (see `columns`).
        let mut builder = table.scan().select_empty();
        if let Some(predicate) = &predicate {
            builder = builder.with_filter(predicate.clone());
        }
        let mut tasks: Vec<FileScanTask> = builder
            .build()
            .map_err(external)?
            .plan_files()
            .await
            .map_err(external)?
            .try_collect()
            .await
            .map_err(external)?;
        let files = tasks.len();
        let partitions = session.config().target_partitions().max(1);
        // What the Parquet reader must resolve: the columns read and those
        // the filters prune with.
        let mut touched = indices.clone();
        for filter in filters {
            for column in filter.column_refs() {
                touched.extend(full.index_of(&column.name).ok());
            }
        }
        let datafusion_reads = parquet::can_read(&tasks, metadata, full, &touched);
        if !datafusion_reads {
            for task in &mut tasks {
                task.schema = Arc::clone(current);
                task.project_field_ids = columns.ids().to_vec();
            }
        }
        let groups = split_tasks(tasks, partitions);
        let reader = if datafusion_reads {
            Reader::Parquet(parquet::scan(
                session,
                metadata,
                table.file_io(),
                full,
                groups,
                indices,
                filters,
                limit,
            )?)
        } else {
            Reader::Iceberg(groups)
        };
        Ok(Arc::new(IcebergScanExec::new(
            table.clone(),
            reader,
            (partitions, files),
            columns,
            predicate,
            limit,
        )))
    }
}

/// `filters` with string and binary view literals in their plain forms,
/// the only ones iceberg's predicate conversion knows (the columns are
/// planned as views, see `columns::with_view_types`).
fn plain_literals(filters: &[Expr]) -> Result<Vec<Expr>> {
    filters
        .iter()
        .map(|f| {
            f.clone()
                .transform(|e| {
                    Ok(match e {
                        Expr::Literal(ScalarValue::Utf8View(v), meta) => {
                            Transformed::yes(Expr::Literal(ScalarValue::Utf8(v), meta))
                        }
                        Expr::Literal(ScalarValue::BinaryView(v), meta) => {
                            Transformed::yes(Expr::Literal(ScalarValue::Binary(v), meta))
                        }
                        other => Transformed::no(other),
                    })
                })
                .data()
        })
        .collect()
}
