//! Prometheus metrics (`GET /metrics`, text format).
//!
//! One process-wide recorder (the `metrics` facade); the gateway's parts
//! record with the `metrics` macros. Labels never carry token ids, secrets
//! or statement text.
//!
//! | metric | labels | what |
//! |---|---|---|
//! | `sluice_http_requests_total` | `route` (the path with ids replaced by `{id}`), `method`, `status` | HTTP requests (admin API, search, exports, Trino protocol) |
//! | `sluice_http_request_duration_seconds` | `route`, `method` | their latency (histogram) |
//! | `sluice_requests_total` | `protocol` (`flight_sql`, `trino`, `http`, `export`), `outcome` (`ok`, `unauthenticated`, `denied`, `rate_limited`, `error`, `cancelled`) | every audited request (one per audit record) |
//! | `sluice_request_duration_seconds` | `protocol` | their latency, to the end of the answer (histogram) |
//! | `sluice_rows_out_total`, `sluice_bytes_out_total` | `protocol` | rows and bytes returned |
//! | `sluice_columns_blocked_total` | `protocol` | columns of the tables read that the token cannot see, summed per request |
//! | `sluice_values_masked_total` | `protocol` | masked values returned (rows × masked columns read) |
//! | `sluice_truncations_total` | `protocol` | results cut at `row_limit` |
//! | `sluice_rate_limited_total` | `limit` (`token`, `auth_failures`) | requests refused by a rate limit |
//! | `sluice_audit_dropped_total` | — | audit records dropped (queue full, or the store refused them) |
//! | `sluice_connector_errors_total` | `catalog`, `kind` (`unavailable`, `failed`) | failures below a secure view (connector scans) |
//! | `sluice_auth_failures_total` | `kind` | authentication failures on every protocol by internal reason (never shown to clients) |
//! | `sluice_export_jobs_total` | `state` | export jobs ended: `succeeded`, `failed`, `cancelled` |
//! | `sluice_export_rows_total`, `sluice_export_bytes_total` | — | rows and bytes written by succeeded export jobs |

use std::sync::OnceLock;

use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};

static HANDLE: OnceLock<Option<PrometheusHandle>> = OnceLock::new();

/// Bucket bounds (seconds) of every histogram: all of them are latencies.
const LATENCY_BUCKETS: &[f64] = &[
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0,
];

/// The process's Prometheus handle; installs the recorder on first use.
/// `None` if another recorder was installed first (then `/metrics` says so).
pub fn handle() -> Option<&'static PrometheusHandle> {
    HANDLE
        .get_or_init(|| {
            match PrometheusBuilder::new()
                .set_buckets(LATENCY_BUCKETS)
                .and_then(|b| b.install_recorder())
            {
                Ok(h) => Some(h),
                Err(e) => {
                    tracing::warn!(error = %e, "metrics recorder not installed");
                    None
                }
            }
        })
        .as_ref()
}

/// The current metrics in Prometheus text format.
pub fn render() -> Option<String> {
    handle().map(PrometheusHandle::render)
}
