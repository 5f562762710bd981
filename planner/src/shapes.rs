//! Statement shapes DataFusion 53 mishandles, made to work or refused in
//! the user's words before they reach the planner's own messages.
//!
//! * A recursive CTE with a column list (`WITH RECURSIVE c(n) AS (SELECT 1
//!   UNION ALL SELECT n + 1 FROM c …)`): DataFusion names the work table's
//!   columns after the first term's expressions, not after the list, so
//!   the recursive term's `n` is "not found". The first term is wrapped in
//!   a derived table that carries the list (`SELECT * FROM (SELECT 1) AS
//!   c(n)`), which is what the SQL standard means by it.
//! * A window function where only a row's own values can be used (inside
//!   an aggregate, in `WHERE`, `GROUP BY`, `HAVING`, a join condition):
//!   DataFusion plans it logically and fails later with a debug dump of
//!   the expression; sluice names the function and the place.

use std::ops::ControlFlow;

use datafusion::common::tree_node::{TreeNode, TreeNodeRecursion};
use datafusion::logical_expr::{Expr, LogicalPlan};
use datafusion::sql::parser::Statement as DFStatement;
use datafusion::sql::sqlparser::ast::{
    Query, SetExpr, SetOperator, Statement, TableFactor, VisitMut, VisitorMut,
};
use datafusion::sql::sqlparser::dialect::GenericDialect;
use datafusion::sql::sqlparser::parser::Parser;

use crate::error::{Error, ErrorKind, Result};

/// Rewrites the recursive CTEs of `statement` that have a column list so
/// that the list names the columns the recursive term sees.
pub fn name_recursive_columns(statement: &mut DFStatement) {
    match statement {
        DFStatement::Statement(s) => rename_in(s),
        DFStatement::Explain(e) => name_recursive_columns(&mut e.statement),
        _ => {}
    }
}

fn rename_in(statement: &mut Statement) {
    let _ = statement.visit(&mut RecursiveColumns);
}

struct RecursiveColumns;

impl VisitorMut for RecursiveColumns {
    type Break = ();

    fn pre_visit_query(&mut self, query: &mut Query) -> ControlFlow<()> {
        let Some(with) = query.with.as_mut().filter(|w| w.recursive) else {
            return ControlFlow::Continue(());
        };
        for cte in &mut with.cte_tables {
            if cte.alias.columns.is_empty() {
                continue;
            }
            let SetExpr::SetOperation {
                op: SetOperator::Union,
                left,
                ..
            } = cte.query.body.as_mut()
            else {
                continue;
            };
            // Under WITH RECURSIVE, wrapping a UNION that does not recurse
            // changes nothing either: the list names the same columns.
            let mut seed = seed_wrapper();
            std::mem::swap(left.as_mut(), &mut seed);
            if let SetExpr::Select(select) = left.as_mut()
                && let Some(TableFactor::Derived {
                    subquery, alias, ..
                }) = select.from.first_mut().map(|t| &mut t.relation)
            {
                *subquery.body = seed;
                if let Some(alias) = alias {
                    alias.name = cte.alias.name.clone();
                    // The list moves to the seed: the union's columns are
                    // the seed's. Left on the CTE too, DataFusion would
                    // apply it again by unquoted name and lose the case
                    // of quoted names.
                    alias.columns = std::mem::take(&mut cte.alias.columns);
                }
            }
        }
        ControlFlow::Continue(())
    }
}

/// `SELECT * FROM (…) AS name(columns)`, whose subquery and alias the
/// caller fills in.
fn seed_wrapper() -> SetExpr {
    let parsed = Parser::parse_sql(&GenericDialect {}, "SELECT * FROM (SELECT 1) AS seed(c)")
        .ok()
        .and_then(|mut s| s.pop());
    match parsed {
        Some(Statement::Query(q)) => *q.body,
        _ => unreachable!("the wrapper template is valid SQL"),
    }
}

/// Refuses a window function anywhere but in a `SELECT` list or `ORDER BY`
/// (DataFusion's `Window` nodes), naming it and where it was written.
pub fn check_window_placement(plan: &LogicalPlan) -> Result<()> {
    let mut found: Option<Error> = None;
    plan.apply_with_subqueries(|node| {
        if let LogicalPlan::Window(w) = node {
            // The window functions themselves are in place; their arguments
            // must not hold another one.
            for expr in &w.window_expr {
                if let Some(name) = nested_window(expr) {
                    found = Some(misplaced(&name, "the arguments of another window function"));
                    return Ok(TreeNodeRecursion::Stop);
                }
            }
            return Ok(TreeNodeRecursion::Continue);
        }
        for expr in node.expressions() {
            if let Some(name) = window_in(&expr) {
                found = Some(misplaced(&name, place_of(node)));
                return Ok(TreeNodeRecursion::Stop);
            }
        }
        Ok(TreeNodeRecursion::Continue)
    })
    .map_err(Error::from)?;
    found.map_or(Ok(()), Err)
}

/// The name of the first window function in `expr`, `expr` included.
fn window_in(expr: &Expr) -> Option<String> {
    let mut name = None;
    let _ = expr.apply(|e| {
        if let Expr::WindowFunction(w) = e {
            name = Some(w.fun.name().to_string());
            return Ok(TreeNodeRecursion::Stop);
        }
        Ok(TreeNodeRecursion::Continue)
    });
    name
}

/// The name of a window function inside the arguments of the window
/// function `expr` (under aliases).
fn nested_window(expr: &Expr) -> Option<String> {
    match expr {
        Expr::Alias(a) => nested_window(&a.expr),
        Expr::WindowFunction(w) => w
            .params
            .args
            .iter()
            .chain(&w.params.partition_by)
            .chain(w.params.order_by.iter().map(|s| &s.expr))
            .chain(w.params.filter.as_deref())
            .find_map(window_in),
        other => window_in(other),
    }
}

fn place_of(node: &LogicalPlan) -> &'static str {
    match node {
        LogicalPlan::Aggregate(_) => "an aggregate function or GROUP BY",
        LogicalPlan::Filter(_) => "WHERE or HAVING",
        LogicalPlan::Join(_) => "a join condition",
        LogicalPlan::Sort(_) => "ORDER BY of an aggregate query",
        _ => "this clause",
    }
}

fn misplaced(function: &str, place: &str) -> Error {
    Error::refused(
        ErrorKind::Unsupported,
        format!(
            "window function {function}() cannot be used in {place}: window functions are \
             allowed in the SELECT list and ORDER BY; compute it in a subquery first"
        ),
    )
}

#[cfg(test)]
mod tests {
    use datafusion::prelude::SessionContext;
    use datafusion::sql::parser::DFParser;

    use super::*;

    fn rewritten(sql: &str) -> String {
        let mut s = DFParser::parse_sql(sql).unwrap().pop_front().unwrap();
        name_recursive_columns(&mut s);
        s.to_string()
    }

    #[test]
    fn a_recursive_cte_column_list_names_its_seed_columns() {
        let sql = "WITH RECURSIVE c(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM c WHERE n < 3) \
                   SELECT n FROM c";
        let out = rewritten(sql);
        assert!(out.contains("SELECT * FROM (SELECT 1) AS c (n)"), "{out}");
        // Without a list, or without RECURSIVE, nothing changes.
        for same in [
            "WITH RECURSIVE c AS (SELECT 1 AS n UNION ALL SELECT n + 1 FROM c WHERE n < 3) SELECT n FROM c",
            "WITH c(n) AS (SELECT 1 UNION ALL SELECT 2) SELECT n FROM c",
        ] {
            let parsed = DFParser::parse_sql(same).unwrap().pop_front().unwrap();
            assert_eq!(rewritten(same), parsed.to_string());
        }
    }

    #[tokio::test]
    async fn recursive_ctes_with_column_lists_run_and_join() {
        let ctx = SessionContext::new();
        ctx.sql("CREATE TABLE t AS VALUES (1, 'a'), (2, 'b'), (5, 'e')")
            .await
            .unwrap();
        let sql = "WITH RECURSIVE c(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM c WHERE n < 3) \
                   SELECT t.column2 FROM c JOIN t ON t.column1 = c.n ORDER BY 1";
        let mut s = DFParser::parse_sql(sql).unwrap().pop_front().unwrap();
        name_recursive_columns(&mut s);
        let plan = ctx.state().statement_to_plan(s).await.unwrap();
        let batches = ctx
            .execute_logical_plan(plan)
            .await
            .unwrap()
            .collect()
            .await;
        let text = arrow::util::pretty::pretty_format_batches(&batches.unwrap())
            .unwrap()
            .to_string();
        assert!(
            text.contains("| a ") && text.contains("| b ") && !text.contains("| e "),
            "{text}"
        );
    }

    #[tokio::test]
    async fn misplaced_window_functions_are_named_with_their_place() {
        let ctx = SessionContext::new();
        ctx.sql("CREATE TABLE t AS VALUES (1, 'a'), (2, 'b')")
            .await
            .unwrap();
        for (sql, place) in [
            ("SELECT sum(row_number() OVER ()) FROM t", "aggregate"),
            ("SELECT * FROM t WHERE row_number() OVER () > 1", "WHERE"),
            (
                "SELECT * FROM t WHERE column1 IN (SELECT max(rank() OVER (ORDER BY column1)) FROM t)",
                "aggregate",
            ),
        ] {
            let plan = ctx.state().create_logical_plan(sql).await.unwrap();
            let e = check_window_placement(&plan).expect_err(sql);
            assert_eq!(e.kind(), ErrorKind::Unsupported, "{sql}");
            assert!(
                e.message().contains("window function") && e.message().contains(place),
                "{sql}: {}",
                e.message()
            );
            assert!(
                !e.message().contains("WindowFunctionParams"),
                "{}",
                e.message()
            );
        }
        for sql in [
            "SELECT row_number() OVER (ORDER BY column1) FROM t",
            "SELECT sum(column1) OVER (), count(*) OVER (PARTITION BY column2) FROM t",
            "SELECT column2, sum(column1), rank() OVER (ORDER BY sum(column1)) FROM t GROUP BY column2",
            "SELECT * FROM (SELECT row_number() OVER () AS r FROM t) WHERE r > 1",
        ] {
            let plan = ctx.state().create_logical_plan(sql).await.unwrap();
            check_window_placement(&plan).unwrap_or_else(|e| panic!("{sql}: {}", e.message()));
        }
    }
}
