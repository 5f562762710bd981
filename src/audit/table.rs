//! `system.audit_log`: the audit log as a table, for admin tokens only
//! (other tokens' sessions have no `system` tables). Each scan reads the
//! store, so it shows what was written up to that moment (records reach
//! the store within a second of the answer). Conditions on `time` and
//! equalities on the id, token, protocol, action, fingerprint and outcome
//! columns are applied in the store; a scan reads at most
//! [`MAX_SCAN_ROWS`] records.
//!
//! | column | type |
//! |---|---|
//! | `time` | timestamp (ms, UTC) |
//! | `request_id`, `client_request_id`, `trace_id`, `token_id`, `peer`, `protocol`, `action`, `client_addr`, `query_id` | text |
//! | `statement_fingerprint`, `statement` | text (literals replaced by `?`) |
//! | `tables`, `columns`, `columns_blocked`, `columns_masked` | text: JSON arrays |
//! | `rows`, `bytes`, `bytes_scanned`, `values_masked` | bigint (`bytes_scanned`: what the statement read through its secure views, which budgets count) |
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
use datafusion::logical_expr::{Expr, TableProviderFilterPushDown};
use datafusion::physical_plan::ExecutionPlan;

use crate::store::Store;
use crate::store::audit::{AUDIT_TEXT_COLUMNS, AuditFilter, AuditRow};

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
        text("client_request_id"),
        text("trace_id"),
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
        int("bytes_scanned"),
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
        text(|r| r.client_request_id.as_deref()),
        text(|r| r.trace_id.as_deref()),
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
        int(|r| r.bytes_scanned),
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

/// Most records one scan reads; a query needing more must narrow itself
/// (by time, token, request …) so the gateway never loads the whole log.
pub const MAX_SCAN_ROWS: usize = 1_000_000;

/// The part of `filter` the store can apply: comparisons of `time` with a
/// timestamp and equality of a text column with a string.
fn to_store(filter: &Expr, out: &mut AuditFilter) -> bool {
    use datafusion::common::ScalarValue;
    use datafusion::logical_expr::{BinaryExpr, Operator};
    let Expr::BinaryExpr(BinaryExpr { left, op, right }) = filter else {
        return false;
    };
    let (column, value, op) = match (left.as_ref(), right.as_ref()) {
        (Expr::Column(c), Expr::Literal(v, _)) => (c, v, *op),
        (Expr::Literal(v, _), Expr::Column(c)) => match op.swap() {
            Some(op) => (c, v, op),
            None => return false,
        },
        _ => return false,
    };
    if column.name == "time" {
        let ms = match value {
            ScalarValue::TimestampSecond(Some(v), _) => v.checked_mul(1000),
            ScalarValue::TimestampMillisecond(Some(v), _) => Some(*v),
            ScalarValue::TimestampMicrosecond(Some(v), _) => Some(v.div_euclid(1000)),
            ScalarValue::TimestampNanosecond(Some(v), _) => Some(v.div_euclid(1_000_000)),
            _ => None,
        };
        let Some(ms) = ms else { return false };
        // Inclusive bounds one millisecond wide of the mark: the exact
        // comparison is applied again above the scan.
        match op {
            Operator::Gt | Operator::GtEq => {
                out.since_ms = Some(out.since_ms.map_or(ms, |s| s.max(ms)));
            }
            Operator::Lt | Operator::LtEq => {
                let until = ms.saturating_add(1);
                out.until_ms = Some(out.until_ms.map_or(until, |u| u.min(until)));
            }
            Operator::Eq => {
                out.since_ms = Some(out.since_ms.map_or(ms, |s| s.max(ms)));
                let until = ms.saturating_add(1);
                out.until_ms = Some(out.until_ms.map_or(until, |u| u.min(until)));
            }
            _ => return false,
        }
        return true;
    }
    if op != Operator::Eq {
        return false;
    }
    let (ScalarValue::Utf8(Some(v))
    | ScalarValue::Utf8View(Some(v))
    | ScalarValue::LargeUtf8(Some(v))) = value
    else {
        return false;
    };
    match AUDIT_TEXT_COLUMNS.iter().find(|c| **c == column.name) {
        Some(c) => {
            out.equals.push((c, v.clone()));
            true
        }
        None => false,
    }
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

    fn supports_filters_pushdown(
        &self,
        filters: &[&Expr],
    ) -> Result<Vec<TableProviderFilterPushDown>> {
        Ok(filters
            .iter()
            .map(|f| {
                if to_store(f, &mut AuditFilter::default()) {
                    // Narrows the read; applied again above the scan.
                    TableProviderFilterPushDown::Inexact
                } else {
                    TableProviderFilterPushDown::Unsupported
                }
            })
            .collect())
    }

    async fn scan(
        &self,
        state: &dyn Session,
        projection: Option<&Vec<usize>>,
        filters: &[Expr],
        limit: Option<usize>,
    ) -> Result<Arc<dyn ExecutionPlan>> {
        let mut filter = AuditFilter::default();
        for f in filters {
            to_store(f, &mut filter);
        }
        let rows = self
            .store
            .audit_rows(&filter, MAX_SCAN_ROWS + 1)
            .await
            .map_err(|e| DataFusionError::External(Box::new(e)))?;
        if rows.len() > MAX_SCAN_ROWS {
            return Err(DataFusionError::Plan(format!(
                "system.audit_log: more than {MAX_SCAN_ROWS} records match; narrow the query \
                 with conditions on time, token_id, request_id, query_id or outcome"
            )));
        }
        let table = MemTable::try_new(self.schema(), vec![vec![batch(&rows)?]])?;
        table.scan(state, projection, &[], limit).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn filters_reach_the_store() {
        use datafusion::common::ScalarValue;
        use datafusion::prelude::{col, lit};
        let mut f = AuditFilter::default();
        assert!(to_store(&col("token_id").eq(lit("t1")), &mut f));
        assert!(to_store(
            &col("time").gt_eq(lit(ScalarValue::TimestampMillisecond(Some(5), None))),
            &mut f
        ));
        assert!(to_store(
            &lit(ScalarValue::TimestampNanosecond(Some(9_000_000), None)).gt(col("time")),
            &mut f
        ));
        assert!(!to_store(&col("statement").eq(lit("x")), &mut f));
        assert!(!to_store(&col("token_id").not_eq(lit("x")), &mut f));
        assert_eq!(
            f,
            AuditFilter {
                since_ms: Some(5),
                until_ms: Some(10),
                equals: vec![("token_id", "t1".to_string())],
            }
        );
    }

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
