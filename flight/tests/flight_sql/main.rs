//! End-to-end tests of the Flight SQL service over loopback gRPC, with an
//! in-memory catalog, a fixed-table authenticator and arrow-flight's own
//! Flight SQL client: the protocol (`protocol`), and what a client cannot
//! get past (`hardening`). The fixture (two tokens over `lake.sales`) is
//! here.

mod hardening;
mod hostile;
mod ingress_probes;
mod protocol;

use std::sync::Arc;
use std::time::Duration;

use arrow::array::{Array, Int32Array, Int64Array, RecordBatch, StringArray};
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
use base64::Engine;
use base64::engine::general_purpose::STANDARD_NO_PAD;
use futures::{StreamExt, TryStreamExt, stream};
use prost::Message;
use sluice_flight::{FlightConfig, flight_service};
use sluice_planner::{Authenticator, Governor};
use sluice_test_support::sales::{self, ALICE, BOB};
use tokio::net::TcpListener;
use tonic::transport::server::TcpIncoming;
use tonic::transport::{Channel, Server};
use tonic::{Code, Request};

/// The service over the sales fixture (Alice and Bob).
async fn start() -> Channel {
    serve(sales::governor(), Arc::new(sales::authenticator()), false).await
}

/// The service over `governor` with `auth`, on a loopback port.
async fn serve(
    governor: Governor,
    auth: Arc<dyn Authenticator>,
    share_needs_client_cert: bool,
) -> Channel {
    let svc = flight_service(
        Arc::new(governor),
        auth,
        FlightConfig {
            ticket_key: vec![7u8; 32],
            ticket_ttl: Duration::from_secs(60),
            server_name: "sluice-test".into(),
            server_version: "0.0.1".into(),
            share_needs_client_cert,
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
                // The last batch carries the trailer; only a result without
                // rows needs an empty one.
                assert!(
                    b.num_rows() > 0 || batches.is_empty(),
                    "an empty trailer batch after rows"
                );
                trailer = Some(serde_json::from_slice(&item.inner.app_metadata).unwrap());
                if b.num_rows() > 0 {
                    batches.push(b);
                }
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

/// The `CreatePreparedStatement` action for `sql`.
fn create_prepared_action(sql: &str) -> Action {
    Action {
        r#type: "CreatePreparedStatement".into(),
        body: arrow_flight::sql::ActionCreatePreparedStatementRequest {
            query: sql.into(),
            transaction_id: None,
        }
        .as_any()
        .encode_to_vec()
        .into(),
    }
}

/// CreatePreparedStatement through the raw action API, as `secret`: the
/// handle exactly as sent.
async fn create_prepared_raw(
    raw: &mut FlightServiceClient<Channel>,
    secret: &str,
    sql: &str,
) -> arrow_flight::sql::ActionCreatePreparedStatementResult {
    let mut res = raw
        .do_action(bearer(secret, create_prepared_action(sql)))
        .await
        .unwrap()
        .into_inner();
    let body = res.next().await.unwrap().unwrap().body;
    arrow_flight::sql::Any::decode(body)
        .unwrap()
        .unpack()
        .unwrap()
        .unwrap()
}

/// The message of the error the client gets for `sql`.
async fn error_of(c: &mut FlightSqlServiceClient<Channel>, sql: &str) -> String {
    c.execute(sql.into(), None).await.unwrap_err().to_string()
}
