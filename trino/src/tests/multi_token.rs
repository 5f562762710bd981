//! A gateway with several tokens (an admin, a row-filtered and masked
//! one, one whose row rule can fail on hidden rows, one with a huge row
//! limit), an endless table, a table whose connector fails, and revocation:
//! for the tests of what one token can do to the others.

pub(super) use std::net::SocketAddr;
pub(super) use std::sync::Arc;
pub(super) use std::sync::atomic::{AtomicUsize, Ordering};
pub(super) use std::time::Duration;

pub(super) use arrow::array::{Int64Array, RecordBatch, StringArray};
pub(super) use arrow::datatypes::{DataType, Field, Schema, SchemaRef};
pub(super) use axum::Router;
pub(super) use axum::extract::connect_info::MockConnectInfo;
pub(super) use axum::http::{Method, StatusCode};
pub(super) use datafusion::catalog::streaming::StreamingTable;
pub(super) use datafusion::catalog::{
    MemTable, MemoryCatalogProvider, MemorySchemaProvider, SchemaProvider,
};
pub(super) use datafusion::error::DataFusionError;
pub(super) use datafusion::execution::TaskContext;
pub(super) use datafusion::physical_plan::SendableRecordBatchStream;
pub(super) use datafusion::physical_plan::stream::RecordBatchStreamAdapter;
pub(super) use datafusion::physical_plan::streaming::PartitionStream;
pub(super) use serde_json::Value;
pub(super) use sluice_planner::{Authenticator, CatalogEntry, Governor};
pub(super) use sluice_test_support::StaticAuthenticator;

pub(super) use super::{Answer, call, get, path_of, post, quick, scope};
pub(super) use crate::query::Queries;
pub(super) use crate::{TrinoConfig, TrinoState, router};

/// An endless single-column table.
#[derive(Debug)]
struct Endless {
    schema: SchemaRef,
    started: Arc<AtomicUsize>,
}

impl PartitionStream for Endless {
    fn schema(&self) -> &SchemaRef {
        &self.schema
    }

    fn execute(&self, _ctx: Arc<TaskContext>) -> SendableRecordBatchStream {
        self.started.fetch_add(1, Ordering::SeqCst);
        let schema = Arc::clone(&self.schema);
        let batch = RecordBatch::try_new(
            Arc::clone(&schema),
            vec![Arc::new(Int64Array::from((0..1000).collect::<Vec<i64>>()))],
        )
        .unwrap();
        let stream = futures::stream::repeat_with(move || Ok(batch.clone()));
        Box::pin(RecordBatchStreamAdapter::new(schema, stream))
    }
}

/// A table whose scan fails like a connector does (the message names a
/// warehouse path, as object-store errors do).
#[derive(Debug)]
struct Broken {
    schema: SchemaRef,
}

impl PartitionStream for Broken {
    fn schema(&self) -> &SchemaRef {
        &self.schema
    }

    fn execute(&self, _ctx: Arc<TaskContext>) -> SendableRecordBatchStream {
        let schema = Arc::clone(&self.schema);
        let stream = futures::stream::once(async {
            Err(DataFusionError::External(
                "Object at location s3://corp-warehouse/hr/salaries/data/ceo=jane-doe/00000.parquet not found: credentials AKIAEXAMPLE"
                    .into(),
            ))
        });
        Box::pin(RecordBatchStreamAdapter::new(schema, stream))
    }
}

pub(super) struct Fixture {
    pub(super) app: Router,
    pub(super) tokens: Arc<StaticAuthenticator>,
    pub(super) started: Arc<AtomicUsize>,
    pub(super) queries: Arc<Queries>,
}

fn mem(schema: Arc<Schema>, cols: Vec<arrow::array::ArrayRef>) -> Arc<MemTable> {
    let batch = RecordBatch::try_new(Arc::clone(&schema), cols).unwrap();
    Arc::new(MemTable::try_new(schema, vec![vec![batch]]).unwrap())
}

pub(super) fn fixture(config: TrinoConfig) -> Fixture {
    let sales = MemorySchemaProvider::new();
    sales
        .register_table(
            "orders".into(),
            mem(
                Arc::new(Schema::new(vec![
                    Field::new("id", DataType::Int64, false),
                    Field::new("region", DataType::Utf8, true),
                    Field::new("email", DataType::Utf8, true),
                ])),
                vec![
                    Arc::new(Int64Array::from(vec![1, 2, 3, 4, 5])),
                    Arc::new(StringArray::from(vec!["eu", "us", "eu", "eu", "us"])),
                    Arc::new(StringArray::from(vec![
                        "a@x",
                        "b@x",
                        "c@x",
                        "d@x",
                        "us-secret@x",
                    ])),
                ],
            ),
        )
        .unwrap();
    sales
        .register_table(
            "accounts".into(),
            sluice_test_support::accounts_with_a_text_tenant(),
        )
        .unwrap();
    let started = Arc::new(AtomicUsize::new(0));
    let n_schema = Arc::new(Schema::new(vec![Field::new("n", DataType::Int64, false)]));
    sales
        .register_table(
            "endless".into(),
            Arc::new(
                StreamingTable::try_new(
                    Arc::clone(&n_schema),
                    vec![Arc::new(Endless {
                        schema: Arc::clone(&n_schema),
                        started: Arc::clone(&started),
                    })],
                )
                .unwrap(),
            ),
        )
        .unwrap();
    sales
        .register_table(
            "broken".into(),
            Arc::new(
                StreamingTable::try_new(
                    Arc::clone(&n_schema),
                    vec![Arc::new(Broken {
                        schema: Arc::clone(&n_schema),
                    })],
                )
                .unwrap(),
            ),
        )
        .unwrap();
    let hr = MemorySchemaProvider::new();
    hr.register_table(
        "salaries".into(),
        mem(
            Arc::new(Schema::new(vec![
                Field::new("employee", DataType::Utf8, false),
                Field::new("salary", DataType::Int64, false),
            ])),
            vec![
                Arc::new(StringArray::from(vec!["jane"])),
                Arc::new(Int64Array::from(vec![999_999])),
            ],
        ),
    )
    .unwrap();
    let catalog = MemoryCatalogProvider::new();
    datafusion::catalog::CatalogProvider::register_schema(&catalog, "sales", Arc::new(sales))
        .unwrap();
    datafusion::catalog::CatalogProvider::register_schema(&catalog, "hr", Arc::new(hr)).unwrap();
    let mut governor = Governor::new()
        .with_target_partitions(1)
        .with_mask_key(b"trino-test-mask-key-0123456");
    governor.add_catalog(
        "lake",
        CatalogEntry {
            provider: Arc::new(catalog),
            tables: Default::default(),
        },
    );
    let tokens = Arc::new(StaticAuthenticator::new([
        (
            "admin-secret",
            scope(
                r#"{"token_id":"t-admin","name":"admin","admin":true,"grants":[{"table":"lake.*"}]}"#,
            ),
        ),
        (
            "eu-secret",
            scope(
                r#"{"token_id":"t-eu","name":"eu","attributes":{"region":"eu"},
                "grants":[{"table":"lake.sales.orders","columns":["id","region","email"],
                           "masks":{"email":"hash"},"allow_rules":["region = token.region"]},
                          {"table":"lake.sales.endless"}]}"#,
            ),
        ),
        // A realistic rule that can fail on rows the token must not see
        // (tenant ids are text; the token's tenant is 1).
        (
            "tenant-secret",
            scope(
                r#"{"token_id":"t-tenant","name":"tenant",
                "grants":[{"table":"lake.sales.accounts","allow_rules":["CAST(tenant AS BIGINT) = 1"]},
                          {"table":"lake.sales.broken"}]}"#,
            ),
        ),
        (
            "other-secret",
            scope(
                r#"{"token_id":"t-other","name":"other","row_limit":1000000000,"grants":[{"table":"lake.sales.endless"}]}"#,
            ),
        ),
    ]));
    let state = TrinoState::new(
        Arc::new(governor),
        Arc::clone(&tokens) as Arc<dyn Authenticator>,
        &config,
        SocketAddr::from(([127, 0, 0, 1], 8080)),
    );
    let queries = Arc::clone(&state.queries);
    let app = router(state).layer(MockConnectInfo(SocketAddr::from(([127, 0, 0, 1], 5555))));
    Fixture {
        app,
        tokens,
        started,
        queries,
    }
}

/// Runs `sql` to the end: (rows, final document).
pub(super) async fn run(
    app: &Router,
    auth: &str,
    sql: &str,
    extra: &[(&str, &str)],
) -> (Vec<Value>, Value) {
    let (rows, _, answer) = super::run(app, auth, sql, extra).await;
    (rows, answer.json())
}

/// POSTs `sql` and, when the answer only points at page 0, polls it once:
/// errors are reported by the first poll, not by the POST answer.
pub(super) async fn first_poll(
    app: &Router,
    auth: &str,
    extra: &[(&str, &str)],
    sql: &str,
) -> Answer {
    let a = call(app, Method::POST, "/v1/statement", Some(auth), extra, sql).await;
    let doc = a.json();
    match doc["nextUri"].as_str() {
        Some(next) if doc.get("error").is_none() && next.ends_with("/0") => {
            call(app, Method::GET, path_of(next), Some(auth), extra, "").await
        }
        _ => a,
    }
}

pub(super) const ADMIN: &str = "Bearer admin-secret";
pub(super) const EU: &str = "Bearer eu-secret";
pub(super) const TENANT: &str = "Bearer tenant-secret";
pub(super) const OTHER: &str = "Bearer other-secret";
