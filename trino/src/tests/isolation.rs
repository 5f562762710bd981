//! One token's view and queries, isolated from every other token's: masks
//! and row order through Trino translations, query ownership, revocation,
//! hidden objects that look missing.

use super::multi_token::*;

/// Masked values: a cast error shows the mask, never the secret; hidden
/// rows never reach user expressions (Trino translations included).
#[tokio::test]
async fn masks_and_ordering_hold_through_translations() {
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

/// Queries belong to their token: other tokens and admins cannot poll or
/// cancel; a revoked token cannot poll its own query any more.
#[tokio::test]
async fn queries_belong_to_their_token_and_stop_at_revocation() {
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
        assert_eq!(get(&f.app, auth, next).await.status, StatusCode::GONE);
        assert_eq!(
            call(&f.app, Method::DELETE, next, Some(auth), &[], "")
                .await
                .status,
            StatusCode::NO_CONTENT
        );
    }
    assert_eq!(get(&f.app, EU, next).await.status, StatusCode::OK);
    // A wrong slug is a different query.
    let parts: Vec<&str> = next.rsplitn(3, '/').collect();
    let wrong = format!("{}/{}/1", parts[2], "0".repeat(32));
    assert_eq!(get(&f.app, EU, &wrong).await.status, StatusCode::GONE);
    let list = get(&f.app, OTHER, "/v1/query").await;
    assert!(!String::from_utf8_lossy(&list.body).contains(&id));
    f.tokens.revoke("eu-secret");
    let a = get(&f.app, EU, next).await;
    assert_eq!(a.status, StatusCode::UNAUTHORIZED);
    assert_eq!(a.headers["www-authenticate"], "Basic realm=\"Trino\"");
    assert!(f.started.load(Ordering::SeqCst) >= 1);
}

/// `query_max_run_time` only lowers the gateway's limit.
#[tokio::test]
async fn session_cannot_raise_the_run_time_limit() {
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
async fn hidden_and_missing_objects_answer_alike() {
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
async fn json_rows_are_escaped() {
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

/// Another token's query is indistinguishable from an unknown one on every
/// route (GET page 410, DELETE 204, GET /v1/query/{id} 404), and a foreign
/// DELETE does not cancel or touch it. Failed statements too.
#[tokio::test]
async fn foreign_queries_look_unknown() {
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
            let g1 = get(&f.app, auth, next).await;
            let g2 = get(&f.app, auth, &unknown).await;
            assert_eq!((g1.status, &g1.body), (g2.status, &g2.body));
            let d1 = call(&f.app, Method::DELETE, next, Some(auth), &[], "").await;
            let d2 = call(&f.app, Method::DELETE, &unknown, Some(auth), &[], "").await;
            assert_eq!((d1.status, &d1.body), (d2.status, &d2.body));
            let i1 = get(&f.app, auth, &format!("/v1/query/{id}")).await;
            let i2 = get(&f.app, auth, "/v1/query/20260101_000000_00001_zzzzz").await;
            assert_eq!((i1.status, &i1.body), (i2.status, &i2.body));
        }
        let q = f.queries.get(id).expect("still registered");
        assert_ne!(q.failure().map(|e| e.name), Some("USER_CANCELED"));
    }
    // The owner still reads its query and its error.
    let doc = get(&f.app, EU, path_of(bad["nextUri"].as_str().unwrap()))
        .await
        .json();
    assert_eq!(doc["error"]["errorName"], "TABLE_NOT_FOUND");
    assert!(!doc.to_string().contains("999999"));
}
