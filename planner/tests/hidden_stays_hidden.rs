//! What a token cannot learn about what its policy hides, beyond the
//! `.slt` suite (these need their own tokens or tables): EXPLAIN stays
//! redacted whatever the policy's literals hold, the policy fingerprint
//! and the mask key stay out of sight, glob masks reach case variants of
//! their column, and connector field metadata does not reveal hidden
//! columns.

use std::collections::HashMap;
use std::sync::Arc;

use arrow::array::{ArrayRef, Float32Array, Int64Array, ListArray, RecordBatch, StringArray};
use arrow::buffer::OffsetBuffer;
use arrow::datatypes::{DataType, Field, Schema};
use datafusion::datasource::TableProvider;
use sluice_planner::{Governor, TokenScope};
use sluice_test_support::batches::{collect, strings};
use sluice_test_support::catalog::{governor_of, mem_table, memory_catalog};
use sluice_test_support::{MASK_KEY, scope, token};

async fn rows(g: &Governor, s: &Arc<TokenScope>, sql: &str) -> Vec<RecordBatch> {
    collect(g, s, sql).await
}

async fn explain_text(g: &Governor, s: &Arc<TokenScope>, sql: &str) -> String {
    let batches = rows(g, s, sql).await;
    let mut out = String::new();
    for b in &batches {
        let kind = b.column(0).as_any().downcast_ref::<StringArray>().unwrap();
        let plan = b.column(1).as_any().downcast_ref::<StringArray>().unwrap();
        for i in 0..b.num_rows() {
            out.push_str(&format!("{}: {}\n", kind.value(i), plan.value(i)));
        }
    }
    out
}

// EXPLAIN for a token that is not an admin is rendered from the plan tree,
// so a newline inside a policy literal (rule text or a token attribute)
// cannot make it print the rest of the rule, hidden_columns, the policy
// FilterExec with hidden column names, or the scan.

#[tokio::test]
async fn explain_redaction_survives_newline_in_rule_literal() {
    let g = sluice_test_support::governor();
    let s = scope(serde_json::json!({
        "token_id": "t-nl", "name": "nl", "max_sensitivity": 2,
        "grants": [{"table": "lake.sales.orders",
                    "columns": ["order_id", "region"],
                    "deny_rules": ["customer_email = 'multi\nline' OR amount > 10000"]}]
    }));
    g.validate(&s).await.expect("the token is valid");
    let text = explain_text(&g, &s, "EXPLAIN SELECT order_id FROM lake.sales.orders").await;
    for secret in [
        "amount",
        "hidden_columns",
        "sensitivity",
        "customer_email",
        "FilterExec",
        "DataSourceExec",
    ] {
        assert!(
            !text.contains(secret),
            "non-admin EXPLAIN shows {secret:?}:\n{text}"
        );
    }
}

#[tokio::test]
async fn explain_redaction_survives_newline_in_token_attribute() {
    let g = sluice_test_support::governor();
    let s = scope(serde_json::json!({
        "token_id": "t-nl2", "name": "nl2", "max_sensitivity": 2,
        "attributes": {"region": "eu\n"},
        "grants": [{"table": "lake.sales.orders",
                    "columns": ["order_id", "region"],
                    "allow_rules": ["region = token.region"]}]
    }));
    let text = explain_text(&g, &s, "EXPLAIN SELECT order_id FROM lake.sales.orders").await;
    for secret in [
        "hidden_columns",
        "sensitivity",
        "FilterExec",
        "DataSourceExec",
    ] {
        assert!(
            !text.contains(secret),
            "non-admin EXPLAIN shows {secret:?}:\n{text}"
        );
    }
}

// The policy fingerprint hashes data the token mostly knows (its grant and
// attributes, which introspection returns to it); the only unknown is the
// table classification, i.e. the names of hidden columns. Shown to a token
// that is not an admin, it would be an offline oracle for those names.

#[tokio::test]
async fn policy_fingerprint_is_not_an_offline_oracle_for_hidden_column_names() {
    // Neither the fingerprint nor the rules are shown to tokens that are not
    // admins: nothing is left to test guesses against.
    let g = sluice_test_support::governor();
    let s = token("eu");
    let text = explain_text(&g, &s, "EXPLAIN SELECT order_id FROM lake.sales.orders").await;
    assert!(!text.contains("policy="), "{text}");
    assert!(text.contains("SecureViewExec"), "{text}");
}

/// The key of the `hash` mask is never printable: not through the
/// governor's `Debug`, nor through a scoped table provider's (which any
/// DataFusion error or log line that Debug-prints a plan, a table source or
/// a UDF would carry).
#[tokio::test]
async fn mask_key_is_not_in_debug_output() {
    let g = sluice_test_support::governor();
    let key_debug = format!("{:?}", MASK_KEY);
    let key_debug = key_debug.trim_start_matches('[').trim_end_matches(']');
    let governor_debug = format!("{g:?}");
    assert!(
        !governor_debug.contains(key_debug),
        "Debug of Governor prints the mask key bytes"
    );
    let ctx = g.context(&token("eu"));
    let provider = ctx.table_provider("lake.sales.orders").await.unwrap();
    let provider_debug = format!("{provider:?}");
    assert!(
        !provider_debug.contains(key_debug),
        "Debug of the scoped table provider prints the mask key bytes"
    );
}

// Glob grants: a mask applies to every column whose name matches it
// case-insensitively (Iceberg names are case-sensitive, so a matched table
// may spell the column differently).

fn table(schema: Schema, cols: Vec<ArrayRef>) -> Arc<dyn TableProvider> {
    mem_table(RecordBatch::try_new(Arc::new(schema), cols).unwrap())
}

/// `lake.crm.contacts` (`customer_email`) and `lake.crm.leads`
/// (`Customer_Email`, differing only in case).
fn glob_governor() -> Governor {
    let contacts = table(
        Schema::new(vec![
            Field::new("id", DataType::Int64, false),
            Field::new("customer_email", DataType::Utf8, true),
        ]),
        vec![
            Arc::new(Int64Array::from(vec![1])),
            Arc::new(StringArray::from(vec!["alice@x.com"])),
        ],
    );
    let leads = table(
        Schema::new(vec![
            Field::new("id", DataType::Int64, false),
            Field::new("Customer_Email", DataType::Utf8, true),
        ]),
        vec![
            Arc::new(Int64Array::from(vec![2])),
            Arc::new(StringArray::from(vec!["bob@x.com"])),
        ],
    );
    governor_of(
        "lake",
        memory_catalog([("crm", vec![("contacts", contacts), ("leads", leads)])]),
    )
    .with_mask_key(MASK_KEY)
}

/// A value of the `hash` mask: 64 lower-case hex digits.
fn is_hash(value: &str) -> bool {
    value.len() == 64
        && value
            .bytes()
            .all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase())
}

#[tokio::test]
async fn glob_mask_reaches_a_case_variant_column() {
    let g = glob_governor();
    let s = scope(serde_json::json!({
        "token_id": "t-glob", "name": "glob", "max_sensitivity": 9,
        "grants": [{"table": "lake.crm.*", "masks": {"customer_email": "hash"}}]
    }));
    assert_eq!(g.validate(&s).await, Ok(()));
    let seen = strings(
        &rows(&g, &s, "SELECT \"Customer_Email\" FROM lake.crm.leads").await,
        0,
    );
    assert_eq!(seen.len(), 1, "{seen:?}");
    assert!(is_hash(&seen[0]), "not masked: {seen:?}");
}

/// A more specific grant keeps the masks of a glob grant that covers the
/// same table: a narrower grant can never unmask what a broader one masks.
#[tokio::test]
async fn specific_grant_keeps_the_masks_of_a_covering_glob() {
    let g = glob_governor();
    let s = scope(serde_json::json!({
        "token_id": "t-glob2", "name": "glob2", "max_sensitivity": 9,
        "grants": [{"table": "lake.crm.*", "masks": {"customer_email": "hash"}},
                   {"table": "lake.crm.contacts", "allow_rules": ["id > 0"]}]
    }));
    assert_eq!(g.validate(&s).await, Ok(()));
    let seen = strings(
        &rows(&g, &s, "SELECT customer_email FROM lake.crm.contacts").await,
        0,
    );
    assert_eq!(seen.len(), 1, "{seen:?}");
    assert!(is_hash(&seen[0]), "not masked: {seen:?}");
}

// Field metadata of the connector schema (Iceberg: `PARQUET:field_id`,
// sequential ids) must not reach the secure view's schema, the announced
// schema or `arrow_metadata()`: gaps in the ids would reveal how many hidden
// columns there are and where.

#[tokio::test]
async fn source_field_metadata_does_not_reveal_hidden_columns() {
    let id = |n: &str| HashMap::from([("PARQUET:field_id".to_string(), n.to_string())]);
    let schema = Schema::new(vec![
        Field::new("id", DataType::Int64, false).with_metadata(id("1")),
        Field::new("ssn", DataType::Utf8, true).with_metadata(id("2")),
        Field::new("name", DataType::Utf8, true).with_metadata(id("3")),
    ]);
    let people = table(
        schema,
        vec![
            Arc::new(Int64Array::from(vec![1])),
            Arc::new(StringArray::from(vec!["123-45-6789"])),
            Arc::new(StringArray::from(vec!["Ann"])),
        ],
    );
    let g = governor_of("lake", memory_catalog([("hr", vec![("people", people)])]))
        .with_mask_key(MASK_KEY);
    let s = scope(serde_json::json!({
        "token_id": "t-md", "name": "md", "max_sensitivity": 9,
        "grants": [{"table": "lake.hr.people", "columns": ["id", "name"]}]
    }));
    let plan = g.plan(&s, "SELECT * FROM lake.hr.people").await.unwrap();
    let announced: Vec<_> = plan
        .schema()
        .fields()
        .iter()
        .map(|f| format!("{}{:?}", f.name(), f.metadata()))
        .collect();
    let md = strings(
        &rows(
            &g,
            &s,
            "SELECT arrow_metadata(name, 'PARQUET:field_id') AS field_id FROM lake.hr.people",
        )
        .await,
        0,
    );
    assert_eq!(announced, ["id{}", "name{}"], "the announced schema");
    assert_eq!(md, ["NULL"], "arrow_metadata() shows source field ids");
}

// Iceberg gives a list's element field an id too. It must not reach the
// view either, and aggregates that rebuild list values (`count(DISTINCT
// list)`, whose accumulator makes elements without metadata) must still run.

#[tokio::test]
async fn nested_field_metadata_is_dropped_and_list_aggregates_run() {
    let id = |n: &str| HashMap::from([("PARQUET:field_id".to_string(), n.to_string())]);
    let element = Arc::new(Field::new("element", DataType::Float32, true).with_metadata(id("9")));
    let schema = Schema::new(vec![
        Field::new("id", DataType::Int64, false).with_metadata(id("1")),
        Field::new("embedding", DataType::List(Arc::clone(&element)), true).with_metadata(id("2")),
    ]);
    let embedding = ListArray::new(
        element,
        OffsetBuffer::from_lengths([2, 2, 2]),
        Arc::new(Float32Array::from(vec![1.0, 2.0, 3.0, 4.0, 1.0, 2.0])),
        None,
    );
    let docs = table(
        schema,
        vec![
            Arc::new(Int64Array::from(vec![1, 2, 3])),
            Arc::new(embedding),
        ],
    );
    let g = governor_of("lake", memory_catalog([("ml", vec![("docs", docs)])]));
    let s = scope(serde_json::json!({
        "token_id": "t-nested", "name": "nested", "max_sensitivity": 9, "can_export_vectors": true,
        "grants": [{"table": "lake.ml.docs", "columns": ["id", "embedding"]}]
    }));
    let plan = g
        .plan(&s, "SELECT embedding FROM lake.ml.docs")
        .await
        .unwrap();
    assert_eq!(
        plan.schema().field(0).data_type(),
        &DataType::List(Arc::new(Field::new("element", DataType::Float32, true))),
        "the announced list type keeps no element metadata"
    );
    let batches = rows(
        &g,
        &s,
        "SELECT id % 2 AS k, count(DISTINCT embedding) AS n FROM lake.ml.docs GROUP BY id % 2 ORDER BY k",
    )
    .await;
    let n: Vec<i64> = batches
        .iter()
        .flat_map(|b| {
            let col = b
                .column(1)
                .as_any()
                .downcast_ref::<Int64Array>()
                .unwrap_or_else(|| panic!("{:?}", b.schema()));
            col.values().to_vec()
        })
        .collect();
    assert_eq!(
        n,
        [1, 1],
        "k=0: one list; k=1: two equal lists (ids 1 and 3)"
    );
}

// Every session starts from one shared base state: what one token's
// session holds (its catalogs, its statement's bounded functions) must not
// reach the next session, whichever token it is for.
#[tokio::test]
async fn sessions_share_no_catalogs_between_tokens() {
    let g = sluice_test_support::governor();
    let granted = scope(serde_json::json!({
        "token_id": "t-granted", "name": "granted", "max_sensitivity": 2,
        "grants": [{"table": "lake.sales.orders", "columns": ["order_id"]}]
    }));
    let other = scope(serde_json::json!({
        "token_id": "t-other", "name": "other", "max_sensitivity": 2,
        "grants": [{"table": "elsewhere.x.y", "columns": ["a"]}]
    }));
    for _ in 0..2 {
        let seen = g.context(&granted).catalog_names();
        assert!(seen.contains(&"lake".to_string()), "{seen:?}");
        let seen = g.context(&other).catalog_names();
        assert!(!seen.contains(&"lake".to_string()), "{seen:?}");
        let refused = g
            .plan(&other, "SELECT order_id FROM lake.sales.orders")
            .await
            .unwrap_err();
        assert!(refused.to_string().contains("not found"), "{refused}");
        assert_eq!(
            strings(
                &rows(&g, &granted, "SELECT count(*) FROM lake.sales.orders").await,
                0
            )
            .len(),
            1
        );
    }
}
