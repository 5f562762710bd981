//! The Flight SQL server's audit layer (a `tower` layer under tonic): gives
//! each call a request id (returned as `x-request-id`; a client's own
//! `x-request-id` is recorded as `client_request_id`) and an [`AuditHandle`]
//! that the service fills, and writes one audit record when the response
//! has ended — for `DoGet`, when the last message was sent or the client
//! went away.

use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Instant;

use bytes::Bytes;
use http::{HeaderValue, Request, Response};
use http_body::{Body, Frame, SizeHint};
use sluice_planner::{AuditHandle, Outcome};
use tonic::transport::server::TcpConnectInfo;
use tower::{Layer, Service};
use tracing::Instrument as _;

use super::{AuditLog, Protocol, RequestInfo};

/// Header carrying the request id both ways.
pub const REQUEST_ID: &str = "x-request-id";

/// The request id a client sent, if it is a sane one (up to 128 letters,
/// digits, `-`, `_`, `.`).
pub fn client_request_id(sent: Option<&HeaderValue>) -> Option<String> {
    sent.and_then(|v| v.to_str().ok())
        .filter(|s| {
            !s.is_empty()
                && s.len() <= 128
                && s.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_' || b == b'.')
        })
        .map(str::to_string)
}

/// A new request id: the gateway chooses it, so it identifies one request.
pub fn new_request_id() -> String {
    uuid::Uuid::new_v4().to_string()
}

/// Adds auditing to the Flight SQL service.
#[derive(Debug, Clone)]
pub struct FlightAuditLayer {
    log: Arc<AuditLog>,
}

impl FlightAuditLayer {
    /// Records go to `log`.
    pub fn new(log: Arc<AuditLog>) -> Self {
        Self { log }
    }
}

impl<S> Layer<S> for FlightAuditLayer {
    type Service = FlightAudit<S>;

    fn layer(&self, inner: S) -> Self::Service {
        FlightAudit {
            inner,
            log: Arc::clone(&self.log),
        }
    }
}

/// See [`FlightAuditLayer`].
#[derive(Debug, Clone)]
pub struct FlightAudit<S> {
    inner: S,
    log: Arc<AuditLog>,
}

impl<S, ReqBody, ResBody> Service<Request<ReqBody>> for FlightAudit<S>
where
    S: Service<Request<ReqBody>, Response = Response<ResBody>> + Clone + Send + 'static,
    S::Future: Send + 'static,
    ReqBody: Send + 'static,
{
    type Response = Response<AuditedBody<ResBody>>;
    type Error = S::Error;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, S::Error>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), S::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: Request<ReqBody>) -> Self::Future {
        // The clone that was made ready is the one to call.
        let clone = self.inner.clone();
        let mut inner = std::mem::replace(&mut self.inner, clone);
        let log = Arc::clone(&self.log);
        let id = new_request_id();
        let client_id = client_request_id(req.headers().get(REQUEST_ID));
        let action = req
            .uri()
            .path()
            .rsplit('/')
            .next()
            .unwrap_or_default()
            .to_string();
        let client = req
            .extensions()
            .get::<TcpConnectInfo>()
            .and_then(TcpConnectInfo::remote_addr)
            .map(|a| a.ip());
        let info = RequestInfo {
            request_id: id.clone(),
            client_request_id: client_id,
            trace_id: None,
            protocol: Protocol::FlightSql,
            action,
            client,
            started: Instant::now(),
        };
        let span = tracing::info_span!("flight", request_id = %id, method = %info.action);
        crate::telemetry::continue_trace(&span, req.headers());
        let trace_id = crate::telemetry::trace_id(&span);
        let mut info = info;
        info.trace_id.clone_from(&trace_id);
        let handle = AuditHandle::new();
        handle.update(|a| a.trace_id = trace_id);
        let call = sluice_planner::audit::with_handle(handle.clone(), inner.call(req));
        let answer_span = span.clone();
        Box::pin(
            async move {
                let mut resp = call.await?;
                if let Ok(v) = HeaderValue::from_str(&id) {
                    resp.headers_mut().insert(REQUEST_ID, v);
                }
                crate::telemetry::answer_with(&answer_span, resp.headers_mut());
                let answer_span = answer_span.clone();
                // Errors before any message come as headers only.
                let status = resp
                    .headers()
                    .get("grpc-status")
                    .and_then(|v| v.to_str().ok())
                    .and_then(|s| s.parse::<i32>().ok());
                Ok(resp.map(|body| AuditedBody {
                    inner: Some(Box::pin(body)),
                    pending: Some(Pending {
                        log,
                        info,
                        handle,
                        status,
                        span: answer_span,
                    }),
                }))
            }
            .instrument(span),
        )
    }
}

struct Pending {
    log: Arc<AuditLog>,
    info: RequestInfo,
    handle: AuditHandle,
    status: Option<i32>,
    /// The call's span lives until the answer has ended (a `DoGet`
    /// stream's time is part of it).
    span: tracing::Span,
}

impl Pending {
    /// Writes the record; `complete` is false when the body was dropped
    /// before its end (the client went away).
    fn finish(self, complete: bool) {
        let mut facts = self.handle.snapshot();
        let outcome = match (facts.outcome, self.status, complete) {
            (Some(o), _, _) => o,
            (None, Some(code), _) => outcome_of_grpc(code),
            (None, None, true) => Outcome::Ok,
            (None, None, false) => Outcome::Cancelled,
        };
        // The code only: messages may quote values from the statement or
        // rows (they go to the log, not to the audit record).
        if outcome != Outcome::Ok {
            facts.error = self
                .status
                .map(|code| format!("{:?}", tonic::Code::from_i32(code)));
        }
        self.log.record(&self.info, facts, outcome);
    }
}

/// The outcome of a gRPC status code.
pub fn outcome_of_grpc(code: i32) -> Outcome {
    match tonic::Code::from_i32(code) {
        tonic::Code::Ok => Outcome::Ok,
        tonic::Code::Unauthenticated => Outcome::Unauthenticated,
        tonic::Code::PermissionDenied => Outcome::Denied,
        tonic::Code::ResourceExhausted => Outcome::RateLimited,
        tonic::Code::Cancelled => Outcome::Cancelled,
        _ => Outcome::Error,
    }
}

/// A response body that writes the audit record when it ends or is
/// dropped.
pub struct AuditedBody<B> {
    /// `None` once dropped: the body goes before the record is written.
    inner: Option<Pin<Box<B>>>,
    pending: Option<Pending>,
}

impl<B> std::fmt::Debug for AuditedBody<B> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AuditedBody")
            .field("pending", &self.pending.is_some())
            .finish_non_exhaustive()
    }
}

impl<B> Drop for AuditedBody<B> {
    fn drop(&mut self) {
        // The body first: dropping a `DoGet` stream charges what its
        // statement read, which the record must include.
        drop(self.inner.take());
        if let Some(p) = self.pending.take() {
            p.finish(false);
        }
    }
}

impl<B> Body for AuditedBody<B>
where
    B: Body<Data = Bytes>,
{
    type Data = Bytes;
    type Error = B::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, B::Error>>> {
        // The stream is produced while it is polled: in the call's span, so
        // what it logs names the request.
        let span = self.pending.as_ref().map(|p| p.span.clone());
        let _entered = span.as_ref().map(tracing::Span::enter);
        let Some(inner) = self.inner.as_mut() else {
            return Poll::Ready(None);
        };
        let polled = inner.as_mut().poll_frame(cx);
        match &polled {
            Poll::Ready(Some(Ok(frame))) => {
                if let Some(trailers) = frame.trailers_ref()
                    && let Some(p) = self.pending.as_mut()
                    && let Some(code) = trailers
                        .get("grpc-status")
                        .and_then(|v| v.to_str().ok())
                        .and_then(|s| s.parse::<i32>().ok())
                {
                    p.status = Some(code);
                }
            }
            Poll::Ready(Some(Err(_))) => {
                if let Some(p) = self.pending.as_mut() {
                    p.status.get_or_insert(tonic::Code::Internal as i32);
                }
            }
            Poll::Ready(None) => {
                if let Some(p) = self.pending.take() {
                    p.finish(true);
                }
            }
            Poll::Pending => {}
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.inner.as_ref().is_none_or(|b| b.is_end_stream())
    }

    fn size_hint(&self) -> SizeHint {
        self.inner
            .as_ref()
            .map_or_else(SizeHint::default, |b| b.size_hint())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn request_ids() {
        let sent = HeaderValue::from_static("abc-1.2_3");
        assert_eq!(client_request_id(Some(&sent)).unwrap(), "abc-1.2_3");
        let bad = HeaderValue::from_static("a b");
        assert_eq!(client_request_id(Some(&bad)), None);
        assert_eq!(client_request_id(None), None);
        assert_ne!(new_request_id(), new_request_id());
    }

    #[test]
    fn grpc_outcomes() {
        assert_eq!(outcome_of_grpc(0), Outcome::Ok);
        assert_eq!(outcome_of_grpc(16), Outcome::Unauthenticated);
        assert_eq!(outcome_of_grpc(7), Outcome::Denied);
        assert_eq!(outcome_of_grpc(8), Outcome::RateLimited);
        assert_eq!(outcome_of_grpc(3), Outcome::Error);
    }
}
