//! Planner errors and their kinds.
//!
//! Every error of the pipeline has an [`ErrorKind`]: what went wrong, in
//! the terms a frontend needs to choose its answer (a gRPC status, a Trino
//! error code, an HTTP status). Frontends map kinds in one exhaustive
//! match each and never read message text. Refusals sluice itself makes
//! carry their kind from where they are made ([`Refusal`]), also when they
//! travel through DataFusion as `DataFusionError::External`; what
//! DataFusion reports is classified once, in [`classify`].

use std::fmt;

use datafusion::error::DataFusionError;

mod classify;
mod opaque;

pub use classify::classify;
pub use opaque::PolicyFailure;
pub(crate) use opaque::opaque_failure;

/// What a name that is missing or not allowed names.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Object {
    /// A catalog.
    Catalog,
    /// A schema (namespace).
    Schema,
    /// A table.
    Table,
    /// A column.
    Column,
    /// A function.
    Function,
}

impl Object {
    /// `Catalog`, `Schema`, … as messages name it.
    pub fn as_str(self) -> &'static str {
        match self {
            Object::Catalog => "Catalog",
            Object::Schema => "Schema",
            Object::Table => "Table",
            Object::Column => "Column",
            Object::Function => "Function",
        }
    }
}

/// What kind of failure an error is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ErrorKind {
    /// The object does not exist for the token: missing and not granted
    /// are the same answer (DESIGN §4.1–4.2).
    NotFound(Object),
    /// A statement names no catalog (or schema) and the session has none.
    MissingName(Object),
    /// The statement writes or changes something: sluice is read-only.
    ReadOnly,
    /// A well-formed request for something sluice does not offer.
    Unsupported,
    /// Parameters do not fit the statement (count, kind, placeholders).
    InvalidParameters,
    /// The SQL does not parse; the location, when the parser gave one
    /// (1-based line and column).
    Syntax(Option<(u64, u64)>),
    /// Types that do not fit together.
    TypeMismatch,
    /// A name that refers to more than one thing.
    Ambiguous,
    /// A value that cannot be converted to the type asked for.
    InvalidCast,
    /// Division by zero.
    DivisionByZero,
    /// An arithmetic result out of its type's range.
    NumericOverflow,
    /// Any other mistake in the statement, found while planning.
    InvalidStatement,
    /// A failure while running that is the statement's (its message is
    /// about visible data only).
    ExecutionFailed,
    /// The token's policy cannot be applied to a table (a rule or column
    /// it names no longer exists).
    InvalidPolicy,
    /// A resource limit of the gateway was reached (memory).
    LimitExceeded,
    /// The statement is over a bound checked before planning (length,
    /// nesting, number of expressions).
    TooComplex,
    /// A function call would produce (or compute) more than a call may.
    FunctionLimit,
    /// The statement ran past its time limit.
    TimeLimit,
    /// No execution slot is free (too many queries at once).
    TooManyQueries,
    /// The token's cost budget (bytes scanned, rows returned per hour or
    /// day) is spent until its window resets.
    BudgetSpent,
    /// The statement was stopped because its client went away.
    Cancelled,
    /// A backend is unreachable; the message names the catalog.
    Unavailable,
    /// Reading a table under the token's policy failed (the row policy, a
    /// mask or the connector below a secure view). The message is the
    /// secure view's own: it names the table and nothing else.
    ReadFailed,
    /// A connector failed outside any secure view. Its message may carry
    /// paths or internals: it goes to the log, not to the client.
    ConnectorFailed,
    /// sluice itself failed.
    Internal,
}

/// A refusal made by sluice, with its kind and a message fit for the
/// client. Inside DataFusion callbacks (catalogs, table functions) it
/// travels as `DataFusionError::External` ([`Refusal::into_datafusion`])
/// and [`classify`] finds it again.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refusal {
    kind: ErrorKind,
    message: String,
    retry_after: Option<u64>,
}

impl Refusal {
    /// A refusal of `kind` saying `message`.
    pub fn new(kind: ErrorKind, message: impl Into<String>) -> Self {
        Self {
            kind,
            message: message.into(),
            retry_after: None,
        }
    }

    /// The same refusal, telling the client to retry in `seconds`.
    pub fn with_retry_after(mut self, seconds: u64) -> Self {
        self.retry_after = Some(seconds);
        self
    }

    /// Seconds after which the client may retry, when the refusal knows.
    pub fn retry_after(&self) -> Option<u64> {
        self.retry_after
    }

    /// Its kind.
    pub fn kind(&self) -> ErrorKind {
        self.kind
    }

    /// Its message.
    pub fn message(&self) -> &str {
        &self.message
    }

    /// As a DataFusion error (for callbacks that must return one).
    pub fn into_datafusion(self) -> DataFusionError {
        DataFusionError::External(Box::new(self))
    }
}

impl fmt::Display for Refusal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for Refusal {}

/// Errors of the planning pipeline.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Refused by sluice (read-only, unsupported, not found, parameters,
    /// policy); the kind says which.
    #[error("{0}")]
    Refused(Refusal),
    /// Planning or execution error from DataFusion (and refusals that
    /// travelled through it).
    #[error(transparent)]
    DataFusion(#[from] DataFusionError),
}

impl From<Refusal> for Error {
    fn from(r: Refusal) -> Self {
        Error::Refused(r)
    }
}

impl Error {
    /// A refusal of `kind` saying `message`.
    pub fn refused(kind: ErrorKind, message: impl Into<String>) -> Self {
        Error::Refused(Refusal::new(kind, message))
    }

    /// `Catalog 'x' does not exist` (or schema, table): the same answer
    /// whether it does not exist or is not granted.
    pub fn not_found(object: Object, name: impl fmt::Display) -> Self {
        Self::refused(
            ErrorKind::NotFound(object),
            format!("{} '{name}' does not exist", object.as_str()),
        )
    }

    /// The token's policy cannot be applied.
    pub fn invalid_policy(message: impl fmt::Display) -> Self {
        Self::refused(
            ErrorKind::InvalidPolicy,
            format!("invalid policy: {message}"),
        )
    }

    /// Seconds after which a refused client may retry, when known.
    pub fn retry_after(&self) -> Option<u64> {
        match self {
            Error::Refused(r) => r.retry_after,
            Error::DataFusion(d) => match d.find_root() {
                DataFusionError::External(inner) => inner
                    .downcast_ref::<Refusal>()
                    .and_then(Refusal::retry_after),
                _ => None,
            },
        }
    }

    /// What kind of error this is.
    pub fn kind(&self) -> ErrorKind {
        match self {
            Error::Refused(r) => r.kind,
            Error::DataFusion(e) => classify(e),
        }
    }

    /// The message to show a client: a refusal's own, DataFusion's root
    /// cause without its backtrace, or the message of a refusal or typed
    /// connector error that travelled through DataFusion. A connector
    /// failure outside any secure view and an internal error say only that
    /// they happened ([`CONNECTOR_FAILED`], [`INTERNAL`]): their detail may
    /// carry paths, credentials or data and belongs in the server log,
    /// which the `Display` text is for.
    pub fn message(&self) -> String {
        if let Some(opaque) = self.opaque_message() {
            return opaque.to_string();
        }
        match self {
            Error::Refused(r) => r.message.clone(),
            Error::DataFusion(d) => match d.find_root() {
                DataFusionError::External(inner) => match classify::sluice_error(inner.as_ref()) {
                    Some(typed) => typed.to_string(),
                    None => d.find_root().strip_backtrace(),
                },
                // Memory refusals name the limit in sluice's words.
                DataFusionError::ResourcesExhausted(_) => classify::bare_message(d),
                root => root.strip_backtrace(),
            },
        }
    }

    /// The message without DataFusion's category prefix (`Error during
    /// planning: `, `Execution error: `, …), for protocols whose error
    /// shape carries the category itself (Trino).
    pub fn bare_message(&self) -> String {
        if let Some(opaque) = self.opaque_message() {
            return opaque.to_string();
        }
        match self {
            Error::Refused(r) => r.message.clone(),
            Error::DataFusion(d) => classify::bare_message(d),
        }
    }

    /// The whole client message of a kind whose detail stays in the log.
    fn opaque_message(&self) -> Option<&'static str> {
        match self.kind() {
            ErrorKind::ConnectorFailed => Some(CONNECTOR_FAILED),
            ErrorKind::Internal => Some(INTERNAL),
            _ => None,
        }
    }
}

/// What a client is told of a connector failure outside any secure view.
pub const CONNECTOR_FAILED: &str =
    "a catalog failed while reading; the details are in the server log";

/// What a client is told of an internal error.
pub const INTERNAL: &str = "internal error; the details are in the server log";

/// Result alias of the planner.
pub type Result<T, E = Error> = std::result::Result<T, E>;
