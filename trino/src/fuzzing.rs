//! Entry point for the coverage-guided fuzzer (`fuzz/`) and for the replay
//! of its corpus in the normal tests: a Trino request whose headers and
//! body the client controls, through the whole router, followed to its
//! end. Not an API.

use std::net::SocketAddr;
use std::sync::{Arc, OnceLock};

use axum::Router;
use axum::body::Body;
use axum::extract::connect_info::MockConnectInfo;
use axum::http::{HeaderName, HeaderValue, Method, Request};
use sluice_planner::fuzzing::{FuzzAuthenticator, SECRET, governor_and_token};
use tower::ServiceExt as _;

use crate::{TrinoConfig, TrinoState, router};

fn app() -> &'static (Router, tokio::runtime::Runtime) {
    static APP: OnceLock<(Router, tokio::runtime::Runtime)> = OnceLock::new();
    APP.get_or_init(|| {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .expect("a runtime");
        let router = runtime.block_on(async {
            let (governor, _) = governor_and_token();
            let config = TrinoConfig {
                max_wait: std::time::Duration::from_millis(50),
                ..TrinoConfig::default()
            };
            let state = TrinoState::new(
                Arc::new(governor),
                Arc::new(FuzzAuthenticator),
                &config,
                SocketAddr::from(([127, 0, 0, 1], 8080)),
            );
            router(state).layer(MockConnectInfo(SocketAddr::from(([127, 0, 0, 1], 5555))))
        });
        (router, runtime)
    })
}

/// `data` is `name: value` header lines, an empty line, then the body of
/// `POST /v1/statement`; the query's `nextUri`s are followed to its end.
pub fn request(data: &[u8]) {
    let (head, body) = match data.windows(2).position(|w| w == b"\n\n") {
        Some(at) => (&data[..at], &data[at + 2..]),
        None => (&[][..], data),
    };
    let mut builder = Request::builder()
        .method(Method::POST)
        .uri("/v1/statement")
        .header("host", "gw.test:8080")
        .header("authorization", format!("Bearer {SECRET}"));
    for line in head.split(|b| *b == b'\n') {
        let Some(colon) = line.iter().position(|b| *b == b':') else {
            continue;
        };
        if let (Ok(name), Ok(value)) = (
            HeaderName::from_bytes(&line[..colon]),
            HeaderValue::from_bytes(line[colon + 1..].trim_ascii()),
        ) {
            builder = builder.header(name, value);
        }
    }
    let Ok(first) = builder.body(Body::from(body.to_vec())) else {
        return;
    };
    let (app, runtime) = app();
    runtime.block_on(async {
        let mut request = first;
        for _ in 0..50 {
            let Ok(response) = app.clone().oneshot(request).await;
            let Ok(bytes) = axum::body::to_bytes(response.into_body(), 64 << 20).await else {
                return;
            };
            let Ok(doc) = serde_json::from_slice::<serde_json::Value>(&bytes) else {
                return;
            };
            let Some(next) = doc["nextUri"].as_str() else {
                return;
            };
            let Some(path) = next.strip_prefix("http://gw.test:8080") else {
                return;
            };
            let Ok(get) = Request::builder()
                .method(Method::GET)
                .uri(path)
                .header("host", "gw.test:8080")
                .header("authorization", format!("Bearer {SECRET}"))
                .body(Body::empty())
            else {
                return;
            };
            request = get;
        }
    });
}
