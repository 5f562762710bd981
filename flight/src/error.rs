//! Errors of the Flight SQL service and their one mapping to `tonic::Status`.
//!
//! [`Error`] → [`Status`] is a single exhaustive match: adding a variant
//! forces a decision about its status code, its client message and its log
//! level. Internal failures reach the client only as a generic message; the
//! detail is logged.

use arrow::error::ArrowError;
use arrow_flight::error::FlightError;
use datafusion::error::DataFusionError;
use sluice_planner::{AuthFailure, AuthFailureKind, ErrorKind};
use tonic::Status;
use tonic::metadata::MetadataValue;

use crate::ticket::{ParamsError, TicketError};

/// What every authentication failure tells the client.
pub(crate) const AUTH_FAILED: &str = "authentication failed";

/// Errors of the Flight SQL service.
#[derive(Debug, thiserror::Error)]
pub(crate) enum Error {
    /// Missing, malformed, unknown, expired, revoked or out-of-audience
    /// credentials (the kind is for logs and metrics only).
    #[error("{AUTH_FAILED}")]
    Unauthenticated(AuthFailureKind),
    /// Refused by a rate limit: the token's request rate, or the client
    /// address's failed attempts (`RESOURCE_EXHAUSTED` with `retry-after`).
    #[error("{0}")]
    Limited(AuthFailure),
    /// A ticket or prepared-statement handle was refused.
    #[error(transparent)]
    Ticket(#[from] TicketError),
    /// Planning or execution through the governor.
    #[error(transparent)]
    Planner(#[from] sluice_planner::Error),
    /// A catalog lookup in the scoped session failed.
    #[error(transparent)]
    DataFusion(#[from] DataFusionError),
    /// Client-supplied parameters could not be decoded or bound.
    #[error("invalid parameters: {0}")]
    Params(#[from] ParamsError),
    /// A write (update, ingest, Substrait execution, transaction) was asked of
    /// a read-only gateway.
    #[error("sluice is read-only: {0}")]
    ReadOnly(&'static str),
    /// A well-formed request for something sluice does not offer.
    #[error("{0}")]
    Unsupported(String),
    /// A request that does not make sense as sent.
    #[error("{0}")]
    InvalidRequest(String),
    /// Encoding a response failed (server side).
    #[error("arrow error: {0}")]
    Arrow(#[from] ArrowError),
    /// The Flight encoder failed; a `Tonic` error inside is a status this
    /// mapping already produced upstream and is passed through.
    #[error(transparent)]
    Flight(#[from] FlightError),
}

/// Result alias of the crate.
pub(crate) type Result<T, E = Error> = std::result::Result<T, E>;

impl From<Error> for Status {
    fn from(err: Error) -> Self {
        // Policy refusals are audited as denials (the status code alone
        // does not tell a read-only refusal from a malformed request).
        let denied = match &err {
            Error::ReadOnly(_)
            | Error::Ticket(TicketError::WrongToken | TicketError::BadSignature) => true,
            Error::Planner(e) => e.kind() == ErrorKind::ReadOnly,
            _ => false,
        };
        if denied {
            sluice_planner::audit::note(|a| a.outcome = Some(sluice_planner::Outcome::Denied));
        }
        match err {
            Error::Unauthenticated(kind) => match kind {
                AuthFailureKind::Unavailable => {
                    tracing::warn!(reason = kind.as_str(), "token store unavailable");
                    Status::unavailable("authentication is temporarily unavailable")
                }
                AuthFailureKind::Malformed
                | AuthFailureKind::Unknown
                | AuthFailureKind::Expired
                | AuthFailureKind::Revoked
                | AuthFailureKind::Audience
                | AuthFailureKind::Throttled
                | AuthFailureKind::RateLimited => {
                    tracing::info!(reason = kind.as_str(), "authentication failed");
                    Status::unauthenticated(AUTH_FAILED)
                }
            },
            Error::Limited(failure) => {
                tracing::info!(
                    reason = failure.kind.as_str(),
                    "request refused by a rate limit"
                );
                let mut status = Status::resource_exhausted(failure.to_string());
                if let Some(secs) = failure.retry_after_secs() {
                    status
                        .metadata_mut()
                        .insert("retry-after", MetadataValue::from(secs));
                }
                status
            }
            Error::Ticket(e) => {
                tracing::info!(reason = %e, "ticket refused");
                match e {
                    TicketError::Malformed | TicketError::WrongKind => {
                        Status::invalid_argument(e.to_string())
                    }
                    TicketError::BadSignature | TicketError::WrongToken => {
                        Status::permission_denied(e.to_string())
                    }
                    TicketError::Expired => Status::failed_precondition(format!(
                        "{e}: call GetFlightInfo (or CreatePreparedStatement) again"
                    )),
                }
            }
            Error::Planner(e) => planner_status(&e),
            Error::DataFusion(e) => planner_status(&sluice_planner::Error::DataFusion(e)),
            Error::Params(e) => Status::invalid_argument(format!("invalid parameters: {e}")),
            Error::ReadOnly(what) => {
                Status::invalid_argument(format!("sluice is read-only: {what}"))
            }
            Error::Unsupported(msg) => Status::unimplemented(msg),
            Error::InvalidRequest(msg) => Status::invalid_argument(msg),
            Error::Arrow(e) => internal(&e),
            Error::Flight(e) => match e {
                FlightError::Tonic(status) => *status,
                FlightError::Arrow(_)
                | FlightError::NotYetImplemented(_)
                | FlightError::ProtocolError(_)
                | FlightError::DecodeError(_)
                | FlightError::ExternalError(_) => internal(&e),
            },
        }
    }
}

/// A planning or execution error, by its kind: the user's mistakes keep
/// their message (the planner words "does not exist" and "not granted"
/// identically); failures of sluice and of backends below a secure view
/// are internal and generic, except an unreachable backend, which the
/// client may retry.
fn planner_status(e: &sluice_planner::Error) -> Status {
    match e.kind() {
        ErrorKind::NotFound(_)
        | ErrorKind::MissingName(_)
        | ErrorKind::ReadOnly
        | ErrorKind::Unsupported
        | ErrorKind::InvalidParameters
        | ErrorKind::Syntax(_)
        | ErrorKind::TypeMismatch
        | ErrorKind::Ambiguous
        | ErrorKind::InvalidCast
        | ErrorKind::NumericOverflow
        | ErrorKind::InvalidStatement
        | ErrorKind::TooComplex
        | ErrorKind::FunctionLimit => Status::invalid_argument(e.message()),
        ErrorKind::DivisionByZero => Status::invalid_argument("division by zero"),
        ErrorKind::InvalidPolicy => {
            tracing::warn!(error = %e.message(), "token policy cannot be applied");
            Status::failed_precondition(e.message())
        }
        ErrorKind::LimitExceeded | ErrorKind::TooManyQueries => {
            tracing::warn!(error = %e, "query refused by a resource limit");
            Status::resource_exhausted(e.message())
        }
        ErrorKind::BudgetSpent => {
            tracing::info!(error = %e, "query refused: the token's budget is spent");
            let mut status = Status::resource_exhausted(e.message());
            if let Some(secs) = e.retry_after() {
                status
                    .metadata_mut()
                    .insert("retry-after", MetadataValue::from(secs));
            }
            status
        }
        ErrorKind::TimeLimit => Status::deadline_exceeded(e.message()),
        ErrorKind::Cancelled => Status::cancelled(e.message()),
        ErrorKind::Unavailable => {
            tracing::warn!(error = %e.message(), "catalog unavailable");
            Status::unavailable(e.message())
        }
        ErrorKind::ExecutionFailed
        | ErrorKind::ReadFailed
        | ErrorKind::ConnectorFailed
        | ErrorKind::Internal => internal(e),
    }
}

fn internal(err: &dyn std::error::Error) -> Status {
    tracing::error!(error = %err, "internal error in Flight SQL request");
    Status::internal("internal error (see server logs)")
}

#[cfg(test)]
mod tests {
    use tonic::Code;

    use super::*;

    fn status(e: Error) -> Status {
        e.into()
    }

    #[test]
    fn every_auth_failure_looks_the_same() {
        for kind in [
            AuthFailureKind::Malformed,
            AuthFailureKind::Unknown,
            AuthFailureKind::Expired,
            AuthFailureKind::Revoked,
            AuthFailureKind::Audience,
        ] {
            let s = status(Error::Unauthenticated(kind));
            assert_eq!(s.code(), Code::Unauthenticated);
            assert_eq!(s.message(), "authentication failed");
        }
    }

    #[test]
    fn rate_limits_say_when_to_retry() {
        let s = status(Error::Limited(AuthFailure::limited(
            AuthFailureKind::RateLimited,
            std::time::Duration::from_millis(1500),
        )));
        assert_eq!(s.code(), Code::ResourceExhausted);
        assert_eq!(s.message(), "too many requests: retry after 2 s");
        assert_eq!(s.metadata().get("retry-after").unwrap(), "2");
    }

    #[test]
    fn a_spent_budget_is_resource_exhausted_and_says_when_to_retry() {
        let refusal = sluice_planner::Refusal::new(ErrorKind::BudgetSpent, "budget spent")
            .with_retry_after(120);
        let s = status(Error::Planner(sluice_planner::Error::Refused(
            refusal.clone(),
        )));
        assert_eq!(s.code(), Code::ResourceExhausted);
        assert_eq!(s.message(), "budget spent");
        assert_eq!(s.metadata().get("retry-after").unwrap(), "120");
        // Also when the refusal travelled through DataFusion.
        let s = status(Error::Planner(sluice_planner::Error::DataFusion(
            refusal.into_datafusion(),
        )));
        assert_eq!(s.code(), Code::ResourceExhausted);
        assert_eq!(s.metadata().get("retry-after").unwrap(), "120");
    }

    #[test]
    fn planner_errors_map_by_kind() {
        let s = status(Error::Planner(sluice_planner::Error::refused(
            ErrorKind::ReadOnly,
            "DROP TABLE is not allowed",
        )));
        assert_eq!(s.code(), Code::InvalidArgument);
        assert_eq!(s.message(), "DROP TABLE is not allowed");

        let s = status(Error::Planner(sluice_planner::Error::invalid_policy("x")));
        assert_eq!(s.code(), Code::FailedPrecondition);
        assert_eq!(s.message(), "invalid policy: x");

        let nf = DataFusionError::Plan("table 'lake.s.t' not found or not allowed".into());
        let s = status(Error::Planner(sluice_planner::Error::DataFusion(
            nf.context("while planning"),
        )));
        assert_eq!(s.code(), Code::InvalidArgument);
        assert!(
            s.message().contains("not found or not allowed"),
            "{}",
            s.message()
        );

        let s = status(Error::Planner(sluice_planner::Error::DataFusion(
            DataFusionError::Execution("object store: secret path /x".into()),
        )));
        assert_eq!(s.code(), Code::Internal);
        assert!(!s.message().contains("secret"));
    }

    #[test]
    fn ticket_errors_are_permission_denied() {
        let s = status(Error::Ticket(TicketError::WrongToken));
        assert_eq!(s.code(), Code::PermissionDenied);
        assert_eq!(s.message(), "ticket was not issued to this token");
        let s = status(Error::Ticket(TicketError::BadSignature));
        assert_eq!(s.code(), Code::PermissionDenied);
    }
}
