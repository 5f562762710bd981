//! The one classifier of DataFusion errors.
//!
//! Errors sluice raises inside DataFusion callbacks are typed
//! ([`Refusal`], [`ConnectorUnavailable`], [`PolicyFailure`],
//! [`DimensionMismatch`]) and found by downcasting. DataFusion's own
//! errors are classified by their variant, and where DataFusion gives
//! nothing but a message (`Plan` and `Execution` errors), by the wording
//! of DataFusion 53's messages: that is the only place in sluice that
//! reads error text, and its tests run real statements, so a wording that
//! changes in a DataFusion upgrade fails them.

use std::error::Error as StdError;

use arrow::error::ArrowError;
use datafusion::common::SchemaError;
use datafusion::error::DataFusionError;
use datafusion::sql::sqlparser::parser::ParserError;

use super::{ErrorKind, Object, PolicyFailure, Refusal};
use crate::connector::ConnectorUnavailable;
use crate::vectors::DimensionMismatch;

/// The kind of a DataFusion error (of its root cause).
pub fn classify(e: &DataFusionError) -> ErrorKind {
    match e.find_root() {
        DataFusionError::External(inner) => match sluice_error(inner.as_ref()) {
            Some(typed) => typed.kind,
            None => ErrorKind::ConnectorFailed,
        },
        DataFusionError::SQL(parser, _)
            if matches!(parser.as_ref(), ParserError::RecursionLimitExceeded) =>
        {
            ErrorKind::TooComplex
        }
        DataFusionError::SQL(parser, _) => ErrorKind::Syntax(parser_location(parser)),
        DataFusionError::Plan(m) => from_message(m).unwrap_or(ErrorKind::InvalidStatement),
        // While running, only division by zero is told apart by wording:
        // other execution messages keep the kind the frontends have always
        // answered with.
        DataFusionError::Execution(m) if is_division_by_zero(m) => ErrorKind::DivisionByZero,
        DataFusionError::Execution(_) => ErrorKind::ExecutionFailed,
        DataFusionError::SchemaError(inner, _) => match inner.as_ref() {
            SchemaError::AmbiguousReference { .. } => ErrorKind::Ambiguous,
            _ => ErrorKind::NotFound(Object::Column),
        },
        DataFusionError::ArrowError(a, _) => match a.as_ref() {
            ArrowError::DivideByZero => ErrorKind::DivisionByZero,
            ArrowError::CastError(_) | ArrowError::ParseError(_) => ErrorKind::InvalidCast,
            ArrowError::ArithmeticOverflow(_) => ErrorKind::NumericOverflow,
            // Errors of storage and file formats quote files and backends.
            ArrowError::ExternalError(_)
            | ArrowError::IoError(..)
            | ArrowError::ParquetError(_)
            | ArrowError::IpcError(_)
            | ArrowError::CsvError(_)
            | ArrowError::JsonError(_)
            | ArrowError::AvroError(_)
            | ArrowError::CDataInterface(_) => ErrorKind::ConnectorFailed,
            _ => ErrorKind::ExecutionFailed,
        },
        DataFusionError::NotImplemented(_) => ErrorKind::Unsupported,
        DataFusionError::ResourcesExhausted(_) => ErrorKind::LimitExceeded,
        DataFusionError::IoError(_)
        | DataFusionError::ObjectStore(_)
        | DataFusionError::ParquetError(_) => ErrorKind::ConnectorFailed,
        _ => ErrorKind::Internal,
    }
}

/// A typed error of sluice's found inside a DataFusion error.
pub(super) struct Typed {
    pub(super) kind: ErrorKind,
    message: String,
}

impl std::fmt::Display for Typed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message)
    }
}

/// The kind and client message of one of sluice's typed errors.
pub(super) fn sluice_error(e: &(dyn StdError + Send + Sync + 'static)) -> Option<Typed> {
    let typed = |kind, message: String| Some(Typed { kind, message });
    if let Some(r) = e.downcast_ref::<Refusal>() {
        return typed(r.kind(), r.message().to_string());
    }
    if let Some(u) = e.downcast_ref::<ConnectorUnavailable>() {
        return typed(ErrorKind::Unavailable, u.to_string());
    }
    if let Some(p) = e.downcast_ref::<PolicyFailure>() {
        return typed(ErrorKind::ReadFailed, p.to_string());
    }
    if let Some(d) = e.downcast_ref::<DimensionMismatch>() {
        return typed(ErrorKind::TypeMismatch, d.to_string());
    }
    None
}

/// The root cause's message without DataFusion's category prefix.
pub(super) fn bare_message(e: &DataFusionError) -> String {
    match e.find_root() {
        DataFusionError::Plan(m) | DataFusionError::Execution(m) => m.clone(),
        // This one quotes the expression's Rust debug form.
        DataFusionError::NotImplemented(m)
            if m.starts_with("Physical plan does not support logical expression") =>
        {
            "the statement uses an expression in a place where it cannot be evaluated".to_string()
        }
        DataFusionError::NotImplemented(m) => m.clone(),
        DataFusionError::ResourcesExhausted(m) => memory_message(m),
        DataFusionError::SQL(parser, _) => match parser.as_ref() {
            ParserError::ParserError(m) | ParserError::TokenizerError(m) => m.clone(),
            ParserError::RecursionLimitExceeded => {
                "the statement nests parentheses, subqueries or operators too deeply \
                 (limits.max_nesting_depth)"
                    .to_string()
            }
        },
        DataFusionError::SchemaError(inner, _) => inner.to_string(),
        DataFusionError::ArrowError(a, _) => a.to_string(),
        DataFusionError::External(inner) => match sluice_error(inner.as_ref()) {
            Some(typed) => typed.message,
            None => inner.to_string(),
        },
        root => root.to_string(),
    }
}

/// A memory refusal as the client reads it: sluice's memory pool names
/// the limit itself (`limits.…`); DataFusion's own refusals (spilling
/// disabled, a spill that needs more room) get a sentence that does.
fn memory_message(message: &str) -> String {
    match message
        .find("the query needs")
        .or_else(|| message.find("the gateway's query memory"))
    {
        Some(at) => message[at..].to_string(),
        None => "the query needs more memory than its share (limits.query_memory_limit) and \
                 could not spill the rest to disk (limits.spill_dir, limits.spill_limit)"
            .to_string(),
    }
}

/// DataFusion's wording of division by zero (`Plan` while simplifying
/// constants, `Execution` while running).
fn is_division_by_zero(message: &str) -> bool {
    let m = message.to_ascii_lowercase();
    m.contains("divide by zero") || m.contains("division by zero")
}

/// The kind of a `Plan` error, from DataFusion's wording.
fn from_message(message: &str) -> Option<ErrorKind> {
    let m = message.to_ascii_lowercase();
    let any = |needles: &[&str]| needles.iter().any(|n| m.contains(n));
    Some(if is_division_by_zero(&m) {
        ErrorKind::DivisionByZero
    } else if m.starts_with("table '") && m.ends_with("not found") {
        ErrorKind::NotFound(Object::Table)
    } else if m.starts_with("invalid function") || any(&["function not found", "unknown function"])
    {
        ErrorKind::NotFound(Object::Function)
    } else if any(&[
        "no function matches",
        "failed to coerce",
        "cannot be cast",
        "does not support",
        "cannot infer common",
        "type mismatch",
    ]) {
        ErrorKind::TypeMismatch
    } else if m.contains("cast") {
        ErrorKind::InvalidCast
    } else if m.contains("ambiguous") {
        ErrorKind::Ambiguous
    } else if any(&["placeholder", "parameter"]) {
        ErrorKind::InvalidParameters
    } else {
        return None;
    })
}

/// `… at Line: 1, Column: 8` (sqlparser's wording) → `(1, 8)`.
fn parser_location(e: &ParserError) -> Option<(u64, u64)> {
    let text = e.to_string();
    let rest = &text[text.rfind("Line: ")? + 6..];
    let (line, rest) = rest.split_once(',')?;
    let col = rest.trim().strip_prefix("Column: ")?;
    let col: String = col.chars().take_while(char::is_ascii_digit).collect();
    Some((line.trim().parse().ok()?, col.parse().ok()?))
}

#[cfg(test)]
mod tests {
    use datafusion::prelude::SessionContext;

    use super::*;

    /// The kind of what DataFusion answers to `sql`.
    async fn kind_of(sql: &str) -> ErrorKind {
        let ctx = SessionContext::new();
        let result = match ctx.sql(sql).await {
            Ok(df) => df.collect().await.map(|_| ()),
            Err(e) => Err(e),
        };
        classify(&result.expect_err(sql))
    }

    #[tokio::test]
    async fn datafusion_errors_are_classified_by_kind() {
        assert_eq!(kind_of("SELEC 1").await, ErrorKind::Syntax(Some((1, 1))));
        assert!(matches!(
            kind_of("SELECT 1 FROM").await,
            ErrorKind::Syntax(_)
        ));
        assert_eq!(
            kind_of("SELECT * FROM nope").await,
            ErrorKind::NotFound(Object::Table)
        );
        assert_eq!(
            kind_of("SELECT no_such_fn(1)").await,
            ErrorKind::NotFound(Object::Function)
        );
        assert_eq!(kind_of("SELECT 1 / 0").await, ErrorKind::DivisionByZero);
        assert_eq!(
            kind_of("SELECT CAST('x' AS INT)").await,
            ErrorKind::InvalidCast
        );
        assert_eq!(
            kind_of("SELECT a FROM (SELECT 1 AS b)").await,
            ErrorKind::NotFound(Object::Column)
        );
        assert_eq!(kind_of("SELECT abs('x')").await, ErrorKind::TypeMismatch);
        assert_eq!(
            kind_of("SELECT 1 UNION SELECT 'a', 2").await,
            ErrorKind::InvalidStatement
        );
    }

    #[test]
    fn typed_errors_are_found_through_context() {
        let refusal = Refusal::new(ErrorKind::ReadOnly, "no")
            .into_datafusion()
            .context("while planning");
        assert_eq!(classify(&refusal), ErrorKind::ReadOnly);
        let down = ConnectorUnavailable {
            catalog: "vec".into(),
            reason: "timeout".into(),
            peer: false,
        }
        .into_datafusion()
        .context("scanning");
        assert_eq!(classify(&down), ErrorKind::Unavailable);
        assert_eq!(bare_message(&down), "catalog vec is unavailable: timeout");
    }

    #[test]
    fn arrow_storage_and_format_errors_are_connector_failures() {
        for a in [
            ArrowError::ParquetError("s3://bucket/part-0.parquet: eof".into()),
            ArrowError::IpcError("x".into()),
            ArrowError::CsvError("x".into()),
            ArrowError::JsonError("x".into()),
            ArrowError::AvroError("x".into()),
            ArrowError::CDataInterface("x".into()),
        ] {
            let e = DataFusionError::ArrowError(Box::new(a), None);
            assert_eq!(classify(&e), ErrorKind::ConnectorFailed, "{e}");
            let e = crate::Error::DataFusion(e);
            assert!(!e.message().contains("s3://"), "{}", e.message());
            assert!(!e.bare_message().contains("s3://"));
        }
    }

    #[test]
    fn unknown_external_errors_are_connector_failures() {
        let e = DataFusionError::External(Box::new(std::io::Error::other("s3://bucket/x")));
        assert_eq!(classify(&e), ErrorKind::ConnectorFailed);
        assert_eq!(
            classify(&DataFusionError::Internal("bug".into())),
            ErrorKind::Internal
        );
    }
}
