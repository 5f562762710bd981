//! `POST /v1/statement`: classify the statement, answer session
//! statements at once (with the headers that change the client's
//! session), plan queries and metadata statements in the token's scoped
//! session and start them.

use std::net::SocketAddr;
use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{ConnectInfo, State as AxState};
use axum::http::HeaderMap;
use axum::response::Response;
use sluice_planner::auth::Charge;
use sluice_planner::units::parse_duration;
use sluice_planner::{ErrorKind, Object, TokenScope};

use crate::auth::authenticate;
use crate::error::{
    GENERIC_USER_ERROR, INVALID_SESSION_PROPERTY, NOT_FOUND, NOT_SUPPORTED, SYNTAX_ERROR,
    TrinoError, from_plan_error,
};
use crate::plan::plan_trino;
use crate::query::{self, Cached, Query, State};
use crate::response::{
    Page, base_url, columns_json, immediate, render, respond, row_limit_warning,
};
use crate::session::{Session, encode_value};
use crate::statement::{TrinoStatement, classify};
use crate::{MAX_RUN_TIME_PROPERTY, RECEIPT_HEADER, TRUNCATED_HEADER, TrinoState, dialect};

enum Outcome {
    Run(Arc<Query>),
    Done {
        update_type: &'static str,
        headers: Vec<(&'static str, String)>,
    },
}

pub(crate) async fn post_statement(
    AxState(state): AxState<TrinoState>,
    ConnectInfo(client): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let scope = match authenticate(&state, &headers, client, Charge::Request).await {
        Ok(s) => s,
        Err(r) => return r,
    };
    let base = base_url(&state, &headers);
    let session = Session::from_headers(&headers);
    let id = state.queries.next_id();
    tracing::info!(
        query_id = %id,
        token_id = %scope.token_id,
        trino_user = session.user.as_deref().unwrap_or(""),
        source = session.source.as_deref().unwrap_or(""),
        "Trino statement"
    );
    sluice_planner::audit::note(|a| a.query_id = Some(id.clone()));
    let sql = match std::str::from_utf8(&body) {
        Ok(s) if !s.trim().is_empty() => s.to_string(),
        Ok(_) => {
            let e = TrinoError::new(SYNTAX_ERROR, "the statement is empty");
            return immediate(&base, &id, Some(&e), None, vec![]);
        }
        Err(_) => {
            let e = TrinoError::new(SYNTAX_ERROR, "the statement is not valid UTF-8");
            return immediate(&base, &id, Some(&e), None, vec![]);
        }
    };
    sluice_planner::audit::note(|a| a.statement = Some(sql.clone()));
    match run_statement(&state, &scope, &session, &id, &sql).await {
        Ok(Outcome::Run(query)) => first_answer(&state, &query, &base).await,
        Ok(Outcome::Done {
            update_type,
            headers,
        }) => immediate(&base, &id, None, Some(update_type), headers),
        Err(e) => {
            tracing::info!(query_id = %id, error = %e.name, "Trino statement failed");
            sluice_planner::audit::note(|a| {
                a.outcome = Some(if e.name == "PERMISSION_DENIED" {
                    sluice_planner::Outcome::Denied
                } else {
                    sluice_planner::Outcome::Error
                });
                a.error = Some(e.name.to_string());
            });
            let query =
                state
                    .queries
                    .start_failed(id, scope.token_id.clone(), session.user.clone(), e);
            first_answer(&state, &query, &base).await
        }
    }
}

/// The answer to `POST /v1/statement` for a query: like Trino's, it carries
/// the state and the `nextUri` of page 0 but no rows and no error (the
/// npm client never reads rows or errors from it). When the result already
/// ended cut at the row limit, the warning is on it too: the Python client
/// reads warnings only from this answer.
async fn first_answer(state: &TrinoState, query: &Arc<Query>, base: &str) -> Response {
    let progress = query.settle(state.queries.limits.max_wait).await;
    let truncated = matches!(progress, query::Progress::Ended(true));
    let mut warnings = vec![];
    let mut headers = vec![];
    if truncated {
        warnings.push(row_limit_warning(None));
        headers.push((TRUNCATED_HEADER, "true".to_string()));
    }
    if let Some((_, facts)) = query.facts.get() {
        headers.push((
            RECEIPT_HEADER,
            facts.receipt.clone().with_truncated(truncated).to_json(),
        ));
    }
    let body = render(
        base,
        Page {
            id: &query.id,
            state: match query.state() {
                // A failure is reported by the first poll.
                State::Failed | State::Finished => State::Running,
                s => s,
            },
            next: Some(format!(
                "{base}/v1/statement/executing/{}/{}/0",
                query.id, query.slug
            )),
            columns: (!query.columns.is_null()).then_some(&query.columns),
            data: None,
            error: None,
            warnings,
            update_type: None,
            rows: 0,
            elapsed: query.elapsed(),
            truncated: truncated.then_some(true),
        },
    );
    respond(&Cached {
        token: u64::MAX,
        body,
        headers,
    })
}

fn classify_trino(sql: &str) -> Result<TrinoStatement, TrinoError> {
    classify(sql).map_err(|e| from_plan_error(&e))
}

async fn run_statement(
    state: &TrinoState,
    scope: &Arc<TokenScope>,
    session: &Session,
    id: &str,
    sql: &str,
) -> Result<Outcome, TrinoError> {
    let statement = classify_trino(sql)?;
    // What the audit log records: the statement that is planned (for
    // EXECUTE, the prepared text, whose parameters stay out of the log).
    let mut planned_sql = sql.to_string();
    let (statement, params) = match statement {
        TrinoStatement::Use { catalog, schema } => {
            let catalog = catalog.or_else(|| session.catalog.clone()).ok_or_else(|| {
                from_plan_error(&sluice_planner::Error::refused(
                    ErrorKind::MissingName(Object::Catalog),
                    "Catalog must be specified when session catalog is not set",
                ))
            })?;
            // USE only names what the token can see.
            crate::plan::visible_schema(
                &state.governor,
                scope,
                &[catalog.clone(), schema.clone()],
                &session.options(),
            )
            .map_err(|e| from_plan_error(&e))?;
            return Ok(Outcome::Done {
                update_type: "USE",
                headers: vec![
                    ("x-trino-set-catalog", catalog),
                    ("x-trino-set-schema", schema),
                ],
            });
        }
        TrinoStatement::SetSession { name, value } => {
            if name == MAX_RUN_TIME_PROPERTY {
                parse_duration(&value).map_err(|e| {
                    TrinoError::new(INVALID_SESSION_PROPERTY, format!("{name}: {e}"))
                })?;
            }
            return Ok(Outcome::Done {
                update_type: "SET SESSION",
                headers: vec![(
                    "x-trino-set-session",
                    format!("{name}={}", encode_value(&value)),
                )],
            });
        }
        TrinoStatement::ResetSession { name } => {
            return Ok(Outcome::Done {
                update_type: "RESET SESSION",
                headers: vec![("x-trino-clear-session", name)],
            });
        }
        TrinoStatement::Prepare { name, sql } => {
            if !classify_trino(&sql)?.is_plannable() {
                return Err(TrinoError::new(
                    NOT_SUPPORTED,
                    "only queries can be prepared",
                ));
            }
            return Ok(Outcome::Done {
                update_type: "PREPARE",
                headers: vec![(
                    "x-trino-added-prepare",
                    format!("{}={}", encode_value(&name), encode_value(&sql)),
                )],
            });
        }
        TrinoStatement::Deallocate { name } => {
            if !session.prepared.contains_key(&name) {
                return Err(TrinoError::new(
                    NOT_FOUND,
                    format!("Prepared statement not found: {name}"),
                ));
            }
            return Ok(Outcome::Done {
                update_type: "DEALLOCATE",
                headers: vec![("x-trino-deallocated-prepare", encode_value(&name))],
            });
        }
        TrinoStatement::Execute { name, params } => {
            let sql = session.prepared.get(&name).ok_or_else(|| {
                TrinoError::new(NOT_FOUND, format!("Prepared statement not found: {name}"))
            })?;
            planned_sql.clone_from(sql);
            (classify_trino(sql)?, params)
        }
        TrinoStatement::ExecuteImmediate { sql, params } => {
            planned_sql.clone_from(&sql);
            (classify_trino(&sql)?, params)
        }
        TrinoStatement::Unsupported(m) => return Err(TrinoError::new(NOT_SUPPORTED, m)),
        other => (other, None),
    };
    if !statement.is_plannable() {
        return Err(TrinoError::new(
            NOT_SUPPORTED,
            "only queries can be executed as prepared statements",
        ));
    }
    let params = match params {
        // Client text, parsed where deep nesting cannot exhaust a stack.
        Some(text) => {
            let bounds = state.governor.limits().bounds;
            let runtime = state.governor.limits().runtime.handle();
            sluice_planner::limits::run::on_deep_stack(runtime, move || {
                dialect::parse_parameters(&text, &bounds)
            })
            .await
            .map_err(|e| from_plan_error(&e))?
        }
        None => vec![],
    };
    let run_time = session.run_time(state.queries.limits.max_run_time)?;
    let params = match statement {
        TrinoStatement::Query(_) => Some(params.as_slice()),
        _ if params.is_empty() => None,
        _ => {
            return Err(TrinoError::new(
                GENERIC_USER_ERROR,
                "metadata statements take no parameters",
            ));
        }
    };
    sluice_planner::audit::note(|a| a.statement = Some(planned_sql.clone()));
    let plan = plan_trino(
        &state.governor,
        scope,
        &statement,
        &session.options(),
        params,
    )
    .await
    .map_err(|e| from_plan_error(&e))?;
    let columns = columns_json(&plan.schema());
    let facts = plan.facts().clone();
    let query = state.queries.start(
        id.to_string(),
        scope.token_id.clone(),
        session.user.clone(),
        columns,
        plan,
        run_time,
    )?;
    let _ = query.facts.set((planned_sql, facts));
    Ok(Outcome::Run(query))
}
