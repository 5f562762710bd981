//! Token scopes for tests: [`scope`] from a JSON document (the serde form
//! of [`TokenScope`] is the API contract), and the named tokens of the
//! test catalog ([`token`]).

use std::sync::Arc;

use sluice_planner::TokenScope;

/// A scope from its JSON form.
///
/// # Panics
///
/// If `json` is not a valid scope (a broken fixture).
pub fn scope(json: serde_json::Value) -> Arc<TokenScope> {
    Arc::new(serde_json::from_value(json).expect("a valid token scope"))
}

/// The named test tokens of the test catalog ([`crate::catalog::governor`]).
///
/// # Panics
///
/// On an unknown name.
pub fn token(name: &str) -> Arc<TokenScope> {
    let json = match name {
        "admin" => {
            r#"{"token_id":"t-admin","name":"admin","admin":true,"max_sensitivity":9,
            "allow_attachments":true,"can_export_vectors":true,"grants":[{"table":"lake.*"}]}"#
        }
        "eu" => {
            r#"{"token_id":"t-eu","name":"eu","attributes":{"region":"eu"},"max_sensitivity":2,
            "grants":[
              {"table":"lake.sales.orders","columns":["order_id","region","customer_id","customer_email","amount"],
               "masks":{"customer_email":"hash"},"allow_rules":["region = token.region"],"deny_rules":["amount > 10000"]},
              {"table":"lake.sales.customers","columns":["customer_id","name"]}]}"#
        }
        "eu_ops" => {
            r#"{"token_id":"t-eu-ops","name":"eu_ops","admin":true,"attributes":{"region":"eu"},"max_sensitivity":2,
            "grants":[
              {"table":"lake.sales.orders","columns":["order_id","region","customer_id","customer_email","amount"],
               "masks":{"customer_email":"hash"},"allow_rules":["region = token.region"],"deny_rules":["amount > 10000"]}]}"#
        }
        "auditor" => {
            r#"{"token_id":"t-auditor","name":"auditor","max_sensitivity":1,
            "grants":[{"table":"lake.sales.*","masks":{"customer_email":"partial(1,4)"}}]}"#
        }
        "tiny" => {
            r#"{"token_id":"t-tiny","name":"tiny","max_sensitivity":9,"row_limit":2,
            "grants":[{"table":"lake.sales.orders","columns":["order_id","region"]}]}"#
        }
        "nothing" => r#"{"token_id":"t-nothing","name":"nothing","grants":[]}"#,
        // May rank by the embedding (granted) but not read it (no
        // can_export_vectors); sees eu rows of sensitivity <= 1, emails redacted.
        "seeker" => {
            r#"{"token_id":"t-seeker","name":"seeker","attributes":{"region":"eu"},"max_sensitivity":1,
            "grants":[
              {"table":"lake.sales.orders","columns":["order_id","region","customer_email","amount","embedding"],
               "masks":{"customer_email":"redact"},"allow_rules":["region = token.region"]},
              {"table":"lake.sales.customers"}]}"#
        }
        // Granted the table but not the embedding column.
        "blind" => {
            r#"{"token_id":"t-blind","name":"blind","max_sensitivity":9,
            "grants":[{"table":"lake.sales.orders","columns":["order_id","region"]}]}"#
        }
        other => panic!("unknown test token {other}"),
    };
    Arc::new(serde_json::from_str(json).expect("a valid token scope"))
}
