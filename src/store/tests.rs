//! Store round-trips on SQLite (always) and Postgres (when
//! `SLUICE_TEST_POSTGRES_URL` is set).

use std::net::IpAddr;

use chrono::{Duration as ChronoDuration, Utc};
use sluice_planner::{AuthFailureKind, Authenticator};

use super::*;
use crate::auth::StoreAuthenticator;
use crate::token::TokenSpec;

fn analyst() -> TokenSpec {
    TokenSpec::from_json(
        br#"{"name": "eu-analyst", "expires_at": "2099-01-01T00:00:00Z",
             "attributes": {"region": "eu"}, "max_sensitivity": 2,
             "audience": {"cidrs": ["127.0.0.0/8"]}, "rate_limit": 600,
             "grants": [{"table": "lake.sales.orders", "columns": ["order_id", "region"],
                         "masks": {"region": "partial(1,0)"}, "allow_rules": ["region = token.region"],
                         "deny_rules": ["order_id > 10"]}]}"#,
    )
    .unwrap()
}

/// The whole lifecycle against one store.
async fn round_trip(store: &Store) {
    store.migrate().await.unwrap();
    // Migrations are idempotent.
    store.migrate().await.unwrap();
    store.ping().await.unwrap();

    // The ticket key is generated once and then stable.
    let k1 = store.ticket_key().await.unwrap();
    let k2 = store.ticket_key().await.unwrap();
    assert_eq!(k1.len(), 32);
    assert_eq!(k1, k2);

    let now = Utc::now();
    assert_eq!(store.count_active_admins(now).await.unwrap(), 0);
    let admin = store
        .create_token(&TokenSpec::admin("admin", 10_000), "init", 10_000)
        .await
        .unwrap();
    assert_eq!(store.count_active_admins(now).await.unwrap(), 1);

    let spec = analyst();
    let created = store.create_token(&spec, "token:x", 77).await.unwrap();
    assert!(crate::token::looks_like_secret(&created.secret));
    let rec = store.get_token(&created.id).await.unwrap().unwrap();
    assert_eq!(rec.name, "eu-analyst");
    assert_eq!(rec.row_limit, 77, "default row limit applies");
    assert_eq!(rec.grants, spec.grants);
    assert_eq!(rec.attributes, spec.attributes);
    assert_eq!(rec.audience, spec.audience);
    assert_eq!(rec.expires_at, spec.expires_at);
    assert_eq!(rec.rate_limit, Some(600));
    assert_eq!(rec.max_sensitivity, 2);
    assert!(!rec.admin && rec.revoked_at.is_none());
    assert_eq!(rec.created_by, "token:x");

    // Only the hash is stored.
    let (hash, found) = store
        .find_by_hash(&crate::token::hash_secret(&created.secret))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(found.id, created.id);
    assert_ne!(hash, created.secret);
    assert!(store.find_by_hash("00").await.unwrap().is_none());

    let all = store.list_tokens().await.unwrap();
    assert_eq!(all.len(), 2);
    // Ordered by creation time (ties, within the clock's resolution, by id).
    assert!(all[0].created_at <= all[1].created_at);
    assert!(all.iter().any(|t| t.id == admin.id));

    // Authentication, on every call.
    let auth = StoreAuthenticator::new(store.clone());
    let local: IpAddr = "127.0.0.1".parse().unwrap();
    let scope = auth
        .authenticate(&created.secret, Some(local))
        .await
        .unwrap();
    assert_eq!(scope.token_id, created.id);
    assert_eq!(scope.row_limit, 77);
    let kind = |r: Result<_, sluice_planner::AuthFailure>| r.map(|_| ()).unwrap_err().kind;
    assert_eq!(
        kind(
            auth.authenticate(&created.secret, Some("10.0.0.1".parse().unwrap()))
                .await
        ),
        AuthFailureKind::Audience
    );
    assert_eq!(
        kind(auth.authenticate(&created.secret, None).await),
        AuthFailureKind::Audience
    );
    assert_eq!(
        kind(
            auth.authenticate(crate::token::TokenSecret::generate().expose(), Some(local))
                .await
        ),
        AuthFailureKind::Unknown
    );
    assert_eq!(
        kind(auth.authenticate("nope", Some(local)).await),
        AuthFailureKind::Malformed
    );

    // Expired tokens fail.
    let mut short = analyst();
    short.name = "short".into();
    short.expires_at = Some(Utc::now() + ChronoDuration::milliseconds(50));
    let short = store.create_token(&short, "t", 5).await.unwrap();
    tokio::time::sleep(std::time::Duration::from_millis(80)).await;
    assert_eq!(
        kind(auth.authenticate(&short.secret, Some(local)).await),
        AuthFailureKind::Expired
    );

    // Revocation applies at the next call and is idempotent.
    let at = Utc::now();
    let revoked = store.revoke_token(&created.id, at).await.unwrap().unwrap();
    assert_eq!(
        revoked.revoked_at.unwrap().timestamp_millis(),
        at.timestamp_millis()
    );
    let again = store
        .revoke_token(&created.id, at + ChronoDuration::seconds(5))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(again.revoked_at, revoked.revoked_at);
    assert_eq!(
        kind(auth.authenticate(&created.secret, Some(local)).await),
        AuthFailureKind::Revoked
    );
    assert!(store.revoke_token("missing", at).await.unwrap().is_none());
    assert!(store.get_token("missing").await.unwrap().is_none());

    store.revoke_token(&admin.id, at).await.unwrap();
    assert_eq!(store.count_active_admins(Utc::now()).await.unwrap(), 0);

    // Meta values are first-writer-wins.
    assert_eq!(store.meta_insert_if_absent("k", "a").await.unwrap(), "a");
    assert_eq!(store.meta_insert_if_absent("k", "b").await.unwrap(), "a");
}

#[tokio::test]
async fn sqlite_round_trip() {
    let dir = tempfile::tempdir().unwrap();
    // The parent directory does not exist yet: the store creates it.
    let url = format!("sqlite://{}/nested/sluice.db", dir.path().display());
    let store = Store::connect(&url).await.unwrap();
    assert_eq!(store.kind(), "sqlite");
    round_trip(&store).await;
    store.close().await;

    // Reopening sees the same data and the same ticket key.
    let store = Store::connect(&url).await.unwrap();
    store.migrate().await.unwrap();
    assert_eq!(store.list_tokens().await.unwrap().len(), 3);
}

#[tokio::test]
async fn sqlite_in_memory() {
    let store = Store::connect("sqlite::memory:").await.unwrap();
    round_trip(&store).await;
}

#[tokio::test]
async fn unsupported_store_url() {
    let err = Store::connect("mysql://u:pw@h/db")
        .await
        .unwrap_err()
        .to_string();
    assert!(err.contains("unsupported") && !err.contains("pw"), "{err}");
}

#[tokio::test]
async fn postgres_round_trip() {
    let Ok(url) = std::env::var("SLUICE_TEST_POSTGRES_URL") else {
        eprintln!(
            "SKIPPED postgres_round_trip: set SLUICE_TEST_POSTGRES_URL=postgres://… to run it"
        );
        return;
    };
    use sqlx::ConnectOptions as _;
    use sqlx::postgres::PgConnectOptions;
    // A private schema per run, so parallel runs never share tables.
    let schema = format!("sluice_test_{}", uuid::Uuid::new_v4().simple());
    let admin_pool = PgPool::connect(&url)
        .await
        .expect("connect to SLUICE_TEST_POSTGRES_URL");
    sqlx::query(&format!("CREATE SCHEMA {schema}"))
        .execute(&admin_pool)
        .await
        .unwrap();
    let opts = PgConnectOptions::from_str(&url)
        .unwrap()
        .options([("search_path", schema.as_str())])
        .disable_statement_logging();
    let pool = PgPoolOptions::new()
        .max_connections(4)
        .connect_with(opts)
        .await
        .unwrap();
    let store = Store::from_pg_pool(pool);
    assert_eq!(store.kind(), "postgres");
    round_trip(&store).await;
    store.close().await;
    sqlx::query(&format!("DROP SCHEMA {schema} CASCADE"))
        .execute(&admin_pool)
        .await
        .unwrap();
}
