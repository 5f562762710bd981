//! Planner errors.

use datafusion::error::DataFusionError;

/// Errors of the planning pipeline.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The statement kind is not allowed (DDL, DML, COPY, SET, …): the
    /// message says what was refused and why.
    #[error("{0}")]
    Refused(String),
    /// A token's policy cannot be applied (unknown column in a rule, …).
    #[error("invalid policy: {0}")]
    InvalidPolicy(String),
    /// A catalog, schema or table that does not exist for the token (the
    /// same answer whether it does not exist or is not granted).
    #[error("{kind} '{name}' does not exist")]
    NotFound {
        /// `Catalog`, `Schema` or `Table`.
        kind: &'static str,
        /// The name as the user wrote it (qualified).
        name: String,
    },
    /// Planning or execution error from DataFusion (table or column not
    /// found or not allowed, type errors, …).
    #[error(transparent)]
    DataFusion(#[from] DataFusionError),
}

impl Error {
    /// The message to show a client: DataFusion's root cause without its
    /// backtrace, or this error's own text.
    pub fn message(&self) -> String {
        match self {
            Error::DataFusion(d) => d.find_root().strip_backtrace(),
            other => other.to_string(),
        }
    }

    /// True when the error is the user's to fix (bad SQL, unknown or
    /// disallowed table or column, refused statement), false when it is an
    /// internal or connector failure.
    pub fn is_user_error(&self) -> bool {
        match self {
            Error::Refused(_) | Error::InvalidPolicy(_) | Error::NotFound { .. } => true,
            Error::DataFusion(e) => matches!(
                e.find_root(),
                DataFusionError::Plan(_)
                    | DataFusionError::SchemaError(..)
                    | DataFusionError::SQL(..)
                    | DataFusionError::NotImplemented(_)
            ),
        }
    }
}

/// Result alias of the planner.
pub type Result<T, E = Error> = std::result::Result<T, E>;
