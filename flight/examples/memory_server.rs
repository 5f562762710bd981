//! A Flight SQL server over a small in-memory catalog, for trying real
//! clients (pyarrow, ADBC, JDBC) against `sluice-flight` without the rest of
//! the gateway.
//!
//! ```text
//! cargo run -p sluice-flight --example memory_server -- 127.0.0.1:50051
//! ```
//!
//! Tokens: `alice-secret-0123456789` (columns id, region, amount of
//! `lake.sales.orders`, row limit 3) and `bob-secret-0123456789` (every
//! column, row limit 100). `lake.sales.hidden` is granted to nobody.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use arrow::array::{Float64Array, Int64Array, RecordBatch, StringArray};
use arrow::datatypes::{DataType, Field, Schema};
use async_trait::async_trait;
use datafusion::catalog::{
    CatalogProvider, MemoryCatalogProvider, MemorySchemaProvider, SchemaProvider,
};
use datafusion::datasource::MemTable;
use sluice_flight::{FlightConfig, flight_service};
use sluice_planner::{
    AuthFailure, AuthFailureKind, Authenticator, CatalogEntry, Columns, Governor, Grant,
    TokenScope, TokenType,
};
use tonic::transport::Server;

#[derive(Debug)]
struct FixedAuth(HashMap<String, Arc<TokenScope>>);

#[async_trait]
impl Authenticator for FixedAuth {
    async fn authenticate(
        &self,
        secret: &str,
        _client: Option<IpAddr>,
    ) -> Result<Arc<TokenScope>, AuthFailure> {
        self.0
            .get(secret)
            .cloned()
            .ok_or(AuthFailure::new(AuthFailureKind::Unknown))
    }
}

fn scope(id: &str, columns: Columns, row_limit: u64) -> Arc<TokenScope> {
    Arc::new(TokenScope {
        token_id: id.into(),
        name: id.into(),
        token_type: TokenType::Public,
        admin: false,
        attributes: Default::default(),
        max_sensitivity: 0,
        row_limit,
        allow_attachments: false,
        can_export_vectors: false,
        grants: vec![Grant {
            table: "lake.sales.orders".into(),
            columns,
            masks: Default::default(),
            allow_rules: vec![],
            deny_rules: vec![],
        }],
    })
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let addr: SocketAddr = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "127.0.0.1:50051".to_owned())
        .parse()?;

    let schema = Arc::new(Schema::new(vec![
        Field::new("id", DataType::Int64, false),
        Field::new("region", DataType::Utf8, true),
        Field::new("amount", DataType::Float64, true),
        Field::new("secret", DataType::Utf8, true),
    ]));
    let batch = RecordBatch::try_new(
        Arc::clone(&schema),
        vec![
            Arc::new(Int64Array::from(vec![1, 2, 3, 4, 5])),
            Arc::new(StringArray::from(vec!["eu", "us", "eu", "apac", "us"])),
            Arc::new(Float64Array::from(vec![10.0, 20.0, 30.0, 40.0, 50.0])),
            Arc::new(StringArray::from(vec!["s1", "s2", "s3", "s4", "s5"])),
        ],
    )?;
    let sales = MemorySchemaProvider::new();
    sales.register_table(
        "orders".into(),
        Arc::new(MemTable::try_new(
            Arc::clone(&schema),
            vec![vec![batch.clone()]],
        )?),
    )?;
    sales.register_table(
        "hidden".into(),
        Arc::new(MemTable::try_new(schema, vec![vec![batch]])?),
    )?;
    let lake = MemoryCatalogProvider::new();
    lake.register_schema("sales", Arc::new(sales) as Arc<dyn SchemaProvider>)?;
    let mut governor = Governor::new();
    governor.add_catalog(
        "lake",
        CatalogEntry {
            provider: Arc::new(lake) as Arc<dyn CatalogProvider>,
            tables: HashMap::new(),
        },
    );

    let auth = FixedAuth(HashMap::from([
        (
            "alice-secret-0123456789".to_owned(),
            scope(
                "alice",
                Columns::List(vec!["id".into(), "region".into(), "amount".into()]),
                3,
            ),
        ),
        (
            "bob-secret-0123456789".to_owned(),
            scope("bob", Columns::All, 100),
        ),
    ]));
    let svc = flight_service(
        Arc::new(governor),
        Arc::new(auth),
        FlightConfig {
            ticket_key: b"example key, not for production!".to_vec(),
            ticket_ttl: Duration::from_secs(300),
            server_name: "sluice-example".into(),
            server_version: env!("CARGO_PKG_VERSION").into(),
            share_needs_client_cert: false,
        },
    );
    eprintln!("listening on {addr}");
    Server::builder().add_service(svc).serve(addr).await?;
    Ok(())
}
