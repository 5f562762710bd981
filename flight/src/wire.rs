//! Malformed Flight SQL messages are the client's mistake.
//!
//! arrow-flight's dispatcher answers a command, ticket or action body
//! whose fields do not decode (a truncated message, text that is not
//! UTF-8) with `INTERNAL` and a debug dump of the decoder's error. The
//! service sluice serves ([`Checked`]) decodes those messages first and
//! answers such input with `INVALID_ARGUMENT` naming what was malformed,
//! then hands the request to the Flight SQL service unchanged. A call
//! that panics is answered with an internal error.

use arrow_flight::flight_service_server::FlightService;
use arrow_flight::sql::{
    ActionBeginSavepointRequest, ActionBeginTransactionRequest, ActionCancelQueryRequest,
    ActionClosePreparedStatementRequest, ActionCreatePreparedStatementRequest,
    ActionCreatePreparedSubstraitPlanRequest, ActionEndSavepointRequest,
    ActionEndTransactionRequest, Any, Command, ProstMessageExt,
};
use arrow_flight::{
    Action, Criteria, Empty, FlightData, FlightDescriptor, FlightInfo, HandshakeRequest, PollInfo,
    SchemaResult, Ticket,
};
use futures::FutureExt;
use prost::Message;
use std::panic::AssertUnwindSafe;
use tonic::{Request, Response, Status, Streaming};

use crate::service::SluiceFlightSqlService;

/// The Flight SQL service behind a check that its messages decode.
pub struct Checked(pub(crate) SluiceFlightSqlService);

impl std::fmt::Debug for Checked {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Checked(SluiceFlightSqlService)")
    }
}

/// Runs one call of the Flight SQL service; a panic inside it (a bug, in
/// sluice or in a decoder below it) answers that call with an internal
/// error instead of tearing down the connection and every call on it.
async fn guarded<T>(
    call: impl std::future::Future<Output = Result<T, Status>>,
) -> Result<T, Status> {
    match AssertUnwindSafe(call).catch_unwind().await {
        Ok(result) => result,
        Err(_) => {
            tracing::error!("a Flight SQL call panicked; it alone failed");
            Err(Status::internal("internal error (see server logs)"))
        }
    }
}

/// Refuses bytes that are not a well-formed Flight SQL command or ticket.
pub(crate) fn check_command(bytes: &[u8], what: &str) -> Result<(), Status> {
    let any = Any::decode(bytes).map_err(|_| {
        Status::invalid_argument(format!("malformed Flight SQL {what}: not a protobuf Any"))
    })?;
    Command::try_from(any).map(|_| ()).map_err(|_| {
        Status::invalid_argument(format!(
            "malformed Flight SQL {what}: its fields do not decode (text must be UTF-8)"
        ))
    })
}

/// Refuses an action whose body is not the message its type calls for.
pub(crate) fn check_action(action: &Action) -> Result<(), Status> {
    fn unpacks<T: ProstMessageExt>(any: &Any) -> bool {
        any.unpack::<T>().is_ok_and(|m| m.is_some())
    }
    let known = [
        "CreatePreparedStatement",
        "ClosePreparedStatement",
        "CreatePreparedSubstraitPlan",
        "BeginTransaction",
        "EndTransaction",
        "BeginSavepoint",
        "EndSavepoint",
        "CancelQuery",
    ];
    if !known.contains(&action.r#type.as_str()) {
        return Ok(());
    }
    let malformed = || {
        Status::invalid_argument(format!(
            "malformed body of Flight SQL action {}",
            action.r#type
        ))
    };
    let any = Any::decode(&*action.body).map_err(|_| malformed())?;
    let ok = match action.r#type.as_str() {
        "CreatePreparedStatement" => unpacks::<ActionCreatePreparedStatementRequest>(&any),
        "ClosePreparedStatement" => unpacks::<ActionClosePreparedStatementRequest>(&any),
        "CreatePreparedSubstraitPlan" => unpacks::<ActionCreatePreparedSubstraitPlanRequest>(&any),
        "BeginTransaction" => unpacks::<ActionBeginTransactionRequest>(&any),
        "EndTransaction" => unpacks::<ActionEndTransactionRequest>(&any),
        "BeginSavepoint" => unpacks::<ActionBeginSavepointRequest>(&any),
        "EndSavepoint" => unpacks::<ActionEndSavepointRequest>(&any),
        _ => unpacks::<ActionCancelQueryRequest>(&any),
    };
    if ok { Ok(()) } else { Err(malformed()) }
}

#[tonic::async_trait]
impl FlightService for Checked {
    type HandshakeStream = <SluiceFlightSqlService as FlightService>::HandshakeStream;
    type ListFlightsStream = <SluiceFlightSqlService as FlightService>::ListFlightsStream;
    type DoGetStream = <SluiceFlightSqlService as FlightService>::DoGetStream;
    type DoPutStream = <SluiceFlightSqlService as FlightService>::DoPutStream;
    type DoActionStream = <SluiceFlightSqlService as FlightService>::DoActionStream;
    type ListActionsStream = <SluiceFlightSqlService as FlightService>::ListActionsStream;
    type DoExchangeStream = <SluiceFlightSqlService as FlightService>::DoExchangeStream;

    async fn handshake(
        &self,
        request: Request<Streaming<HandshakeRequest>>,
    ) -> Result<Response<Self::HandshakeStream>, Status> {
        guarded(self.0.handshake(request)).await
    }

    async fn list_flights(
        &self,
        request: Request<Criteria>,
    ) -> Result<Response<Self::ListFlightsStream>, Status> {
        guarded(self.0.list_flights(request)).await
    }

    async fn get_flight_info(
        &self,
        request: Request<FlightDescriptor>,
    ) -> Result<Response<FlightInfo>, Status> {
        check_command(&request.get_ref().cmd, "command")?;
        guarded(self.0.get_flight_info(request)).await
    }

    async fn poll_flight_info(
        &self,
        request: Request<FlightDescriptor>,
    ) -> Result<Response<PollInfo>, Status> {
        check_command(&request.get_ref().cmd, "command")?;
        guarded(self.0.poll_flight_info(request)).await
    }

    async fn get_schema(
        &self,
        request: Request<FlightDescriptor>,
    ) -> Result<Response<SchemaResult>, Status> {
        check_command(&request.get_ref().cmd, "command")?;
        guarded(self.0.get_schema(request)).await
    }

    async fn do_get(
        &self,
        request: Request<Ticket>,
    ) -> Result<Response<Self::DoGetStream>, Status> {
        check_command(&request.get_ref().ticket, "ticket")?;
        guarded(self.0.do_get(request)).await
    }

    async fn do_put(
        &self,
        request: Request<Streaming<FlightData>>,
    ) -> Result<Response<Self::DoPutStream>, Status> {
        guarded(self.0.do_put(request)).await
    }

    async fn do_exchange(
        &self,
        request: Request<Streaming<FlightData>>,
    ) -> Result<Response<Self::DoExchangeStream>, Status> {
        guarded(self.0.do_exchange(request)).await
    }

    async fn do_action(
        &self,
        request: Request<Action>,
    ) -> Result<Response<Self::DoActionStream>, Status> {
        check_action(request.get_ref())?;
        guarded(self.0.do_action(request)).await
    }

    async fn list_actions(
        &self,
        request: Request<Empty>,
    ) -> Result<Response<Self::ListActionsStream>, Status> {
        guarded(self.0.list_actions(request)).await
    }
}
