//! `GET /v1/info` (server info, no authentication, like Trino) and
//! `GET /v1/query[/{id}]` (the caller's queries; an admin sees all).

use std::net::SocketAddr;

use axum::extract::{ConnectInfo, Path, State as AxState};
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};
use sluice_planner::auth::Charge;

use crate::TrinoState;
use crate::auth::authenticate;
use crate::query::Query;
use crate::response::not_found;

pub(crate) async fn info(AxState(state): AxState<TrinoState>) -> Response {
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

pub(crate) async fn list_queries(
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
        .filter(|q| scope.may_manage(&q.token_id))
        .map(|q| query_json(q))
        .collect();
    axum::Json(Value::Array(list)).into_response()
}

pub(crate) async fn query_info(
    AxState(state): AxState<TrinoState>,
    ConnectInfo(client): ConnectInfo<SocketAddr>,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Response {
    let scope = match authenticate(&state, &headers, client, Charge::Request).await {
        Ok(s) => s,
        Err(r) => return r,
    };
    let query = state
        .queries
        .get(&id)
        .filter(|q| scope.may_manage(&q.token_id));
    match query {
        Some(q) => axum::Json(query_json(&q)).into_response(),
        None => not_found(),
    }
}
