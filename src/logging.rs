//! Logging setup: `tracing` to stderr, text or JSON lines.
//!
//! The filter comes from `RUST_LOG`, else `[log] filter`, else `info`.
//! Nothing in sluice logs a secret: token secrets, store passwords and S3
//! keys are redacted types or never passed to `tracing`.

use std::io::IsTerminal as _;

use tracing_subscriber::EnvFilter;
use tracing_subscriber::layer::SubscriberExt as _;
use tracing_subscriber::util::SubscriberInitExt as _;

use serde::{Deserialize, Serialize};

use crate::telemetry::TracingConfig;

/// Log line format.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, Serialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    /// Human-readable lines.
    #[default]
    Text,
    /// One JSON object per line.
    Json,
}

/// `[log]`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct LogConfig {
    /// `text` or `json`.
    pub format: LogFormat,
    /// A `tracing` filter (`info`, `sluice=debug,info`). `RUST_LOG` wins.
    pub filter: Option<String>,
}

/// Installs the global subscriber (a second call is a no-op). With
/// `tracing`, spans also become OpenTelemetry spans (see
/// [`crate::telemetry`]); an unusable OTLP endpoint is reported and
/// tracing export left off.
pub fn init(format: LogFormat, filter: Option<&str>, tracing: Option<&TracingConfig>) {
    let filter = EnvFilter::try_from_default_env()
        .or_else(|_| EnvFilter::try_new(filter.unwrap_or("info")))
        .unwrap_or_else(|_| EnvFilter::new("info"));
    let mut problem = None;
    let otel = tracing
        .filter(|t| t.enabled)
        .and_then(|t| match crate::telemetry::layer(t) {
            Ok(layer) => Some(layer),
            Err(e) => {
                problem = Some(e);
                None
            }
        });
    use tracing_subscriber::Layer as _;
    let fmt = tracing_subscriber::fmt::layer()
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal());
    // The log filter applies to the log only: request spans exist (and
    // carry trace context) whatever the log level.
    let registry = tracing_subscriber::registry().with(otel);
    let _ = match format {
        LogFormat::Text => registry.with(fmt.with_filter(filter)).try_init(),
        LogFormat::Json => registry
            .with(
                fmt.json()
                    .flatten_event(true)
                    .with_current_span(true)
                    .with_span_list(false)
                    .with_filter(filter),
            )
            .try_init(),
    };
    if let Some(e) = problem {
        ::tracing::error!(error = %e, "trace export is off");
    }
}
