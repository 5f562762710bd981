//! `/v1/catalogs/{name}/refresh`: make an Iceberg catalog's tables read
//! the catalog's current metadata at their next query (admin).

use axum::extract::{Path, State};
use axum::http::StatusCode;

use super::{ApiError, AppState, Caller};

/// `POST /v1/catalogs/{name}/refresh`: `204` once every table of catalog
/// `name` will compare its metadata with the catalog at its next query
/// (new snapshots and schema changes are then visible); `404` for a name
/// that is not an Iceberg catalog of this gateway.
pub(super) async fn refresh(
    State(state): State<AppState>,
    caller: Caller,
    Path(name): Path<String>,
) -> Result<StatusCode, ApiError> {
    caller.require_admin()?;
    let (_, handle) = state
        .iceberg
        .iter()
        .find(|(catalog, _)| *catalog == name)
        .ok_or_else(|| ApiError::NotFound("no such Iceberg catalog".into()))?;
    handle.refresh();
    tracing::info!(catalog = %name, "iceberg metadata refresh requested");
    Ok(StatusCode::NO_CONTENT)
}
