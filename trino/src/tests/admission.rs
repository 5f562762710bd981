//! Admission and lifetimes of queries: what one token can hold (slots,
//! queued queries, result pages, failed statements, watchdogs) is bounded,
//! so it cannot starve the others.

use super::multi_token::*;
use crate::query::State;

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
                    a = get(app, auth, &last_path).await;
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

/// `max_queued_queries` holds when many POSTs arrive at once.
#[tokio::test]
async fn the_queue_bound_holds_under_concurrent_posts() {
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

/// One token holding `max_concurrent_queries` slow queries does not queue
/// everybody else's: each token gets a share of the execution slots.
#[tokio::test]
async fn one_token_cannot_take_every_slot() {
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

/// A query holds a slot of admission until its pages are fetched, not only
/// while it executes: a token that POSTs and never polls is refused once
/// it holds its share, instead of accumulating pages until
/// `client_timeout`.
#[tokio::test]
async fn unpolled_queries_count_until_fetched() {
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

/// A result whose end was folded into its last data page still counts while
/// that page is cached, and retrying the page does not keep it forever:
/// one token cannot keep result pages in memory beyond
/// `max_concurrent_queries` + `max_queued_queries`.
#[tokio::test]
async fn cached_last_pages_count_for_admission() {
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
            let a = get(&f.app, EU, path).await;
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

/// Statements that failed before they ran are kept for their first poll
/// only within the same bounds, and their echoed error message is cut.
#[tokio::test]
async fn failed_statements_are_kept_within_bounds() {
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

/// The run-time watchdog of a query ends with the query, not when the
/// limit would have run out.
#[tokio::test]
async fn watchdogs_end_with_their_queries() {
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

/// The watchdog never fails a query whose producer already produced every
/// page: a slow reader of a complete result gets all its rows.
#[tokio::test]
async fn slow_readers_of_complete_results_keep_their_rows() {
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
        let doc = get(&f.app, EU, &p).await.json();
        next = doc["nextUri"].as_str().map(|u| path_of(u).to_string());
        last = doc;
    }
    assert_eq!(
        last["stats"]["state"], "FINISHED",
        "a fully produced result failed while the client read it: {last}"
    );
}

/// An expression that computes for long over one batch (`levenshtein` of
/// long strings, one row after the other) stops at DELETE and at the time
/// limit and gives its execution thread and permits back: the bounded
/// function asks between rows whether its statement may go on.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scalar_hog_is_stopped_by_cancel_and_time_limit() {
    let f = fixture(TrinoConfig {
        max_run_time: Duration::from_secs(30),
        ..quick()
    });
    let threads = std::thread::available_parallelism()
        .map(usize::from)
        .unwrap_or(2);
    // Minutes of work in one batch: 400 rows of two 9,000-character strings.
    let hog = "SELECT sum(levenshtein(repeat('a', 9000), repeat('b', 8990) || CAST(n AS VARCHAR))) \
               FROM unnest(range(1, 400)) AS t(n)";
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
