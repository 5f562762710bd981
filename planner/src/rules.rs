//! Row rules: SQL boolean expressions over a table's columns and
//! `token.<attr>` (DESIGN §4.4).
//!
//! A rule is parsed with DataFusion's SQL parser, every `token.<attr>` is
//! replaced by the attribute's literal value *in the syntax tree* (never by
//! string splicing), and the result is resolved against the table's schema.
//! Subqueries are refused: a rule may only look at the row it filters.

use std::collections::BTreeMap;
use std::ops::ControlFlow;
use std::sync::{Arc, OnceLock};

use arrow::datatypes::DataType;
use datafusion::common::DFSchema;
use datafusion::execution::SessionStateBuilder;
use datafusion::execution::context::SessionState;
use datafusion::logical_expr::{Expr, ExprSchemable};
use datafusion::sql::sqlparser::ast::{self, Value, visit_expressions_mut};
use serde_json::Value as Json;

/// Compiles rule text into logical expressions.
#[derive(Debug)]
pub struct RuleCompiler {
    state: SessionState,
}

impl Default for RuleCompiler {
    fn default() -> Self {
        Self::new()
    }
}

impl RuleCompiler {
    /// A compiler with DataFusion's built-in scalar functions and no tables.
    pub fn new() -> Self {
        Self {
            state: SessionStateBuilder::new().with_default_features().build(),
        }
    }

    /// The process-wide compiler every secure view uses (it holds no state
    /// after construction, and building one registers every function).
    pub fn shared() -> &'static Arc<RuleCompiler> {
        static COMPILER: OnceLock<Arc<RuleCompiler>> = OnceLock::new();
        COMPILER.get_or_init(|| Arc::new(RuleCompiler::new()))
    }

    /// Compiles `rule` against `schema` (the table's unqualified columns),
    /// binding `token.<attr>` from `attributes`. The error is a sentence
    /// naming the problem, fit for an API answer.
    pub fn compile(
        &self,
        rule: &str,
        attributes: &BTreeMap<String, Json>,
        schema: &DFSchema,
    ) -> Result<Expr, String> {
        let dialect = self.state.config().options().sql_parser.dialect;
        let mut parsed = self
            .state
            .sql_to_expr_with_alias(rule, &dialect)
            .map_err(|e| format!("rule `{rule}` does not parse: {}", e.strip_backtrace()))?;
        if parsed.alias.is_some() {
            return Err(format!("rule `{rule}` must not have an alias"));
        }
        bind_token_attributes(&mut parsed.expr, attributes)
            .map_err(|e| format!("rule `{rule}`: {e}"))?;
        let expr = self
            .state
            .create_logical_expr_from_sql_expr(parsed, schema)
            .map_err(|e| format!("rule `{rule}`: {}", describe(&e)))?;
        let ty = expr
            .get_type(schema)
            .map_err(|e| format!("rule `{rule}`: {}", describe(&e)))?;
        if !matches!(ty, DataType::Boolean | DataType::Null) {
            return Err(format!(
                "rule `{rule}` is not a boolean expression (it is {ty})"
            ));
        }
        // Surface type errors (e.g. comparing a number with text) now, not at query time.
        self.state
            .create_physical_expr(expr.clone(), schema)
            .map_err(|e| format!("rule `{rule}`: {}", describe(&e)))?;
        Ok(expr)
    }
}

impl RuleCompiler {
    /// Applies DataFusion's type coercion and simplification to `expr`, so
    /// that e.g. `amount > 10000` on a double column becomes
    /// `amount > Float64(10000)`: the form connectors can translate.
    pub fn normalize(&self, expr: Expr, schema: &DFSchema) -> datafusion::common::Result<Expr> {
        use datafusion::common::tree_node::TreeNode;
        use datafusion::logical_expr::simplify::SimplifyContext;
        use datafusion::optimizer::analyzer::type_coercion::TypeCoercionRewriter;
        use datafusion::optimizer::simplify_expressions::ExprSimplifier;
        let coerced = expr.rewrite(&mut TypeCoercionRewriter::new(schema))?.data;
        let context = SimplifyContext::default().with_schema(Arc::new(schema.clone()));
        ExprSimplifier::new(context).simplify(coerced)
    }
}

fn describe(e: &datafusion::error::DataFusionError) -> String {
    use datafusion::common::SchemaError;
    use datafusion::error::DataFusionError;
    match e.find_root() {
        DataFusionError::SchemaError(inner, _) => match inner.as_ref() {
            SchemaError::FieldNotFound { field, .. } => {
                format!("unknown column \"{}\"", field.name)
            }
            other => other.to_string(),
        },
        other => other.strip_backtrace(),
    }
}

/// Replaces `token.<attr>` with literals; refuses subqueries and unknown
/// attributes.
fn bind_token_attributes(
    expr: &mut ast::Expr,
    attributes: &BTreeMap<String, Json>,
) -> Result<(), String> {
    let mut error = None;
    let _ = visit_expressions_mut(expr, |e| {
        match e {
            ast::Expr::Subquery(_) | ast::Expr::Exists { .. } | ast::Expr::InSubquery { .. } => {
                error = Some("subqueries are not allowed in rules".to_string());
                return ControlFlow::Break(());
            }
            ast::Expr::CompoundIdentifier(parts)
                if parts.len() == 2 && parts[0].value.eq_ignore_ascii_case("token") =>
            {
                let key = &parts[1].value;
                match attributes.get(key).map(literal) {
                    Some(Ok(v)) => *e = ast::Expr::value(v),
                    Some(Err(msg)) => {
                        error = Some(format!("token attribute \"{key}\" {msg}"));
                        return ControlFlow::Break(());
                    }
                    None => {
                        error = Some(format!("unknown token attribute \"token.{key}\""));
                        return ControlFlow::Break(());
                    }
                }
            }
            ast::Expr::CompoundIdentifier(parts)
                if parts
                    .first()
                    .is_some_and(|p| p.value.eq_ignore_ascii_case("token")) =>
            {
                error = Some(format!(
                    "\"{}\" is not a token attribute reference (use token.<attr>)",
                    parts
                        .iter()
                        .map(|p| p.value.as_str())
                        .collect::<Vec<_>>()
                        .join(".")
                ));
                return ControlFlow::Break(());
            }
            _ => {}
        }
        ControlFlow::<()>::Continue(())
    });
    error.map_or(Ok(()), Err)
}

fn literal(v: &Json) -> Result<Value, &'static str> {
    match v {
        Json::String(s) => Ok(Value::SingleQuotedString(s.clone())),
        Json::Number(n) => Ok(Value::Number(n.to_string(), false)),
        Json::Bool(b) => Ok(Value::Boolean(*b)),
        Json::Null => Ok(Value::Null),
        Json::Array(_) | Json::Object(_) => Err("must be a string, number, boolean or null"),
    }
}

#[cfg(test)]
mod tests {
    use arrow::datatypes::{Field, Schema};

    use super::*;

    fn schema() -> DFSchema {
        DFSchema::try_from(Arc::new(Schema::new(vec![
            Field::new("region", DataType::Utf8, true),
            Field::new("amount", DataType::Float64, true),
            Field::new("sensitivity", DataType::Int32, true),
        ])))
        .unwrap()
    }

    fn attrs() -> BTreeMap<String, Json> {
        serde_json::from_str(r#"{"region": "eu", "quote": "O'Brien", "limit": 100}"#).unwrap()
    }

    #[test]
    fn binds_attributes_as_literals() {
        let c = RuleCompiler::new();
        let e = c
            .compile("region = token.region", &attrs(), &schema())
            .unwrap();
        assert_eq!(e.to_string(), "region = Utf8(\"eu\")");
        let e = c
            .compile("region = token.quote", &attrs(), &schema())
            .unwrap();
        assert_eq!(e.to_string(), "region = Utf8(\"O'Brien\")");
        let e = c
            .compile("amount < token.limit", &attrs(), &schema())
            .unwrap();
        assert!(e.to_string().contains("100"), "{e}");
    }

    #[test]
    fn rejects_bad_rules() {
        let c = RuleCompiler::new();
        let err = |r: &str| c.compile(r, &attrs(), &schema()).unwrap_err();
        assert!(
            err("nope = 1").contains("unknown column \"nope\""),
            "{}",
            err("nope = 1")
        );
        assert!(err("region = token.country").contains("unknown token attribute"));
        assert!(err("amount + 1").contains("not a boolean"));
        assert!(err("region IN (SELECT 1)").contains("subqueries"));
        assert!(err("region = ").contains("does not parse"));
        assert!(err("token.a.b = 1").contains("not a token attribute"));
    }
}
