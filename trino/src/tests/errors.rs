//! What a failure tells a Trino client: never a hidden row's value, never a
//! connector's internals.

use super::multi_token::*;

/// A row rule that fails on a row the token must not see (`CAST(tenant AS
/// BIGINT) = 1` over text tenants) answers without that row's value, like
/// Flight SQL.
#[tokio::test]
async fn policy_errors_do_not_quote_hidden_rows() {
    let f = fixture(quick());
    let (rows, doc) = run(
        &f.app,
        TENANT,
        "SELECT count(*) FROM lake.sales.accounts",
        &[],
    )
    .await;
    let text = doc.to_string();
    assert!(
        !text.contains("top-secret-tenant"),
        "a hidden row's value is in the answer: rows {rows:?}, {doc}"
    );
}

/// Connector and internal errors reach the client without their details
/// (paths, partition values, credentials): those go to the log.
#[tokio::test]
async fn connector_error_details_stay_in_the_log() {
    let f = fixture(quick());
    let (_, doc) = run(&f.app, TENANT, "SELECT * FROM lake.sales.broken", &[]).await;
    assert_eq!(doc["stats"]["state"], "FAILED");
    let text = doc.to_string();
    for secret in ["corp-warehouse", "jane-doe", "AKIAEXAMPLE"] {
        assert!(!text.contains(secret), "{secret} leaked: {doc}");
    }
}
