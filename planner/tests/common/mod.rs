//! A small governed catalog for planner tests: `lake.sales.orders`,
//! `lake.sales.customers`, `lake.hr.salaries` as in-memory tables, and a
//! set of named tokens.

#![allow(dead_code)]

use std::collections::HashMap;
use std::sync::Arc;

use arrow::array::{
    ArrayRef, BinaryArray, Float32Builder, Float64Array, Int32Array, Int64Array, ListBuilder,
    RecordBatch, StringArray,
};
use arrow::datatypes::{DataType, Field, Schema};
use datafusion::catalog::{
    CatalogProvider, MemoryCatalogProvider, MemorySchemaProvider, SchemaProvider,
};
use datafusion::datasource::MemTable;
use sluice_planner::{CatalogEntry, Governor, TableClass, TokenScope};

/// The test catalog without any policy.
pub fn raw_catalog() -> Arc<dyn CatalogProvider> {
    let catalog = MemoryCatalogProvider::new();
    let sales = MemorySchemaProvider::new();
    sales
        .register_table("orders".into(), table(orders()))
        .unwrap();
    sales
        .register_table("customers".into(), table(customers()))
        .unwrap();
    let hr = MemorySchemaProvider::new();
    hr.register_table("salaries".into(), table(salaries()))
        .unwrap();
    catalog.register_schema("sales", Arc::new(sales)).unwrap();
    catalog.register_schema("hr", Arc::new(hr)).unwrap();
    Arc::new(catalog)
}

/// Builds the governor over the test catalog.
pub fn governor() -> Governor {
    let mut classes = HashMap::new();
    classes.insert(
        "sales.orders".to_string(),
        TableClass {
            sensitivity_column: Some("sensitivity".into()),
            attachment_columns: vec!["attachment".into()],
            vector_columns: None,
        },
    );
    let mut g = Governor::new().with_mask_key(MASK_KEY);
    g.add_catalog(
        "lake",
        CatalogEntry {
            provider: raw_catalog(),
            tables: classes,
        },
    );
    g
}

fn table(batch: RecordBatch) -> Arc<MemTable> {
    Arc::new(MemTable::try_new(batch.schema(), vec![vec![batch]]).unwrap())
}

fn orders() -> RecordBatch {
    // id, region, customer, email, amount, sensitivity
    type Row = (
        i64,
        Option<&'static str>,
        i64,
        &'static str,
        Option<f64>,
        Option<i32>,
    );
    let rows: [Row; 9] = [
        (1, Some("eu"), 10, "a@x.com", Some(100.0), Some(0)),
        (2, Some("eu"), 11, "b@x.com", Some(20000.0), Some(1)),
        (3, Some("us"), 10, "c@x.com", Some(50.0), Some(0)),
        (4, Some("eu"), 12, "d@x.com", None, Some(1)),
        (5, None, 13, "e@x.com", Some(75.0), Some(0)),
        (6, Some("eu"), 13, "f@x.com", Some(300.0), Some(3)),
        (7, Some("eu"), 14, "g@x.com", Some(0.0), Some(2)),
        (8, Some("apac"), 10, "h@x.com", Some(500.0), None),
        (9, Some("eu"), 15, "i@x.com", Some(42.5), Some(0)),
    ];
    let mut emb = ListBuilder::new(Float32Builder::new());
    for (id, ..) in &rows {
        for k in 0..4 {
            emb.values().append_value((*id as f32) + k as f32 / 10.0);
        }
        emb.append(true);
    }
    let schema = Schema::new(vec![
        Field::new("order_id", DataType::Int64, false),
        Field::new("region", DataType::Utf8, true),
        Field::new("customer_id", DataType::Int64, true),
        Field::new("customer_email", DataType::Utf8, true),
        Field::new("amount", DataType::Float64, true),
        Field::new("sensitivity", DataType::Int32, true),
        Field::new(
            "embedding",
            DataType::List(Arc::new(Field::new("item", DataType::Float32, true))),
            true,
        ),
        Field::new("attachment", DataType::Binary, true),
    ]);
    let cols: Vec<ArrayRef> = vec![
        Arc::new(Int64Array::from(
            rows.iter().map(|r| r.0).collect::<Vec<_>>(),
        )),
        Arc::new(StringArray::from(
            rows.iter().map(|r| r.1).collect::<Vec<_>>(),
        )),
        Arc::new(Int64Array::from(
            rows.iter().map(|r| r.2).collect::<Vec<_>>(),
        )),
        Arc::new(StringArray::from(
            rows.iter().map(|r| r.3).collect::<Vec<_>>(),
        )),
        Arc::new(Float64Array::from(
            rows.iter().map(|r| r.4).collect::<Vec<_>>(),
        )),
        Arc::new(Int32Array::from(
            rows.iter().map(|r| r.5).collect::<Vec<_>>(),
        )),
        Arc::new(emb.finish()),
        Arc::new(BinaryArray::from_iter_values(
            rows.iter().map(|r| format!("att{}", r.0).into_bytes()),
        )),
    ];
    RecordBatch::try_new(Arc::new(schema), cols).unwrap()
}

fn customers() -> RecordBatch {
    let schema = Schema::new(vec![
        Field::new("customer_id", DataType::Int64, false),
        Field::new("name", DataType::Utf8, true),
        Field::new("country", DataType::Utf8, true),
    ]);
    RecordBatch::try_new(
        Arc::new(schema),
        vec![
            Arc::new(Int64Array::from(vec![10, 11, 12, 13, 14, 15, 16])),
            Arc::new(StringArray::from(vec![
                "Ann", "Bob", "Cid", "Dee", "Eve", "Fay", "Gus",
            ])),
            Arc::new(StringArray::from(vec![
                Some("DE"),
                Some("US"),
                Some("FR"),
                Some("JP"),
                Some("DE"),
                Some("US"),
                None,
            ])),
        ],
    )
    .unwrap()
}

fn salaries() -> RecordBatch {
    let schema = Schema::new(vec![
        Field::new("employee_id", DataType::Int64, false),
        Field::new("salary", DataType::Float64, true),
    ]);
    RecordBatch::try_new(
        Arc::new(schema),
        vec![
            Arc::new(Int64Array::from(vec![1, 2])),
            Arc::new(Float64Array::from(vec![50000.0, 90000.0])),
        ],
    )
    .unwrap()
}

/// The key of the `hash` mask in tests: hashes are HMAC-SHA256 under it.
pub const MASK_KEY: &[u8] = b"sluice-test-mask-key";

/// The named test tokens.
pub fn token(name: &str) -> Arc<TokenScope> {
    let json = match name {
        "admin" => {
            r#"{"token_id":"t-admin","name":"admin","admin":true,"max_sensitivity":9,
            "allow_attachments":true,"can_export_vectors":true,"grants":[{"table":"lake.*"}]}"#
        }
        "eu" => {
            r#"{"token_id":"t-eu","name":"eu","attributes":{"region":"eu"},"max_sensitivity":2,
            "grants":[
              {"table":"lake.sales.orders","columns":["order_id","region","customer_id","customer_email","amount"],
               "masks":{"customer_email":"hash"},"allow_rules":["region = token.region"],"deny_rules":["amount > 10000"]},
              {"table":"lake.sales.customers","columns":["customer_id","name"]}]}"#
        }
        "eu_ops" => {
            r#"{"token_id":"t-eu-ops","name":"eu_ops","admin":true,"attributes":{"region":"eu"},"max_sensitivity":2,
            "grants":[
              {"table":"lake.sales.orders","columns":["order_id","region","customer_id","customer_email","amount"],
               "masks":{"customer_email":"hash"},"allow_rules":["region = token.region"],"deny_rules":["amount > 10000"]}]}"#
        }
        "auditor" => {
            r#"{"token_id":"t-auditor","name":"auditor","max_sensitivity":1,
            "grants":[{"table":"lake.sales.*","masks":{"customer_email":"partial(1,4)"}}]}"#
        }
        "tiny" => {
            r#"{"token_id":"t-tiny","name":"tiny","max_sensitivity":9,"row_limit":2,
            "grants":[{"table":"lake.sales.orders","columns":["order_id","region"]}]}"#
        }
        "nothing" => r#"{"token_id":"t-nothing","name":"nothing","grants":[]}"#,
        // May rank by the embedding (granted) but not read it (no
        // can_export_vectors); sees eu rows of sensitivity <= 1, emails redacted.
        "seeker" => {
            r#"{"token_id":"t-seeker","name":"seeker","attributes":{"region":"eu"},"max_sensitivity":1,
            "grants":[
              {"table":"lake.sales.orders","columns":["order_id","region","customer_email","amount","embedding"],
               "masks":{"customer_email":"redact"},"allow_rules":["region = token.region"]},
              {"table":"lake.sales.customers"}]}"#
        }
        // Granted the table but not the embedding column.
        "blind" => {
            r#"{"token_id":"t-blind","name":"blind","max_sensitivity":9,
            "grants":[{"table":"lake.sales.orders","columns":["order_id","region"]}]}"#
        }
        other => panic!("unknown test token {other}"),
    };
    Arc::new(serde_json::from_str(json).unwrap())
}
