//! Errors of the `sluice` binary.

use std::path::PathBuf;

/// Everything that can go wrong in the binary (outside of request handling,
/// which has its own error types mapped to protocol answers).
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The configuration could not be read or is invalid.
    #[error("configuration: {0}")]
    Config(String),
    /// The token store failed.
    #[error("token store: {0}")]
    Store(#[from] sqlx::Error),
    /// The store's migrations failed.
    #[error("token store migration: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    /// A stored value could not be decoded (corrupt or hand-edited row).
    #[error("token store: corrupt value in {what}: {message}")]
    Corrupt {
        /// Which value.
        what: String,
        /// Why it could not be decoded.
        message: String,
    },
    /// A token document is invalid; every problem is listed.
    #[error("invalid token: {}", .0.join("; "))]
    InvalidToken(Vec<String>),
    /// No token with this id.
    #[error("token '{0}' not found")]
    TokenNotFound(String),
    /// A catalog could not be loaded.
    #[error("catalog '{name}': {message}")]
    Catalog {
        /// The catalog's name (the config section key).
        name: String,
        /// What went wrong.
        message: String,
    },
    /// A connector failed (a catalog that cannot be loaded names itself).
    #[error(transparent)]
    Connector(#[from] sluice_connectors::Error),
    /// Reading or writing a file failed.
    #[error("{}: {source}", .path.display())]
    Io {
        /// The file or directory.
        path: PathBuf,
        /// The underlying error.
        source: std::io::Error,
    },
    /// Binding or running a server failed.
    #[error("{what}: {message}")]
    Server {
        /// Which server (Flight, HTTP).
        what: &'static str,
        /// What went wrong.
        message: String,
    },
    /// The command cannot run in the current state (e.g. no admin token yet).
    #[error("{0}")]
    Refused(String),
}

impl Error {
    /// An [`Error::Io`] for `path`.
    pub fn io(path: impl Into<PathBuf>) -> impl FnOnce(std::io::Error) -> Error {
        let path = path.into();
        move |source| Error::Io { path, source }
    }

    /// Whether this is the store being unreachable (not a refused query).
    pub fn is_unavailable(&self) -> bool {
        matches!(
            self,
            Error::Store(sqlx::Error::PoolTimedOut | sqlx::Error::Io(_) | sqlx::Error::PoolClosed)
        )
    }
}

/// Result alias of the binary.
pub type Result<T, E = Error> = std::result::Result<T, E>;
