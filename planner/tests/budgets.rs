//! Per-token cost budgets through the governor, as every frontend plans
//! and runs statements: a spent budget refuses the token's next statement
//! (before planning and before running), names the budget and when it
//! resets, and leaves other tokens alone; what a run read through its
//! secure views and returned is charged when its stream ends.

use std::sync::Arc;

use futures::TryStreamExt;
use sluice_planner::{ErrorKind, TokenScope};
use sluice_test_support::{governor, scope};

use sluice_test_support::batches::row_count as run;

fn budgeted(id: &str, budget: serde_json::Value) -> Arc<TokenScope> {
    scope(serde_json::json!({
        "token_id": id, "name": id, "max_sensitivity": 9,
        "grants": [{"table": "lake.sales.orders", "columns": ["order_id", "region", "amount"]}],
        "budget": budget,
    }))
}

#[tokio::test]
async fn a_spent_row_budget_refuses_the_next_statement_and_names_it() {
    let g = governor();
    let s = budgeted("rows", serde_json::json!({"rows_returned_per_hour": 5}));
    let other = budgeted("other", serde_json::json!({"rows_returned_per_hour": 5}));
    let sql = "SELECT order_id FROM lake.sales.orders ORDER BY order_id LIMIT 3";
    assert_eq!(run(&g, &s, sql).await.unwrap(), 3);
    // Started within budget (3 of 5): runs to its end, and is charged in full.
    assert_eq!(run(&g, &s, sql).await.unwrap(), 3);
    let e = run(&g, &s, sql).await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::BudgetSpent);
    let m = e.message();
    assert!(m.contains("budget.rows_returned_per_hour (6 of 5)"), "{m}");
    assert!(m.contains("statements run again at"), "{m}");
    assert!(
        e.retry_after().is_some_and(|s| (1..=3600).contains(&s)),
        "{m}"
    );
    let state = g.limits().ledger.state("rows", chrono::Utc::now());
    assert_eq!(state.hour.rows_returned, 6);
    // Other tokens keep their own budgets.
    assert_eq!(run(&g, &other, sql).await.unwrap(), 3);
}

#[tokio::test]
async fn a_plan_made_within_budget_is_refused_when_run_after_it_is_spent() {
    let g = governor();
    let s = budgeted("late", serde_json::json!({"rows_returned_per_day": 2}));
    let planned = g
        .plan(&s, "SELECT order_id FROM lake.sales.orders LIMIT 1")
        .await
        .unwrap();
    run(&g, &s, "SELECT order_id FROM lake.sales.orders LIMIT 2")
        .await
        .unwrap();
    let e = planned.execute().await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::BudgetSpent);
    assert!(
        e.message().contains("rows_returned_per_day (2 of 2)"),
        "{}",
        e.message()
    );
}

#[tokio::test]
async fn bytes_read_through_secure_views_are_charged_and_bound_the_next_statement() {
    let g = governor();
    let s = budgeted("bytes", serde_json::json!({"bytes_scanned_per_hour": 1}));
    // The statement stops once the token is over its budget: one
    // statement cannot read past it.
    let e = run(&g, &s, "SELECT count(*) FROM lake.sales.orders")
        .await
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::BudgetSpent);
    assert!(
        e.message().contains("budget.bytes_scanned_per_hour (")
            && e.message().contains("while the statement ran"),
        "{}",
        e.message()
    );
    assert!(e.retry_after().is_some());
    let spent = g.limits().ledger.state("bytes", chrono::Utc::now());
    assert_eq!(spent.hour.rows_returned, 0);
    assert!(
        spent.hour.bytes_scanned > 0,
        "what it read is charged: {spent:?}"
    );
    let e = run(&g, &s, "SELECT 1").await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::BudgetSpent);
    assert!(
        e.message().contains("bytes_scanned_per_hour"),
        "{}",
        e.message()
    );
    // Rows the policy hides cost nothing (their number would show).
    let none = scope(serde_json::json!({
        "token_id": "none", "name": "none", "max_sensitivity": 9,
        "grants": [{"table": "lake.sales.orders", "columns": ["order_id"],
                    "allow_rules": ["order_id < 0"]}],
    }));
    assert_eq!(
        run(&g, &none, "SELECT order_id FROM lake.sales.orders")
            .await
            .unwrap(),
        0
    );
    assert_eq!(
        g.limits()
            .ledger
            .state("none", chrono::Utc::now())
            .hour
            .bytes_scanned,
        0
    );
    // An aggregate within budget returns one row and is charged the
    // table it read.
    let agg = budgeted("agg", serde_json::json!({"bytes_scanned_per_hour": "1GiB"}));
    run(&g, &agg, "SELECT count(*) FROM lake.sales.orders")
        .await
        .unwrap();
    let spent = g.limits().ledger.state("agg", chrono::Utc::now());
    assert_eq!(spent.hour.rows_returned, 1);
    assert!(spent.hour.bytes_scanned > 0, "{spent:?}");
    // A statement that reads no table costs no bytes.
    let free = budgeted("free", serde_json::json!({"bytes_scanned_per_day": "1KiB"}));
    run(&g, &free, "SELECT 1 + 1").await.unwrap();
    assert_eq!(
        g.limits()
            .ledger
            .state("free", chrono::Utc::now())
            .day
            .bytes_scanned,
        0
    );
}

#[tokio::test]
async fn a_stream_dropped_early_is_charged_what_it_returned() {
    let g = governor();
    let s = budgeted(
        "dropped",
        serde_json::json!({"rows_returned_per_hour": 1000}),
    );
    let mut stream = g
        .plan(&s, "SELECT order_id FROM lake.sales.orders")
        .await
        .unwrap()
        .execute()
        .await
        .unwrap();
    let first = stream.try_next().await.unwrap().expect("a batch");
    drop(stream);
    let spent = g.limits().ledger.state("dropped", chrono::Utc::now());
    assert_eq!(spent.hour.rows_returned, first.num_rows() as u64);
}
