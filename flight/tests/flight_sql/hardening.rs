//! What a client cannot get past: no data without credentials on any RPC,
//! tickets and prepared handles not interchangeable, nothing about hidden
//! objects in metadata or errors, nothing below the barrier in EXPLAIN,
//! no handle kept alive by re-binding.

use super::*;

/// Every RPC except Handshake without credentials: UNAUTHENTICATED (or
/// UNIMPLEMENTED for RPCs sluice does not offer), never data.
#[tokio::test]
async fn no_credentials_no_data() {
    let channel = start().await;
    let mut raw = FlightServiceClient::new(channel.clone());
    let desc = arrow_flight::FlightDescriptor::new_cmd(
        arrow_flight::sql::CommandStatementQuery {
            query: "SELECT * FROM lake.sales.orders".into(),
            transaction_id: None,
        }
        .as_any()
        .encode_to_vec(),
    );
    for s in [
        raw.get_flight_info(Request::new(desc.clone()))
            .await
            .unwrap_err(),
        raw.get_schema(Request::new(desc.clone()))
            .await
            .unwrap_err(),
        raw.poll_flight_info(Request::new(desc.clone()))
            .await
            .unwrap_err(),
    ] {
        assert!(
            matches!(s.code(), Code::Unauthenticated | Code::Unimplemented),
            "{s:?}"
        );
    }
    for cmd in [
        arrow_flight::sql::CommandGetTables {
            catalog: None,
            db_schema_filter_pattern: None,
            table_name_filter_pattern: None,
            table_types: vec![],
            include_schema: true,
        }
        .as_any()
        .encode_to_vec(),
        arrow_flight::sql::CommandGetCatalogs {}
            .as_any()
            .encode_to_vec(),
        CommandGetPrimaryKeys {
            catalog: None,
            db_schema: None,
            table: "orders".into(),
        }
        .as_any()
        .encode_to_vec(),
    ] {
        let s = raw
            .do_get(Request::new(Ticket::new(cmd)))
            .await
            .map(|_| ())
            .expect_err("refused");
        assert_eq!(s.code(), Code::Unauthenticated, "{s:?}");
    }
    let s = raw
        .do_action(Request::new(create_prepared_action("SELECT 1")))
        .await
        .map(|_| ())
        .expect_err("refused");
    assert_eq!(s.code(), Code::Unauthenticated, "{s:?}");
    let s = raw
        .do_action(Request::new(Action {
            r#type: "CancelFlightInfo".into(),
            body: Default::default(),
        }))
        .await
        .map(|_| ())
        .expect_err("refused");
    assert_eq!(s.code(), Code::Unauthenticated, "{s:?}");
}

/// A prepared handle is not a statement ticket and vice versa, on the wire.
#[tokio::test]
async fn tickets_and_handles_cannot_stand_in_for_each_other() {
    let channel = start().await;
    let mut c = client(&channel, BOB).await;
    let stmt = c
        .prepare("SELECT id FROM lake.sales.orders".into(), None)
        .await
        .unwrap();
    // Re-create to read the raw handle via the action API.
    let mut raw = FlightServiceClient::new(channel.clone());
    let created = create_prepared_raw(&mut raw, BOB, "SELECT id FROM lake.sales.orders").await;
    let handle = created.prepared_statement_handle.clone();
    // handle as statement ticket
    let t = Ticket::new(
        arrow_flight::sql::TicketStatementQuery {
            statement_handle: handle.clone(),
        }
        .as_any()
        .encode_to_vec(),
    );
    let s = fetch(&channel, BOB, t)
        .await
        .map(|_| ())
        .expect_err("refused");
    assert_eq!(s.code(), Code::InvalidArgument, "{s:?}");
    // statement ticket as prepared handle (DoGet with CommandPreparedStatementQuery)
    let info = c
        .execute("SELECT id FROM lake.sales.orders".into(), None)
        .await
        .unwrap();
    let tk = ticket(&info);
    let any = arrow_flight::sql::Any::decode(&*tk.ticket).unwrap();
    let tsq: arrow_flight::sql::TicketStatementQuery = any.unpack().unwrap().unwrap();
    let t = Ticket::new(
        arrow_flight::sql::CommandPreparedStatementQuery {
            prepared_statement_handle: tsq.statement_handle.clone(),
        }
        .as_any()
        .encode_to_vec(),
    );
    let s = fetch(&channel, BOB, t)
        .await
        .map(|_| ())
        .expect_err("refused");
    assert_eq!(s.code(), Code::InvalidArgument, "{s:?}");
    // alice cannot DoGet bob's prepared handle
    let t = Ticket::new(
        arrow_flight::sql::CommandPreparedStatementQuery {
            prepared_statement_handle: handle.clone(),
        }
        .as_any()
        .encode_to_vec(),
    );
    let s = fetch(&channel, ALICE, t)
        .await
        .map(|_| ())
        .expect_err("refused");
    assert_eq!(s.code(), Code::PermissionDenied, "{s:?}");
    drop(stmt);
}

/// Alice's policy hides column `secret` and table `hidden`: nothing about them in metadata or errors.
#[tokio::test]
async fn hidden_objects_are_absent_from_metadata_and_errors() {
    let channel = start().await;
    let mut c = client(&channel, ALICE).await;
    let info = c
        .get_tables(CommandGetTables {
            catalog: Some("lake".into()),
            db_schema_filter_pattern: Some("%".into()),
            table_name_filter_pattern: Some("%".into()),
            table_types: vec![],
            include_schema: true,
        })
        .await
        .unwrap();
    let (b, _) = fetch(&channel, ALICE, ticket(&info)).await.unwrap();
    let dbg = format!("{b:?}");
    assert!(!dbg.contains("hidden"), "{dbg}");
    assert!(!dbg.contains("secret"), "{dbg}");
    let e1 = error_of(&mut c, "SELECT secret FROM lake.sales.orders").await;
    let e2 = error_of(&mut c, "SELECT secreT2 FROM lake.sales.orders").await;
    assert_eq!(
        e1.replace("secret", "X"),
        e2.replace("secret2", "X"),
        "{e1} / {e2}"
    );
    let e1 = error_of(&mut c, "SELECT * FROM lake.sales.hidden").await;
    let e2 = error_of(&mut c, "SELECT * FROM lake.sales.hiddeN2").await;
    assert_eq!(
        e1.replace("hidden", "X"),
        e2.replace("hidden2", "X"),
        "{e1} / {e2}"
    );
}

/// EXPLAIN VERBOSE must not reveal anything computed below the secure view
/// (row counts including hidden rows, hidden column names/types).
#[tokio::test]
async fn explain_verbose_reveals_nothing_below_the_barrier() {
    let channel = start().await;
    let mut c = client(&channel, ALICE).await;
    // alice sees all 5 rows of orders but not column `secret`.
    let r = c
        .execute(
            "EXPLAIN VERBOSE SELECT id FROM lake.sales.orders".into(),
            None,
        )
        .await;
    let Ok(info) = r else { return }; // refusing EXPLAIN VERBOSE is fine
    let (b, _) = fetch(&channel, ALICE, ticket(&info)).await.unwrap();
    let text = format!("{b:?}");
    assert!(
        !text.contains("secret"),
        "hidden column named in EXPLAIN VERBOSE"
    );
}

/// A prepared handle lives at most its TTL: re-binding (DoPut) must not
/// extend it indefinitely.
#[tokio::test]
async fn rebinding_does_not_extend_a_handles_lifetime() {
    let channel = start().await;
    let mut raw = FlightServiceClient::new(channel.clone());
    let created = create_prepared_raw(
        &mut raw,
        BOB,
        "SELECT id FROM lake.sales.orders WHERE id > $1",
    )
    .await;
    let h0 = created.prepared_statement_handle.clone();
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let mut c = client(&channel, BOB).await;
    let mut stmt = c
        .prepare(
            "SELECT id FROM lake.sales.orders WHERE id > $1".into(),
            None,
        )
        .await
        .unwrap();
    let _ = &mut stmt;
    // Bind through DoPut on the original handle.
    let p = RecordBatch::try_new(
        Arc::new(Schema::new(vec![Field::new("p", DataType::Int64, false)])),
        vec![Arc::new(Int64Array::from(vec![3]))],
    )
    .unwrap();
    let cmd = arrow_flight::sql::CommandPreparedStatementQuery {
        prepared_statement_handle: h0.clone(),
    };
    let descriptor = arrow_flight::FlightDescriptor::new_cmd(cmd.as_any().encode_to_vec());
    let flight_data = arrow_flight::encode::FlightDataEncoderBuilder::new()
        .with_flight_descriptor(Some(descriptor))
        .build(stream::iter(vec![Ok(p)]))
        .try_collect::<Vec<_>>()
        .await
        .unwrap();
    let mut put = raw
        .do_put(bearer(BOB, stream::iter(flight_data)))
        .await
        .unwrap()
        .into_inner();
    let result = put.next().await.unwrap().unwrap();
    let r = arrow_flight::sql::DoPutPreparedStatementResult::decode(&*result.app_metadata).unwrap();
    let h1 = r.prepared_statement_handle.unwrap();
    let (c0, c1) = (claims(&h0), claims(&h1));
    assert!(
        c1["expires_at"].as_u64() <= c0["expires_at"].as_u64(),
        "DoPut re-sealed the handle with a fresh lifetime: {c0} -> {c1}"
    );
}
