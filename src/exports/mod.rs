//! Export jobs: governed query results streamed as Parquet to object
//! storage (`[exports]`, `/v1/exports`, `sluice export`).
//!
//! A submission is checked (destination under one of the token's
//! `export_destinations`, statement planned under the token's policy,
//! destination empty) and stored as `queued`. Each gateway runs up to
//! `concurrency` jobs (at most `max_running_per_token` of one token),
//! claiming queued jobs from the store, so replicas sharing a store share
//! the queue. A running job re-reads its token (revoked or expired: the job
//! fails; checked again every second and before the commit), plans the
//! statement again in the token's scoped session (the one policy pipeline)
//! and streams the result through the export writer; the token's row limit
//! applies.
//!
//! Runners report progress every second; that heartbeat also carries
//! cancellations asked for on other replicas. A job whose runner stopped
//! reporting (its gateway died) is marked failed by the janitor, which also
//! aborts the uploads and deletes the objects that failed or cancelled jobs
//! left behind (recorded in the store before they were created).
//!
//! - `config`: the `[exports]` section;
//! - `service`: the service's state and lifecycle;
//! - `submit`: submissions, job views, cancellation (the API);
//! - `runner`: running a job, its manifest and commit;
//! - `janitor`: stale jobs and leftovers.

mod config;
mod janitor;
mod runner;
mod service;
mod submit;

pub use config::{ExportsConfig, MIN_EXPORT_MEMORY, MIN_FILE_BYTES};
pub use service::Exports;
pub use submit::{ExportRequest, JobView, Refusal};

use sluice_connectors::export::DestinationUrl;

/// Parses and normalises a token's export destination prefixes.
pub fn normalise_destinations(list: &[String]) -> Result<Vec<String>, Vec<String>> {
    let mut out = Vec::new();
    let mut problems = Vec::new();
    for (i, d) in list.iter().enumerate() {
        match DestinationUrl::parse(d) {
            Ok(u) => out.push(u.to_string()),
            Err(e) => problems.push(format!("export_destinations[{i}]: {e}")),
        }
    }
    if problems.is_empty() {
        Ok(out)
    } else {
        Err(problems)
    }
}
