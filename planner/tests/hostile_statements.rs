//! Statements meant to take the gateway down, planned and run through the
//! governor as any frontend does: each is refused (or stopped) with an
//! error naming the limit, and an ordinary statement runs right after.
//! The shapes are the catalogue in `sluice_test_support::hostile`, which
//! the Flight SQL and Trino tests send over their protocols too.

use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::TryStreamExt;
use sluice_planner::limits::LimitsConfig;
use sluice_planner::{ErrorKind, Governor, TokenScope};
use sluice_test_support::hostile::{self, Expect, governor, reader};

use sluice_test_support::batches::row_count as run;

async fn still_serving(g: &Governor, s: &Arc<TokenScope>) {
    let n = run(g, s, "SELECT id FROM lake.db.numbers WHERE id < 10")
        .await
        .expect("an ordinary statement runs");
    assert_eq!(n, 10);
}

#[tokio::test]
async fn every_hostile_statement_is_refused_with_its_limit_named() {
    let g = governor(LimitsConfig::default());
    let s = reader();
    for case in hostile::statements() {
        let outcome = run(&g, &s, &case.sql).await;
        match (&case.expect, outcome) {
            (Expect::Refused(kind), Err(e)) => {
                let message: String = e.message().chars().take(300).collect();
                assert_eq!(
                    hostile::kind_name(e.kind()),
                    *kind,
                    "{}: {message}",
                    case.name
                );
                assert!(
                    e.message().len() < 1000,
                    "{}: the refusal echoes the statement",
                    case.name
                );
            }
            (Expect::Runs, Ok(_)) => {}
            (expect, outcome) => {
                let outcome: String = format!("{outcome:?}").chars().take(300).collect();
                panic!("{}: expected {expect:?}, got {outcome}", case.name)
            }
        }
        still_serving(&g, &s).await;
    }
}

#[tokio::test]
async fn statements_just_within_the_bounds_plan_and_run() {
    let g = governor(LimitsConfig::default());
    let s = reader();
    let depth = LimitsConfig::default().max_nesting_depth - 8;
    let chain = vec!["id"; depth].join(" + ");
    assert_eq!(
        run(&g, &s, &format!("SELECT {chain} FROM lake.db.numbers"))
            .await
            .unwrap(),
        100
    );
    let ors = (0..depth)
        .map(|i| format!("id = {i}"))
        .collect::<Vec<_>>()
        .join(" OR ");
    assert_eq!(
        run(
            &g,
            &s,
            &format!("SELECT id FROM lake.db.numbers WHERE {ors}")
        )
        .await
        .unwrap(),
        100
    );
    let list = (0..50_000)
        .map(|i| i.to_string())
        .collect::<Vec<_>>()
        .join(",");
    assert_eq!(
        run(
            &g,
            &s,
            &format!("SELECT id FROM lake.db.numbers WHERE id IN ({list})")
        )
        .await
        .unwrap(),
        100
    );
}

#[tokio::test]
async fn a_panic_fails_its_statement_and_nothing_else() {
    let g = governor(LimitsConfig::default());
    let s = reader();
    let e = run(&g, &s, "SELECT * FROM lake.db.broken")
        .await
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Internal, "{e}");
    assert!(!e.message().contains("connector bug"), "{}", e.message());
    still_serving(&g, &s).await;
}

#[tokio::test]
async fn a_statement_past_its_time_limit_is_stopped() {
    let g = governor(LimitsConfig {
        query_timeout: Duration::from_millis(300),
        ..LimitsConfig::default()
    });
    let s = reader();
    let t0 = Instant::now();
    let e = run(&g, &s, "SELECT count(*) FROM range(100000000000)")
        .await
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::TimeLimit, "{e}");
    assert!(
        e.message().contains("limits.query_timeout"),
        "{}",
        e.message()
    );
    assert!(t0.elapsed() < Duration::from_secs(3), "{:?}", t0.elapsed());
    still_serving(&g, &s).await;
}

#[tokio::test]
async fn a_dropped_result_stops_its_statement() {
    let g = governor(LimitsConfig::default());
    let s = reader();
    // As many endless statements as the runtime has threads, each dropped
    // after its first batch.
    let threads = std::thread::available_parallelism()
        .map_or(2, usize::from)
        .max(2);
    for _ in 0..threads * 2 {
        let plan = g
            .plan(&s, "SELECT value * 2 FROM range(100000000000)")
            .await
            .unwrap();
        let mut stream = plan.execute().await.unwrap();
        let _ = stream.try_next().await.unwrap();
        drop(stream);
    }
    let t0 = Instant::now();
    still_serving(&g, &s).await;
    assert!(t0.elapsed() < Duration::from_secs(2), "{:?}", t0.elapsed());
    assert_eq!(g.limits().admission.executing(), 0, "slots were given back");
}

#[tokio::test]
async fn a_query_over_its_memory_share_fails_naming_the_limit_unless_it_can_spill() {
    // Sorts 6M rows (about 50MB) in full, under a 16MiB share.
    let sql = "SELECT max(r) FROM (SELECT row_number() OVER (ORDER BY value DESC) AS r \
               FROM range(6000000))";
    let s = reader();
    let no_spill = governor(LimitsConfig {
        memory_limit: Some(64 << 20),
        query_memory_limit: Some(16 << 20),
        spill_limit: 0,
        ..LimitsConfig::default()
    });
    let e = run(&no_spill, &s, sql).await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::LimitExceeded, "{e}");
    assert!(
        e.message().contains("limits.query_memory_limit"),
        "{}",
        e.message()
    );
    // The failed statement's task gives its memory back as it ends.
    let t0 = Instant::now();
    while no_spill.limits().memory.reserved() > 0 && t0.elapsed() < Duration::from_secs(5) {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(
        no_spill.limits().memory.reserved(),
        0,
        "memory was given back"
    );

    let spill = tempfile::tempdir().unwrap();
    let spilling = governor(LimitsConfig {
        memory_limit: Some(64 << 20),
        query_memory_limit: Some(16 << 20),
        spill_dir: Some(spill.path().to_path_buf()),
        ..LimitsConfig::default()
    });
    assert_eq!(run(&spilling, &s, sql).await.unwrap(), 1);
}

#[tokio::test]
async fn queries_beyond_the_slots_and_queue_are_refused() {
    let g = governor(LimitsConfig {
        max_concurrent_queries: 1,
        max_queued_queries: 0,
        ..LimitsConfig::default()
    });
    let s = reader();
    let held = g
        .plan(&s, "SELECT value FROM range(100000000000)")
        .await
        .unwrap()
        .execute()
        .await
        .unwrap();
    let e = run(&g, &s, "SELECT 1").await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::TooManyQueries, "{e}");
    assert!(
        e.message().contains("limits.max_queued_queries"),
        "{}",
        e.message()
    );
    drop(held);
    // The stopped statement gives its slot back as its task ends.
    let t0 = Instant::now();
    while g.limits().admission.executing() > 0 && t0.elapsed() < Duration::from_secs(5) {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    still_serving(&g, &s).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_function_computing_for_long_in_one_batch_stops_at_the_time_limit() {
    let g = governor(LimitsConfig {
        query_timeout: Duration::from_millis(500),
        ..LimitsConfig::default()
    });
    let s = reader();
    // Minutes of work in one batch: 400 rows of two 9,000-character strings.
    let hog = "SELECT sum(levenshtein(repeat('a', 9000), repeat('b', 8990) || CAST(n AS VARCHAR))) \
               FROM unnest(range(1, 400)) AS t(n)";
    let threads = sluice_planner::limits::run::threads();
    let t0 = Instant::now();
    let hogs: Vec<_> = (0..threads)
        .map(|_| {
            let (g, s) = (g.clone(), Arc::clone(&s));
            tokio::spawn(async move { run(&g, &s, hog).await })
        })
        .collect();
    for h in hogs {
        let e = h.await.unwrap().unwrap_err();
        assert_eq!(e.kind(), ErrorKind::TimeLimit, "{e}");
    }
    // Each gave its thread back within about a row of work.
    still_serving(&g, &s).await;
    assert!(t0.elapsed() < Duration::from_secs(10), "{:?}", t0.elapsed());
}

#[tokio::test]
async fn a_tokens_own_query_timeout_applies() {
    let g = governor(LimitsConfig::default());
    let hasty = sluice_test_support::scope(serde_json::json!({
        "token_id": "t-hasty", "name": "hasty", "query_timeout": "300ms",
        "grants": [{"table": "lake.db.*"}]
    }));
    let t0 = Instant::now();
    let e = run(&g, &hasty, "SELECT count(*) FROM range(100000000000)")
        .await
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::TimeLimit, "{e}");
    assert!(e.message().contains("300ms"), "{}", e.message());
    assert!(t0.elapsed() < Duration::from_secs(3));
}

#[tokio::test]
async fn only_a_governed_run_gets_memory() {
    let sql = "SELECT id FROM lake.db.numbers ORDER BY id DESC";
    let g = governor(LimitsConfig::default());
    let s = reader();
    // A session used outside the governed run (metadata, introspection)
    // has no memory to execute with: nothing runs outside the cap.
    let outside = g.context(&s).sql(sql).await.unwrap().collect().await;
    let e = outside.unwrap_err().to_string();
    assert!(e.contains("Resources exhausted"), "{e}");
    assert!(run(&g, &s, sql).await.unwrap() > 0);
}
