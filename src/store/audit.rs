//! The audit log in the store (`migrations/*/0003_audit.sql`,
//! `bytes_scanned` since `0006_budgets.sql`), and what each token spent of
//! its budgets, summed from it.

use super::{Backend, Store};
use crate::error::Result;

/// One stored audit record. Lists and maps are JSON text.
#[derive(Debug, Clone, Default, PartialEq, sqlx::FromRow)]
pub struct AuditRow {
    /// Unix milliseconds.
    pub time_ms: i64,
    /// The gateway's id of the request (returned as `x-request-id`).
    pub request_id: String,
    /// The `x-request-id` the client sent, if any (not unique: clients
    /// choose it).
    pub client_request_id: Option<String>,
    /// The W3C trace id of the request's span.
    pub trace_id: Option<String>,
    /// The authenticated token.
    pub token_id: Option<String>,
    /// The federation peer the request came through.
    pub peer: Option<String>,
    /// `flight_sql`, `trino`, `http` or `export`.
    pub protocol: String,
    /// The call (`DoGet`, `POST /v1/statement`, `export`).
    pub action: String,
    /// The client's address.
    pub client_addr: Option<String>,
    /// Trino query id or export job id.
    pub query_id: Option<String>,
    /// Hash of the normalised statement.
    pub statement_fingerprint: Option<String>,
    /// The statement with its literals replaced by `?`.
    pub statement: Option<String>,
    /// JSON array of tables read.
    pub tables: String,
    /// JSON array of result columns.
    pub columns: String,
    /// Rows returned.
    pub rows_out: i64,
    /// Bytes returned.
    pub bytes_out: i64,
    /// Bytes read through secure views.
    pub bytes_scanned: i64,
    /// Rows cut at `row_limit`.
    pub truncated: bool,
    /// JSON array of columns the token cannot see in the tables read.
    pub columns_blocked: String,
    /// JSON array of masked columns read.
    pub columns_masked: String,
    /// Masked values returned.
    pub values_masked: i64,
    /// JSON object: row policy fingerprint by table.
    pub row_policy: String,
    /// `ok`, `unauthenticated`, `denied`, `rate_limited`, `error`, `cancelled`.
    pub outcome: String,
    /// The error shown to the client (quoted literals removed).
    pub error: Option<String>,
    /// Milliseconds from request to the end of the answer.
    pub latency_ms: f64,
}

/// Text columns a scan of `system.audit_log` may filter on in the store.
pub const AUDIT_TEXT_COLUMNS: [&str; 9] = [
    "request_id",
    "client_request_id",
    "trace_id",
    "token_id",
    "protocol",
    "action",
    "query_id",
    "statement_fingerprint",
    "outcome",
];

/// Conditions of an audit log read (all must hold).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct AuditFilter {
    /// Earliest `time_ms`.
    pub since_ms: Option<i64>,
    /// Latest `time_ms`.
    pub until_ms: Option<i64>,
    /// `(column, value)`: column is one of [`AUDIT_TEXT_COLUMNS`].
    pub equals: Vec<(&'static str, String)>,
}

const COLUMNS: &str = "time_ms, request_id, client_request_id, trace_id, token_id, peer, protocol, action, client_addr, \
     query_id, statement_fingerprint, statement, tables, columns, rows_out, bytes_out, \
     bytes_scanned, truncated, columns_blocked, columns_masked, values_masked, row_policy, outcome, error, \
     latency_ms";

/// Rows per `INSERT`: 25 parameters each, far below SQLite's (32766) and
/// Postgres' (65535) limits.
const ROWS_PER_INSERT: usize = 64;

impl Store {
    /// Writes `rows` in one transaction, [`ROWS_PER_INSERT`] rows per
    /// statement (one round trip to the store per statement, not per row).
    pub async fn insert_audit(&self, rows: &[AuditRow]) -> Result<()> {
        with_pool!(self, p => {
            let mut tx = p.begin().await?;
            for chunk in rows.chunks(ROWS_PER_INSERT) {
                let mut insert =
                    sqlx::QueryBuilder::new(format!("INSERT INTO audit_log ({COLUMNS}) "));
                insert.push_values(chunk, |mut b, r| {
                    b.push_bind(r.time_ms)
                        .push_bind(&r.request_id)
                        .push_bind(&r.client_request_id)
                        .push_bind(&r.trace_id)
                        .push_bind(&r.token_id)
                        .push_bind(&r.peer)
                        .push_bind(&r.protocol)
                        .push_bind(&r.action)
                        .push_bind(&r.client_addr)
                        .push_bind(&r.query_id)
                        .push_bind(&r.statement_fingerprint)
                        .push_bind(&r.statement)
                        .push_bind(&r.tables)
                        .push_bind(&r.columns)
                        .push_bind(r.rows_out)
                        .push_bind(r.bytes_out)
                        .push_bind(r.bytes_scanned)
                        .push_bind(r.truncated)
                        .push_bind(&r.columns_blocked)
                        .push_bind(&r.columns_masked)
                        .push_bind(r.values_masked)
                        .push_bind(&r.row_policy)
                        .push_bind(&r.outcome)
                        .push_bind(&r.error)
                        .push_bind(r.latency_ms);
                });
                // Only the full-size statement is worth a place in each
                // connection's statement cache; the shorter last chunks
                // (1 to 63 rows) would crowd out the token queries.
                insert
                    .build()
                    .persistent(chunk.len() == ROWS_PER_INSERT)
                    .execute(&mut *tx)
                    .await?;
            }
            tx.commit().await?;
        });
        Ok(())
    }

    /// Records matching `filter`, oldest first, at most `max`.
    pub async fn audit_rows(&self, filter: &AuditFilter, max: usize) -> Result<Vec<AuditRow>> {
        let mut sql = format!("SELECT {COLUMNS} FROM audit_log WHERE time_ms >= $1");
        let mut n = 1;
        if filter.until_ms.is_some() {
            n += 1;
            sql.push_str(&format!(" AND time_ms <= ${n}"));
        }
        for (column, _) in &filter.equals {
            n += 1;
            // `column` comes from AUDIT_TEXT_COLUMNS, never from a client.
            sql.push_str(&format!(" AND {column} = ${n}"));
        }
        n += 1;
        sql.push_str(&format!(" ORDER BY time_ms, id LIMIT ${n}"));
        let limit = i64::try_from(max).unwrap_or(i64::MAX);
        Ok(with_pool!(self, p => {
            let mut q = sqlx::query_as::<_, AuditRow>(&sql).bind(filter.since_ms.unwrap_or(i64::MIN));
            if let Some(u) = filter.until_ms {
                q = q.bind(u);
            }
            for (_, value) in &filter.equals {
                q = q.bind(value);
            }
            q.bind(limit).fetch_all(p).await?
        }))
    }

    /// Per token, the bytes scanned and rows returned recorded since
    /// `since_ms`: `(token_id, bytes_scanned, rows_out)`.
    pub async fn audit_spent_since(&self, since_ms: i64) -> Result<Vec<(String, i64, i64)>> {
        let sql = "SELECT token_id, CAST(SUM(bytes_scanned) AS BIGINT), CAST(SUM(rows_out) AS BIGINT) \
                   FROM audit_log WHERE time_ms >= $1 AND token_id IS NOT NULL GROUP BY token_id";
        Ok(with_pool!(self, p => {
            sqlx::query_as::<_, (String, i64, i64)>(sql)
                .bind(since_ms)
                .fetch_all(p)
                .await?
        }))
    }

    /// Deletes records older than `before_ms`; how many.
    pub async fn prune_audit(&self, before_ms: i64) -> Result<u64> {
        Ok(with_pool!(self, p => {
            sqlx::query("DELETE FROM audit_log WHERE time_ms < $1")
                .bind(before_ms)
                .execute(p)
                .await?
                .rows_affected()
        }))
    }
}
