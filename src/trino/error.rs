//! Errors in Trino's shape (`error` of a FAILED query result).
//!
//! Codes and names are Trino's `StandardErrorCode`s; planner and DataFusion
//! errors are classified by kind (and, where DataFusion only gives a
//! message, by its wording: covered by the tests below).

use datafusion::error::DataFusionError;
use serde_json::{Value, json};
use sluice_planner::Error as PlanError;

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

/// `at Line: 1, Column: 8` → `(1, 8)`.
fn parser_location(message: &str) -> Option<(u64, u64)> {
    let rest = &message[message.rfind("Line: ")? + 6..];
    let (line, rest) = rest.split_once(',')?;
    let col = rest.trim().strip_prefix("Column: ")?;
    let col: String = col.chars().take_while(char::is_ascii_digit).collect();
    Some((line.trim().parse().ok()?, col.parse().ok()?))
}

/// The Trino form of a planning or execution error.
pub fn from_plan_error(e: &PlanError) -> TrinoError {
    match e {
        PlanError::NotFound { kind, .. } => {
            let code = match *kind {
                "Catalog" => CATALOG_NOT_FOUND,
                "Schema" => SCHEMA_NOT_FOUND,
                _ => TABLE_NOT_FOUND,
            };
            TrinoError::new(code, e.to_string())
        }
        PlanError::Refused(m) => {
            let code = if m.contains("is not allowed: sluice is read-only") {
                PERMISSION_DENIED
            } else if m.starts_with("Catalog must be specified") {
                MISSING_CATALOG_NAME
            } else if m.starts_with("Schema must be specified") {
                MISSING_SCHEMA_NAME
            } else if m.contains("number of parameters") || m.contains("parameters only") {
                INVALID_PARAMETER_USAGE
            } else {
                NOT_SUPPORTED
            };
            TrinoError::new(code, m.clone())
        }
        PlanError::InvalidPolicy(_) => TrinoError::new(GENERIC_USER_ERROR, e.to_string()),
        PlanError::DataFusion(d) => from_datafusion(d),
    }
}

/// The Trino form of a DataFusion error.
pub fn from_datafusion(e: &DataFusionError) -> TrinoError {
    if let Some(down) = sluice_planner::connector::ConnectorUnavailable::find(e) {
        tracing::warn!(error = %down, "catalog unavailable");
        return TrinoError::new(CONNECTOR_ERROR, down.to_string());
    }
    let root = e.find_root();
    let message = root.to_string();
    let message = strip_prefixes(&message);
    match root {
        DataFusionError::SQL(parser, _) => {
            let text = parser.to_string();
            let mut err = TrinoError::new(SYNTAX_ERROR, strip_prefixes(&text));
            err.location = parser_location(&text).or(Some((1, 1)));
            err
        }
        DataFusionError::Execution(m)
            if m.starts_with(sluice_planner::secure_view::POLICY_FAILURE) =>
        {
            TrinoError::new(CONNECTOR_ERROR, m.clone())
        }
        DataFusionError::Plan(m) | DataFusionError::Execution(m) => classify_message(m, &message),
        DataFusionError::SchemaError(inner, _) => match inner.as_ref() {
            datafusion::common::SchemaError::AmbiguousReference { .. } => {
                TrinoError::new(AMBIGUOUS_NAME, message)
            }
            _ => TrinoError::new(COLUMN_NOT_FOUND, message),
        },
        DataFusionError::ArrowError(a, _) => match a.as_ref() {
            arrow::error::ArrowError::DivideByZero => {
                TrinoError::new(DIVISION_BY_ZERO, "Division by zero")
            }
            arrow::error::ArrowError::CastError(_) | arrow::error::ArrowError::ParseError(_) => {
                TrinoError::new(INVALID_CAST_ARGUMENT, message)
            }
            arrow::error::ArrowError::ArithmeticOverflow(_) => {
                TrinoError::new(NUMERIC_VALUE_OUT_OF_RANGE, message)
            }
            arrow::error::ArrowError::ExternalError(_) | arrow::error::ArrowError::IoError(..) => {
                opaque(CONNECTOR_ERROR, e)
            }
            _ => TrinoError::new(GENERIC_USER_ERROR, message),
        },
        DataFusionError::NotImplemented(_) => TrinoError::new(NOT_SUPPORTED, message),
        DataFusionError::ResourcesExhausted(_) => {
            TrinoError::new(EXCEEDED_LOCAL_MEMORY_LIMIT, message)
        }
        DataFusionError::External(_)
        | DataFusionError::IoError(_)
        | DataFusionError::ObjectStore(_)
        | DataFusionError::ParquetError(_) => opaque(CONNECTOR_ERROR, e),
        _ => opaque(GENERIC_INTERNAL_ERROR, e),
    }
}

/// Connector and internal failures: the detail (paths, partition values,
/// internals) goes to the log, the client gets the error's name.
fn opaque(code: (&'static str, i64, ErrorType), e: &DataFusionError) -> TrinoError {
    tracing::error!(error = %e, name = code.0, "Trino query failed");
    TrinoError::new(
        code,
        match code.2 {
            ErrorType::External => {
                "a catalog failed while reading; the details are in the server log"
            }
            _ => "internal error; the details are in the server log",
        },
    )
}

fn classify_message(raw: &str, message: &str) -> TrinoError {
    let lower = raw.to_ascii_lowercase();
    let code = if lower.contains("divide by zero") || lower.contains("division by zero") {
        DIVISION_BY_ZERO
    } else if lower.starts_with("table '") && lower.ends_with("not found") {
        TABLE_NOT_FOUND
    } else if lower.contains("not found or not allowed") {
        COLUMN_NOT_FOUND
    } else if lower.starts_with("invalid function")
        || lower.contains("function not found")
        || lower.contains("unknown function")
    {
        FUNCTION_NOT_FOUND
    } else if lower.contains("no function matches")
        || lower.contains("failed to coerce")
        || lower.contains("cannot be cast")
        || lower.contains("does not support")
        || lower.contains("cannot infer common")
        || lower.contains("type mismatch")
    {
        TYPE_MISMATCH
    } else if lower.contains("cast") {
        INVALID_CAST_ARGUMENT
    } else if lower.contains("ambiguous") {
        AMBIGUOUS_NAME
    } else if lower.contains("placeholder") || lower.contains("parameter") {
        INVALID_PARAMETER_USAGE
    } else {
        GENERIC_USER_ERROR
    };
    TrinoError::new(code, message)
}

/// DataFusion's "Error during planning: " / "Execution error: " prefixes
/// and trailing backtrace notes are noise for Trino clients.
fn strip_prefixes(message: &str) -> String {
    let mut m = message.trim();
    for prefix in [
        "Error during planning: ",
        "Execution error: ",
        "SQL error: ",
        "sql parser error: ",
        "Schema error: ",
        "Arrow error: ",
        "This feature is not implemented: ",
        "ParserError(\"",
    ] {
        if let Some(rest) = m.strip_prefix(prefix) {
            m = rest;
        }
    }
    m.trim_end_matches("\")").to_string()
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
        from_datafusion(&result.expect_err(sql))
    }

    #[tokio::test]
    async fn datafusion_errors() {
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
    fn planner_errors() {
        let e = from_plan_error(&PlanError::NotFound {
            kind: "Table",
            name: "lake.a.b".into(),
        });
        assert_eq!((e.name, e.code), ("TABLE_NOT_FOUND", 46));
        assert_eq!(e.message, "Table 'lake.a.b' does not exist");
        let e = from_plan_error(&PlanError::Refused(
            "INSERT INTO is not allowed: sluice is read-only and accepts only queries".into(),
        ));
        assert_eq!(e.name, "PERMISSION_DENIED");
        let json = TrinoError {
            location: Some((2, 5)),
            ..TrinoError::new(SYNTAX_ERROR, "x")
        }
        .to_json();
        assert_eq!(json["errorLocation"]["columnNumber"], 5);
        assert_eq!(json["errorType"], "USER_ERROR");
    }
}
