//! The protocol as clients use it: authentication, paging and retries,
//! DELETE, abandoned queries, time limits and queueing, policy and
//! truncation, session statements, `/v1/info`.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use arrow::array::{Int64Array, RecordBatch, StringArray};
use arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use axum::Router;
use axum::extract::connect_info::MockConnectInfo;
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode};
use base64::Engine as _;
use datafusion::catalog::streaming::StreamingTable;
use datafusion::catalog::{MemTable, MemoryCatalogProvider, MemorySchemaProvider, SchemaProvider};
use datafusion::execution::TaskContext;
use datafusion::physical_plan::SendableRecordBatchStream;
use datafusion::physical_plan::stream::RecordBatchStreamAdapter;
use datafusion::physical_plan::streaming::PartitionStream;
use serde_json::Value;
use sluice_planner::auth::Schemes;
use sluice_planner::{AuthFailureKind, CatalogEntry, Governor};
use sluice_test_support::StaticAuthenticator;

use super::{call, get, path_of, post, quick, run, scope, wait_for};
use crate::query::Queries;
use crate::session::Session;
use crate::{ROW_LIMIT_WARNING, TRUNCATED_HEADER, TrinoConfig, TrinoState, router};

/// An endless table whose streams count how many were dropped.
#[derive(Debug)]
struct Endless {
    schema: SchemaRef,
    dropped: Arc<AtomicUsize>,
}

struct DropFlag(Arc<AtomicUsize>);

impl Drop for DropFlag {
    fn drop(&mut self) {
        self.0.fetch_add(1, Ordering::SeqCst);
    }
}

impl PartitionStream for Endless {
    fn schema(&self) -> &SchemaRef {
        &self.schema
    }

    fn execute(&self, _ctx: Arc<TaskContext>) -> SendableRecordBatchStream {
        let schema = Arc::clone(&self.schema);
        let flag = DropFlag(Arc::clone(&self.dropped));
        let batch = RecordBatch::try_new(
            Arc::clone(&schema),
            vec![Arc::new(Int64Array::from((0..1000).collect::<Vec<i64>>()))],
        )
        .unwrap();
        let stream = futures::stream::repeat_with(move || {
            let _keep = &flag;
            Ok(batch.clone())
        });
        Box::pin(RecordBatchStreamAdapter::new(schema, stream))
    }
}

struct Fixture {
    app: Router,
    dropped: Arc<AtomicUsize>,
    queries: Arc<Queries>,
}

fn fixture(config: TrinoConfig) -> Fixture {
    let schema = Arc::new(Schema::new(vec![
        Field::new("id", DataType::Int64, false),
        Field::new("region", DataType::Utf8, true),
        Field::new("email", DataType::Utf8, true),
    ]));
    let batch = RecordBatch::try_new(
        Arc::clone(&schema),
        vec![
            Arc::new(Int64Array::from(vec![1, 2, 3, 4, 5])),
            Arc::new(StringArray::from(vec!["eu", "us", "eu", "eu", "us"])),
            Arc::new(StringArray::from(vec!["a@x", "b@x", "c@x", "d@x", "e@x"])),
        ],
    )
    .unwrap();
    let sales = MemorySchemaProvider::new();
    sales
        .register_table(
            "orders".into(),
            Arc::new(MemTable::try_new(schema, vec![vec![batch]]).unwrap()),
        )
        .unwrap();
    let dropped = Arc::new(AtomicUsize::new(0));
    let endless_schema = Arc::new(Schema::new(vec![Field::new("n", DataType::Int64, false)]));
    let endless = StreamingTable::try_new(
        Arc::clone(&endless_schema),
        vec![Arc::new(Endless {
            schema: endless_schema,
            dropped: Arc::clone(&dropped),
        })],
    )
    .unwrap();
    sales
        .register_table("endless".into(), Arc::new(endless))
        .unwrap();
    let catalog = MemoryCatalogProvider::new();
    datafusion::catalog::CatalogProvider::register_schema(&catalog, "sales", Arc::new(sales))
        .unwrap();
    let mut governor = Governor::new().with_target_partitions(1);
    governor.add_catalog(
        "lake",
        CatalogEntry {
            provider: Arc::new(catalog),
            tables: Default::default(),
        },
    );
    let tokens = StaticAuthenticator::new(HashMap::from([
        (
            "admin-secret".to_string(),
            scope(
                r#"{"token_id":"t-admin","name":"admin","admin":true,"grants":[{"table":"lake.*"}]}"#,
            ),
        ),
        (
            "eu-secret".to_string(),
            scope(
                r#"{"token_id":"t-eu","name":"eu","row_limit":2,"attributes":{"region":"eu"},
                "grants":[{"table":"lake.sales.orders","columns":["id","region"],"allow_rules":["region = token.region"]},
                          {"table":"lake.sales.endless"}]}"#,
            ),
        ),
        (
            "other-secret".to_string(),
            scope(
                r#"{"token_id":"t-other","name":"other","grants":[{"table":"lake.sales.endless"}]}"#,
            ),
        ),
    ]));
    let state = TrinoState::new(
        Arc::new(governor),
        Arc::new(tokens),
        &config,
        SocketAddr::from(([127, 0, 0, 1], 8080)),
    );
    let queries = Arc::clone(&state.queries);
    let app = router(state).layer(MockConnectInfo(SocketAddr::from(([127, 0, 0, 1], 5555))));
    Fixture {
        app,
        dropped,
        queries,
    }
}

/// The final answer of `sql` (errors come with the first poll, not the POST).
async fn final_doc(app: &Router, auth: &str, sql: &str, extra: &[(&str, &str)]) -> Value {
    run(app, auth, sql, extra).await.2.json()
}

const BEARER_ADMIN: &str = "Bearer admin-secret";
const BEARER_EU: &str = "Bearer eu-secret";

#[tokio::test]
async fn authentication_failures_are_uniform() {
    let f = fixture(TrinoConfig {
        page_max_rows: 100,
        ..quick()
    });
    let basic_bad = format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode("alice:wrong")
    );
    let mut bodies = Vec::new();
    for auth in [
        None,
        Some("Bearer nope"),
        Some(basic_bad.as_str()),
        Some("Basic !!!"),
        Some("Token x"),
    ] {
        let a = call(&f.app, Method::POST, "/v1/statement", auth, &[], "SELECT 1").await;
        assert_eq!(a.status, StatusCode::UNAUTHORIZED);
        assert_eq!(a.headers["www-authenticate"], "Basic realm=\"Trino\"");
        bodies.push(a.body);
    }
    assert!(bodies.windows(2).all(|w| w[0] == w[1]));
    // Basic with the secret as password works, whatever the user name.
    let basic = format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode("anyone:admin-secret")
    );
    let (rows, _, _) = run(&f.app, &basic, "SELECT 1", &[]).await;
    assert_eq!(rows, vec![serde_json::json!([1])]);
    // Polls authenticate too.
    let first = post(&f.app, BEARER_ADMIN, "SELECT * FROM lake.sales.endless").await;
    let next = first.json()["nextUri"].as_str().unwrap().to_string();
    let a = call(&f.app, Method::GET, path_of(&next), None, &[], "").await;
    assert_eq!(a.status, StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn pages_are_bounded_and_retries_idempotent() {
    let f = fixture(TrinoConfig {
        page_max_rows: 2,
        ..quick()
    });
    let (rows, pages, last) = run(
        &f.app,
        BEARER_ADMIN,
        "SELECT id, email FROM lake.sales.orders ORDER BY id",
        &[],
    )
    .await;
    assert_eq!(rows.len(), 5);
    assert_eq!(pages, 3);
    assert_eq!(rows[0], serde_json::json!([1, "a@x"]));
    let doc = last.json();
    assert_eq!(doc["stats"]["state"], "FINISHED");
    assert_eq!(doc["columns"][1]["type"], "varchar");
    assert_eq!(
        doc["infoUri"].as_str().unwrap(),
        format!(
            "http://gw.test:8080/v1/query/{}",
            doc["id"].as_str().unwrap()
        )
    );

    // A page asked for twice is the same page; skipping ahead is refused.
    let first = post(
        &f.app,
        BEARER_ADMIN,
        "SELECT id FROM lake.sales.orders ORDER BY id",
    )
    .await;
    let next = first.json()["nextUri"].as_str().unwrap().to_string();
    let a = get(&f.app, BEARER_ADMIN, path_of(&next)).await;
    let b = get(&f.app, BEARER_ADMIN, path_of(&next)).await;
    assert_eq!(a.body, b.body);
    let skip = next.trim_end_matches(char::is_numeric).to_string() + "9";
    let c = get(&f.app, BEARER_ADMIN, path_of(&skip)).await;
    assert_eq!(c.status, StatusCode::GONE);
    // Another token cannot see, poll or cancel the query.
    let other = "Bearer other-secret";
    assert_eq!(
        get(&f.app, other, path_of(&next)).await.status,
        StatusCode::GONE
    );
    // DELETE is idempotent and uniform: 204, and another token's query
    // is left alone.
    assert_eq!(
        call(&f.app, Method::DELETE, path_of(&next), Some(other), &[], "")
            .await
            .status,
        StatusCode::NO_CONTENT
    );
    assert_eq!(get(&f.app, BEARER_ADMIN, path_of(&next)).await.body, b.body);
    let id = first.json()["id"].as_str().unwrap().to_string();
    assert_eq!(
        get(&f.app, other, &format!("/v1/query/{id}")).await.status,
        StatusCode::NOT_FOUND
    );
    assert_eq!(
        get(&f.app, BEARER_ADMIN, &format!("/v1/query/{id}"))
            .await
            .status,
        StatusCode::OK
    );
}

#[tokio::test]
async fn delete_stops_the_stream() {
    let f = fixture(TrinoConfig {
        page_max_rows: 100,
        ..quick()
    });
    let first = post(&f.app, BEARER_ADMIN, "SELECT n FROM lake.sales.endless").await;
    let next = first.json()["nextUri"].as_str().unwrap().to_string();
    let page = get(&f.app, BEARER_ADMIN, path_of(&next)).await;
    assert!(page.json()["data"].is_array() || page.json()["nextUri"].is_string());
    assert_eq!(f.dropped.load(Ordering::SeqCst), 0);
    let del = call(
        &f.app,
        Method::DELETE,
        path_of(&next),
        Some(BEARER_ADMIN),
        &[],
        "",
    )
    .await;
    assert_eq!(del.status, StatusCode::NO_CONTENT);
    wait_for("the stream to be dropped", || {
        f.dropped.load(Ordering::SeqCst) == 1
    })
    .await;
    assert!(f.queries.all().is_empty());
}

#[tokio::test]
async fn abandoned_queries_are_cancelled() {
    let f = fixture(TrinoConfig {
        client_timeout: Duration::from_millis(300),
        page_max_rows: 100,
        ..quick()
    });
    let first = post(&f.app, BEARER_ADMIN, "SELECT n FROM lake.sales.endless").await;
    assert_eq!(first.status, StatusCode::OK);
    wait_for("the abandoned query to be reaped", || {
        f.dropped.load(Ordering::SeqCst) == 1 && f.queries.all().is_empty()
    })
    .await;
}

#[tokio::test]
async fn time_limit_and_queueing() {
    let f = fixture(TrinoConfig {
        max_concurrent_queries: 1,
        page_max_rows: 100,
        ..quick()
    });
    let session = [("x-trino-session", "query_max_run_time=300ms")];
    let first = call(
        &f.app,
        Method::POST,
        "/v1/statement",
        Some(BEARER_ADMIN),
        &session,
        "SELECT n FROM lake.sales.endless",
    )
    .await;
    // The only slot is taken: the next query waits in QUEUED.
    let queued = post(&f.app, BEARER_ADMIN, "SELECT 1").await;
    assert_eq!(
        queued.json()["stats"]["state"],
        "QUEUED",
        "{}",
        queued.json()
    );
    tokio::time::sleep(Duration::from_millis(400)).await;
    // Polled until it ends (other tests share the execution threads).
    let mut failed = first.json();
    for _ in 0..50 {
        let Some(next) = failed["nextUri"].as_str().map(str::to_string) else {
            break;
        };
        failed = call(
            &f.app,
            Method::GET,
            path_of(&next),
            Some(BEARER_ADMIN),
            &session,
            "",
        )
        .await
        .json();
        if failed["stats"]["state"] == "FAILED" {
            break;
        }
    }
    assert_eq!(failed["stats"]["state"], "FAILED", "{failed}");
    assert_eq!(failed["error"]["errorName"], "EXCEEDED_TIME_LIMIT");
    assert_eq!(failed["error"]["errorType"], "INSUFFICIENT_RESOURCES");
    // The slot is free again: the queued query completes.
    let mut doc = queued.json();
    let mut rows = vec![];
    while let Some(next) = doc["nextUri"].as_str().map(str::to_string) {
        doc = get(&f.app, BEARER_ADMIN, path_of(&next)).await.json();
        if let Some(d) = doc["data"].as_array() {
            rows.extend(d.clone());
        }
    }
    assert_eq!(rows, vec![serde_json::json!([1])]);
    assert_eq!(f.dropped.load(Ordering::SeqCst), 1);
}

#[tokio::test]
async fn policy_and_truncation() {
    let f = fixture(quick());
    // eu: rows of region eu only (3), id and region only, row_limit 2.
    let (rows, _, last) = run(
        &f.app,
        BEARER_EU,
        "SELECT * FROM lake.sales.orders ORDER BY id",
        &[],
    )
    .await;
    assert_eq!(
        rows,
        vec![serde_json::json!([1, "eu"]), serde_json::json!([3, "eu"])]
    );
    assert_eq!(last.headers[TRUNCATED_HEADER], "true");
    let doc = last.json();
    assert_eq!(doc["warnings"][0]["warningCode"]["name"], ROW_LIMIT_WARNING);
    assert_eq!(doc["stats"]["sluiceTruncated"], true);
    // Hidden columns and tables do not exist.
    for (sql, name) in [
        ("SELECT email FROM lake.sales.orders", "COLUMN_NOT_FOUND"),
        ("SELECT * FROM lake.sales.nope", "TABLE_NOT_FOUND"),
        ("DESCRIBE lake.sales.nope", "TABLE_NOT_FOUND"),
        (
            "INSERT INTO lake.sales.orders VALUES (1, 'x', 'y')",
            "PERMISSION_DENIED",
        ),
        ("SELEC 1", "SYNTAX_ERROR"),
        ("SHOW SCHEMAS FROM other", "CATALOG_NOT_FOUND"),
        ("USE lake.hr", "SCHEMA_NOT_FOUND"),
        ("START TRANSACTION", "NOT_SUPPORTED"),
    ] {
        let doc = final_doc(&f.app, BEARER_EU, sql, &[]).await;
        assert_eq!(doc["stats"]["state"], "FAILED", "{sql}");
        assert_eq!(doc["error"]["errorName"], name, "{sql}: {doc}");
    }
    let (cols, _, _) = run(&f.app, BEARER_EU, "DESCRIBE lake.sales.orders", &[]).await;
    assert_eq!(
        cols,
        vec![
            serde_json::json!(["id", "bigint", "", ""]),
            serde_json::json!(["region", "varchar", "", ""])
        ]
    );
}

#[tokio::test]
async fn session_statements() {
    let f = fixture(quick());
    let a = post(&f.app, BEARER_EU, "USE lake.sales").await;
    assert_eq!(a.headers["x-trino-set-catalog"], "lake");
    assert_eq!(a.headers["x-trino-set-schema"], "sales");
    let catalog = [("x-trino-catalog", "lake"), ("x-trino-schema", "sales")];
    let (rows, _, _) = run(&f.app, BEARER_EU, "SELECT count(*) FROM orders", &catalog).await;
    assert_eq!(rows, vec![serde_json::json!([3])]);
    let a = post(&f.app, BEARER_EU, "SET SESSION query_max_run_time = '10m'").await;
    assert_eq!(a.headers["x-trino-set-session"], "query_max_run_time=10m");
    assert_eq!(
        final_doc(
            &f.app,
            BEARER_EU,
            "SET SESSION query_max_run_time = 'soon'",
            &[]
        )
        .await["error"]["errorName"],
        "INVALID_SESSION_PROPERTY"
    );
    let a = post(&f.app, BEARER_EU, "RESET SESSION query_max_run_time").await;
    assert_eq!(a.headers["x-trino-clear-session"], "query_max_run_time");
    let a = post(
        &f.app,
        BEARER_EU,
        "PREPARE q1 FROM SELECT id FROM lake.sales.orders WHERE id = ?",
    )
    .await;
    let added = a.headers["x-trino-added-prepare"]
        .to_str()
        .unwrap()
        .to_string();
    assert!(added.starts_with("q1=SELECT+id+FROM"), "{added}");
    let prepared = [("x-trino-prepared-statement", added.as_str())];
    let (rows, _, _) = run(&f.app, BEARER_EU, "EXECUTE q1 USING 3", &prepared).await;
    assert_eq!(rows, vec![serde_json::json!([3])]);
    // Parameters are literals, never expressions over data.
    assert_eq!(
        final_doc(&f.app, BEARER_EU, "EXECUTE q1 USING (SELECT 1)", &prepared).await["error"]["errorName"],
        "INVALID_PARAMETER_USAGE"
    );
    let a = call(
        &f.app,
        Method::POST,
        "/v1/statement",
        Some(BEARER_EU),
        &prepared,
        "DEALLOCATE PREPARE q1",
    )
    .await;
    assert_eq!(a.headers["x-trino-deallocated-prepare"], "q1");
    let (rows, _, _) = run(
        &f.app,
        BEARER_EU,
        "EXECUTE IMMEDIATE 'SELECT ?, ?, ?' USING 1, 'it''s', DOUBLE '1.5'",
        &[],
    )
    .await;
    assert_eq!(rows, vec![serde_json::json!([1, "it's", 1.5])]);
    assert_eq!(
        final_doc(
            &f.app,
            BEARER_EU,
            "EXECUTE IMMEDIATE 'SELECT ?' USING 1, 2",
            &[]
        )
        .await["error"]["errorName"],
        "INVALID_PARAMETER_USAGE"
    );
}

#[tokio::test]
async fn info_endpoint() {
    let f = fixture(quick());
    let a = call(&f.app, Method::GET, "/v1/info", None, &[], "").await;
    assert_eq!(a.status, StatusCode::OK);
    let doc = a.json();
    assert_eq!(doc["coordinator"], true);
    assert_eq!(doc["starting"], false);
    assert!(
        doc["nodeVersion"]["version"]
            .as_str()
            .unwrap()
            .starts_with("sluice-")
    );
}

#[test]
fn secrets_and_session_come_from_headers() {
    let secret = |value: Option<&str>| {
        sluice_planner::auth::secret_from_authorization(value, Schemes::BearerOrBasic)
            .map(|s| s.expose().to_string())
    };
    assert_eq!(secret(None), Err(AuthFailureKind::Malformed));
    assert_eq!(secret(Some("Basic dTpzM2NyZXQ")).as_deref(), Ok("s3cret"));
    assert_eq!(secret(Some("bearer  abc ")).as_deref(), Ok("abc"));
    let mut h = HeaderMap::new();
    h.insert(
        "x-trino-session",
        HeaderValue::from_static("a=1, b=x%2Cy+z"),
    );
    h.insert(
        "x-trino-prepared-statement",
        HeaderValue::from_static("Q1=SELECT+%3F"),
    );
    let s = Session::from_headers(&h);
    assert_eq!(s.properties["b"], "x,y z");
    assert_eq!(s.prepared["q1"], "SELECT ?");
}
