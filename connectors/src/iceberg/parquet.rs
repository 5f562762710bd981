//! Reading an Iceberg table's delete-free Parquet files with DataFusion's
//! Parquet machinery: row-group statistics, page index and bloom filter
//! pruning with the scan's predicate, late decoding of strings as views,
//! footers kept in the runtime's metadata cache, and the columns resolved
//! by field id ([`super::field_ids`]).
//!
//! Bytes come through the table's own `FileIO` (so a catalog's storage
//! credentials apply), not through an object store registered in
//! DataFusion.

use std::fmt;
use std::ops::Range;
use std::sync::Arc;

use arrow::datatypes::SchemaRef;
use bytes::Bytes;
use datafusion::catalog::Session;
use datafusion::common::{DFSchema, Result};
use datafusion::datasource::listing::PartitionedFile;
use datafusion::datasource::physical_plan::parquet::metadata::CachedParquetMetaData;
use datafusion::datasource::physical_plan::{
    FileGroup, FileScanConfigBuilder, ParquetFileMetrics, ParquetFileReaderFactory, ParquetSource,
};
use datafusion::datasource::source::DataSourceExec;
use datafusion::execution::cache::cache_manager::{CachedFileMetadataEntry, FileMetadataCache};
use datafusion::execution::object_store::ObjectStoreUrl;
use datafusion::logical_expr::Expr;
use datafusion::logical_expr::utils::conjunction;
use datafusion::physical_plan::metrics::ExecutionPlanMetricsSet;
use futures::FutureExt;
use futures::future::BoxFuture;
use iceberg::arrow::ArrowFileReader;
use iceberg::io::{FileIO, FileMetadata};
use iceberg::scan::FileScanTask;
use iceberg::spec::{DEFAULT_SCHEMA_NAME_MAPPING, DataFileFormat, TableMetadata};
use object_store::ObjectMeta;
use object_store::path::Path;
use parquet::arrow::arrow_reader::ArrowReaderOptions;
use parquet::arrow::async_reader::AsyncFileReader;
use parquet::file::metadata::{PageIndexPolicy, ParquetMetaData, ParquetMetaDataReader};

use super::field_ids::FieldIdAdapterFactory;

/// Whether DataFusion's reader can read these tasks exactly: Parquet
/// files without delete files, only flat columns asked for or filtered on
/// (`columns`: indices into `schema`), and a table whose files carry field
/// ids. A table with a name mapping (files added from a Hive layout, which
/// may lack field ids and identity partition columns) or with columns
/// whose initial default fills files written before them is read by
/// iceberg's reader, which implements both.
pub(super) fn can_read(
    tasks: &[FileScanTask],
    metadata: &TableMetadata,
    schema: &SchemaRef,
    columns: &[usize],
) -> bool {
    !metadata
        .properties()
        .contains_key(DEFAULT_SCHEMA_NAME_MAPPING)
        && metadata
            .current_schema()
            .as_struct()
            .fields()
            .iter()
            .all(|f| f.initial_default.is_none())
        && tasks
            .iter()
            .all(|t| t.deletes.is_empty() && t.data_file_format == DataFileFormat::Parquet)
        && columns.iter().all(|&i| {
            schema
                .fields()
                .get(i)
                .is_some_and(|f| !f.data_type().is_nested())
        })
}

/// The scan of `groups` (one DataFusion partition each) over `schema` (the
/// table's current schema as planned), reading `projection`, pruning with
/// `filters`, stopping after `limit` rows.
#[allow(clippy::too_many_arguments)]
pub(super) fn scan(
    session: &dyn Session,
    metadata: &TableMetadata,
    io: &FileIO,
    schema: &SchemaRef,
    groups: Vec<Vec<FileScanTask>>,
    projection: Vec<usize>,
    filters: &[Expr],
    limit: Option<usize>,
) -> Result<Arc<DataSourceExec>> {
    let mut options = session.table_options().parquet.clone();
    // INT96 timestamps (Spark, Hive) read as Iceberg's microseconds, not
    // as nanoseconds that wrap for dates far from 1970.
    options.global.coerce_int96 = Some("us".to_string());
    let mut source = ParquetSource::new(Arc::clone(schema))
        .with_table_parquet_options(options)
        .with_parquet_file_reader_factory(Arc::new(IcebergFileReaderFactory {
            io: io.clone(),
            table: metadata.uuid().to_string(),
            footers: session
                .runtime_env()
                .cache_manager
                .get_file_metadata_cache(),
        }));
    // Pruning only: the filters above the scan decide which rows are
    // returned, so a predicate DataFusion cannot build prunes nothing
    // rather than failing the statement.
    if let Some(predicate) = conjunction(filters.iter().cloned()) {
        let df_schema = DFSchema::try_from(schema.as_ref().clone())?;
        match session.create_physical_expr(predicate, &df_schema) {
            Ok(predicate) => source = source.with_predicate(predicate),
            Err(e) => tracing::debug!(error = %e, "Iceberg scan without a pruning predicate"),
        }
    }
    let groups: Vec<FileGroup> = groups
        .into_iter()
        .map(|tasks| FileGroup::new(tasks.iter().map(partitioned_file).collect()))
        .collect();
    let config = FileScanConfigBuilder::new(ObjectStoreUrl::local_filesystem(), Arc::new(source))
        .with_file_groups(groups)
        .with_projection_indices(Some(projection))?
        .with_limit(limit)
        .with_expr_adapter(Some(Arc::new(FieldIdAdapterFactory)))
        .build();
    Ok(DataSourceExec::from_data_source(config))
}

/// The path and size iceberg's manifest gave, the byte range the task
/// reads. The object path is only a name (cache key, metrics): the reader
/// opens the original location (the extension) through `FileIO`.
fn partitioned_file(task: &FileScanTask) -> PartitionedFile {
    let file = PartitionedFile::new(task.data_file_path.clone(), task.file_size_in_bytes);
    let file = if task.length == 0 {
        file
    } else {
        let start = i64::try_from(task.start).unwrap_or(i64::MAX);
        let end = i64::try_from(task.start.saturating_add(task.length)).unwrap_or(i64::MAX);
        file.with_range(start, end)
    };
    file.with_extensions(Arc::new(Location(task.data_file_path.clone())))
}

/// A data file's location as the table's metadata spells it.
struct Location(String);

/// Opens data files through the table's `FileIO`, footers cached.
struct IcebergFileReaderFactory {
    io: FileIO,
    /// The table's UUID: footers are cached under a digest of it and the
    /// file's location as written (two catalogs may store other files
    /// under one path; object paths would fold `//`).
    table: String,
    footers: Arc<dyn FileMetadataCache>,
}

/// The `FileIO` holds the catalog's properties (credentials): never printed.
impl fmt::Debug for IcebergFileReaderFactory {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("IcebergFileReaderFactory")
            .finish_non_exhaustive()
    }
}

impl ParquetFileReaderFactory for IcebergFileReaderFactory {
    fn create_reader(
        &self,
        partition_index: usize,
        file: PartitionedFile,
        metadata_size_hint: Option<usize>,
        metrics: &ExecutionPlanMetricsSet,
    ) -> Result<Box<dyn AsyncFileReader + Send>> {
        let location = file
            .extensions
            .as_ref()
            .and_then(|e| e.downcast_ref::<Location>())
            .map(|l| l.0.clone())
            .unwrap_or_else(|| file.object_meta.location.to_string());
        let key = Path::from(
            blake3::hash(format!("{}\n{location}", self.table).as_bytes())
                .to_hex()
                .as_str(),
        );
        Ok(Box::new(IcebergFileReader {
            metrics: ParquetFileMetrics::new(
                partition_index,
                file.object_meta.location.as_ref(),
                metrics,
            ),
            io: self.io.clone(),
            location,
            meta: file.object_meta,
            key,
            footers: Arc::clone(&self.footers),
            footer_hint: metadata_size_hint,
            opened: None,
        }))
    }
}

/// One data file, opened on first read.
struct IcebergFileReader {
    metrics: ParquetFileMetrics,
    io: FileIO,
    location: String,
    meta: ObjectMeta,
    /// The footer's key in the metadata cache.
    key: Path,
    footers: Arc<dyn FileMetadataCache>,
    footer_hint: Option<usize>,
    opened: Option<ArrowFileReader>,
}

impl IcebergFileReader {
    async fn open(&mut self) -> parquet::errors::Result<&mut ArrowFileReader> {
        if self.opened.is_none() {
            let read = async { self.io.new_input(&self.location)?.reader().await }
                .await
                .map_err(|e| parquet::errors::ParquetError::External(Box::new(e)))?;
            let size = self.meta.size;
            self.opened = Some(ArrowFileReader::new(FileMetadata { size }, read));
        }
        Ok(self
            .opened
            .as_mut()
            .unwrap_or_else(|| unreachable!("opened above")))
    }
}

impl AsyncFileReader for IcebergFileReader {
    fn get_bytes(&mut self, range: Range<u64>) -> BoxFuture<'_, parquet::errors::Result<Bytes>> {
        self.metrics
            .bytes_scanned
            .add(usize::try_from(range.end.saturating_sub(range.start)).unwrap_or(usize::MAX));
        async move { self.open().await?.get_bytes(range).await }.boxed()
    }

    fn get_byte_ranges(
        &mut self,
        ranges: Vec<Range<u64>>,
    ) -> BoxFuture<'_, parquet::errors::Result<Vec<Bytes>>> {
        let total: u64 = ranges
            .iter()
            .map(|r| r.end.saturating_sub(r.start))
            .fold(0, u64::saturating_add);
        self.metrics
            .bytes_scanned
            .add(usize::try_from(total).unwrap_or(usize::MAX));
        async move { self.open().await?.get_byte_ranges(ranges).await }.boxed()
    }

    /// Data files never change under a path: a footer read once serves
    /// every later scan of the file (the runtime's cache bounds the
    /// memory). Page indexes are loaded with it so cached footers can prune
    /// pages.
    fn get_metadata<'a>(
        &'a mut self,
        _options: Option<&'a ArrowReaderOptions>,
    ) -> BoxFuture<'a, parquet::errors::Result<Arc<ParquetMetaData>>> {
        async move {
            if let Some(cached) = self.footers.get(&self.key)
                && cached.is_valid_for(&self.meta)
                && let Some(footer) = cached
                    .file_metadata
                    .as_any()
                    .downcast_ref::<CachedParquetMetaData>()
            {
                return Ok(Arc::clone(footer.parquet_metadata()));
            }
            let size = self.meta.size;
            let hint = self.footer_hint;
            let reader = self.open().await?;
            let footer = Arc::new(
                ParquetMetaDataReader::new()
                    .with_prefetch_hint(hint)
                    .with_page_index_policy(PageIndexPolicy::Optional)
                    .load_and_finish(reader, size)
                    .await?,
            );
            self.footers.put(
                &self.key,
                CachedFileMetadataEntry::new(
                    self.meta.clone(),
                    Arc::new(CachedParquetMetaData::new(Arc::clone(&footer))),
                ),
            );
            Ok(footer)
        }
        .boxed()
    }
}
