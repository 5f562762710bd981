//! Distributed tracing: W3C trace context in and out, optional OTLP export.
//!
//! Every request's span (`flight` for Flight SQL calls, `http` for the HTTP
//! API and the Trino protocol; not the probes `/health`, `/ready`,
//! `/metrics`) continues the trace of the client's `traceparent` header
//! (gRPC metadata on Flight), and each answer carries a `traceparent`
//! naming sluice's span, so a client can find it. Only spans are exported,
//! never log events (their text may hold values), and only sluice's own
//! request spans, whatever the log filter says. Milvus calls carry the trace id as Milvus' `client_request_id`.
//! With `[tracing] otlp_endpoint` set, spans are exported with OTLP over
//! HTTP (protobuf) in batches from a background thread; without it, trace
//! context is still propagated but nothing is exported.

use std::fmt;
use std::sync::OnceLock;
use std::time::Duration;

use http::{HeaderMap, HeaderName, HeaderValue};
use opentelemetry::propagation::{Extractor, Injector};
use opentelemetry::trace::{TraceContextExt as _, TracerProvider as _};
use opentelemetry_sdk::propagation::TraceContextPropagator;
use opentelemetry_sdk::trace::SdkTracerProvider;
use serde::Deserialize;
use sluice_connectors::location::redact_url;
use tracing_opentelemetry::OpenTelemetrySpanExt as _;
use tracing_subscriber::registry::LookupSpan;

static PROVIDER: OnceLock<SdkTracerProvider> = OnceLock::new();

/// `[tracing]`: W3C trace context is always continued and returned; spans
/// are exported only when `otlp_endpoint` is set.
#[derive(Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct TracingConfig {
    /// Continue and return trace context (turn off only to measure its
    /// cost).
    pub enabled: bool,
    /// OTLP/HTTP traces URL of a collector
    /// (`http://127.0.0.1:4318/v1/traces`); none: nothing is exported.
    pub otlp_endpoint: Option<String>,
    /// `service.name` of the exported spans.
    pub service_name: String,
}

impl fmt::Debug for TracingConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TracingConfig")
            .field("enabled", &self.enabled)
            .field(
                "otlp_endpoint",
                &self.otlp_endpoint.as_deref().map(redact_url),
            )
            .field("service_name", &self.service_name)
            .finish()
    }
}

impl Default for TracingConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            otlp_endpoint: None,
            service_name: "sluice".into(),
        }
    }
}

/// The `tracing` layer that turns spans into OpenTelemetry spans (and
/// exports them when an endpoint is configured); installs the W3C trace
/// context propagator. Errors name what is wrong with the endpoint.
pub fn layer<S>(config: &TracingConfig) -> Result<impl tracing_subscriber::Layer<S>, String>
where
    S: tracing::Subscriber + for<'a> LookupSpan<'a>,
{
    use opentelemetry_otlp::{Protocol, WithExportConfig as _};
    let resource = opentelemetry_sdk::Resource::builder()
        .with_service_name(config.service_name.clone())
        .build();
    let mut builder = SdkTracerProvider::builder().with_resource(resource);
    if let Some(endpoint) = &config.otlp_endpoint {
        let exporter = opentelemetry_otlp::SpanExporter::builder()
            .with_http()
            .with_protocol(Protocol::HttpBinary)
            .with_endpoint(endpoint.clone())
            .with_timeout(Duration::from_secs(10))
            .build()
            .map_err(|e| format!("tracing.otlp_endpoint: {e}"))?;
        builder = builder.with_batch_exporter(exporter);
    }
    let provider = builder.build();
    let tracer = provider.tracer("sluice");
    let _ = PROVIDER.set(provider);
    opentelemetry::global::set_text_map_propagator(TraceContextPropagator::new());
    // Spans of sluice's own crates at INFO and above, never events: event
    // text (errors) may quote values from statements or rows.
    use tracing_subscriber::Layer as _;
    use tracing_subscriber::filter::{FilterExt as _, LevelFilter, Targets, filter_fn};
    let targets = Targets::new()
        .with_target("sluice", tracing::Level::INFO)
        .with_target("sluice_flight", tracing::Level::INFO)
        .with_target("sluice_planner", tracing::Level::INFO)
        .with_target("sluice_connectors", tracing::Level::INFO);
    // No busy/idle time (a clock read on every enter and exit of a span,
    // i.e. every poll of a request's future) and no thread attributes.
    Ok(tracing_opentelemetry::layer()
        .with_tracer(tracer)
        .with_tracked_inactivity(false)
        .with_threads(false)
        // The level hint matters: without one the subscriber's maximum
        // level is TRACE, and every `log::debug!` of DataFusion and the
        // connectors is turned into a tracing event only to be dropped.
        .with_filter(
            targets.and(filter_fn(|meta| meta.is_span()).with_max_level_hint(LevelFilter::INFO)),
        ))
}

/// Exports what is still buffered (at shutdown). Blocks: call it off the
/// async runtime's worker threads.
pub fn shutdown() {
    if let Some(p) = PROVIDER.get()
        && let Err(e) = p.shutdown()
    {
        tracing::warn!(error = %e, "flushing trace spans failed");
    }
}

/// Reads only `traceparent` (at most 55 characters in version 00, 256
/// allowed for future versions). `tracestate` is not continued: it is
/// unbounded client input that sluice would echo and store in every span.
struct HeaderExtractor<'a>(&'a HeaderMap);

const TRACEPARENT: &str = "traceparent";

impl Extractor for HeaderExtractor<'_> {
    fn get(&self, key: &str) -> Option<&str> {
        if key != TRACEPARENT {
            return None;
        }
        self.0
            .get(key)
            .and_then(|v| v.to_str().ok())
            .filter(|v| v.len() <= 256)
    }

    fn keys(&self) -> Vec<&str> {
        vec![TRACEPARENT]
    }
}

struct HeaderInjector<'a>(&'a mut HeaderMap);

impl Injector for HeaderInjector<'_> {
    fn set(&mut self, key: &str, value: String) {
        if value.is_empty() {
            return;
        }
        if let (Ok(name), Ok(value)) = (
            HeaderName::from_bytes(key.as_bytes()),
            HeaderValue::from_str(&value),
        ) {
            self.0.insert(name, value);
        }
    }
}

/// Makes `span` continue the trace of the request's `traceparent`, if any
/// (a malformed one is ignored: a new trace starts).
pub fn continue_trace(span: &tracing::Span, headers: &HeaderMap) {
    let parent =
        opentelemetry::global::get_text_map_propagator(|p| p.extract(&HeaderExtractor(headers)));
    if parent.span().span_context().is_valid() {
        let _ = span.set_parent(parent);
    }
}

/// Writes `span`'s trace context (`traceparent`) into response `headers`.
pub fn answer_with(span: &tracing::Span, headers: &mut HeaderMap) {
    let cx = span.context();
    opentelemetry::global::get_text_map_propagator(|p| {
        p.inject_context(&cx, &mut HeaderInjector(headers));
    });
}

/// The trace id of `span` (32 lowercase hex digits), if it has one.
pub fn trace_id(span: &tracing::Span) -> Option<String> {
    let cx = span.context();
    let sc = cx.span().span_context().clone();
    sc.is_valid().then(|| sc.trace_id().to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn headers_round_trip() {
        opentelemetry::global::set_text_map_propagator(TraceContextPropagator::new());
        let mut headers = HeaderMap::new();
        headers.insert(
            "traceparent",
            HeaderValue::from_static("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"),
        );
        let cx = opentelemetry::global::get_text_map_propagator(|p| {
            p.extract(&HeaderExtractor(&headers))
        });
        assert_eq!(
            cx.span().span_context().trace_id().to_string(),
            "4bf92f3577b34da6a3ce929d0e0e4736"
        );
        let mut out = HeaderMap::new();
        opentelemetry::global::get_text_map_propagator(|p| {
            p.inject_context(&cx, &mut HeaderInjector(&mut out));
        });
        assert_eq!(out["traceparent"], headers["traceparent"]);
        // Garbage is no parent.
        let mut bad = HeaderMap::new();
        bad.insert("traceparent", HeaderValue::from_static("00-zz-yy-01"));
        let cx =
            opentelemetry::global::get_text_map_propagator(|p| p.extract(&HeaderExtractor(&bad)));
        assert!(!cx.span().span_context().is_valid());
    }
}
