//! The Flight SQL protocol as clients use it: handshake, uniform
//! authentication failures, statements with the truncation trailer, tickets
//! bound to their token, hidden and missing objects alike, writes refused,
//! prepared statements with parameters, scoped catalog metadata,
//! CancelFlightInfo.

use super::*;

#[tokio::test]
async fn handshake_basic_without_padding_returns_bearer_header() {
    let channel = start().await;
    let mut raw = FlightServiceClient::new(channel.clone());
    let mut req = Request::new(stream::iter(vec![HandshakeRequest::default()]));
    let basic = STANDARD_NO_PAD.encode(format!("adbc:{ALICE}"));
    req.metadata_mut()
        .insert("authorization", format!("Basic {basic}").parse().unwrap());
    let resp = raw.handshake(req).await.unwrap();
    assert_eq!(
        resp.metadata()
            .get("authorization")
            .unwrap()
            .to_str()
            .unwrap(),
        format!("Bearer {ALICE}")
    );
    let replies: Vec<_> = resp.into_inner().try_collect().await.unwrap();
    assert_eq!(replies.len(), 1);
    assert_eq!(&replies[0].payload[..], ALICE.as_bytes());

    // arrow-flight's own client (padded base64) picks up the bearer.
    let mut c = FlightSqlServiceClient::new(channel.clone());
    c.handshake("user", BOB).await.unwrap();
    assert_eq!(c.token().map(String::as_str), Some(BOB));
    c.execute("SELECT 1".into(), None).await.unwrap();
}

#[tokio::test]
async fn every_auth_failure_is_the_same() {
    let channel = start().await;
    // Unknown token.
    let mut c = client(&channel, "nope").await;
    let e = error_of(&mut c, "SELECT 1").await;
    assert!(e.contains("authentication failed"), "{e}");
    // Wrong handshake password.
    let mut c = FlightSqlServiceClient::new(channel.clone());
    let e = c.handshake("u", "wrong").await.unwrap_err().to_string();
    assert!(e.contains("authentication failed"), "{e}");
    // Missing header.
    let mut raw = FlightServiceClient::new(channel.clone());
    let s = raw
        .do_get(Request::new(Ticket::new(b"x".to_vec())))
        .await
        .unwrap_err();
    // An undecodable ticket is rejected before dispatch; a decodable one
    // without credentials must be unauthenticated.
    assert!(matches!(
        s.code(),
        Code::InvalidArgument | Code::Unauthenticated
    ));
    let t = Ticket::new(
        arrow_flight::sql::TicketStatementQuery {
            statement_handle: b"whatever".to_vec().into(),
        }
        .as_any()
        .encode_to_vec(),
    );
    let s = raw.do_get(Request::new(t)).await.unwrap_err();
    assert_eq!(s.code(), Code::Unauthenticated);
    assert_eq!(s.message(), "authentication failed");
    // Basic outside Handshake.
    let mut req = Request::new(arrow_flight::FlightDescriptor::new_cmd(
        arrow_flight::sql::CommandGetCatalogs {}
            .as_any()
            .encode_to_vec(),
    ));
    let basic = STANDARD_NO_PAD.encode(format!("u:{ALICE}"));
    req.metadata_mut()
        .insert("authorization", format!("Basic {basic}").parse().unwrap());
    let s = raw.get_flight_info(req).await.unwrap_err();
    assert_eq!(s.code(), Code::Unauthenticated);
    assert_eq!(s.message(), "authentication failed");
}

#[tokio::test]
async fn statement_streams_with_truncation_trailer() {
    let channel = start().await;
    let sql = "SELECT id, region FROM lake.sales.orders ORDER BY id";

    // alice: row_limit 3 → truncated.
    let mut c = client(&channel, ALICE).await;
    let info = c.execute(sql.into(), None).await.unwrap();
    let schema = info.clone().try_decode_schema().unwrap();
    assert_eq!(schema.fields().len(), 2);
    let (batches, trailer) = fetch(&channel, ALICE, ticket(&info)).await.unwrap();
    assert_eq!(ids(&batches), vec![1, 2, 3]);
    let trailer = trailer.expect("trailer");
    assert_eq!(trailer["sluice.truncated"], serde_json::json!(true));
    assert_eq!(trailer["rows"], serde_json::json!(3));

    // bob: row_limit 100 → complete.
    let mut c = client(&channel, BOB).await;
    let info = c.execute(sql.into(), None).await.unwrap();
    let (batches, trailer) = fetch(&channel, BOB, ticket(&info)).await.unwrap();
    assert_eq!(ids(&batches), vec![1, 2, 3, 4, 5]);
    let trailer = trailer.expect("trailer");
    assert_eq!(trailer["sluice.truncated"], serde_json::json!(false));
    assert_eq!(trailer["rows"], serde_json::json!(5));

    // Empty result: schema + trailer.
    let info = c
        .execute(
            "SELECT id FROM lake.sales.orders WHERE id > 100".into(),
            None,
        )
        .await
        .unwrap();
    let (batches, trailer) = fetch(&channel, BOB, ticket(&info)).await.unwrap();
    assert_eq!(ids(&batches), Vec::<i64>::new());
    assert_eq!(trailer.unwrap()["rows"], serde_json::json!(0));
}

#[tokio::test]
async fn tickets_are_bound_to_the_token() {
    let channel = start().await;
    let mut c = client(&channel, BOB).await;
    let info = c
        .execute("SELECT id FROM lake.sales.orders".into(), None)
        .await
        .unwrap();
    let s = fetch(&channel, ALICE, ticket(&info)).await.unwrap_err();
    assert_eq!(s.code(), Code::PermissionDenied);
    assert_eq!(s.message(), "ticket was not issued to this token");

    // A tampered ticket is refused.
    let mut t = ticket(&info);
    let mut bytes = t.ticket.to_vec();
    let n = bytes.len();
    bytes[n - 40] ^= 1;
    t.ticket = bytes.into();
    let s = fetch(&channel, BOB, t).await.unwrap_err();
    assert!(
        matches!(s.code(), Code::PermissionDenied | Code::InvalidArgument),
        "{s:?}"
    );
}

#[tokio::test]
async fn policy_errors_do_not_distinguish_missing_from_hidden() {
    let channel = start().await;
    let mut c = client(&channel, ALICE).await;
    let hidden_col = error_of(&mut c, "SELECT secret FROM lake.sales.orders").await;
    let missing_col = error_of(&mut c, "SELECT nope FROM lake.sales.orders").await;
    assert!(
        hidden_col.contains("not found or not allowed"),
        "{hidden_col}"
    );
    assert_eq!(
        hidden_col.replace("secret", "X"),
        missing_col.replace("nope", "X")
    );
    let hidden_table = error_of(&mut c, "SELECT * FROM lake.sales.hidden").await;
    let missing_table = error_of(&mut c, "SELECT * FROM lake.sales.nope").await;
    assert_eq!(
        hidden_table.replace("hidden", "X"),
        missing_table.replace("nope", "X")
    );
    assert!(
        hidden_table.contains("InvalidArgument") || hidden_table.contains("invalid"),
        "{hidden_table}"
    );
}

#[tokio::test]
async fn writes_are_refused() {
    let channel = start().await;
    let mut c = client(&channel, BOB).await;
    let e = c
        .execute_update("DELETE FROM lake.sales.orders".into(), None)
        .await
        .unwrap_err()
        .to_string();
    assert!(e.contains("read-only"), "{e}");
    let e = error_of(&mut c, "DROP TABLE lake.sales.orders").await;
    assert!(!e.contains("Internal"), "{e}");
    let e = c.begin_transaction().await.unwrap_err().to_string();
    assert!(e.contains("read-only"), "{e}");
}

#[tokio::test]
async fn prepared_statement_with_parameters() {
    let channel = start().await;
    let mut c = client(&channel, BOB).await;
    let mut stmt = c
        .prepare(
            "SELECT id, amount FROM lake.sales.orders WHERE id > $1 ORDER BY id".into(),
            None,
        )
        .await
        .unwrap();
    assert_eq!(stmt.dataset_schema().unwrap().fields().len(), 2);
    let params = stmt.parameter_schema().unwrap().clone();
    assert_eq!(params.fields().len(), 1);

    // Executing without binding is a clear error.
    let e = stmt.execute().await.unwrap_err().to_string();
    assert!(e.contains("parameter"), "{e}");

    // Bind an Int32 (cast to the inferred Int64).
    let p = RecordBatch::try_new(
        Arc::new(Schema::new(vec![Field::new("p", DataType::Int32, false)])),
        vec![Arc::new(Int32Array::from(vec![3]))],
    )
    .unwrap();
    stmt.set_parameters(p).unwrap();
    let info = stmt.execute().await.unwrap();
    let (batches, trailer) = fetch(&channel, BOB, ticket(&info)).await.unwrap();
    assert_eq!(ids(&batches), vec![4, 5]);
    assert_eq!(trailer.unwrap()["rows"], serde_json::json!(2));

    // Another token cannot use the handle.
    let info_alice = {
        let mut a = client(&channel, ALICE).await;
        let mut req = Request::new(info.flight_descriptor.clone().unwrap());
        req.metadata_mut()
            .insert("authorization", format!("Bearer {ALICE}").parse().unwrap());
        a.inner_mut().get_flight_info(req).await
    };
    let s = info_alice.unwrap_err();
    assert_eq!(s.code(), Code::PermissionDenied, "{s:?}");

    stmt.close().await.unwrap();
}

#[tokio::test]
async fn catalog_metadata_is_scoped() {
    let channel = start().await;
    let mut c = client(&channel, ALICE).await;

    let info = c.get_catalogs().await.unwrap();
    let (b, _) = fetch(&channel, ALICE, ticket(&info)).await.unwrap();
    let cats: Vec<String> = strings(&b, 0);
    assert_eq!(cats, vec!["lake"]);

    let info = c
        .get_db_schemas(CommandGetDbSchemas {
            catalog: Some("lake".into()),
            db_schema_filter_pattern: Some("sa%".into()),
        })
        .await
        .unwrap();
    let (b, _) = fetch(&channel, ALICE, ticket(&info)).await.unwrap();
    assert_eq!(strings(&b, 1), vec!["sales"]);

    let info = c
        .get_tables(CommandGetTables {
            catalog: None,
            db_schema_filter_pattern: Some("%".into()),
            table_name_filter_pattern: Some("%".into()),
            table_types: vec![],
            include_schema: true,
        })
        .await
        .unwrap();
    let (b, _) = fetch(&channel, ALICE, ticket(&info)).await.unwrap();
    assert_eq!(
        strings(&b, 2),
        vec!["orders"],
        "hidden table must not be listed"
    );
    assert_eq!(strings(&b, 3), vec!["TABLE"]);
    let schema_bytes = b[0]
        .column(4)
        .as_any()
        .downcast_ref::<arrow::array::BinaryArray>()
        .unwrap()
        .value(0)
        .to_vec();
    let table_schema = Schema::try_from(IpcMessage(schema_bytes.into())).unwrap();
    let names: Vec<_> = table_schema
        .fields()
        .iter()
        .map(|f| f.name().clone())
        .collect();
    assert_eq!(names, vec!["id", "region", "amount"]);

    // Filter that matches nothing; table-type filter.
    let info = c
        .get_tables(CommandGetTables {
            catalog: Some("lake".into()),
            db_schema_filter_pattern: None,
            table_name_filter_pattern: Some("hid%".into()),
            table_types: vec![],
            include_schema: false,
        })
        .await
        .unwrap();
    let (b, _) = fetch(&channel, ALICE, ticket(&info)).await.unwrap();
    assert_eq!(b.iter().map(|b| b.num_rows()).sum::<usize>(), 0);
    let info = c
        .get_tables(CommandGetTables {
            catalog: None,
            db_schema_filter_pattern: None,
            table_name_filter_pattern: None,
            table_types: vec!["VIEW".into()],
            include_schema: false,
        })
        .await
        .unwrap();
    let (b, _) = fetch(&channel, ALICE, ticket(&info)).await.unwrap();
    assert_eq!(b.iter().map(|b| b.num_rows()).sum::<usize>(), 0);

    let info = c.get_table_types().await.unwrap();
    let (b, _) = fetch(&channel, ALICE, ticket(&info)).await.unwrap();
    assert!(strings(&b, 0).contains(&"TABLE".to_owned()));

    let info = c
        .get_sql_info(vec![
            SqlInfo::FlightSqlServerName,
            SqlInfo::FlightSqlServerReadOnly,
        ])
        .await
        .unwrap();
    let (b, _) = fetch(&channel, ALICE, ticket(&info)).await.unwrap();
    assert_eq!(b.iter().map(|b| b.num_rows()).sum::<usize>(), 2);

    let info = c
        .get_xdbc_type_info(arrow_flight::sql::CommandGetXdbcTypeInfo { data_type: None })
        .await
        .unwrap();
    let (b, _) = fetch(&channel, ALICE, ticket(&info)).await.unwrap();
    assert!(b.iter().map(|b| b.num_rows()).sum::<usize>() >= 10);

    let info = c
        .get_primary_keys(CommandGetPrimaryKeys {
            catalog: None,
            db_schema: None,
            table: "orders".into(),
        })
        .await
        .unwrap();
    let (b, _) = fetch(&channel, ALICE, ticket(&info)).await.unwrap();
    assert_eq!(b.iter().map(|b| b.num_rows()).sum::<usize>(), 0);
}

#[tokio::test]
async fn cancel_flight_info_is_acknowledged() {
    let channel = start().await;
    let mut c = client(&channel, BOB).await;
    let info = c
        .execute("SELECT id FROM lake.sales.orders".into(), None)
        .await
        .unwrap();
    let action = Action::new(
        "CancelFlightInfo",
        CancelFlightInfoRequest::new(info).encode_to_vec(),
    );
    let mut results = c.do_action(action).await.unwrap();
    let r = results.next().await.unwrap().unwrap();
    let r = CancelFlightInfoResult::decode(r.body).unwrap();
    assert_eq!(r.status, CancelStatus::Cancelled as i32);
}

fn strings(batches: &[RecordBatch], col: usize) -> Vec<String> {
    batches
        .iter()
        .flat_map(|b| {
            let a = b
                .column(col)
                .as_any()
                .downcast_ref::<StringArray>()
                .unwrap();
            (0..a.len())
                .map(|i| a.value(i).to_owned())
                .collect::<Vec<_>>()
        })
        .collect()
}
