//! What a failure below a secure view looks like to a client.
//!
//! A row rule, a mask or the connector below a secure view may fail with
//! a message that quotes hidden rows, masked values, paths or
//! credentials. Such a failure answers as [`PolicyFailure`], which names
//! the table and nothing else; the detail goes to the log. What says
//! nothing about data passes unchanged: sluice's own refusals, memory
//! limits, an unreachable backend (the user needs to know) and two vector
//! lengths that differ (the user's mistake).

use std::fmt;

use datafusion::error::DataFusionError;

use super::Refusal;
use crate::connector::ConnectorUnavailable;
use crate::vectors::DimensionMismatch;

/// What a secure view answers when its row policy, a mask or its
/// connector scan fails: the table, nothing else (the details, which may
/// quote values of hidden rows or columns, go to the log).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PolicyFailure {
    /// The table (`catalog.namespace.table`).
    pub table: String,
}

impl fmt::Display for PolicyFailure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "reading the table under the token's policy failed ({}); the details are in the server log",
            self.table
        )
    }
}

impl std::error::Error for PolicyFailure {}

/// A failure below the secure view of `table` as the client sees it.
pub(crate) fn opaque_failure(table: &str, e: &DataFusionError) -> DataFusionError {
    let root = e.find_root();
    if let DataFusionError::External(inner) = root {
        // A secure view further down already answered opaquely.
        if let Some(p) = inner.downcast_ref::<PolicyFailure>() {
            return DataFusionError::External(Box::new(p.clone()));
        }
        if let Some(r) = inner.downcast_ref::<Refusal>() {
            return r.clone().into_datafusion();
        }
        if let Some(m) = inner.downcast_ref::<DimensionMismatch>() {
            return m.clone().into();
        }
    }
    if let DataFusionError::ResourcesExhausted(m) = root {
        return DataFusionError::ResourcesExhausted(m.clone());
    }
    let catalog = table.split('.').next().unwrap_or_default().to_string();
    if let Some(down) = ConnectorUnavailable::find(e) {
        metrics::counter!("sluice_connector_errors_total", "catalog" => catalog, "kind" => "unavailable")
            .increment(1);
        return down.clone().into_datafusion();
    }
    metrics::counter!("sluice_connector_errors_total", "catalog" => catalog, "kind" => "failed")
        .increment(1);
    tracing::warn!(table = %table, error = %e, "secure view input failed");
    DataFusionError::External(Box::new(PolicyFailure {
        table: table.to_string(),
    }))
}
