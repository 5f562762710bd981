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
//!
//! Files, each using only the ones listed before it: `error`,
//! `destination` (destination URLs, the names reserved in a destination,
//! the compression names), `store` (the object store of a destination,
//! local or S3, and listing the uploads open at a key), `journal` (what a
//! job records before it puts anything on the object store), `commit` (the
//! staged files, the commit, the cleanup of leftovers), `pipeline`
//! (encoding batches to Parquet parts and uploading them while the query
//! streams), `writer` (one job through the pipeline).

mod commit;
mod destination;
mod error;
mod journal;
mod pipeline;
mod store;
mod writer;

pub use commit::{ExportFile, Staged, cleanup, staging_dir};
pub use destination::{DestinationUrl, ExportCompression, MANIFEST_NAME, STAGING_DIR, Scheme};
pub use error::ExportError;
pub use journal::{ANY_UPLOAD, Leftover, UploadJournal};
pub use pipeline::{Progress, WriteOptions};
pub use store::{ExportStore, S3Bucket, inside_export, is_empty};
pub use writer::write;
