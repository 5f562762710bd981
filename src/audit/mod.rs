//! The audit log: one record per request on every path (Flight SQL,
//! Trino, admin API, search, export jobs), written in the background.
//!
//! Frontends fill the request's [`AuditHandle`] (token, statement, tables,
//! columns, rows, policy facts); the server layers ([`layer`] for Flight
//! SQL, the HTTP middleware for everything on `http_addr`) add the time,
//! request id, client address, outcome and latency when the answer is
//! complete and hand the record to [`AuditLog::record`], which never
//! waits: the queue is bounded (`[audit] queue`) and a record that does not
//! fit is dropped and counted (`sluice_audit_dropped_total`). A writer task
//! stores queued records in batches and deletes records older than
//! `[audit] retention`.
//!
//! Statements are stored as a fingerprint and as text with every literal
//! replaced by `?` and comments removed ([`normalize`]); token secrets are
//! never part of a record. Admins read the log as `system.audit_log`
//! ([`table`]).

pub mod layer;
pub mod table;

use std::net::IpAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use chrono::Utc;
use datafusion::sql::sqlparser::dialect::GenericDialect;
use datafusion::sql::sqlparser::tokenizer::{Token, Tokenizer};
use serde::Deserialize;
use sha2::{Digest, Sha256};
use sluice_planner::{AuditFacts, AuditHandle, Outcome};
use tokio::sync::{mpsc, watch};

use crate::store::Store;
use crate::store::audit::AuditRow;

/// `[audit]`: one record per request, written in the background.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AuditConfig {
    /// Write audit records and request metrics (turn off only to measure
    /// their cost: a gateway without an audit log is not deployable).
    pub enabled: bool,
    /// Records waiting to be written; when full, new records are dropped
    /// and counted (`sluice_audit_dropped_total`), never waited for.
    pub queue: usize,
    /// How long records are kept (`"30d"`, `"12h"`).
    #[serde(deserialize_with = "sluice_planner::units::de_duration")]
    pub retention: Duration,
}

impl Default for AuditConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            queue: 10_000,
            retention: Duration::from_secs(30 * 86400),
        }
    }
}

/// Records written per transaction at most.
const BATCH: usize = 256;
/// How long the writer gathers records before a transaction.
const BATCH_WINDOW: Duration = Duration::from_millis(100);
/// How often old records are deleted.
const PRUNE_EVERY: Duration = Duration::from_secs(600);
/// Longest statement text kept (characters).
const MAX_STATEMENT: usize = 4096;
/// Most entries kept of each list (tables, columns …).
const MAX_LIST: usize = 256;

/// Which frontend served a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Protocol {
    /// Arrow Flight SQL.
    FlightSql,
    /// The Trino client protocol.
    Trino,
    /// The admin and data HTTP API.
    Http,
    /// An export job run.
    Export,
}

impl Protocol {
    /// The stored spelling.
    pub fn as_str(&self) -> &'static str {
        match self {
            Protocol::FlightSql => "flight_sql",
            Protocol::Trino => "trino",
            Protocol::Http => "http",
            Protocol::Export => "export",
        }
    }
}

/// What the server layer knows about a finished request.
#[derive(Debug, Clone)]
pub struct RequestInfo {
    /// The gateway's request id (returned to the client).
    pub request_id: String,
    /// The `x-request-id` the client sent, if well-formed.
    pub client_request_id: Option<String>,
    /// The trace id of the request's span.
    pub trace_id: Option<String>,
    /// The frontend.
    pub protocol: Protocol,
    /// The call.
    pub action: String,
    /// The client's address.
    pub client: Option<IpAddr>,
    /// When the request arrived.
    pub started: Instant,
}

/// The audit log's queue; cheap to share.
#[derive(Debug)]
pub struct AuditLog {
    enabled: bool,
    tx: mpsc::Sender<Queued>,
    writer: Mutex<Option<tokio::task::JoinHandle<()>>>,
    last_warning: Mutex<Option<Instant>>,
}

impl AuditLog {
    /// Starts the writer: records go to `store`; records older than
    /// `retention` are deleted every ten minutes. The writer stores what is
    /// queued and stops when `shutdown` turns true (see
    /// [`AuditLog::stopped`]).
    pub fn start(store: Store, config: &AuditConfig, shutdown: watch::Receiver<bool>) -> Arc<Self> {
        let (tx, rx) = mpsc::channel(config.queue.max(1));
        let writer = tokio::spawn(write_loop(store, rx, config.retention, shutdown));
        Arc::new(Self {
            enabled: config.enabled,
            tx,
            writer: Mutex::new(Some(writer)),
            last_warning: Mutex::new(None),
        })
    }

    /// Queues a record of a request; never waits (a full queue drops it
    /// and counts the drop).
    pub fn record(&self, info: &RequestInfo, facts: AuditFacts, outcome: Outcome) {
        if !self.enabled {
            return;
        }
        let protocol = info.protocol.as_str();
        metrics::counter!(
            "sluice_requests_total",
            "protocol" => protocol,
            "outcome" => outcome.as_str()
        )
        .increment(1);
        metrics::histogram!("sluice_request_duration_seconds", "protocol" => protocol)
            .record(info.started.elapsed().as_secs_f64());
        if facts.rows > 0 {
            metrics::counter!("sluice_rows_out_total", "protocol" => protocol)
                .increment(facts.rows);
        }
        if facts.bytes > 0 {
            metrics::counter!("sluice_bytes_out_total", "protocol" => protocol)
                .increment(facts.bytes);
        }
        if !facts.columns_blocked.is_empty() {
            metrics::counter!("sluice_columns_blocked_total", "protocol" => protocol)
                .increment(facts.columns_blocked.len() as u64);
        }
        if facts.values_masked() > 0 {
            metrics::counter!("sluice_values_masked_total", "protocol" => protocol)
                .increment(facts.values_masked());
        }
        if facts.truncated {
            metrics::counter!("sluice_truncations_total", "protocol" => protocol).increment(1);
        }
        // Requests without a token (failed authentication, probes of
        // unknown routes) may use only half of the queue, so a flood of
        // them cannot push out the records of what tokens did.
        if facts.token_id.is_none() && self.tx.capacity() < self.tx.max_capacity() / 2 {
            self.dropped();
            return;
        }
        // The row (statement normalisation included) is built by the
        // writer, off the request's path.
        let queued = Queued {
            time_ms: Utc::now().timestamp_millis(),
            latency_ms: info.started.elapsed().as_secs_f64() * 1000.0,
            info: info.clone(),
            facts,
            outcome,
        };
        if self.tx.try_send(queued).is_err() {
            self.dropped();
        }
    }

    /// Counts a dropped record; warns at most every ten seconds.
    fn dropped(&self) {
        metrics::counter!("sluice_audit_dropped_total").increment(1);
        let mut last = self.last_warning.lock().unwrap_or_else(|e| e.into_inner());
        if last.is_none_or(|t| t.elapsed() >= Duration::from_secs(10)) {
            *last = Some(Instant::now());
            tracing::warn!(
                "audit queue full: records are being dropped (see sluice_audit_dropped_total)"
            );
        }
    }

    /// Waits (up to `timeout`) until the writer has stored what was queued
    /// before shutdown.
    pub async fn stopped(&self, timeout: Duration) {
        let writer = self.writer.lock().unwrap_or_else(|e| e.into_inner()).take();
        if let Some(w) = writer
            && tokio::time::timeout(timeout, w).await.is_err()
        {
            tracing::warn!("audit records still queued at shutdown were not written");
        }
    }
}

/// A JSON array of at most `MAX_LIST` items (then `"…"`).
fn json_list(items: &[String]) -> String {
    let mut kept: Vec<&str> = items.iter().take(MAX_LIST).map(String::as_str).collect();
    if items.len() > MAX_LIST {
        kept.push("…");
    }
    serde_json::to_string(&kept).unwrap_or_else(|_| "[]".into())
}

/// Result column names as the audit log keeps them: plain names as they
/// are, computed ones (`upper(Utf8("…"))`, which quote literals) as
/// `_col<n>`, like Trino names unnamed columns.
fn column_names(columns: &[String]) -> Vec<String> {
    columns
        .iter()
        .enumerate()
        .map(|(i, c)| {
            let plain = c.len() <= 128
                && c.starts_with(|ch: char| ch.is_ascii_alphabetic() || ch == '_')
                && c.chars()
                    .all(|ch| ch.is_ascii_alphanumeric() || ch == '_' || ch == '$');
            if plain { c.clone() } else { format!("_col{i}") }
        })
        .collect()
}

/// At most `MAX_STATEMENT` characters (then `…`).
fn shorten(text: String) -> String {
    match text.char_indices().nth(MAX_STATEMENT) {
        Some((cut, _)) => format!("{}…", &text[..cut]),
        None => text,
    }
}

/// Text as every store accepts it (Postgres refuses NUL characters, which
/// a quoted identifier may hold).
fn clean(text: &str) -> String {
    text.replace('\0', "\u{FFFD}")
}

/// Builds the stored row (normalising the statement).
/// A request's record as queued: the row is built by the writer.
#[derive(Debug)]
struct Queued {
    time_ms: i64,
    latency_ms: f64,
    info: RequestInfo,
    facts: AuditFacts,
    outcome: Outcome,
}

impl Queued {
    fn into_row(self) -> AuditRow {
        to_row_at(
            &self.info,
            self.facts,
            self.outcome,
            self.time_ms,
            self.latency_ms,
        )
    }
}

/// The stored row of a request that ends now (tests build rows with it).
#[cfg(test)]
pub(crate) fn to_row(info: &RequestInfo, facts: AuditFacts, outcome: Outcome) -> AuditRow {
    let latency_ms = info.started.elapsed().as_secs_f64() * 1000.0;
    to_row_at(
        info,
        facts,
        outcome,
        Utc::now().timestamp_millis(),
        latency_ms,
    )
}

/// The stored row of a request that ended at `time_ms` after `latency_ms`.
fn to_row_at(
    info: &RequestInfo,
    facts: AuditFacts,
    outcome: Outcome,
    time_ms: i64,
    latency_ms: f64,
) -> AuditRow {
    let (fingerprint, statement) = match facts.statement.as_deref().map(normalize) {
        Some(Some(text)) => (Some(fingerprint(&text)), Some(shorten(clean(&text)))),
        // Not even tokenisable: nothing of it is kept.
        Some(None) => (None, Some("<unreadable statement>".to_string())),
        None => (None, None),
    };
    AuditRow {
        time_ms,
        request_id: clean(&info.request_id),
        client_request_id: info.client_request_id.as_deref().map(clean),
        trace_id: info.trace_id.clone(),
        token_id: facts.token_id.clone(),
        peer: facts.peer.as_deref().map(clean),
        protocol: info.protocol.as_str().to_string(),
        action: clean(&info.action),
        client_addr: info.client.map(|c| c.to_string()),
        query_id: facts.query_id.clone(),
        statement_fingerprint: fingerprint,
        statement,
        tables: json_list(&facts.tables),
        columns: json_list(&column_names(&facts.columns)),
        rows_out: i64::try_from(facts.rows).unwrap_or(i64::MAX),
        bytes_out: i64::try_from(facts.bytes).unwrap_or(i64::MAX),
        bytes_scanned: i64::try_from(facts.bytes_scanned).unwrap_or(i64::MAX),
        truncated: facts.truncated,
        columns_blocked: json_list(&facts.columns_blocked),
        columns_masked: json_list(&facts.columns_masked),
        values_masked: i64::try_from(facts.values_masked()).unwrap_or(i64::MAX),
        row_policy: serde_json::to_string(&facts.row_policy).unwrap_or_else(|_| "{}".into()),
        outcome: outcome.as_str().to_string(),
        error: facts.error.as_deref().map(clean),
        latency_ms,
    }
}

/// The statement with comments removed, whitespace collapsed and every
/// token that is not a keyword, identifier or operator (numbers, strings of
/// any quoting, placeholders) replaced by `?`. `None` when the text cannot
/// be tokenised.
pub fn normalize(sql: &str) -> Option<String> {
    let tokens = Tokenizer::new(&GenericDialect {}, sql).tokenize().ok()?;
    let mut out = String::with_capacity(sql.len());
    // Spacing is canonical (one space between tokens, none around `.`,
    // before `,` `)` `;` or after `(`), so the original layout does not
    // change the fingerprint.
    let mut glue = true;
    for token in tokens {
        let piece = match &token {
            // Whitespace and comments (which may hold anything) go.
            Token::Whitespace(_) | Token::EOF => continue,
            // Unquoted words (keywords, identifiers: case-insensitive) in
            // lower case, quoted identifiers as written.
            Token::Word(w) if w.quote_style.is_none() => w.value.to_lowercase(),
            Token::Word(_) => token.to_string(),
            other => {
                let text = other.to_string();
                if text.chars().all(|c| c.is_ascii_punctuation())
                    && !text.contains(['\'', '"', '$', '`'])
                {
                    text
                } else {
                    "?".to_string()
                }
            }
        };
        let tight_before = matches!(piece.as_str(), "." | "," | ")" | ";");
        if !glue && !tight_before {
            out.push(' ');
        }
        glue = matches!(piece.as_str(), "." | "(");
        out.push_str(&piece);
    }
    Some(out)
}

/// Short hash of a normalised statement (equal statements up to literals
/// share it).
pub fn fingerprint(normalized: &str) -> String {
    hex::encode(&Sha256::digest(normalized.as_bytes())[..8])
}

async fn write_loop(
    store: Store,
    mut rx: mpsc::Receiver<Queued>,
    retention: Duration,
    mut shutdown: watch::Receiver<bool>,
) {
    let mut batch: Vec<Queued> = Vec::with_capacity(BATCH);
    let mut prune = tokio::time::interval(PRUNE_EVERY);
    enum Next {
        Records(usize),
        Prune,
        Stop,
    }
    loop {
        // Decide first, act after: the shutdown future must not live
        // across the writes (it is not `Send`).
        let next = tokio::select! {
            n = rx.recv_many(&mut batch, BATCH) => Next::Records(n),
            _ = prune.tick() => Next::Prune,
            _ = shutdown.wait_for(|s| *s) => Next::Stop,
        };
        match next {
            Next::Records(0) | Next::Stop => break,
            Next::Records(_) => {
                // Gather what arrives shortly after: one transaction (one
                // sync of the store) per batch, not per request.
                tokio::time::sleep(BATCH_WINDOW).await;
                while batch.len() < BATCH {
                    match rx.try_recv() {
                        Ok(q) => batch.push(q),
                        Err(_) => break,
                    }
                }
                write(&store, &mut batch).await;
            }
            Next::Prune => {
                let before = Utc::now().timestamp_millis()
                    - i64::try_from(retention.as_millis()).unwrap_or(i64::MAX);
                match store.prune_audit(before).await {
                    Ok(0) => {}
                    Ok(n) => tracing::info!(deleted = n, "old audit records deleted"),
                    Err(e) => tracing::warn!(error = %e, "deleting old audit records failed"),
                }
            }
        }
    }
    // Store what was queued before shutdown.
    rx.close();
    while rx.recv_many(&mut batch, BATCH).await > 0 {
        write(&store, &mut batch).await;
    }
}

async fn write(store: &Store, queued: &mut Vec<Queued>) {
    let batch: Vec<AuditRow> = queued.drain(..).map(Queued::into_row).collect();
    if let Err(e) = store.insert_audit(&batch).await {
        if e.is_unavailable() {
            // The store is down: record by record would wait out the pool
            // timeout for each. The batch is lost (and counted).
            tracing::error!(error = %e, records = batch.len(), "audit records lost: the store is unreachable");
            metrics::counter!("sluice_audit_dropped_total").increment(batch.len() as u64);
            return;
        }
        // A busy SQLite, a Postgres failover, or one record the store
        // refuses: retry one by one, so only what fails again is lost.
        tracing::warn!(error = %e, records = batch.len(), "writing audit records failed; retrying one by one");
        tokio::time::sleep(Duration::from_millis(200)).await;
        let mut lost = 0u64;
        for row in batch.iter() {
            if let Err(e) = store.insert_audit(std::slice::from_ref(row)).await {
                lost += 1;
                tracing::error!(error = %e, request_id = %row.request_id, "audit record lost: the store refused it");
            }
        }
        if lost > 0 {
            metrics::counter!("sluice_audit_dropped_total").increment(lost);
        }
    }
}

/// The outcome of an HTTP request from its status (when the handler did
/// not decide one).
pub fn outcome_of_status(status: u16) -> Outcome {
    match status {
        200..=399 => Outcome::Ok,
        401 => Outcome::Unauthenticated,
        403 => Outcome::Denied,
        429 => Outcome::RateLimited,
        _ => Outcome::Error,
    }
}

/// What an export job run's record says about the "request" (the run is
/// not one: the record is written when the job ends; its `query_id` is the
/// job id).
pub fn export_info(started: Instant) -> RequestInfo {
    RequestInfo {
        request_id: uuid::Uuid::new_v4().to_string(),
        client_request_id: None,
        trace_id: None,
        protocol: Protocol::Export,
        action: "export".to_string(),
        client: None,
        started,
    }
}

/// A new handle whose facts say the request belongs to `query_id`.
pub fn handle_for(query_id: &str) -> AuditHandle {
    let h = AuditHandle::new();
    h.update(|a| a.query_id = Some(query_id.to_string()));
    h
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn literals_and_comments_never_survive() {
        let sql = "SELECT name, salary FROM lake.hr.employees -- slc_secret\n\
                   WHERE ssn = '123-45-6789' AND age > 42 AND x = $1 /* 'hidden' */ \
                   AND d = DATE '2024-01-01' AND n = E'esc' LIMIT 10";
        let n = normalize(sql).unwrap();
        for leak in [
            "123-45-6789",
            "42",
            "slc_secret",
            "hidden",
            "2024",
            "esc",
            "10",
            "$1",
        ] {
            assert!(!n.contains(leak), "{leak} in {n}");
        }
        assert!(
            n.starts_with("select name, salary from lake.hr.employees where ssn = ?"),
            "{n}"
        );
        // Equal up to literals: same fingerprint.
        let other = normalize(
            "select  name, salary from lake.hr.employees where ssn='x' and age>1 and x=$2 \
             and d = DATE '1999-01-01' and n = E'y' limit 5",
        )
        .unwrap();
        assert_eq!(n, other);
        assert_eq!(fingerprint(&n), fingerprint(&other));
        assert!(normalize("SELECT 'unterminated").is_none());
    }

    #[test]
    fn computed_column_names_and_long_texts_are_not_kept() {
        let names = column_names(&[
            "order_id".into(),
            "upper(Utf8(\"SECRET\"))".into(),
            "amount > Int64(4111)".into(),
            "_x$1".into(),
        ]);
        assert_eq!(names, ["order_id", "_col1", "_col2", "_x$1"]);
        let long = shorten("x".repeat(MAX_STATEMENT + 10));
        assert_eq!(long.chars().count(), MAX_STATEMENT + 1);
        let many: Vec<String> = (0..MAX_LIST + 5).map(|i| i.to_string()).collect();
        let list: Vec<String> = serde_json::from_str(&json_list(&many)).unwrap();
        assert_eq!(list.len(), MAX_LIST + 1);
    }

    #[test]
    fn status_outcomes() {
        assert_eq!(outcome_of_status(200), Outcome::Ok);
        assert_eq!(outcome_of_status(401), Outcome::Unauthenticated);
        assert_eq!(outcome_of_status(403), Outcome::Denied);
        assert_eq!(outcome_of_status(429), Outcome::RateLimited);
        assert_eq!(outcome_of_status(404), Outcome::Error);
    }
}
