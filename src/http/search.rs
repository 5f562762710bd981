//! `POST /v1/search`: vector search as JSON, through the same pipeline as
//! SQL (the request becomes a `vector_search(...)` statement planned in
//! the caller's scoped session).
//!
//! Request: `{"table": "vec.default.docs", "vector": [0.1, …], "k": 10,
//! "columns": ["id", "title"], "column": "embedding", "metric": "l2",
//! "filter": "category = 'news'"}` (`columns`, `column`, `metric` and
//! `filter` optional; `filter` is a SQL condition applied before the
//! top-k). Answer: `{"columns": [{"name", "type"}], "rows": [[…], …],
//! "truncated": false}`, rows nearest first, each value encoded as in the
//! Trino protocol.

use arrow::record_batch::RecordBatch;
use axum::Json;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use futures::TryStreamExt;
use serde::Deserialize;
use sluice_planner::vector_search::MAX_K;
use sluice_planner::{ErrorKind, Object};

use super::extract::Caller;
use super::{ApiError, AppState};

/// The request body.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct SearchRequest {
    /// `catalog.schema.table` (or shorter, resolved like in SQL).
    pub(super) table: String,
    /// The query vector.
    pub(super) vector: Vec<f32>,
    /// How many rows.
    pub(super) k: usize,
    /// Output columns (default: every visible column plus `_distance`).
    #[serde(default)]
    pub(super) columns: Option<Vec<String>>,
    /// The vector column (default: the table's only one).
    #[serde(default)]
    pub(super) column: Option<String>,
    /// `cosine`, `l2` or `inner_product` (default: the index's, else cosine).
    #[serde(default)]
    pub(super) metric: Option<String>,
    /// A SQL condition on the visible columns, applied before the top-k.
    #[serde(default)]
    pub(super) filter: Option<String>,
}

fn sql_string(s: &str) -> String {
    format!("'{}'", s.replace('\'', "''"))
}

fn sql_ident(s: &str) -> String {
    format!("\"{}\"", s.replace('"', "\"\""))
}

fn optional(s: &Option<String>) -> String {
    s.as_deref()
        .map(sql_string)
        .unwrap_or_else(|| "NULL".into())
}

/// The statement a request stands for.
pub(super) fn statement(req: &SearchRequest) -> Result<String, ApiError> {
    if req.vector.is_empty() {
        return Err(ApiError::BadRequest("vector must not be empty".into()));
    }
    if req.k == 0 || req.k > MAX_K {
        return Err(ApiError::BadRequest(format!(
            "k must be between 1 and {MAX_K}"
        )));
    }
    let columns = match &req.columns {
        None => "*".to_string(),
        Some(c) if c.is_empty() => {
            return Err(ApiError::BadRequest("columns must not be empty".into()));
        }
        Some(c) => c
            .iter()
            .map(|c| sql_ident(c))
            .collect::<Vec<_>>()
            .join(", "),
    };
    let vector = req
        .vector
        .iter()
        .map(|x| format!("{x:?}"))
        .collect::<Vec<_>>()
        .join(", ");
    Ok(format!(
        "SELECT {columns} FROM vector_search({}, [{vector}], {}, {}, {}, {})",
        sql_string(&req.table),
        req.k,
        optional(&req.column),
        optional(&req.metric),
        optional(&req.filter),
    ))
}

/// A planning or execution error as an API answer, by its kind: a table
/// (or its catalog or schema) that does not exist for the token is 404,
/// other mistakes in the request (and statements over a bound) 400, a
/// query over its memory or time limit 422, no free execution slot or a
/// spent budget 429 (the budget with `Retry-After`),
/// an unreachable catalog 503, failures while running 500.
pub(super) fn query_error(e: sluice_planner::Error) -> ApiError {
    if matches!(e.kind(), ErrorKind::ConnectorFailed | ErrorKind::Internal) {
        // The client is told only that it happened; the detail is here.
        tracing::error!(error = %e, "search query failed");
    }
    let message = e.message();
    match e.kind() {
        ErrorKind::NotFound(Object::Catalog | Object::Schema | Object::Table) => {
            ApiError::NotFound(message)
        }
        ErrorKind::NotFound(Object::Column | Object::Function)
        | ErrorKind::MissingName(_)
        | ErrorKind::ReadOnly
        | ErrorKind::Unsupported
        | ErrorKind::InvalidParameters
        | ErrorKind::Syntax(_)
        | ErrorKind::TypeMismatch
        | ErrorKind::Ambiguous
        | ErrorKind::InvalidCast
        | ErrorKind::DivisionByZero
        | ErrorKind::NumericOverflow
        | ErrorKind::InvalidStatement
        | ErrorKind::InvalidPolicy
        | ErrorKind::TooComplex
        | ErrorKind::FunctionLimit => ApiError::BadRequest(message),
        ErrorKind::Unavailable => ApiError::CatalogUnavailable(message),
        ErrorKind::LimitExceeded | ErrorKind::TimeLimit => ApiError::QueryLimit(message),
        ErrorKind::TooManyQueries => ApiError::TooManyRequests(message),
        ErrorKind::BudgetSpent => ApiError::BudgetSpent {
            message,
            retry_after: e.retry_after(),
        },
        ErrorKind::ExecutionFailed
        | ErrorKind::Cancelled
        | ErrorKind::ReadFailed
        | ErrorKind::ConnectorFailed
        | ErrorKind::Internal => ApiError::QueryFailed(message),
    }
}

/// `POST /v1/search`.
pub(super) async fn search(
    State(state): State<AppState>,
    caller: Caller,
    body: Result<Json<SearchRequest>, axum::extract::rejection::JsonRejection>,
) -> Result<Response, ApiError> {
    let Json(req) = body.map_err(ApiError::from)?;
    let sql = statement(&req)?;
    sluice_planner::audit::note(|a| a.statement = Some(sql.clone()));
    let plan = state
        .governor
        .plan(&caller.0, &sql)
        .await
        .map_err(query_error)?;
    let schema = plan.schema();
    let receipt = plan.facts().receipt.clone();
    let audit = sluice_planner::audit::current().unwrap_or_default();
    let stream = plan.execute().await.map_err(query_error)?;
    let truncated = stream.truncation_flag();
    let batches: Vec<RecordBatch> = stream
        .try_collect()
        .await
        .map_err(|e| query_error(sluice_planner::Error::DataFusion(e)))?;
    let mut rows = Vec::new();
    let mut first = true;
    for batch in &batches {
        let n = sluice_trino::encode::write_rows(
            batch,
            0,
            batch.num_rows(),
            &mut rows,
            usize::MAX,
            first,
        )
        .map_err(|e| ApiError::Internal(e.to_string()))?;
        first &= n == 0;
    }
    let columns: Vec<serde_json::Value> = schema
        .fields()
        .iter()
        .map(|f| serde_json::json!({"name": f.name(), "type": f.data_type().to_string()}))
        .collect();
    let truncated = truncated.load(std::sync::atomic::Ordering::Acquire);
    let receipt = receipt.with_truncated(truncated).to_json();
    // The rows are encoded JSON already: spliced in between the parts.
    let mut body = format!(
        "{{\"columns\":{},\"rows\":[",
        serde_json::Value::Array(columns)
    )
    .into_bytes();
    body.extend_from_slice(&rows);
    body.extend_from_slice(
        format!("],\"truncated\":{truncated},\"receipt\":{receipt}}}").as_bytes(),
    );
    audit.update(|a| {
        a.rows = batches.iter().map(|b| b.num_rows() as u64).sum();
        a.bytes = body.len() as u64;
        a.truncated = truncated;
    });
    Ok((
        StatusCode::OK,
        [
            (header::CONTENT_TYPE, "application/json".to_string()),
            (
                header::HeaderName::from_static(sluice_trino::RECEIPT_HEADER),
                receipt,
            ),
        ],
        body,
    )
        .into_response())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn req(json: &str) -> SearchRequest {
        serde_json::from_str(json).unwrap()
    }

    #[test]
    fn statements_quote_everything() {
        let s = statement(&req(
            r#"{"table": "v.d.t'x", "vector": [1, 0.5, -2e-7], "k": 3,
                "columns": ["id", "we\"ird"], "filter": "a = 'b'"}"#,
        ))
        .unwrap();
        assert_eq!(
            s,
            "SELECT \"id\", \"we\"\"ird\" FROM vector_search('v.d.t''x', [1.0, 0.5, -2e-7], 3, \
             NULL, NULL, 'a = ''b''')"
        );
    }

    #[test]
    fn bad_requests() {
        assert!(statement(&req(r#"{"table": "t", "vector": [], "k": 3}"#)).is_err());
        assert!(statement(&req(r#"{"table": "t", "vector": [1], "k": 0}"#)).is_err());
        assert!(statement(&req(r#"{"table": "t", "vector": [1], "k": 100000}"#)).is_err());
        assert!(
            statement(&req(
                r#"{"table": "t", "vector": [1], "k": 1, "columns": []}"#
            ))
            .is_err()
        );
        assert!(
            serde_json::from_str::<SearchRequest>(
                r#"{"table": "t", "vector": [1], "k": 1, "sql": "x"}"#
            )
            .is_err()
        );
    }
}
