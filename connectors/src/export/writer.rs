//! The export writer's entry point: runs the three stages of the pipeline
//! for one job (the query feeding the encoder, the encoder, the uploader)
//! and hands back the staged files, nothing visible yet.

use std::sync::Arc;

use arrow::record_batch::RecordBatch;
use datafusion::physical_plan::SendableRecordBatchStream;
use futures::StreamExt as _;
use object_store::path::Path;
use tokio::sync::mpsc;

use super::commit::{Staged, staging_dir};
use super::error::ExportError;
use super::journal::UploadJournal;
use super::pipeline::{Piece, Progress, WriteOptions, encode, upload};
use super::store::ExportStore;

/// Streams `stream` into Parquet files under `prefix`; nothing is visible
/// there until [`Staged::commit`].
pub async fn write(
    store: &ExportStore,
    prefix: &Path,
    job_id: &str,
    stream: SendableRecordBatchStream,
    options: &WriteOptions,
    journal: &Arc<dyn UploadJournal>,
    progress: &Arc<Progress>,
) -> Result<Staged, ExportError> {
    let schema = stream.schema();
    let (batch_tx, batch_rx) = mpsc::channel::<RecordBatch>(2);
    let (piece_tx, piece_rx) = mpsc::channel::<Result<Piece, ExportError>>(1);
    let opts = options.clone();
    let rows = Arc::clone(progress);
    let encoder =
        tokio::task::spawn_blocking(move || encode(schema, batch_rx, piece_tx, &opts, &rows));

    let feed = async move {
        let mut stream = stream;
        while let Some(batch) = stream.next().await {
            let batch = batch.map_err(ExportError::Query)?;
            if batch_tx.send(batch).await.is_err() {
                // The encoder stopped; its error reaches the uploader.
                break;
            }
        }
        Ok::<_, ExportError>(())
    };
    let job_dir = staging_dir(job_id);
    let upload = upload(
        store, prefix, &job_dir, piece_rx, journal, progress, options,
    );
    let (_, files) = futures::try_join!(feed, upload)?;
    // The encoder has ended (its channel closed); surface a panic.
    encoder
        .await
        .map_err(|e| ExportError::Encode(format!("encoder thread failed: {e}")))?;
    Ok(Staged {
        store: store.clone(),
        job_dir,
        files,
    })
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::Ordering;
    use std::time::Duration;

    use arrow::datatypes::SchemaRef;
    use async_trait::async_trait;
    use bytes::Bytes;
    use datafusion::error::DataFusionError;

    use super::super::commit::cleanup;
    use super::super::destination::{ExportCompression, MANIFEST_NAME, STAGING_DIR};
    use super::super::journal::Leftover;
    use super::super::store::is_empty;
    use super::*;
    use arrow::array::{Int64Array, StringArray};
    use arrow::datatypes::{DataType, Field, Schema};
    use datafusion::physical_plan::stream::RecordBatchStreamAdapter;
    use std::sync::Mutex;

    #[derive(Default)]
    struct Recorder(Mutex<Vec<Leftover>>);

    #[async_trait]
    impl UploadJournal for Recorder {
        async fn record(&self, l: &Leftover) -> Result<(), String> {
            self.0.lock().unwrap().push(l.clone());
            Ok(())
        }
    }

    fn batches(n: usize, rows: usize) -> (SchemaRef, Vec<RecordBatch>) {
        let schema = Arc::new(Schema::new(vec![
            Field::new("id", DataType::Int64, false),
            Field::new("text", DataType::Utf8, true),
        ]));
        let out = (0..n)
            .map(|b| {
                let ids: Vec<i64> = (0..rows).map(|i| (b * rows + i) as i64).collect();
                let text: Vec<String> = ids
                    .iter()
                    .map(|i| format!("row {i} {}", i * 7919))
                    .collect();
                RecordBatch::try_new(
                    Arc::clone(&schema),
                    vec![
                        Arc::new(Int64Array::from(ids)),
                        Arc::new(StringArray::from(text)),
                    ],
                )
                .unwrap()
            })
            .collect();
        (schema, out)
    }

    fn stream(
        schema: SchemaRef,
        items: Vec<Result<RecordBatch, DataFusionError>>,
    ) -> SendableRecordBatchStream {
        Box::pin(RecordBatchStreamAdapter::new(
            schema,
            futures::stream::iter(items),
        ))
    }

    fn options(max_file_bytes: u64) -> WriteOptions {
        WriteOptions {
            compression: ExportCompression::None,
            max_file_bytes,
            memory_limit: 32 << 20,
            row_group_rows: 1 << 20,
            max_bytes: 1 << 40,
            max_files: 100_000,
        }
    }

    fn files_under(dir: &std::path::Path) -> Vec<String> {
        let mut out: Vec<String> = walk(dir)
            .into_iter()
            .map(|p| p.strip_prefix(dir).unwrap().display().to_string())
            .collect();
        out.sort();
        out
    }

    fn walk(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
        let mut out = Vec::new();
        for e in std::fs::read_dir(dir).into_iter().flatten().flatten() {
            let p = e.path();
            if p.is_dir() {
                out.extend(walk(&p));
            } else {
                out.push(p);
            }
        }
        out
    }

    /// Local exports: nothing under the destination before the commit, the
    /// files split at the limit, every row back in order.
    #[tokio::test]
    async fn local_export_commits_split_files() {
        let dir = tempfile::tempdir().unwrap();
        let store = ExportStore::local(dir.path()).unwrap();
        let (schema, data) = batches(20, 5_000);
        let prefix = Path::from("team/q1");
        let recorder = Arc::new(Recorder::default());
        let journal: Arc<dyn UploadJournal> = Arc::<Recorder>::clone(&recorder);
        let progress = Arc::new(Progress::default());
        let staged = write(
            &store,
            &prefix,
            "job1",
            stream(schema, data.into_iter().map(Ok).collect()),
            &options(256 << 10),
            &journal,
            &progress,
        )
        .await
        .unwrap();
        assert!(!dir.path().join("team").exists(), "visible before commit");
        let files = staged.files();
        assert!(files.len() > 3, "{files:?}");
        assert_eq!(files.iter().map(|f| f.rows).sum::<u64>(), 100_000);
        assert!(files.iter().all(|f| f.bytes <= 256 << 10), "{files:?}");
        staged
            .commit(&prefix, Bytes::from_static(b"{}"), &journal)
            .await
            .unwrap();
        let listed = files_under(&dir.path().join("team/q1"));
        assert_eq!(listed.len(), files.len() + 1, "{listed:?}");
        assert_eq!(listed[0], MANIFEST_NAME);
        assert!(files_under(&dir.path().join(STAGING_DIR)).is_empty());
        // Every row, in order, across the files.
        let mut next = 0i64;
        for f in &files {
            let file = std::fs::File::open(dir.path().join("team/q1").join(&f.name)).unwrap();
            assert_eq!(file.metadata().unwrap().len(), f.bytes);
            let reader =
                parquet::arrow::arrow_reader::ParquetRecordBatchReader::try_new(file, 4096)
                    .unwrap();
            for b in reader {
                let b = b.unwrap();
                let ids = b.column(0).as_any().downcast_ref::<Int64Array>().unwrap();
                for id in ids.values() {
                    assert_eq!(*id, next);
                    next += 1;
                }
            }
        }
        assert_eq!(next, 100_000);
        assert_eq!(progress.rows.load(Ordering::Relaxed), 100_000);
    }

    /// A failing query leaves nothing but the staging directory, which
    /// cleanup removes.
    #[tokio::test]
    async fn failed_export_leaves_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let store = ExportStore::local(dir.path()).unwrap();
        let (schema, data) = batches(4, 50_000);
        let mut items: Vec<_> = data.into_iter().map(Ok).collect();
        items.push(Err(DataFusionError::Execution("boom".into())));
        let recorder = Arc::new(Recorder::default());
        let journal: Arc<dyn UploadJournal> = Arc::<Recorder>::clone(&recorder);
        let err = write(
            &store,
            &Path::from("team/q2"),
            "job2",
            stream(schema, items),
            &options(64 << 10),
            &journal,
            &Arc::default(),
        )
        .await
        .unwrap_err();
        assert!(err.to_string().contains("boom"), "{err}");
        assert!(!dir.path().join("team").exists());
        let leftovers = recorder.0.lock().unwrap().clone();
        let gone = cleanup(&store, "job2", &leftovers, Duration::from_secs(5)).await;
        assert_eq!(gone, leftovers);
        assert!(walk(dir.path()).is_empty(), "{:?}", walk(dir.path()));
    }

    /// An empty result is one file with the schema and no rows.
    #[tokio::test]
    async fn empty_result_has_one_file() {
        let dir = tempfile::tempdir().unwrap();
        let store = ExportStore::local(dir.path()).unwrap();
        let (schema, _) = batches(0, 0);
        let staged = write(
            &store,
            &Path::from("e"),
            "job3",
            stream(schema, vec![]),
            &options(1 << 20),
            &(Arc::new(Recorder::default()) as Arc<dyn UploadJournal>),
            &Arc::default(),
        )
        .await
        .unwrap();
        let files = staged.files();
        assert_eq!(files.len(), 1);
        assert_eq!(files[0].rows, 0);
        assert!(!is_empty(&store, &Path::from("")).await.unwrap());
        assert!(is_empty(&store, &Path::from("e")).await.unwrap());
    }
}
