//! Security review probes of the Trino frontend (review of b211b75 and
//! 50361b7). Every test asserts the SECURE behaviour.
//!
//! - Tests named `finding_*` FAIL while the problem they probe exists.
//! - Tests named `held_*` are attacks that were tried and held; they pass.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use arrow::array::{Int64Array, RecordBatch, StringArray};
use arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use async_trait::async_trait;
use axum::extract::connect_info::MockConnectInfo;
use axum::http::{Method, StatusCode};
use datafusion::catalog::streaming::StreamingTable;
use datafusion::catalog::{MemTable, MemoryCatalogProvider, MemorySchemaProvider, SchemaProvider};
use datafusion::error::DataFusionError;
use datafusion::execution::TaskContext;
use datafusion::physical_plan::SendableRecordBatchStream;
use datafusion::physical_plan::stream::RecordBatchStreamAdapter;
use datafusion::physical_plan::streaming::PartitionStream;
use serde_json::Value;
use sluice_planner::{
    AuthFailure, AuthFailureKind, Authenticator, CatalogEntry, Governor, TokenScope,
};

use super::*;

/// Secrets → scopes; `revoke` removes one (revocation mid-query).
#[derive(Debug, Default)]
struct Tokens(Mutex<HashMap<String, Arc<TokenScope>>>);

impl Tokens {
    fn revoke(&self, secret: &str) {
        self.0.lock().unwrap().remove(secret);
    }
}

#[async_trait]
impl Authenticator for Tokens {
    async fn authenticate(
        &self,
        secret: &str,
        _client: Option<std::net::IpAddr>,
    ) -> Result<Arc<TokenScope>, AuthFailure> {
        self.0
            .lock()
            .unwrap()
            .get(secret)
            .cloned()
            .ok_or(AuthFailure::new(AuthFailureKind::Unknown))
    }
}

/// An endless single-column table.
#[derive(Debug)]
struct Endless {
    schema: SchemaRef,
    started: Arc<AtomicUsize>,
}

impl PartitionStream for Endless {
    fn schema(&self) -> &SchemaRef {
        &self.schema
    }

    fn execute(&self, _ctx: Arc<TaskContext>) -> SendableRecordBatchStream {
        self.started.fetch_add(1, Ordering::SeqCst);
        let schema = Arc::clone(&self.schema);
        let batch = RecordBatch::try_new(
            Arc::clone(&schema),
            vec![Arc::new(Int64Array::from((0..1000).collect::<Vec<i64>>()))],
        )
        .unwrap();
        let stream = futures::stream::repeat_with(move || Ok(batch.clone()));
        Box::pin(RecordBatchStreamAdapter::new(schema, stream))
    }
}

/// A table whose scan fails like a connector does (the message names a
/// warehouse path, as object-store errors do).
#[derive(Debug)]
struct Broken {
    schema: SchemaRef,
}

impl PartitionStream for Broken {
    fn schema(&self) -> &SchemaRef {
        &self.schema
    }

    fn execute(&self, _ctx: Arc<TaskContext>) -> SendableRecordBatchStream {
        let schema = Arc::clone(&self.schema);
        let stream = futures::stream::once(async {
            Err(DataFusionError::External(
                "Object at location s3://corp-warehouse/hr/salaries/data/ceo=jane-doe/00000.parquet not found: credentials AKIAEXAMPLE"
                    .into(),
            ))
        });
        Box::pin(RecordBatchStreamAdapter::new(schema, stream))
    }
}

struct Fixture {
    app: Router,
    tokens: Arc<Tokens>,
    started: Arc<AtomicUsize>,
    queries: Arc<Queries>,
}

fn mem(schema: Arc<Schema>, cols: Vec<arrow::array::ArrayRef>) -> Arc<MemTable> {
    let batch = RecordBatch::try_new(Arc::clone(&schema), cols).unwrap();
    Arc::new(MemTable::try_new(schema, vec![vec![batch]]).unwrap())
}

fn fixture(config: TrinoConfig) -> Fixture {
    let sales = MemorySchemaProvider::new();
    sales
        .register_table(
            "orders".into(),
            mem(
                Arc::new(Schema::new(vec![
                    Field::new("id", DataType::Int64, false),
                    Field::new("region", DataType::Utf8, true),
                    Field::new("email", DataType::Utf8, true),
                ])),
                vec![
                    Arc::new(Int64Array::from(vec![1, 2, 3, 4, 5])),
                    Arc::new(StringArray::from(vec!["eu", "us", "eu", "eu", "us"])),
                    Arc::new(StringArray::from(vec![
                        "a@x",
                        "b@x",
                        "c@x",
                        "d@x",
                        "us-secret@x",
                    ])),
                ],
            ),
        )
        .unwrap();
    sales
        .register_table(
            "accounts".into(),
            mem(
                Arc::new(Schema::new(vec![
                    Field::new("id", DataType::Int64, false),
                    Field::new("tenant", DataType::Utf8, true),
                ])),
                vec![
                    Arc::new(Int64Array::from(vec![1, 2, 3])),
                    Arc::new(StringArray::from(vec!["1", "2", "top-secret-tenant"])),
                ],
            ),
        )
        .unwrap();
    let started = Arc::new(AtomicUsize::new(0));
    let n_schema = Arc::new(Schema::new(vec![Field::new("n", DataType::Int64, false)]));
    sales
        .register_table(
            "endless".into(),
            Arc::new(
                StreamingTable::try_new(
                    Arc::clone(&n_schema),
                    vec![Arc::new(Endless {
                        schema: Arc::clone(&n_schema),
                        started: Arc::clone(&started),
                    })],
                )
                .unwrap(),
            ),
        )
        .unwrap();
    sales
        .register_table(
            "broken".into(),
            Arc::new(
                StreamingTable::try_new(
                    Arc::clone(&n_schema),
                    vec![Arc::new(Broken {
                        schema: Arc::clone(&n_schema),
                    })],
                )
                .unwrap(),
            ),
        )
        .unwrap();
    let hr = MemorySchemaProvider::new();
    hr.register_table(
        "salaries".into(),
        mem(
            Arc::new(Schema::new(vec![
                Field::new("employee", DataType::Utf8, false),
                Field::new("salary", DataType::Int64, false),
            ])),
            vec![
                Arc::new(StringArray::from(vec!["jane"])),
                Arc::new(Int64Array::from(vec![999_999])),
            ],
        ),
    )
    .unwrap();
    let catalog = MemoryCatalogProvider::new();
    datafusion::catalog::CatalogProvider::register_schema(&catalog, "sales", Arc::new(sales))
        .unwrap();
    datafusion::catalog::CatalogProvider::register_schema(&catalog, "hr", Arc::new(hr)).unwrap();
    let mut governor = Governor::new()
        .with_target_partitions(1)
        .with_mask_key(b"review-mask-key-0123456789");
    governor.add_catalog(
        "lake",
        CatalogEntry {
            provider: Arc::new(catalog),
            tables: Default::default(),
        },
    );
    let tokens = Arc::new(Tokens::default());
    {
        let mut t = tokens.0.lock().unwrap();
        t.insert(
            "admin-secret".into(),
            scope(
                r#"{"token_id":"t-admin","name":"admin","admin":true,"grants":[{"table":"lake.*"}]}"#,
            ),
        );
        t.insert(
            "eu-secret".into(),
            scope(
                r#"{"token_id":"t-eu","name":"eu","attributes":{"region":"eu"},
                "grants":[{"table":"lake.sales.orders","columns":["id","region","email"],
                           "masks":{"email":"hash"},"allow_rules":["region = token.region"]},
                          {"table":"lake.sales.endless"}]}"#,
            ),
        );
        // A realistic rule that can fail on rows the token must not see
        // (tenant ids are text; the token's tenant is 1).
        t.insert(
            "tenant-secret".into(),
            scope(
                r#"{"token_id":"t-tenant","name":"tenant",
                "grants":[{"table":"lake.sales.accounts","allow_rules":["CAST(tenant AS BIGINT) = 1"]},
                          {"table":"lake.sales.broken"}]}"#,
            ),
        );
        t.insert(
            "other-secret".into(),
            scope(
                r#"{"token_id":"t-other","name":"other","row_limit":1000000000,"grants":[{"table":"lake.sales.endless"}]}"#,
            ),
        );
    }
    let state = TrinoState::new(
        Arc::new(governor),
        Arc::clone(&tokens) as Arc<dyn Authenticator>,
        &config,
        SocketAddr::from(([127, 0, 0, 1], 8080)),
    );
    let queries = Arc::clone(&state.queries);
    let app = router(state).layer(MockConnectInfo(SocketAddr::from(([127, 0, 0, 1], 5555))));
    Fixture {
        app,
        tokens,
        started,
        queries,
    }
}

use super::tests::{Answer, call, path_of, post, quick, scope};

/// Runs `sql` to the end: (rows, final document).
async fn run(app: &Router, auth: &str, sql: &str, extra: &[(&str, &str)]) -> (Vec<Value>, Value) {
    let (rows, _, answer) = super::tests::run(app, auth, sql, extra).await;
    (rows, answer.json())
}

/// POSTs `sql` and, when the answer only points at page 0, polls it once:
/// errors are reported by the first poll, not by the POST answer.
async fn first_poll(app: &Router, auth: &str, extra: &[(&str, &str)], sql: &str) -> Answer {
    let a = call(app, Method::POST, "/v1/statement", Some(auth), extra, sql).await;
    let doc = a.json();
    match doc["nextUri"].as_str() {
        Some(next) if doc.get("error").is_none() && next.ends_with("/0") => {
            call(app, Method::GET, path_of(next), Some(auth), extra, "").await
        }
        _ => a,
    }
}

const ADMIN: &str = "Bearer admin-secret";
const EU: &str = "Bearer eu-secret";
const TENANT: &str = "Bearer tenant-secret";
const OTHER: &str = "Bearer other-secret";

// ---------------------------------------------------------------- findings

/// FINDING (medium): `EXECUTE … USING` takes "literals only", but a
/// literal prefixed with two minus signs passes `check_parameter`; when the
/// placeholder sits inside a translated Trino function (`if`, `count_if`,
/// `date_add`, …) the dialect re-parses `Display` output, and `- -'…'`
/// prints as `--'…'`, a line comment. Everything after a newline in the
/// "literal" becomes SQL: here it reads a table.
#[tokio::test]
async fn finding_using_literal_becomes_sql_through_if_reparse() {
    let f = fixture(quick());
    let sql = "EXECUTE IMMEDIATE 'SELECT if(?, ''a'', ''b'')' USING - -'x\ntrue)) THEN (SELECT max(region) FROM lake.sales.orders) END --'";
    let (rows, doc) = run(&f.app, EU, sql, &[]).await;
    assert!(
        rows.is_empty() && doc["stats"]["state"] == "FAILED",
        "a USING parameter was executed as SQL: rows {rows:?}, {doc}"
    );
}

/// FINDING (medium): the same through a prepared statement, as an
/// application would send it: the statement text is fixed, only the
/// parameter comes from elsewhere.
#[tokio::test]
async fn finding_prepared_parameter_becomes_sql() {
    let f = fixture(quick());
    let prepared = format!(
        "q1={}",
        encode_value("SELECT if(region = ?, 'match', 'no') FROM lake.sales.orders")
    );
    let extra = [("x-trino-prepared-statement", prepared.as_str())];
    let sql =
        "EXECUTE q1 USING - -'x\nregion)) THEN (SELECT max(email) FROM lake.sales.orders) END --'";
    let (rows, doc) = run(&f.app, EU, sql, &extra).await;
    assert!(
        rows.is_empty() && doc["stats"]["state"] == "FAILED",
        "a USING parameter was executed as SQL: rows {rows:?}, {doc}"
    );
}

/// FINDING (low, defence in depth): `check_parameter` accepts `map(…)` /
/// `array(…)` calls after checking only their plain arguments: FILTER,
/// OVER, ORDER BY clauses and ClickHouse-style parameter lists are not
/// checked, so a subquery rides along. DataFusion 53 happens to drop these
/// parts of a scalar call silently (the answer is `{"a":1}`), so nothing
/// runs today. Expected: INVALID_PARAMETER_USAGE.
#[tokio::test]
async fn finding_check_parameter_ignores_function_clauses() {
    let f = fixture(quick());
    let mut accepted = Vec::new();
    for using in [
        "map(ARRAY['a'], ARRAY[1]) FILTER (WHERE (SELECT count(*) FROM lake.sales.orders) > 0)",
        "map(ARRAY['a'], ARRAY[1]) OVER (ORDER BY (SELECT count(*) FROM lake.sales.orders))",
        "map(ARRAY['a'], ARRAY[1] ORDER BY (SELECT count(*) FROM lake.sales.orders))",
        "map((SELECT max(region) FROM lake.sales.orders))(ARRAY['a'], ARRAY[1])",
    ] {
        let sql = format!("EXECUTE IMMEDIATE 'SELECT ?' USING {using}");
        let doc = first_poll(&f.app, EU, &[], &sql).await.json();
        if doc["error"]["errorName"] != "INVALID_PARAMETER_USAGE" {
            accepted.push(format!("{using}: {doc}"));
        }
    }
    assert!(
        accepted.is_empty(),
        "non-literal parameters accepted:\n{}",
        accepted.join("\n")
    );
}

/// FINDING (medium): execution errors reach Trino clients verbatim,
/// including errors raised while the *policy* filters rows the token must
/// not see. A row rule that casts (`CAST(tenant AS BIGINT) = 1`) fails on a
/// hidden row and the message carries that row's value. Flight SQL answers
/// the same failure with "internal error (see server logs)".
#[tokio::test]
async fn finding_policy_error_leaks_hidden_row_value() {
    let f = fixture(quick());
    let (rows, doc) = run(
        &f.app,
        TENANT,
        "SELECT count(*) FROM lake.sales.accounts",
        &[],
    )
    .await;
    let text = doc.to_string();
    assert!(
        !text.contains("top-secret-tenant"),
        "a hidden row's value is in the answer: rows {rows:?}, {doc}"
    );
}

/// FINDING (medium, same root cause): connector and internal errors are
/// returned verbatim (paths, partition values, whatever the connector
/// put in its message); Flight SQL returns a generic message.
#[tokio::test]
async fn finding_connector_error_details_reach_the_client() {
    let f = fixture(quick());
    let (_, doc) = run(&f.app, TENANT, "SELECT * FROM lake.sales.broken", &[]).await;
    assert_eq!(doc["stats"]["state"], "FAILED");
    let text = doc.to_string();
    for secret in ["corp-warehouse", "jane-doe", "AKIAEXAMPLE"] {
        assert!(!text.contains(secret), "{secret} leaked: {doc}");
    }
}

/// FINDING (low): `max_queued_queries` is checked against a counter the
/// producer task increments later, so concurrent POSTs all pass the check.
#[tokio::test]
async fn finding_queue_bound_is_racy() {
    let f = fixture(TrinoConfig {
        max_concurrent_queries: 1,
        max_queued_queries: 1,
        page_max_rows: 100,
        ..quick()
    });
    // Take the only slot.
    let first = post(&f.app, ADMIN, "SELECT n FROM lake.sales.endless").await;
    assert_eq!(first.json()["stats"]["state"], "RUNNING");
    let posts = (0..6).map(|_| post(&f.app, ADMIN, "SELECT 1"));
    let answers = futures::future::join_all(posts).await;
    let queued = answers
        .iter()
        .filter(|a| a.json()["stats"]["state"] == "QUEUED")
        .count();
    assert!(
        queued <= 1,
        "{queued} queries queued with trino.max_queued_queries = 1"
    );
}

/// FINDING (low): no per-token share of the execution slots: one token
/// holding `max_concurrent_queries` slow queries queues everybody else's.
#[tokio::test]
async fn finding_one_token_starves_the_others() {
    // One token executes at most its share of the slots (half, rounded up,
    // and fewer than the execution threads): `other` fills its share and
    // another token still gets a slot.
    let f = fixture(TrinoConfig {
        max_concurrent_queries: 3,
        page_max_rows: 100,
        ..quick()
    });
    for _ in 0..f.queries.slots_per_token() {
        let a = post(&f.app, OTHER, "SELECT n FROM lake.sales.endless").await;
        assert_eq!(a.json()["stats"]["state"], "RUNNING");
    }
    let a = post(&f.app, EU, "SELECT 1").await;
    assert_ne!(
        a.json()["stats"]["state"],
        "QUEUED",
        "token eu waits for token other's queries"
    );
}

/// FINDING (medium): the number of queries that hold result pages is not
/// bounded. `max_concurrent_queries` / `max_queued_queries` only count
/// producers that execute or wait for a slot; a query whose result fits in
/// the channel (two pages) finishes producing, frees its slot, and then keeps
/// its cached first page plus the buffered pages until `client_timeout`
/// (5 min by default). One token that POSTs and never polls accumulates
/// queries × (page_max_bytes × 3) of memory without ever being refused.
#[tokio::test]
async fn finding_unpolled_queries_accumulate_without_bound() {
    let f = fixture(TrinoConfig {
        max_concurrent_queries: 1,
        max_queued_queries: 1,
        page_max_rows: 1,
        ..quick()
    });
    let mut refused = 0;
    for _ in 0..40 {
        let a = first_poll(
            &f.app,
            EU,
            &[],
            "SELECT n, repeat('x', 1000) FROM (VALUES (1), (2)) AS t(n)",
        )
        .await;
        let doc = a.json();
        if doc["error"]["errorName"] == "QUERY_QUEUE_FULL" {
            refused += 1;
        } else {
            assert!(doc["data"].is_array(), "{doc}");
        }
    }
    let held = f
        .queries
        .all()
        .iter()
        .filter(|q| !matches!(q.state(), State::Finished | State::Failed))
        .count();
    assert!(
        held <= 2,
        "{held} unfinished queries hold pages with max_concurrent_queries = 1 and \
         max_queued_queries = 1 ({refused} refused)"
    );
}

// ------------------------------------------------------------- attacks held

/// Masked values: a cast error shows the mask, never the secret; hidden
/// rows never reach user expressions (Trino translations included).
#[tokio::test]
async fn held_masks_and_ordering_through_translations() {
    let f = fixture(quick());
    let (rows, doc) = run(
        &f.app,
        EU,
        "SELECT CAST(email AS BIGINT) FROM lake.sales.orders",
        &[],
    )
    .await;
    assert!(rows.is_empty());
    let text = doc.to_string();
    assert!(!text.contains("@x"), "{doc}");
    for sql in [
        "SELECT count(*) FROM lake.sales.orders WHERE if(region = 'us', id / (id - id), 1) = 1",
        "SELECT count_if(if(region = 'us', id / (id - id), 1) = 1) FROM lake.sales.orders",
        "SELECT count(*) FROM lake.sales.orders WHERE element_at(ARRAY[1], if(region = 'us', id / (id - id), 1)) = 1",
    ] {
        let (rows, doc) = run(&f.app, EU, sql, &[]).await;
        assert_eq!(rows, vec![serde_json::json!([3])], "{sql}: {doc}");
    }
    let (rows, _) = run(
        &f.app,
        EU,
        "SELECT count_if(email = 'us-secret@x'), count_if(email LIKE '%@x') FROM lake.sales.orders",
        &[],
    )
    .await;
    assert_eq!(rows, vec![serde_json::json!([0, 0])]);
}

/// Prepared statements smuggled through the header: session statements,
/// nested EXECUTE and DDL are refused.
#[tokio::test]
async fn held_prepared_header_cannot_smuggle_statements() {
    let f = fixture(quick());
    for (stmt, name) in [
        ("USE lake.hr", "NOT_SUPPORTED"),
        ("SET SESSION query_max_run_time = '100d'", "NOT_SUPPORTED"),
        ("EXECUTE IMMEDIATE 'SELECT 1'", "NOT_SUPPORTED"),
        ("EXECUTE q1", "NOT_SUPPORTED"),
        ("PREPARE x FROM SELECT 1", "NOT_SUPPORTED"),
        ("DROP TABLE lake.sales.orders", "PERMISSION_DENIED"),
        ("CREATE TABLE lake.sales.x AS SELECT 1", "PERMISSION_DENIED"),
        (
            "SELECT 1; DROP TABLE lake.sales.orders",
            "GENERIC_USER_ERROR",
        ),
        ("SELECT * FROM lake.hr.salaries", "TABLE_NOT_FOUND"),
    ] {
        let prepared = format!("q1={}", encode_value(stmt));
        let extra = [("x-trino-prepared-statement", prepared.as_str())];
        let a = first_poll(&f.app, EU, &extra, "EXECUTE q1").await;
        let doc = a.json();
        assert_eq!(doc["stats"]["state"], "FAILED", "{stmt}: {doc}");
        if name != "GENERIC_USER_ERROR" {
            assert_eq!(doc["error"]["errorName"], name, "{stmt}: {doc}");
        }
        assert!(a.headers.get("x-trino-set-schema").is_none());
    }
    // `?` in strings and comments is not a placeholder.
    let (rows, _) = run(
        &f.app,
        EU,
        "EXECUTE IMMEDIATE 'SELECT ''?'' /* ? */, ? -- ?\n' USING 7",
        &[],
    )
    .await;
    assert_eq!(rows, vec![serde_json::json!(["?", 7])]);
}

/// Queries belong to their token: other tokens and admins cannot poll or
/// cancel; a revoked token cannot poll its own query any more.
#[tokio::test]
async fn held_query_ownership_and_revocation() {
    let f = fixture(TrinoConfig {
        page_max_rows: 10,
        ..quick()
    });
    let first = post(&f.app, EU, "SELECT n FROM lake.sales.endless").await;
    let doc = first.json();
    let next = path_of(doc["nextUri"].as_str().unwrap());
    let id = doc["id"].as_str().unwrap().to_string();
    // Polls by other tokens answer like an unknown query (410); their
    // DELETEs answer 204 like every DELETE and leave the query alone.
    for auth in [ADMIN, OTHER, TENANT] {
        assert_eq!(
            call(&f.app, Method::GET, next, Some(auth), &[], "")
                .await
                .status,
            StatusCode::GONE
        );
        assert_eq!(
            call(&f.app, Method::DELETE, next, Some(auth), &[], "")
                .await
                .status,
            StatusCode::NO_CONTENT
        );
    }
    assert_eq!(
        call(&f.app, Method::GET, next, Some(EU), &[], "")
            .await
            .status,
        StatusCode::OK
    );
    // A wrong slug is a different query.
    let parts: Vec<&str> = next.rsplitn(3, '/').collect();
    let wrong = format!("{}/{}/1", parts[2], "0".repeat(32));
    assert_eq!(
        call(&f.app, Method::GET, &wrong, Some(EU), &[], "")
            .await
            .status,
        StatusCode::GONE
    );
    let list = call(&f.app, Method::GET, "/v1/query", Some(OTHER), &[], "").await;
    assert!(!String::from_utf8_lossy(&list.body).contains(&id));
    f.tokens.revoke("eu-secret");
    let a = call(&f.app, Method::GET, next, Some(EU), &[], "").await;
    assert_eq!(a.status, StatusCode::UNAUTHORIZED);
    assert_eq!(a.headers["www-authenticate"], "Basic realm=\"Trino\"");
    assert!(f.started.load(Ordering::SeqCst) >= 1);
}

/// `query_max_run_time` only lowers the gateway's limit.
#[tokio::test]
async fn held_session_cannot_raise_run_time() {
    let f = fixture(TrinoConfig {
        max_run_time: Duration::from_millis(300),
        page_max_rows: 100,
        ..quick()
    });
    let session = [("x-trino-session", "query_max_run_time=100d")];
    let mut doc = call(
        &f.app,
        Method::POST,
        "/v1/statement",
        Some(OTHER),
        &session,
        "SELECT n FROM lake.sales.endless",
    )
    .await
    .json();
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while let Some(next) = doc["nextUri"].as_str().map(path_of) {
        assert!(
            std::time::Instant::now() < deadline,
            "ran past max_run_time"
        );
        doc = call(&f.app, Method::GET, next, Some(OTHER), &session, "")
            .await
            .json();
    }
    assert_eq!(doc["error"]["errorName"], "EXCEEDED_TIME_LIMIT", "{doc}");
}

/// Hidden and missing objects answer alike over HTTP too, and USE cannot
/// select a schema without a granted table.
#[tokio::test]
async fn held_hidden_equals_missing() {
    let f = fixture(quick());
    for (hidden, missing) in [
        (
            "SELECT * FROM lake.hr.salaries",
            "SELECT * FROM lake.zz.salaries",
        ),
        ("DESCRIBE lake.hr.salaries", "DESCRIBE lake.zz.salaries"),
        ("SHOW TABLES FROM lake.hr", "SHOW TABLES FROM lake.zz"),
        ("USE lake.hr", "USE lake.zz"),
        (
            "SHOW COLUMNS FROM lake.sales.accounts",
            "SHOW COLUMNS FROM lake.sales.zz",
        ),
        (
            "SELECT tenant FROM lake.sales.accounts",
            "SELECT tenant FROM lake.sales.zz",
        ),
    ] {
        let h = first_poll(&f.app, EU, &[], hidden).await.json();
        let m = first_poll(&f.app, EU, &[], missing).await.json();
        assert_eq!(h["error"]["errorName"], m["error"]["errorName"], "{hidden}");
        let hm = h["error"]["message"]
            .as_str()
            .unwrap()
            .replace("hr", "zz")
            .replace("accounts", "zz");
        assert_eq!(hm, m["error"]["message"].as_str().unwrap(), "{hidden}");
    }
    let (rows, _) = run(
        &f.app,
        EU,
        "SELECT table_schem, table_name FROM system.jdbc.tables WHERE table_cat = 'lake' AND table_schem <> 'information_schema'",
        &[],
    )
    .await;
    assert_eq!(
        rows,
        vec![
            serde_json::json!(["sales", "endless"]),
            serde_json::json!(["sales", "orders"])
        ]
    );
}

/// The JSON encoder escapes everything and NaN is a string.
#[tokio::test]
async fn held_json_encoding() {
    let f = fixture(quick());
    let (rows, doc) = run(
        &f.app,
        ADMIN,
        "SELECT '\"\\' || chr(1) || chr(10) || chr(8232) || '\"]}', nan(), infinity(), CAST(NULL AS VARCHAR)",
        &[],
    )
    .await;
    assert_eq!(doc["stats"]["state"], "FINISHED");
    assert_eq!(
        rows,
        vec![serde_json::json!([
            "\"\\\u{1}\n\u{2028}\"]}",
            "NaN",
            "Infinity",
            null
        ])]
    );
}

// ------------------------------------------- re-review of 532d01a (lifecycle)

/// Ids and final-page paths of `n` runs of `sql`, each fetched to the end.
async fn finish_many(
    app: &Router,
    auth: &str,
    sql: &str,
    n: usize,
) -> Vec<(String, String, Value)> {
    let mut out = Vec::new();
    for _ in 0..n {
        let mut a = post(app, auth, sql).await;
        let mut last_path = String::new();
        loop {
            assert_eq!(a.status, StatusCode::OK);
            let doc = a.json();
            match doc["nextUri"].as_str() {
                Some(next) => {
                    last_path = path_of(next).to_string();
                    a = call(app, Method::GET, &last_path, Some(auth), &[], "").await;
                }
                None => {
                    out.push((doc["id"].as_str().unwrap().to_string(), last_path, doc));
                    break;
                }
            }
        }
    }
    out
}

/// FINDING (medium, regression of the admission fix): the look-ahead folds
/// the end of a result into its last data page, so a query is "done" (not
/// counted by admission) while its cached last response still holds a full
/// page of rows. A retry of that page touches the query, so the grace
/// period never runs out: one token keeps any number of result pages in
/// memory with max_concurrent_queries = max_queued_queries = 1.
#[tokio::test]
async fn finding_done_queries_hold_pages_outside_admission() {
    let f = fixture(TrinoConfig {
        max_concurrent_queries: 1,
        max_queued_queries: 1,
        max_queries_per_token: 1,
        client_timeout: Duration::from_millis(600),
        ..quick()
    });
    let runs = finish_many(
        &f.app,
        EU,
        "SELECT n, repeat('x', 20000) FROM (VALUES (1), (2)) AS t(n)",
        12,
    )
    .await;
    for (_, _, doc) in &runs {
        assert_eq!(doc["stats"]["state"], "FINISHED", "{doc}");
        assert!(doc["data"].is_array(), "final answer without rows: {doc}");
    }
    // Keep them alive with retries of the last page, well past the grace.
    for _ in 0..6 {
        for (_, path, _) in &runs {
            let a = call(&f.app, Method::GET, path, Some(EU), &[], "").await;
            // Retired queries (bounded per token, grace from their end)
            // answer 410.
            assert!(
                a.status == StatusCode::OK || a.status == StatusCode::GONE,
                "{}",
                a.status
            );
        }
        f.queries.reap();
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    let mut held = 0usize;
    let mut bytes = 0usize;
    for (id, _, _) in &runs {
        if let Some(q) = f.queries.get(id)
            && let Ok(p) = q.pages.try_lock()
            && let Some(last) = &p.last
            && String::from_utf8_lossy(&last.body).contains("\"data\"")
        {
            held += 1;
            bytes += last.body.len();
        }
    }
    assert!(
        held <= 2,
        "{held} fully fetched queries still hold {bytes} bytes of rows after 1.5 s \
         (grace 0.6 s), none counted by admission (cap: 2 live queries)"
    );
}

/// FINDING (low/medium): failed statements are now registered
/// (`start_failed`) outside admission, with their full error message (which
/// echoes user text: here a 200 kB identifier, twice: error + cached page),
/// and a retry of page 0 keeps them forever. Before 532d01a nothing was kept.
#[tokio::test]
async fn finding_failed_statements_registered_without_bound() {
    let f = fixture(TrinoConfig {
        max_queries_per_token: 1,
        client_timeout: Duration::from_millis(600),
        ..quick()
    });
    let name = "y".repeat(200_000);
    let sql = format!("SELECT * FROM lake.sales.\"{name}\"");
    let mut ids = Vec::new();
    for _ in 0..20 {
        let a = post(&f.app, EU, &sql).await;
        let doc = a.json();
        ids.push(doc["id"].as_str().unwrap().to_string());
    }
    let stored: usize = ids
        .iter()
        .filter_map(|id| f.queries.get(id))
        .filter_map(|q| q.failure())
        .map(|e| e.message.len())
        .sum();
    assert!(
        stored < 100_000,
        "{} failed statements of one token (max_queries_per_token = 1) keep {stored} bytes of \
         error text in the registry",
        ids.len()
    );
}

/// FINDING (low): every started query leaves a watchdog task sleeping for
/// the whole run-time limit (1 h by default), long after the query ended;
/// it pins the `Query` allocation through its `Weak`.
#[tokio::test]
async fn finding_watchdog_tasks_outlive_their_queries() {
    let f = fixture(quick());
    let before = tokio::runtime::Handle::current()
        .metrics()
        .num_alive_tasks();
    let runs = finish_many(&f.app, EU, "SELECT 1", 50).await;
    assert_eq!(runs.len(), 50);
    tokio::time::sleep(Duration::from_millis(100)).await;
    let after = tokio::runtime::Handle::current()
        .metrics()
        .num_alive_tasks();
    assert!(
        after <= before + 5,
        "{} tasks still alive after 50 finished queries",
        after - before
    );
}

/// FINDING (low, correctness): the watchdog fails a query whose producer
/// already produced every page (state stays RUNNING until the client reads
/// the end), so a slow reader of a complete result gets EXCEEDED_TIME_LIMIT
/// and loses the buffered rows.
#[tokio::test]
async fn finding_watchdog_fails_complete_results_of_slow_readers() {
    let f = fixture(TrinoConfig {
        max_run_time: Duration::from_millis(400),
        page_max_rows: 1,
        ..quick()
    });
    let a = post(&f.app, EU, "SELECT n FROM (VALUES (1), (2)) AS t(n)").await;
    let mut next = a.json()["nextUri"].as_str().map(|u| path_of(u).to_string());
    tokio::time::sleep(Duration::from_millis(700)).await;
    let mut last = Value::Null;
    while let Some(p) = next {
        let doc = call(&f.app, Method::GET, &p, Some(EU), &[], "")
            .await
            .json();
        next = doc["nextUri"].as_str().map(|u| path_of(u).to_string());
        last = doc;
    }
    assert_eq!(
        last["stats"]["state"], "FINISHED",
        "a fully produced result failed while the client read it: {last}"
    );
}

/// Held: another token's query is indistinguishable from an unknown one on
/// every route (GET page 410, DELETE 204, GET /v1/query/{id} 404), and a
/// foreign DELETE does not cancel or touch it. Failed statements too.
#[tokio::test]
async fn held_foreign_queries_look_unknown() {
    let f = fixture(TrinoConfig {
        page_max_rows: 10,
        ..quick()
    });
    let own = post(&f.app, EU, "SELECT n FROM lake.sales.endless")
        .await
        .json();
    let bad = post(&f.app, EU, "SELECT * FROM lake.hr.salaries")
        .await
        .json();
    for doc in [&own, &bad] {
        let id = doc["id"].as_str().unwrap();
        let next = path_of(doc["nextUri"].as_str().unwrap());
        let unknown = next.replace(id, "20260101_000000_00001_zzzzz");
        for auth in [OTHER, TENANT] {
            let g1 = call(&f.app, Method::GET, next, Some(auth), &[], "").await;
            let g2 = call(&f.app, Method::GET, &unknown, Some(auth), &[], "").await;
            assert_eq!((g1.status, &g1.body), (g2.status, &g2.body));
            let d1 = call(&f.app, Method::DELETE, next, Some(auth), &[], "").await;
            let d2 = call(&f.app, Method::DELETE, &unknown, Some(auth), &[], "").await;
            assert_eq!((d1.status, &d1.body), (d2.status, &d2.body));
            let i1 = call(
                &f.app,
                Method::GET,
                &format!("/v1/query/{id}"),
                Some(auth),
                &[],
                "",
            )
            .await;
            let i2 = call(
                &f.app,
                Method::GET,
                "/v1/query/20260101_000000_00001_zzzzz",
                Some(auth),
                &[],
                "",
            )
            .await;
            assert_eq!((i1.status, &i1.body), (i2.status, &i2.body));
        }
        let q = f.queries.get(id).expect("still registered");
        assert_ne!(q.failure().map(|e| e.name), Some("USER_CANCELED"));
    }
    // The owner still reads its query and its error.
    let doc = call(
        &f.app,
        Method::GET,
        path_of(bad["nextUri"].as_str().unwrap()),
        Some(EU),
        &[],
        "",
    )
    .await
    .json();
    assert_eq!(doc["error"]["errorName"], "TABLE_NOT_FOUND");
    assert!(!doc.to_string().contains("999999"));
}

/// FINDING (medium): CooperativeExec makes *operators* yield between
/// batches, but one expression over one batch never yields: a projection of
/// an expensive scalar (`levenshtein` of long strings) over a few rows pins
/// an execution thread for as long as it computes. The watchdog marks the
/// query FAILED and DELETE forgets it, but the task cannot be aborted: it
/// keeps its thread and both permits, and the registry no longer counts it.
/// `exec_runtime` has one thread per core, so a token with as many such
/// queries as cores stops every other token's queries. Ignored by default:
/// it pins the shared execution runtime for ~a minute.
/// Run: cargo test -p sluice --lib finding_scalar_hog -- --ignored
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore]
async fn finding_scalar_hog_survives_cancel_and_time_limit() {
    let f = fixture(TrinoConfig {
        max_run_time: Duration::from_secs(30),
        ..quick()
    });
    let threads = std::thread::available_parallelism()
        .map(usize::from)
        .unwrap_or(2);
    let hog = "SELECT sum(levenshtein(repeat('a', 20000), repeat('b', 20000) || CAST(n AS VARCHAR))) \
               FROM unnest(range(1, 40)) AS t(n)";
    for _ in 0..threads {
        let a = call(
            &f.app,
            Method::POST,
            "/v1/statement",
            Some(EU),
            &[("x-trino-session", "query_max_run_time=500ms")],
            hog,
        )
        .await
        .json();
        let next = path_of(a["nextUri"].as_str().unwrap());
        tokio::time::sleep(Duration::from_millis(100)).await;
        call(&f.app, Method::DELETE, next, Some(EU), &[], "").await;
    }
    tokio::time::sleep(Duration::from_millis(700)).await;
    // Both hogs are cancelled and past their time limit; another token runs
    // a trivial query with a 5 s limit.
    let t0 = std::time::Instant::now();
    let (rows, doc) = run(
        &f.app,
        OTHER,
        "SELECT 1",
        &[("x-trino-session", "query_max_run_time=5s")],
    )
    .await;
    let _ = rows;
    assert_eq!(
        doc["stats"]["state"],
        "FINISHED",
        "another token's query could not run after {:?}: {doc}",
        t0.elapsed()
    );
}
