//! Re-review probe over a real Iceberg table: the secure view must not pass
//! the connector's field ids (`PARQUET:field_id`) to clients, since gaps in
//! them reveal the number and position of hidden columns.

use std::collections::HashMap;
use std::sync::Arc;

use futures::TryStreamExt;
use sluice_connectors::{build_demo_warehouse, demo_catalog_config, load_iceberg_catalog};
use sluice_planner::{CatalogEntry, Governor, TableClass, TokenScope};

#[tokio::test(flavor = "multi_thread")]
async fn iceberg_field_ids_do_not_reveal_hidden_columns() {
    let dir = tempfile::tempdir().unwrap();
    build_demo_warehouse(dir.path(), 50).await.unwrap();
    let cfg = demo_catalog_config(dir.path()).unwrap();
    let mut classes = HashMap::new();
    classes.insert(
        "sales.orders".to_string(),
        TableClass {
            sensitivity_column: Some("sensitivity".into()),
            attachment_columns: vec!["attachment".into()],
            vector_columns: None,
        },
    );
    let mut governor = Governor::new().with_mask_key(b"iceberg-test-key");
    governor.add_catalog(
        "lake",
        CatalogEntry {
            provider: load_iceberg_catalog(&cfg).await.unwrap(),
            tables: classes,
        },
    );
    let scope: Arc<TokenScope> = Arc::new(
        serde_json::from_value(serde_json::json!({
            "token_id": "t", "name": "eu", "attributes": {"region": "eu"}, "max_sensitivity": 2,
            "grants": [{"table": "lake.sales.orders", "columns": ["order_id", "region", "amount"]}]
        }))
        .unwrap(),
    );
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
    let stream = plan.execute().await.unwrap();
    let stream_schema = futures::StreamExt::boxed(stream.map_ok(|b| b.schema()))
        .try_collect::<Vec<_>>()
        .await
        .unwrap();
    eprintln!("announced: {announced:?}");
    eprintln!(
        "first batch: {:?}",
        stream_schema.first().map(|s| s
            .fields()
            .iter()
            .map(|f| format!("{}{:?}", f.name(), f.metadata()))
            .collect::<Vec<_>>())
    );
    assert!(
        plan_fields_clean(&announced),
        "the announced schema carries Iceberg field ids: {announced:?}"
    );
}

fn plan_fields_clean(fields: &[String]) -> bool {
    fields.iter().all(|f| !f.contains("field_id"))
}
