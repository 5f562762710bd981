//! Bench baseline (`benches/engine.py`): a minimal, ungoverned Flight SQL
//! server over DataFusion — statement queries only, no authentication, no
//! policy, no audit — serving Parquet directories as tables. What a query
//! costs here is the floor sluice's per-query overhead is compared with.
//!
//! ```text
//! cargo run --release --example plain_flight_sql -- <addr> <table>=<parquet dir> ...
//! ```

use std::pin::Pin;

use arrow_flight::encode::FlightDataEncoderBuilder;
use arrow_flight::error::FlightError;
use arrow_flight::flight_service_server::FlightServiceServer;
use arrow_flight::sql::server::FlightSqlService;
use arrow_flight::sql::{CommandStatementQuery, ProstMessageExt, SqlInfo, TicketStatementQuery};
use arrow_flight::{FlightDescriptor, FlightEndpoint, FlightInfo, Ticket};
use datafusion::prelude::SessionContext;
use futures::{Stream, TryStreamExt};
use prost::Message;
use tonic::{Request, Response, Status};

#[path = "support/bench.rs"]
mod bench;

#[derive(Clone)]
struct Plain {
    ctx: SessionContext,
}

fn status(e: impl std::fmt::Display) -> Status {
    Status::internal(e.to_string())
}

#[tonic::async_trait]
impl FlightSqlService for Plain {
    type FlightService = Plain;

    async fn get_flight_info_statement(
        &self,
        query: CommandStatementQuery,
        request: Request<FlightDescriptor>,
    ) -> Result<Response<FlightInfo>, Status> {
        let df = self.ctx.sql(&query.query).await.map_err(status)?;
        let schema = df.schema().as_arrow().clone();
        let ticket = TicketStatementQuery {
            statement_handle: query.query.into_bytes().into(),
        };
        let endpoint =
            FlightEndpoint::new().with_ticket(Ticket::new(ticket.as_any().encode_to_vec()));
        let info = FlightInfo::new()
            .try_with_schema(&schema)
            .map_err(status)?
            .with_endpoint(endpoint)
            .with_descriptor(request.into_inner());
        Ok(Response::new(info))
    }

    async fn do_get_statement(
        &self,
        ticket: TicketStatementQuery,
        _request: Request<Ticket>,
    ) -> Result<
        Response<Pin<Box<dyn Stream<Item = Result<arrow_flight::FlightData, Status>> + Send>>>,
        Status,
    > {
        let sql = String::from_utf8(ticket.statement_handle.to_vec()).map_err(status)?;
        let stream = self
            .ctx
            .sql(&sql)
            .await
            .map_err(status)?
            .execute_stream()
            .await
            .map_err(status)?;
        let data = FlightDataEncoderBuilder::new()
            .with_schema(stream.schema())
            .build(stream.map_err(|e| FlightError::ExternalError(Box::new(e))))
            .map_err(status);
        Ok(Response::new(Box::pin(data)))
    }

    async fn register_sql_info(&self, _id: i32, _result: &SqlInfo) {}
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().collect();
    let Some((addr, tables)) = args.get(1).map(|a| (a, &args[2..])) else {
        return Err("usage: plain_flight_sql <addr> <table>=<parquet dir> ...".into());
    };
    let ctx = SessionContext::new();
    bench::register_parquet_tables(&ctx, tables).await?;
    println!("listening on {addr}");
    tonic::transport::Server::builder()
        .add_service(FlightServiceServer::new(Plain { ctx }))
        .serve(addr.parse()?)
        .await?;
    Ok(())
}
