//! In-memory catalogs for tests, and the governed test catalog `lake`
//! (`sales.orders`, `sales.customers`, `hr.salaries`) that the `.slt` files
//! and the planner's tests run against.

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
use datafusion::datasource::{MemTable, TableProvider};
use sluice_planner::{CatalogEntry, Governor, TableClass};

/// The key of the `hash` mask in tests: hashes are HMAC-SHA256 under it.
pub const MASK_KEY: &[u8] = b"sluice-test-mask-key";

/// A table holding `batch`.
///
/// # Panics
///
/// Never for a valid batch.
pub fn mem_table(batch: RecordBatch) -> Arc<dyn TableProvider> {
    Arc::new(MemTable::try_new(batch.schema(), vec![vec![batch]]).expect("a memory table"))
}

/// `accounts (id BIGINT NOT NULL, tenant TEXT)` with tenants `1`, `2`
/// and `top-secret-tenant`: a row rule `CAST(tenant AS BIGINT) = 1` fails
/// on the third row, which the token never sees.
///
/// # Panics
///
/// Never.
pub fn accounts_with_a_text_tenant() -> Arc<dyn TableProvider> {
    let schema = Arc::new(Schema::new(vec![
        Field::new("id", DataType::Int64, false),
        Field::new("tenant", DataType::Utf8, true),
    ]));
    mem_table(
        RecordBatch::try_new(
            schema,
            vec![
                Arc::new(Int64Array::from(vec![1, 2, 3])),
                Arc::new(StringArray::from(vec!["1", "2", "top-secret-tenant"])),
            ],
        )
        .expect("a valid batch"),
    )
}

/// A catalog of schemas of tables: `[("sales", vec![("orders", table)])]`.
///
/// # Panics
///
/// Never: memory catalogs accept every name once.
pub fn memory_catalog<'a>(
    schemas: impl IntoIterator<Item = (&'a str, Vec<(&'a str, Arc<dyn TableProvider>)>)>,
) -> Arc<dyn CatalogProvider> {
    let catalog = MemoryCatalogProvider::new();
    for (schema_name, tables) in schemas {
        let schema = MemorySchemaProvider::new();
        for (name, table) in tables {
            schema
                .register_table(name.to_string(), table)
                .expect("a new table name");
        }
        catalog
            .register_schema(schema_name, Arc::new(schema))
            .expect("a new schema name");
    }
    Arc::new(catalog)
}

/// A governor serving `catalog` as `name`, without table classes.
pub fn governor_of(name: &str, catalog: Arc<dyn CatalogProvider>) -> Governor {
    let mut g = Governor::new();
    g.add_catalog(
        name,
        CatalogEntry {
            provider: catalog,
            tables: HashMap::new(),
        },
    );
    g
}

/// How `sales.orders` is classified in the test catalog and in the demo
/// warehouse: `sensitivity` holds each row's sensitivity, `attachment` is
/// an attachment column (vectors are found by type).
pub fn sales_classes() -> HashMap<String, TableClass> {
    HashMap::from([(
        "sales.orders".to_string(),
        TableClass {
            sensitivity_column: Some("sensitivity".into()),
            attachment_columns: vec!["attachment".into()],
            vector_columns: None,
        },
    )])
}

/// The test catalog without any policy.
pub fn raw_catalog() -> Arc<dyn CatalogProvider> {
    memory_catalog([
        (
            "sales",
            vec![
                ("orders", mem_table(orders())),
                ("customers", mem_table(customers())),
            ],
        ),
        ("hr", vec![("salaries", mem_table(salaries()))]),
    ])
}

/// The governor over the test catalog `lake`: `sales.orders` has a
/// sensitivity column and an attachment column, and the `hash` mask is
/// keyed with [`MASK_KEY`].
pub fn governor() -> Governor {
    let mut g = Governor::new().with_mask_key(MASK_KEY);
    g.add_catalog(
        "lake",
        CatalogEntry {
            provider: raw_catalog(),
            tables: sales_classes(),
        },
    );
    g
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
