//! The Trino client protocol on `http_addr`, so unmodified Trino clients
//! (the `trino` Python client and its SQLAlchemy dialect, `trino-client`
//! for Node, BI tools) query sluice through the same policy pipeline as
//! Flight SQL.
//!
//! | route | what |
//! |---|---|
//! | `POST /v1/statement` | run a statement (body = SQL); first result page |
//! | `GET /v1/statement/executing/{id}/{slug}/{n}` | page `n` (`nextUri`); re-GET of the last page answers it again |
//! | `DELETE /v1/statement/executing/{id}/{slug}/{n}` | cancel: 204, the stream is dropped |
//! | `GET /v1/info` | server info (no authentication, like Trino) |
//! | `GET /v1/query` | the caller's queries (an admin token sees all) |
//! | `GET /v1/query/{id}` | one query (`infoUri`), for the token that runs it |
//!
//! Authentication: `Authorization: Basic` (any user, password = token
//! secret) or `Bearer <secret>`, on every request. Every failure is the same
//! `401` with `WWW-Authenticate: Basic realm="Trino"`. `X-Trino-User` is
//! recorded, never used for authorisation. A query can only be polled, seen
//! or cancelled with the token that started it; for any other token it does
//! not exist.

pub mod encode;
pub mod error;
pub mod query;

use std::collections::{BTreeMap, HashMap};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::Bytes;
use axum::extract::{ConnectInfo, Path, State as AxState};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use base64::Engine as _;
use serde_json::{Value, json};
use sluice_planner::trino::{TrinoStatement, TrinoType, classify, dialect};
use sluice_planner::{
    AuthFailureKind, Authenticator, Dialect, Governor, SessionOptions, TokenScope,
};

use self::error::{
    GENERIC_USER_ERROR, INVALID_SESSION_PROPERTY, NOT_FOUND, NOT_SUPPORTED, SYNTAX_ERROR,
    TrinoError, from_plan_error,
};
use self::query::{Cached, Limits, Msg, Queries, Query, State};
use crate::config::{TrinoConfig, parse_duration};

/// Warning name of a result cut at the token's `row_limit`.
pub const ROW_LIMIT_WARNING: &str = "SLUICE_ROW_LIMIT";
/// Response header set on the final page of a truncated result.
pub const TRUNCATED_HEADER: &str = "x-sluice-truncated";
/// Response header with the result's receipt (see
/// [`sluice_planner::Receipt`]) on every answer about a planned query;
/// its `truncated` is final on the last page.
pub const RECEIPT_HEADER: &str = "x-sluice-receipt";
/// How long a poll that got a page waits for the end of the result, to
/// answer both at once.
const LOOK_AHEAD: Duration = Duration::from_millis(20);
/// Session property lowering the run-time limit.
pub const MAX_RUN_TIME_PROPERTY: &str = "query_max_run_time";

/// What the Trino handlers share.
#[derive(Debug, Clone)]
pub struct TrinoState {
    /// Plans statements in the token's scoped session.
    pub governor: Arc<Governor>,
    /// Authenticates every request.
    pub auth: Arc<dyn Authenticator>,
    /// Running queries.
    pub queries: Arc<Queries>,
    /// Base of `nextUri` / `infoUri` (else from `Host`).
    pub external_url: Option<String>,
    /// The listening address (base URL when `Host` is missing).
    pub local_addr: SocketAddr,
    /// Server start (for `/v1/info`).
    pub started: Instant,
}

impl TrinoState {
    /// State for `config`, serving on `local_addr`; starts the reaper of
    /// abandoned queries.
    pub fn new(
        governor: Arc<Governor>,
        auth: Arc<dyn Authenticator>,
        config: &TrinoConfig,
        local_addr: SocketAddr,
    ) -> Self {
        let queries = Queries::new(Limits {
            page_max_rows: config.page_max_rows.max(1),
            page_max_bytes: config.page_max_bytes.max(1),
            max_wait: config.max_wait,
            client_timeout: config.client_timeout,
            max_run_time: config.max_run_time,
            max_concurrent: config.max_concurrent_queries.max(1),
            max_queued: config.max_queued_queries,
            max_per_token: config.max_queries_per_token.max(1),
        });
        queries.spawn_reaper();
        if config.external_url.is_none() && !local_addr.ip().is_loopback() {
            tracing::warn!(
                http_addr = %local_addr,
                "trino.external_url is not set: nextUri is built as http:// + the request's Host; \
                 behind a TLS proxy set it, or clients are sent back to plain http"
            );
        }
        Self {
            governor,
            auth,
            queries,
            external_url: config
                .external_url
                .as_ref()
                .map(|u| u.trim_end_matches('/').to_string()),
            local_addr,
            started: Instant::now(),
        }
    }
}

/// The Trino protocol routes.
pub fn router(state: TrinoState) -> Router {
    Router::new()
        .route("/v1/statement", axum::routing::post(post_statement))
        .route(
            "/v1/statement/executing/{id}/{slug}/{token}",
            get(get_page).delete(delete_page),
        )
        .route("/v1/info", get(info))
        .route("/v1/query", get(list_queries))
        .route("/v1/query/{id}", get(query_info))
        .with_state(state)
}

// --- authentication -----------------------------------------------------------------

fn unauthorized() -> Response {
    let mut resp = (StatusCode::UNAUTHORIZED, "Unauthorized").into_response();
    resp.headers_mut().insert(
        header::WWW_AUTHENTICATE,
        HeaderValue::from_static("Basic realm=\"Trino\""),
    );
    resp
}

/// The token secret of `Authorization: Basic` (the password) or `Bearer`.
fn presented_secret(headers: &HeaderMap) -> String {
    let Some(value) = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
    else {
        return String::new();
    };
    let Some((scheme, rest)) = value.trim().split_once(' ') else {
        return String::new();
    };
    let rest = rest.trim();
    if scheme.eq_ignore_ascii_case("bearer") {
        return rest.to_string();
    }
    if scheme.eq_ignore_ascii_case("basic") {
        let engine = base64::engine::GeneralPurpose::new(
            &base64::alphabet::STANDARD,
            base64::engine::GeneralPurposeConfig::new()
                .with_decode_padding_mode(base64::engine::DecodePaddingMode::Indifferent),
        );
        if let Ok(raw) = engine.decode(rest)
            && let Ok(text) = String::from_utf8(raw)
            && let Some((_, password)) = text.split_once(':')
        {
            return password.to_string();
        }
    }
    String::new()
}

/// Whether a request counts against the token's rate limit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Charge {
    /// A new request (a statement, a query listing).
    Request,
    /// Paging or cancelling a query already charged.
    Continuation,
}

async fn authenticate(
    state: &TrinoState,
    headers: &HeaderMap,
    client: SocketAddr,
    charge: Charge,
) -> Result<Arc<TokenScope>, Response> {
    // A missing or malformed header goes through the authenticator as an
    // empty secret: every failure takes the same path and answer.
    let secret = presented_secret(headers);
    let result = match charge {
        Charge::Request => state.auth.authenticate(&secret, Some(client.ip())).await,
        Charge::Continuation => {
            state
                .auth
                .authenticate_continuation(&secret, Some(client.ip()))
                .await
        }
    };
    match result {
        Ok(scope) => {
            tracing::Span::current().record("token_id", scope.token_id.as_str());
            sluice_planner::audit::note(|a| a.token_id = Some(scope.token_id.clone()));
            Ok(scope)
        }
        Err(f) if f.kind == AuthFailureKind::Unavailable => {
            Err((StatusCode::SERVICE_UNAVAILABLE, "service unavailable").into_response())
        }
        Err(f) if f.retry_after.is_some() => {
            let mut resp = (StatusCode::TOO_MANY_REQUESTS, f.to_string()).into_response();
            if let Some(secs) = f.retry_after_secs() {
                resp.headers_mut()
                    .insert(header::RETRY_AFTER, HeaderValue::from(secs));
            }
            Err(resp)
        }
        Err(f) => {
            tracing::info!(reason = f.kind.as_str(), client = %client.ip(), "Trino authentication failed");
            Err(unauthorized())
        }
    }
}

// --- session --------------------------------------------------------------------------

/// What the client's `X-Trino-*` headers say.
#[derive(Debug, Default)]
struct Session {
    user: Option<String>,
    source: Option<String>,
    catalog: Option<String>,
    schema: Option<String>,
    properties: BTreeMap<String, String>,
    prepared: HashMap<String, String>,
}

fn header_text(headers: &HeaderMap, name: &str) -> Option<String> {
    headers
        .get(name)
        .and_then(|v| v.to_str().ok())
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(str::to_string)
}

/// `a=1,b=x%2Cy` → pairs, form-decoded.
fn header_pairs(headers: &HeaderMap, name: &str) -> Vec<(String, String)> {
    let mut out = Vec::new();
    for value in headers.get_all(name) {
        let Ok(text) = value.to_str() else { continue };
        for item in text.split(',').map(str::trim).filter(|s| !s.is_empty()) {
            if let Some((k, v)) = url::form_urlencoded::parse(item.as_bytes()).next() {
                out.push((k.trim().to_string(), v.into_owned()));
            }
        }
    }
    out
}

fn encode_value(v: &str) -> String {
    url::form_urlencoded::byte_serialize(v.as_bytes()).collect()
}

impl Session {
    fn from_headers(headers: &HeaderMap) -> Self {
        let ident = |s: String| {
            // Unquoted identifiers are case-insensitive (lower-cased), as in queries.
            s.to_ascii_lowercase()
        };
        Session {
            user: header_text(headers, "x-trino-user"),
            source: header_text(headers, "x-trino-source"),
            catalog: header_text(headers, "x-trino-catalog").map(ident),
            schema: header_text(headers, "x-trino-schema").map(ident),
            properties: header_pairs(headers, "x-trino-session")
                .into_iter()
                .collect(),
            prepared: header_pairs(headers, "x-trino-prepared-statement")
                .into_iter()
                .map(|(k, v)| (k.to_ascii_lowercase(), v))
                .collect(),
        }
    }

    fn options(&self) -> SessionOptions {
        SessionOptions {
            dialect: Dialect::Trino,
            catalog: self.catalog.clone(),
            schema: self.schema.clone(),
        }
    }

    /// The run-time limit: the gateway's, lowered by `query_max_run_time`.
    fn run_time(&self, limit: Duration) -> Result<Duration, TrinoError> {
        match self.properties.get(MAX_RUN_TIME_PROPERTY) {
            None => Ok(limit),
            Some(v) => parse_duration(v).map(|d| d.min(limit)).map_err(|e| {
                TrinoError::new(
                    INVALID_SESSION_PROPERTY,
                    format!("{MAX_RUN_TIME_PROPERTY}: {e}"),
                )
            }),
        }
    }
}

// --- responses -------------------------------------------------------------------------

fn base_url(state: &TrinoState, headers: &HeaderMap) -> String {
    if let Some(u) = &state.external_url {
        return u.clone();
    }
    let host = headers
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .filter(|h| {
            !h.is_empty()
                && h.len() <= 255
                && h.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"-.:[]_".contains(&b))
        });
    match host {
        Some(h) => format!("http://{h}"),
        None => format!("http://{}", state.local_addr),
    }
}

fn columns_json(schema: &arrow::datatypes::Schema) -> Value {
    Value::Array(
        schema
            .fields()
            .iter()
            .map(|f| {
                let t = TrinoType::of(f.data_type());
                json!({"name": f.name(), "type": t.name(), "typeSignature": t.signature()})
            })
            .collect(),
    )
}

struct Page<'a> {
    id: &'a str,
    state: State,
    next: Option<String>,
    columns: Option<&'a Value>,
    data: Option<&'a str>,
    error: Option<&'a TrinoError>,
    warnings: Vec<Value>,
    update_type: Option<&'a str>,
    rows: u64,
    elapsed: Duration,
    truncated: Option<bool>,
}

fn render(base: &str, p: Page<'_>) -> Bytes {
    let elapsed = p.elapsed.as_millis() as u64;
    let mut doc = json!({
        "id": p.id,
        "infoUri": format!("{base}/v1/query/{}", p.id),
        "stats": {
            "state": p.state.as_str(),
            "queued": p.state == State::Queued,
            "scheduled": p.state != State::Queued,
            "nodes": 1,
            "totalSplits": 0,
            "queuedSplits": 0,
            "runningSplits": 0,
            "completedSplits": 0,
            "cpuTimeMillis": 0,
            "wallTimeMillis": elapsed,
            "queuedTimeMillis": 0,
            "elapsedTimeMillis": elapsed,
            "processedRows": p.rows,
            "processedBytes": 0,
            "physicalInputBytes": 0,
            "peakMemoryBytes": 0,
            "spilledBytes": 0,
        },
        "warnings": p.warnings,
    });
    if let Some(t) = p.truncated {
        // The trino Python client keeps only the first response's
        // warnings, but every response's stats (`cursor.stats`).
        doc["stats"]["sluiceTruncated"] = Value::Bool(t);
    }
    if let Some(next) = p.next {
        doc["nextUri"] = Value::String(next);
    }
    if let Some(c) = p.columns {
        doc["columns"] = c.clone();
    }
    if let Some(e) = p.error {
        doc["error"] = e.to_json();
    }
    if let Some(u) = p.update_type {
        doc["updateType"] = Value::String(u.to_string());
    }
    let mut text = doc.to_string();
    if let Some(data) = p.data {
        // Rows are encoded once, straight into the page: splice them in.
        text.pop();
        text.push_str(",\"data\":[");
        text.push_str(data);
        text.push_str("]}");
    }
    Bytes::from(text)
}

fn respond(cached: &Cached) -> Response {
    let mut resp = (
        StatusCode::OK,
        [(header::CONTENT_TYPE, "application/json")],
        cached.body.clone(),
    )
        .into_response();
    for (name, value) in &cached.headers {
        if let Ok(v) = HeaderValue::from_str(value) {
            resp.headers_mut().insert(*name, v);
        }
    }
    resp
}

/// A statement answered at once (session statements, errors).
fn immediate(
    base: &str,
    id: &str,
    error: Option<&TrinoError>,
    update_type: Option<&str>,
    headers: Vec<(&'static str, String)>,
) -> Response {
    let body = render(
        base,
        Page {
            id,
            state: if error.is_some() {
                State::Failed
            } else {
                State::Finished
            },
            next: None,
            columns: None,
            data: None,
            error,
            warnings: vec![],
            update_type,
            rows: 0,
            elapsed: Duration::ZERO,
            truncated: None,
        },
    );
    respond(&Cached {
        token: 0,
        body,
        headers,
    })
}

fn gone(message: &str) -> Response {
    (
        StatusCode::GONE,
        [(header::CONTENT_TYPE, "application/json")],
        json!({"error": message}).to_string(),
    )
        .into_response()
}

fn not_found() -> Response {
    (
        StatusCode::NOT_FOUND,
        [(header::CONTENT_TYPE, "application/json")],
        json!({"error": "query not found"}).to_string(),
    )
        .into_response()
}

// --- statements -----------------------------------------------------------------------

enum Outcome {
    Run(Arc<Query>),
    Done {
        update_type: &'static str,
        headers: Vec<(&'static str, String)>,
    },
}

async fn post_statement(
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

fn row_limit_warning(rows: Option<u64>) -> Value {
    let message = match rows {
        Some(n) => format!("The result was truncated to {n} rows: the token's row_limit"),
        None => "The result was truncated to the token's row_limit".to_string(),
    };
    json!({
        "warningCode": {"code": 0x5300, "name": ROW_LIMIT_WARNING},
        "message": message,
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
                from_plan_error(&sluice_planner::Error::Refused(
                    "Catalog must be specified when session catalog is not set".into(),
                ))
            })?;
            // USE only names what the token can see.
            let check = TrinoStatement::ShowTables {
                schema: vec![catalog.clone(), schema.clone()],
                like: None,
            };
            state
                .governor
                .plan_trino(scope, &check, &session.options(), None)
                .await
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
            planned_sql = sql.clone();
            (classify_trino(sql)?, params)
        }
        TrinoStatement::ExecuteImmediate { sql, params } => {
            planned_sql = sql.clone();
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
        Some(text) => dialect::parse_parameters(&text).map_err(|e| from_plan_error(&e))?,
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
    let plan = state
        .governor
        .plan_trino(scope, &statement, &session.options(), params)
        .await
        .map_err(|e| from_plan_error(&e))?;
    let columns = columns_json(&plan.schema());
    let facts = plan.facts();
    if let Some(audit) = sluice_planner::audit::current() {
        audit.planned(&planned_sql, &facts);
    }
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

// --- polling ---------------------------------------------------------------------------

/// Answers page `token` of `query`: the cached response when it is the
/// last one sent (a retry), the next page when it is the one after,
/// 410 otherwise.
async fn poll(state: &TrinoState, query: &Arc<Query>, token: u64, base: &str) -> Response {
    query.touch();
    if let Some(audit) = sluice_planner::audit::current() {
        audit.update(|a| a.query_id = Some(query.id.clone()));
        if let Some((sql, facts)) = query.facts.get() {
            audit.planned(sql, facts);
        }
    }
    let mut pages = query.pages.lock().await;
    if let Some(last) = &pages.last {
        if last.token == token {
            return respond(last);
        }
        if token != last.token + 1 || pages.done {
            return gone("this page is no longer available");
        }
    } else if token != 0 {
        return gone("this page is not available yet");
    }
    let next = |n: u64| {
        Some(format!(
            "{base}/v1/statement/executing/{}/{}/{n}",
            query.id, query.slug
        ))
    };
    let page = |state: State,
                next: Option<String>,
                data: Option<&str>,
                error: Option<&TrinoError>,
                truncated: Option<bool>| {
        let mut warnings = vec![];
        if truncated == Some(true) {
            warnings.push(row_limit_warning(Some(query.rows())));
        }
        render(
            base,
            Page {
                id: &query.id,
                state,
                next,
                columns: (!query.columns.is_null()).then_some(&query.columns),
                data,
                error,
                warnings,
                update_type: None,
                rows: query.rows(),
                elapsed: query.elapsed(),
                truncated,
            },
        )
    };
    let mut headers = Vec::new();
    let failed = |pages: &mut query::Pages| {
        pages.done = true;
        let err = query.failure().unwrap_or_else(|| {
            TrinoError::new(
                error::GENERIC_INTERNAL_ERROR,
                "the query ended unexpectedly",
            )
        });
        sluice_planner::audit::note(|a| {
            a.outcome = Some(sluice_planner::Outcome::Error);
            a.error = Some(err.name.to_string());
        });
        page(State::Failed, None, None, Some(&err), None)
    };
    let body = if query.failure().is_some() {
        failed(&mut pages)
    } else {
        let received = match pages.pending.take() {
            Some(m) => Some(Some(m)),
            None => tokio::select! {
                m = pages.rx.recv() => Some(m),
                () = tokio::time::sleep(state.queries.limits.max_wait) => None,
            },
        };
        match received {
            None => page(query.state(), next(token + 1), None, None, None),
            Some(Some(Msg::Page(data, n))) => {
                query.add_rows(n);
                if let Some(audit) = sluice_planner::audit::current() {
                    audit.returned(n as u64, data.len() as u64);
                }
                // A result that ends right after this page ends in this
                // response: one round trip less, and the truncation warning
                // reaches clients that read only the first response's.
                let ahead = tokio::time::timeout(LOOK_AHEAD, pages.rx.recv()).await;
                match ahead {
                    Ok(Some(Msg::Finished { truncated })) => {
                        query.finish(truncated);
                        pages.done = true;
                        if truncated {
                            headers.push((TRUNCATED_HEADER, "true".to_string()));
                        }
                        page(State::Finished, None, Some(&data), None, Some(truncated))
                    }
                    Ok(Some(other)) => {
                        pages.pending = Some(other);
                        page(State::Running, next(token + 1), Some(&data), None, None)
                    }
                    // Closed: the failure is answered by the next poll.
                    Ok(None) | Err(_) => {
                        page(State::Running, next(token + 1), Some(&data), None, None)
                    }
                }
            }
            Some(Some(Msg::Finished { truncated })) => {
                query.finish(truncated);
                pages.done = true;
                if truncated {
                    headers.push((TRUNCATED_HEADER, "true".to_string()));
                }
                page(State::Finished, None, None, None, Some(truncated))
            }
            Some(None) => failed(&mut pages),
        }
    };
    if let Some((_, facts)) = query.facts.get() {
        let truncated = query.truncated();
        sluice_planner::audit::note(|a| a.truncated = truncated);
        headers.push((
            RECEIPT_HEADER,
            facts.receipt.clone().with_truncated(truncated).to_json(),
        ));
    }
    let retire = pages.done;
    if pages.done {
        // Nothing more will be read: free buffered pages now.
        pages.rx.close();
        while pages.rx.try_recv().is_ok() {}
        pages.pending = None;
        query.set_done();
    }
    let cached = Cached {
        token,
        body,
        headers,
    };
    pages.last = Some(cached.clone());
    query.touch();
    drop(pages);
    if retire {
        state.queries.retire();
    }
    respond(&cached)
}

/// The query behind a URL, for the token that started it only.
fn owned_query(
    state: &TrinoState,
    scope: &TokenScope,
    id: &str,
    slug: Option<&str>,
) -> Option<Arc<Query>> {
    let q = state.queries.get(id)?;
    let slug_ok = slug.is_none_or(|s| slug_matches(&q, s));
    (slug_ok && q.token_id == scope.token_id).then_some(q)
}

/// Whether `slug` is the query's (compared in constant time).
fn slug_matches(q: &Query, slug: &str) -> bool {
    subtle::ConstantTimeEq::ct_eq(slug.as_bytes(), q.slug.as_bytes()).into()
}

/// Paging or cancelling a live query (known id and slug) is not charged
/// to the token's rate; anything else under these routes is.
fn continuation(state: &TrinoState, id: &str, slug: &str) -> Charge {
    match state.queries.get(id) {
        Some(q) if slug_matches(&q, slug) => Charge::Continuation,
        _ => Charge::Request,
    }
}

async fn get_page(
    AxState(state): AxState<TrinoState>,
    ConnectInfo(client): ConnectInfo<SocketAddr>,
    Path((id, slug, token)): Path<(String, String, u64)>,
    headers: HeaderMap,
) -> Response {
    let charge = continuation(&state, &id, &slug);
    let mut scope = match authenticate(&state, &headers, client, charge).await {
        Ok(s) => s,
        Err(r) => return r,
    };
    // Uncharged only for the token that owns the query.
    if charge == Charge::Continuation && owned_query(&state, &scope, &id, Some(&slug)).is_none() {
        scope = match authenticate(&state, &headers, client, Charge::Request).await {
            Ok(s) => s,
            Err(r) => return r,
        };
    }
    // Unknown, expired and other tokens' queries answer alike.
    let Some(query) = owned_query(&state, &scope, &id, Some(&slug)) else {
        return gone("query not found or expired");
    };
    let base = base_url(&state, &headers);
    poll(&state, &query, token, &base).await
}

async fn delete_page(
    AxState(state): AxState<TrinoState>,
    ConnectInfo(client): ConnectInfo<SocketAddr>,
    Path((id, slug, _token)): Path<(String, String, u64)>,
    headers: HeaderMap,
) -> Response {
    let charge = continuation(&state, &id, &slug);
    let mut scope = match authenticate(&state, &headers, client, charge).await {
        Ok(s) => s,
        Err(r) => return r,
    };
    // Uncharged only for the token that owns the query.
    if charge == Charge::Continuation && owned_query(&state, &scope, &id, Some(&slug)).is_none() {
        scope = match authenticate(&state, &headers, client, Charge::Request).await {
            Ok(s) => s,
            Err(r) => return r,
        };
    }
    // Idempotent, and the same answer for queries that are unknown,
    // finished or another token's (which are left alone): clients DELETE
    // their last nextUri again when a cursor is closed.
    if owned_query(&state, &scope, &id, Some(&slug)).is_some() {
        state.queries.cancel(&id);
        tracing::info!(query_id = %id, "Trino query cancelled by its client");
    }
    StatusCode::NO_CONTENT.into_response()
}

// --- info ------------------------------------------------------------------------------

async fn info(AxState(state): AxState<TrinoState>) -> Response {
    let uptime = state.started.elapsed().as_secs_f64() / 60.0;
    axum::Json(json!({
        "nodeVersion": {"version": format!("sluice-{}", sluice_planner::VERSION)},
        "environment": "sluice",
        "coordinator": true,
        "starting": false,
        "uptime": format!("{uptime:.2}m"),
    }))
    .into_response()
}

fn query_json(q: &Query) -> Value {
    json!({
        "queryId": q.id,
        "state": q.state().as_str(),
        "tokenId": q.token_id,
        "user": q.user,
        "created": q.created.to_rfc3339(),
        "elapsedTimeMillis": q.elapsed().as_millis() as u64,
        "rows": q.rows(),
        "truncated": q.truncated(),
        "error": q.failure().map(|e| e.name),
    })
}

async fn list_queries(
    AxState(state): AxState<TrinoState>,
    ConnectInfo(client): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
) -> Response {
    let scope = match authenticate(&state, &headers, client, Charge::Request).await {
        Ok(s) => s,
        Err(r) => return r,
    };
    let list: Vec<Value> = state
        .queries
        .all()
        .iter()
        .filter(|q| scope.admin || q.token_id == scope.token_id)
        .map(|q| query_json(q))
        .collect();
    axum::Json(Value::Array(list)).into_response()
}

async fn query_info(
    AxState(state): AxState<TrinoState>,
    ConnectInfo(client): ConnectInfo<SocketAddr>,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Response {
    let scope = match authenticate(&state, &headers, client, Charge::Request).await {
        Ok(s) => s,
        Err(r) => return r,
    };
    let query = if scope.admin {
        state.queries.get(&id)
    } else {
        owned_query(&state, &scope, &id, None)
    };
    match query {
        Some(q) => axum::Json(query_json(&q)).into_response(),
        None => not_found(),
    }
}

#[cfg(test)]
mod tests;

// Security review probes (see the file's header).
#[cfg(test)]
mod review_tests;
