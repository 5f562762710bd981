//! Statement queries: `CommandStatementQuery` → `FlightInfo` with a signed
//! ticket, and `DoGet(TicketStatementQuery)` → the governed result stream
//! followed by the truncation trailer.

use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::SystemTime;

use arrow::array::RecordBatch;
use arrow::datatypes::SchemaRef;
use arrow::error::ArrowError;
use arrow_flight::encode::FlightDataEncoderBuilder;
use arrow_flight::error::FlightError;
use arrow_flight::sql::{ProstMessageExt, TicketStatementQuery};
use arrow_flight::utils::batches_to_flight_data;
use arrow_flight::{FlightData, FlightDescriptor, FlightEndpoint, FlightInfo, Ticket};
use datafusion::execution::RecordBatchStream;
use futures::{Stream, StreamExt, stream};
use prost::Message;
use sluice_planner::{
    AuditHandle, GovernedPlan, GovernedStream, Governor, Receipt, TRUNCATED_METADATA_KEY,
    TokenScope,
};
use tonic::Status;

use crate::error::{Error, Result};
use crate::ticket::{Kind, TicketSigner, decode_params};

/// The response stream of `DoGet` (arrow-flight's `FlightService::DoGetStream`).
pub(crate) type DoGetStream = Pin<Box<dyn Stream<Item = Result<FlightData, Status>> + Send>>;

/// Statements of the service: planned by the governor under the caller's
/// scope, handed out as signed tickets, run on `DoGet`.
#[derive(Debug)]
pub(crate) struct Statements {
    governor: Arc<Governor>,
    signer: TicketSigner,
    redeemed: crate::redeemed::Redeemed,
    planned: crate::planned::Planned,
}

/// The schema as it goes over the wire: the encoder hydrates dictionaries,
/// so `FlightInfo` must announce the hydrated schema.
pub(crate) fn flight_schema(schema: SchemaRef) -> SchemaRef {
    FlightDataEncoderBuilder::new()
        .with_schema(Arc::clone(&schema))
        .build(stream::empty())
        .known_schema()
        .unwrap_or(schema)
}

/// The JSON carried by the trailing `FlightData` of every statement result:
/// `{"sluice.truncated": bool, "rows": n, "sluice.receipt": {…}}` (the
/// receipt: see [`Receipt`]).
pub(crate) fn trailer_json(truncated: bool, rows: u64, receipt: &Receipt) -> String {
    let mut m = serde_json::Map::new();
    m.insert(TRUNCATED_METADATA_KEY.to_owned(), truncated.into());
    m.insert("rows".to_owned(), rows.into());
    m.insert(
        RECEIPT_METADATA_KEY.to_owned(),
        serde_json::to_value(receipt.clone().with_truncated(truncated)).unwrap_or_default(),
    );
    serde_json::Value::Object(m).to_string()
}

/// Key of the receipt in the trailer's JSON.
pub(crate) const RECEIPT_METADATA_KEY: &str = "sluice.receipt";

impl Statements {
    pub(crate) fn new(governor: Arc<Governor>, signer: TicketSigner) -> Self {
        Self {
            governor,
            signer,
            redeemed: Default::default(),
            planned: Default::default(),
        }
    }

    pub(crate) fn governor(&self) -> &Governor {
        &self.governor
    }

    pub(crate) fn signer(&self) -> &TicketSigner {
        &self.signer
    }

    /// How the `DoGet` of a statement ticket is charged (see
    /// [`crate::redeemed`]).
    pub(crate) fn redemption_charge(&self, handle: &[u8]) -> sluice_planner::auth::Charge {
        let ttl = self.signer.ttl(crate::ticket::Kind::Ticket);
        self.redeemed.charge(&self.signer, handle, ttl)
    }

    /// Plans `sql` under `scope`; the statement is audited even when
    /// planning fails.
    pub(crate) async fn plan(&self, scope: &Arc<TokenScope>, sql: &str) -> Result<GovernedPlan> {
        sluice_planner::audit::note(|a| a.statement = Some(sql.to_string()));
        Ok(self.governor.plan(scope, sql).await?)
    }

    /// Plans `sql` under `scope` and binds `params` (a one-row IPC stream)
    /// when given. A statement with placeholders but no bound values, or
    /// with a different number of values, is refused. Values are cast to
    /// the placeholder types the planner inferred where those are known.
    pub(crate) async fn governed_plan(
        &self,
        scope: &Arc<TokenScope>,
        sql: &str,
        params: Option<&[u8]>,
    ) -> Result<GovernedPlan> {
        let plan = self.plan(scope, sql).await?;
        let types = plan.parameter_types()?;
        let Some(params) = params else {
            if types.is_empty() {
                return Ok(plan);
            }
            return Err(Error::InvalidRequest(format!(
                "the statement has {} parameter(s) but no values are bound; \
                 bind them with DoPut on the prepared statement",
                types.len()
            )));
        };
        let values = decode_params(params)?;
        if values.len() != types.len() {
            return Err(Error::InvalidRequest(format!(
                "the statement has {} parameter(s) but {} value(s) are bound",
                types.len(),
                values.len()
            )));
        }
        let values = values
            .into_iter()
            .zip(types)
            .enumerate()
            .map(|(i, (value, ty))| match ty {
                Some(ty) if value.data_type() != ty => value.cast_to(&ty).map_err(|e| {
                    Error::InvalidRequest(format!(
                        "parameter ${}: cannot convert {} to {ty}: {}",
                        i + 1,
                        value.data_type(),
                        e.strip_backtrace()
                    ))
                }),
                _ => Ok(value),
            })
            .collect::<Result<Vec<_>>>()?;
        Ok(plan.bind(values)?)
    }

    /// Plans the statement (so errors surface now) and returns a `FlightInfo`
    /// with its schema and one endpoint whose ticket is self-contained.
    pub(crate) async fn statement_flight_info(
        &self,
        scope: &Arc<TokenScope>,
        sql: &str,
        params: Option<Vec<u8>>,
        descriptor: FlightDescriptor,
    ) -> Result<FlightInfo> {
        let plan = self.governed_plan(scope, sql, params.as_deref()).await?;
        let schema = flight_schema(plan.schema());
        let params_len = params.as_ref().map_or(0, Vec::len);
        let handle = self.signer().seal(
            Kind::Ticket,
            &scope.token_id,
            sql,
            params,
            SystemTime::now(),
        );
        let receipt = plan.facts().receipt.to_json();
        let statement_bytes = sql.len().saturating_add(params_len);
        self.planned.keep(&handle, statement_bytes, plan);
        let ticket = TicketStatementQuery {
            statement_handle: handle,
        };
        let endpoint =
            FlightEndpoint::new().with_ticket(Ticket::new(ticket.as_any().encode_to_vec()));
        Ok(FlightInfo::new()
            .try_with_schema(&schema)?
            .with_endpoint(endpoint)
            .with_descriptor(descriptor)
            .with_ordered(true)
            .with_app_metadata(receipt))
    }

    /// DoGet with a statement ticket: verify it for the caller, run the plan
    /// `GetFlightInfo` made if it was made here for the caller's current
    /// scope (see [`crate::planned`]), else re-plan; stream.
    pub(crate) async fn do_get_ticket(
        &self,
        scope: &Arc<TokenScope>,
        ticket: TicketStatementQuery,
    ) -> Result<DoGetStream> {
        let claims = self.signer().open(
            &ticket.statement_handle,
            Kind::Ticket,
            &scope.token_id,
            SystemTime::now(),
        )?;
        match self.planned.take(&ticket.statement_handle, scope) {
            Some((plan, waited)) => {
                sluice_planner::audit::note(|a| a.statement = Some(claims.sql.clone()));
                if let Some(audit) = sluice_planner::audit::current() {
                    audit.record_plan(plan.facts());
                }
                // The time limit counts from planning, not the client's
                // pause between the two calls.
                plan.postpone_deadline(waited);
                self.run(scope, plan).await
            }
            None => {
                self.execute(scope, &claims.sql, claims.params.as_deref())
                    .await
            }
        }
    }

    /// Plans, binds and executes a statement; the result stream ends with
    /// the truncation trailer.
    pub(crate) async fn execute(
        &self,
        scope: &Arc<TokenScope>,
        sql: &str,
        params: Option<&[u8]>,
    ) -> Result<DoGetStream> {
        let plan = self.governed_plan(scope, sql, params).await?;
        self.run(scope, plan).await
    }

    /// Executes a planned statement; the result stream ends with the
    /// truncation trailer.
    async fn run(&self, scope: &Arc<TokenScope>, plan: GovernedPlan) -> Result<DoGetStream> {
        let receipt = plan.facts().receipt.clone();
        let audit = sluice_planner::audit::current().unwrap_or_default();
        let stream = plan.execute().await?;
        // The physical stream's schema is what the batches really carry.
        let schema = stream.schema();
        Ok(result_stream(
            scope.token_id.clone(),
            schema,
            stream,
            receipt,
            audit,
        ))
    }
}

/// The trailer of a result without rows: a zero-row batch of `schema`
/// carrying `json` (see [`trailer_json`]) as its `app_metadata`.
///
/// A message with *only* `app_metadata` (empty IPC header) would be the
/// minimal form, but Go's Arrow IPC reader (ADBC Flight SQL driver) panics on
/// it ("index out of range") and arrow-rs' `FlightDataDecoder` rejects it, so
/// the metadata rides on an empty batch, which every reader accepts.
fn empty_batch_with(schema: &SchemaRef, json: String) -> Result<FlightData> {
    let empty = RecordBatch::new_empty(Arc::clone(schema));
    let mut messages = batches_to_flight_data(schema, vec![empty])?;
    // [schema, batch]: the schema is hydrated, so there are no dictionaries.
    let batch = messages
        .pop()
        .ok_or_else(|| ArrowError::IpcError("empty trailer encoding".to_owned()))?;
    Ok(batch.with_app_metadata(json))
}

/// Encodes a governed stream as Flight data; the last batch carries the
/// trailer JSON (`{"sluice.truncated": bool, "rows": n, …}`) in its
/// `app_metadata`, so clients see no extra batch. A result without rows
/// ends with [`empty_batch_with`] instead (an empty batch: the only carrier
/// every reader accepts). If the stream fails, the error ends the response
/// and there is no trailer.
fn result_stream(
    token_id: String,
    schema: SchemaRef,
    stream: GovernedStream,
    receipt: Receipt,
    audit: AuditHandle,
) -> DoGetStream {
    let wire_schema = flight_schema(Arc::clone(&schema));
    let truncated = stream.truncation_flag();
    let rows = Arc::new(AtomicU64::new(0));

    let counted = {
        let rows = Arc::clone(&rows);
        let audit = audit.clone();
        stream.map(move |item| match item {
            Ok(batch) => {
                rows.fetch_add(batch.num_rows() as u64, Ordering::Relaxed);
                audit.returned(
                    batch.num_rows() as u64,
                    batch.get_array_memory_size() as u64,
                );
                Ok(batch)
            }
            Err(e) => Err(FlightError::Tonic(Box::new(Status::from(Error::Planner(
                e.into(),
            ))))),
        })
    };
    let data = FlightDataEncoderBuilder::new()
        .with_schema(schema)
        .build(counted)
        .map(|item| item.map_err(|e| Status::from(Error::from(e))));
    let finish = move || {
        let truncated = truncated.load(Ordering::SeqCst);
        let rows = rows.load(Ordering::Relaxed);
        tracing::info!(token_id = %token_id, rows, truncated, "flight statement finished");
        audit.update(|a| a.truncated = truncated);
        trailer_json(truncated, rows, &receipt)
    };
    Box::pin(with_trailer(data, wire_schema, finish))
}

/// `data` (a schema message, then batch messages) with one batch held
/// back: when `data` ends, the held batch goes out with `trailer()` as its
/// `app_metadata`; when only the schema came, an empty trailer batch
/// follows it. An error goes out after the held batch and ends the stream
/// without a trailer.
fn with_trailer(
    data: impl Stream<Item = Result<FlightData, Status>> + Send + 'static,
    wire_schema: SchemaRef,
    trailer: impl FnOnce() -> String + Send + 'static,
) -> impl Stream<Item = Result<FlightData, Status>> + Send + 'static {
    struct State<S, F> {
        data: Pin<Box<S>>,
        /// The last batch message, not sent yet.
        held: Option<FlightData>,
        /// Messages seen (the first is the schema, sent at once).
        seen: usize,
        trailer: Option<F>,
        out: std::collections::VecDeque<Result<FlightData, Status>>,
    }
    let state = State {
        data: Box::pin(data),
        held: None,
        seen: 0,
        trailer: Some(trailer),
        out: std::collections::VecDeque::new(),
    };
    stream::unfold(state, move |mut st| {
        let wire_schema = Arc::clone(&wire_schema);
        async move {
            loop {
                if let Some(item) = st.out.pop_front() {
                    return Some((item, st));
                }
                let trailer = st.trailer.take()?;
                match st.data.next().await {
                    Some(Ok(message)) => {
                        st.seen += 1;
                        if st.seen == 1 {
                            // The schema goes out at once: clients see the
                            // result's shape before the first batch is read.
                            st.out.push_back(Ok(message));
                        } else {
                            st.out.extend(st.held.replace(message).map(Ok));
                        }
                        st.trailer = Some(trailer);
                    }
                    Some(Err(e)) => {
                        st.out.extend(st.held.take().map(Ok));
                        st.out.push_back(Err(e));
                    }
                    None => {
                        let json = trailer();
                        st.out.push_back(match st.held.take() {
                            Some(batch) => Ok(batch.with_app_metadata(json)),
                            None => empty_batch_with(&wire_schema, json).map_err(Status::from),
                        });
                    }
                }
            }
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn int_schema() -> SchemaRef {
        use arrow::datatypes::{DataType, Field, Schema};
        Arc::new(Schema::new(vec![Field::new("a", DataType::Int64, true)]))
    }

    /// `with_trailer` over the encoding of `batches` (and then `error`),
    /// decoded: (rows per batch, app_metadata per batch, the error).
    fn through_trailer(
        batches: Vec<RecordBatch>,
        error: Option<Status>,
    ) -> (Vec<usize>, Vec<Option<serde_json::Value>>, Option<Status>) {
        use arrow_flight::decode::{DecodedPayload, FlightDataDecoder};

        let schema = int_schema();
        let messages = batches_to_flight_data(&schema, batches).unwrap();
        let data = stream::iter(messages.into_iter().map(Ok).chain(error.map(Err)));
        let out = with_trailer(data, Arc::clone(&schema), || {
            trailer_json(true, 7, &Receipt::default())
        });
        let mut decoder = FlightDataDecoder::new(futures::TryStreamExt::map_err(out, |s| {
            FlightError::Tonic(Box::new(s))
        }));
        let (mut rows, mut metadata) = (Vec::new(), Vec::new());
        let failure = futures::executor::block_on(async {
            while let Some(item) = decoder.next().await {
                match item {
                    Ok(item) => {
                        if let DecodedPayload::RecordBatch(b) = &item.payload {
                            rows.push(b.num_rows());
                            metadata.push((!item.inner.app_metadata.is_empty()).then(|| {
                                serde_json::from_slice(&item.inner.app_metadata).unwrap()
                            }));
                        }
                    }
                    Err(FlightError::Tonic(s)) => return Some(*s),
                    Err(e) => panic!("{e}"),
                }
            }
            None
        });
        (rows, metadata, failure)
    }

    fn ints(values: &[i64]) -> RecordBatch {
        RecordBatch::try_new(
            int_schema(),
            vec![Arc::new(arrow::array::Int64Array::from(values.to_vec()))],
        )
        .unwrap()
    }

    #[test]
    fn the_trailer_rides_on_the_last_batch_without_an_extra_one() {
        let (rows, metadata, error) = through_trailer(vec![ints(&[1, 2]), ints(&[3])], None);
        assert_eq!(rows, [2, 1], "no empty batch at the end");
        assert!(metadata[0].is_none());
        let trailer = metadata[1]
            .as_ref()
            .expect("the last batch carries the trailer");
        assert_eq!(trailer["sluice.truncated"], serde_json::Value::Bool(true));
        assert_eq!(trailer["rows"], serde_json::json!(7));
        assert!(error.is_none());
    }

    #[test]
    fn a_result_without_rows_ends_with_an_empty_trailer_batch() {
        let (rows, metadata, error) = through_trailer(vec![], None);
        assert_eq!(rows, [0]);
        assert_eq!(metadata[0].as_ref().unwrap()["rows"], serde_json::json!(7));
        assert!(error.is_none());
    }

    #[test]
    fn a_failing_stream_ends_with_its_error_and_no_trailer() {
        let (rows, metadata, error) = through_trailer(
            vec![ints(&[1])],
            Some(Status::resource_exhausted("memory limit")),
        );
        assert_eq!(rows, [1], "what was read before the failure is sent");
        assert!(
            metadata.iter().all(Option::is_none),
            "no trailer: {metadata:?}"
        );
        assert_eq!(error.unwrap().code(), tonic::Code::ResourceExhausted);
    }

    #[test]
    fn trailer_format() {
        let v: serde_json::Value =
            serde_json::from_str(&trailer_json(true, 10, &Receipt::default())).unwrap();
        assert_eq!(v["sluice.truncated"], serde_json::Value::Bool(true));
        assert_eq!(v["rows"], serde_json::json!(10));
        let v: serde_json::Value =
            serde_json::from_str(&trailer_json(false, 0, &Receipt::default())).unwrap();
        assert_eq!(v["sluice.truncated"], serde_json::Value::Bool(false));
        assert_eq!(
            v["sluice.receipt"]["truncated"],
            serde_json::Value::Bool(false)
        );
        let receipt = Receipt {
            v: 1,
            masked: vec!["lake.hr.employees.ssn".into()],
            ..Receipt::default()
        };
        let v: serde_json::Value = serde_json::from_str(&trailer_json(true, 3, &receipt)).unwrap();
        assert_eq!(
            v["sluice.receipt"]["truncated"],
            serde_json::Value::Bool(true)
        );
        assert_eq!(v["sluice.receipt"]["masked"][0], "lake.hr.employees.ssn");
    }
}
