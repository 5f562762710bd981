//! Statements too large or too deep are refused before planning.
//!
//! DataFusion's planner and optimizer, and Rust's derived `Clone`, `Eq`,
//! `Hash` and `Drop` of its trees, recurse once per level of a statement.
//! A left-deep chain (`1+1+…+1`, `a OR b OR …`, `… UNION …`) parses
//! without recursion into a tree as deep as it is long, and walking that
//! tree overflows a thread's stack, which aborts the whole process. So a
//! statement is measured right after parsing, stopping as soon as it is
//! over a bound (the walk itself never goes deeper than the bound):
//!
//! - its text: at most `max_bytes`;
//! - its nesting: expressions inside expressions, queries inside queries,
//!   set operations (`UNION`, …), the relations of one `FROM` (each join
//!   is a level of the plan) and common table expressions (each may build
//!   on the one before) all count as levels; at most `max_depth`;
//! - its size: at most `max_expressions` expressions in all.
//!
//! Brackets and `CASE … END` are counted on the tokens before parsing
//! too. The parser's own recursion limit is [`StatementBounds::parser_depth`]
//! (it counts every precedence level, so it must be more generous than
//! the nesting it guards).

use std::ops::ControlFlow;

use arrow::datatypes::DataType as ArrowType;
use datafusion::common::tree_node::TreeNodeRecursion;
use datafusion::logical_expr::LogicalPlan;
use datafusion::sql::parser::Statement as DFStatement;
use datafusion::sql::sqlparser::ast::{
    AccessExpr, ArrayElemTypeDef, DataType as SqlType, Expr, FunctionArg, FunctionArgExpr,
    FunctionArguments, Ident, ObjectName, ObjectNamePart, Query, SetExpr, Visit, Visitor,
};
use datafusion::sql::sqlparser::dialect::GenericDialect;
use datafusion::sql::sqlparser::keywords::Keyword;
use datafusion::sql::sqlparser::tokenizer::{Token, Tokenizer};

use crate::error::{Error, ErrorKind, Result};

/// Deepest nesting of a data type (lists of lists, structs of structs):
/// types are walked recursively by every layer that encodes a schema.
pub const MAX_TYPE_DEPTH: usize = 32;

fn type_refusal() -> Error {
    Error::refused(
        ErrorKind::TooComplex,
        format!("the statement nests data types more than {MAX_TYPE_DEPTH} levels deep"),
    )
}

/// Most parts of a dotted name in an expression.
pub const MAX_NAME_PARTS: usize = 5;

/// Longest name (of a table, column, alias, function) accepted: errors
/// quote names, and no real name is longer.
pub const MAX_IDENTIFIER_BYTES: usize = 1024;

/// The bounds a statement must stay within to be planned.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StatementBounds {
    /// Longest statement text, in bytes.
    pub max_bytes: usize,
    /// Deepest nesting (see the module documentation).
    pub max_depth: usize,
    /// Most expressions.
    pub max_expressions: usize,
    /// Most operators in the logical plan.
    pub max_plan_nodes: usize,
}

impl Default for StatementBounds {
    fn default() -> Self {
        super::LimitsConfig::default().statement_bounds()
    }
}

impl StatementBounds {
    /// The recursion limit of the parser: a level of nesting costs it up
    /// to four (precedence climbing).
    pub fn parser_depth(&self) -> usize {
        self.max_depth.saturating_mul(4)
    }

    /// Refuses, before it is parsed, a statement text longer than
    /// `max_bytes` or whose brackets and `CASE … END`s nest deeper than
    /// `max_depth` (the parser would give up on it with a misleading
    /// message, after much backtracking).
    pub fn check_text(&self, sql: &str) -> Result<()> {
        if sql.len() > self.max_bytes {
            return Err(Error::refused(
                ErrorKind::TooComplex,
                format!(
                    "the statement is {} bytes long; at most {} are accepted (limits.max_statement_bytes)",
                    sql.len(),
                    self.max_bytes
                ),
            ));
        }
        // A text that does not tokenize is the parser's to explain.
        let Ok(tokens) = Tokenizer::new(&GenericDialect {}, sql).tokenize() else {
            return Ok(());
        };
        let mut depth = 0usize;
        let mut cases = 0usize;
        // Type nesting: `INT[][]…` suffixes and `ARRAY<…>`-style brackets.
        let mut suffixes = 0usize;
        let mut angles = 0usize;
        let mut previous: Option<&Token> = None;
        for token in tokens.iter().filter(|t| !matches!(t, Token::Whitespace(_))) {
            match (previous, token) {
                (Some(Token::LBracket), Token::RBracket) => suffixes += 1,
                (_, Token::LBracket | Token::RBracket) => {}
                _ => suffixes = 0,
            }
            match (previous, token) {
                (Some(Token::Word(w)), Token::Lt)
                    if matches!(w.keyword, Keyword::ARRAY | Keyword::STRUCT | Keyword::MAP) =>
                {
                    angles += 1;
                }
                (_, Token::Gt) => angles = angles.saturating_sub(1),
                (_, Token::ShiftRight) => angles = angles.saturating_sub(2),
                _ => {}
            }
            previous = Some(token);
            if suffixes > MAX_TYPE_DEPTH || angles > MAX_TYPE_DEPTH {
                return Err(type_refusal());
            }
            match token {
                Token::LParen | Token::LBracket | Token::LBrace => depth += 1,
                Token::RParen | Token::RBracket | Token::RBrace => depth = depth.saturating_sub(1),
                Token::Word(w) if w.quote_style.is_none() && w.keyword == Keyword::CASE => {
                    depth += 1;
                    cases += 1;
                }
                Token::Word(w)
                    if w.quote_style.is_none() && w.keyword == Keyword::END && cases > 0 =>
                {
                    depth = depth.saturating_sub(1);
                    cases -= 1;
                }
                Token::Word(w) if w.value.len() > MAX_IDENTIFIER_BYTES => {
                    return Err(Error::refused(
                        ErrorKind::TooComplex,
                        format!(
                            "an identifier of {} bytes; names are at most {MAX_IDENTIFIER_BYTES} bytes long",
                            w.value.len()
                        ),
                    ));
                }
                _ => {}
            }
            if depth > self.max_depth {
                return Err(Over::Depth.refusal(self));
            }
        }
        Ok(())
    }

    /// Refuses a parsed statement nested deeper than `max_depth` or with
    /// more than `max_expressions` expressions.
    pub fn check(&self, statement: &DFStatement) -> Result<()> {
        let mut meter = Meter {
            bounds: *self,
            depth: 0,
            expressions: 0,
            levels: Vec::new(),
        };
        let outcome = match statement {
            DFStatement::Statement(s) => s.visit(&mut meter),
            DFStatement::Explain(e) => match e.statement.as_ref() {
                DFStatement::Statement(s) => s.visit(&mut meter),
                _ => ControlFlow::Continue(()),
            },
            _ => ControlFlow::Continue(()),
        };
        if let ControlFlow::Break(over) = outcome {
            return Err(over.refusal(self));
        }
        // Measured and bounded: now the walk below stays shallow.
        let query = match statement {
            DFStatement::Statement(s) => match s.as_ref() {
                datafusion::sql::sqlparser::ast::Statement::Query(q) => Some(q),
                _ => None,
            },
            DFStatement::Explain(e) => match e.statement.as_ref() {
                DFStatement::Statement(s) => match s.as_ref() {
                    datafusion::sql::sqlparser::ast::Statement::Query(q) => Some(q),
                    _ => None,
                },
                _ => None,
            },
            _ => None,
        };
        let outcome = match query {
            Some(q) => match expanded(q, &mut Vec::new(), self.max_plan_nodes as u128) {
                Ok(_) => ControlFlow::Continue(()),
                Err(size) => ControlFlow::Break(size),
            },
            None => ControlFlow::Continue(()),
        };
        match outcome {
            ControlFlow::Continue(()) => Ok(()),
            ControlFlow::Break(size) => Err(Error::refused(
                ErrorKind::TooComplex,
                format!(
                    "the statement's common table expressions expand to about {size} plan \
                     operators, more than {} (limits.max_plan_nodes): each reference to a WITH \
                     clause copies it",
                    self.max_plan_nodes
                ),
            )),
        }
    }
}

/// Finds `WITH` clauses whose references multiply: each reference to a
/// common table expression plans a copy of it, so `a1` reading `a0`
/// twice, `a2` reading `a1` twice, … doubles the plan at every step.
/// A query's size is one plus the sizes of the CTEs its own level reads
/// plus the sizes of the queries nested in it, each CTE sized in the scope
/// where it is defined (inner definitions shadow outer ones) and names
/// compared as DataFusion resolves them (unquoted lower-cased, quoted
/// exact). Recursion follows the statement's nesting, which the meter has
/// bounded already.
fn expanded(query: &Query, scope: &mut Vec<(String, u128)>, limit: u128) -> Result<u128, u128> {
    let outer = scope.len();
    if let Some(with) = &query.with {
        for cte in &with.cte_tables {
            let size = expanded(&cte.query, scope, limit)?;
            scope.push((resolved(&cte.alias.name), size));
        }
    }
    let mut level = Level {
        scope,
        limit,
        depth: 0,
        total: 1,
    };
    let outcome = query.body.visit(&mut level);
    let total = level.total;
    scope.truncate(outer);
    match outcome {
        ControlFlow::Break(size) => Err(size),
        ControlFlow::Continue(()) if total > limit => Err(total),
        ControlFlow::Continue(()) => Ok(total),
    }
}

/// Sums one query level: the CTEs it reads, and (recursively) the
/// queries nested in it; what lies inside those is theirs to count.
struct Level<'a> {
    scope: &'a mut Vec<(String, u128)>,
    limit: u128,
    depth: usize,
    total: u128,
}

impl Visitor for Level<'_> {
    type Break = u128;

    fn pre_visit_query(&mut self, query: &Query) -> ControlFlow<u128> {
        if self.depth == 0 {
            match expanded(query, self.scope, self.limit) {
                Ok(size) => self.total = self.total.saturating_add(size),
                Err(size) => return ControlFlow::Break(size),
            }
        }
        self.depth += 1;
        ControlFlow::Continue(())
    }

    fn post_visit_query(&mut self, _query: &Query) -> ControlFlow<u128> {
        self.depth -= 1;
        ControlFlow::Continue(())
    }

    fn pre_visit_relation(&mut self, relation: &ObjectName) -> ControlFlow<u128> {
        if self.depth == 0
            && let [ObjectNamePart::Identifier(id)] = relation.0.as_slice()
        {
            let name = resolved(id);
            if let Some((_, size)) = self.scope.iter().rev().find(|(n, _)| *n == name) {
                self.total = self.total.saturating_add(*size);
            }
        }
        if self.total > self.limit {
            return ControlFlow::Break(self.total);
        }
        ControlFlow::Continue(())
    }
}

/// A CTE or table name as DataFusion resolves it.
fn resolved(id: &Ident) -> String {
    if id.quote_style.is_some() {
        id.value.clone()
    } else {
        id.value.to_lowercase()
    }
}

impl StatementBounds {
    /// Refuses an expression parsed on its own (a filter, a parameter)
    /// nested deeper than `max_depth` or with more than
    /// `max_expressions` expressions.
    pub fn check_expr(&self, expr: &Expr) -> Result<()> {
        let mut meter = Meter {
            bounds: *self,
            depth: 0,
            expressions: 0,
            levels: Vec::new(),
        };
        match expr.visit(&mut meter) {
            ControlFlow::Continue(()) => Ok(()),
            ControlFlow::Break(over) => Err(over.refusal(self)),
        }
    }

    /// Refuses a planned statement with more than `max_plan_nodes` plan
    /// nodes (common table expressions referenced many times multiply
    /// them) or whose schemas nest types deeper than [`MAX_TYPE_DEPTH`]
    /// (`arrow_cast` names types in a string). Stops counting at the
    /// bound, so a plan that shares sub-plans exponentially is not walked
    /// exponentially.
    pub fn check_plan(&self, plan: &LogicalPlan) -> Result<()> {
        let mut nodes = 0usize;
        let mut too_deep = false;
        let _ = plan.apply_with_subqueries(|node| {
            nodes += 1;
            if node
                .schema()
                .fields()
                .iter()
                .any(|f| type_depth(f.data_type(), MAX_TYPE_DEPTH + 1) > MAX_TYPE_DEPTH)
            {
                too_deep = true;
            }
            Ok(if nodes > self.max_plan_nodes || too_deep {
                TreeNodeRecursion::Stop
            } else {
                TreeNodeRecursion::Continue
            })
        });
        if too_deep {
            return Err(type_refusal());
        }
        if nodes > self.max_plan_nodes {
            return Err(Error::refused(
                ErrorKind::TooComplex,
                format!(
                    "the statement plans to more than {} operators (limits.max_plan_nodes); common \
                     table expressions referenced many times multiply them",
                    self.max_plan_nodes
                ),
            ));
        }
        Ok(())
    }
}

/// The parts of a dotted name: `a.b.c`, `a.b.c[1].d`, a function
/// `a.b.f(…)`.
fn name_parts(expr: &Expr) -> usize {
    match expr {
        Expr::CompoundIdentifier(ids) => ids.len(),
        Expr::CompoundFieldAccess { root, access_chain } => {
            let dots = access_chain
                .iter()
                .take_while(|a| matches!(a, AccessExpr::Dot(_)))
                .count();
            name_parts(root).max(1) + dots
        }
        Expr::Function(f) => f.name.0.len(),
        _ => 0,
    }
}

/// How deep the parentheses of a type named in a string (`arrow_cast(x,
/// 'List(…)')`) nest: Arrow's type parser recurses once per level.
fn cast_type_string_depth(expr: &Expr) -> usize {
    let Expr::Function(f) = expr else {
        return 0;
    };
    let is_cast = f.name.0.last().is_some_and(|p| {
        p.as_ident().is_some_and(|i| {
            i.value.eq_ignore_ascii_case("arrow_cast")
                || i.value.eq_ignore_ascii_case("arrow_try_cast")
        })
    });
    let FunctionArguments::List(list) = &f.args else {
        return 0;
    };
    if !is_cast {
        return 0;
    }
    list.args
        .iter()
        .filter_map(|a| match a {
            FunctionArg::Unnamed(FunctionArgExpr::Expr(Expr::Value(v))) => {
                v.value.clone().into_string()
            }
            _ => None,
        })
        .map(|text| {
            let (mut depth, mut max) = (0usize, 0usize);
            for c in text.chars() {
                match c {
                    '(' => {
                        depth += 1;
                        max = max.max(depth);
                    }
                    ')' => depth = depth.saturating_sub(1),
                    _ => {}
                }
            }
            max
        })
        .max()
        .unwrap_or(0)
}

/// Nesting of an Arrow type, counted up to `stop`.
fn type_depth(t: &ArrowType, stop: usize) -> usize {
    if stop == 0 {
        return 1;
    }
    let inner = match t {
        ArrowType::List(f)
        | ArrowType::LargeList(f)
        | ArrowType::ListView(f)
        | ArrowType::LargeListView(f)
        | ArrowType::FixedSizeList(f, _)
        | ArrowType::Map(f, _) => type_depth(f.data_type(), stop - 1),
        ArrowType::Struct(fields) => fields
            .iter()
            .map(|f| type_depth(f.data_type(), stop - 1))
            .max()
            .unwrap_or(0),
        ArrowType::Union(fields, _) => fields
            .iter()
            .map(|(_, f)| type_depth(f.data_type(), stop - 1))
            .max()
            .unwrap_or(0),
        ArrowType::Dictionary(_, v) => type_depth(v, stop - 1),
        ArrowType::RunEndEncoded(_, v) => type_depth(v.data_type(), stop - 1),
        _ => return 0,
    };
    inner + 1
}

/// Nesting of a SQL type, counted up to `stop`.
fn sql_type_depth(t: &SqlType, stop: usize) -> usize {
    if stop == 0 {
        return 1;
    }
    let inner = match t {
        SqlType::Array(
            ArrayElemTypeDef::AngleBracket(e)
            | ArrayElemTypeDef::SquareBracket(e, _)
            | ArrayElemTypeDef::Parenthesis(e),
        )
        | SqlType::Nullable(e)
        | SqlType::LowCardinality(e) => sql_type_depth(e, stop - 1),
        SqlType::Map(k, v) => sql_type_depth(k, stop - 1).max(sql_type_depth(v, stop - 1)),
        SqlType::Struct(fields, _) | SqlType::Tuple(fields) => fields
            .iter()
            .map(|f| sql_type_depth(&f.field_type, stop - 1))
            .max()
            .unwrap_or(0),
        SqlType::Union(fields) => fields
            .iter()
            .map(|f| sql_type_depth(&f.field_type, stop - 1))
            .max()
            .unwrap_or(0),
        SqlType::Nested(columns) => columns
            .iter()
            .map(|c| sql_type_depth(&c.data_type, stop - 1))
            .max()
            .unwrap_or(0),
        _ => return 0,
    };
    inner + 1
}

/// Which bound a statement went over.
enum Over {
    Depth,
    Expressions,
    TypeDepth,
    NameParts,
    TypedLiteral,
}

impl Over {
    fn refusal(&self, bounds: &StatementBounds) -> Error {
        let message = match self {
            Over::TypeDepth => return type_refusal(),
            Over::TypedLiteral => {
                "a typed literal (DATE '…', TIMESTAMP '…') takes a quoted string".to_string()
            }
            Over::NameParts => format!(
                "a name has at most {MAX_NAME_PARTS} parts (catalog.schema.table.column.field)"
            ),
            Over::Depth => format!(
                "the statement nests expressions, subqueries, set operations, joins or WITH \
                 clauses more than {} levels deep (limits.max_nesting_depth); split it or use \
                 IN (…) lists instead of long OR chains",
                bounds.max_depth
            ),
            Over::Expressions => format!(
                "the statement has more than {} expressions (limits.max_expressions)",
                bounds.max_expressions
            ),
        };
        Error::refused(ErrorKind::TooComplex, message)
    }
}

/// Counts levels and expressions while sqlparser's visitor walks the
/// statement; breaks off (so the walk goes no deeper) at the first bound
/// crossed.
struct Meter {
    bounds: StatementBounds,
    depth: usize,
    expressions: usize,
    /// Levels each open query added (popped when it closes).
    levels: Vec<usize>,
}

impl Meter {
    fn enter(&mut self, levels: usize) -> ControlFlow<Over> {
        self.depth = self.depth.saturating_add(levels);
        if self.depth > self.bounds.max_depth {
            return ControlFlow::Break(Over::Depth);
        }
        ControlFlow::Continue(())
    }
}

impl Visitor for Meter {
    type Break = Over;

    fn pre_visit_query(&mut self, query: &Query) -> ControlFlow<Over> {
        // Budget: the levels still allowed, so measuring stops early.
        let budget = self.bounds.max_depth.saturating_sub(self.depth);
        let ctes = query.with.as_ref().map_or(0, |w| w.cte_tables.len());
        let levels = 1 + ctes.saturating_add(set_levels(&query.body, budget.saturating_add(1)));
        self.levels.push(levels);
        self.enter(levels)
    }

    fn post_visit_query(&mut self, _query: &Query) -> ControlFlow<Over> {
        let levels = self.levels.pop().unwrap_or(0);
        self.depth = self.depth.saturating_sub(levels);
        ControlFlow::Continue(())
    }

    fn pre_visit_expr(&mut self, expr: &Expr) -> ControlFlow<Over> {
        self.expressions += 1;
        if self.expressions > self.bounds.max_expressions {
            return ControlFlow::Break(Over::Expressions);
        }
        // DataFusion 53 panics on an unresolved name of six or more parts,
        // however it is spelled, and on a typed literal of a non-string.
        if name_parts(expr) > MAX_NAME_PARTS {
            return ControlFlow::Break(Over::NameParts);
        }
        if let Expr::TypedString(ts) = expr
            && ts.value.value.clone().into_string().is_none()
        {
            return ControlFlow::Break(Over::TypedLiteral);
        }
        if cast_type_string_depth(expr) > MAX_TYPE_DEPTH {
            return ControlFlow::Break(Over::TypeDepth);
        }
        let typed = match expr {
            Expr::Cast { data_type, .. } => Some(data_type),
            Expr::TypedString(ts) => Some(&ts.data_type),
            _ => None,
        };
        if typed.is_some_and(|t| sql_type_depth(t, MAX_TYPE_DEPTH + 1) > MAX_TYPE_DEPTH) {
            return ControlFlow::Break(Over::TypeDepth);
        }
        self.enter(1)
    }

    fn post_visit_expr(&mut self, _expr: &Expr) -> ControlFlow<Over> {
        self.depth = self.depth.saturating_sub(1);
        ControlFlow::Continue(())
    }
}

/// Levels a query body adds: one per nested set operation, plus the
/// relations of the widest `FROM` (each join nests the plan one level).
/// Stops counting once past `budget`, so it never recurses deeper than
/// the bound.
fn set_levels(body: &SetExpr, budget: usize) -> usize {
    if budget == 0 {
        return 1;
    }
    match body {
        SetExpr::SetOperation { left, right, .. } => {
            let l = set_levels(left, budget - 1);
            let r = if l >= budget {
                0
            } else {
                set_levels(right, budget - 1)
            };
            1 + l.max(r)
        }
        SetExpr::Select(select) => select
            .from
            .iter()
            .map(|t| 1 + t.joins.len())
            .fold(0usize, usize::saturating_add),
        // Nested queries are measured when the visitor reaches them.
        _ => 0,
    }
}

#[cfg(test)]
mod tests {
    use datafusion::sql::parser::DFParserBuilder;

    use super::*;

    fn bounds() -> StatementBounds {
        StatementBounds {
            max_bytes: 1 << 20,
            max_depth: 64,
            max_expressions: 10_000,
            max_plan_nodes: 10_000,
        }
    }

    fn parse(sql: &str) -> DFStatement {
        DFParserBuilder::new(sql)
            .with_recursion_limit(64)
            .build()
            .unwrap()
            .parse_statements()
            .unwrap()
            .pop_front()
            .unwrap()
    }

    fn refusal(sql: &str) -> Option<String> {
        let b = bounds();
        b.check_text(sql)
            .and_then(|()| b.check(&parse(sql)))
            .err()
            .map(|e| {
                assert_eq!(e.kind(), ErrorKind::TooComplex, "{e}");
                e.message()
            })
    }

    fn chain(term: &str, op: &str, n: usize) -> String {
        vec![term; n].join(op)
    }

    #[test]
    fn ordinary_statements_pass() {
        for sql in [
            "SELECT 1",
            "SELECT a, b FROM t JOIN u ON t.x = u.x WHERE a > 1 AND b < 2",
            "WITH a AS (SELECT 1 AS x), b AS (SELECT x FROM a) SELECT * FROM b",
            "SELECT 1 UNION ALL SELECT 2 UNION ALL SELECT 3",
            "SELECT CASE WHEN x = 1 THEN 'a' WHEN x = 2 THEN 'b' ELSE 'c' END FROM t",
        ] {
            assert_eq!(refusal(sql), None, "{sql}");
        }
        // Wide but flat: a long IN list is one level.
        let list = (0..5000)
            .map(|i| i.to_string())
            .collect::<Vec<_>>()
            .join(",");
        assert_eq!(refusal(&format!("SELECT 1 WHERE 1 IN ({list})")), None);
    }

    #[test]
    fn left_deep_operator_chains_are_refused_by_depth() {
        for (term, op) in [
            ("1", "+"),
            ("id = 0", " OR "),
            ("x", " AND "),
            ("'a'", " || "),
        ] {
            let sql = format!("SELECT {} FROM t", chain(term, op, 2000));
            let m = refusal(&sql).unwrap_or_else(|| panic!("{op} chain passed"));
            assert!(m.contains("limits.max_nesting_depth"), "{m}");
        }
        // Just under the bound passes.
        assert_eq!(refusal(&format!("SELECT {}", chain("1", "+", 40))), None);
    }

    #[test]
    fn set_operation_join_and_cte_chains_are_refused_by_depth() {
        let unions = chain("SELECT 1", " UNION ALL ", 500);
        let joins = format!(
            "SELECT 1 FROM t0 {}",
            (1..200)
                .map(|i| format!("JOIN t{i} ON true"))
                .collect::<Vec<_>>()
                .join(" ")
        );
        let commas = format!(
            "SELECT 1 FROM {}",
            (0..200)
                .map(|i| format!("t{i}"))
                .collect::<Vec<_>>()
                .join(", ")
        );
        let ctes = format!(
            "WITH c0 AS (SELECT 1 AS x), {} SELECT * FROM c199",
            (1..200)
                .map(|i| format!("c{i} AS (SELECT x FROM c{})", i - 1))
                .collect::<Vec<_>>()
                .join(", ")
        );
        for sql in [unions, joins, commas, ctes] {
            let m = refusal(&sql).unwrap_or_else(|| panic!("passed: {}", &sql[..60]));
            assert!(m.contains("levels deep"), "{m}");
        }
    }

    #[test]
    fn too_many_expressions_and_too_long_texts_are_refused() {
        let list = (0..20_000)
            .map(|i| i.to_string())
            .collect::<Vec<_>>()
            .join(",");
        let m = refusal(&format!("SELECT 1 WHERE 1 IN ({list})")).unwrap();
        assert!(m.contains("limits.max_expressions"), "{m}");
        let long = format!("SELECT '{}'", "x".repeat(2 << 20));
        let m = refusal(&long).unwrap();
        assert!(m.contains("limits.max_statement_bytes"), "{m}");
    }
}
