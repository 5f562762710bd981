//! The journal of what a job puts on the object store: each S3 key (then
//! its upload id) recorded before its upload exists, each committed object
//! before or right after it appears, so a failed or cancelled job can be
//! cleaned up even after a restart.

use async_trait::async_trait;

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
