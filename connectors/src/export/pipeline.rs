//! The write pipeline's stages after the query: the encoder thread, which
//! writes Parquet and hands it on in fixed-size parts, and the uploader,
//! which sends them one at a time (an S3 multipart upload to the final
//! key, or a file in the local staging directory); the writer's settings
//! and live counters.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use arrow::datatypes::SchemaRef;
use arrow::record_batch::RecordBatch;
use bytes::{BufMut as _, Bytes, BytesMut};
use object_store::multipart::{MultipartStore, PartId};
use object_store::path::Path;
use object_store::{MultipartUpload, ObjectStoreExt as _, PutPayload};
use parquet::arrow::ArrowWriter;
use parquet::file::properties::WriterProperties;
use tokio::sync::mpsc;

use super::commit::{ExportFile, Pending};
use super::destination::ExportCompression;
use super::error::{ExportError, storage};
use super::journal::{ANY_UPLOAD, Leftover, UploadJournal};
use super::store::ExportStore;

/// Smallest part of a multipart upload (S3's minimum, except the last part).
const MIN_PART_BYTES: usize = 5 << 20;
/// Largest part the writer sends.
const MAX_PART_BYTES: usize = 64 << 20;

/// Writer settings.
#[derive(Debug, Clone)]
pub struct WriteOptions {
    /// Parquet compression.
    pub compression: ExportCompression,
    /// A file is closed before it would exceed this size (it can exceed it
    /// only by what one slice of rows, a sixteenth of the limit, adds
    /// beyond the estimate).
    pub max_file_bytes: u64,
    /// The job's own buffers (row group in progress and upload parts).
    pub memory_limit: usize,
    /// Most rows in a row group.
    pub row_group_rows: usize,
    /// Most bytes one export may write.
    pub max_bytes: u64,
    /// Most files one export may write.
    pub max_files: u64,
}

impl WriteOptions {
    fn part_bytes(&self) -> usize {
        (self.memory_limit / 8).clamp(MIN_PART_BYTES, MAX_PART_BYTES)
    }

    fn row_group_bytes(&self) -> usize {
        (self.memory_limit / 4).max(1 << 20)
    }
}

/// Live counters of a running export.
#[derive(Debug, Default)]
pub struct Progress {
    /// Rows encoded (written to a file, not necessarily uploaded yet).
    pub rows: AtomicU64,
    /// Bytes uploaded.
    pub bytes: AtomicU64,
    /// Files finished.
    pub files: AtomicU64,
}

/// An open upload.
enum Open {
    S3 {
        path: Path,
        id: String,
        parts: Vec<PartId>,
    },
    Local {
        staging: Path,
        path: Path,
        upload: Box<dyn MultipartUpload>,
    },
}

/// What the encoder hands the uploader.
pub(super) enum Piece {
    /// The next bytes of the current file.
    Bytes(Bytes),
    /// The current file is complete.
    EndFile { rows: u64 },
}

fn part_name(i: usize) -> String {
    format!("part-{i:05}.parquet")
}

/// The encoder thread: batches in, Parquet bytes out in parts of exactly
/// `part_bytes` (the last part of each file may be shorter).
pub(super) fn encode(
    schema: SchemaRef,
    mut batches: mpsc::Receiver<RecordBatch>,
    out: mpsc::Sender<Result<Piece, ExportError>>,
    opts: &WriteOptions,
    progress: &Progress,
) {
    if let Err(e) = encode_inner(schema, &mut batches, &out, opts, progress) {
        let _ = out.blocking_send(Err(e));
    }
}

struct Stop;

fn encode_inner(
    schema: SchemaRef,
    batches: &mut mpsc::Receiver<RecordBatch>,
    out: &mpsc::Sender<Result<Piece, ExportError>>,
    opts: &WriteOptions,
    progress: &Progress,
) -> Result<(), ExportError> {
    let enc = |e: parquet::errors::ParquetError| ExportError::Encode(e.to_string());
    // Pages small next to a file, so the size of the row group in progress
    // (exact for closed pages, an estimate before compression for the open
    // one) stays close to what the file will take.
    let page = usize::try_from(opts.max_file_bytes / 64)
        .unwrap_or(usize::MAX)
        .clamp(4 << 10, 1 << 20);
    // Room for the footer (schema and row group metadata with statistics).
    // Grows to what finished files really needed beyond the estimate
    // (column and offset indexes, page headers, footer).
    let mut footer = 4096 + 256 * schema.fields().len() as u64;
    let props = WriterProperties::builder()
        .set_compression(opts.compression.parquet())
        .set_data_page_size_limit(page)
        .set_dictionary_page_size_limit(page)
        .set_max_row_group_row_count(Some(opts.row_group_rows.max(1)))
        .set_created_by(format!("sluice {}", env!("CARGO_PKG_VERSION")))
        .build();
    let part = opts.part_bytes();
    let row_group_bytes = opts.row_group_bytes();
    let new_writer = || {
        ArrowWriter::try_new(
            BytesMut::with_capacity(part).writer(),
            Arc::clone(&schema),
            Some(props.clone()),
        )
        .map_err(enc)
    };
    // Sends full parts (or everything, at the end of a file).
    let drain = |w: &mut ArrowWriter<bytes::buf::Writer<BytesMut>>, all: bool| {
        let buf = w.inner_mut().get_mut();
        while buf.len() >= part || (all && !buf.is_empty()) {
            let n = buf.len().min(part);
            let chunk = buf.split_to(n).freeze();
            out.blocking_send(Ok(Piece::Bytes(chunk)))
                .map_err(|_| Stop)?;
        }
        Ok::<_, Stop>(())
    };
    let mut writer: Option<ArrowWriter<_>> = None;
    let mut rows_in_file = 0u64;
    let mut files = 0usize;
    let finish = |w: &mut ArrowWriter<_>,
                  rows: u64,
                  footer: &mut u64|
     -> Result<Result<(), Stop>, ExportError> {
        let estimate = (w.bytes_written() + w.in_progress_size()) as u64;
        w.finish().map_err(enc)?;
        let overhead = (w.bytes_written() as u64).saturating_sub(estimate);
        *footer = (*footer).max(overhead + overhead / 8);
        if drain(w, true).is_err() {
            return Ok(Err(Stop));
        }
        Ok(out
            .blocking_send(Ok(Piece::EndFile { rows }))
            .map_err(|_| Stop))
    };
    while let Some(batch) = batches.blocking_recv() {
        let rows = batch.num_rows();
        if rows == 0 {
            continue;
        }
        // Slices small enough that a file ends close to its size limit.
        let row_bytes = (batch.get_array_memory_size() / rows).max(1) as u64;
        let slice = ((opts.max_file_bytes / 16) / row_bytes).clamp(1, 8192) as usize;
        let mut offset = 0;
        while offset < rows {
            let n = slice.min(rows - offset);
            let piece = batch.slice(offset, n);
            offset += n;
            // Close the file first if this slice would take it past the
            // limit, judging by the bytes per row it has so far.
            if let Some(w) = &mut writer
                && rows_in_file > 0
            {
                let size = (w.bytes_written() + w.in_progress_size()) as u64;
                let per_row = size.div_ceil(rows_in_file);
                if size + per_row * n as u64 + footer > opts.max_file_bytes {
                    if finish(w, rows_in_file, &mut footer)?.is_err() {
                        return Ok(());
                    }
                    files += 1;
                    rows_in_file = 0;
                    writer = None;
                }
            }
            let w = match &mut writer {
                Some(w) => w,
                None => writer.insert(new_writer()?),
            };
            w.write(&piece).map_err(enc)?;
            rows_in_file += n as u64;
            progress.rows.fetch_add(n as u64, Ordering::Relaxed);
            if w.in_progress_size() >= row_group_bytes {
                w.flush().map_err(enc)?;
            }
            if drain(w, false).is_err() {
                return Ok(());
            }
            if (w.bytes_written() + w.in_progress_size()) as u64 + footer >= opts.max_file_bytes {
                if finish(w, rows_in_file, &mut footer)?.is_err() {
                    return Ok(());
                }
                files += 1;
                rows_in_file = 0;
                writer = None;
            }
        }
    }
    // Always at least one file, so an empty result still has its schema.
    if writer.is_none() && files == 0 {
        writer = Some(new_writer()?);
    }
    if let Some(w) = &mut writer {
        let _ = finish(w, rows_in_file, &mut footer)?;
    }
    Ok(())
}

/// The uploader: one part in flight at a time, while the encoder goes on.
pub(super) async fn upload(
    store: &ExportStore,
    prefix: &Path,
    job_dir: &Path,
    mut pieces: mpsc::Receiver<Result<Piece, ExportError>>,
    journal: &Arc<dyn UploadJournal>,
    progress: &Progress,
    options: &WriteOptions,
) -> Result<Vec<(ExportFile, Pending)>, ExportError> {
    let mut done = Vec::new();
    let mut open: Option<(Open, u64)> = None;
    while let Some(piece) = pieces.recv().await {
        match piece? {
            Piece::Bytes(bytes) => {
                let n = bytes.len() as u64;
                let total = progress.bytes.load(Ordering::Relaxed) + n;
                if total > options.max_bytes {
                    return Err(ExportError::TooLarge(format!(
                        "the export exceeds exports.max_bytes_per_job ({} bytes)",
                        options.max_bytes
                    )));
                }
                if open.is_none() {
                    if done.len() as u64 >= options.max_files {
                        return Err(ExportError::TooLarge(format!(
                            "the export exceeds exports.max_files_per_job ({} files)",
                            options.max_files
                        )));
                    }
                    let name = part_name(done.len());
                    let path = prefix.clone().join(name.as_str());
                    let o = match store {
                        ExportStore::S3(s3, _) => {
                            // Created and recorded in a task of its own: a
                            // job cancelled meanwhile still records the
                            // upload, so its cleanup finds it.
                            let (s3, journal, at) =
                                (Arc::clone(s3), Arc::clone(journal), path.clone());
                            let id = tokio::spawn(async move {
                                journal
                                    .record(&Leftover {
                                        path: at.to_string(),
                                        upload_id: Some(ANY_UPLOAD.into()),
                                    })
                                    .await
                                    .map_err(ExportError::Journal)?;
                                let id = s3.create_multipart(&at).await.map_err(storage)?;
                                journal
                                    .record(&Leftover {
                                        path: at.to_string(),
                                        upload_id: Some(id.clone()),
                                    })
                                    .await
                                    .map_err(ExportError::Journal)?;
                                Ok::<_, ExportError>(id)
                            })
                            .await
                            .map_err(|e| {
                                ExportError::Encode(format!("upload task failed: {e}"))
                            })??;
                            Open::S3 {
                                path,
                                id,
                                parts: Vec::new(),
                            }
                        }
                        ExportStore::Local(fs, _) => {
                            let staging = job_dir.clone().join(name.as_str());
                            let upload = fs.put_multipart(&staging).await.map_err(storage)?;
                            Open::Local {
                                staging,
                                path,
                                upload,
                            }
                        }
                    };
                    open = Some((o, 0));
                }
                let (o, size) = open.as_mut().expect("opened above");
                match (o, store) {
                    (Open::S3 { path, id, parts }, ExportStore::S3(s3, _)) => {
                        let part = s3
                            .put_part(path, id, parts.len(), PutPayload::from(bytes))
                            .await
                            .map_err(storage)?;
                        parts.push(part);
                    }
                    (Open::Local { upload, .. }, _) => {
                        upload
                            .put_part(PutPayload::from(bytes))
                            .await
                            .map_err(storage)?;
                    }
                    (Open::S3 { .. }, ExportStore::Local(..)) => {
                        unreachable!("S3 uploads only on S3 stores")
                    }
                }
                *size += n;
                progress.bytes.fetch_add(n, Ordering::Relaxed);
            }
            Piece::EndFile { rows } => {
                let Some((o, size)) = open.take() else {
                    return Err(ExportError::Encode("a file without bytes".into()));
                };
                let pending = match o {
                    Open::S3 { path, id, parts } => Pending::S3 { path, id, parts },
                    Open::Local {
                        staging,
                        path,
                        mut upload,
                    } => {
                        upload.complete().await.map_err(storage)?;
                        Pending::Local { staging, path }
                    }
                };
                let file = ExportFile {
                    name: part_name(done.len()),
                    rows,
                    bytes: size,
                };
                progress.files.fetch_add(1, Ordering::Relaxed);
                done.push((file, pending));
            }
        }
    }
    if open.is_some() {
        return Err(ExportError::Encode("the encoder stopped mid-file".into()));
    }
    Ok(done)
}
