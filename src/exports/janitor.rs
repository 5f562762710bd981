//! The janitor: fails jobs whose gateway stopped reporting, aborts uploads
//! and deletes objects that failed or cancelled jobs left (recorded in the
//! store before they were created), removes stale staging directories and
//! deletes jobs past `exports.retention`.

use std::time::Duration;

use chrono::{DateTime, Utc};
use sluice_connectors::export::{self, DestinationUrl};

use super::service::Exports;

/// How long a runner may stay silent before its job is taken for dead.
const STALE_AFTER: Duration = Duration::from_secs(15);

impl Exports {
    pub(super) async fn fail_stale(&self, before: DateTime<Utc>) {
        match self.store.fail_stale_export_jobs(before, Utc::now()).await {
            Ok(ids) => {
                for id in ids {
                    tracing::warn!(job_id = %id, "export job marked failed: its gateway stopped while it was running");
                }
            }
            Err(e) => tracing::warn!(error = %e, "cannot check for stale export jobs"),
        }
    }

    pub(super) async fn janitor_pass(&self) {
        let stale = chrono::Duration::from_std(STALE_AFTER).unwrap_or_default();
        self.fail_stale(Utc::now() - stale).await;
        let jobs = match self.store.export_jobs_to_clean().await {
            Ok(j) => j,
            Err(e) => {
                tracing::warn!(error = %e, "cannot list export leftovers");
                return;
            }
        };
        for (id, destination) in jobs {
            self.clean(&id, &destination).await;
        }
        self.clean_staging().await;
        let retention = chrono::Duration::from_std(self.config.retention).unwrap_or_default();
        match self
            .store
            .delete_old_export_jobs(Utc::now() - retention)
            .await
        {
            Ok(0) => {}
            Ok(n) => tracing::info!(jobs = n, "old export jobs deleted (exports.retention)"),
            Err(e) => tracing::warn!(error = %e, "cannot delete old export jobs"),
        }
    }

    /// Removes staging directories of jobs no runner of this gateway has.
    async fn clean_staging(&self) {
        let dir = &self.staging;
        // Never follow a link planted in place of the staging directory.
        match std::fs::symlink_metadata(dir) {
            Ok(m) if m.is_dir() => {}
            Ok(_) => {
                tracing::error!(dir = %dir.display(), "the export staging directory is not a directory (a symbolic link?); it is left alone");
                return;
            }
            Err(_) => return,
        }
        let Ok(entries) = std::fs::read_dir(dir) else {
            return;
        };
        for e in entries.flatten() {
            let id = e.file_name().to_string_lossy().to_string();
            // Only the staging directories of jobs: real directories named
            // by a job id.
            if uuid::Uuid::parse_str(&id).is_err()
                || !std::fs::symlink_metadata(e.path()).is_ok_and(|m| m.is_dir())
            {
                continue;
            }
            if self.live.lock().expect("live lock").contains_key(&id) {
                continue;
            }
            match self.store.export_job(&id).await {
                Ok(Some(j)) if !j.state.is_final() => continue,
                Err(_) => continue,
                _ => {}
            }
            export::cleanup(&self.local, &id, &[], self.call_deadline()).await;
        }
    }

    /// How long one cleanup call may take.
    fn call_deadline(&self) -> Duration {
        self.config.retry_timeout + Duration::from_secs(5)
    }

    /// Aborts and deletes what job `id` left; returns whether all is gone.
    pub(super) async fn clean(&self, id: &str, destination: &str) -> bool {
        let leftovers = match self.store.export_leftovers(id).await {
            Ok(l) => l,
            Err(e) => {
                tracing::warn!(job_id = id, error = %e, "cannot read export leftovers");
                return false;
            }
        };
        let Ok(dest) = DestinationUrl::parse(destination) else {
            return false;
        };
        let Ok(target) = self.store_for(&dest) else {
            return false;
        };
        let gone = export::cleanup(&target, id, &leftovers, self.call_deadline()).await;
        if let Err(e) = self.store.forget_export_leftovers(id, Some(&gone)).await {
            tracing::warn!(job_id = id, error = %e, "cannot update export leftovers");
        }
        let all = gone.len() == leftovers.len();
        if !all {
            tracing::warn!(
                job_id = id,
                left = leftovers.len() - gone.len(),
                "export leftovers remain; the janitor retries every cleanup_interval"
            );
        }
        all
    }
}
