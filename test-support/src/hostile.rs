//! The catalogue of hostile statements: shapes meant to crash, exhaust or
//! hang the gateway (deep and long chains of every kind, huge lists, long
//! names and literals, functions that allocate in proportion to an
//! argument). Every frontend's tests send all of them and expect the named
//! refusal, then an ordinary statement; they all read table
//! `lake.db.numbers` (column `id`, 100 rows) of [`governor`], as
//! [`reader`] (secret [`READER`]).

use std::sync::Arc;

use arrow::array::{Int64Array, RecordBatch};
use arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use datafusion::catalog::streaming::StreamingTable;
use datafusion::datasource::TableProvider;
use datafusion::execution::TaskContext;
use datafusion::physical_plan::SendableRecordBatchStream;
use datafusion::physical_plan::stream::RecordBatchStreamAdapter;
use datafusion::physical_plan::streaming::PartitionStream;
use sluice_planner::limits::{Limits, LimitsConfig};
use sluice_planner::{ErrorKind, Governor, TokenScope};

use crate::StaticAuthenticator;
use crate::catalog::{governor_of, mem_table, memory_catalog};

/// The reader's secret.
pub const READER: &str = "reader-secret-0123456789";

/// `lake.db.numbers`: `id` 0..100.
pub fn numbers() -> RecordBatch {
    let schema = Arc::new(Schema::new(vec![Field::new("id", DataType::Int64, false)]));
    RecordBatch::try_new(schema, vec![Arc::new(Int64Array::from_iter_values(0..100))])
        .expect("a valid batch")
}

/// A stream that panics when polled: a bug in a connector.
#[derive(Debug)]
struct Panicking(SchemaRef);

impl PartitionStream for Panicking {
    fn schema(&self) -> &SchemaRef {
        &self.0
    }

    fn execute(&self, _ctx: Arc<TaskContext>) -> SendableRecordBatchStream {
        let stream = futures::stream::once(async {
            if std::hint::black_box(true) {
                panic!("a connector bug");
            }
            Ok(RecordBatch::new_empty(Arc::new(Schema::empty())))
        });
        Box::pin(RecordBatchStreamAdapter::new(Arc::clone(&self.0), stream))
    }
}

/// A governor serving `lake.db.numbers` and `lake.db.broken` (whose scan
/// panics) under `config`.
///
/// # Panics
///
/// If `config` is invalid.
pub fn governor(config: LimitsConfig) -> Governor {
    let schema = numbers().schema();
    let panicking = StreamingTable::try_new(
        Arc::clone(&schema),
        vec![Arc::new(Panicking(Arc::clone(&schema))) as Arc<dyn PartitionStream>],
    )
    .expect("a valid streaming table");
    let catalog = memory_catalog([(
        "db",
        vec![
            ("numbers", mem_table(numbers())),
            ("broken", Arc::new(panicking) as Arc<dyn TableProvider>),
        ],
    )]);
    governor_of("lake", catalog)
        .with_limits(Arc::new(Limits::new(config, None).expect("valid limits")))
}

/// A token granted everything in `lake.db`.
pub fn reader() -> Arc<TokenScope> {
    crate::scope(serde_json::json!({
        "token_id": "t-reader", "name": "reader", "row_limit": 1000000,
        "grants": [{"table": "lake.db.*"}]
    }))
}

/// The reader, by [`READER`].
pub fn authenticator() -> StaticAuthenticator {
    StaticAuthenticator::new([(READER, reader())])
}

/// What a statement must get.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Expect {
    /// A refusal of this kind (see [`kind_name`]).
    Refused(&'static str),
    /// Rows.
    Runs,
}

/// One statement of the catalogue.
#[derive(Debug, Clone)]
pub struct Case {
    /// What the statement is.
    pub name: &'static str,
    /// Its text.
    pub sql: String,
    /// What it must get.
    pub expect: Expect,
}

/// The short name of a kind the catalogue expects.
pub fn kind_name(kind: ErrorKind) -> &'static str {
    match kind {
        ErrorKind::TooComplex => "too_complex",
        ErrorKind::FunctionLimit => "function_limit",
        ErrorKind::NotFound(_) => "not_found",
        ErrorKind::TimeLimit => "time_limit",
        ErrorKind::LimitExceeded => "memory_limit",
        ErrorKind::TooManyQueries => "too_many_queries",
        ErrorKind::Internal => "internal",
        _ => "other",
    }
}

fn chain(term: &str, op: &str, n: usize) -> String {
    vec![term; n].join(op)
}

fn nest(open: &str, inner: &str, close: &str, n: usize) -> String {
    format!("{}{inner}{}", open.repeat(n), close.repeat(n))
}

/// Every statement of the catalogue.
pub fn statements() -> Vec<Case> {
    use Expect::{Refused, Runs};
    let too_complex = Refused("too_complex");
    let function_limit = Refused("function_limit");
    let numbers = "lake.db.numbers";
    let mut cases = vec![
        ("plus_chain", format!("SELECT {}", chain("1", "+", 2000)), too_complex.clone()),
        (
            "or_chain",
            format!(
                "SELECT id FROM {numbers} WHERE {}",
                (0..5000).map(|i| format!("id = {i}")).collect::<Vec<_>>().join(" OR ")
            ),
            too_complex.clone(),
        ),
        ("and_chain", format!("SELECT id FROM {numbers} WHERE {}", chain("id > 0", " AND ", 3000)), too_complex.clone()),
        ("concat_operator_chain", format!("SELECT {}", chain("'a'", " || ", 3000)), too_complex.clone()),
        ("comparison_chain", format!("SELECT {}", chain("1", " < ", 3000)), too_complex.clone()),
        // About a megabyte of `1+`: the deepest tree the length allows.
        ("longest_plus_chain", format!("SELECT {}", chain("1", "+", 500_000)), too_complex.clone()),
        ("nested_parentheses", format!("SELECT {}", nest("(", "1", ")", 5000)), too_complex.clone()),
        ("nested_functions", format!("SELECT {}", nest("abs(", "1", ")", 3000)), too_complex.clone()),
        ("nested_not", format!("SELECT {}", nest("NOT (", "true", ")", 5000)), too_complex.clone()),
        ("nested_minus", format!("SELECT {}1", "- ".repeat(5000)), too_complex.clone()),
        ("nested_casts", format!("SELECT {}", nest("CAST(", "1", " AS BIGINT)", 3000)), too_complex.clone()),
        (
            "nested_case",
            format!("SELECT {}", nest("CASE WHEN true THEN ", "1", " END", 3000)),
            too_complex.clone(),
        ),
        (
            "nested_from_subqueries",
            format!("SELECT * FROM {}", nest("(SELECT * FROM ", numbers, ")", 500)),
            too_complex.clone(),
        ),
        ("nested_scalar_subqueries", format!("SELECT {}", nest("(SELECT ", "1", ")", 500)), too_complex.clone()),
        (
            "nested_in_subqueries",
            format!("SELECT 1 WHERE 1 IN {}", nest("(SELECT 1 WHERE 1 IN ", "(1)", ")", 500)),
            too_complex.clone(),
        ),
        (
            "cte_chain",
            format!(
                "WITH c0 AS (SELECT id FROM {numbers}), {} SELECT count(*) FROM c999",
                (1..1000).map(|i| format!("c{i} AS (SELECT id FROM c{})", i - 1)).collect::<Vec<_>>().join(", ")
            ),
            too_complex.clone(),
        ),
        ("union_chain", chain(&format!("SELECT id FROM {numbers}"), " UNION ALL ", 3000), too_complex.clone()),
        ("intersect_chain", chain("SELECT 1", " INTERSECT ", 3000), too_complex.clone()),
        (
            "join_chain",
            format!(
                "SELECT count(*) FROM {numbers} t0 {}",
                (1..500).map(|i| format!("JOIN {numbers} t{i} ON t{i}.id = t0.id")).collect::<Vec<_>>().join(" ")
            ),
            too_complex.clone(),
        ),
        (
            "comma_join_chain",
            format!(
                "SELECT count(*) FROM {}",
                (0..500).map(|i| format!("{numbers} t{i}")).collect::<Vec<_>>().join(", ")
            ),
            too_complex.clone(),
        ),
        (
            "huge_in_list",
            format!(
                "SELECT id FROM {numbers} WHERE id IN ({})",
                (0..150_000).map(|i| i.to_string()).collect::<Vec<_>>().join(",")
            ),
            too_complex.clone(),
        ),
        (
            "huge_case",
            format!(
                "SELECT CASE {} END FROM {numbers}",
                (0..60_000).map(|i| format!("WHEN id = {i} THEN {i}")).collect::<Vec<_>>().join(" ")
            ),
            too_complex.clone(),
        ),
        (
            "wide_select_list",
            format!("SELECT {} FROM {numbers}", vec!["id"; 120_000].join(", ")),
            too_complex.clone(),
        ),
        ("over_the_length_limit", format!("SELECT '{}'", "x".repeat(2 << 20)), too_complex.clone()),
        (
            "long_identifier",
            format!("SELECT {} FROM {numbers}", "c".repeat(900_000)),
            too_complex.clone(),
        ),
        (
            "long_quoted_identifier",
            format!("SELECT \"{}\" FROM {numbers}", "c".repeat(900_000)),
            too_complex.clone(),
        ),
        (
            "a_name_of_eight_parts",
            "SELECT clake.sales.clake.saSEles.lake.sales.clake.saSElsa".into(),
            too_complex.clone(),
        ),
        ("long_literal", format!("SELECT length('{}')", "x".repeat(900_000)), Runs),
        (
            "case_within_bounds",
            format!(
                "SELECT CASE {} END FROM {numbers}",
                (0..5000).map(|i| format!("WHEN id = {i} THEN {i}")).collect::<Vec<_>>().join(" ")
            ),
            Runs,
        ),
        ("array_repeat_folded_while_planning", "SELECT cardinality(array_repeat(1, 100000000000))".into(), function_limit.clone()),
        ("nested_array_repeat", "SELECT cardinality(array_repeat(array_repeat(1, 10000), 10000))".into(), function_limit.clone()),
        ("repeat", "SELECT length(repeat('x', 100000000000))".into(), function_limit.clone()),
        ("repeat_per_row", format!("SELECT length(repeat('x', id * 100000000)) FROM {numbers}"), function_limit.clone()),
        ("lpad", "SELECT length(lpad('x', 100000000000))".into(), function_limit.clone()),
        ("rpad_with_wide_fill", "SELECT length(rpad('x', 30000000, 'é'))".into(), function_limit.clone()),
        ("range", "SELECT cardinality(range(1000000000000))".into(), function_limit.clone()),
        (
            "generate_series_of_timestamps",
            "SELECT cardinality(generate_series(TIMESTAMP '2000-01-01', TIMESTAMP '2030-01-01', INTERVAL '1 nanosecond'))"
                .into(),
            function_limit.clone(),
        ),
        (
            "generate_series_of_dates",
            "SELECT cardinality(generate_series(DATE '1900-01-01', DATE '2100-01-01', INTERVAL '1 day'))".into(),
            Runs,
        ),
        ("unnest_of_range", "SELECT count(*) FROM unnest(range(1, 100000000000))".into(), function_limit.clone()),
        ("array_resize", "SELECT cardinality(array_resize(make_array(1), 100000000000, 0))".into(), function_limit.clone()),
        (
            "concat_of_large_values",
            "SELECT length(concat(repeat('x', 10000000), repeat('x', 10000000)))".into(),
            function_limit.clone(),
        ),
        ("replace_blow_up", "SELECT length(replace(repeat('a', 1000000), 'a', repeat('b', 1000)))".into(), function_limit.clone()),
        (
            "regexp_replace_blow_up",
            "SELECT length(regexp_replace(repeat('a', 100000), '', repeat('b', 10000), 'g'))".into(),
            function_limit.clone(),
        ),
        ("levenshtein_of_long_strings", "SELECT levenshtein(repeat('a', 20000), repeat('b', 20000))".into(), function_limit.clone()),
        ("string_agg_of_large_values", format!("SELECT length(string_agg(repeat('x', 20000000), ',')) FROM {numbers}"), function_limit.clone()),
        // DataFusion's cross join copies the value into every output row,
        // past Arrow's 2GiB of text per array: a panic, which fails this
        // statement only.
        (
            "cross_join_of_a_large_value",
            "SELECT sum(length(s)) FROM (SELECT repeat('x', 10000000) AS s) CROSS JOIN range(2000)".into(),
            Refused("internal"),
        ),
        (
            "series_whose_step_makes_no_progress",
            "SELECT cardinality(generate_series(TIMESTAMP '2000-01-01', TIMESTAMP '2000-01-02', INTERVAL '1 day -24 hours'))"
                .into(),
            function_limit.clone(),
        ),
        (
            "series_whose_step_points_both_ways",
            "SELECT cardinality(range(DATE '2000-05-01', DATE '2000-04-01', INTERVAL '1 month -30 days'))".into(),
            function_limit.clone(),
        ),
        (
            "array_replace_blow_up",
            "SELECT cardinality(flatten(array_replace_all(array_repeat(make_array(1), 20000), make_array(1), array_repeat(1, 200000))))"
                .into(),
            function_limit.clone(),
        ),
        (
            "encode_blow_up",
            format!("SELECT length(encode(repeat('x', 9000000 + id), 'hex')) FROM {numbers} WHERE id = 1"),
            function_limit.clone(),
        ),
        (
            "one_huge_row_among_small_ones",
            "SELECT cardinality(array_repeat(x, CASE WHEN value = 0 THEN 50000 ELSE 0 END)) FROM \
             (SELECT value, array_repeat(1, CASE WHEN value = 0 THEN 300000 ELSE 0 END) AS x FROM range(8192))"
                .into(),
            function_limit.clone(),
        ),
        (
            "nested_array_type_suffixes",
            format!("SELECT CAST(NULL AS INT{})", "[]".repeat(50_000)),
            too_complex.clone(),
        ),
        (
            "nested_angle_bracket_types",
            format!("SELECT CAST(NULL AS {}INT{})", "ARRAY<".repeat(5000), ">".repeat(5000)),
            too_complex.clone(),
        ),
        (
            "nested_types_in_a_cast_string",
            format!(
                "SELECT arrow_cast(NULL, '{}Int32{}')",
                "List(".repeat(5000),
                ")".repeat(5000)
            ),
            too_complex.clone(),
        ),
        (
            "cte_fan_out",
            format!(
                "WITH a0 AS (SELECT 1 AS x), {} SELECT count(*) FROM a40",
                (1..=40)
                    .map(|i| format!("a{i} AS (SELECT x FROM a{p} UNION ALL SELECT x FROM a{p})", p = i - 1))
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
            too_complex.clone(),
        ),
        (
            "cte_fan_out_through_nested_with",
            format!(
                "WITH a0 AS (SELECT 1 AS x), {} SELECT count(*) FROM a40",
                (1..=40)
                    .map(|i| format!(
                        "a{i} AS (WITH t AS (SELECT x FROM a{p}) SELECT x FROM t UNION ALL SELECT x FROM t)",
                        p = i - 1
                    ))
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
            too_complex.clone(),
        ),
        (
            "cte_fan_out_behind_quoted_decoys",
            format!(
                "WITH b0 AS (SELECT 1 AS x), \"B0\" AS (SELECT 1 AS x), {} SELECT count(*) FROM \"B40\"",
                (1..=40)
                    .map(|i| format!(
                        "b{i} AS (SELECT 1 AS x), \"B{i}\" AS (SELECT x FROM \"B{p}\" UNION ALL SELECT x FROM \"B{p}\")",
                        p = i - 1
                    ))
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
            too_complex.clone(),
        ),
        ("six_part_field_access", "SELECT a.b.c.d.e.f[1]".into(), too_complex.clone()),
        ("six_part_niladic_function", "SELECT a.b.c.d.e.current_date".into(), too_complex.clone()),
        ("typed_literal_of_a_number", "SELECT DATE 1".into(), too_complex.clone()),
        (
            "nested_types_in_a_cast_string_inside_a_filter",
            format!(
                "SELECT 1 WHERE arrow_cast(NULL, '{}Int32{}') IS NULL",
                "List(".repeat(100_000),
                ")".repeat(100_000)
            ),
            too_complex.clone(),
        ),
        ("small_range", "SELECT cardinality(range(1000))".into(), Runs),
        ("small_repeat", format!("SELECT length(repeat('ab', id)) FROM {numbers}"), Runs),
    ];
    cases
        .drain(..)
        .map(|(name, sql, expect)| Case { name, sql, expect })
        .collect()
}
