//! `system.audit_log`: the audit log as a table, for admin tokens only
//! (other tokens' sessions have no `system` tables). Each scan reads the
//! store, so it shows what was written up to that moment (records reach
//! the store within a second of the answer).
//!
//! | column | type |
//! |---|---|
//! | `time` | timestamp (ms, UTC) |
//! | `request_id`, `token_id`, `peer`, `protocol`, `action`, `client_addr`, `query_id` | text |
//! | `statement_fingerprint`, `statement` | text (literals replaced by `?`) |
//! | `tables`, `columns`, `columns_blocked`, `columns_masked` | text: JSON arrays |
//! | `rows`, `bytes`, `values_masked` | bigint |
//! | `truncated` | boolean |
//! | `row_policy` | text: JSON object, policy fingerprint by table |
//! | `outcome` | text: `ok`, `unauthenticated`, `denied`, `rate_limited`, `error`, `cancelled` |
//! | `error` | text |
//! | `latency_ms` | double |

use std::any::Any;
use std::sync::{Arc, LazyLock};

use arrow::array::{
    ArrayRef, BooleanArray, Float64Array, Int64Array, RecordBatch, StringArray,
    TimestampMillisecondArray,
};
use arrow::datatypes::{DataType, Field, Schema, SchemaRef, TimeUnit};
use async_trait::async_trait;
use datafusion::catalog::{MemTable, Session, TableProvider};
use datafusion::common::{DataFusionError, Result};
use datafusion::datasource::TableType;
use datafusion::logical_expr::Expr;
use datafusion::physical_plan::ExecutionPlan;

use crate::store::Store;
use crate::store::audit::AuditRow;

/// The table's name in the `system` schema.
pub const TABLE: &str = "audit_log";

static SCHEMA: LazyLock<SchemaRef> = LazyLock::new(|| {
    let text = |n: &str| Field::new(n, DataType::Utf8, true);
    let int = |n: &str| Field::new(n, DataType::Int64, false);
    Arc::new(Schema::new(vec![
        Field::new(
            "time",
            DataType::Timestamp(TimeUnit::Millisecond, Some("UTC".into())),
            false,
        ),
        text("request_id"),
        text("token_id"),
        text("peer"),
        text("protocol"),
        text("action"),
        text("client_addr"),
        text("query_id"),
        text("statement_fingerprint"),
        text("statement"),
        text("tables"),
        text("columns"),
        int("rows"),
        int("bytes"),
        Field::new("truncated", DataType::Boolean, false),
        text("columns_blocked"),
        text("columns_masked"),
        int("values_masked"),
        text("row_policy"),
        text("outcome"),
        text("error"),
        Field::new("latency_ms", DataType::Float64, false),
    ]))
});

/// `system.audit_log` over the store.
#[derive(Debug, Clone)]
pub struct AuditTable {
    store: Store,
}

impl AuditTable {
    /// The log in `store`.
    pub fn new(store: Store) -> Self {
        Self { store }
    }
}

fn batch(rows: &[AuditRow]) -> Result<RecordBatch> {
    let text = |f: fn(&AuditRow) -> Option<&str>| -> ArrayRef {
        Arc::new(rows.iter().map(f).collect::<StringArray>())
    };
    let int = |f: fn(&AuditRow) -> i64| -> ArrayRef {
        Arc::new(rows.iter().map(f).collect::<Int64Array>())
    };
    let columns: Vec<ArrayRef> = vec![
        Arc::new(
            TimestampMillisecondArray::from(rows.iter().map(|r| r.time_ms).collect::<Vec<_>>())
                .with_timezone("UTC"),
        ),
        text(|r| Some(&r.request_id)),
        text(|r| r.token_id.as_deref()),
        text(|r| r.peer.as_deref()),
        text(|r| Some(&r.protocol)),
        text(|r| Some(&r.action)),
        text(|r| r.client_addr.as_deref()),
        text(|r| r.query_id.as_deref()),
        text(|r| r.statement_fingerprint.as_deref()),
        text(|r| r.statement.as_deref()),
        text(|r| Some(&r.tables)),
        text(|r| Some(&r.columns)),
        int(|r| r.rows_out),
        int(|r| r.bytes_out),
        Arc::new(
            rows.iter()
                .map(|r| Some(r.truncated))
                .collect::<BooleanArray>(),
        ),
        text(|r| Some(&r.columns_blocked)),
        text(|r| Some(&r.columns_masked)),
        int(|r| r.values_masked),
        text(|r| Some(&r.row_policy)),
        text(|r| Some(&r.outcome)),
        text(|r| r.error.as_deref()),
        Arc::new(
            rows.iter()
                .map(|r| Some(r.latency_ms))
                .collect::<Float64Array>(),
        ),
    ];
    Ok(RecordBatch::try_new(Arc::clone(&SCHEMA), columns)?)
}

#[async_trait]
impl TableProvider for AuditTable {
    fn as_any(&self) -> &dyn Any {
        self
    }

    fn schema(&self) -> SchemaRef {
        Arc::clone(&SCHEMA)
    }

    fn table_type(&self) -> TableType {
        TableType::View
    }

    async fn scan(
        &self,
        state: &dyn Session,
        projection: Option<&Vec<usize>>,
        filters: &[Expr],
        limit: Option<usize>,
    ) -> Result<Arc<dyn ExecutionPlan>> {
        let rows = self
            .store
            .audit_rows(0)
            .await
            .map_err(|e| DataFusionError::External(Box::new(e)))?;
        let table = MemTable::try_new(self.schema(), vec![vec![batch(&rows)?]])?;
        table.scan(state, projection, filters, limit).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rows_become_a_batch() {
        let row = AuditRow {
            time_ms: 1_700_000_000_000,
            request_id: "r".into(),
            protocol: "http".into(),
            action: "GET /v1/tokens".into(),
            tables: "[]".into(),
            columns: "[]".into(),
            columns_blocked: "[]".into(),
            columns_masked: "[]".into(),
            row_policy: "{}".into(),
            outcome: "ok".into(),
            ..AuditRow::default()
        };
        let b = batch(&[row.clone(), row]).unwrap();
        assert_eq!(b.num_rows(), 2);
        assert_eq!(b.schema(), *SCHEMA);
    }
}
