//! Probes of the Trino frontend's ingress: Basic and Bearer read by the
//! planner's one parser, one uniform refusal, which requests are charged
//! to a token's rate (only the owner's paging of a live query is not),
//! what a poll records in the audit facts, and the Trino-shaped metadata
//! over the token's scoped catalogs (`system.runtime` for admins only).

use std::net::SocketAddr;
use std::sync::Arc;

use arrow::array::{Int64Array, RecordBatch};
use arrow::datatypes::{DataType, Field, Schema};
use axum::Router;
use axum::extract::connect_info::MockConnectInfo;
use axum::http::{Method, StatusCode};
use base64::Engine;
use base64::engine::general_purpose::{STANDARD, STANDARD_NO_PAD};
use datafusion::catalog::MemTable;
use serde_json::Value;
use sluice_planner::audit::{self, AuditHandle};
use sluice_planner::{Authenticator, CatalogEntry};
use sluice_test_support::StaticAuthenticator;

use super::{Answer, call, get, path_of, post, quick};
use crate::{TrinoConfig, TrinoState, router};

const EU: &str = "eu-secret";
const ADMIN: &str = "admin-secret";
const AUDITOR: &str = "auditor-secret";

struct Fixture {
    app: Router,
    auth: Arc<StaticAuthenticator>,
}

/// The test catalog `lake`, an ungranted catalog `secretcat`, the
/// gateway's own `audit_log`, and one-row pages so queries stay live.
fn fixture() -> Fixture {
    let schema = Arc::new(Schema::new(vec![Field::new("x", DataType::Int64, false)]));
    let batch = RecordBatch::try_new(
        Arc::clone(&schema),
        vec![Arc::new(Int64Array::from(vec![4242]))],
    )
    .unwrap();
    let audit_log = Arc::new(MemTable::try_new(schema, vec![vec![batch]]).unwrap());
    let mut governor = sluice_test_support::governor()
        .with_target_partitions(1)
        .with_system_table("audit_log", audit_log);
    governor.add_catalog(
        "secretcat",
        CatalogEntry {
            provider: sluice_test_support::raw_catalog(),
            tables: Default::default(),
        },
    );
    let auth = Arc::new(StaticAuthenticator::new(
        [(EU, "eu"), (ADMIN, "admin"), (AUDITOR, "auditor")]
            .map(|(secret, name)| (secret, sluice_test_support::token(name))),
    ));
    let state = TrinoState::new(
        Arc::new(governor),
        Arc::clone(&auth) as Arc<dyn Authenticator>,
        &TrinoConfig {
            page_max_rows: 1,
            ..quick()
        },
        SocketAddr::from(([127, 0, 0, 1], 8080)),
    );
    let app = router(state).layer(MockConnectInfo(SocketAddr::from(([127, 0, 0, 1], 5555))));
    Fixture { app, auth }
}

fn bearer(secret: &str) -> String {
    format!("Bearer {secret}")
}

/// Runs `sql` to the end as `auth`: (rows, final document).
async fn rows(app: &Router, auth: &str, sql: &str) -> (Vec<Value>, Value) {
    let (rows, _, answer) = super::run(app, auth, sql, &[]).await;
    (rows, answer.json())
}

/// Basic (any user, password = secret, with or without padding) and
/// Bearer are the same caller.
#[tokio::test]
async fn basic_and_bearer_authenticate_trino_requests_alike() {
    let f = fixture();
    for auth in [
        bearer(EU),
        format!("Basic {}", STANDARD.encode(format!("alice:{EU}"))),
        format!(
            "basic {}",
            STANDARD_NO_PAD.encode(format!("someone-else:{EU}"))
        ),
    ] {
        let (rows, doc) = rows(&f.app, &auth, "SELECT count(*) FROM lake.sales.orders").await;
        assert!(doc.get("error").is_none(), "{auth}: {doc}");
        assert_eq!(rows, vec![serde_json::json!([3])], "{auth}");
    }
}

/// Missing, malformed, unknown and Basic-without-password credentials all
/// get the same 401, byte for byte.
#[tokio::test]
async fn every_trino_credential_failure_is_the_same_401() {
    let f = fixture();
    let cases: Vec<Option<String>> = vec![
        None,
        Some("Bearer nope".into()),
        Some("Bearer".into()),
        Some(format!("Token {EU}")),
        Some("Basic !!!".into()),
        Some(format!("Basic {}", STANDARD.encode(EU))),
        Some(format!("Basic {}", STANDARD.encode("alice:"))),
        Some(format!("Basic {}", STANDARD.encode(format!("{EU}:x")))),
    ];
    let mut answers = Vec::new();
    for auth in &cases {
        let a = call(
            &f.app,
            Method::POST,
            "/v1/statement",
            auth.as_deref(),
            &[],
            "SELECT 1",
        )
        .await;
        assert_eq!(a.status, StatusCode::UNAUTHORIZED, "{auth:?}");
        assert_eq!(
            a.headers["www-authenticate"], "Basic realm=\"Trino\"",
            "{auth:?}"
        );
        answers.push(a.body);
    }
    assert!(answers.windows(2).all(|w| w[0] == w[1]), "{answers:?}");
    for path in ["/v1/query", "/v1/query/x", "/v1/statement/executing/a/b/0"] {
        let a = get(&f.app, "Bearer nope", path).await;
        assert_eq!(a.status, StatusCode::UNAUTHORIZED, "{path}");
        assert_eq!(a.body, answers[0], "{path}");
    }
}

/// Paging a live query is uncharged only for its owner; anybody else
/// (an admin included) is charged for the request and gets 410, and a
/// wrong slug is charged like any request.
#[tokio::test]
async fn only_the_owner_pages_a_live_query_uncharged() {
    let f = fixture();
    let first = post(
        &f.app,
        &bearer(EU),
        "SELECT order_id FROM lake.sales.orders",
    )
    .await;
    let doc = first.json();
    let next = path_of(doc["nextUri"].as_str().unwrap()).to_string();
    assert_eq!(f.auth.count(EU), (1, 0));

    let page = get(&f.app, &bearer(EU), &next).await;
    assert_eq!(page.status, StatusCode::OK);
    assert_eq!(f.auth.count(EU), (1, 1), "the owner's poll is uncharged");

    for secret in [ADMIN, AUDITOR] {
        let before = f.auth.count(secret).0;
        let a = get(&f.app, &bearer(secret), &next).await;
        assert_eq!(a.status, StatusCode::GONE, "{secret}");
        assert_eq!(f.auth.count(secret).0, before + 1, "{secret}: charged once");
        let before = f.auth.count(secret).0;
        let d = call(
            &f.app,
            Method::DELETE,
            &next,
            Some(&bearer(secret)),
            &[],
            "",
        )
        .await;
        assert_eq!(d.status, StatusCode::NO_CONTENT);
        assert_eq!(
            f.auth.count(secret).0,
            before + 1,
            "{secret}: DELETE charged"
        );
    }

    // A wrong slug: not the live query, so charged.
    let parts: Vec<&str> = next.rsplitn(3, '/').collect();
    let wrong = format!("{}/{}/1", parts[2], "0".repeat(32));
    let before = f.auth.count(EU);
    let a = get(&f.app, &bearer(EU), &wrong).await;
    assert_eq!(a.status, StatusCode::GONE);
    assert_eq!(f.auth.count(EU), (before.0 + 1, before.1));

    // The foreign DELETEs left the query alone: the owner reads it to the end.
    let mut next = page.json()["nextUri"]
        .as_str()
        .map(|u| path_of(u).to_string());
    let mut pages = 1;
    while let Some(n) = next {
        let a = get(&f.app, &bearer(EU), &n).await;
        assert_eq!(a.status, StatusCode::OK);
        let d = a.json();
        assert!(d.get("error").is_none(), "{d}");
        pages += 1;
        next = d["nextUri"].as_str().map(|u| path_of(u).to_string());
    }
    assert!(pages >= 3);
    let (charged, _) = f.auth.count(EU);
    assert_eq!(charged, before.0 + 1, "the owner's polls stayed uncharged");
}

/// A poll records the owner's statement and tables in its own audit
/// facts; another token's poll records its own token and nothing of the
/// owner's query.
#[tokio::test]
async fn a_foreign_poll_records_nothing_of_the_owners_query() {
    let f = fixture();
    let sql = "SELECT order_id, customer_email FROM lake.sales.orders";
    let doc = post(&f.app, &bearer(EU), sql).await.json();
    let next = path_of(doc["nextUri"].as_str().unwrap()).to_string();

    let foreign = AuditHandle::new();
    let a = audit::with_handle(foreign.clone(), get(&f.app, &bearer(AUDITOR), &next)).await;
    assert_eq!(a.status, StatusCode::GONE);
    let facts = foreign.snapshot();
    assert_eq!(facts.token_id.as_deref(), Some("t-auditor"));
    assert!(facts.statement.is_none(), "{facts:?}");
    assert!(facts.query_id.is_none(), "{facts:?}");
    assert!(facts.tables.is_empty(), "{facts:?}");

    let own = AuditHandle::new();
    let a = audit::with_handle(own.clone(), get(&f.app, &bearer(EU), &next)).await;
    assert_eq!(a.status, StatusCode::OK);
    let facts = own.snapshot();
    assert_eq!(facts.token_id.as_deref(), Some("t-eu"));
    assert_eq!(facts.statement.as_deref(), Some(sql));
    assert_eq!(facts.tables, vec!["lake.sales.orders".to_string()]);
    assert!(
        facts
            .columns_masked
            .contains(&"lake.sales.orders.customer_email".to_string())
    );
    let key = String::from_utf8_lossy(sluice_test_support::MASK_KEY).to_string();
    assert!(!format!("{facts:?}").contains(&key));
    assert!(!format!("{facts:?}").contains(EU));
}

/// `system.runtime` (the audit log) exists in admin sessions only; Trino's
/// metadata lists only catalogs the token may see.
#[tokio::test]
async fn system_runtime_and_ungranted_catalogs_are_absent_from_trino_sessions() {
    let f = fixture();
    let flat = |rows: Vec<Value>| -> Vec<String> {
        rows.iter()
            .map(|r| r[0].as_str().unwrap_or_default().to_string())
            .collect()
    };
    // eu: no runtime schema, no secretcat.
    let (schemas, _) = rows(&f.app, &bearer(EU), "SHOW SCHEMAS FROM system").await;
    assert!(!flat(schemas).contains(&"runtime".to_string()));
    // Every way Trino clients list catalogs agrees with SHOW CATALOGS.
    for sql in [
        "SHOW CATALOGS",
        "SELECT catalog_name FROM system.metadata.catalogs",
        "SELECT table_cat FROM system.jdbc.catalogs",
    ] {
        let (catalogs, _) = rows(&f.app, &bearer(EU), sql).await;
        let catalogs = flat(catalogs);
        assert!(
            !catalogs.contains(&"secretcat".to_string()),
            "{sql}: {catalogs:?}"
        );
        assert!(
            catalogs.contains(&"lake".to_string()),
            "{sql}: {catalogs:?}"
        );
    }
    for sql in [
        "SELECT x FROM system.runtime.audit_log",
        "SELECT x FROM system.audit_log",
        "SELECT * FROM system.jdbc.tables WHERE table_cat = 'secretcat'",
        "SELECT * FROM secretcat.hr.salaries",
        "SELECT * FROM secretcat.sales.orders",
        "SELECT * FROM lake.information_schema.tables WHERE table_schema = 'hr'",
    ] {
        let a = super::multi_token::first_poll(&f.app, &bearer(EU), &[], sql).await;
        let doc = a.json();
        let body = doc.to_string();
        assert!(!body.contains("4242"), "{sql}: {body}");
        assert!(
            !body.contains("90000") && !body.contains("@x.com"),
            "{sql}: {body}"
        );
        if doc.get("error").is_none() {
            let (rows, _) = rows(&f.app, &bearer(EU), sql).await;
            assert!(rows.is_empty(), "{sql}: {rows:?}");
        }
    }
    // A session catalog naming an ungranted catalog reaches nothing, and
    // answers like one that does not exist.
    let answers: Vec<Value> = futures::future::join_all(["secretcat", "nosuchcat"].map(|c| {
        let app = f.app.clone();
        async move {
            super::multi_token::first_poll(
                &app,
                &bearer(EU),
                &[("x-trino-catalog", c), ("x-trino-schema", "hr")],
                "SELECT * FROM salaries",
            )
            .await
            .json()
        }
    }))
    .await;
    assert_eq!(
        answers[0]["error"]["errorName"],
        answers[1]["error"]["errorName"]
    );
    assert!(!answers[0].to_string().contains("90000"), "{}", answers[0]);
    // The admin has the audit log under both spellings.
    let (schemas, _) = rows(&f.app, &bearer(ADMIN), "SHOW SCHEMAS FROM system").await;
    assert!(flat(schemas).contains(&"runtime".to_string()));
    for sql in [
        "SELECT x FROM system.runtime.audit_log",
        "SELECT x FROM system.audit_log",
    ] {
        let (r, doc) = rows(&f.app, &bearer(ADMIN), sql).await;
        assert_eq!(r, vec![serde_json::json!([4242])], "{sql}: {doc}");
    }
    // Never a catalog the admin is not granted either.
    let (catalogs, _) = rows(&f.app, &bearer(ADMIN), "SHOW CATALOGS").await;
    assert!(!flat(catalogs).contains(&"secretcat".to_string()));
}

/// The query listing and a query's info are the caller's own (every
/// query's for an admin).
#[tokio::test]
async fn query_listing_and_info_are_the_owners_or_an_admins() {
    let f = fixture();
    let doc = post(
        &f.app,
        &bearer(EU),
        "SELECT order_id FROM lake.sales.orders",
    )
    .await
    .json();
    let id = doc["id"].as_str().unwrap().to_string();
    let list = |auth: String| {
        let app = f.app.clone();
        async move {
            let a: Answer = get(&app, &auth, "/v1/query").await;
            assert_eq!(a.status, StatusCode::OK);
            String::from_utf8_lossy(&a.body).to_string()
        }
    };
    assert!(list(bearer(EU)).await.contains(&id));
    assert!(list(bearer(ADMIN)).await.contains(&id));
    assert!(!list(bearer(AUDITOR)).await.contains(&id));
    let info = |auth: String| {
        let app = f.app.clone();
        let path = format!("/v1/query/{id}");
        async move { get(&app, &auth, &path).await.status }
    };
    assert_eq!(info(bearer(EU)).await, StatusCode::OK);
    assert_eq!(info(bearer(ADMIN)).await, StatusCode::OK);
    assert_eq!(info(bearer(AUDITOR)).await, StatusCode::NOT_FOUND);
}
