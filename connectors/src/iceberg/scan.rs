//! The physical scan of one Iceberg table: its files, already planned by
//! iceberg (partition pruning, manifest and file statistics), spread over
//! DataFusion partitions that read in parallel with iceberg's Parquet
//! reader (field-id projection, row-group statistics, page index, row
//! filter, positional and equality deletes).

use std::any::Any;
use std::fmt;
use std::sync::Arc;

use datafusion::common::Result;
use datafusion::execution::{SendableRecordBatchStream, TaskContext};
use datafusion::physical_expr::EquivalenceProperties;
use datafusion::physical_plan::execution_plan::{Boundedness, EmissionType};
use datafusion::physical_plan::stream::RecordBatchStreamAdapter;
use datafusion::physical_plan::{
    DisplayAs, DisplayFormatType, ExecutionPlan, Partitioning, PlanProperties,
};
use futures::{StreamExt, TryStreamExt};
use iceberg::expr::Predicate;
use iceberg::scan::FileScanTask;
use iceberg::table::Table;

use super::columns::ColumnMap;
use super::external;

/// Reads one table's planned files in parallel partitions.
pub(super) struct IcebergScanExec {
    table: Table,
    /// Per partition, the files (or byte ranges of files) it reads.
    groups: Vec<Vec<FileScanTask>>,
    columns: Arc<ColumnMap>,
    /// What iceberg prunes with (shown in `EXPLAIN`).
    predicate: Option<Predicate>,
    /// Each partition stops after this many rows.
    limit: Option<usize>,
    properties: Arc<PlanProperties>,
}

impl IcebergScanExec {
    pub(super) fn new(
        table: Table,
        groups: Vec<Vec<FileScanTask>>,
        columns: ColumnMap,
        predicate: Option<Predicate>,
        limit: Option<usize>,
    ) -> Self {
        let properties = Arc::new(PlanProperties::new(
            EquivalenceProperties::new(Arc::clone(columns.output())),
            Partitioning::UnknownPartitioning(groups.len().max(1)),
            EmissionType::Incremental,
            Boundedness::Bounded,
        ));
        Self {
            table,
            groups,
            columns: Arc::new(columns),
            predicate,
            limit,
            properties,
        }
    }

    fn files(&self) -> usize {
        self.groups.iter().map(Vec::len).sum()
    }
}

/// The table's `FileIO` holds the catalog's properties (credentials of a
/// REST catalog): never printed.
impl fmt::Debug for IcebergScanExec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("IcebergScanExec")
            .field("table", self.table.identifier())
            .field("partitions", &self.groups.len())
            .field("files", &self.files())
            .field("limit", &self.limit)
            .finish_non_exhaustive()
    }
}

impl DisplayAs for IcebergScanExec {
    fn fmt_as(&self, _t: DisplayFormatType, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "IcebergScan: table={} partitions={} files={} projection=[{}]",
            self.table.identifier(),
            self.groups.len(),
            self.files(),
            self.columns
                .output()
                .fields()
                .iter()
                .map(|f| f.name().as_str())
                .collect::<Vec<_>>()
                .join(", "),
        )?;
        if let Some(predicate) = &self.predicate {
            write!(f, " predicate=[{predicate}]")?;
        }
        if let Some(limit) = self.limit {
            write!(f, " limit={limit}")?;
        }
        Ok(())
    }
}

impl ExecutionPlan for IcebergScanExec {
    fn name(&self) -> &str {
        "IcebergScan"
    }

    fn as_any(&self) -> &dyn Any {
        self
    }

    fn properties(&self) -> &Arc<PlanProperties> {
        &self.properties
    }

    fn children(&self) -> Vec<&Arc<dyn ExecutionPlan>> {
        Vec::new()
    }

    fn with_new_children(
        self: Arc<Self>,
        _children: Vec<Arc<dyn ExecutionPlan>>,
    ) -> Result<Arc<dyn ExecutionPlan>> {
        Ok(self)
    }

    fn execute(
        &self,
        partition: usize,
        context: Arc<TaskContext>,
    ) -> Result<SendableRecordBatchStream> {
        let schema = Arc::clone(self.columns.output());
        let tasks = self.groups.get(partition).cloned().unwrap_or_default();
        // One file at a time per partition: the partitions are the
        // parallelism, and a partition's memory stays one file's batches.
        let reader = self
            .table
            .reader_builder()
            .with_batch_size(context.session_config().batch_size())
            .with_data_file_concurrency_limit(1)
            .with_row_group_filtering_enabled(true)
            .with_row_selection_enabled(true)
            .build();
        let read = reader
            .read(futures::stream::iter(tasks.into_iter().map(Ok)).boxed())
            .map_err(external)?
            .stream();
        let columns = Arc::clone(&self.columns);
        let batches = read
            .map_err(external)
            .and_then(move |batch| futures::future::ready(columns.assemble(batch)));
        let stream = match self.limit {
            None => batches.boxed(),
            Some(limit) => batches
                .scan(limit, |left, item| {
                    let next = match item {
                        Ok(_) if *left == 0 => None,
                        Ok(batch) => {
                            let keep = batch.num_rows().min(*left);
                            *left -= keep;
                            Some(Ok(batch.slice(0, keep)))
                        }
                        Err(e) => Some(Err(e)),
                    };
                    futures::future::ready(next)
                })
                .boxed(),
        };
        Ok(Box::pin(RecordBatchStreamAdapter::new(schema, stream)))
    }
}
