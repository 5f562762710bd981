//! The catalogue of hostile statements (`sluice_test_support::hostile`)
//! over Flight SQL: each gets the status of its refusal (or its rows), and
//! an ordinary statement runs right after; plus what only Flight has:
//! oversized and malformed messages, and a `DoGet` the client drops.

use sluice_planner::limits::LimitsConfig;
use sluice_test_support::hostile::{self, Expect, READER};

use super::*;

async fn hostile_service(config: LimitsConfig) -> (Channel, Arc<Governor>) {
    let governor = hostile::governor(config);
    let shared = Arc::new(governor.clone());
    let channel = serve(governor, Arc::new(hostile::authenticator()), false).await;
    (channel, shared)
}

/// GetFlightInfo then DoGet: the rows, or the first failing status.
async fn query(channel: &Channel, sql: &str) -> Result<usize, tonic::Status> {
    let mut c = client(channel, READER).await;
    let info = c
        .execute(sql.to_string(), None)
        .await
        .map_err(|e| match e {
            arrow_flight::error::FlightError::Tonic(s) => *s,
            other => tonic::Status::unknown(other.to_string()),
        })?;
    let (batches, _) = fetch(channel, READER, ticket(&info)).await?;
    Ok(batches.iter().map(RecordBatch::num_rows).sum())
}

async fn still_serving(channel: &Channel) {
    let n = query(channel, "SELECT id FROM lake.db.numbers WHERE id < 10")
        .await
        .expect("an ordinary statement runs");
    assert_eq!(n, 10);
}

fn code_of(kind: &str) -> Code {
    match kind {
        "too_complex" | "function_limit" | "not_found" => Code::InvalidArgument,
        "memory_limit" | "too_many_queries" => Code::ResourceExhausted,
        "time_limit" => Code::DeadlineExceeded,
        "internal" => Code::Internal,
        other => panic!("no Flight status for {other}"),
    }
}

#[tokio::test]
async fn every_hostile_statement_gets_its_status_and_the_service_lives() {
    let (channel, _) = hostile_service(LimitsConfig::default()).await;
    for case in hostile::statements() {
        let outcome = query(&channel, &case.sql).await;
        match (&case.expect, outcome) {
            (Expect::Refused(kind), Err(s)) => {
                let message: String = s.message().chars().take(300).collect();
                assert_eq!(s.code(), code_of(kind), "{}: {message}", case.name);
                assert!(
                    s.message().len() < 1000,
                    "{}: the answer echoes the statement",
                    case.name
                );
            }
            (Expect::Runs, Ok(_)) => {}
            (expect, outcome) => {
                let outcome: String = format!("{outcome:?}").chars().take(300).collect();
                panic!("{}: expected {expect:?}, got {outcome}", case.name)
            }
        }
        still_serving(&channel).await;
    }
}

#[tokio::test]
async fn a_statement_past_its_time_limit_is_deadline_exceeded() {
    let (channel, _) = hostile_service(LimitsConfig {
        query_timeout: Duration::from_millis(300),
        ..LimitsConfig::default()
    })
    .await;
    let s = query(&channel, "SELECT count(*) FROM range(100000000000)")
        .await
        .unwrap_err();
    assert_eq!(s.code(), Code::DeadlineExceeded, "{s:?}");
    assert!(s.message().contains("limits.query_timeout"), "{s:?}");
    still_serving(&channel).await;
}

#[tokio::test]
async fn a_dropped_do_get_gives_its_slot_and_threads_back() {
    let (channel, governor) = hostile_service(LimitsConfig::default()).await;
    let mut c = client(&channel, READER).await;
    for _ in 0..sluice_planner::limits::run::threads() * 2 {
        let info = c
            .execute("SELECT value * 2 FROM range(100000000000)".into(), None)
            .await
            .unwrap();
        let mut raw = FlightServiceClient::new(channel.clone());
        let mut req = Request::new(ticket(&info));
        req.metadata_mut()
            .insert("authorization", format!("Bearer {READER}").parse().unwrap());
        let mut stream = raw.do_get(req).await.unwrap().into_inner();
        let _ = stream.message().await.unwrap();
        drop(stream);
    }
    let t0 = std::time::Instant::now();
    while governor.limits().admission.executing() > 0 && t0.elapsed() < Duration::from_secs(5) {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(
        governor.limits().admission.executing(),
        0,
        "slots were given back"
    );
    still_serving(&channel).await;
}

#[tokio::test]
async fn oversized_and_malformed_messages_are_refused_and_the_service_lives() {
    let (channel, _) = hostile_service(LimitsConfig::default()).await;
    let mut raw = FlightServiceClient::new(channel.clone());
    // A statement far beyond gRPC's 4MiB message bound.
    let huge = arrow_flight::FlightDescriptor::new_cmd(
        arrow_flight::sql::CommandStatementQuery {
            query: format!("SELECT '{}'", "x".repeat(8 << 20)),
            transaction_id: None,
        }
        .as_any()
        .encode_to_vec(),
    );
    let mut req = Request::new(huge);
    req.metadata_mut()
        .insert("authorization", format!("Bearer {READER}").parse().unwrap());
    let s = raw.get_flight_info(req).await.unwrap_err();
    assert!(
        matches!(
            s.code(),
            Code::OutOfRange | Code::ResourceExhausted | Code::InvalidArgument
        ),
        "{s:?}"
    );
    // Junk, truncated and invalid-UTF-8 commands and tickets.
    let statement = arrow_flight::sql::CommandStatementQuery {
        query: "SELECT 1".into(),
        transaction_id: None,
    }
    .as_any()
    .encode_to_vec();
    let mut invalid_utf8 = statement.clone();
    let at = invalid_utf8.len() - 3;
    invalid_utf8[at] = 0xff;
    for junk in [
        vec![0xffu8; 64],
        statement[..statement.len() / 2].to_vec(),
        invalid_utf8,
        vec![],
    ] {
        let mut req = Request::new(arrow_flight::FlightDescriptor::new_cmd(junk.clone()));
        req.metadata_mut()
            .insert("authorization", format!("Bearer {READER}").parse().unwrap());
        let s = raw.get_flight_info(req).await.unwrap_err();
        assert!(
            matches!(s.code(), Code::InvalidArgument | Code::Unimplemented),
            "{junk:?}: {s:?}"
        );
        let mut req = Request::new(Ticket::new(junk.clone()));
        req.metadata_mut()
            .insert("authorization", format!("Bearer {READER}").parse().unwrap());
        let s = match raw.do_get(req).await {
            Err(s) => s,
            Ok(r) => r.into_inner().message().await.unwrap_err(),
        };
        assert!(
            matches!(
                s.code(),
                Code::InvalidArgument | Code::Unimplemented | Code::Unauthenticated
            ),
            "{junk:?}: {s:?}"
        );
    }
    still_serving(&channel).await;
}

/// A DoPut whose Arrow schema message makes arrow-ipc panic (found by the
/// fuzzer) is answered with an error; the service and the connection live.
#[tokio::test]
async fn a_parameter_message_that_panics_the_decoder_fails_alone() {
    let (channel, _) = hostile_service(LimitsConfig::default()).await;
    let mut raw = FlightServiceClient::new(channel.clone());
    let handle = create_prepared_raw(&mut raw, READER, "SELECT $1")
        .await
        .prepared_statement_handle;
    let descriptor = arrow_flight::FlightDescriptor::new_cmd(
        arrow_flight::sql::CommandPreparedStatementQuery {
            prepared_statement_handle: handle,
        }
        .as_any()
        .encode_to_vec(),
    );
    let header: Vec<u8> = vec![
        4, 0, 0, 0, 252, 255, 255, 255, 16, 0, 1, 0, 24, 0, 6, 0, 16, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
        0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
    ];
    let message = arrow_flight::FlightData {
        flight_descriptor: Some(descriptor),
        data_header: header.into(),
        ..Default::default()
    };
    let mut req = Request::new(stream::iter(vec![message]));
    req.metadata_mut()
        .insert("authorization", format!("Bearer {READER}").parse().unwrap());
    let outcome = match raw.do_put(req).await {
        Err(s) => Err(s),
        Ok(r) => r.into_inner().message().await.map(|_| ()),
    };
    let s = outcome.unwrap_err();
    assert!(
        matches!(s.code(), Code::Internal | Code::InvalidArgument),
        "{s:?}"
    );
    still_serving(&channel).await;
}
