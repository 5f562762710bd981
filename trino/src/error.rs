//! Errors in Trino's shape (`error` of a FAILED query result).
//!
//! Codes and names are Trino's `StandardErrorCode`s. Planner errors (and
//! DataFusion's, through the planner's one classifier) are mapped by their
//! [`ErrorKind`] in [`from_plan_error`], never by their text.

use datafusion::error::DataFusionError;
use serde_json::{Value, json};
use sluice_planner::{Error as PlanError, ErrorKind, Object};

/// Trino's error categories.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorType {
    /// The statement is wrong or not allowed.
    User,
    /// sluice failed.
    Internal,
    /// A limit was hit.
    InsufficientResources,
    /// A connector (catalog) failed.
    External,
}

impl ErrorType {
    fn as_str(self) -> &'static str {
        match self {
            ErrorType::User => "USER_ERROR",
            ErrorType::Internal => "INTERNAL_ERROR",
            ErrorType::InsufficientResources => "INSUFFICIENT_RESOURCES",
            ErrorType::External => "EXTERNAL",
        }
    }
}

/// A Trino error.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TrinoError {
    /// `errorName`.
    pub name: &'static str,
    /// `errorCode`.
    pub code: i64,
    /// `errorType`.
    pub kind: ErrorType,
    /// `message`.
    pub message: String,
    /// `errorLocation` (line, column), 1-based.
    pub location: Option<(u64, u64)>,
}

macro_rules! codes {
    ($($name:ident = $code:expr, $kind:ident;)*) => {
        $(
            #[doc = concat!("`", stringify!($name), "`")]
            pub const $name: (&str, i64, ErrorType) = (stringify!($name), $code, ErrorType::$kind);
        )*
    };
}

codes! {
    GENERIC_USER_ERROR = 0, User;
    SYNTAX_ERROR = 1, User;
    ABANDONED_QUERY = 2, User;
    USER_CANCELED = 3, User;
    PERMISSION_DENIED = 4, User;
    NOT_FOUND = 5, User;
    FUNCTION_NOT_FOUND = 6, User;
    INVALID_FUNCTION_ARGUMENT = 7, User;
    DIVISION_BY_ZERO = 8, User;
    INVALID_CAST_ARGUMENT = 9, User;
    NOT_SUPPORTED = 13, User;
    QUERY_REJECTED = 31, User;
    QUERY_TEXT_TOO_LARGE = 35, User;
    EXCEEDED_FUNCTION_MEMORY_LIMIT = 37, User;
    INVALID_SESSION_PROPERTY = 14, User;
    NUMERIC_VALUE_OUT_OF_RANGE = 19, User;
    CATALOG_NOT_FOUND = 44, User;
    SCHEMA_NOT_FOUND = 45, User;
    TABLE_NOT_FOUND = 46, User;
    COLUMN_NOT_FOUND = 47, User;
    MISSING_CATALOG_NAME = 55, User;
    MISSING_SCHEMA_NAME = 56, User;
    TYPE_MISMATCH = 57, User;
    AMBIGUOUS_NAME = 61, User;
    INVALID_PARAMETER_USAGE = 79, User;
    GENERIC_INTERNAL_ERROR = 65536, Internal;
    SERVER_SHUTTING_DOWN = 65549, Internal;
    QUERY_QUEUE_FULL = 131074, InsufficientResources;
    EXCEEDED_TIME_LIMIT = 131075, InsufficientResources;
    EXCEEDED_LOCAL_MEMORY_LIMIT = 131079, InsufficientResources;
    // sluice's own code (Trino has no per-user budget), in the range of
    // insufficient resources so clients treat it like a quota.
    EXCEEDED_TOKEN_BUDGET = 131200, InsufficientResources;
    CONNECTOR_ERROR = 16777216, External;
}

impl TrinoError {
    /// An error of `code` with `message`.
    pub fn new(code: (&'static str, i64, ErrorType), message: impl Into<String>) -> Self {
        Self {
            name: code.0,
            code: code.1,
            kind: code.2,
            message: message.into(),
            location: None,
        }
    }

    /// The `error` object of a query result.
    pub fn to_json(&self) -> Value {
        let location = self
            .location
            .map(|(l, c)| json!({"lineNumber": l, "columnNumber": c}));
        let mut failure = json!({
            "type": "io.trino.spi.TrinoException",
            "message": self.message,
            "suppressed": [],
            "stack": [],
        });
        let mut error = json!({
            "message": self.message,
            "errorCode": self.code,
            "errorName": self.name,
            "errorType": self.kind.as_str(),
        });
        if let Some(loc) = location {
            failure["errorLocation"] = loc.clone();
            error["errorLocation"] = loc;
        }
        error["failureInfo"] = failure;
        error
    }
}

/// The Trino form of a planning or execution error: one exhaustive match
/// on its kind.
pub fn from_plan_error(e: &PlanError) -> TrinoError {
    let kind = e.kind();
    let code = match kind {
        ErrorKind::NotFound(Object::Catalog) => CATALOG_NOT_FOUND,
        ErrorKind::NotFound(Object::Schema) => SCHEMA_NOT_FOUND,
        ErrorKind::NotFound(Object::Table) => TABLE_NOT_FOUND,
        ErrorKind::NotFound(Object::Column) => COLUMN_NOT_FOUND,
        ErrorKind::NotFound(Object::Function) => FUNCTION_NOT_FOUND,
        ErrorKind::MissingName(Object::Catalog) => MISSING_CATALOG_NAME,
        ErrorKind::MissingName(_) => MISSING_SCHEMA_NAME,
        ErrorKind::ReadOnly => PERMISSION_DENIED,
        ErrorKind::Unsupported => NOT_SUPPORTED,
        ErrorKind::InvalidParameters => INVALID_PARAMETER_USAGE,
        ErrorKind::Syntax(location) => {
            return TrinoError {
                location: location.or(Some((1, 1))),
                ..TrinoError::new(SYNTAX_ERROR, e.bare_message())
            };
        }
        ErrorKind::TypeMismatch => TYPE_MISMATCH,
        ErrorKind::Ambiguous => AMBIGUOUS_NAME,
        ErrorKind::InvalidCast => INVALID_CAST_ARGUMENT,
        ErrorKind::DivisionByZero => return TrinoError::new(DIVISION_BY_ZERO, "Division by zero"),
        ErrorKind::NumericOverflow => NUMERIC_VALUE_OUT_OF_RANGE,
        ErrorKind::InvalidStatement | ErrorKind::ExecutionFailed | ErrorKind::InvalidPolicy => {
            GENERIC_USER_ERROR
        }
        ErrorKind::LimitExceeded => EXCEEDED_LOCAL_MEMORY_LIMIT,
        ErrorKind::TooComplex => QUERY_TEXT_TOO_LARGE,
        ErrorKind::FunctionLimit => EXCEEDED_FUNCTION_MEMORY_LIMIT,
        ErrorKind::TimeLimit => EXCEEDED_TIME_LIMIT,
        ErrorKind::TooManyQueries => QUERY_QUEUE_FULL,
        ErrorKind::BudgetSpent => EXCEEDED_TOKEN_BUDGET,
        ErrorKind::Cancelled => USER_CANCELED,
        ErrorKind::Unavailable => {
            tracing::warn!(error = %e.message(), "catalog unavailable");
            CONNECTOR_ERROR
        }
        ErrorKind::ReadFailed => CONNECTOR_ERROR,
        ErrorKind::ConnectorFailed => return opaque(CONNECTOR_ERROR, e),
        ErrorKind::Internal => return opaque(GENERIC_INTERNAL_ERROR, e),
    };
    TrinoError::new(code, e.bare_message())
}

/// The Trino form of an error of a running query's stream.
pub fn from_datafusion(e: DataFusionError) -> TrinoError {
    from_plan_error(&PlanError::DataFusion(e))
}

/// Connector and internal failures: the detail (paths, partition values,
/// internals) goes to the log, the client gets the error's name and the
/// planner's opaque message.
fn opaque(code: (&'static str, i64, ErrorType), e: &PlanError) -> TrinoError {
    tracing::error!(error = %e, name = code.0, "Trino query failed");
    TrinoError::new(code, e.bare_message())
}

#[cfg(test)]
mod tests {
    use datafusion::prelude::SessionContext;

    use super::*;

    async fn df_error(sql: &str) -> TrinoError {
        let ctx = SessionContext::new();
        let result = match ctx.sql(sql).await {
            Ok(df) => df.collect().await.map(|_| ()),
            Err(e) => Err(e),
        };
        from_datafusion(result.expect_err(sql))
    }

    #[tokio::test]
    async fn datafusion_errors_get_trino_codes() {
        let e = df_error("SELEC 1").await;
        assert_eq!(e.name, "SYNTAX_ERROR");
        assert_eq!(e.location, Some((1, 1)));
        let e = df_error("SELECT 1 FROM").await;
        assert_eq!(e.name, "SYNTAX_ERROR", "{e:?}");
        assert!(e.location.is_some());
        assert_eq!(df_error("SELECT * FROM nope").await.name, "TABLE_NOT_FOUND");
        assert_eq!(
            df_error("SELECT no_such_fn(1)").await.name,
            "FUNCTION_NOT_FOUND"
        );
        assert_eq!(df_error("SELECT 1 / 0").await.name, "DIVISION_BY_ZERO");
        assert_eq!(
            df_error("SELECT CAST('x' AS INT)").await.name,
            "INVALID_CAST_ARGUMENT"
        );
    }

    #[test]
    fn planner_refusals_get_trino_codes() {
        let e = from_plan_error(&PlanError::not_found(Object::Table, "lake.a.b"));
        assert_eq!((e.name, e.code), ("TABLE_NOT_FOUND", 46));
        assert_eq!(e.message, "Table 'lake.a.b' does not exist");
        let e = from_plan_error(&PlanError::refused(
            ErrorKind::ReadOnly,
            "INSERT INTO is not allowed: sluice is read-only and accepts only queries",
        ));
        assert_eq!(e.name, "PERMISSION_DENIED");
        let e = from_plan_error(&PlanError::refused(
            ErrorKind::MissingName(Object::Schema),
            "Schema must be specified when session schema is not set",
        ));
        assert_eq!(e.name, "MISSING_SCHEMA_NAME");
        let json = TrinoError {
            location: Some((2, 5)),
            ..TrinoError::new(SYNTAX_ERROR, "x")
        }
        .to_json();
        assert_eq!(json["errorLocation"]["columnNumber"], 5);
        assert_eq!(json["errorType"], "USER_ERROR");
    }
}
