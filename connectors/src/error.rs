//! Connector errors.

/// Errors of the connectors.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The catalog configuration is not usable.
    #[error("catalog {catalog}: {message}")]
    Config {
        /// Catalog name as configured.
        catalog: String,
        /// What is wrong.
        message: String,
    },
    /// A configured catalog could not be loaded.
    #[error("catalog '{catalog}': {source}")]
    Load {
        /// The catalog's name (the config section key).
        catalog: String,
        /// Why.
        source: Box<Error>,
    },
    /// An error from iceberg-rust.
    #[error("iceberg: {0}")]
    Iceberg(#[from] ::iceberg::Error),
    /// A Milvus request the server refused.
    #[error("milvus catalog {catalog}: {message}")]
    Milvus {
        /// Catalog name as configured.
        catalog: String,
        /// What failed.
        message: String,
    },
    /// An error from DataFusion.
    #[error(transparent)]
    DataFusion(#[from] datafusion::error::DataFusionError),
    /// A filesystem error.
    #[error("{context}: {source}")]
    Io {
        /// What was being done.
        context: String,
        /// The underlying error.
        source: std::io::Error,
    },
}

/// Result alias of the connectors.
pub type Result<T, E = Error> = std::result::Result<T, E>;
