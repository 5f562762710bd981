//! Planning: SQL text → a [`GovernedPlan`] in the token's scoped session.
//!
//! Parse, read-only guard, shapes DataFusion mishandles (`shapes`), the
//! dialect's rewrite, `system.<table>` for admins, placeholders numbered,
//! federation gates opened, `vector_search` tables resolved, then
//! DataFusion's planner and its own read-only check.
//! The plan records what it reads in the request's audit facts.

use std::collections::BTreeSet;
use std::ops::ControlFlow;
use std::sync::Arc;

use datafusion::common::SchemaError;
use datafusion::error::DataFusionError;
use datafusion::execution::SessionState;
use datafusion::logical_expr::{DescribeTable, LogicalPlan};
use datafusion::prelude::SQLOptions;
use datafusion::sql::parser::Statement as DFStatement;
use datafusion::sql::sqlparser::ast::{
    Expr as SqlExpr, Ident, ObjectNamePart, Statement as SqlStatement, Value,
    visit_expressions_mut, visit_relations_mut,
};

use super::{GovernedPlan, Governor, SessionOptions};
use crate::dialect::{RUNTIME_SCHEMA, SYSTEM_CATALOG};
use crate::error::{Error, ErrorKind, Object, Result};
use crate::limits::QueryControl;
use crate::limits::parse::parse_statement;
use crate::limits::run::run;
use crate::policy::TokenScope;
use crate::{guard, shapes};

impl Governor {
    /// Parses, guards and plans `sql` in the token's scoped session. The
    /// plan may contain placeholders (`$1`, `?`); bind them with
    /// [`GovernedPlan::bind`].
    pub async fn plan(&self, scope: &Arc<TokenScope>, sql: &str) -> Result<GovernedPlan> {
        self.plan_with(scope, sql, &SessionOptions::default(), None)
            .await
    }

    /// [`Governor::plan`] in a session with `options`: the dialect
    /// rewrites the statement and replaces its `?` placeholders with
    /// `params` (the literals of Trino's `EXECUTE … USING`).
    pub async fn plan_with(
        &self,
        scope: &Arc<TokenScope>,
        sql: &str,
        options: &SessionOptions,
        params: Option<&[SqlExpr]>,
    ) -> Result<GovernedPlan> {
        self.limits.bounds.check_text(sql)?;
        self.limits
            .ledger
            .check(&scope.token_id, &scope.budget, chrono::Utc::now())?;
        // Planning takes an execution thread too: it waits for a slot.
        let _slot = self.limits.admission.admit(&scope.token_id).await?;
        let control = QueryControl::new();
        let limit = self.limits.query_timeout(scope.query_timeout);
        // Planning runs on the execution runtime (deep stacks), stopped at
        // the statement's time limit, a panic failing this statement only.
        let work = {
            let governor = self.clone();
            let (scope, sql, options) = (Arc::clone(scope), sql.to_string(), options.clone());
            let params = params.map(<[SqlExpr]>::to_vec);
            let control = Arc::clone(&control);
            async move {
                governor
                    .plan_here(&scope, &sql, &options, params.as_deref(), control)
                    .await
            }
        };
        run(self.limits.runtime.handle(), work, control, limit).await
    }

    /// [`Governor::plan_with`] on the current thread.
    async fn plan_here(
        &self,
        scope: &Arc<TokenScope>,
        sql: &str,
        options: &SessionOptions,
        params: Option<&[SqlExpr]>,
        control: Arc<QueryControl>,
    ) -> Result<GovernedPlan> {
        let (ctx, search) = self.session(scope, options, &control);
        let state = ctx.state();
        let mut statement = parse_statement(sql, self.limits.bounds.parser_depth())?;
        // The rewrite adds two query levels per recursive CTE: the bounds
        // see what will be planned.
        shapes::name_recursive_columns(&mut statement);
        self.limits.bounds.check(&statement)?;
        guard::check(&statement)?;
        options.dialect.rewrite(&mut statement, params)?;
        if scope.is_admin() && !self.system_tables.is_empty() {
            // `system.<table>` means the gateway's table only when the
            // default catalog has no schema of that name.
            let default_catalog = state.config().options().catalog.default_catalog.clone();
            let shadowed = ctx
                .catalog(&default_catalog)
                .is_some_and(|c| c.schema(SYSTEM_CATALOG).is_some());
            if !shadowed {
                let names: Vec<&str> = self.system_tables.iter().map(|(n, _)| n.as_str()).collect();
                qualify_system_tables(&mut statement, &names);
            }
        }
        number_placeholders(&mut statement)?;
        self.open_gates(scope, &state, &statement).await?;
        search
            .prepare(&ctx, &statement, &self.native_search, &self.limits.bounds)
            .await
            .map_err(friendly)?;
        let plan = state.statement_to_plan(statement).await.map_err(friendly)?;
        self.limits.bounds.check_plan(&plan)?;
        shapes::check_window_placement(&plan)?;
        SQLOptions::new()
            .with_allow_ddl(false)
            .with_allow_dml(false)
            .with_allow_statements(false)
            .verify_plan(&plan)
            .map_err(|e| Error::refused(ErrorKind::Unsupported, e.strip_backtrace()))?;
        // DESCRIBE lists a table's columns in the types clients receive
        // (strings planned as views are plain strings on the wire), as
        // result schemas and GetTables do.
        let plan = match plan {
            LogicalPlan::DescribeTable(describe) => LogicalPlan::DescribeTable(DescribeTable {
                schema: super::wire::wire_schema(&describe.schema),
                output_schema: describe.output_schema,
            }),
            other => other,
        };
        let governed = GovernedPlan::new(
            Arc::clone(scope),
            ctx,
            plan,
            Arc::clone(&self.limits),
            control,
        );
        if let Some(audit) = crate::audit::current() {
            audit.record_plan(governed.facts());
        }
        Ok(governed)
    }

    /// Awaits the gates of the catalogs `statement` names that the token
    /// may see (others stay "not found").
    async fn open_gates(
        &self,
        scope: &TokenScope,
        state: &SessionState,
        statement: &DFStatement,
    ) -> Result<()> {
        let gates = self.gates();
        if gates.is_empty() {
            return Ok(());
        }
        let default_catalog = state.config().options().catalog.default_catalog.clone();
        let Ok(references) = state.resolve_table_references(statement) else {
            // Planning reports what is wrong with the statement.
            return Ok(());
        };
        let mut opened = BTreeSet::new();
        for r in references {
            let catalog = r.catalog().unwrap_or(&default_catalog).to_string();
            if let Some(gate) = gates.get(&catalog)
                && scope.may_see_prefix(&catalog)
                && opened.insert(catalog)
            {
                gate.ready().await?;
            }
        }
        Ok(())
    }
}

/// Spells `system.<table>` as `system.runtime.<table>` for the gateway's
/// own `tables` (admin sessions whose default catalog has no `system`
/// schema): the two-part name would otherwise mean schema `system` of the
/// default catalog.
fn qualify_system_tables(statement: &mut DFStatement, tables: &[&str]) {
    let visit = |s: &mut SqlStatement| {
        let _ = visit_relations_mut(s, |name| {
            if let [
                ObjectNamePart::Identifier(first),
                ObjectNamePart::Identifier(table),
            ] = name.0.as_slice()
                && first.quote_style.is_none()
                && first.value.eq_ignore_ascii_case(SYSTEM_CATALOG)
                && tables.iter().any(|t| {
                    if table.quote_style.is_none() {
                        t.eq_ignore_ascii_case(&table.value)
                    } else {
                        *t == table.value
                    }
                })
            {
                name.0
                    .insert(1, ObjectNamePart::Identifier(Ident::new(RUNTIME_SCHEMA)));
            }
            ControlFlow::<()>::Continue(())
        });
    };
    each_sql_statement(statement, visit);
}

/// Runs `visit` on the SQL statement of `statement` (also the one under
/// `EXPLAIN`).
fn each_sql_statement(statement: &mut DFStatement, mut visit: impl FnMut(&mut SqlStatement)) {
    match statement {
        DFStatement::Statement(s) => visit(s),
        DFStatement::Explain(e) => {
            if let DFStatement::Statement(s) = e.statement.as_mut() {
                visit(s);
            }
        }
        _ => {}
    }
}

/// Numbers positional `?` placeholders as `$1, $2, …` in order of
/// appearance (DataFusion only understands numbered ones).
fn number_placeholders(statement: &mut DFStatement) -> Result<()> {
    let mut n = 0usize;
    let mut numbered = false;
    let visit = |s: &mut SqlStatement| {
        let _ = visit_expressions_mut(s, |e| {
            if let SqlExpr::Value(v) = e
                && let Value::Placeholder(p) = &mut v.value
            {
                if p == "?" {
                    n += 1;
                    *p = format!("${n}");
                } else {
                    numbered = true;
                }
            }
            ControlFlow::<()>::Continue(())
        });
    };
    each_sql_statement(statement, visit);
    if n > 0 && numbered {
        return Err(Error::refused(
            ErrorKind::InvalidParameters,
            "use either ? or $1, $2, … placeholders in one statement, not both",
        ));
    }
    Ok(())
}

/// DataFusion's "no field named" as the uniform answer of DESIGN §4.2, so
/// a column that does not exist and one that is not granted are
/// indistinguishable.
pub(super) fn friendly(e: DataFusionError) -> Error {
    if let DataFusionError::SchemaError(inner, _) = e.find_root()
        && let SchemaError::FieldNotFound { field, .. } = inner.as_ref()
    {
        return Error::refused(
            ErrorKind::NotFound(Object::Column),
            format!("column \"{}\" not found or not allowed", field.name),
        );
    }
    Error::DataFusion(e)
}
