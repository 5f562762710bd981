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

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use sluice_flight::{FlightConfig, flight_service};
use sluice_test_support::sales;
use tonic::transport::Server;

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let addr: SocketAddr = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "127.0.0.1:50051".to_owned())
        .parse()?;
    let svc = flight_service(
        Arc::new(sales::governor()),
        Arc::new(sales::authenticator()),
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
