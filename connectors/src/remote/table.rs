//! One table of a peer: the scan sent to the provider as one SQL
//! statement (projection, the filters the unparser can write, the limit),
//! and the plan leaf that streams its answer in the table's schema.

use std::any::Any;
use std::fmt;
use std::sync::Arc;

use arrow::datatypes::SchemaRef;
use arrow::record_batch::RecordBatch;
use async_trait::async_trait;
use datafusion::catalog::Session;
use datafusion::common::Result as DfResult;
use datafusion::datasource::{TableProvider, TableType};
use datafusion::error::DataFusionError;
use datafusion::execution::{SendableRecordBatchStream, TaskContext};
use datafusion::logical_expr::{Expr, TableProviderFilterPushDown};
use datafusion::physical_expr::EquivalenceProperties;
use datafusion::physical_plan::execution_plan::{Boundedness, EmissionType};
use datafusion::physical_plan::stream::RecordBatchStreamAdapter;
use datafusion::physical_plan::{
    DisplayAs, DisplayFormatType, ExecutionPlan, Partitioning, PlanProperties,
};
use datafusion::sql::unparser::Unparser;
use futures::StreamExt;

use super::peer::Peer;

/// One table of a peer.
#[derive(Debug)]
pub struct RemoteTable {
    pub(super) peer: Arc<Peer>,
    pub(super) remote: [String; 3],
    pub(super) schema: SchemaRef,
}

/// `"a""b"` quoting.
fn quote(ident: &str) -> String {
    format!("\"{}\"", ident.replace('"', "\"\""))
}

impl RemoteTable {
    /// The SQL sent to the provider for a scan.
    pub fn sql(&self, projection: &[usize], filters: &[Expr], limit: Option<usize>) -> String {
        let columns = if projection.is_empty() {
            "1".to_string()
        } else {
            projection
                .iter()
                .map(|i| quote(self.schema.field(*i).name()))
                .collect::<Vec<_>>()
                .join(", ")
        };
        let table = self
            .remote
            .iter()
            .map(|p| quote(p))
            .collect::<Vec<_>>()
            .join(".");
        let mut sql = format!("SELECT {columns} FROM {table}");
        let conditions: Vec<String> = filters.iter().filter_map(to_sql).collect();
        if !conditions.is_empty() {
            sql.push_str(" WHERE ");
            sql.push_str(
                &conditions
                    .iter()
                    .map(|c| format!("({c})"))
                    .collect::<Vec<_>>()
                    .join(" AND "),
            );
        }
        if let Some(n) = limit {
            sql.push_str(&format!(" LIMIT {n}"));
        }
        sql
    }
}

/// `e` as SQL for the provider, if the unparser can write it.
fn to_sql(e: &Expr) -> Option<String> {
    Unparser::default()
        .expr_to_sql(e)
        .ok()
        .map(|s| s.to_string())
}

#[async_trait]
impl TableProvider for RemoteTable {
    fn as_any(&self) -> &dyn Any {
        self
    }

    fn schema(&self) -> SchemaRef {
        Arc::clone(&self.schema)
    }

    fn table_type(&self) -> TableType {
        TableType::Base
    }

    fn supports_filters_pushdown(
        &self,
        filters: &[&Expr],
    ) -> DfResult<Vec<TableProviderFilterPushDown>> {
        // Inexact: the provider filters, and DataFusion filters again.
        Ok(filters
            .iter()
            .map(|f| match to_sql(f) {
                Some(_) => TableProviderFilterPushDown::Inexact,
                None => TableProviderFilterPushDown::Unsupported,
            })
            .collect())
    }

    async fn scan(
        &self,
        _state: &dyn Session,
        projection: Option<&Vec<usize>>,
        filters: &[Expr],
        limit: Option<usize>,
    ) -> DfResult<Arc<dyn ExecutionPlan>> {
        let projection: Vec<usize> = match projection {
            Some(p) => p.clone(),
            None => (0..self.schema.fields().len()).collect(),
        };
        let schema = Arc::new(self.schema.project(&projection)?);
        let sql = self.sql(&projection, filters, limit);
        sluice_planner::audit::note_peer(self.peer.name());
        Ok(Arc::new(RemoteScanExec::new(
            Arc::clone(&self.peer),
            sql,
            schema,
        )))
    }
}

/// Streams one SQL statement's answer from a peer.
#[derive(Debug)]
pub struct RemoteScanExec {
    peer: Arc<Peer>,
    sql: String,
    schema: SchemaRef,
    properties: Arc<PlanProperties>,
}

impl RemoteScanExec {
    fn new(peer: Arc<Peer>, sql: String, schema: SchemaRef) -> Self {
        let properties = Arc::new(PlanProperties::new(
            EquivalenceProperties::new(Arc::clone(&schema)),
            Partitioning::UnknownPartitioning(1),
            EmissionType::Incremental,
            Boundedness::Bounded,
        ));
        Self {
            peer,
            sql,
            schema,
            properties,
        }
    }

    /// The statement sent to the provider.
    pub fn sql(&self) -> &str {
        &self.sql
    }
}

impl DisplayAs for RemoteScanExec {
    fn fmt_as(&self, _t: DisplayFormatType, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "RemoteScanExec: peer={} sql={}",
            self.peer.name(),
            self.sql
        )
    }
}

impl ExecutionPlan for RemoteScanExec {
    fn name(&self) -> &str {
        "RemoteScanExec"
    }

    fn as_any(&self) -> &dyn Any {
        self
    }

    fn properties(&self) -> &Arc<PlanProperties> {
        &self.properties
    }

    fn children(&self) -> Vec<&Arc<dyn ExecutionPlan>> {
        Vec::new()
    }

    fn with_new_children(
        self: Arc<Self>,
        children: Vec<Arc<dyn ExecutionPlan>>,
    ) -> DfResult<Arc<dyn ExecutionPlan>> {
        if children.is_empty() {
            Ok(self)
        } else {
            Err(DataFusionError::Internal(
                "RemoteScanExec has no children".into(),
            ))
        }
    }

    fn execute(
        &self,
        partition: usize,
        _context: Arc<TaskContext>,
    ) -> DfResult<SendableRecordBatchStream> {
        if partition != 0 {
            return Err(DataFusionError::Internal(format!(
                "RemoteScanExec has one partition, not {partition}"
            )));
        }
        let schema = Arc::clone(&self.schema);
        let expected = Arc::clone(&schema);
        let stream = self
            .peer
            .query(self.sql.clone())
            .map(move |batch| conform(batch?, &expected));
        Ok(Box::pin(RecordBatchStreamAdapter::new(schema, stream)))
    }
}

/// A provider batch with the table's schema (names and nullability as
/// discovered; types cast strictly where the provider answered
/// differently, e.g. after its table changed since discovery).
fn conform(batch: RecordBatch, schema: &SchemaRef) -> DfResult<RecordBatch> {
    // An empty projection asked for `SELECT 1`: only the row count counts.
    if !schema.fields().is_empty() && batch.num_columns() != schema.fields().len() {
        return Err(DataFusionError::Execution(format!(
            "the peer answered {} columns, {} were asked",
            batch.num_columns(),
            schema.fields().len()
        )));
    }
    sluice_planner::governor::conform(batch, schema)
}

#[cfg(test)]
mod tests {
    use arrow::datatypes::{DataType, Field, Schema};
    use datafusion::prelude::{col, lit};

    use super::super::peer::tests::unreachable_peer;
    use super::*;

    fn table() -> RemoteTable {
        let peer = unreachable_peer();
        RemoteTable {
            peer,
            remote: ["lake".into(), "sales".into(), "or\"ders".into()],
            schema: Arc::new(Schema::new(vec![
                Field::new("id", DataType::Int64, false),
                Field::new("Region", DataType::Utf8, true),
            ])),
        }
    }

    // A runtime: the lazy channel needs one.
    #[tokio::test]
    async fn pushed_down_sql() {
        let t = table();
        assert_eq!(
            t.sql(&[0, 1], &[], None),
            r#"SELECT "id", "Region" FROM "lake"."sales"."or""ders""#
        );
        let region = Expr::Column(datafusion::common::Column::new_unqualified("Region"));
        let f = col("id").gt(lit(3)).and(region.eq(lit("it's")));
        let sql = t.sql(&[1], &[f], Some(7));
        assert!(
            sql.starts_with(r#"SELECT "Region" FROM "lake"."sales"."or""ders" WHERE ("#),
            "{sql}"
        );
        assert!(sql.contains("'it''s'"), "{sql}");
        assert!(sql.contains(r#""Region" = "#), "{sql}");
        assert!(sql.ends_with(" LIMIT 7"), "{sql}");
        assert_eq!(
            t.sql(&[], &[], Some(1)),
            r#"SELECT 1 FROM "lake"."sales"."or""ders" LIMIT 1"#
        );
    }
}
