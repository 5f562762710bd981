//! The gateway's own tables (`system.runtime.<name>`, e.g. the audit log):
//! admin sessions only, under both spellings, and never in place of a
//! catalog's own `system` schema.

use std::sync::Arc;

use arrow::array::{Int64Array, RecordBatch};
use arrow::datatypes::{DataType, Field, Schema};
use datafusion::catalog::{MemorySchemaProvider, SchemaProvider};
use datafusion::datasource::MemTable;
use futures::TryStreamExt;
use sluice_planner::{CatalogEntry, Governor, TokenScope};

fn one_value(v: i64) -> Arc<MemTable> {
    let schema = Arc::new(Schema::new(vec![Field::new("x", DataType::Int64, false)]));
    let batch = RecordBatch::try_new(
        Arc::clone(&schema),
        vec![Arc::new(Int64Array::from(vec![v]))],
    )
    .unwrap();
    Arc::new(MemTable::try_new(schema, vec![vec![batch]]).unwrap())
}

async fn value(g: &Governor, s: &Arc<TokenScope>, sql: &str) -> Result<i64, String> {
    let plan = g.plan(s, sql).await.map_err(|e| e.to_string())?;
    let batches: Vec<RecordBatch> = plan
        .execute()
        .await
        .map_err(|e| e.to_string())?
        .try_collect()
        .await
        .map_err(|e| e.to_string())?;
    Ok(batches[0]
        .column(0)
        .as_any()
        .downcast_ref::<Int64Array>()
        .unwrap()
        .value(0))
}

#[tokio::test]
async fn only_admins_see_system_tables() {
    let g = sluice_test_support::governor().with_system_table("audit_log", one_value(42));
    let admin = sluice_test_support::token("admin");
    for sql in [
        "SELECT x FROM system.audit_log",
        "SELECT x FROM system.runtime.audit_log",
        "SELECT x FROM SYSTEM.AUDIT_LOG",
        "WITH a AS (SELECT x FROM system.audit_log) SELECT x FROM a",
    ] {
        assert_eq!(value(&g, &admin, sql).await.unwrap(), 42, "{sql}");
    }
    for name in ["eu", "auditor", "nothing"] {
        let scope = sluice_test_support::token(name);
        for sql in [
            "SELECT x FROM system.audit_log",
            "SELECT x FROM system.runtime.audit_log",
            "SELECT x FROM \"system\".\"runtime\".\"audit_log\"",
        ] {
            let err = value(&g, &scope, sql).await.unwrap_err();
            assert!(err.contains("not found"), "{name}: {sql}: {err}");
        }
    }
    // Other two-part names keep their meaning.
    assert!(
        value(&g, &admin, "SELECT x FROM system.other")
            .await
            .is_err()
    );
    assert!(
        value(&g, &admin, "SELECT count(*) FROM sales.orders")
            .await
            .is_ok()
    );
}

#[tokio::test]
async fn a_catalog_schema_named_system_is_not_shadowed() {
    let catalog = sluice_test_support::raw_catalog();
    let system = MemorySchemaProvider::new();
    system
        .register_table("audit_log".into(), one_value(7))
        .unwrap();
    catalog.register_schema("system", Arc::new(system)).unwrap();
    let mut g = Governor::new();
    g.add_catalog(
        "lake",
        CatalogEntry {
            provider: catalog,
            tables: Default::default(),
        },
    );
    let g = g.with_system_table("audit_log", one_value(42));
    let admin = sluice_test_support::token("admin");
    assert_eq!(
        value(&g, &admin, "SELECT x FROM system.audit_log")
            .await
            .unwrap(),
        7
    );
    assert_eq!(
        value(&g, &admin, "SELECT x FROM system.runtime.audit_log")
            .await
            .unwrap(),
        42
    );
}
