//! Tests of the Trino frontend over in-memory catalogs (the real `trino`
//! clients run against the binary in `tests/clients`): the protocol
//! (`protocol`), and what one token can do to others (`multi_token`'s
//! gateway: `parameters`, `errors`, `admission`, `isolation`). This module
//! holds what they share: requests through the router and their answers.

mod admission;
mod errors;
mod hostile;
mod ingress_probes;
mod isolation;
mod multi_token;
mod parameters;
mod protocol;

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::http::{HeaderMap, Method, Request, StatusCode};
use serde_json::Value;
use sluice_planner::TokenScope;
use tower::ServiceExt as _;

use crate::TrinoConfig;

pub(super) fn scope(json: &str) -> Arc<TokenScope> {
    Arc::new(serde_json::from_str(json).unwrap())
}

pub(super) fn quick() -> TrinoConfig {
    TrinoConfig {
        max_wait: Duration::from_millis(200),
        ..TrinoConfig::default()
    }
}

pub(super) struct Answer {
    pub(super) status: StatusCode,
    pub(super) headers: HeaderMap,
    pub(super) body: Vec<u8>,
}

impl Answer {
    pub(super) fn json(&self) -> Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|_| panic!("not JSON: {}", String::from_utf8_lossy(&self.body)))
    }
}

pub(super) async fn call(
    app: &Router,
    method: Method,
    uri: &str,
    auth: Option<&str>,
    extra: &[(&str, &str)],
    body: &str,
) -> Answer {
    let mut req = Request::builder()
        .method(method)
        .uri(uri)
        .header("host", "gw.test:8080")
        .header("x-trino-user", "alice");
    if let Some(a) = auth {
        req = req.header("authorization", a);
    }
    for (k, v) in extra {
        req = req.header(*k, *v);
    }
    let resp = app
        .clone()
        .oneshot(req.body(Body::from(body.to_string())).unwrap())
        .await
        .unwrap();
    let status = resp.status();
    let headers = resp.headers().clone();
    let body = axum::body::to_bytes(resp.into_body(), usize::MAX)
        .await
        .unwrap()
        .to_vec();
    Answer {
        status,
        headers,
        body,
    }
}

/// POSTs `sql` without extra headers.
pub(super) async fn post(app: &Router, auth: &str, sql: &str) -> Answer {
    call(app, Method::POST, "/v1/statement", Some(auth), &[], sql).await
}

/// GETs `uri` (a `nextUri` path) without extra headers.
pub(super) async fn get(app: &Router, auth: &str, uri: &str) -> Answer {
    call(app, Method::GET, uri, Some(auth), &[], "").await
}

pub(super) fn path_of(uri: &str) -> &str {
    uri.strip_prefix("http://gw.test:8080")
        .expect("absolute URL from Host")
}

/// Runs `sql` to the end: (all rows, pages, final answer).
pub(super) async fn run(
    app: &Router,
    auth: &str,
    sql: &str,
    extra: &[(&str, &str)],
) -> (Vec<Value>, usize, Answer) {
    let mut answer = call(app, Method::POST, "/v1/statement", Some(auth), extra, sql).await;
    let mut rows = Vec::new();
    let mut pages = 0;
    loop {
        assert_eq!(
            answer.status,
            StatusCode::OK,
            "{}",
            String::from_utf8_lossy(&answer.body)
        );
        let doc = answer.json();
        if let Some(data) = doc["data"].as_array() {
            pages += 1;
            rows.extend(data.iter().cloned());
        }
        let Some(next) = doc["nextUri"].as_str() else {
            return (rows, pages, answer);
        };
        answer = call(app, Method::GET, path_of(next), Some(auth), extra, "").await;
    }
}

pub(super) async fn wait_for(what: &str, cond: impl Fn() -> bool) {
    for _ in 0..100 {
        if cond() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("timed out waiting for {what}");
}
