//! The Flight SQL requests to a peer: the share token (and trace id) on
//! every request, `GetFlightInfo` then `DoGet` on each endpoint, every
//! message of the answer under the request timeout.

use std::sync::Arc;
use std::time::{Duration, Instant};

use arrow::record_batch::RecordBatch;
use arrow_flight::decode::FlightRecordBatchStream;
use arrow_flight::error::FlightError;
use arrow_flight::flight_service_client::FlightServiceClient;
use arrow_flight::sql::{CommandStatementQuery, ProstMessageExt};
use arrow_flight::{FlightDescriptor, FlightInfo};
use datafusion::common::Result as DfResult;
use futures::{StreamExt, TryStreamExt};
use prost::Message;
use tonic::transport::Channel;

use super::peer::Peer;
use super::state::Failure;

/// Largest gRPC message accepted from a provider.
const MAX_MESSAGE_BYTES: usize = 64 << 20;

impl Peer {
    fn client(&self) -> FlightServiceClient<Channel> {
        // Bounded: a provider cannot make the receiver allocate without limit.
        FlightServiceClient::new(self.channel.clone())
            .max_decoding_message_size(MAX_MESSAGE_BYTES)
            .max_encoding_message_size(MAX_MESSAGE_BYTES)
    }

    fn request<T>(&self, message: T) -> Result<tonic::Request<T>, Failure> {
        let mut req = tonic::Request::new(message);
        let value = format!("Bearer {}", self.config.secret.expose())
            .parse()
            .map_err(|_| Failure::Protocol("the share token is not a valid header".into()))?;
        req.metadata_mut().insert("authorization", value);
        if let Some(trace) = sluice_planner::audit::current().and_then(|h| h.snapshot().trace_id) {
            // Not a full traceparent (no parent span id here); the request
            // id correlates the two gateways' audit records.
            if let Ok(v) = trace.parse() {
                req.metadata_mut().insert("x-sluice-origin-trace", v);
            }
        }
        Ok(req)
    }

    /// Sends a Flight SQL command, returns its endpoints' decoded stream.
    pub(super) async fn open(
        self: &Arc<Self>,
        command: Vec<u8>,
    ) -> Result<futures::stream::BoxStream<'static, Result<RecordBatch, Failure>>, Failure> {
        self.admit()?;
        self.send(command).await
    }

    /// [`Peer::open`] without asking the circuit.
    pub(super) async fn send(
        self: &Arc<Self>,
        command: Vec<u8>,
    ) -> Result<futures::stream::BoxStream<'static, Result<RecordBatch, Failure>>, Failure> {
        let mut client = self.client();
        let descriptor = FlightDescriptor::new_cmd(command);
        let info: FlightInfo = tokio::time::timeout(
            self.config.request_timeout + self.config.connect_timeout,
            client.get_flight_info(self.request(descriptor)?),
        )
        .await
        .map_err(|_| Failure::Down {
            kind: "timeout",
            detail: format!("no answer within {:?}", self.config.request_timeout),
        })?
        .map_err(|s| self.classify(s))?
        .into_inner();
        let this = Arc::clone(self);
        let idle = self.config.request_timeout;
        let tickets: Vec<_> = info.endpoint.into_iter().filter_map(|e| e.ticket).collect();
        let stream = futures::stream::iter(tickets)
            .then(move |ticket| {
                let this = Arc::clone(&this);
                async move {
                    let mut client = this.client();
                    let response = tokio::time::timeout(idle, client.do_get(this.request(ticket)?))
                        .await
                        .map_err(|_| Failure::Down {
                            kind: "timeout",
                            detail: format!("no answer within {idle:?}"),
                        })?
                        .map_err(|s| this.classify(s))?;
                    let flights = response.into_inner().map_err(FlightError::from);
                    let batches = FlightRecordBatchStream::new_from_flight_data(flights);
                    let this2 = Arc::clone(&this);
                    Ok::<_, Failure>(
                        timeout_each(batches, idle)
                            .map(move |r| r.map_err(|e| this2.flight_failure(e))),
                    )
                }
            })
            .map(|r| match r {
                Ok(s) => s.boxed(),
                Err(f) => futures::stream::once(async move { Err(f) }).boxed(),
            })
            .flatten()
            .boxed();
        Ok(stream)
    }

    /// Runs `sql` at the provider and streams the answer.
    pub(super) fn query(self: &Arc<Self>, sql: String) -> SendableStream {
        enum Phase {
            Start(Vec<u8>),
            Streaming(futures::stream::BoxStream<'static, Result<RecordBatch, Failure>>),
            Done,
        }
        struct State {
            peer: Arc<Peer>,
            phase: Phase,
            started: Instant,
            first: bool,
        }
        let command = CommandStatementQuery {
            query: sql,
            transaction_id: None,
        }
        .as_any()
        .encode_to_vec();
        let state = State {
            peer: Arc::clone(self),
            phase: Phase::Start(command),
            started: Instant::now(),
            first: true,
        };
        futures::stream::unfold(state, |mut st| async move {
            loop {
                match std::mem::replace(&mut st.phase, Phase::Done) {
                    Phase::Done => return None,
                    Phase::Start(command) => match st.peer.open(command).await {
                        Ok(stream) => st.phase = Phase::Streaming(stream),
                        Err(f) => {
                            let e = st.peer.settle::<()>(Err(f)).err()?;
                            return Some((Err(e), st));
                        }
                    },
                    Phase::Streaming(mut stream) => match stream.next().await {
                        Some(Ok(batch)) => {
                            if st.first {
                                st.first = false;
                                metrics::histogram!("sluice_peer_request_duration_seconds", "peer" => st.peer.config.name.clone())
                                    .record(st.started.elapsed().as_secs_f64());
                            }
                            st.phase = Phase::Streaming(stream);
                            return Some((Ok(batch), st));
                        }
                        Some(Err(f)) => {
                            let e = st.peer.settle::<()>(Err(f)).err()?;
                            return Some((Err(e), st));
                        }
                        None => {
                            let _ = st.peer.settle(Ok(()));
                            return None;
                        }
                    },
                }
            }
        })
        .boxed()
    }
}

type SendableStream = futures::stream::BoxStream<'static, DfResult<RecordBatch>>;

/// Items of `stream`, failing with `Err(None)` when one takes longer than `idle`.
fn timeout_each<S>(
    stream: S,
    idle: Duration,
) -> impl futures::Stream<Item = Result<RecordBatch, Option<FlightError>>> + Send
where
    S: futures::Stream<Item = Result<RecordBatch, FlightError>> + Send + Unpin + 'static,
{
    futures::stream::unfold(Some(stream), move |state| async move {
        let mut stream = state?;
        match tokio::time::timeout(idle, stream.next()).await {
            Err(_) => Some((Err(None), None)),
            Ok(None) => None,
            Ok(Some(Ok(b))) => Some((Ok(b), Some(stream))),
            Ok(Some(Err(e))) => Some((Err(Some(e)), None)),
        }
    })
}
