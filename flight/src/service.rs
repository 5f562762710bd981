//! [`SluiceFlightSqlService`]: the `FlightSqlService` implementation. Each
//! method authenticates the caller, delegates to the command modules and
//! converts the crate's [`Error`] into a `Status` (see `error.rs`).

use std::fmt;
use std::pin::Pin;
use std::sync::Arc;

use arrow::array::RecordBatch;
use arrow::datatypes::SchemaRef;
use arrow_flight::encode::FlightDataEncoderBuilder;
use arrow_flight::flight_service_server::FlightService;
use arrow_flight::sql::metadata::{SqlInfoData, XdbcTypeInfoData};
use arrow_flight::sql::server::{FlightSqlService, PeekableFlightDataStream};
use arrow_flight::sql::{
    ActionBeginSavepointRequest, ActionBeginSavepointResult, ActionBeginTransactionRequest,
    ActionBeginTransactionResult, ActionCancelQueryRequest, ActionCancelQueryResult,
    ActionClosePreparedStatementRequest, ActionCreatePreparedStatementRequest,
    ActionCreatePreparedStatementResult, ActionCreatePreparedSubstraitPlanRequest,
    ActionEndSavepointRequest, ActionEndTransactionRequest, Any, CommandGetCatalogs,
    CommandGetCrossReference, CommandGetDbSchemas, CommandGetExportedKeys, CommandGetImportedKeys,
    CommandGetPrimaryKeys, CommandGetSqlInfo, CommandGetTableTypes, CommandGetTables,
    CommandGetXdbcTypeInfo, CommandPreparedStatementQuery, CommandPreparedStatementUpdate,
    CommandStatementIngest, CommandStatementQuery, CommandStatementSubstraitPlan,
    CommandStatementUpdate, DoPutPreparedStatementResult, ProstMessageExt, SqlInfo,
    TicketStatementQuery,
};
use arrow_flight::{
    Action, ActionType, CancelFlightInfoRequest, CancelFlightInfoResult, CancelStatus,
    FlightDescriptor, FlightEndpoint, FlightInfo, HandshakeRequest, HandshakeResponse, Ticket,
};
use bytes::Bytes;
use futures::{Stream, TryStreamExt, stream};
use prost::Message;
use sluice_planner::auth::{Charge, Schemes};
use sluice_planner::{AuthFailureKind, Authenticator, Governor, TokenScope};
use tonic::metadata::MetadataValue;
use tonic::{Request, Response, Status, Streaming};

use crate::FlightConfig;
use crate::auth::{self, AUTHORIZATION};
use crate::error::{Error, Result};
use crate::metadata::{self, FOREIGN_KEYS_SCHEMA, PRIMARY_KEYS_SCHEMA};
use crate::statement::{DoGetStream, Statements};
use crate::ticket::TicketSigner;

type HandshakeStream = Pin<Box<dyn Stream<Item = Result<HandshakeResponse, Status>> + Send>>;

/// Name of the Flight (core) action that cancels a `FlightInfo`.
const CANCEL_FLIGHT_INFO: &str = "CancelFlightInfo";
/// `ActionCancelQueryResult.result` value `CANCEL_RESULT_CANCELLED`.
const CANCEL_RESULT_CANCELLED: i32 = 1;

/// The Flight SQL service of sluice. Build it with [`crate::flight_service`].
pub struct SluiceFlightSqlService {
    statements: Statements,
    auth: Arc<dyn Authenticator>,
    server_name: String,
    server_version: String,
    share_needs_client_cert: bool,
}

impl fmt::Debug for SluiceFlightSqlService {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SluiceFlightSqlService")
            .field("auth", &self.auth)
            .field("statements", &self.statements)
            .field("server_name", &self.server_name)
            .field("server_version", &self.server_version)
            .finish_non_exhaustive()
    }
}

impl SluiceFlightSqlService {
    /// See [`crate::flight_service`], including its panics.
    pub fn new(
        governor: Arc<Governor>,
        auth: Arc<dyn Authenticator>,
        config: FlightConfig,
    ) -> Self {
        assert!(
            config.ticket_key.len() >= crate::MIN_TICKET_KEY_LEN,
            "flight ticket_key must be at least {} bytes",
            crate::MIN_TICKET_KEY_LEN
        );
        Self {
            statements: Statements::new(
                governor,
                TicketSigner::new(&config.ticket_key, config.ticket_ttl),
            ),
            auth,
            server_name: config.server_name,
            server_version: config.server_version,
            share_needs_client_cert: config.share_needs_client_cert,
        }
    }

    fn governor(&self) -> &Governor {
        self.statements.governor()
    }

    /// Authenticates a bearer-token call (charged to the token's rate).
    async fn scope<T>(&self, request: &Request<T>) -> Result<Arc<TokenScope>> {
        self.scope_charged(request, Charge::Request).await
    }

    /// Authenticates a bearer-token call, charged as `charge` says.
    async fn scope_charged<T>(
        &self,
        request: &Request<T>,
        charge: Charge,
    ) -> Result<Arc<TokenScope>> {
        let (_secret, scope) = auth::authenticate(
            &*self.auth,
            request,
            Schemes::Bearer,
            self.share_needs_client_cert,
            charge,
        )
        .await?;
        Ok(scope)
    }

    fn sql_info(&self) -> Result<SqlInfoData> {
        metadata::sql_info_data(&self.server_name, &self.server_version)
    }

    async fn handshake(
        &self,
        request: Request<Streaming<HandshakeRequest>>,
    ) -> Result<Response<HandshakeStream>> {
        let (secret, scope) = auth::authenticate(
            &*self.auth,
            &request,
            Schemes::BearerOrBasic,
            self.share_needs_client_cert,
            Charge::Request,
        )
        .await?;
        tracing::info!(token_id = %scope.token_id, "flight handshake");
        // A Basic password may hold bytes a header cannot carry.
        let header = MetadataValue::try_from(format!("Bearer {}", secret.expose()))
            .map_err(|_| Error::Unauthenticated(AuthFailureKind::Malformed))?;
        let reply = HandshakeResponse {
            protocol_version: 0,
            payload: Bytes::from(secret.expose().to_owned()),
        };
        let body: HandshakeStream = Box::pin(stream::iter([Ok(reply)]));
        let mut response = Response::new(body);
        response.metadata_mut().insert(AUTHORIZATION, header);
        Ok(response)
    }

    /// `FlightInfo` of a catalog command: its ticket is the command itself
    /// (results are computed for whoever presents it, under their scope).
    async fn metadata_info<C: ProstMessageExt>(
        &self,
        command: &C,
        schema: SchemaRef,
        request: Request<FlightDescriptor>,
    ) -> Result<FlightInfo> {
        self.scope(&request).await?;
        let ticket = Ticket::new(command.as_any().encode_to_vec());
        Ok(FlightInfo::new()
            .try_with_schema(&schema)?
            .with_endpoint(FlightEndpoint::new().with_ticket(ticket))
            .with_descriptor(request.into_inner()))
    }
}

/// One record batch as a `DoGet` stream.
fn batch_stream(schema: SchemaRef, batch: RecordBatch) -> DoGetStream {
    Box::pin(
        FlightDataEncoderBuilder::new()
            .with_schema(schema)
            .build(stream::once(async { Ok(batch) }))
            .map_err(|e| Status::from(Error::from(e))),
    )
}

fn respond<T>(result: Result<T>) -> Result<Response<T>, Status> {
    result.map(Response::new).map_err(Status::from)
}

#[tonic::async_trait]
impl FlightSqlService for SluiceFlightSqlService {
    type FlightService = SluiceFlightSqlService;

    async fn do_handshake(
        &self,
        request: Request<Streaming<HandshakeRequest>>,
    ) -> Result<Response<HandshakeStream>, Status> {
        self.handshake(request).await.map_err(Status::from)
    }

    // ---- statements ----

    async fn get_flight_info_statement(
        &self,
        query: CommandStatementQuery,
        request: Request<FlightDescriptor>,
    ) -> Result<Response<FlightInfo>, Status> {
        respond(
            async {
                let scope = self.scope(&request).await?;
                if query.transaction_id.is_some() {
                    return Err(Error::Unsupported(
                        "sluice is read-only: transactions are not supported".to_owned(),
                    ));
                }
                self.statements
                    .statement_flight_info(&scope, &query.query, None, request.into_inner())
                    .await
            }
            .await,
        )
    }

    async fn get_flight_info_substrait_plan(
        &self,
        _query: CommandStatementSubstraitPlan,
        request: Request<FlightDescriptor>,
    ) -> Result<Response<FlightInfo>, Status> {
        respond(
            async {
                self.scope(&request).await?;
                Err(Error::Unsupported(
                    "sluice accepts SQL only, not Substrait plans".to_owned(),
                ))
            }
            .await,
        )
    }

    async fn do_get_statement(
        &self,
        ticket: TicketStatementQuery,
        request: Request<Ticket>,
    ) -> Result<Response<DoGetStream>, Status> {
        respond(
            async {
                // The statement was charged when its ticket was issued.
                let charge = self.statements.redemption_charge(&ticket.statement_handle);
                let scope = self.scope_charged(&request, charge).await?;
                self.statements.do_get_ticket(&scope, ticket).await
            }
            .await,
        )
    }

    // ---- prepared statements ----

    async fn do_action_create_prepared_statement(
        &self,
        query: ActionCreatePreparedStatementRequest,
        request: Request<Action>,
    ) -> Result<ActionCreatePreparedStatementResult, Status> {
        async {
            let scope = self.scope(&request).await?;
            self.statements.create_prepared(&scope, query).await
        }
        .await
        .map_err(Status::from)
    }

    async fn get_flight_info_prepared_statement(
        &self,
        query: CommandPreparedStatementQuery,
        request: Request<FlightDescriptor>,
    ) -> Result<Response<FlightInfo>, Status> {
        respond(
            async {
                let scope = self.scope(&request).await?;
                self.statements
                    .prepared_flight_info(&scope, query, request.into_inner())
                    .await
            }
            .await,
        )
    }

    async fn do_get_prepared_statement(
        &self,
        query: CommandPreparedStatementQuery,
        request: Request<Ticket>,
    ) -> Result<Response<DoGetStream>, Status> {
        respond(
            async {
                let scope = self.scope(&request).await?;
                self.statements.do_get_prepared(&scope, query).await
            }
            .await,
        )
    }

    async fn do_put_prepared_statement_query(
        &self,
        query: CommandPreparedStatementQuery,
        request: Request<PeekableFlightDataStream>,
    ) -> Result<DoPutPreparedStatementResult, Status> {
        async {
            let scope = self.scope(&request).await?;
            self.statements
                .bind_prepared(&scope, query, request.into_inner())
                .await
        }
        .await
        .map_err(Status::from)
    }

    async fn do_action_close_prepared_statement(
        &self,
        _query: ActionClosePreparedStatementRequest,
        request: Request<Action>,
    ) -> Result<(), Status> {
        // Handles are stateless: nothing to release.
        self.scope(&request).await.map(|_| ()).map_err(Status::from)
    }

    async fn do_action_create_prepared_substrait_plan(
        &self,
        _query: ActionCreatePreparedSubstraitPlanRequest,
        request: Request<Action>,
    ) -> Result<ActionCreatePreparedStatementResult, Status> {
        self.scope(&request).await.map_err(Status::from)?;
        Err(Error::Unsupported("sluice accepts SQL only, not Substrait plans".to_owned()).into())
    }

    // ---- catalog metadata ----

    async fn get_flight_info_catalogs(
        &self,
        query: CommandGetCatalogs,
        request: Request<FlightDescriptor>,
    ) -> Result<Response<FlightInfo>, Status> {
        let schema = query.into_builder().schema();
        respond(self.metadata_info(&query, schema, request).await)
    }

    async fn do_get_catalogs(
        &self,
        query: CommandGetCatalogs,
        request: Request<Ticket>,
    ) -> Result<Response<DoGetStream>, Status> {
        respond(
            async {
                let scope = self.scope(&request).await?;
                let batch = metadata::catalogs(self.governor(), &scope, query)?;
                Ok(batch_stream(batch.schema(), batch))
            }
            .await,
        )
    }

    async fn get_flight_info_schemas(
        &self,
        query: CommandGetDbSchemas,
        request: Request<FlightDescriptor>,
    ) -> Result<Response<FlightInfo>, Status> {
        let schema = query.clone().into_builder().schema();
        respond(self.metadata_info(&query, schema, request).await)
    }

    async fn do_get_schemas(
        &self,
        query: CommandGetDbSchemas,
        request: Request<Ticket>,
    ) -> Result<Response<DoGetStream>, Status> {
        respond(
            async {
                let scope = self.scope(&request).await?;
                let batch = metadata::db_schemas(self.governor(), &scope, query)?;
                Ok(batch_stream(batch.schema(), batch))
            }
            .await,
        )
    }

    async fn get_flight_info_tables(
        &self,
        query: CommandGetTables,
        request: Request<FlightDescriptor>,
    ) -> Result<Response<FlightInfo>, Status> {
        let schema = query.clone().into_builder().schema();
        respond(self.metadata_info(&query, schema, request).await)
    }

    async fn do_get_tables(
        &self,
        query: CommandGetTables,
        request: Request<Ticket>,
    ) -> Result<Response<DoGetStream>, Status> {
        respond(
            async {
                let scope = self.scope(&request).await?;
                let batch = metadata::tables(self.governor(), &scope, query).await?;
                Ok(batch_stream(batch.schema(), batch))
            }
            .await,
        )
    }

    async fn get_flight_info_table_types(
        &self,
        query: CommandGetTableTypes,
        request: Request<FlightDescriptor>,
    ) -> Result<Response<FlightInfo>, Status> {
        let schema = query.into_builder().schema();
        respond(self.metadata_info(&query, schema, request).await)
    }

    async fn do_get_table_types(
        &self,
        query: CommandGetTableTypes,
        request: Request<Ticket>,
    ) -> Result<Response<DoGetStream>, Status> {
        respond(
            async {
                self.scope(&request).await?;
                let batch = metadata::table_types(query)?;
                Ok(batch_stream(batch.schema(), batch))
            }
            .await,
        )
    }

    async fn get_flight_info_sql_info(
        &self,
        query: CommandGetSqlInfo,
        request: Request<FlightDescriptor>,
    ) -> Result<Response<FlightInfo>, Status> {
        respond(
            async {
                let schema = self.sql_info()?.schema();
                self.metadata_info(&query, schema, request).await
            }
            .await,
        )
    }

    async fn do_get_sql_info(
        &self,
        query: CommandGetSqlInfo,
        request: Request<Ticket>,
    ) -> Result<Response<DoGetStream>, Status> {
        respond(
            async {
                self.scope(&request).await?;
                let info = self.sql_info()?;
                let batch = query.into_builder(&info).build()?;
                Ok(batch_stream(batch.schema(), batch))
            }
            .await,
        )
    }

    async fn get_flight_info_xdbc_type_info(
        &self,
        query: CommandGetXdbcTypeInfo,
        request: Request<FlightDescriptor>,
    ) -> Result<Response<FlightInfo>, Status> {
        respond(
            async {
                let schema = metadata::xdbc_type_info_data()?.schema();
                self.metadata_info(&query, schema, request).await
            }
            .await,
        )
    }

    async fn do_get_xdbc_type_info(
        &self,
        query: CommandGetXdbcTypeInfo,
        request: Request<Ticket>,
    ) -> Result<Response<DoGetStream>, Status> {
        respond(
            async {
                self.scope(&request).await?;
                let data: XdbcTypeInfoData = metadata::xdbc_type_info_data()?;
                let batch = query.into_builder(&data).build()?;
                Ok(batch_stream(batch.schema(), batch))
            }
            .await,
        )
    }

    async fn get_flight_info_primary_keys(
        &self,
        query: CommandGetPrimaryKeys,
        request: Request<FlightDescriptor>,
    ) -> Result<Response<FlightInfo>, Status> {
        let schema = Arc::clone(&PRIMARY_KEYS_SCHEMA);
        respond(self.metadata_info(&query, schema, request).await)
    }

    async fn do_get_primary_keys(
        &self,
        _query: CommandGetPrimaryKeys,
        request: Request<Ticket>,
    ) -> Result<Response<DoGetStream>, Status> {
        respond(self.empty_keys(&request, &PRIMARY_KEYS_SCHEMA).await)
    }

    async fn get_flight_info_exported_keys(
        &self,
        query: CommandGetExportedKeys,
        request: Request<FlightDescriptor>,
    ) -> Result<Response<FlightInfo>, Status> {
        let schema = Arc::clone(&FOREIGN_KEYS_SCHEMA);
        respond(self.metadata_info(&query, schema, request).await)
    }

    async fn do_get_exported_keys(
        &self,
        _query: CommandGetExportedKeys,
        request: Request<Ticket>,
    ) -> Result<Response<DoGetStream>, Status> {
        respond(self.empty_keys(&request, &FOREIGN_KEYS_SCHEMA).await)
    }

    async fn get_flight_info_imported_keys(
        &self,
        query: CommandGetImportedKeys,
        request: Request<FlightDescriptor>,
    ) -> Result<Response<FlightInfo>, Status> {
        let schema = Arc::clone(&FOREIGN_KEYS_SCHEMA);
        respond(self.metadata_info(&query, schema, request).await)
    }

    async fn do_get_imported_keys(
        &self,
        _query: CommandGetImportedKeys,
        request: Request<Ticket>,
    ) -> Result<Response<DoGetStream>, Status> {
        respond(self.empty_keys(&request, &FOREIGN_KEYS_SCHEMA).await)
    }

    async fn get_flight_info_cross_reference(
        &self,
        query: CommandGetCrossReference,
        request: Request<FlightDescriptor>,
    ) -> Result<Response<FlightInfo>, Status> {
        let schema = Arc::clone(&FOREIGN_KEYS_SCHEMA);
        respond(self.metadata_info(&query, schema, request).await)
    }

    async fn do_get_cross_reference(
        &self,
        _query: CommandGetCrossReference,
        request: Request<Ticket>,
    ) -> Result<Response<DoGetStream>, Status> {
        respond(self.empty_keys(&request, &FOREIGN_KEYS_SCHEMA).await)
    }

    // ---- writes: refused ----

    async fn do_put_statement_update(
        &self,
        _ticket: CommandStatementUpdate,
        request: Request<PeekableFlightDataStream>,
    ) -> Result<i64, Status> {
        Err(self
            .refuse_write(&request, "updates are not accepted")
            .await)
    }

    async fn do_put_statement_ingest(
        &self,
        _ticket: CommandStatementIngest,
        request: Request<PeekableFlightDataStream>,
    ) -> Result<i64, Status> {
        Err(self
            .refuse_write(&request, "bulk ingestion is not accepted")
            .await)
    }

    async fn do_put_prepared_statement_update(
        &self,
        _query: CommandPreparedStatementUpdate,
        request: Request<PeekableFlightDataStream>,
    ) -> Result<i64, Status> {
        Err(self
            .refuse_write(&request, "updates are not accepted")
            .await)
    }

    async fn do_put_substrait_plan(
        &self,
        _query: CommandStatementSubstraitPlan,
        request: Request<PeekableFlightDataStream>,
    ) -> Result<i64, Status> {
        Err(self
            .refuse_write(&request, "Substrait plans are not accepted")
            .await)
    }

    async fn do_action_begin_transaction(
        &self,
        _query: ActionBeginTransactionRequest,
        request: Request<Action>,
    ) -> Result<ActionBeginTransactionResult, Status> {
        Err(self.refuse_transactions(&request).await)
    }

    async fn do_action_end_transaction(
        &self,
        _query: ActionEndTransactionRequest,
        request: Request<Action>,
    ) -> Result<(), Status> {
        Err(self.refuse_transactions(&request).await)
    }

    async fn do_action_begin_savepoint(
        &self,
        _query: ActionBeginSavepointRequest,
        request: Request<Action>,
    ) -> Result<ActionBeginSavepointResult, Status> {
        Err(self.refuse_transactions(&request).await)
    }

    async fn do_action_end_savepoint(
        &self,
        _query: ActionEndSavepointRequest,
        request: Request<Action>,
    ) -> Result<(), Status> {
        Err(self.refuse_transactions(&request).await)
    }

    // ---- cancellation ----

    async fn do_action_cancel_query(
        &self,
        _query: ActionCancelQueryRequest,
        request: Request<Action>,
    ) -> Result<ActionCancelQueryResult, Status> {
        // Tickets are stateless: nothing runs until DoGet, and a DoGet stops
        // when its client goes away.
        self.scope(&request).await.map_err(Status::from)?;
        Ok(ActionCancelQueryResult {
            result: CANCEL_RESULT_CANCELLED,
        })
    }

    async fn do_action_fallback(
        &self,
        request: Request<Action>,
    ) -> Result<Response<<Self as FlightService>::DoActionStream>, Status> {
        self.scope(&request).await.map_err(Status::from)?;
        let action = request.into_inner();
        if action.r#type != CANCEL_FLIGHT_INFO {
            return Err(Error::Unsupported(format!("unknown action '{}'", action.r#type)).into());
        }
        CancelFlightInfoRequest::decode(action.body).map_err(|e| {
            Status::from(Error::InvalidRequest(format!(
                "invalid CancelFlightInfoRequest: {e}"
            )))
        })?;
        let result = CancelFlightInfoResult::new(CancelStatus::Cancelled);
        let body = arrow_flight::Result::new(result.encode_to_vec());
        Ok(Response::new(Box::pin(stream::iter([Ok(body)]))))
    }

    async fn list_custom_actions(&self) -> Option<Vec<Result<ActionType, Status>>> {
        Some(vec![Ok(ActionType {
            r#type: CANCEL_FLIGHT_INFO.to_owned(),
            description: "Cancels a FlightInfo (acknowledged: sluice tickets are stateless).\n
                Request Message: CancelFlightInfoRequest\n
                Response Message: CancelFlightInfoResult"
                .to_owned(),
        })])
    }

    async fn do_get_fallback(
        &self,
        request: Request<Ticket>,
        message: Any,
    ) -> Result<Response<DoGetStream>, Status> {
        self.scope(&request).await.map_err(Status::from)?;
        Err(Error::InvalidRequest(format!("unsupported ticket type '{}'", message.type_url)).into())
    }

    async fn register_sql_info(&self, _id: i32, _result: &SqlInfo) {}
}

impl SluiceFlightSqlService {
    async fn empty_keys(
        &self,
        request: &Request<Ticket>,
        schema: &SchemaRef,
    ) -> Result<DoGetStream> {
        self.scope(request).await?;
        let batch = RecordBatch::new_empty(Arc::clone(schema));
        Ok(batch_stream(Arc::clone(schema), batch))
    }

    /// The error for a write: authentication first, then "read-only".
    async fn refuse_write<T>(&self, request: &Request<T>, what: &'static str) -> Status {
        match self.scope(request).await {
            Err(e) => e.into(),
            Ok(_) => Error::ReadOnly(what).into(),
        }
    }

    async fn refuse_transactions(&self, request: &Request<Action>) -> Status {
        self.refuse_write(request, "transactions are not supported")
            .await
    }
}
