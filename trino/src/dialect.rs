//! Trino SQL → DataFusion SQL, on the syntax tree.
//!
//! DataFusion parses Trino's syntax (double-quoted identifiers, `ARRAY[…]`,
//! typed literals such as `DOUBLE '1.5'`, `X'…'`, `TRY_CAST`) as is, and
//! already has `date_trunc`, `approx_distinct`, `regexp_like`,
//! `cardinality`, `strpos`, `from_unixtime`, … . What BI tools emit and
//! DataFusion spells differently is rewritten here (see [`TRANSLATED`]);
//! anything else is left alone and, if DataFusion lacks it, fails with
//! "function not found".
//!
//! `?` placeholders are replaced by the arguments of `EXECUTE … USING` /
//! `EXECUTE IMMEDIATE … USING`, which must be literals.

use std::ops::ControlFlow;

use datafusion::sql::parser::Statement as DFStatement;
use datafusion::sql::sqlparser::ast::{
    Expr, FunctionArg, FunctionArgExpr, FunctionArguments, Ident, SelectItem, SetExpr, Statement,
    Value, ValueWithSpan, visit_expressions_mut,
};
use datafusion::sql::sqlparser::dialect::GenericDialect;
use datafusion::sql::sqlparser::parser::Parser;

use std::sync::Arc;

use datafusion::catalog::{CatalogProvider, SchemaProvider};
use sluice_planner::limits::StatementBounds;
use sluice_planner::{Error, ErrorKind, Result, SqlDialect};

use crate::metadata::{SystemCatalog, TrinoCatalog};

/// Trino functions rewritten into DataFusion expressions (documented in the
/// README): name and what it becomes.
pub const TRANSLATED: &[(&str, &str)] = &[
    ("if(c, a [, b])", "CASE WHEN c THEN a [ELSE b] END"),
    ("count_if(c)", "count(CASE WHEN c THEN 1 END)"),
    (
        "date_add(unit, n, x)",
        "x + CAST(n || ' ' || unit AS INTERVAL)",
    ),
    (
        "date_diff(unit, a, b)",
        "whole units between a and b (millisecond … week)",
    ),
    ("element_at(a, i)", "a[i] (arrays; maps by key)"),
    ("approx_percentile(x, p)", "approx_percentile_cont(x, p)"),
    ("arbitrary(x), any_value(x)", "first_value(x)"),
    ("every(c)", "bool_and(c)"),
    (
        "year / quarter / month / week / day / day_of_month / day_of_year / hour / minute / second (x)",
        "CAST(date_part('…', x) AS BIGINT)",
    ),
    ("day_of_week(x), dow(x)", "ISO day of week, Monday = 1"),
    ("to_unixtime(x)", "CAST(date_part('epoch', x) AS DOUBLE)"),
    ("split(s, d)", "string_to_array(s, d)"),
    ("contains(a, x)", "array_has(a, x)"),
    ("array_join(a, d)", "array_to_string(a, d)"),
    ("is_nan(x)", "isnan(x)"),
    ("nan(), infinity()", "CAST('NaN' / 'Infinity' AS DOUBLE)"),
    ("truncate(x)", "trunc(x)"),
    ("rand()", "random()"),
    ("version()", "the sluice version"),
];

/// The Trino dialect of the planner: Trino SQL rewritten into
/// DataFusion's, `USING` parameters substituted, and Trino-shaped metadata
/// (`information_schema`, `system.jdbc`) over the token's scoped catalogs.
#[derive(Debug, Clone, Copy, Default)]
pub struct TrinoDialect;

impl SqlDialect for TrinoDialect {
    fn native_information_schema(&self) -> bool {
        // Trino's own, from the scoped catalogs (see `metadata`).
        false
    }

    fn catalog(&self, name: &str, scoped: Arc<dyn CatalogProvider>) -> Arc<dyn CatalogProvider> {
        Arc::new(TrinoCatalog::new(name.to_string(), scoped))
    }

    fn system_catalog(
        &self,
        visible: Vec<(String, Arc<dyn CatalogProvider>)>,
        runtime: Option<Arc<dyn SchemaProvider>>,
    ) -> Option<Arc<dyn CatalogProvider>> {
        Some(Arc::new(SystemCatalog::new(visible).with_runtime(runtime)))
    }

    fn rewrite(&self, statement: &mut DFStatement, params: Option<&[Expr]>) -> Result<()> {
        rewrite(statement, params)
    }
}

/// Rewrites `statement` (parsed from Trino SQL) in place and substitutes
/// `params` for its `?` placeholders (when `params` is `Some`).
pub fn rewrite(statement: &mut DFStatement, params: Option<&[Expr]>) -> Result<()> {
    let stmt = match statement {
        DFStatement::Statement(s) => s.as_mut(),
        DFStatement::Explain(e) => match e.statement.as_mut() {
            DFStatement::Statement(s) => s.as_mut(),
            _ => return Ok(()),
        },
        _ => return Ok(()),
    };
    if let Some(params) = params {
        substitute(stmt, params)?;
    }
    if let Statement::Query(q) = stmt {
        name_columns(q.body.as_mut());
    }
    let mut error = None;
    let _ = visit_expressions_mut(stmt, |e| {
        match translate(e) {
            Ok(Some(new)) => *e = new,
            Ok(None) => {}
            Err(err) => {
                error = Some(err);
                return ControlFlow::Break(());
            }
        }
        ControlFlow::Continue(())
    });
    match error {
        Some(e) => Err(e),
        None => Ok(()),
    }
}

/// Trino names an output column that is neither a column reference nor
/// aliased `_col<position>` (DataFusion would name it after the
/// expression's text).
fn name_columns(body: &mut SetExpr) {
    match body {
        SetExpr::Select(select) => {
            for (i, item) in select.projection.iter_mut().enumerate() {
                if let SelectItem::UnnamedExpr(e) = item
                    && !matches!(e, Expr::Identifier(_) | Expr::CompoundIdentifier(_))
                {
                    *item = SelectItem::ExprWithAlias {
                        expr: e.clone(),
                        alias: Ident::new(format!("_col{i}")),
                    };
                }
            }
        }
        SetExpr::SetOperation { left, .. } => name_columns(left),
        SetExpr::Query(q) => name_columns(q.body.as_mut()),
        _ => {}
    }
}

/// Checks that every `EXECUTE … USING` argument is a literal (a value, a
/// typed literal such as `DATE '…'`, a signed number, `ARRAY[…]` /
/// `MAP(…)` of literals, or a cast of one).
pub fn check_parameter(e: &Expr) -> Result<()> {
    use datafusion::sql::sqlparser::ast::UnaryOperator;
    let ok = match e {
        Expr::Value(v) => matches!(
            v.value,
            Value::Number(..)
                | Value::SingleQuotedString(_)
                | Value::HexStringLiteral(_)
                | Value::Boolean(_)
                | Value::Null
        ),
        Expr::TypedString(t) => matches!(t.value.value, Value::SingleQuotedString(_)),
        // A sign only in front of a number (or nan() / infinity()).
        Expr::UnaryOp {
            op: UnaryOperator::Minus | UnaryOperator::Plus,
            expr,
        } => match expr.as_ref() {
            Expr::Value(v) => matches!(v.value, Value::Number(..)),
            Expr::Function(_) => return check_parameter(expr),
            _ => false,
        },
        Expr::Array(a) => return a.elem.iter().try_for_each(check_parameter),
        Expr::Function(f) => {
            let name = f.name.to_string().to_ascii_lowercase();
            let plain = f.over.is_none()
                && f.filter.is_none()
                && f.within_group.is_empty()
                && f.null_treatment.is_none()
                && matches!(f.parameters, FunctionArguments::None)
                && f.name.0.len() == 1;
            let args = match &f.args {
                FunctionArguments::None => Some(vec![]),
                FunctionArguments::List(list)
                    if list.clauses.is_empty() && list.duplicate_treatment.is_none() =>
                {
                    list.args
                        .iter()
                        .map(|a| match a {
                            FunctionArg::Unnamed(FunctionArgExpr::Expr(e)) => Some(e),
                            _ => None,
                        })
                        .collect::<Option<Vec<_>>>()
                }
                _ => None,
            };
            match (plain, name.as_str(), args) {
                (true, "nan" | "infinity", Some(a)) if a.is_empty() => true,
                (true, "map", Some(a)) if a.len() == 2 => {
                    return a.into_iter().try_for_each(check_parameter);
                }
                _ => false,
            }
        }
        _ => false,
    };
    if ok { Ok(()) } else { Err(not_literal(e)) }
}

fn not_literal(e: &Expr) -> Error {
    Error::refused(
        ErrorKind::InvalidParameters,
        format!("EXECUTE … USING takes literal parameters only; got {e}"),
    )
}

/// Parses the argument list of `USING` (`1, 'x', DOUBLE '1.5'`) within
/// the statement bounds, as the parser meters statements (client text).
pub fn parse_parameters(text: &str, bounds: &StatementBounds) -> Result<Vec<Expr>> {
    let exprs = sluice_planner::limits::parse::with_parser(text, bounds, |parser| {
        let exprs = parser
            .parse_comma_separated(Parser::parse_expr)
            .map_err(|e| Error::DataFusion(e.into()))?;
        if parser.peek_token().token != datafusion::sql::sqlparser::tokenizer::Token::EOF {
            return Err(Error::refused(
                ErrorKind::InvalidParameters,
                format!(
                    "unexpected text after the parameters: {}",
                    parser.peek_token()
                ),
            ));
        }
        Ok(exprs)
    })?;
    for e in &exprs {
        bounds.check_expr(e)?;
    }
    for e in &exprs {
        check_parameter(e)?;
    }
    Ok(exprs)
}

fn substitute(stmt: &mut Statement, params: &[Expr]) -> Result<()> {
    let mut n = 0usize;
    let _ = visit_expressions_mut(stmt, |e| {
        if let Expr::Value(ValueWithSpan {
            value: Value::Placeholder(p),
            ..
        }) = e
            && p == "?"
        {
            if let Some(value) = params.get(n) {
                *e = Expr::Nested(Box::new(value.clone()));
            }
            n += 1;
        }
        ControlFlow::<()>::Continue(())
    });
    if n != params.len() {
        return Err(Error::refused(
            ErrorKind::InvalidParameters,
            format!(
                "Incorrect number of parameters: expected {n} but found {}",
                params.len()
            ),
        ));
    }
    Ok(())
}

fn parse_expr(sql: &str) -> Result<Expr> {
    let mut parser = Parser::new(&GenericDialect {})
        .try_with_sql(sql)
        .map_err(|e| Error::DataFusion(e.into()))?;
    let expr = parser
        .parse_expr()
        .map_err(|e| Error::DataFusion(e.into()))?;
    if parser.peek_token().token != datafusion::sql::sqlparser::tokenizer::Token::EOF {
        return Err(Error::refused(
            ErrorKind::Unsupported,
            format!("unexpected text after {expr}"),
        ));
    }
    Ok(expr)
}

/// The plain (unnamed, non-wildcard) arguments of a function call, or
/// `None` when it has other argument forms.
fn plain_args(args: &FunctionArguments) -> Option<Vec<&Expr>> {
    match args {
        FunctionArguments::None => Some(vec![]),
        FunctionArguments::List(list) if list.clauses.is_empty() => list
            .args
            .iter()
            .map(|a| match a {
                FunctionArg::Unnamed(FunctionArgExpr::Expr(e)) => Some(e),
                _ => None,
            })
            .collect(),
        _ => None,
    }
}

fn string_literal(e: &Expr) -> Option<String> {
    match e {
        Expr::Value(ValueWithSpan {
            value: Value::SingleQuotedString(s),
            ..
        }) => Some(s.to_ascii_lowercase()),
        _ => None,
    }
}

fn bad_args(name: &str, want: &str) -> Error {
    Error::refused(
        ErrorKind::InvalidStatement,
        format!("function {name} expects {want}"),
    )
}

/// The rewrite of one expression, if it is a Trino function call that
/// DataFusion spells differently.
fn translate(e: &Expr) -> Result<Option<Expr>> {
    let Expr::Function(f) = e else {
        return Ok(None);
    };
    if f.name.0.len() != 1 {
        return Ok(None);
    }
    let name = f.name.to_string().to_ascii_lowercase();
    // Window / filtered / ordered calls keep their form: only the name changes.
    let simple = f.over.is_none() && f.filter.is_none() && f.within_group.is_empty();
    let rename = |to: &str| {
        let mut g = f.clone();
        g.name = datafusion::sql::sqlparser::ast::ObjectName::from(vec![
            datafusion::sql::sqlparser::ast::Ident::new(to),
        ]);
        Ok(Some(Expr::Function(g)))
    };
    match name.as_str() {
        "approx_percentile" => return rename("approx_percentile_cont"),
        "arbitrary" | "any_value" => return rename("first_value"),
        "every" => return rename("bool_and"),
        "split" => return rename("string_to_array"),
        "contains" => return rename("array_has"),
        "array_join" => return rename("array_to_string"),
        "is_nan" => return rename("isnan"),
        "truncate" => return rename("trunc"),
        "rand" => return rename("random"),
        _ => {}
    }
    let Some(args) = plain_args(&f.args) else {
        return Ok(None);
    };
    // Each translation is a constant template whose `__sluice_argN`
    // placeholders are replaced by the call's argument *trees*: user
    // expressions are never printed and parsed again.
    let (text, used): (String, Vec<&Expr>) = match (name.as_str(), args.as_slice()) {
        ("if", [c, a]) if simple => (
            "CASE WHEN __sluice_arg0 THEN __sluice_arg1 END".into(),
            vec![c, a],
        ),
        ("if", [c, a, b]) if simple => (
            "CASE WHEN __sluice_arg0 THEN __sluice_arg1 ELSE __sluice_arg2 END".into(),
            vec![c, a, b],
        ),
        ("if", _) => return Err(bad_args("if", "(condition, value [, else_value])")),
        ("count_if", [c]) => {
            let mut g = f.clone();
            g.name = datafusion::sql::sqlparser::ast::ObjectName::from(vec![Ident::new("count")]);
            if let FunctionArguments::List(list) = &mut g.args {
                list.args = vec![FunctionArg::Unnamed(FunctionArgExpr::Expr(template(
                    "CASE WHEN __sluice_arg0 THEN 1 END",
                    &[c],
                )?))];
            }
            return Ok(Some(Expr::Function(g)));
        }
        ("date_add", [unit, n, x]) if simple => {
            let unit = string_literal(unit)
                .ok_or_else(|| bad_args("date_add", "a unit literal such as 'day'"))?;
            let (factor, unit) = match unit.as_str() {
                "millisecond" => (1, "millisecond"),
                "second" => (1, "second"),
                "minute" => (1, "minute"),
                "hour" => (1, "hour"),
                "day" => (1, "day"),
                "week" => (1, "week"),
                "month" => (1, "month"),
                "year" => (1, "year"),
                "quarter" => (3, "month"),
                _ => return Err(bad_args("date_add", "a unit from millisecond to year")),
            };
            (
                format!(
                    "__sluice_arg1 + CAST(CAST(__sluice_arg0 * {factor} AS VARCHAR) || ' {unit}' AS INTERVAL)"
                ),
                vec![n, x],
            )
        }
        ("date_diff", [unit, a, b]) if simple => {
            let unit = string_literal(unit)
                .ok_or_else(|| bad_args("date_diff", "a unit literal such as 'day'"))?;
            let seconds = match unit.as_str() {
                "millisecond" => "0.001",
                "second" => "1.0",
                "minute" => "60.0",
                "hour" => "3600.0",
                "day" => "86400.0",
                "week" => "604800.0",
                _ => {
                    return Err(bad_args(
                        "date_diff",
                        "a unit from millisecond to week (month, quarter and year are not supported)",
                    ));
                }
            };
            (
                format!(
                    "CAST(trunc((date_part('epoch', CAST(__sluice_arg1 AS TIMESTAMP)) - date_part('epoch', CAST(__sluice_arg0 AS TIMESTAMP))) / {seconds}) AS BIGINT)"
                ),
                vec![a, b],
            )
        }
        ("element_at", [a, i]) if simple => ("__sluice_arg0[__sluice_arg1]".into(), vec![a, i]),
        (
            "year" | "quarter" | "month" | "week" | "week_of_year" | "day" | "day_of_month"
            | "day_of_year" | "doy" | "hour" | "minute" | "second",
            [x],
        ) if simple => {
            let part = match name.as_str() {
                "year" => "year",
                "quarter" => "quarter",
                "month" => "month",
                "week" | "week_of_year" => "week",
                "day" | "day_of_month" => "day",
                "day_of_year" | "doy" => "doy",
                "hour" => "hour",
                "minute" => "minute",
                _ => "second",
            };
            let t = if part == "second" {
                "CAST(floor(date_part('second', __sluice_arg0)) AS BIGINT)".to_string()
            } else {
                format!("CAST(date_part('{part}', __sluice_arg0) AS BIGINT)")
            };
            (t, vec![x])
        }
        ("day_of_week" | "dow", [x]) if simple => (
            "CAST((CAST(date_part('dow', __sluice_arg0) AS BIGINT) + 6) % 7 + 1 AS BIGINT)".into(),
            vec![x],
        ),
        ("to_unixtime", [x]) if simple => (
            "CAST(date_part('epoch', __sluice_arg0) AS DOUBLE)".into(),
            vec![x],
        ),
        ("nan", []) if simple => ("CAST('NaN' AS DOUBLE)".into(), vec![]),
        ("infinity", []) if simple => ("CAST('Infinity' AS DOUBLE)".into(), vec![]),
        ("version", []) if simple => (format!("'{}'", sluice_planner::VERSION), vec![]),
        _ => return Ok(None),
    };
    template(&text, &used).map(Some)
}

const ARG: &str = "__sluice_arg";

/// Parses the constant `sql` and puts `args` (as trees) in place of its
/// `__sluice_argN` identifiers. The replacement happens after the
/// placeholder's own (empty) subtree was visited, so an argument is never
/// searched for placeholders itself.
fn template(sql: &str, args: &[&Expr]) -> Result<Expr> {
    let mut expr = parse_expr(sql)?;
    let _ = visit_expressions_mut(&mut expr, |e| {
        if let Expr::Identifier(id) = e
            && id.quote_style.is_none()
            && let Some(n) = id.value.strip_prefix(ARG)
            && let Ok(i) = n.parse::<usize>()
            && let Some(arg) = args.get(i)
        {
            *e = Expr::Nested(Box::new((*arg).clone()));
        }
        ControlFlow::<()>::Continue(())
    });
    Ok(expr)
}

#[cfg(test)]
mod tests {
    use datafusion::sql::parser::DFParser;

    use super::*;

    fn rewritten(sql: &str, params: Option<&str>) -> String {
        let mut stmts = DFParser::parse_sql(sql).unwrap();
        let mut st = stmts.pop_front().unwrap();
        let params = params.map(|p| parse_parameters(p, &StatementBounds::default()).unwrap());
        rewrite(&mut st, params.as_deref()).unwrap();
        st.to_string()
    }

    #[test]
    fn functions() {
        assert_eq!(
            rewritten("SELECT if(a > 1, 'x', 'y') FROM t", None),
            "SELECT CASE WHEN (a > 1) THEN ('x') ELSE ('y') END AS _col0 FROM t"
        );
        assert_eq!(
            rewritten("SELECT count_if(a > 1) FROM t", None),
            "SELECT count(CASE WHEN (a > 1) THEN 1 END) AS _col0 FROM t"
        );
        assert_eq!(
            rewritten("SELECT year(ts), element_at(arr, 2) AS e, t.x FROM t", None),
            "SELECT CAST(date_part('year', (ts)) AS BIGINT) AS _col0, (arr)[(2)] AS e, t.x FROM t"
        );
        assert_eq!(
            rewritten("SELECT date_add('day', -3, d) FROM t", None),
            "SELECT (d) + CAST(CAST((-3) * 1 AS VARCHAR) || ' day' AS INTERVAL) AS _col0 FROM t"
        );
        // Nested calls are rewritten inside out.
        assert_eq!(
            rewritten("SELECT if(is_nan(x), 0, x) FROM t", None),
            "SELECT CASE WHEN (isnan(x)) THEN (0) ELSE (x) END AS _col0 FROM t"
        );
    }

    #[test]
    fn parameters() {
        assert_eq!(
            rewritten(
                "SELECT * FROM t WHERE a = ? AND b = ? AND c = ?",
                Some("1, 'x''y', DOUBLE '1.5'")
            ),
            "SELECT * FROM t WHERE a = (1) AND b = ('x''y') AND c = (DOUBLE '1.5')"
        );
        let mut st = DFParser::parse_sql("SELECT ?")
            .unwrap()
            .pop_front()
            .unwrap();
        let p = parse_parameters("1, 2", &StatementBounds::default()).unwrap();
        let err = rewrite(&mut st, Some(&p)).unwrap_err().to_string();
        assert!(err.contains("expected 1 but found 2"), "{err}");
        for bad in [
            "(SELECT 1)",
            "a",
            "f(1)",
            "1 + x",
            "- -'x'",
            "-'x'",
            "map(ARRAY['a'], ARRAY[1]) FILTER (WHERE 1 > 0)",
            "map(ARRAY['a'], ARRAY[(SELECT 1)])",
            "N'x'",
            "CAST(a AS INT)",
        ] {
            assert!(
                parse_parameters(bad, &StatementBounds::default()).is_err(),
                "{bad}"
            );
        }
        for good in [
            "-1",
            "X'CAFE'",
            "ARRAY[1, 2]",
            "TIMESTAMP '2024-01-01 00:00:00'",
            "NULL",
            "MAP(ARRAY['a'], ARRAY[1])",
        ] {
            parse_parameters(good, &StatementBounds::default()).unwrap();
        }
    }
}
