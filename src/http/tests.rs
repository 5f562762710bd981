//! Admin API tests: every 401 / 403 / 404 / 400 path, against the router
//! with an in-memory SQLite store and an in-memory catalog.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;

use arrow::datatypes::{DataType, Field, Schema};
use axum::body::Body;
use axum::extract::connect_info::MockConnectInfo;
use axum::http::{Method, Request, StatusCode};
use datafusion::catalog::{
    CatalogProvider, MemoryCatalogProvider, MemorySchemaProvider, SchemaProvider,
};
use datafusion::datasource::MemTable;
use serde_json::{Value, json};
use sluice_planner::{CatalogEntry, Governor, TableClass};
use tower::ServiceExt as _;

use super::{AppState, router};
use crate::auth::StoreAuthenticator;
use crate::store::Store;
use sluice_planner::token::TokenSpec;

struct Harness {
    app: axum::Router,
    store: Store,
    admin: String,
    admin_id: String,
}

fn governor() -> Governor {
    let schema = Arc::new(Schema::new(vec![
        Field::new("order_id", DataType::Int64, false),
        Field::new("region", DataType::Utf8, true),
        Field::new("amount", DataType::Float64, true),
        Field::new("customer_email", DataType::Utf8, true),
        Field::new("sensitivity", DataType::Int64, true),
    ]));
    let table = MemTable::try_new(schema, vec![vec![]]).unwrap();
    let sales = MemorySchemaProvider::new();
    sales
        .register_table("orders".into(), Arc::new(table))
        .unwrap();
    let lake = MemoryCatalogProvider::new();
    lake.register_schema("sales", Arc::new(sales) as Arc<dyn SchemaProvider>)
        .unwrap();
    let mut governor = Governor::new();
    governor.add_catalog(
        "lake",
        CatalogEntry {
            provider: Arc::new(lake) as Arc<dyn CatalogProvider>,
            tables: HashMap::from([(
                "sales.orders".to_string(),
                TableClass {
                    sensitivity_column: Some("sensitivity".into()),
                    ..Default::default()
                },
            )]),
        },
    );
    governor
}

async fn harness_from(client: &str) -> Harness {
    let store = Store::connect("sqlite::memory:").await.unwrap();
    store.migrate().await.unwrap();
    let admin = store
        .create_token(&TokenSpec::admin("admin", 100), "test", 100)
        .await
        .unwrap();
    let state = AppState {
        store: store.clone(),
        auth: Arc::new(StoreAuthenticator::new(store.clone())),
        governor: Arc::new(governor()),
        default_row_limit: 100,
        milvus: Arc::default(),
        exports: None,
        audit: None,
        iceberg: Default::default(),
        profile_ca: None,
        peers: None,
    };
    let client: SocketAddr = client.parse().unwrap();
    Harness {
        app: router(state).layer(MockConnectInfo(client)),
        store,
        admin: admin.secret,
        admin_id: admin.id,
    }
}

async fn harness() -> Harness {
    harness_from("127.0.0.1:40000").await
}

const ANALYST: &str = r#"{"name": "eu-analyst", "token_type": "public", "expires_at": "2099-01-01T00:00:00Z",
 "attributes": {"region": "eu"}, "max_sensitivity": 2, "row_limit": 1000,
 "allow_attachments": false, "can_export_vectors": false, "admin": false, "audience": {"cidrs": ["127.0.0.0/8"]}, "rate_limit": 600,
 "grants": [{"table": "lake.sales.orders", "columns": ["order_id", "region", "amount", "customer_email"], "masks": {"customer_email": "hash"}, "allow_rules": ["region = token.region"], "deny_rules": ["amount > 10000"]}]}"#;

impl Harness {
    async fn call(
        &self,
        method: Method,
        path: &str,
        bearer: Option<&str>,
        body: Option<&str>,
    ) -> (StatusCode, Value) {
        let mut req = Request::builder().method(method).uri(path);
        if let Some(b) = bearer {
            req = req.header("authorization", format!("Bearer {b}"));
        }
        let req = req
            .header("content-type", "application/json")
            .body(
                body.map(|b| Body::from(b.to_string()))
                    .unwrap_or_else(Body::empty),
            )
            .unwrap();
        let resp = self.app.clone().oneshot(req).await.unwrap();
        let status = resp.status();
        let bytes = axum::body::to_bytes(resp.into_body(), 1 << 20)
            .await
            .unwrap();
        let v = if bytes.is_empty() {
            Value::Null
        } else {
            serde_json::from_slice(&bytes)
                .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&bytes).into()))
        };
        (status, v)
    }

    async fn create(&self, body: &str) -> (StatusCode, Value) {
        self.call(Method::POST, "/v1/tokens", Some(&self.admin), Some(body))
            .await
    }

    async fn analyst(&self) -> (String, String) {
        let (status, v) = self.create(ANALYST).await;
        assert_eq!(status, StatusCode::CREATED, "{v}");
        (
            v["id"].as_str().unwrap().to_string(),
            v["secret"].as_str().unwrap().to_string(),
        )
    }
}

fn assert_unauthenticated((status, body): (StatusCode, Value)) {
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_eq!(body, json!({"error": "authentication failed"}));
}

#[tokio::test]
async fn health_and_ready() {
    let h = harness().await;
    let (s, v) = h.call(Method::GET, "/health", None, None).await;
    assert_eq!((s, v["status"].as_str()), (StatusCode::OK, Some("ok")));
    let (s, v) = h.call(Method::GET, "/ready", None, None).await;
    assert_eq!((s, v["status"].as_str()), (StatusCode::OK, Some("ready")));
    h.store.close().await;
    let (s, v) = h.call(Method::GET, "/ready", None, None).await;
    assert_eq!(s, StatusCode::SERVICE_UNAVAILABLE, "{v}");
    assert_eq!(v["status"], "unavailable");
    let (s, _) = h.call(Method::GET, "/health", None, None).await;
    assert_eq!(s, StatusCode::OK);
}

#[tokio::test]
async fn create_show_list_revoke() {
    let h = harness().await;
    let (id, secret) = h.analyst().await;
    assert!(secret.starts_with("slc_"));

    let (s, v) = h
        .call(
            Method::GET,
            &format!("/v1/tokens/{id}"),
            Some(&h.admin),
            None,
        )
        .await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(v["name"], "eu-analyst");
    assert_eq!(v["row_limit"], 1000);
    assert_eq!(v["created_by"], format!("token:{}", h.admin_id));
    let text = v.to_string();
    assert!(
        !text.contains(&secret) && !text.contains("secret_hash") && !text.contains("\"secret\"")
    );

    let (s, v) = h
        .call(Method::GET, "/v1/tokens", Some(&h.admin), None)
        .await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(v.as_array().unwrap().len(), 2);
    assert!(!v.to_string().contains(&secret));

    // Defaults: row limit from the config.
    let (s, v) = h
        .create(r#"{"name":"d","grants":[{"table":"lake.sales.*"}]}"#)
        .await;
    assert_eq!(s, StatusCode::CREATED, "{v}");
    let (_, v) = h
        .call(
            Method::GET,
            &format!("/v1/tokens/{}", v["id"].as_str().unwrap()),
            Some(&h.admin),
            None,
        )
        .await;
    assert_eq!(v["row_limit"], 100);

    // The analyst can introspect itself.
    let (s, v) = h
        .call(
            Method::GET,
            &format!("/v1/tokens/{id}/introspect"),
            Some(&secret),
            None,
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert_eq!(v["status"], "active");
    assert_eq!(v["tables"][0]["table"], "lake.sales.orders");
    let cols: Vec<&str> = v["tables"][0]["columns"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["name"].as_str().unwrap())
        .collect();
    assert_eq!(cols, ["order_id", "region", "amount", "customer_email"]);
    assert_eq!(v["tables"][0]["columns"][3]["mask"], "hash");

    // Revoke: effective at the next request.
    let (s, v) = h
        .call(
            Method::DELETE,
            &format!("/v1/tokens/{id}"),
            Some(&h.admin),
            None,
        )
        .await;
    assert_eq!(s, StatusCode::OK);
    assert!(v["revoked_at"].is_string());
    assert_unauthenticated(
        h.call(
            Method::GET,
            &format!("/v1/tokens/{id}/introspect"),
            Some(&secret),
            None,
        )
        .await,
    );
    // Idempotent.
    let (s, _) = h
        .call(
            Method::DELETE,
            &format!("/v1/tokens/{id}"),
            Some(&h.admin),
            None,
        )
        .await;
    assert_eq!(s, StatusCode::OK);
    // An admin still sees the revoked token's scope.
    let (s, v) = h
        .call(
            Method::GET,
            &format!("/v1/tokens/{id}/introspect"),
            Some(&h.admin),
            None,
        )
        .await;
    assert_eq!((s, v["status"].as_str()), (StatusCode::OK, Some("revoked")));
}

#[tokio::test]
async fn every_401() {
    let h = harness().await;
    let (id, secret) = h.analyst().await;
    let routes = [
        (Method::POST, "/v1/tokens".to_string()),
        (Method::GET, "/v1/tokens".to_string()),
        (Method::GET, format!("/v1/tokens/{id}")),
        (Method::DELETE, format!("/v1/tokens/{id}")),
        (Method::GET, format!("/v1/tokens/{id}/introspect")),
    ];
    let unknown = sluice_planner::token::generate_secret();
    for (method, path) in &routes {
        // Missing, malformed, unknown.
        assert_unauthenticated(h.call(method.clone(), path, None, Some(ANALYST)).await);
        assert_unauthenticated(
            h.call(method.clone(), path, Some("garbage"), Some(ANALYST))
                .await,
        );
        assert_unauthenticated(
            h.call(method.clone(), path, Some(unknown.expose()), Some(ANALYST))
                .await,
        );
        // Wrong scheme.
        let req = Request::builder()
            .method(method.clone())
            .uri(path)
            .header("authorization", format!("Basic {secret}"))
            .body(Body::empty())
            .unwrap();
        let resp = h.app.clone().oneshot(req).await.unwrap();
        assert_eq!(resp.status(), StatusCode::UNAUTHORIZED);
        assert_eq!(resp.headers()["www-authenticate"], "Bearer");
    }

    // Expired.
    let (s, v) = h
        .create(r#"{"name":"soon","expires_at":"2099-01-01T00:00:00Z","grants":[]}"#)
        .await;
    assert_eq!(s, StatusCode::CREATED);
    let soon = v["secret"].as_str().unwrap().to_string();
    let soon_id = v["id"].as_str().unwrap().to_string();
    let spec = TokenSpec {
        expires_at: Some(chrono::Utc::now() + chrono::Duration::milliseconds(30)),
        ..TokenSpec::admin("short", 10)
    };
    let short = h.store.create_token(&spec, "t", 10).await.unwrap();
    tokio::time::sleep(std::time::Duration::from_millis(60)).await;
    assert_unauthenticated(
        h.call(Method::GET, "/v1/tokens", Some(&short.secret), None)
            .await,
    );

    // Revoked.
    h.store
        .revoke_token(&soon_id, chrono::Utc::now())
        .await
        .unwrap();
    assert_unauthenticated(
        h.call(
            Method::GET,
            &format!("/v1/tokens/{soon_id}/introspect"),
            Some(&soon),
            None,
        )
        .await,
    );

    // Wrong audience: the analyst is limited to 127.0.0.0/8.
    let far = harness_from("10.9.8.7:5000").await;
    let (s, v) = far.create(ANALYST).await;
    assert_eq!(s, StatusCode::CREATED);
    let far_id = v["id"].as_str().unwrap();
    assert_unauthenticated(
        far.call(
            Method::GET,
            &format!("/v1/tokens/{far_id}/introspect"),
            Some(v["secret"].as_str().unwrap()),
            None,
        )
        .await,
    );
}

#[tokio::test]
async fn every_403() {
    let h = harness().await;
    let (id, secret) = h.analyst().await;
    let (s, v) = h
        .create(r#"{"name":"other","grants":[{"table":"lake.sales.orders"}]}"#)
        .await;
    assert_eq!(s, StatusCode::CREATED);
    let other = v["id"].as_str().unwrap().to_string();
    let forbidden = [
        (Method::POST, "/v1/tokens".to_string(), Some(ANALYST)),
        (Method::GET, "/v1/tokens".to_string(), None),
        (Method::GET, format!("/v1/tokens/{id}"), None),
        (Method::DELETE, format!("/v1/tokens/{other}"), None),
        (Method::DELETE, format!("/v1/tokens/{id}"), None),
        (Method::GET, format!("/v1/tokens/{other}/introspect"), None),
        (
            Method::GET,
            format!("/v1/tokens/{}/introspect", h.admin_id),
            None,
        ),
        // Not an existing token either: still 403, nothing leaks.
        (Method::GET, "/v1/tokens/nope/introspect".to_string(), None),
    ];
    for (method, path, body) in forbidden {
        let (s, v) = h.call(method.clone(), &path, Some(&secret), body).await;
        assert_eq!(s, StatusCode::FORBIDDEN, "{method} {path}: {v}");
        assert!(v["error"].is_string());
    }
    // Nothing was created or revoked.
    let (_, v) = h
        .call(Method::GET, "/v1/tokens", Some(&h.admin), None)
        .await;
    assert_eq!(v.as_array().unwrap().len(), 3);
    assert!(
        v.as_array()
            .unwrap()
            .iter()
            .all(|t| t["revoked_at"].is_null())
    );
}

#[tokio::test]
async fn every_404() {
    let h = harness().await;
    for (method, path) in [
        (Method::GET, "/v1/tokens/nope"),
        (Method::DELETE, "/v1/tokens/nope"),
        (Method::GET, "/v1/tokens/nope/introspect"),
        (Method::GET, "/v1/nothing"),
    ] {
        let (s, v) = h.call(method.clone(), path, Some(&h.admin), None).await;
        assert_eq!(s, StatusCode::NOT_FOUND, "{method} {path}: {v}");
        assert!(v["error"].is_string(), "{v}");
    }
}

#[tokio::test]
async fn every_400() {
    let h = harness().await;
    let cases = [
        ("not json", "invalid token document"),
        (r#"{"grants":[]}"#, "missing field `name`"),
        (r#"{"name":"x","colour":"red"}"#, "unknown field `colour`"),
        (
            r#"{"name":"x","grants":[{"table":"lake.sales.orders","rows":[]}]}"#,
            "unknown field `rows`",
        ),
        (
            r#"{"name":"x","token_type":"root"}"#,
            "unknown variant `root`",
        ),
        (r#"{"name":"x","row_limit":-1}"#, "row_limit"),
        (
            r#"{"name":"x","row_limit":0}"#,
            "row_limit must be at least 1",
        ),
        (
            r#"{"name":"x","expires_at":"2001-01-01T00:00:00Z"}"#,
            "in the past",
        ),
        (r#"{"name":"x","expires_at":"tomorrow"}"#, "expires_at"),
        (
            r#"{"name":"x","audience":{"cidrs":["300.0.0.0/8"]}}"#,
            "300.0.0.0/8",
        ),
        (r#"{"name":" "}"#, "name must not be empty"),
        (r#"{"name":"x","attributes":{"r":[1]}}"#, "attribute"),
        (
            r#"{"name":"x","grants":[{"table":"lake.sales.nope"}]}"#,
            "lake.sales.nope",
        ),
        (
            r#"{"name":"x","grants":[{"table":"lake.sales.orders","columns":["secret_col"]}]}"#,
            "secret_col",
        ),
        (
            r#"{"name":"x","grants":[{"table":"lake.sales.orders","masks":{"region":"sha1"}}]}"#,
            "sha1",
        ),
        (
            r#"{"name":"x","grants":[{"table":"lake.sales.orders","allow_rules":["nope_col = 1"]}]}"#,
            "nope_col",
        ),
        (
            r#"{"name":"x","grants":[{"table":"lake.sales.orders","allow_rules":["amount + 1"]}]}"#,
            "amount + 1",
        ),
        (
            r#"{"name":"x","grants":[{"table":"lake.sales.orders","allow_rules":["region = token.team"]}]}"#,
            "team",
        ),
    ];
    for (body, needle) in cases {
        let (s, v) = h.create(body).await;
        assert_eq!(s, StatusCode::BAD_REQUEST, "{body}: {v}");
        let msg = v["error"].as_str().unwrap_or_default();
        assert!(
            msg.contains(needle),
            "{body}: expected '{needle}' in '{msg}'"
        );
    }
    // None of them was stored.
    let (_, v) = h
        .call(Method::GET, "/v1/tokens", Some(&h.admin), None)
        .await;
    assert_eq!(v.as_array().unwrap().len(), 1);
}

#[tokio::test]
async fn last_admin_cannot_be_revoked() {
    let h = harness().await;
    let (s, v) = h
        .call(
            Method::DELETE,
            &format!("/v1/tokens/{}", h.admin_id),
            Some(&h.admin),
            None,
        )
        .await;
    assert_eq!(s, StatusCode::CONFLICT, "{v}");
    // With a second admin it can.
    let (s, _) = h
        .create(r#"{"name":"admin2","admin":true,"grants":[{"table":"*"}]}"#)
        .await;
    assert_eq!(s, StatusCode::CREATED);
    let (s, _) = h
        .call(
            Method::DELETE,
            &format!("/v1/tokens/{}", h.admin_id),
            Some(&h.admin),
            None,
        )
        .await;
    assert_eq!(s, StatusCode::OK);
    assert_unauthenticated(
        h.call(Method::GET, "/v1/tokens", Some(&h.admin), None)
            .await,
    );
}

#[tokio::test]
async fn request_ids() {
    let h = harness().await;
    let req = Request::builder()
        .uri("/health")
        .header("x-request-id", "abc-123")
        .body(Body::empty())
        .unwrap();
    let resp = h.app.clone().oneshot(req).await.unwrap();
    // The gateway's own id (the client's is only recorded).
    assert_eq!(resp.headers()["x-request-id"].len(), 36);
    assert_ne!(resp.headers()["x-request-id"], "abc-123");
    let req = Request::builder()
        .uri("/health")
        .body(Body::empty())
        .unwrap();
    let resp = h.app.clone().oneshot(req).await.unwrap();
    assert_eq!(resp.headers()["x-request-id"].len(), 36);
}
