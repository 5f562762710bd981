//! Parsing with a work budget.
//!
//! sqlparser 0.61 (the version DataFusion 53 uses) backtracks: where a
//! keyword may start a special expression (`CAST(`, `SUBSTRING(`,
//! `POSITION(`, `ARRAY[`, `NOT (`, …) it first tries that reading and, if
//! anything beneath fails, parses the same tokens again as an identifier
//! or a function call. Nested `n` deep above a syntax error, that is
//! 2^n–4^n attempts: a 300-byte statement keeps a core busy for days,
//! and no deadline can take a thread back from a parser. (Upstream fixed
//! these shapes with per-position caches in sqlparser 0.62+, which
//! DataFusion 53 cannot use.)
//!
//! [`BudgetedDialect`] is DataFusion's generic dialect with a meter: the
//! parser consults its dialect at every decision, so the number of
//! consultations measures the parser's work. A linear parse makes a few
//! per byte; past [`BUDGET_PER_BYTE`] per byte the dialect makes every
//! further expression fail at once, which unwinds the backtracking in
//! linear time, and the statement is refused as too complex.

use std::any::TypeId;
use std::cell::Cell;
use std::collections::VecDeque;

use datafusion::sql::parser::{DFParserBuilder, Statement as DFStatement};
use datafusion::sql::sqlparser::ast::{Expr, Statement};
use datafusion::sql::sqlparser::dialect::{Dialect, GenericDialect};
use datafusion::sql::sqlparser::parser::{Parser, ParserError};

use datafusion::sql::sqlparser::tokenizer::Token;

use super::StatementBounds;
use crate::error::{Error, ErrorKind, Result};

/// Dialect consultations allowed per byte of statement text.
pub const BUDGET_PER_BYTE: u64 = 16;

/// Consultations allowed whatever the length (short statements).
const BUDGET_FLOOR: u64 = 20_000;

const TOO_COMPLEX: &str = "the statement is too complex to parse";

/// DataFusion's generic SQL dialect, metered (see the module
/// documentation). It is the generic dialect for the parser's own checks
/// (`dialect_of!`).
#[derive(Debug)]
pub struct BudgetedDialect {
    inner: GenericDialect,
    spent: Cell<u64>,
    budget: u64,
}

impl BudgetedDialect {
    /// A dialect for parsing `sql`.
    pub fn for_text(sql: &str) -> Self {
        Self {
            inner: GenericDialect {},
            spent: Cell::new(0),
            budget: BUDGET_FLOOR.saturating_add((sql.len() as u64).saturating_mul(BUDGET_PER_BYTE)),
        }
    }

    /// Counts one consultation; `false` once the budget is spent.
    fn spend(&self) -> bool {
        let n = self.spent.get().saturating_add(1);
        self.spent.set(n);
        n <= self.budget
    }

    /// Whether parsing went over its budget.
    pub fn exhausted(&self) -> bool {
        self.spent.get() > self.budget
    }

    /// Consultations so far.
    pub fn spent(&self) -> u64 {
        self.spent.get()
    }

    fn refuse<T>(&self) -> Option<std::result::Result<T, ParserError>> {
        Some(Err(ParserError::ParserError(TOO_COMPLEX.to_string())))
    }
}

/// Flags of the generic dialect, delegated and counted.
macro_rules! counted_flags {
    ($($flag:ident),* $(,)?) => {
        $(
            fn $flag(&self) -> bool {
                self.spend();
                self.inner.$flag()
            }
        )*
    };
}

impl Dialect for BudgetedDialect {
    fn dialect(&self) -> TypeId {
        TypeId::of::<GenericDialect>()
    }

    // The tokenizer's questions: linear in the text, not counted.
    fn is_delimited_identifier_start(&self, ch: char) -> bool {
        self.inner.is_delimited_identifier_start(ch)
    }

    fn is_identifier_start(&self, ch: char) -> bool {
        self.inner.is_identifier_start(ch)
    }

    fn is_identifier_part(&self, ch: char) -> bool {
        self.inner.is_identifier_part(ch)
    }

    fn parse_prefix(&self, parser: &mut Parser) -> Option<std::result::Result<Expr, ParserError>> {
        if !self.spend() {
            return self.refuse();
        }
        self.inner.parse_prefix(parser)
    }

    fn parse_infix(
        &self,
        parser: &mut Parser,
        expr: &Expr,
        precedence: u8,
    ) -> Option<std::result::Result<Expr, ParserError>> {
        if !self.spend() {
            return self.refuse();
        }
        self.inner.parse_infix(parser, expr, precedence)
    }

    fn get_next_precedence(&self, parser: &Parser) -> Option<std::result::Result<u8, ParserError>> {
        if !self.spend() {
            return self.refuse();
        }
        self.inner.get_next_precedence(parser)
    }

    fn parse_statement(
        &self,
        parser: &mut Parser,
    ) -> Option<std::result::Result<Statement, ParserError>> {
        if !self.spend() {
            return self.refuse();
        }
        self.inner.parse_statement(parser)
    }

    counted_flags!(
        supports_unicode_string_literal,
        supports_group_by_expr,
        supports_group_by_with_modifier,
        supports_left_associative_joins_without_parens,
        supports_connect_by,
        supports_match_recognize,
        supports_pipe_operator,
        supports_start_transaction_modifier,
        supports_window_function_null_treatment_arg,
        supports_dictionary_syntax,
        supports_window_clause_named_window_reference,
        supports_parenthesized_set_variables,
        supports_select_wildcard_except,
        support_map_literal_syntax,
        allow_extract_custom,
        allow_extract_single_quotes,
        supports_extract_comma_syntax,
        supports_create_view_comment_syntax,
        supports_parens_around_table_factor,
        supports_values_as_table_factor,
        supports_create_index_with_clause,
        supports_explain_with_utility_options,
        supports_limit_comma,
        supports_from_first_select,
        supports_projection_trailing_commas,
        supports_asc_desc_in_column_definition,
        supports_try_convert,
        supports_bitwise_shift_operators,
        supports_comment_on,
        supports_load_extension,
        supports_named_fn_args_with_assignment_operator,
        supports_struct_literal,
        supports_empty_projections,
        supports_nested_comments,
        supports_multiline_comment_hints,
        supports_user_host_grantee,
        supports_string_escape_constant,
        supports_array_typedef_with_brackets,
        supports_match_against,
        supports_set_names,
        supports_comma_separated_set_assignments,
        supports_filter_during_aggregation,
        supports_select_wildcard_exclude,
        supports_data_type_signed_suffix,
        supports_interval_options,
        supports_quote_delimited_string,
        supports_lambda_functions,
        supports_select_wildcard_replace,
        supports_select_wildcard_ilike,
        supports_select_wildcard_rename,
        supports_optimize_table,
        supports_install,
        supports_detach,
        supports_prewhere,
        supports_with_fill,
        supports_limit_by,
        supports_interpolate,
        supports_settings,
        supports_select_format,
        supports_comment_optimizer_hint,
        supports_constraint_keyword_without_name,
    );
}

/// Parses one statement of `sql` as DataFusion's `sql_to_statement` does
/// (generic dialect, `recursion_limit`), within the work budget.
pub fn parse_statement(sql: &str, recursion_limit: usize) -> Result<DFStatement> {
    let dialect = BudgetedDialect::for_text(sql);
    let parsed = DFParserBuilder::new(sql)
        .with_dialect(&dialect)
        .with_recursion_limit(recursion_limit)
        .build()
        .and_then(|mut p| p.parse_statements());
    if dialect.exhausted() {
        return Err(too_complex());
    }
    let mut statements: VecDeque<DFStatement> = parsed.map_err(Error::DataFusion)?;
    if statements.len() > 1 {
        return Err(Error::refused(
            ErrorKind::Unsupported,
            "only a single SQL statement is supported per request; send one statement at a time",
        ));
    }
    statements
        .pop_front()
        .ok_or_else(|| Error::refused(ErrorKind::Syntax(None), "no SQL statement was given"))
}

/// Runs `parse` (an expression or a list of them, parsed on their own:
/// a filter, the parameters of `EXECUTE … USING`) over `text` with the
/// metered dialect, after the text bounds; the caller checks what it
/// parsed with [`StatementBounds::check_expr`].
pub fn with_parser<T>(
    text: &str,
    bounds: &StatementBounds,
    parse: impl FnOnce(&mut Parser) -> Result<T>,
) -> Result<T> {
    bounds.check_text(text)?;
    let dialect = BudgetedDialect::for_text(text);
    let parsed = Parser::new(&dialect)
        .with_recursion_limit(bounds.parser_depth())
        .try_with_sql(text)
        .map_err(|e| Error::DataFusion(e.into()))
        .and_then(|mut parser| parse(&mut parser));
    if dialect.exhausted() {
        return Err(too_complex());
    }
    parsed
}

/// One expression of `text`, metered and bounded like a statement.
pub fn parse_expr(text: &str, bounds: &StatementBounds) -> Result<Expr> {
    let expr = with_parser(text, bounds, |p| {
        let expr = p.parse_expr().map_err(|e| Error::DataFusion(e.into()))?;
        p.expect_token(&Token::EOF)
            .map_err(|e| Error::DataFusion(e.into()))?;
        Ok(expr)
    })?;
    bounds.check_expr(&expr)?;
    Ok(expr)
}

fn too_complex() -> Error {
    Error::refused(
        ErrorKind::TooComplex,
        format!(
            "{TOO_COMPLEX}: its nesting makes the parser backtrack (limits.max_nesting_depth \
             cannot help here); simplify the nested expressions or fix the syntax error inside \
             them"
        ),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn generic(sql: &str) -> std::result::Result<Vec<Statement>, ParserError> {
        Parser::new(&GenericDialect {})
            .with_recursion_limit(128)
            .try_with_sql(sql)
            .and_then(|mut p| p.parse_statements())
    }

    fn metered(sql: &str) -> (std::result::Result<Vec<Statement>, ParserError>, u64) {
        let d = BudgetedDialect::for_text(sql);
        let r = Parser::new(&d)
            .with_recursion_limit(128)
            .try_with_sql(sql)
            .and_then(|mut p| p.parse_statements());
        (r, d.spent())
    }

    #[test]
    fn the_metered_dialect_parses_like_the_generic_one() {
        for sql in [
            "SELECT a, b FROM t WHERE a > 1 AND b LIKE 'x%' ORDER BY 1 LIMIT 3",
            "SELECT CAST(x AS BIGINT), TRY_CAST('1' AS INT), SUBSTRING('abc' FROM 2), POSITION('b' IN 'abc') FROM t",
            "WITH RECURSIVE c(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM c WHERE n < 3) SELECT * FROM c",
            "SELECT {'a': 1}, [1, 2][1], ARRAY[1, 2], x::int, EXTRACT(YEAR FROM d), INTERVAL '1' DAY FROM t",
            "SELECT * EXCLUDE (a) FROM t GROUP BY ALL",
            "SELECT count(*) FILTER (WHERE a > 1) OVER (PARTITION BY b ORDER BY c ROWS 1 PRECEDING) FROM t",
            "SELECT 1 FROM ((SELECT 1) x JOIN (SELECT 2) y ON true)",
            "SELECT position FROM t",
            "EXPLAIN SELECT 1",
        ] {
            let (m, spent) = metered(sql);
            assert_eq!(m, generic(sql), "{sql}");
            assert!(spent < 4 * sql.len() as u64, "{sql}: {spent}");
        }
    }

    #[test]
    fn expressions_parsed_on_their_own_are_metered_and_bounded() {
        let bounds = StatementBounds::default();
        assert!(parse_expr("a > 1 AND b = 'x'", &bounds).is_ok());
        let backtracking = format!("{}1 AS{}", "CAST(".repeat(40), " AS BIGINT)".repeat(40));
        let deep = vec!["1"; 5000].join("+");
        for text in [backtracking, deep] {
            let t = text.clone();
            let e = std::thread::Builder::new()
                .stack_size(crate::limits::run::STACK_SIZE)
                .spawn(move || parse_expr(&t, &StatementBounds::default()))
                .unwrap()
                .join()
                .unwrap()
                .unwrap_err();
            assert_eq!(e.kind(), ErrorKind::TooComplex, "{}: {e}", &text[..20]);
        }
    }

    #[test]
    fn backtracking_nests_are_cut_short() {
        for (open, inner, close) in [
            ("CAST(", "1 AS", " AS BIGINT)"),
            ("ARRAY[", "1 +", "]"),
            ("NOT (", "1 +", ")"),
            ("SUBSTRING(", "1 +", " FROM 1)"),
            ("POSITION(", "'a' IN", " IN 'b')"),
            // Valid, but deeper than the parser's recursion limit.
            ("CAST(", "1", " AS BIGINT)"),
        ] {
            let sql = format!("SELECT {}{inner}{}", open.repeat(200), close.repeat(200));
            let t0 = std::time::Instant::now();
            // As statements are parsed: on a thread of the execution runtime.
            let e = std::thread::Builder::new()
                .stack_size(crate::limits::run::STACK_SIZE)
                .spawn(move || parse_statement(&sql, 128))
                .unwrap()
                .join()
                .unwrap()
                .unwrap_err();
            assert!(
                t0.elapsed() < std::time::Duration::from_secs(2),
                "{open}: {:?}",
                t0.elapsed()
            );
            assert_eq!(e.kind(), ErrorKind::TooComplex, "{open}: {e}");
        }
    }
}
