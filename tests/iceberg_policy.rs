//! The policy over a real Iceberg table (the demo warehouse, written by
//! iceberg-rust; the Python suite covers tables written by pyiceberg):
//! results equal the same query with the policy spelled out by hand, the
//! policy's predicates reach the Iceberg scan for pruning (DESIGN §4.5),
//! and the connector's field ids never reach a client.

use std::sync::Arc;

use datafusion::prelude::SessionContext;
use futures::TryStreamExt;
use sluice_connectors::{demo_catalog_config, load_iceberg_catalog};
use sluice_planner::TokenScope;
use sluice_test_support::batches::collect;
use sluice_test_support::iceberg::demo_governor;

/// `batches` as a text table.
fn pretty(batches: &[arrow::record_batch::RecordBatch]) -> String {
    arrow::util::pretty::pretty_format_batches(batches)
        .unwrap()
        .to_string()
}

/// A token that reads `order_id`, `region` and `amount` of the orders.
fn eu_reader() -> Arc<TokenScope> {
    Arc::new(
        serde_json::from_value(serde_json::json!({
            "token_id": "t", "name": "eu", "attributes": {"region": "eu"}, "max_sensitivity": 2,
            "grants": [{"table": "lake.sales.orders", "columns": ["order_id", "region", "amount"]}]
        }))
        .unwrap(),
    )
}

#[tokio::test(flavor = "multi_thread")]
async fn policy_over_iceberg_equals_the_policy_by_hand_and_prunes_the_scan() {
    let dir = tempfile::tempdir().unwrap();
    let governor = demo_governor(dir.path(), 2000, b"iceberg-test-key").await;
    let cfg = demo_catalog_config(dir.path()).unwrap();
    let token = |admin: bool| -> Arc<TokenScope> {
        Arc::new(
            serde_json::from_value(serde_json::json!({
                "token_id": "t", "name": "eu", "admin": admin,
                "attributes": {"region": "eu"}, "max_sensitivity": 2, "row_limit": 100000,
                "grants": [{"table": "lake.sales.orders",
                            "columns": ["order_id", "region", "amount", "customer_email"],
                            "masks": {"customer_email": "hash"},
                            "allow_rules": ["region = token.region"],
                            "deny_rules": ["amount > 10000"]}]
            }))
            .unwrap(),
        )
    };

    // The governed answer equals the policy written out by hand.
    let sql = "SELECT count(*) AS n, round(sum(amount), 4) AS total FROM lake.sales.orders";
    let got = collect(&governor, &token(false), sql).await;
    let raw = SessionContext::new();
    raw.register_catalog("lake", load_iceberg_catalog(&cfg).await.unwrap());
    let want = raw
        .sql(
            "SELECT count(*) AS n, round(sum(amount), 4) AS total FROM lake.sales.orders
             WHERE sensitivity <= 2 AND region = 'eu' AND (amount > 10000) IS FALSE",
        )
        .await
        .unwrap()
        .collect()
        .await
        .unwrap();
    assert_eq!(pretty(&got), pretty(&want));

    // The policy's predicates are handed to the Iceberg scan (pruning),
    // below the barrier; an admin token sees the full plan.
    let text = pretty(
        &collect(
            &governor,
            &token(true),
            "EXPLAIN SELECT order_id FROM lake.sales.orders",
        )
        .await,
    );
    let scan = text
        .lines()
        .find(|l| l.contains("IcebergScan:"))
        .unwrap_or_else(|| panic!("no Iceberg scan in\n{text}"));
    for hint in ["sensitivity <= 2", "region = \"eu\"", "amount <= 10000"] {
        assert!(
            scan.contains(hint),
            "{hint} not pushed into the scan:\n{text}"
        );
    }
    let barrier = text.find("SecureViewExec").expect("barrier in plan");
    assert!(
        text.find("IcebergScan:").unwrap() > barrier,
        "the scan must sit below the barrier:\n{text}"
    );

    // A token that is not an admin sees the barrier but nothing below it.
    let text = pretty(
        &collect(
            &governor,
            &token(false),
            "EXPLAIN SELECT order_id FROM lake.sales.orders",
        )
        .await,
    );
    assert!(text.contains("SecureViewExec"), "{text}");
    assert!(!text.contains("IcebergScan"), "{text}");
    assert!(!text.contains("sensitivity"), "{text}");
}

/// Gaps in the connector's field ids (`PARQUET:field_id`) would reveal the
/// number and position of hidden columns: neither the announced schema nor
/// the streamed batches carry them.
#[tokio::test(flavor = "multi_thread")]
async fn iceberg_field_ids_do_not_reveal_hidden_columns() {
    let dir = tempfile::tempdir().unwrap();
    let governor = demo_governor(dir.path(), 50, b"iceberg-test-key").await;
    let scope = eu_reader();
    let plan = governor
        .plan(&scope, "SELECT * FROM lake.sales.orders")
        .await
        .unwrap();
    let announced: Vec<String> = plan
        .schema()
        .fields()
        .iter()
        .map(|f| format!("{}{:?}", f.name(), f.metadata()))
        .collect();
    assert_eq!(announced, ["order_id{}", "region{}", "amount{}"]);
    let batches: Vec<_> = plan.execute().await.unwrap().try_collect().await.unwrap();
    assert!(!batches.is_empty(), "the eu rows of 50 orders");
    for batch in &batches {
        let fields: Vec<String> = batch
            .schema()
            .fields()
            .iter()
            .map(|f| format!("{}{:?}", f.name(), f.metadata()))
            .collect();
        assert_eq!(fields, ["order_id{}", "region{}", "amount{}"]);
    }
}

/// The Iceberg scan plans strings as views; DESCRIBE lists the columns in
/// the types a client receives them in, like the result schema does.
#[tokio::test(flavor = "multi_thread")]
async fn describe_lists_iceberg_columns_in_the_types_clients_receive() {
    let dir = tempfile::tempdir().unwrap();
    let governor = demo_governor(dir.path(), 50, b"iceberg-test-key").await;
    let scope = eu_reader();
    let text = pretty(&collect(&governor, &scope, "DESCRIBE lake.sales.orders").await);
    assert!(text.contains("| region      | Utf8 "), "{text}");
    assert!(!text.contains("View"), "{text}");
    let selected = governor
        .plan(&scope, "SELECT region FROM lake.sales.orders")
        .await
        .unwrap();
    assert_eq!(
        selected.schema().field(0).data_type(),
        &arrow::datatypes::DataType::Utf8
    );
}
