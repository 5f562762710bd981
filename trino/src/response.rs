//! The JSON documents of the protocol: a query's result page (`id`,
//! `infoUri`, `nextUri`, `stats`, `columns`, `data`, `error`, `warnings`)
//! and the small answers around it.

use std::time::Duration;

use axum::body::Bytes;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

use crate::error::TrinoError;
use crate::query::{Cached, State};
use crate::types::TrinoType;
use crate::{ROW_LIMIT_WARNING, TrinoState};

pub(crate) fn base_url(state: &TrinoState, headers: &HeaderMap) -> String {
    if let Some(u) = &state.external_url {
        return u.clone();
    }
    let host = headers
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .filter(|h| {
            !h.is_empty()
                && h.len() <= 255
                && h.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"-.:[]_".contains(&b))
        });
    match host {
        Some(h) => format!("http://{h}"),
        None => format!("http://{}", state.local_addr),
    }
}

pub(crate) fn columns_json(schema: &arrow::datatypes::Schema) -> Value {
    Value::Array(
        schema
            .fields()
            .iter()
            .map(|f| {
                let t = TrinoType::of(f.data_type());
                json!({"name": f.name(), "type": t.name(), "typeSignature": t.signature()})
            })
            .collect(),
    )
}

pub(crate) struct Page<'a> {
    pub(crate) id: &'a str,
    pub(crate) state: State,
    pub(crate) next: Option<String>,
    pub(crate) columns: Option<&'a Value>,
    pub(crate) data: Option<&'a [u8]>,
    pub(crate) error: Option<&'a TrinoError>,
    pub(crate) warnings: Vec<Value>,
    pub(crate) update_type: Option<&'a str>,
    pub(crate) rows: u64,
    pub(crate) elapsed: Duration,
    pub(crate) truncated: Option<bool>,
}

pub(crate) fn render(base: &str, p: Page<'_>) -> Bytes {
    let elapsed = p.elapsed.as_millis() as u64;
    let mut doc = json!({
        "id": p.id,
        "infoUri": format!("{base}/v1/query/{}", p.id),
        "stats": {
            "state": p.state.as_str(),
            "queued": p.state == State::Queued,
            "scheduled": p.state != State::Queued,
            "nodes": 1,
            "totalSplits": 0,
            "queuedSplits": 0,
            "runningSplits": 0,
            "completedSplits": 0,
            "cpuTimeMillis": 0,
            "wallTimeMillis": elapsed,
            "queuedTimeMillis": 0,
            "elapsedTimeMillis": elapsed,
            "processedRows": p.rows,
            "processedBytes": 0,
            "physicalInputBytes": 0,
            "peakMemoryBytes": 0,
            "spilledBytes": 0,
        },
        "warnings": p.warnings,
    });
    if let Some(t) = p.truncated {
        // The trino Python client keeps only the first response's
        // warnings, but every response's stats (`cursor.stats`).
        doc["stats"]["sluiceTruncated"] = Value::Bool(t);
    }
    if let Some(next) = p.next {
        doc["nextUri"] = Value::String(next);
    }
    if let Some(c) = p.columns {
        doc["columns"] = c.clone();
    }
    if let Some(e) = p.error {
        doc["error"] = e.to_json();
    }
    if let Some(u) = p.update_type {
        doc["updateType"] = Value::String(u.to_string());
    }
    let mut text = doc.to_string().into_bytes();
    if let Some(data) = p.data {
        // Rows are encoded once, straight into the page: splice them in.
        text.pop();
        text.reserve(data.len() + 11);
        text.extend_from_slice(b",\"data\":[");
        text.extend_from_slice(data);
        text.extend_from_slice(b"]}");
    }
    Bytes::from(text)
}

pub(crate) fn respond(cached: &Cached) -> Response {
    let mut resp = (
        StatusCode::OK,
        [(header::CONTENT_TYPE, "application/json")],
        cached.body.clone(),
    )
        .into_response();
    for (name, value) in &cached.headers {
        if let Ok(v) = HeaderValue::from_str(value) {
            resp.headers_mut().insert(*name, v);
        }
    }
    resp
}

/// A statement answered at once (session statements, errors).
pub(crate) fn immediate(
    base: &str,
    id: &str,
    error: Option<&TrinoError>,
    update_type: Option<&str>,
    headers: Vec<(&'static str, String)>,
) -> Response {
    let body = render(
        base,
        Page {
            id,
            state: if error.is_some() {
                State::Failed
            } else {
                State::Finished
            },
            next: None,
            columns: None,
            data: None,
            error,
            warnings: vec![],
            update_type,
            rows: 0,
            elapsed: Duration::ZERO,
            truncated: None,
        },
    );
    respond(&Cached {
        token: 0,
        body,
        headers,
    })
}

pub(crate) fn gone(message: &str) -> Response {
    (
        StatusCode::GONE,
        [(header::CONTENT_TYPE, "application/json")],
        json!({"error": message}).to_string(),
    )
        .into_response()
}

pub(crate) fn not_found() -> Response {
    (
        StatusCode::NOT_FOUND,
        [(header::CONTENT_TYPE, "application/json")],
        json!({"error": "query not found"}).to_string(),
    )
        .into_response()
}

pub(crate) fn row_limit_warning(rows: Option<u64>) -> Value {
    let message = match rows {
        Some(n) => format!("The result was truncated to {n} rows: the token's row_limit"),
        None => "The result was truncated to the token's row_limit".to_string(),
    };
    json!({
        "warningCode": {"code": 0x5300, "name": ROW_LIMIT_WARNING},
        "message": message,
    })
}
