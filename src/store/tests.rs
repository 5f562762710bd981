//! Store round-trips on SQLite (always) and Postgres (when
//! `SLUICE_TEST_POSTGRES_URL` is set; `scripts/test.sh` sets it, and under
//! `CI` its absence is a failure, not a skip).

use std::net::IpAddr;

use chrono::{Duration as ChronoDuration, Utc};
use sluice_planner::{AuthFailureKind, Authenticator};

use super::*;
use crate::auth::StoreAuthenticator;
use sluice_planner::token::TokenSpec;

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
    assert!(sluice_planner::token::looks_like_secret(&created.secret));
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
        .find_by_hash(&sluice_planner::token::hash_secret(&created.secret))
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
            auth.authenticate(
                sluice_planner::token::generate_secret().expose(),
                Some(local)
            )
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

    export_jobs(store, &admin.id).await;
    audit_log(store).await;
}

/// Audit records: written (NUL characters, which Postgres refuses, are
/// replaced), read back with filters, pruned.
async fn audit_log(store: &Store) {
    use crate::audit::{Protocol, RequestInfo, to_row};
    use crate::store::audit::AuditFilter;
    use sluice_planner::{AuditFacts, Outcome};
    let info = |id: &str| RequestInfo {
        request_id: id.to_string(),
        client_request_id: Some("client\0id".into()),
        trace_id: None,
        protocol: Protocol::FlightSql,
        action: "DoGet".into(),
        client: Some("127.0.0.1".parse().unwrap()),
        started: std::time::Instant::now(),
    };
    let facts = AuditFacts {
        token_id: Some("t1".into()),
        statement: Some("SELECT 1 AS \"x\0y\" WHERE a = 'secret\0'".into()),
        error: Some("bad \0 thing".into()),
        rows: 3,
        ..AuditFacts::default()
    };
    let rows = vec![
        to_row(&info("r1"), facts.clone(), Outcome::Ok),
        to_row(&info("r2"), AuditFacts::default(), Outcome::Unauthenticated),
    ];
    assert!(
        rows.iter()
            .all(|r| !format!("{r:?}").contains("\\0") && !format!("{r:?}").contains('\0'))
    );
    store.insert_audit(&rows).await.unwrap();
    let all = store.audit_rows(&AuditFilter::default(), 10).await.unwrap();
    assert_eq!(all.len(), 2);
    assert_eq!(
        all[0].statement.as_deref(),
        Some("select ? as \"x\u{FFFD}y\" where a = ?")
    );
    let only = AuditFilter {
        equals: vec![("token_id", "t1".into())],
        ..AuditFilter::default()
    };
    let got = store.audit_rows(&only, 10).await.unwrap();
    assert_eq!(got.len(), 1);
    assert_eq!((got[0].request_id.as_str(), got[0].rows_out), ("r1", 3));
    assert_eq!(
        store
            .audit_rows(&AuditFilter::default(), 1)
            .await
            .unwrap()
            .len(),
        1
    );
    let future = AuditFilter {
        since_ms: Some(Utc::now().timestamp_millis() + 60_000),
        ..AuditFilter::default()
    };
    assert!(store.audit_rows(&future, 10).await.unwrap().is_empty());
    // A batch of several multi-row statements: every record lands, with
    // its own values.
    let batch: Vec<_> = (0..150)
        .map(|i| {
            let facts = AuditFacts {
                rows: i,
                ..AuditFacts::default()
            };
            to_row(&info(&format!("b{i}")), facts, Outcome::Ok)
        })
        .collect();
    store.insert_audit(&batch).await.unwrap();
    let all = store
        .audit_rows(&AuditFilter::default(), 1000)
        .await
        .unwrap();
    assert_eq!(all.len(), 152);
    let mut written: Vec<(String, i64)> = all[2..]
        .iter()
        .map(|r| (r.request_id.clone(), r.rows_out))
        .collect();
    written.sort_by_key(|(_, rows)| *rows);
    let expected: Vec<(String, i64)> = (0..150).map(|i| (format!("b{i}"), i)).collect();
    assert_eq!(written, expected);
    assert_eq!(
        store
            .prune_audit(Utc::now().timestamp_millis() + 1)
            .await
            .unwrap(),
        152
    );
}

/// The export job life cycle: queue, claim once, heartbeat, cancel,
/// leftovers, stale runners, one live job per destination.
async fn export_jobs(store: &Store, token_id: &str) {
    use super::exports::{Enqueued, JobResult, JobState, NewJob};
    use sluice_connectors::export::Leftover;
    let job = |id: &str, dest: &str| NewJob {
        id: id.into(),
        token_id: token_id.into(),
        statement: "SELECT 1".into(),
        destination: dest.into(),
        compression: "zstd".into(),
        max_file_bytes: 1 << 20,
        row_limit: 10,
    };
    let t0 = Utc::now();
    let enqueue = |j: NewJob, at| async move { store.enqueue_export_job(&j, at, 10, 10).await };
    assert_eq!(
        enqueue(job("j1", "s3://b/a"), t0).await.unwrap(),
        Enqueued::Queued
    );
    enqueue(job("j2", "s3://b/c"), t0 + ChronoDuration::milliseconds(1))
        .await
        .unwrap();
    // Limits: per token, then the whole queue.
    let over = |per_token, queued| async move {
        store
            .enqueue_export_job(&job("jx", "s3://b/x"), t0, per_token, queued)
            .await
            .unwrap()
    };
    assert_eq!(over(2, 10).await, Enqueued::TokenBusy);
    assert_eq!(over(10, 2).await, Enqueued::QueueFull);
    assert!(store.export_job("jx").await.unwrap().is_none());
    // A second live job for the same destination is refused by the store.
    let dup = enqueue(job("j3", "s3://b/a"), t0).await;
    assert!(
        matches!(&dup, Err(Error::Store(sqlx::Error::Database(d))) if d.is_unique_violation()),
        "{dup:?}"
    );
    assert_eq!(store.live_export_destinations().await.unwrap().len(), 2);

    // Oldest first, each claimed once.
    let c1 = store
        .claim_export_job("i1", Utc::now(), 10)
        .await
        .unwrap()
        .unwrap();
    assert_eq!((c1.id.as_str(), c1.state), ("j1", JobState::Running));
    let c2 = store
        .claim_export_job("i2", Utc::now(), 10)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(c2.id, "j2");
    assert!(
        store
            .claim_export_job("i1", Utc::now(), 10)
            .await
            .unwrap()
            .is_none()
    );

    // Heartbeats record progress and carry cancellations.
    assert!(
        !store
            .export_heartbeat("j1", 5, 50, 1, Utc::now())
            .await
            .unwrap()
    );
    let j1 = store.export_job("j1").await.unwrap().unwrap();
    assert_eq!((j1.rows, j1.bytes, j1.files), (5, 50, 1));
    let j1 = store
        .cancel_export_job("j1", Utc::now())
        .await
        .unwrap()
        .unwrap();
    assert!(j1.cancel_requested && j1.state == JobState::Running);
    assert!(
        store
            .export_heartbeat("j1", 6, 60, 1, Utc::now())
            .await
            .unwrap()
    );

    // Leftovers are recorded, listed and forgotten.
    let l = |p: &str, id: Option<&str>| Leftover {
        path: p.into(),
        upload_id: id.map(str::to_string),
    };
    store
        .record_export_leftover("j1", &l("a/part-0", Some("u1")))
        .await
        .unwrap();
    store
        .record_export_leftover("j1", &l("a/part-1", Some("u2")))
        .await
        .unwrap();
    // The same key as an upload and as a committed object: two leftovers.
    for _ in 0..2 {
        store
            .record_export_leftover("j1", &l("a/part-1", None))
            .await
            .unwrap();
    }
    assert!(
        store.export_jobs_to_clean().await.unwrap().is_empty(),
        "j1 is still running"
    );
    let ended = store
        .finish_export_job("j1", JobState::Cancelled, &JobResult::default(), Utc::now())
        .await
        .unwrap();
    assert!(ended);
    // Ending twice does nothing.
    assert!(
        !store
            .finish_export_job("j1", JobState::Succeeded, &JobResult::default(), Utc::now())
            .await
            .unwrap()
    );
    assert_eq!(
        store.export_jobs_to_clean().await.unwrap(),
        vec![("j1".to_string(), "s3://b/a".to_string())]
    );
    store
        .forget_export_leftovers("j1", Some(&[l("a/part-0", Some("u1"))]))
        .await
        .unwrap();
    assert_eq!(
        store.export_leftovers("j1").await.unwrap(),
        vec![l("a/part-1", None), l("a/part-1", Some("u2"))]
    );
    store.forget_export_leftovers("j1", None).await.unwrap();
    assert!(store.export_jobs_to_clean().await.unwrap().is_empty());

    // The destination is free again once j1 ended.
    enqueue(job("j4", "s3://b/a"), Utc::now()).await.unwrap();
    let j4 = store
        .cancel_export_job("j4", Utc::now())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        j4.state,
        JobState::Cancelled,
        "a queued job is cancelled at once"
    );

    // A runner that stopped reporting: its job fails.
    let stale = store
        .fail_stale_export_jobs(Utc::now() + ChronoDuration::seconds(1), Utc::now())
        .await
        .unwrap();
    assert_eq!(stale, vec!["j2".to_string()]);
    let j2 = store.export_job("j2").await.unwrap().unwrap();
    assert_eq!(j2.state, JobState::Failed);
    assert!(j2.error.unwrap().contains("stopped"));

    let mine = store.list_export_jobs(Some(token_id), 10).await.unwrap();
    assert_eq!(mine.len(), 3);
    assert_eq!(mine[0].id, "j4", "newest first");
    assert!(
        store
            .list_export_jobs(Some("other"), 10)
            .await
            .unwrap()
            .is_empty()
    );

    // Retention: ended jobs without leftovers go.
    store
        .record_export_leftover("j2", &l("c/part-0", None))
        .await
        .unwrap();
    let gone = store
        .delete_old_export_jobs(Utc::now() + ChronoDuration::seconds(5))
        .await
        .unwrap();
    assert_eq!(gone, 2, "j1 and j4; j2 still has a leftover");
    assert!(store.export_job("j2").await.unwrap().is_some());
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
        assert!(
            std::env::var_os("CI").is_none(),
            "SLUICE_TEST_POSTGRES_URL is not set: under CI the Postgres store must be tested \
             (scripts/test.sh starts a server and sets it)"
        );
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

/// A SQLite file store with one token, and that token's secret hash.
async fn file_store_with_token(dir: &tempfile::TempDir) -> (String, Store, String, String) {
    let url = format!("sqlite://{}/sluice.db", dir.path().display());
    let store = Store::connect(&url).await.unwrap();
    store.migrate().await.unwrap();
    let created = store.create_token(&analyst(), "t", 5).await.unwrap();
    let hash = sluice_planner::token::hash_secret(&created.secret);
    (url, store, created.id, hash)
}

#[tokio::test]
async fn token_lookups_see_a_revocation_written_through_another_connection_at_once() {
    let dir = tempfile::tempdir().unwrap();
    let (url, gateway, id, hash) = file_store_with_token(&dir).await;
    // The lookup connections are open and have read the token.
    let (_, before) = gateway.find_by_hash(&hash).await.unwrap().unwrap();
    assert!(before.revoked_at.is_none());
    // Another handle on the same file (as `sluice token revoke` from
    // another process would be) writes through its own connections.
    let cli = Store::connect(&url).await.unwrap();
    cli.revoke_token(&id, Utc::now()).await.unwrap().unwrap();
    cli.close().await;
    for _ in 0..4 {
        let (_, after) = gateway.find_by_hash(&hash).await.unwrap().unwrap();
        assert!(
            after.revoked_at.is_some(),
            "the next lookup sees the revocation"
        );
    }
}

#[tokio::test]
async fn a_lookup_abandoned_midway_costs_nothing_but_its_connection() {
    use futures::FutureExt as _;
    let dir = tempfile::tempdir().unwrap();
    let (_url, store, id, hash) = file_store_with_token(&dir).await;
    // The held connections are open.
    store.find_by_hash(&hash).await.unwrap().unwrap();
    let reader = store
        .tokens
        .as_ref()
        .expect("a file store reads tokens through held connections");
    assert_eq!(reader.idle(), 1);
    // Clients that go away drop their request's lookup at any point,
    // including while the query runs on the connection's worker (how far
    // each got depends on that thread: every lookup that finished must
    // have found the token, and whatever was abandoned must not matter).
    for k in 0..50 {
        let wait = std::time::Duration::from_micros(k * 10);
        if let Ok(done) = tokio::time::timeout(wait, store.find_by_hash(&hash)).await {
            assert_eq!(done.unwrap().unwrap().1.id, id);
        }
        let _ = store.find_by_hash(&hash).now_or_never();
    }
    let (_, found) = store.find_by_hash(&hash).await.unwrap().unwrap();
    assert_eq!(found.id, id);
    // No abandoned read holds an old snapshot: a write is seen at once.
    store.revoke_token(&id, Utc::now()).await.unwrap().unwrap();
    let (_, found) = store.find_by_hash(&hash).await.unwrap().unwrap();
    assert!(found.revoked_at.is_some());
    store.close().await;
}

#[tokio::test]
async fn a_closed_store_refuses_lookups_and_creates_no_file() {
    let dir = tempfile::tempdir().unwrap();
    let (_url, store, _id, hash) = file_store_with_token(&dir).await;
    store.find_by_hash(&hash).await.unwrap().unwrap();
    store.close().await;
    let file = dir.path().join("sluice.db");
    std::fs::remove_file(&file).unwrap();
    assert!(store.find_by_hash(&hash).await.is_err());
    assert!(!file.exists(), "a lookup after close reopened the store");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_token_lookups_all_get_their_answer() {
    let dir = tempfile::tempdir().unwrap();
    let (_url, store, id, hash) = file_store_with_token(&dir).await;
    let lookups = (0..64).map(|i| {
        let (store, hash) = (store.clone(), hash.clone());
        tokio::spawn(async move {
            if i % 2 == 0 {
                store.find_by_hash(&hash).await.unwrap().map(|(_, r)| r.id)
            } else {
                store.find_by_hash("00").await.unwrap().map(|(_, r)| r.id)
            }
        })
    });
    let answers = futures::future::join_all(lookups).await;
    for (i, answer) in answers.into_iter().enumerate() {
        let expected = (i % 2 == 0).then(|| id.clone());
        assert_eq!(answer.unwrap(), expected);
    }
}
