//! The export writer: a record batch stream into Parquet files on object
//! storage (`object_store`: the local filesystem or S3), written while the
//! query streams and committed at the end.
//!
//! **Bounded memory.** Three stages run at once, joined by channels of one
//! or two elements: the query feeds batches to an encoder thread, which
//! writes Parquet into a buffer and hands it on in fixed-size parts, which
//! the uploader sends one at a time. A row group is flushed once its encoded
//! size reaches a quarter of the memory limit, and parts are an eighth of it
//! (at least the 5 MiB S3 needs), so a job holds about `memory_limit` bytes
//! of its own besides what the query's operators use.
//!
//! **Nothing visible before the commit.** On S3 every file is a multipart
//! upload to its final key that stays open until the commit completes it:
//! S3 shows no object before that. On the local filesystem files are written
//! into `<root>/.sluice-staging/<job>/` and renamed into place at the commit.
//! `_manifest.json` is written last. Every S3 key is recorded in an
//! [`UploadJournal`] before its upload is created (then the upload id),
//! and every committed object before (S3) or right after (local) it
//! appears, so [`cleanup`] can abort and delete whatever a failed or
//! cancelled job left, even after a restart, while the object store was
//! unreachable, or when the answer to `CreateMultipartUpload` was lost
//! (it then lists the uploads open at the key). An open upload is only
//! ever aborted, never its key deleted.

use std::fmt;
use std::str::FromStr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use arrow::datatypes::SchemaRef;
use arrow::record_batch::RecordBatch;
use async_trait::async_trait;
use bytes::{BufMut as _, Bytes, BytesMut};
use datafusion::error::DataFusionError;
use datafusion::physical_plan::SendableRecordBatchStream;
use futures::StreamExt as _;
use object_store::aws::{AmazonS3, AmazonS3Builder};
use object_store::local::LocalFileSystem;
use object_store::multipart::{MultipartStore, PartId};
use object_store::path::Path;
use object_store::{
    ClientOptions, MultipartUpload, ObjectStore, ObjectStoreExt as _, PutMode, PutOptions,
    PutPayload, RetryConfig,
};
use parquet::arrow::ArrowWriter;
use parquet::basic::{GzipLevel, ZstdLevel};
use parquet::file::properties::WriterProperties;
use tokio::sync::mpsc;

/// Directory under the local export root holding unfinished files.
pub const STAGING_DIR: &str = ".sluice-staging";
/// Name of the manifest, written last.
pub const MANIFEST_NAME: &str = "_manifest.json";
/// Smallest part of a multipart upload (S3's minimum, except the last part).
const MIN_PART_BYTES: usize = 5 << 20;
/// Largest part the writer sends.
const MAX_PART_BYTES: usize = 64 << 20;

/// Parquet compression of an export.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ExportCompression {
    /// Zstandard (level 1), the default.
    #[default]
    Zstd,
    /// Snappy.
    Snappy,
    /// Gzip (level 6).
    Gzip,
    /// LZ4 (raw).
    Lz4,
    /// Uncompressed.
    None,
}

impl ExportCompression {
    /// The name used in requests and manifests.
    pub fn as_str(&self) -> &'static str {
        match self {
            Self::Zstd => "zstd",
            Self::Snappy => "snappy",
            Self::Gzip => "gzip",
            Self::Lz4 => "lz4",
            Self::None => "none",
        }
    }

    fn parquet(&self) -> parquet::basic::Compression {
        use parquet::basic::Compression as C;
        match self {
            Self::Zstd => C::ZSTD(ZstdLevel::default()),
            Self::Snappy => C::SNAPPY,
            Self::Gzip => C::GZIP(GzipLevel::default()),
            Self::Lz4 => C::LZ4_RAW,
            Self::None => C::UNCOMPRESSED,
        }
    }
}

impl FromStr for ExportCompression {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        Ok(match s.to_ascii_lowercase().as_str() {
            "zstd" => Self::Zstd,
            "snappy" => Self::Snappy,
            "gzip" => Self::Gzip,
            "lz4" => Self::Lz4,
            "none" | "uncompressed" => Self::None,
            _ => {
                return Err(format!(
                    "unknown compression '{s}' (expected zstd, snappy, gzip, lz4 or none)"
                ));
            }
        })
    }
}

/// Which kind of object store a destination names.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Scheme {
    /// `file:///path`: a directory under the configured export root.
    File,
    /// `s3://bucket/prefix`.
    S3,
}

/// A parsed export destination (or a token's destination prefix):
/// `file:///a/b` or `s3://bucket/a/b`, normalised (no trailing slash).
///
/// Segments may contain ASCII letters, digits and `-_.=+@,:` only; `.`,
/// `..`, empty segments, escapes and every other character are refused, so
/// a destination can never leave its prefix.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct DestinationUrl {
    /// File or S3.
    pub scheme: Scheme,
    /// The bucket (S3 only).
    pub bucket: Option<String>,
    /// The path segments below the root or bucket.
    pub segments: Vec<String>,
}

impl DestinationUrl {
    /// Parses and normalises a destination.
    pub fn parse(text: &str) -> Result<Self, String> {
        let bad = |why: &str| format!("invalid destination '{}': {why}", text.escape_debug());
        let (scheme, rest) = if let Some(rest) = text.strip_prefix("file://") {
            let rest = rest
                .strip_prefix('/')
                .ok_or_else(|| bad("a file destination is written file:///path"))?;
            (Scheme::File, rest)
        } else if let Some(rest) = text.strip_prefix("s3://") {
            (Scheme::S3, rest)
        } else {
            return Err(bad("expected file:///path or s3://bucket/prefix"));
        };
        let rest = rest.strip_suffix('/').unwrap_or(rest);
        let mut parts = if rest.is_empty() {
            Vec::new()
        } else {
            rest.split('/').map(str::to_string).collect::<Vec<_>>()
        };
        let bucket = match scheme {
            Scheme::File => None,
            Scheme::S3 => {
                if parts.is_empty() {
                    return Err(bad("missing bucket"));
                }
                let b = parts.remove(0);
                let ok = (3..=63).contains(&b.len())
                    && b.bytes().all(|c| {
                        c.is_ascii_lowercase() || c.is_ascii_digit() || c == b'-' || c == b'.'
                    })
                    && !b.starts_with(['.', '-'])
                    && !b.contains("..");
                if !ok {
                    return Err(bad("not a valid bucket name"));
                }
                Some(b)
            }
        };
        for s in &parts {
            if s.is_empty() {
                return Err(bad("empty path segment"));
            }
            if s == "." || s == ".." {
                return Err(bad("'.' and '..' are not allowed"));
            }
            if !s.bytes().all(|c| {
                c.is_ascii_alphanumeric()
                    || matches!(c, b'-' | b'_' | b'.' | b'=' | b'+' | b'@' | b',' | b':')
            }) {
                return Err(bad(
                    "path segments may only contain ASCII letters, digits and -_.=+@,:",
                ));
            }
            // The object path must be spelled exactly like the destination.
            if object_store::path::PathPart::from(s.as_str()).as_ref() != s {
                return Err(bad(
                    "a path segment would be re-encoded by the object store",
                ));
            }
        }
        if scheme == Scheme::File && parts.first().is_some_and(|s| s == STAGING_DIR) {
            return Err(bad(&format!("'{STAGING_DIR}' is reserved")));
        }
        Ok(Self {
            scheme,
            bucket,
            segments: parts,
        })
    }

    /// Whether `self` is `prefix` or lies below it (segment by segment:
    /// `s3://b/acme` covers `s3://b/acme/q1`, not `s3://b/acme-evil`).
    pub fn is_within(&self, prefix: &DestinationUrl) -> bool {
        self.scheme == prefix.scheme
            && self.bucket == prefix.bucket
            && self.segments.len() >= prefix.segments.len()
            && self
                .segments
                .iter()
                .zip(&prefix.segments)
                .all(|(a, b)| a == b)
    }

    /// Whether `self` lies within one of a token's destination prefixes
    /// (prefixes that do not parse allow nothing).
    pub fn is_allowed_by(&self, prefixes: &[String]) -> bool {
        prefixes
            .iter()
            .filter_map(|p| DestinationUrl::parse(p).ok())
            .any(|p| self.is_within(&p))
    }

    /// The object path of the destination inside its store.
    pub fn path(&self) -> Path {
        Path::from_iter(self.segments.iter().map(String::as_str))
    }
}

impl fmt::Display for DestinationUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.scheme {
            Scheme::File => write!(f, "file:///{}", self.segments.join("/")),
            Scheme::S3 => {
                write!(f, "s3://{}", self.bucket.as_deref().unwrap_or_default())?;
                for s in &self.segments {
                    write!(f, "/{s}")?;
                }
                Ok(())
            }
        }
    }
}

/// How to reach S3 (`[exports.s3]`).
#[derive(Clone, Default)]
pub struct S3Options {
    /// Custom endpoint; `http://` endpoints allow plain HTTP.
    pub endpoint: Option<String>,
    /// Region.
    pub region: Option<String>,
    /// Access key id (else the environment's credentials).
    pub access_key_id: Option<String>,
    /// Secret access key.
    pub secret_access_key: Option<String>,
    /// Path-style requests (`endpoint/bucket/key`).
    pub path_style: bool,
    /// How long a failing request is retried before the export fails.
    pub retry_timeout: Duration,
}

impl fmt::Debug for S3Options {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("S3Options")
            .field("endpoint", &self.endpoint)
            .field("region", &self.region)
            .field("access_key_id", &self.access_key_id)
            .field(
                "secret_access_key",
                &self.secret_access_key.as_ref().map(|_| "[redacted]"),
            )
            .field("path_style", &self.path_style)
            .field("retry_timeout", &self.retry_timeout)
            .finish()
    }
}

/// The object store of one destination.
#[derive(Debug, Clone)]
pub enum ExportStore {
    /// The local export root.
    Local(Arc<LocalFileSystem>, std::path::PathBuf),
    /// One S3 bucket, and how to list its multipart uploads.
    S3(Arc<AmazonS3>, Arc<S3Bucket>),
}

impl ExportStore {
    /// The local filesystem under `root` (created if missing).
    pub fn local(root: &std::path::Path) -> Result<Self, ExportError> {
        std::fs::create_dir_all(root)
            .map_err(|e| ExportError::Storage(format!("cannot create {}: {e}", root.display())))?;
        Ok(Self::Local(
            Arc::new(LocalFileSystem::new_with_prefix(root).map_err(storage)?),
            root.to_path_buf(),
        ))
    }

    /// Local destinations: no existing part of `prefix` below the root may
    /// be a symbolic link (which could lead outside the root) or a file.
    pub fn check_destination(&self, prefix: &Path) -> Result<(), ExportError> {
        let Self::Local(_, root) = self else {
            return Ok(());
        };
        let mut at = root.clone();
        for part in prefix.parts() {
            at.push(part.as_ref());
            match std::fs::symlink_metadata(&at) {
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
                Err(e) => {
                    return Err(ExportError::Destination(format!(
                        "cannot inspect the destination: {}",
                        e.kind()
                    )));
                }
                Ok(m) if m.file_type().is_symlink() => {
                    return Err(ExportError::Destination(
                        "the destination goes through a symbolic link".into(),
                    ));
                }
                Ok(m) if !m.is_dir() => {
                    return Err(ExportError::Destination(
                        "a part of the destination is a file".into(),
                    ));
                }
                Ok(_) => {}
            }
        }
        Ok(())
    }

    /// One S3 bucket.
    pub fn s3(bucket: &str, o: &S3Options) -> Result<Self, ExportError> {
        let mut b = AmazonS3Builder::from_env()
            .with_bucket_name(bucket)
            .with_virtual_hosted_style_request(!o.path_style)
            .with_retry(RetryConfig {
                max_retries: 10,
                retry_timeout: o.retry_timeout,
                ..RetryConfig::default()
            })
            .with_client_options(
                ClientOptions::new()
                    .with_connect_timeout(Duration::from_secs(5))
                    .with_timeout(Duration::from_secs(120)),
            );
        if let Some(e) = &o.endpoint {
            b = b.with_endpoint(e).with_allow_http(e.starts_with("http://"));
        }
        if let Some(r) = &o.region {
            b = b.with_region(r);
        }
        if let Some(k) = &o.access_key_id {
            b = b.with_access_key_id(k);
        }
        if let Some(s) = &o.secret_access_key {
            b = b.with_secret_access_key(s);
        }
        let region = o
            .region
            .clone()
            .or_else(|| std::env::var("AWS_REGION").ok())
            .or_else(|| std::env::var("AWS_DEFAULT_REGION").ok())
            .unwrap_or_else(|| "us-east-1".into());
        let endpoint = o
            .endpoint
            .clone()
            .unwrap_or_else(|| format!("https://s3.{region}.amazonaws.com"));
        let base = match (o.path_style, endpoint.split_once("://")) {
            (false, Some((scheme, host))) => format!("{scheme}://{bucket}.{host}"),
            _ => format!("{}/{bucket}", endpoint.trim_end_matches('/')),
        };
        Ok(Self::S3(
            Arc::new(b.build().map_err(storage)?),
            Arc::new(S3Bucket {
                base: base.trim_end_matches('/').to_string(),
                region,
                http: reqwest::Client::builder()
                    .connect_timeout(Duration::from_secs(5))
                    .timeout(Duration::from_secs(30))
                    .build()
                    .map_err(|e| ExportError::Storage(e.to_string()))?,
            }),
        ))
    }

    fn object_store(&self) -> &dyn ObjectStore {
        match self {
            Self::Local(s, _) => s.as_ref(),
            Self::S3(s, _) => s.as_ref(),
        }
    }
}

/// What ListMultipartUploads needs (object_store has no call for it).
#[derive(Debug)]
pub struct S3Bucket {
    /// `https://bucket.host` or `http://host/bucket`.
    base: String,
    region: String,
    http: reqwest::Client,
}

/// RFC 3986 encoding of a query value (what SigV4 signs).
fn query_encode(s: &str) -> String {
    let mut out = String::new();
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

fn xml_unescape(s: &str) -> String {
    s.replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&quot;", "\"")
        .replace("&apos;", "'")
        .replace("&amp;", "&")
}

fn xml_field<'a>(block: &'a str, tag: &str) -> Option<&'a str> {
    let open = format!("<{tag}>");
    let close = format!("</{tag}>");
    let start = block.find(&open)? + open.len();
    let end = block[start..].find(&close)? + start;
    Some(&block[start..end])
}

/// The ids of the multipart uploads open at exactly `key`.
async fn open_uploads(
    s3: &AmazonS3,
    bucket: &S3Bucket,
    key: &str,
) -> Result<Vec<String>, ExportError> {
    let credential = s3.credentials().get_credential().await.map_err(storage)?;
    let url = format!("{}/?prefix={}&uploads=", bucket.base, query_encode(key));
    let mut request = http::Request::builder()
        .method(http::Method::GET)
        .uri(&url)
        .body(object_store::client::HttpRequestBody::empty())
        .map_err(|e| ExportError::Storage(e.to_string()))?;
    object_store::aws::AwsAuthorizer::new(&credential, "s3", &bucket.region)
        .authorize(&mut request, None);
    let response = bucket
        .http
        .get(&url)
        .headers(request.headers().clone())
        .send()
        .await
        .map_err(|e| ExportError::Storage(format!("listing multipart uploads: {e}")))?;
    let status = response.status();
    let body = response
        .text()
        .await
        .map_err(|e| ExportError::Storage(format!("listing multipart uploads: {e}")))?;
    if !status.is_success() {
        return Err(ExportError::Storage(format!(
            "listing multipart uploads: HTTP {status}"
        )));
    }
    Ok(body
        .split("<Upload>")
        .skip(1)
        .filter_map(|block| {
            let k = xml_unescape(xml_field(block, "Key")?);
            let id = xml_unescape(xml_field(block, "UploadId")?);
            (k == key).then_some(id)
        })
        .collect())
}

/// `upload_id` of a leftover that stands for every upload open at its key:
/// recorded before `CreateMultipartUpload`, whose answer may be lost even
/// when S3 created the upload.
pub const ANY_UPLOAD: &str = "?";

/// An object a job may leave behind: an open S3 multipart upload
/// (`upload_id`) or a written object.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Leftover {
    /// The object path inside the store.
    pub path: String,
    /// The multipart upload id (S3).
    pub upload_id: Option<String>,
}

/// Durable record of what a job has put on the object store, written
/// *before* each upload or object exists, so a failed job can be cleaned up.
#[async_trait]
pub trait UploadJournal: Send + Sync {
    /// Records `leftover`; the export stops if this fails.
    async fn record(&self, leftover: &Leftover) -> Result<(), String>;
}

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

/// One file of a finished export.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExportFile {
    /// Name relative to the destination (`part-00000.parquet`).
    pub name: String,
    /// Rows in the file.
    pub rows: u64,
    /// Size in bytes.
    pub bytes: u64,
}

/// Why an export failed.
#[derive(Debug, thiserror::Error)]
pub enum ExportError {
    /// The query failed.
    #[error("{0}")]
    Query(DataFusionError),
    /// The object store failed (the message has no credentials).
    #[error("object store: {0}")]
    Storage(String),
    /// Parquet encoding failed.
    #[error("parquet: {0}")]
    Encode(String),
    /// The upload journal could not be written.
    #[error("cannot record the upload: {0}")]
    Journal(String),
    /// The destination already holds objects.
    #[error("destination {0} is not empty")]
    NotEmpty(String),
    /// The destination cannot be written (a file or link in the way).
    #[error("{0}")]
    Destination(String),
    /// The job went past `max_bytes` or `max_files`.
    #[error("{0}")]
    TooLarge(String),
}

fn storage(e: object_store::Error) -> ExportError {
    ExportError::Storage(e.to_string())
}

/// A finished but uncommitted file.
#[derive(Debug)]
enum Pending {
    S3 {
        path: Path,
        id: String,
        parts: Vec<PartId>,
    },
    Local {
        staging: Path,
        path: Path,
    },
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
enum Piece {
    /// The next bytes of the current file.
    Bytes(Bytes),
    /// The current file is complete.
    EndFile { rows: u64 },
}

/// Files written and waiting for [`Staged::commit`].
#[derive(Debug)]
pub struct Staged {
    store: ExportStore,
    job_dir: Path,
    files: Vec<(ExportFile, Pending)>,
}

fn part_name(i: usize) -> String {
    format!("part-{i:05}.parquet")
}

/// The staging directory of `job_id` (local exports).
pub fn staging_dir(job_id: &str) -> Path {
    Path::from_iter([STAGING_DIR, job_id])
}

/// Whether nothing is stored under `prefix`.
pub async fn is_empty(store: &ExportStore, prefix: &Path) -> Result<bool, ExportError> {
    let mut list = store.object_store().list(Some(prefix));
    match list.next().await {
        None => Ok(true),
        Some(Ok(_)) => Ok(false),
        Some(Err(e)) => Err(storage(e)),
    }
}

/// Whether `prefix` lies inside an earlier export (a `_manifest.json` in
/// one of the directories above it), where readers of that export would
/// pick up its files.
pub async fn inside_export(store: &ExportStore, prefix: &Path) -> Result<bool, ExportError> {
    let parts: Vec<_> = prefix.parts().collect();
    for n in 0..parts.len() {
        let manifest = Path::from_iter(parts[..n].iter().cloned()).join(MANIFEST_NAME);
        match store.object_store().head(&manifest).await {
            Ok(_) => return Ok(true),
            Err(object_store::Error::NotFound { .. }) => {}
            Err(e) => return Err(storage(e)),
        }
    }
    Ok(false)
}

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

/// The encoder thread: batches in, Parquet bytes out in parts of exactly
/// `part_bytes` (the last part of each file may be shorter).
fn encode(
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
async fn upload(
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

impl Staged {
    /// The files written, in order.
    pub fn files(&self) -> Vec<ExportFile> {
        self.files.iter().map(|(f, _)| f.clone()).collect()
    }

    /// Makes the files visible under the destination, then writes
    /// `manifest` as `_manifest.json`. On error, whatever was recorded in
    /// `journal` must be cleaned up by the caller ([`cleanup`]).
    pub async fn commit(
        self,
        prefix: &Path,
        manifest: Bytes,
        journal: &Arc<dyn UploadJournal>,
    ) -> Result<(), ExportError> {
        let store = self.store.object_store();
        for (_, pending) in self.files {
            match (pending, &self.store) {
                (Pending::S3 { path, id, parts }, ExportStore::S3(s3, _)) => {
                    // The key is this job's: the destination was empty and
                    // no other job may write there while this one lives.
                    journal
                        .record(&Leftover {
                            path: path.to_string(),
                            upload_id: None,
                        })
                        .await
                        .map_err(ExportError::Journal)?;
                    s3.complete_multipart(&path, &id, parts)
                        .await
                        .map_err(storage)?;
                }
                (Pending::Local { staging, path }, _) => {
                    // Recorded once it is ours: a file someone else put
                    // there makes the rename fail and is never deleted.
                    store
                        .rename_if_not_exists(&staging, &path)
                        .await
                        .map_err(storage)?;
                    let recorded = journal
                        .record(&Leftover {
                            path: path.to_string(),
                            upload_id: None,
                        })
                        .await;
                    if let Err(e) = recorded {
                        let _ = store.delete(&path).await;
                        return Err(ExportError::Journal(e));
                    }
                }
                (Pending::S3 { .. }, ExportStore::Local(..)) => {
                    unreachable!("S3 uploads only on S3 stores")
                }
            }
        }
        let manifest_path = prefix.clone().join(MANIFEST_NAME);
        journal
            .record(&Leftover {
                path: manifest_path.to_string(),
                upload_id: None,
            })
            .await
            .map_err(ExportError::Journal)?;
        store
            .put_opts(
                &manifest_path,
                PutPayload::from(manifest),
                PutOptions::from(PutMode::Create),
            )
            .await
            .map_err(storage)?;
        if let ExportStore::Local(fs, _) = &self.store {
            remove_staging(fs, &self.job_dir);
        }
        Ok(())
    }
}

fn remove_staging(fs: &LocalFileSystem, dir: &Path) {
    if let Ok(p) = fs.path_to_filesystem(dir)
        && let Err(e) = std::fs::remove_dir_all(&p)
        && e.kind() != std::io::ErrorKind::NotFound
    {
        tracing::warn!(dir = %p.display(), error = %e, "cannot remove an export staging directory");
    }
}

/// Aborts the uploads and deletes the objects `leftovers` name, and (local
/// exports) the job's staging directory. Returns the leftovers that are
/// gone; the rest must be tried again later.
///
/// Each call gets `deadline`: an object store that hangs delays the caller
/// by that much per leftover, not indefinitely.
pub async fn cleanup(
    store: &ExportStore,
    job_id: &str,
    leftovers: &[Leftover],
    deadline: Duration,
) -> Vec<Leftover> {
    if let ExportStore::Local(fs, _) = store {
        remove_staging(fs, &staging_dir(job_id));
    }
    let mut gone = Vec::new();
    for l in leftovers {
        let path = Path::from(l.path.as_str());
        // An open upload is only aborted: the key may belong to someone
        // else. Objects are deleted only when the job committed them.
        let timed = |r: Result<object_store::Result<()>, tokio::time::error::Elapsed>, what| match r
        {
            Ok(Ok(())) | Ok(Err(object_store::Error::NotFound { .. })) => true,
            Ok(Err(e)) => {
                tracing::warn!(job_id, path = %path, error = %e, "cannot {what}");
                false
            }
            Err(_) => {
                tracing::warn!(job_id, path = %path, "cannot {what}: no answer in time");
                false
            }
        };
        let done = match (&l.upload_id, store) {
            (Some(any), ExportStore::S3(s3, bucket)) if any == ANY_UPLOAD => {
                let abort_all = async {
                    for id in open_uploads(s3, bucket, path.as_ref()).await.map_err(|e| {
                        object_store::Error::Generic {
                            store: "S3",
                            source: Box::new(e),
                        }
                    })? {
                        match s3.abort_multipart(&path, &id).await {
                            Ok(()) | Err(object_store::Error::NotFound { .. }) => {}
                            Err(e) => return Err(e),
                        }
                    }
                    Ok(())
                };
                timed(
                    tokio::time::timeout(deadline, abort_all).await,
                    "abort the export uploads at a key",
                )
            }
            (Some(id), ExportStore::S3(s3, _)) => timed(
                tokio::time::timeout(deadline, s3.abort_multipart(&path, id)).await,
                "abort an export upload",
            ),
            (Some(_), ExportStore::Local(..)) => true,
            (None, _) => timed(
                tokio::time::timeout(deadline, store.object_store().delete(&path)).await,
                "delete an export object",
            ),
        };
        if done {
            gone.push(l.clone());
        }
    }
    gone
}

#[cfg(test)]
mod tests {
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

    #[test]
    fn destinations_parse_and_normalise() {
        let d = DestinationUrl::parse("s3://my-bucket/acme/q1/").unwrap();
        assert_eq!(d.to_string(), "s3://my-bucket/acme/q1");
        assert_eq!(d.path().to_string(), "acme/q1");
        let f = DestinationUrl::parse("file:///acme/2026=11").unwrap();
        assert_eq!(f.to_string(), "file:///acme/2026=11");
        assert_eq!(
            DestinationUrl::parse("file:///").unwrap().to_string(),
            "file:///"
        );
        assert_eq!(
            DestinationUrl::parse("s3://bkt").unwrap().segments,
            Vec::<String>::new()
        );
    }

    #[test]
    fn destinations_refuse_escapes() {
        for bad in [
            "s3://b/acme/../other",
            "s3://bkt/acme/./x",
            "s3://bkt/acme//x",
            "s3://bkt/acme/%2e%2e/x",
            "s3://bkt/acme\\..\\x",
            "s3://bkt/a b",
            "s3://bkt/a\nb",
            "s3://bkt/a#b",
            "s3://bkt/a~b",
            "s3://bkt/a?b",
            "s3://B_ad/x",
            "s3://",
            "s3:///x",
            "file://acme",
            "file:///../etc",
            "file:///.sluice-staging/x",
            "file:////abs",
            "http://x/y",
            "/tmp/x",
            "",
        ] {
            assert!(DestinationUrl::parse(bad).is_err(), "{bad:?} was accepted");
        }
    }

    #[test]
    fn prefixes_match_whole_segments() {
        let p = |s| DestinationUrl::parse(s).unwrap();
        assert!(p("s3://bkt/acme/q1").is_within(&p("s3://bkt/acme")));
        assert!(p("s3://bkt/acme").is_within(&p("s3://bkt/acme/")));
        assert!(!p("s3://bkt/acme-evil/q1").is_within(&p("s3://bkt/acme")));
        assert!(!p("s3://bkt/ac").is_within(&p("s3://bkt/acme")));
        assert!(!p("s3://other/acme/q1").is_within(&p("s3://bkt/acme")));
        assert!(!p("file:///acme/q1").is_within(&p("s3://bkt/acme")));
        assert!(p("file:///acme/q1").is_within(&p("file:///")));
        assert!(p("s3://bkt/x").is_within(&p("s3://bkt")));
    }

    #[test]
    fn compression_names() {
        for c in ["zstd", "snappy", "gzip", "lz4", "none"] {
            assert_eq!(c.parse::<ExportCompression>().unwrap().as_str(), c);
        }
        assert!("brotli9".parse::<ExportCompression>().is_err());
    }
}
