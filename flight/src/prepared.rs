//! Prepared statements, stateless.
//!
//! ADBC runs every query as CreatePreparedStatement → GetFlightInfo(prepared)
//! → DoGet → ClosePreparedStatement, adding DoPut(prepared) to bind
//! parameters. The handle is a signed [`Kind::Prepared`] blob carrying the
//! SQL and, after DoPut, the bound parameter row; DoPut answers with a *new*
//! handle (`DoPutPreparedStatementResult.prepared_statement_handle`), so no
//! replica keeps state and Close has nothing to release.

use std::sync::Arc;
use std::time::SystemTime;

use arrow::array::RecordBatch;
use arrow::datatypes::{DataType, Field, Schema};
use arrow::ipc::writer::IpcWriteOptions;
use arrow_flight::decode::FlightRecordBatchStream;
use arrow_flight::error::FlightError;
use arrow_flight::sql::server::PeekableFlightDataStream;
use arrow_flight::sql::{
    ActionCreatePreparedStatementRequest, ActionCreatePreparedStatementResult,
    CommandPreparedStatementQuery, DoPutPreparedStatementResult,
};
use arrow_flight::{FlightDescriptor, FlightInfo, IpcMessage, SchemaAsIpc};
use bytes::Bytes;
use futures::{StreamExt, TryStreamExt};
use sluice_planner::TokenScope;

use crate::error::{Error, Result};
use crate::statement::{DoGetStream, Statements, flight_schema};
use crate::ticket::{Claims, Kind, check_params, encode_params};

/// Most Flight messages in a parameter DoPut (schema, dictionaries, the
/// row): a handful are enough.
const MAX_PARAM_MESSAGES: usize = 16;

/// Arrow IPC encapsulated schema message, as Flight SQL expects it in
/// `dataset_schema` / `parameter_schema`.
fn ipc_schema(schema: &Schema) -> Result<Bytes> {
    let IpcMessage(bytes) = SchemaAsIpc::new(schema, &IpcWriteOptions::default()).try_into()?;
    Ok(bytes)
}

impl Statements {
    fn open_handle(&self, scope: &Arc<TokenScope>, handle: &[u8]) -> Result<Claims> {
        Ok(self
            .signer()
            .open(handle, Kind::Prepared, &scope.token_id, SystemTime::now())?)
    }

    /// CreatePreparedStatement: plan now (so SQL and policy errors surface
    /// here), return the result schema, the parameter schema (`$1`…`$n`, type
    /// `Null` where the planner could not infer one) and a signed handle.
    pub(crate) async fn create_prepared(
        &self,
        scope: &Arc<TokenScope>,
        request: ActionCreatePreparedStatementRequest,
    ) -> Result<ActionCreatePreparedStatementResult> {
        if request.transaction_id.is_some() {
            return Err(Error::Unsupported(
                "sluice is read-only: transactions are not supported".to_owned(),
            ));
        }
        let plan = self.plan(scope, &request.query).await?;
        let dataset_schema = ipc_schema(&flight_schema(plan.schema()))?;
        let types = plan.parameter_types()?;
        let parameter_schema = if types.is_empty() {
            Bytes::new()
        } else {
            let fields: Vec<Field> = types
                .into_iter()
                .enumerate()
                .map(|(i, t)| {
                    // Clients bind plain strings; binding casts them back.
                    let t = t.map_or(DataType::Null, |t| sluice_planner::wire_type(&t));
                    Field::new(format!("${}", i + 1), t, true)
                })
                .collect();
            ipc_schema(&Schema::new(fields))?
        };
        let handle = self.signer().seal(
            Kind::Prepared,
            &scope.token_id,
            &request.query,
            None,
            SystemTime::now(),
        );
        Ok(ActionCreatePreparedStatementResult {
            prepared_statement_handle: handle,
            dataset_schema,
            parameter_schema,
        })
    }

    /// GetFlightInfo(CommandPreparedStatementQuery): the same as a statement
    /// query with the handle's SQL and bound parameters.
    pub(crate) async fn prepared_flight_info(
        &self,
        scope: &Arc<TokenScope>,
        command: CommandPreparedStatementQuery,
        descriptor: FlightDescriptor,
    ) -> Result<FlightInfo> {
        let claims = self.open_handle(scope, &command.prepared_statement_handle)?;
        self.statement_flight_info(scope, &claims.sql, claims.params, descriptor)
            .await
    }

    /// DoGet with a `CommandPreparedStatementQuery` ticket (not what
    /// GetFlightInfo hands out, but some clients send it).
    pub(crate) async fn do_get_prepared(
        &self,
        scope: &Arc<TokenScope>,
        command: CommandPreparedStatementQuery,
    ) -> Result<DoGetStream> {
        let claims = self.open_handle(scope, &command.prepared_statement_handle)?;
        self.execute(scope, &claims.sql, claims.params.as_deref())
            .await
    }

    /// DoPut(CommandPreparedStatementQuery): read exactly one parameter row,
    /// check it binds (count and types), and return a new handle carrying it.
    /// Zero rows clears the bound parameters.
    pub(crate) async fn bind_prepared(
        &self,
        scope: &Arc<TokenScope>,
        command: CommandPreparedStatementQuery,
        input: PeekableFlightDataStream,
    ) -> Result<DoPutPreparedStatementResult> {
        let claims = self.open_handle(scope, &command.prepared_statement_handle)?;
        // A parameter stream is small: at most as many bytes as a
        // statement, in a few messages (dictionary deltas included).
        let max_bytes = self.governor().limits().config.max_statement_bytes as usize;
        let mut received = 0usize;
        let mut messages = 0usize;
        let bounded = input.map(move |item| {
            let data = item?;
            received = received.saturating_add(data.data_header.len() + data.data_body.len());
            messages += 1;
            if received > max_bytes || messages > MAX_PARAM_MESSAGES {
                return Err(tonic::Status::invalid_argument(format!(
                    "a parameter DoPut sends at most {max_bytes} bytes (limits.max_statement_bytes) in \
                     {MAX_PARAM_MESSAGES} messages"
                )));
            }
            Ok(data)
        });
        let mut batches =
            FlightRecordBatchStream::new_from_flight_data(bounded.map_err(FlightError::from));
        let mut row: Option<RecordBatch> = None;
        let mut rows = 0usize;
        while let Some(batch) = batches.next().await {
            let batch = batch.map_err(|e| {
                Error::InvalidRequest(format!("cannot read the parameter batch: {e}"))
            })?;
            rows += batch.num_rows();
            if rows > 1 {
                return Err(Error::InvalidRequest(
                    "sluice binds exactly one row of parameters per query; \
                     execute the query once per parameter row"
                        .to_owned(),
                ));
            }
            if batch.num_rows() == 1 {
                row = Some(batch);
            }
        }
        if let Some(row) = &row {
            check_params(row)?;
        }
        let params = row.as_ref().map(encode_params).transpose()?;
        // Bind now so that wrong counts or types are reported by DoPut.
        self.governed_plan(scope, &claims.sql, params.as_deref())
            .await?;
        // The new handle keeps the original lifetime: re-binding must not
        // keep a handle alive forever.
        let handle = self.signer().rebind(&claims, params);
        Ok(DoPutPreparedStatementResult {
            prepared_statement_handle: Some(handle),
        })
    }
}
