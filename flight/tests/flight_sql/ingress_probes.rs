//! Probes of Flight's ingress and error answers: Basic only on the
//! handshake, share tokens refused without a client certificate when
//! configured (with the answer of any bad credential), and execution
//! failures below a secure view answered without their detail while
//! failures above it quote only what the token sees.

use std::sync::Arc;

use arrow_flight::sql::CommandStatementQuery;
use sluice_test_support::StaticAuthenticator;

use super::*;

const SHARE: &str = "share-secret-0123456789";
const EU: &str = "eu-secret-0123456789";

/// Alice and Bob of the sales catalog, plus a share token and a
/// row-filtered token over the test catalog.
fn tokens() -> Arc<StaticAuthenticator> {
    Arc::new(StaticAuthenticator::new([
        (
            ALICE,
            sales::orders_scope(
                "alice",
                sluice_planner::Columns::List(vec!["id".into(), "region".into()]),
                3,
            ),
        ),
        (
            SHARE,
            sluice_test_support::scope(serde_json::json!({
                "token_id": "t-share", "name": "partner", "token_type": "share",
                "grants": [{"table": "lake.sales.orders"}]
            })),
        ),
        (EU, sluice_test_support::token("eu")),
    ]))
}

fn statement(sql: &str) -> arrow_flight::FlightDescriptor {
    arrow_flight::FlightDescriptor::new_cmd(
        CommandStatementQuery {
            query: sql.into(),
            transaction_id: None,
        }
        .as_any()
        .encode_to_vec(),
    )
}

fn with_auth<T>(value: &str, msg: T) -> Request<T> {
    let mut r = Request::new(msg);
    r.metadata_mut()
        .insert("authorization", value.parse().unwrap());
    r
}

fn basic(password: &str) -> String {
    format!(
        "Basic {}",
        STANDARD_NO_PAD.encode(format!("user:{password}"))
    )
}

/// Basic credentials are taken on the handshake only: on every other call
/// a valid secret sent as Basic is refused like an unknown one.
#[tokio::test]
async fn basic_auth_is_refused_outside_the_handshake() {
    let channel = serve(sales::governor(), tokens(), false).await;
    let mut raw = FlightServiceClient::new(channel.clone());
    let unknown = raw
        .get_flight_info(with_auth(
            "Bearer nope",
            statement("SELECT id FROM lake.sales.orders"),
        ))
        .await
        .unwrap_err();
    assert_eq!(unknown.code(), Code::Unauthenticated);
    for header in [
        basic(ALICE),
        format!("Basic {}", STANDARD_NO_PAD.encode(format!(":{ALICE}"))),
        format!("basic {}", STANDARD_NO_PAD.encode(format!("x:{ALICE}"))),
    ] {
        let s = raw
            .get_flight_info(with_auth(
                &header,
                statement("SELECT id FROM lake.sales.orders"),
            ))
            .await
            .unwrap_err();
        assert_eq!(s.code(), Code::Unauthenticated, "{header}");
        assert_eq!(s.message(), unknown.message(), "{header}");
        let cmd = arrow_flight::sql::CommandGetCatalogs {}
            .as_any()
            .encode_to_vec();
        let s = raw
            .do_get(with_auth(&header, Ticket::new(cmd)))
            .await
            .unwrap_err();
        assert_eq!(s.code(), Code::Unauthenticated, "{header}");
        let s = raw
            .do_action(with_auth(
                &header,
                Action::new(
                    "CreatePreparedStatement",
                    arrow_flight::sql::ActionCreatePreparedStatementRequest {
                        query: "SELECT 1".into(),
                        transaction_id: None,
                    }
                    .as_any()
                    .encode_to_vec(),
                ),
            ))
            .await
            .unwrap_err();
        assert_eq!(s.code(), Code::Unauthenticated, "{header}");
    }
    // The handshake takes the same header and returns a bearer that works.
    let mut req = Request::new(stream::iter(vec![HandshakeRequest::default()]));
    req.metadata_mut()
        .insert("authorization", basic(ALICE).parse().unwrap());
    let resp = raw.handshake(req).await.unwrap();
    let bearer = resp
        .metadata()
        .get("authorization")
        .unwrap()
        .to_str()
        .unwrap();
    let info = raw
        .get_flight_info(with_auth(
            bearer,
            statement("SELECT id FROM lake.sales.orders"),
        ))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(info.endpoint.len(), 1);
}

/// With `share_needs_client_cert`, a share token on a connection without a
/// client certificate is refused on the handshake and on every call, with
/// exactly the answer of an unknown secret; public tokens are unaffected.
#[tokio::test]
async fn a_share_token_without_a_client_certificate_is_refused_like_a_bad_secret() {
    let channel = serve(sluice_test_support::governor(), tokens(), true).await;
    let mut raw = FlightServiceClient::new(channel.clone());
    let sql = "SELECT order_id FROM lake.sales.orders";
    let unknown = raw
        .get_flight_info(with_auth("Bearer nope", statement(sql)))
        .await
        .unwrap_err();
    let share = raw
        .get_flight_info(with_auth(&format!("Bearer {SHARE}"), statement(sql)))
        .await
        .unwrap_err();
    assert_eq!(
        (share.code(), share.message()),
        (unknown.code(), unknown.message())
    );
    assert!(share.metadata().get("retry-after").is_none());
    for header in [basic(SHARE), format!("Bearer {SHARE}")] {
        let mut req = Request::new(stream::iter(vec![HandshakeRequest::default()]));
        req.metadata_mut()
            .insert("authorization", header.parse().unwrap());
        let s = raw.handshake(req).await.unwrap_err();
        assert_eq!(
            (s.code(), s.message()),
            (unknown.code(), unknown.message()),
            "{header}"
        );
    }
    let cmd = arrow_flight::sql::CommandGetTables {
        catalog: None,
        db_schema_filter_pattern: None,
        table_name_filter_pattern: None,
        table_types: vec![],
        include_schema: true,
    }
    .as_any()
    .encode_to_vec();
    let s = raw
        .do_get(with_auth(&format!("Bearer {SHARE}"), Ticket::new(cmd)))
        .await
        .unwrap_err();
    assert_eq!(s.code(), Code::Unauthenticated);
    // A public token still works on the same gateway.
    raw.get_flight_info(with_auth(&format!("Bearer {EU}"), statement(sql)))
        .await
        .unwrap();
    // Without the requirement the share token is served.
    let open = serve(sluice_test_support::governor(), tokens(), false).await;
    FlightServiceClient::new(open)
        .get_flight_info(with_auth(&format!("Bearer {SHARE}"), statement(sql)))
        .await
        .unwrap();
}

/// Runs `sql` as `secret` to its end: the error status, if any.
async fn run_status(channel: &Channel, secret: &str, sql: &str) -> Option<tonic::Status> {
    let mut raw = FlightServiceClient::new(channel.clone());
    let info = match raw
        .get_flight_info(with_auth(&format!("Bearer {secret}"), statement(sql)))
        .await
    {
        Ok(i) => i.into_inner(),
        Err(s) => return Some(s),
    };
    fetch(channel, secret, ticket(&info)).await.err()
}

/// A cast failing above the barrier quotes a value the token sees (never
/// a hidden row's, never a masked column's real value); a rule failing on
/// hidden rows answers without any value.
#[tokio::test]
async fn execution_failures_quote_only_what_the_token_sees() {
    let channel = serve(sluice_test_support::governor(), tokens(), false).await;
    for sql in [
        "SELECT order_id FROM lake.sales.orders WHERE CAST(region AS BIGINT) > 0",
        "SELECT CAST(region AS BIGINT) FROM lake.sales.orders",
        "SELECT CAST(customer_email AS BIGINT) FROM lake.sales.orders",
    ] {
        let s = run_status(&channel, EU, sql).await.expect(sql);
        {
            let m = s.message();
            assert!(
                !m.contains("'us'") && !m.contains("apac") && !m.contains("@x.com"),
                "{sql}: {m}"
            );
            assert_ne!(s.code(), Code::Unauthenticated, "{sql}");
        }
    }
    // A failing expression on hidden rows is never evaluated at all.
    let sql = "SELECT 1 / (CASE WHEN region = 'us' THEN 0 ELSE 1 END) FROM lake.sales.orders";
    assert!(run_status(&channel, EU, sql).await.is_none(), "{sql}");
}

/// A row rule that fails on a hidden row: the Flight answer carries no
/// value and no detail of the failure.
#[tokio::test]
async fn a_rule_failing_on_a_hidden_row_is_internal_on_flight() {
    use arrow::array::StringArray as S;
    let schema = Arc::new(Schema::new(vec![
        Field::new("id", DataType::Int64, false),
        Field::new("tenant", DataType::Utf8, true),
    ]));
    let batch = RecordBatch::try_new(
        Arc::clone(&schema),
        vec![
            Arc::new(Int64Array::from(vec![1, 2, 3])),
            Arc::new(S::from(vec!["1", "2", "top-secret-tenant"])),
        ],
    )
    .unwrap();
    let governor = sluice_test_support::catalog::governor_of(
        "lake",
        sluice_test_support::catalog::memory_catalog([(
            "s",
            vec![("accounts", sluice_test_support::mem_table(batch))],
        )]),
    );
    let auth = Arc::new(StaticAuthenticator::new([(
        "tenant-secret-0123456789",
        sluice_test_support::scope(serde_json::json!({
            "token_id": "t-tenant", "name": "tenant",
            "grants": [{"table": "lake.s.accounts",
                        "allow_rules": ["CAST(tenant AS BIGINT) = 1"]}]
        })),
    )]));
    let channel = serve(governor, auth, false).await;
    for sql in [
        "SELECT id FROM lake.s.accounts",
        "SELECT count(*) FROM lake.s.accounts",
    ] {
        let s = run_status(&channel, "tenant-secret-0123456789", sql)
            .await
            .expect("the rule fails on the hidden row");
        {
            assert!(!s.message().contains("top-secret"), "{sql}: {s:?}");
            assert!(!s.message().to_lowercase().contains("cast"), "{sql}: {s:?}");
        }
    }
}

/// Rate limits count statements: `GetFlightInfo` is charged, the first
/// `DoGet` of the ticket it returned is not (the same statement), a second
/// `DoGet` of that ticket is, and so is a forged ticket.
#[tokio::test]
async fn a_query_is_charged_once_however_many_rpcs() {
    let auth = tokens();
    let channel = serve(sales::governor(), Arc::clone(&auth) as _, false).await;
    let mut c = client(&channel, ALICE).await;
    let info = c
        .execute("SELECT id FROM lake.sales.orders".into(), None)
        .await
        .unwrap();
    assert_eq!(auth.count(ALICE), (1, 0));
    fetch(&channel, ALICE, ticket(&info)).await.unwrap();
    assert_eq!(
        auth.count(ALICE),
        (1, 1),
        "the first DoGet continues the statement"
    );
    fetch(&channel, ALICE, ticket(&info)).await.unwrap();
    assert_eq!(
        auth.count(ALICE),
        (2, 1),
        "a second DoGet of one ticket is charged"
    );
    let forged = Ticket::new(
        arrow_flight::sql::TicketStatementQuery {
            statement_handle: b"slc1-not-a-ticket-0123456789012345678901234567890"
                .to_vec()
                .into(),
        }
        .as_any()
        .encode_to_vec(),
    );
    let _ = fetch(&channel, ALICE, forged).await.unwrap_err();
    assert_eq!(auth.count(ALICE), (3, 1), "a forged ticket is charged");
}

/// A call with two `authorization` entries is ambiguous (which one a proxy
/// read is not defined): refused like an unknown secret, even when one of
/// them is valid.
#[tokio::test]
async fn two_authorization_entries_are_refused_like_an_unknown_secret() {
    let channel = serve(sales::governor(), tokens(), false).await;
    let mut raw = FlightServiceClient::new(channel.clone());
    let unknown = raw
        .get_flight_info(with_auth(
            "Bearer nope",
            statement("SELECT id FROM lake.sales.orders"),
        ))
        .await
        .unwrap_err();
    for (first, second) in [
        (format!("Bearer {ALICE}"), "Bearer nope".to_string()),
        ("Bearer nope".to_string(), format!("Bearer {ALICE}")),
        (format!("Bearer {ALICE}"), format!("Bearer {ALICE}")),
    ] {
        let mut r = with_auth(&first, statement("SELECT id FROM lake.sales.orders"));
        r.metadata_mut()
            .append("authorization", second.parse().unwrap());
        let s = raw.get_flight_info(r).await.unwrap_err();
        assert_eq!(s.code(), Code::Unauthenticated, "{first} + {second}");
        assert_eq!(s.message(), unknown.message());
    }
    // One valid entry alone is accepted.
    raw.get_flight_info(with_auth(
        &format!("Bearer {ALICE}"),
        statement("SELECT id FROM lake.sales.orders"),
    ))
    .await
    .expect("a single valid credential");
}
