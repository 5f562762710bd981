//! The physical scan of one Iceberg table: its files, already planned by
//! iceberg (partition pruning, manifest and file statistics), spread over
//! DataFusion partitions that read in parallel. Delete-free Parquet files
//! of flat columns are read by DataFusion's Parquet reader ([`parquet`]:
//! row-group, page and bloom filter pruning, strings as views); any other
//! scan by iceberg's reader (field-id projection, nested columns,
//! positional and equality deletes).
//!
//! [`parquet`]: super::parquet

use std::any::Any;
use std::fmt;
use std::sync::Arc;

use datafusion::common::Result;
use datafusion::datasource::source::DataSourceExec;
use datafusion::execution::{SendableRecordBatchStream, TaskContext};
use datafusion::physical_expr::EquivalenceProperties;
use datafusion::physical_plan::execution_plan::{Boundedness, EmissionType};
use datafusion::physical_plan::metrics::MetricsSet;
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

/// Which reader a scan uses.
pub(super) enum Reader {
    /// iceberg's, over these per-partition files (or byte ranges of files).
    Iceberg(Vec<Vec<FileScanTask>>),
    /// DataFusion's, planned over the same groups.
    Parquet(Arc<DataSourceExec>),
}

/// Reads one table's planned files in parallel partitions.
pub(super) struct IcebergScanExec {
    table: Table,
    reader: Reader,
    partitions: usize,
    files: usize,
    columns: Arc<ColumnMap>,
    /// What iceberg prunes with (shown in `EXPLAIN`).
    predicate: Option<Predicate>,
    /// Each partition stops after this many rows.
    limit: Option<usize>,
    properties: Arc<PlanProperties>,
}

impl IcebergScanExec {
    /// `partitions` and `files`: how the planned files were grouped.
    pub(super) fn new(
        table: Table,
        reader: Reader,
        (partitions, files): (usize, usize),
        columns: ColumnMap,
        predicate: Option<Predicate>,
        limit: Option<usize>,
    ) -> Self {
        let properties = Arc::new(PlanProperties::new(
            EquivalenceProperties::new(Arc::clone(columns.output())),
            Partitioning::UnknownPartitioning(partitions.max(1)),
            EmissionType::Incremental,
            Boundedness::Bounded,
        ));
        Self {
            table,
            reader,
            partitions,
            files,
            columns: Arc::new(columns),
            predicate,
            limit,
            properties,
        }
    }

    fn reader_name(&self) -> &'static str {
        match self.reader {
            Reader::Iceberg(_) => "iceberg",
            Reader::Parquet(_) => "parquet",
        }
    }
}

/// The table's `FileIO` holds the catalog's properties (credentials of a
/// REST catalog): never printed.
impl fmt::Debug for IcebergScanExec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("IcebergScanExec")
            .field("table", self.table.identifier())
            .field("reader", &self.reader_name())
            .field("partitions", &self.partitions)
            .field("files", &self.files)
            .field("limit", &self.limit)
            .finish_non_exhaustive()
    }
}

impl DisplayAs for IcebergScanExec {
    fn fmt_as(&self, _t: DisplayFormatType, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "IcebergScan: table={} reader={} partitions={} files={} projection=[{}]",
            self.table.identifier(),
            self.reader_name(),
            self.partitions,
            self.files,
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

    fn metrics(&self) -> Option<MetricsSet> {
        match &self.reader {
            Reader::Parquet(exec) => exec.metrics(),
            Reader::Iceberg(_) => None,
        }
    }

    fn execute(
        &self,
        partition: usize,
        context: Arc<TaskContext>,
    ) -> Result<SendableRecordBatchStream> {
        let groups = match &self.reader {
            Reader::Parquet(exec) => return exec.execute(partition, context),
            Reader::Iceberg(groups) => groups,
        };
        let schema = Arc::clone(self.columns.output());
        let tasks = groups.get(partition).cloned().unwrap_or_default();
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
