//! Why an export failed.

use datafusion::error::DataFusionError;

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

pub(super) fn storage(e: object_store::Error) -> ExportError {
    ExportError::Storage(e.to_string())
}
