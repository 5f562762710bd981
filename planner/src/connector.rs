//! What the planner asks of connectors beyond DataFusion's `TableProvider`:
//! native vector search ([`NativeVectorSearch`]) and a way to report that a
//! backend is unreachable ([`ConnectorUnavailable`]).
//!
//! Connectors stay policy-free: the planner decides which filters a native
//! search receives (the token's row policy, exactly translatable) and puts
//! the secure-view barrier above whatever the connector returns.

use std::fmt;
use std::sync::Arc;

use async_trait::async_trait;
use datafusion::catalog::{Session, TableProvider};
use datafusion::common::Result;
use datafusion::error::DataFusionError;
use datafusion::logical_expr::Expr;
use datafusion::physical_plan::ExecutionPlan;

use crate::vectors::Metric;

/// Name of the distance column of `vector_search` results.
pub const DISTANCE_COLUMN: &str = "_distance";

/// Name of the distance column below the secure view (a reserved name, so
/// it cannot meet a table column of the same name in the policy's
/// expressions); renamed to [`DISTANCE_COLUMN`] above it.
pub const INTERNAL_DISTANCE_COLUMN: &str = "__sluice_distance";

/// A catalog whose tables are known only once its backend answered (a
/// federation peer): before planning a statement that names it, the
/// governor awaits [`CatalogGate::ready`], so a backend that was never
/// reached answers with its own error instead of "not found".
#[async_trait]
pub trait CatalogGate: Send + Sync + fmt::Debug {
    /// `Ok` when the catalog can be planned against; otherwise the error
    /// the user sees (it must say nothing about data).
    async fn ready(&self) -> Result<()>;
}

/// A table whose backend searches vectors natively (Milvus).
#[async_trait]
pub trait NativeVectorSearch: Send + Sync + fmt::Debug {
    /// The metric the native index of `column` ranks by, if it has one.
    fn index_metric(&self, column: &str) -> Option<Metric>;

    /// Whether the backend evaluates `filter` with exactly DataFusion's
    /// semantics (rows kept iff the expression is TRUE). Only then may it
    /// pre-filter a top-k search.
    fn filter_is_exact(&self, filter: &Expr) -> bool;

    /// The largest `k` one native search returning the columns of
    /// `projection` can answer (bigger searches take the exact path).
    fn max_results(&self, projection: &[usize]) -> usize;

    /// The `k` nearest rows to `vector` in `column` among the rows for which
    /// every one of `filters` is TRUE (each one [`Self::filter_is_exact`]),
    /// ranked by the index's metric. Output: the columns of `projection`
    /// (indices of the table's schema) followed by
    /// [`INTERNAL_DISTANCE_COLUMN`] (`Float64`, in the metric's terms: see
    /// [`Metric`]).
    #[allow(clippy::too_many_arguments)]
    async fn search(
        &self,
        state: &dyn Session,
        projection: &[usize],
        filters: &[Expr],
        column: &str,
        vector: &[f32],
        k: usize,
        metric: Metric,
    ) -> Result<Arc<dyn ExecutionPlan>>;
}

/// Finds the native vector search of a table of one catalog (a connector
/// downcasts its own provider type).
pub type NativeSearchLookup = fn(&Arc<dyn TableProvider>) -> Option<Arc<dyn NativeVectorSearch>>;

/// A backend that cannot be reached (down, or slower than its configured
/// timeout). The message names the catalog and says nothing about data,
/// so the secure view passes it through instead of answering opaquely.
#[derive(Debug, Clone)]
pub struct ConnectorUnavailable {
    /// Catalog name.
    pub catalog: String,
    /// What failed (connection refused, timeout after …).
    pub reason: String,
    /// A federation peer: `reason` is the whole message (it names the peer).
    pub peer: bool,
}

impl fmt::Display for ConnectorUnavailable {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.peer {
            return f.write_str(&self.reason);
        }
        write!(
            f,
            "catalog {} is unavailable: {}",
            self.catalog, self.reason
        )
    }
}

impl std::error::Error for ConnectorUnavailable {}

impl ConnectorUnavailable {
    /// A federation peer's failure; `message` names the peer.
    pub fn peer(catalog: impl Into<String>, message: impl Into<String>) -> Self {
        Self {
            catalog: catalog.into(),
            reason: message.into(),
            peer: true,
        }
    }

    /// As a DataFusion error.
    pub fn into_datafusion(self) -> DataFusionError {
        DataFusionError::External(Box::new(self))
    }

    /// The unavailability inside `e`, if that is what `e` is.
    pub fn find(e: &DataFusionError) -> Option<&ConnectorUnavailable> {
        match e.find_root() {
            DataFusionError::External(inner) => inner.downcast_ref::<ConnectorUnavailable>(),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unavailability_is_found_through_context() {
        let e = ConnectorUnavailable {
            catalog: "vec".into(),
            reason: "timeout after 2s".into(),
            peer: false,
        }
        .into_datafusion()
        .context("scanning");
        let found = ConnectorUnavailable::find(&e).expect("found");
        assert_eq!(found.catalog, "vec");
        assert!(ConnectorUnavailable::find(&DataFusionError::Execution("x".into())).is_none());
    }
}
