//! `EXECUTE … USING` and prepared statements: parameters are literals,
//! and nothing a client sends becomes SQL.

use super::multi_token::*;
use crate::session::encode_value;

/// `EXECUTE … USING` takes literals only, also where the placeholder sits
/// inside a Trino function the dialect translates (`if`, `count_if`,
/// `date_add`, …): a literal prefixed with two minus signs (`- -'…'`,
/// which prints as a `--` line comment) never turns what follows a newline
/// in it into SQL.
#[tokio::test]
async fn using_literals_stay_literals_through_translated_functions() {
    let f = fixture(quick());
    let sql = "EXECUTE IMMEDIATE 'SELECT if(?, ''a'', ''b'')' USING - -'x\ntrue)) THEN (SELECT max(region) FROM lake.sales.orders) END --'";
    let (rows, doc) = run(&f.app, EU, sql, &[]).await;
    assert!(
        rows.is_empty() && doc["stats"]["state"] == "FAILED",
        "a USING parameter was executed as SQL: rows {rows:?}, {doc}"
    );
}

/// The same through a prepared statement, as an application sends it: the
/// statement text is fixed, only the parameter comes from elsewhere.
#[tokio::test]
async fn prepared_parameters_stay_literals() {
    let f = fixture(quick());
    let prepared = format!(
        "q1={}",
        encode_value("SELECT if(region = ?, 'match', 'no') FROM lake.sales.orders")
    );
    let extra = [("x-trino-prepared-statement", prepared.as_str())];
    let sql =
        "EXECUTE q1 USING - -'x\nregion)) THEN (SELECT max(email) FROM lake.sales.orders) END --'";
    let (rows, doc) = run(&f.app, EU, sql, &extra).await;
    assert!(
        rows.is_empty() && doc["stats"]["state"] == "FAILED",
        "a USING parameter was executed as SQL: rows {rows:?}, {doc}"
    );
}

/// `map(…)` / `array(…)` parameters are literals only when the whole call
/// is: FILTER, OVER, ORDER BY clauses and ClickHouse-style parameter lists
/// are refused with INVALID_PARAMETER_USAGE, so no subquery rides along.
#[tokio::test]
async fn parameter_calls_with_clauses_are_refused() {
    let f = fixture(quick());
    let mut accepted = Vec::new();
    for using in [
        "map(ARRAY['a'], ARRAY[1]) FILTER (WHERE (SELECT count(*) FROM lake.sales.orders) > 0)",
        "map(ARRAY['a'], ARRAY[1]) OVER (ORDER BY (SELECT count(*) FROM lake.sales.orders))",
        "map(ARRAY['a'], ARRAY[1] ORDER BY (SELECT count(*) FROM lake.sales.orders))",
        "map((SELECT max(region) FROM lake.sales.orders))(ARRAY['a'], ARRAY[1])",
    ] {
        let sql = format!("EXECUTE IMMEDIATE 'SELECT ?' USING {using}");
        let doc = first_poll(&f.app, EU, &[], &sql).await.json();
        if doc["error"]["errorName"] != "INVALID_PARAMETER_USAGE" {
            accepted.push(format!("{using}: {doc}"));
        }
    }
    assert!(
        accepted.is_empty(),
        "non-literal parameters accepted:\n{}",
        accepted.join("\n")
    );
}

/// Prepared statements smuggled through the header: session statements,
/// nested EXECUTE and DDL are refused.
#[tokio::test]
async fn prepared_header_cannot_smuggle_statements() {
    let f = fixture(quick());
    for (stmt, name) in [
        ("USE lake.hr", "NOT_SUPPORTED"),
        ("SET SESSION query_max_run_time = '100d'", "NOT_SUPPORTED"),
        ("EXECUTE IMMEDIATE 'SELECT 1'", "NOT_SUPPORTED"),
        ("EXECUTE q1", "NOT_SUPPORTED"),
        ("PREPARE x FROM SELECT 1", "NOT_SUPPORTED"),
        ("DROP TABLE lake.sales.orders", "PERMISSION_DENIED"),
        ("CREATE TABLE lake.sales.x AS SELECT 1", "PERMISSION_DENIED"),
        (
            "SELECT 1; DROP TABLE lake.sales.orders",
            "GENERIC_USER_ERROR",
        ),
        ("SELECT * FROM lake.hr.salaries", "TABLE_NOT_FOUND"),
    ] {
        let prepared = format!("q1={}", encode_value(stmt));
        let extra = [("x-trino-prepared-statement", prepared.as_str())];
        let a = first_poll(&f.app, EU, &extra, "EXECUTE q1").await;
        let doc = a.json();
        assert_eq!(doc["stats"]["state"], "FAILED", "{stmt}: {doc}");
        if name != "GENERIC_USER_ERROR" {
            assert_eq!(doc["error"]["errorName"], name, "{stmt}: {doc}");
        }
        assert!(a.headers.get("x-trino-set-schema").is_none());
    }
    // `?` in strings and comments is not a placeholder.
    let (rows, _) = run(
        &f.app,
        EU,
        "EXECUTE IMMEDIATE 'SELECT ''?'' /* ? */, ? -- ?\n' USING 7",
        &[],
    )
    .await;
    assert_eq!(rows, vec![serde_json::json!(["?", 7])]);
}
