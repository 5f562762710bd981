//! The small `lake.sales` catalog of the Flight SQL tests and example:
//! `orders` (id, region, amount, secret; five rows) and `hidden` (the same
//! rows, granted to nobody), and its two tokens: alice (id, region and
//! amount of `orders`, row limit 3) and bob (every column, row limit 100).

use std::sync::Arc;

use arrow::array::{Float64Array, Int64Array, RecordBatch, StringArray};
use arrow::datatypes::{DataType, Field, Schema};
use sluice_planner::{Columns, Governor, Grant, TokenScope, TokenType};

use crate::StaticAuthenticator;
use crate::catalog::{governor_of, mem_table, memory_catalog};

/// Alice's secret.
pub const ALICE: &str = "alice-secret-0123456789";
/// Bob's secret.
pub const BOB: &str = "bob-secret-0123456789";

/// A token granted `lake.sales.orders` with `columns`, capped at
/// `row_limit` rows.
pub fn orders_scope(id: &str, columns: Columns, row_limit: u64) -> Arc<TokenScope> {
    Arc::new(TokenScope {
        token_id: id.into(),
        name: id.into(),
        token_type: TokenType::Public,
        admin: false,
        attributes: Default::default(),
        max_sensitivity: 0,
        row_limit,
        allow_attachments: false,
        can_export_vectors: false,
        grants: vec![Grant {
            table: "lake.sales.orders".into(),
            columns,
            masks: Default::default(),
            allow_rules: vec![],
            deny_rules: vec![],
        }],
        query_timeout: None,
        budget: Default::default(),
    })
}

/// The governor serving `lake.sales.orders` and `lake.sales.hidden`.
///
/// # Panics
///
/// Never: the batch is fixed.
pub fn governor() -> Governor {
    let schema = Arc::new(Schema::new(vec![
        Field::new("id", DataType::Int64, false),
        Field::new("region", DataType::Utf8, true),
        Field::new("amount", DataType::Float64, true),
        Field::new("secret", DataType::Utf8, true),
    ]));
    let batch = RecordBatch::try_new(
        schema,
        vec![
            Arc::new(Int64Array::from(vec![1, 2, 3, 4, 5])),
            Arc::new(StringArray::from(vec!["eu", "us", "eu", "apac", "us"])),
            Arc::new(Float64Array::from(vec![10.0, 20.0, 30.0, 40.0, 50.0])),
            Arc::new(StringArray::from(vec!["s1", "s2", "s3", "s4", "s5"])),
        ],
    )
    .expect("a valid batch");
    governor_of(
        "lake",
        memory_catalog([(
            "sales",
            vec![
                ("orders", mem_table(batch.clone())),
                ("hidden", mem_table(batch)),
            ],
        )]),
    )
}

/// Alice and Bob.
pub fn authenticator() -> StaticAuthenticator {
    StaticAuthenticator::new([
        (
            ALICE,
            orders_scope(
                "alice",
                Columns::List(vec!["id".into(), "region".into(), "amount".into()]),
                3,
            ),
        ),
        (BOB, orders_scope("bob", Columns::All, 100)),
    ])
}
