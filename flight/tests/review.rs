//! Security review probes (Flight). Each test asserts the SECURE behaviour; a failure is a finding.
#![allow(unused_imports, dead_code)]
use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use arrow::array::{Array, Float64Array, Int32Array, Int64Array, RecordBatch, StringArray};
use arrow::datatypes::{DataType, Field, Schema};
use arrow_flight::decode::{DecodedPayload, FlightDataDecoder};
use arrow_flight::flight_service_client::FlightServiceClient;
use arrow_flight::sql::client::FlightSqlServiceClient;
use arrow_flight::sql::{
    CommandGetDbSchemas, CommandGetPrimaryKeys, CommandGetTables, ProstMessageExt, SqlInfo,
};
use arrow_flight::{
    Action, CancelFlightInfoRequest, CancelFlightInfoResult, CancelStatus, FlightInfo,
    HandshakeRequest, IpcMessage, Ticket,
};
use async_trait::async_trait;
use base64::Engine;
use base64::engine::general_purpose::STANDARD_NO_PAD;
use datafusion::catalog::{
    CatalogProvider, MemoryCatalogProvider, MemorySchemaProvider, SchemaProvider,
};
use datafusion::datasource::MemTable;
use futures::{StreamExt, TryStreamExt, stream};
use prost::Message;
use sluice_flight::{FlightConfig, flight_service};
use sluice_planner::{
    AuthFailure, AuthFailureKind, Authenticator, CatalogEntry, Columns, Governor, Grant,
    TokenScope, TokenType,
};
use tokio::net::TcpListener;
use tonic::transport::server::TcpIncoming;
use tonic::transport::{Channel, Server};
use tonic::{Code, Request};

const ALICE: &str = "alice-secret-0123456789";
const BOB: &str = "bob-secret-0123456789";

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

fn governor() -> Governor {
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
    )
    .unwrap();
    let orders = MemTable::try_new(Arc::clone(&schema), vec![vec![batch.clone()]]).unwrap();
    let hidden = MemTable::try_new(schema, vec![vec![batch]]).unwrap();
    let sales = MemorySchemaProvider::new();
    sales
        .register_table("orders".into(), Arc::new(orders))
        .unwrap();
    sales
        .register_table("hidden".into(), Arc::new(hidden))
        .unwrap();
    let lake = MemoryCatalogProvider::new();
    lake.register_schema("sales", Arc::new(sales) as Arc<dyn SchemaProvider>)
        .unwrap();
    let mut g = Governor::new();
    g.add_catalog(
        "lake",
        CatalogEntry {
            provider: Arc::new(lake) as Arc<dyn CatalogProvider>,
            tables: HashMap::new(),
        },
    );
    g
}

async fn start() -> Channel {
    let auth = FixedAuth(HashMap::from([
        (
            ALICE.to_owned(),
            scope(
                "alice",
                Columns::List(vec!["id".into(), "region".into(), "amount".into()]),
                3,
            ),
        ),
        (BOB.to_owned(), scope("bob", Columns::All, 100)),
    ]));
    let svc = flight_service(
        Arc::new(governor()),
        Arc::new(auth),
        FlightConfig {
            ticket_key: vec![7u8; 32],
            ticket_ttl: Duration::from_secs(60),
            server_name: "sluice-test".into(),
            server_version: "0.0.1".into(),
            share_needs_client_cert: false,
        },
    );
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(
        Server::builder()
            .add_service(svc)
            .serve_with_incoming(TcpIncoming::from(listener)),
    );
    Channel::from_shared(format!("http://{addr}"))
        .unwrap()
        .connect()
        .await
        .unwrap()
}

async fn client(channel: &Channel, secret: &str) -> FlightSqlServiceClient<Channel> {
    let mut c = FlightSqlServiceClient::new(channel.clone());
    c.set_token(secret.to_owned());
    c
}

fn ticket(info: &FlightInfo) -> Ticket {
    assert_eq!(info.endpoint.len(), 1);
    info.endpoint[0].ticket.clone().unwrap()
}

/// DoGet, returning the record batches and the parsed trailer (if any).
async fn fetch(
    channel: &Channel,
    secret: &str,
    t: Ticket,
) -> Result<(Vec<RecordBatch>, Option<serde_json::Value>), tonic::Status> {
    let mut raw = FlightServiceClient::new(channel.clone());
    let mut req = Request::new(t);
    req.metadata_mut()
        .insert("authorization", format!("Bearer {secret}").parse().unwrap());
    let stream = raw.do_get(req).await?.into_inner();
    let mut decoder = FlightDataDecoder::new(stream.map_err(Into::into));
    let mut batches = vec![];
    let mut trailer = None;
    while let Some(item) = decoder.next().await {
        let item = item.map_err(|e| match e {
            arrow_flight::error::FlightError::Tonic(s) => *s,
            other => tonic::Status::internal(other.to_string()),
        })?;
        assert!(trailer.is_none(), "message after the trailer");
        match item.payload {
            DecodedPayload::RecordBatch(b) if !item.inner.app_metadata.is_empty() => {
                assert_eq!(b.num_rows(), 0, "the trailer is an empty batch");
                trailer = Some(serde_json::from_slice(&item.inner.app_metadata).unwrap());
            }
            DecodedPayload::RecordBatch(b) => batches.push(b),
            DecodedPayload::Schema(_) => {}
            DecodedPayload::None => panic!("unexpected metadata-only message"),
        }
    }
    Ok((batches, trailer))
}

fn ids(batches: &[RecordBatch]) -> Vec<i64> {
    batches
        .iter()
        .flat_map(|b| {
            let a = b.column(0).as_any().downcast_ref::<Int64Array>().unwrap();
            a.values().to_vec()
        })
        .collect()
}

fn bearer<T>(secret: &str, msg: T) -> Request<T> {
    let mut r = Request::new(msg);
    r.metadata_mut()
        .insert("authorization", format!("Bearer {secret}").parse().unwrap());
    r
}

/// Decodes the signed JSON claims of a sluice ticket/handle (MAGIC "slc1" || json || 32-byte tag).
fn claims(blob: &[u8]) -> serde_json::Value {
    assert!(blob.starts_with(b"slc1"));
    serde_json::from_slice(&blob[4..blob.len() - 32]).unwrap()
}

/// Every RPC except Handshake without credentials: UNAUTHENTICATED (or
/// UNIMPLEMENTED for RPCs sluice does not offer), never data.
#[tokio::test]
async fn review_no_credentials_no_data() {
    let channel = start().await;
    let mut raw = FlightServiceClient::new(channel.clone());
    let desc = arrow_flight::FlightDescriptor::new_cmd(
        arrow_flight::sql::CommandStatementQuery {
            query: "SELECT * FROM lake.sales.orders".into(),
            transaction_id: None,
        }
        .as_any()
        .encode_to_vec(),
    );
    for s in [
        raw.get_flight_info(Request::new(desc.clone()))
            .await
            .unwrap_err(),
        raw.get_schema(Request::new(desc.clone()))
            .await
            .unwrap_err(),
        raw.poll_flight_info(Request::new(desc.clone()))
            .await
            .unwrap_err(),
    ] {
        assert!(
            matches!(s.code(), Code::Unauthenticated | Code::Unimplemented),
            "{s:?}"
        );
    }
    for cmd in [
        arrow_flight::sql::CommandGetTables {
            catalog: None,
            db_schema_filter_pattern: None,
            table_name_filter_pattern: None,
            table_types: vec![],
            include_schema: true,
        }
        .as_any()
        .encode_to_vec(),
        arrow_flight::sql::CommandGetCatalogs {}
            .as_any()
            .encode_to_vec(),
        CommandGetPrimaryKeys {
            catalog: None,
            db_schema: None,
            table: "orders".into(),
        }
        .as_any()
        .encode_to_vec(),
    ] {
        let s = raw
            .do_get(Request::new(Ticket::new(cmd)))
            .await
            .map(|_| ())
            .expect_err("refused");
        assert_eq!(s.code(), Code::Unauthenticated, "{s:?}");
    }
    let action = Action {
        r#type: "CreatePreparedStatement".into(),
        body: arrow_flight::sql::ActionCreatePreparedStatementRequest {
            query: "SELECT 1".into(),
            transaction_id: None,
        }
        .as_any()
        .encode_to_vec()
        .into(),
    };
    let s = raw
        .do_action(Request::new(action))
        .await
        .map(|_| ())
        .expect_err("refused");
    assert_eq!(s.code(), Code::Unauthenticated, "{s:?}");
    let s = raw
        .do_action(Request::new(Action {
            r#type: "CancelFlightInfo".into(),
            body: Default::default(),
        }))
        .await
        .map(|_| ())
        .expect_err("refused");
    assert_eq!(s.code(), Code::Unauthenticated, "{s:?}");
}

/// A prepared handle is not a statement ticket and vice versa, on the wire.
#[tokio::test]
async fn review_ticket_kind_confusion() {
    let channel = start().await;
    let mut c = client(&channel, BOB).await;
    let stmt = c
        .prepare("SELECT id FROM lake.sales.orders".into(), None)
        .await
        .unwrap();
    // Re-create to read the raw handle via the action API.
    let mut raw = FlightServiceClient::new(channel.clone());
    let action = Action {
        r#type: "CreatePreparedStatement".into(),
        body: arrow_flight::sql::ActionCreatePreparedStatementRequest {
            query: "SELECT id FROM lake.sales.orders".into(),
            transaction_id: None,
        }
        .as_any()
        .encode_to_vec()
        .into(),
    };
    let mut res = raw
        .do_action(bearer(BOB, action))
        .await
        .unwrap()
        .into_inner();
    let body = res.next().await.unwrap().unwrap().body;
    let any = arrow_flight::sql::Any::decode(body).unwrap();
    let created: arrow_flight::sql::ActionCreatePreparedStatementResult =
        any.unpack().unwrap().unwrap();
    let handle = created.prepared_statement_handle.clone();
    // handle as statement ticket
    let t = Ticket::new(
        arrow_flight::sql::TicketStatementQuery {
            statement_handle: handle.clone(),
        }
        .as_any()
        .encode_to_vec(),
    );
    let s = fetch(&channel, BOB, t)
        .await
        .map(|_| ())
        .expect_err("refused");
    assert_eq!(s.code(), Code::InvalidArgument, "{s:?}");
    // statement ticket as prepared handle (DoGet with CommandPreparedStatementQuery)
    let info = c
        .execute("SELECT id FROM lake.sales.orders".into(), None)
        .await
        .unwrap();
    let tk = ticket(&info);
    let any = arrow_flight::sql::Any::decode(&*tk.ticket).unwrap();
    let tsq: arrow_flight::sql::TicketStatementQuery = any.unpack().unwrap().unwrap();
    let t = Ticket::new(
        arrow_flight::sql::CommandPreparedStatementQuery {
            prepared_statement_handle: tsq.statement_handle.clone(),
        }
        .as_any()
        .encode_to_vec(),
    );
    let s = fetch(&channel, BOB, t)
        .await
        .map(|_| ())
        .expect_err("refused");
    assert_eq!(s.code(), Code::InvalidArgument, "{s:?}");
    // alice cannot DoGet bob's prepared handle
    let t = Ticket::new(
        arrow_flight::sql::CommandPreparedStatementQuery {
            prepared_statement_handle: handle.clone(),
        }
        .as_any()
        .encode_to_vec(),
    );
    let s = fetch(&channel, ALICE, t)
        .await
        .map(|_| ())
        .expect_err("refused");
    assert_eq!(s.code(), Code::PermissionDenied, "{s:?}");
    drop(stmt);
}

/// Alice's policy hides column `secret` and table `hidden`: nothing about them in metadata or errors.
#[tokio::test]
async fn review_hidden_objects_in_metadata_and_errors() {
    let channel = start().await;
    let mut c = client(&channel, ALICE).await;
    let info = c
        .get_tables(CommandGetTables {
            catalog: Some("lake".into()),
            db_schema_filter_pattern: Some("%".into()),
            table_name_filter_pattern: Some("%".into()),
            table_types: vec![],
            include_schema: true,
        })
        .await
        .unwrap();
    let (b, _) = fetch(&channel, ALICE, ticket(&info)).await.unwrap();
    let dbg = format!("{b:?}");
    assert!(!dbg.contains("hidden"), "{dbg}");
    assert!(!dbg.contains("secret"), "{dbg}");
    let e1 = c
        .execute("SELECT secret FROM lake.sales.orders".into(), None)
        .await
        .unwrap_err()
        .to_string();
    let e2 = c
        .execute("SELECT secreT2 FROM lake.sales.orders".into(), None)
        .await
        .unwrap_err()
        .to_string();
    assert_eq!(
        e1.replace("secret", "X"),
        e2.replace("secret2", "X"),
        "{e1} / {e2}"
    );
    let e1 = c
        .execute("SELECT * FROM lake.sales.hidden".into(), None)
        .await
        .unwrap_err()
        .to_string();
    let e2 = c
        .execute("SELECT * FROM lake.sales.hiddeN2".into(), None)
        .await
        .unwrap_err()
        .to_string();
    assert_eq!(
        e1.replace("hidden", "X"),
        e2.replace("hidden2", "X"),
        "{e1} / {e2}"
    );
}

/// EXPLAIN VERBOSE must not reveal anything computed below the secure view
/// (row counts including hidden rows, hidden column names/types).
#[tokio::test]
async fn review_explain_verbose_leaks_below_the_barrier() {
    let channel = start().await;
    let mut c = client(&channel, ALICE).await;
    // alice sees all 5 rows of orders but not column `secret`.
    let r = c
        .execute(
            "EXPLAIN VERBOSE SELECT id FROM lake.sales.orders".into(),
            None,
        )
        .await;
    let Ok(info) = r else { return }; // refusing EXPLAIN VERBOSE is fine
    let (b, _) = fetch(&channel, ALICE, ticket(&info)).await.unwrap();
    let text = format!("{b:?}");
    assert!(
        !text.contains("secret"),
        "hidden column named in EXPLAIN VERBOSE"
    );
}

/// A prepared handle lives at most its TTL: re-binding (DoPut) must not
/// extend it indefinitely.
#[tokio::test]
async fn review_doput_does_not_extend_handle_lifetime() {
    let channel = start().await;
    let mut raw = FlightServiceClient::new(channel.clone());
    let action = Action {
        r#type: "CreatePreparedStatement".into(),
        body: arrow_flight::sql::ActionCreatePreparedStatementRequest {
            query: "SELECT id FROM lake.sales.orders WHERE id > $1".into(),
            transaction_id: None,
        }
        .as_any()
        .encode_to_vec()
        .into(),
    };
    let mut res = raw
        .do_action(bearer(BOB, action))
        .await
        .unwrap()
        .into_inner();
    let body = res.next().await.unwrap().unwrap().body;
    let any = arrow_flight::sql::Any::decode(body).unwrap();
    let created: arrow_flight::sql::ActionCreatePreparedStatementResult =
        any.unpack().unwrap().unwrap();
    let h0 = created.prepared_statement_handle.clone();
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let mut c = client(&channel, BOB).await;
    let mut stmt = c
        .prepare(
            "SELECT id FROM lake.sales.orders WHERE id > $1".into(),
            None,
        )
        .await
        .unwrap();
    let _ = &mut stmt;
    // Bind through DoPut on the original handle.
    let p = RecordBatch::try_new(
        Arc::new(Schema::new(vec![Field::new("p", DataType::Int64, false)])),
        vec![Arc::new(Int64Array::from(vec![3]))],
    )
    .unwrap();
    let cmd = arrow_flight::sql::CommandPreparedStatementQuery {
        prepared_statement_handle: h0.clone(),
    };
    let descriptor = arrow_flight::FlightDescriptor::new_cmd(cmd.as_any().encode_to_vec());
    let flight_data = arrow_flight::encode::FlightDataEncoderBuilder::new()
        .with_flight_descriptor(Some(descriptor))
        .build(stream::iter(vec![Ok(p)]))
        .try_collect::<Vec<_>>()
        .await
        .unwrap();
    let mut put = raw
        .do_put(bearer(BOB, stream::iter(flight_data)))
        .await
        .unwrap()
        .into_inner();
    let result = put.next().await.unwrap().unwrap();
    let r = arrow_flight::sql::DoPutPreparedStatementResult::decode(&*result.app_metadata).unwrap();
    let h1 = r.prepared_statement_handle.unwrap();
    let (c0, c1) = (claims(&h0), claims(&h1));
    assert!(
        c1["expires_at"].as_u64() <= c0["expires_at"].as_u64(),
        "DoPut re-sealed the handle with a fresh lifetime: {c0} -> {c1}"
    );
}
