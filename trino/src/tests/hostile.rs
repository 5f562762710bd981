//! The catalogue of hostile statements (`sluice_test_support::hostile`)
//! over the Trino protocol: each fails with its Trino error (or runs), and
//! an ordinary statement runs right after; plus malformed requests only
//! Trino has (bodies, headers).

use std::net::SocketAddr;
use std::sync::Arc;

use axum::Router;
use axum::extract::connect_info::MockConnectInfo;
use axum::http::{Method, StatusCode};
use sluice_planner::Authenticator;
use sluice_planner::limits::LimitsConfig;
use sluice_test_support::hostile::{self, Expect, READER};

use super::{call, quick, run};

use crate::{TrinoState, router};

fn app() -> Router {
    let governor = hostile::governor(LimitsConfig::default());
    let state = TrinoState::new(
        Arc::new(governor),
        Arc::new(hostile::authenticator()) as Arc<dyn Authenticator>,
        &quick(),
        SocketAddr::from(([127, 0, 0, 1], 8080)),
    );
    router(state).layer(MockConnectInfo(SocketAddr::from(([127, 0, 0, 1], 5555))))
}

fn bearer() -> String {
    format!("Bearer {READER}")
}

async fn still_serving(app: &Router) {
    let (rows, _, answer) = run(
        app,
        &bearer(),
        "SELECT id FROM lake.db.numbers WHERE id < 10",
        &[],
    )
    .await;
    assert_eq!(answer.json()["stats"]["state"], "FINISHED");
    assert_eq!(rows.len(), 10);
}

/// Follows a query's `nextUri`s to its final document.
async fn finish(app: &Router, mut answer: super::Answer) -> serde_json::Value {
    loop {
        assert_eq!(answer.status, StatusCode::OK);
        let doc = answer.json();
        let Some(next) = doc["nextUri"].as_str() else {
            return doc;
        };
        answer = super::get(app, &bearer(), super::path_of(next)).await;
    }
}

fn error_name(kind: &str) -> &'static str {
    match kind {
        "too_complex" => "QUERY_TEXT_TOO_LARGE",
        "function_limit" => "EXCEEDED_FUNCTION_MEMORY_LIMIT",
        "memory_limit" => "EXCEEDED_LOCAL_MEMORY_LIMIT",
        "internal" => "GENERIC_INTERNAL_ERROR",
        "not_found" => "COLUMN_NOT_FOUND",
        other => panic!("no Trino error for {other}"),
    }
}

#[tokio::test]
async fn every_hostile_statement_gets_its_trino_error_and_the_server_lives() {
    let app = app();
    for case in hostile::statements() {
        let first = call(
            &app,
            Method::POST,
            "/v1/statement",
            Some(&bearer()),
            &[],
            &case.sql,
        )
        .await;
        if first.status == StatusCode::PAYLOAD_TOO_LARGE {
            // Longer than the server reads: refused before parsing.
            assert_eq!(case.expect, Expect::Refused("too_complex"), "{}", case.name);
            still_serving(&app).await;
            continue;
        }
        let doc = finish(&app, first).await;
        match &case.expect {
            Expect::Refused(kind) => {
                let message: String = doc["error"]["message"]
                    .as_str()
                    .unwrap_or_default()
                    .chars()
                    .take(300)
                    .collect();
                assert_eq!(doc["stats"]["state"], "FAILED", "{}", case.name);
                assert_eq!(
                    doc["error"]["errorName"],
                    error_name(kind),
                    "{}: {message}",
                    case.name
                );
                assert!(
                    doc["error"]["message"].as_str().unwrap_or_default().len() < 1000,
                    "{}: the answer echoes the statement",
                    case.name
                );
            }
            Expect::Runs => assert_eq!(doc["stats"]["state"], "FINISHED", "{}", case.name),
        }
        still_serving(&app).await;
    }
}

/// What a malformed request is, its headers and its body.
type Malformed = (&'static str, Vec<(&'static str, String)>, String);

#[tokio::test]
async fn malformed_requests_get_client_errors_and_the_server_lives() {
    let app = app();
    let auth = bearer();
    let invalid_utf8 = String::from_utf8_lossy(&[0x53, 0x45, 0xff, 0xfe]).to_string();
    let cases: Vec<Malformed> = vec![
        ("an empty statement", vec![], String::new()),
        (
            "a statement of replacement characters",
            vec![],
            invalid_utf8,
        ),
        (
            "a run time that is not a duration",
            vec![("x-trino-session", "query_max_run_time=soon".into())],
            "SELECT 1".into(),
        ),
        (
            "a prepared statement header that is not URL-encoded",
            vec![("x-trino-prepared-statement", "q1=%zz".into())],
            "EXECUTE q1".into(),
        ),
        (
            "an 8KiB catalog name",
            vec![("x-trino-catalog", "c".repeat(8 << 10))],
            "SELECT * FROM numbers".into(),
        ),
    ];
    for (what, headers, body) in cases {
        let extra: Vec<(&str, &str)> = headers.iter().map(|(k, v)| (*k, v.as_str())).collect();
        let answer = call(
            &app,
            Method::POST,
            "/v1/statement",
            Some(&auth),
            &extra,
            &body,
        )
        .await;
        let (status, text) = if answer.status == StatusCode::OK {
            (StatusCode::OK, finish(&app, answer).await.to_string())
        } else {
            let text = String::from_utf8_lossy(&answer.body).to_string();
            (answer.status, text)
        };
        let failed = status.is_client_error()
            || (status == StatusCode::OK && text.contains("\"state\":\"FAILED\""));
        assert!(failed, "{what}: {status} {}", &text[..text.len().min(300)]);
        assert!(text.len() < 4000, "{what}: the answer echoes the request");
        still_serving(&app).await;
    }
    // A body far beyond the statement length bound is not even read.
    let huge = format!("SELECT '{}'", "x".repeat(8 << 20));
    let answer = call(&app, Method::POST, "/v1/statement", Some(&auth), &[], &huge).await;
    assert_eq!(answer.status, StatusCode::PAYLOAD_TOO_LARGE);
    still_serving(&app).await;
}

/// `EXECUTE … USING` parameters are client text too: parsed metered and
/// bounded, on a deep stack, so nesting that makes the parser backtrack
/// is refused at once.
#[tokio::test]
async fn execute_using_parameters_are_parsed_within_the_parse_budget() {
    let app = app();
    let params = format!("{}1 AS{}", "CAST(".repeat(40), " AS BIGINT)".repeat(40));
    let sql = format!("EXECUTE IMMEDIATE 'SELECT ?' USING {params}");
    let t0 = std::time::Instant::now();
    let answer = call(
        &app,
        Method::POST,
        "/v1/statement",
        Some(&bearer()),
        &[],
        &sql,
    )
    .await;
    let text = if answer.status == StatusCode::OK {
        finish(&app, answer).await.to_string()
    } else {
        String::from_utf8_lossy(&answer.body).to_string()
    };
    assert!(
        t0.elapsed() < std::time::Duration::from_secs(5),
        "{:?}",
        t0.elapsed()
    );
    assert!(
        text.contains("QUERY_TEXT_TOO_LARGE"),
        "{}",
        &text[..text.len().min(400)]
    );
    still_serving(&app).await;
}
