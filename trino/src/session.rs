//! The session of a Trino request, as the client's `X-Trino-*` headers
//! state it (Trino keeps no server-side session: the client sends it back
//! on every request).

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::Duration;

use axum::http::HeaderMap;
use sluice_planner::SessionOptions;
use sluice_planner::units::parse_duration;

use crate::MAX_RUN_TIME_PROPERTY;
use crate::dialect::TrinoDialect;
use crate::error::{INVALID_SESSION_PROPERTY, TrinoError};

/// What the client's `X-Trino-*` headers say.
#[derive(Debug, Default)]
pub(crate) struct Session {
    pub(crate) user: Option<String>,
    pub(crate) source: Option<String>,
    pub(crate) catalog: Option<String>,
    pub(crate) schema: Option<String>,
    pub(crate) properties: BTreeMap<String, String>,
    pub(crate) prepared: HashMap<String, String>,
}

fn header_text(headers: &HeaderMap, name: &str) -> Option<String> {
    headers
        .get(name)
        .and_then(|v| v.to_str().ok())
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(str::to_string)
}

/// `a=1,b=x%2Cy` → pairs, form-decoded.
fn header_pairs(headers: &HeaderMap, name: &str) -> Vec<(String, String)> {
    let mut out = Vec::new();
    for value in headers.get_all(name) {
        let Ok(text) = value.to_str() else { continue };
        for item in text.split(',').map(str::trim).filter(|s| !s.is_empty()) {
            if let Some((k, v)) = url::form_urlencoded::parse(item.as_bytes()).next() {
                out.push((k.trim().to_string(), v.into_owned()));
            }
        }
    }
    out
}

/// A value as the session headers carry it (form-encoded).
pub(crate) fn encode_value(v: &str) -> String {
    url::form_urlencoded::byte_serialize(v.as_bytes()).collect()
}

impl Session {
    pub(crate) fn from_headers(headers: &HeaderMap) -> Self {
        // Unquoted identifiers are case-insensitive (lower-cased), as in queries.
        let ident = |s: String| s.to_ascii_lowercase();
        Session {
            user: header_text(headers, "x-trino-user"),
            source: header_text(headers, "x-trino-source"),
            catalog: header_text(headers, "x-trino-catalog").map(ident),
            schema: header_text(headers, "x-trino-schema").map(ident),
            properties: header_pairs(headers, "x-trino-session")
                .into_iter()
                .collect(),
            prepared: header_pairs(headers, "x-trino-prepared-statement")
                .into_iter()
                .map(|(k, v)| (k.to_ascii_lowercase(), v))
                .collect(),
        }
    }

    /// The planner session of this Trino session.
    pub(crate) fn options(&self) -> SessionOptions {
        SessionOptions {
            dialect: Arc::new(TrinoDialect),
            catalog: self.catalog.clone(),
            schema: self.schema.clone(),
        }
    }

    /// The run-time limit: the gateway's, lowered by `query_max_run_time`.
    pub(crate) fn run_time(&self, limit: Duration) -> Result<Duration, TrinoError> {
        match self.properties.get(MAX_RUN_TIME_PROPERTY) {
            None => Ok(limit),
            Some(v) => parse_duration(v).map(|d| d.min(limit)).map_err(|e| {
                TrinoError::new(
                    INVALID_SESSION_PROPERTY,
                    format!("{MAX_RUN_TIME_PROPERTY}: {e}"),
                )
            }),
        }
    }
}
