//! Paging a running query: `GET` the `nextUri` for the next page (a
//! retry of the last one answers it again), `DELETE` it to cancel. A query
//! exists only for the token that started it.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::{ConnectInfo, Path, State as AxState};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use sluice_planner::TokenScope;
use sluice_planner::auth::Charge;

use crate::auth::authenticate;
use crate::error::{self, TrinoError};
use crate::query::{self, Cached, Msg, Query, State};
use crate::response::{Page, base_url, gone, render, respond, row_limit_warning};
use crate::{RECEIPT_HEADER, TRUNCATED_HEADER, TrinoState};

/// How long a poll that got a page waits for the end of the result, to
/// answer both at once.
const LOOK_AHEAD: Duration = Duration::from_millis(20);

/// Answers page `token` of `query`: the cached response when it is the
/// last one sent (a retry), the next page when it is the one after,
/// 410 otherwise.
async fn poll(state: &TrinoState, query: &Arc<Query>, token: u64, base: &str) -> Response {
    query.touch();
    // Each poll is a request of its own in the audit log: it names the
    // query and what the query reads.
    if let Some(audit) = sluice_planner::audit::current() {
        audit.update(|a| a.query_id = Some(query.id.clone()));
        if let Some((sql, facts)) = query.facts.get() {
            audit.update(|a| a.statement = Some(sql.clone()));
            audit.record_plan(facts);
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
                data: Option<&[u8]>,
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
        let bytes_scanned = query.take_bytes_scanned();
        sluice_planner::audit::note(|a| {
            a.outcome = Some(sluice_planner::Outcome::Error);
            a.error = Some(err.name.to_string());
            a.bytes_scanned += bytes_scanned;
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
                        let bytes_scanned = query.take_bytes_scanned();
                        sluice_planner::audit::note(|a| a.bytes_scanned += bytes_scanned);
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
                let bytes_scanned = query.take_bytes_scanned();
                sluice_planner::audit::note(|a| a.bytes_scanned += bytes_scanned);
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
pub(crate) fn owned_query(
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

/// The caller of a request about query `id`. Paging or cancelling a live
/// query (known id and slug) is not charged to the token's rate, and only
/// for the token that owns the query; anything else under these routes is.
async fn caller(
    state: &TrinoState,
    headers: &HeaderMap,
    client: SocketAddr,
    id: &str,
    slug: &str,
) -> Result<Arc<TokenScope>, Response> {
    let live = state
        .queries
        .get(id)
        .is_some_and(|q| slug_matches(&q, slug));
    if live {
        let scope = authenticate(state, headers, client, Charge::Continuation).await?;
        if owned_query(state, &scope, id, Some(slug)).is_some() {
            return Ok(scope);
        }
    }
    authenticate(state, headers, client, Charge::Request).await
}

pub(crate) async fn get_page(
    AxState(state): AxState<TrinoState>,
    ConnectInfo(client): ConnectInfo<SocketAddr>,
    Path((id, slug, token)): Path<(String, String, u64)>,
    headers: HeaderMap,
) -> Response {
    let scope = match caller(&state, &headers, client, &id, &slug).await {
        Ok(s) => s,
        Err(r) => return r,
    };
    // Unknown, expired and other tokens' queries answer alike.
    let Some(query) = owned_query(&state, &scope, &id, Some(&slug)) else {
        return gone("query not found or expired");
    };
    let base = base_url(&state, &headers);
    poll(&state, &query, token, &base).await
}

pub(crate) async fn delete_page(
    AxState(state): AxState<TrinoState>,
    ConnectInfo(client): ConnectInfo<SocketAddr>,
    Path((id, slug, _token)): Path<(String, String, u64)>,
    headers: HeaderMap,
) -> Response {
    let scope = match caller(&state, &headers, client, &id, &slug).await {
        Ok(s) => s,
        Err(r) => return r,
    };
    // Idempotent, and the same answer for queries that are unknown,
    // finished or another token's (which are left alone): clients DELETE
    // their last nextUri again when a cursor is closed.
    if owned_query(&state, &scope, &id, Some(&slug)).is_some() {
        state.queries.cancel(&id);
        tracing::info!(query_id = %id, "Trino query cancelled by its client");
    }
    StatusCode::NO_CONTENT.into_response()
}
