//! The API side of exports: a submission checked and queued, jobs shown
//! to their token (admins: every job), cancellation.

use std::collections::HashSet;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use serde_json::json;
use sluice_connectors::export::{self, DestinationUrl, ExportCompression, ExportError, Scheme};
use sluice_planner::TokenScope;

use super::config::MIN_FILE_BYTES;
use super::service::Exports;
use crate::store::exports::{Enqueued, ExportJob, JobState, NewJob};

/// A submission (`POST /v1/exports`).
#[derive(Debug, Clone, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ExportRequest {
    /// The statement.
    pub sql: String,
    /// `s3://bucket/prefix` or `file:///path`.
    pub destination: String,
    /// `zstd` (default), `snappy`, `gzip`, `lz4` or `none`.
    #[serde(default)]
    pub compression: Option<String>,
    /// File size limit (default `[exports] max_file_bytes`).
    #[serde(default)]
    pub max_file_bytes: Option<u64>,
}

/// Why a request was refused (mapped to HTTP statuses by the API).
#[derive(Debug, thiserror::Error)]
pub enum Refusal {
    /// 400.
    #[error("{0}")]
    Invalid(String),
    /// 403.
    #[error("{0}")]
    Forbidden(String),
    /// 404.
    #[error("{0}")]
    NotFound(String),
    /// 409.
    #[error("{0}")]
    Conflict(String),
    /// 429.
    #[error("{0}")]
    TooMany(String),
    /// 503: queue full or object store unreachable.
    #[error("{0}")]
    Unavailable(String),
    /// The statement could not be planned.
    #[error("{0}")]
    Query(sluice_planner::Error),
    /// The store failed.
    #[error(transparent)]
    Store(#[from] crate::error::Error),
}

/// The job as the API shows it, with live progress when this gateway runs it.
#[derive(Debug, Clone, serde::Serialize)]
pub struct JobView {
    id: String,
    token_id: String,
    state: JobState,
    sql: String,
    destination: String,
    compression: String,
    max_file_bytes: u64,
    row_limit: u64,
    created_at: DateTime<Utc>,
    started_at: Option<DateTime<Utc>>,
    finished_at: Option<DateTime<Utc>>,
    rows: u64,
    bytes: u64,
    files: u64,
    truncated: bool,
    progress: serde_json::Value,
    error: Option<String>,
    cancel_requested: bool,
    manifest: Option<String>,
    /// The manifest's content (succeeded jobs).
    summary: Option<serde_json::Value>,
}

impl JobView {
    /// The job's id.
    pub fn id(&self) -> &str {
        &self.id
    }
}

impl Exports {
    /// Checks and queues a job for `scope` (whose token allows
    /// `allowed` destination prefixes).
    pub async fn submit(
        &self,
        scope: &Arc<TokenScope>,
        allowed: &[String],
        req: ExportRequest,
    ) -> Result<JobView, Refusal> {
        let dest = DestinationUrl::parse(req.destination.trim()).map_err(Refusal::Invalid)?;
        if dest.scheme == Scheme::File && dest.segments.is_empty() {
            return Err(Refusal::Invalid(
                "file:/// is the export root itself: name a directory below it".into(),
            ));
        }
        if !dest.is_allowed_by(allowed) {
            return Err(Refusal::Forbidden(format!(
                "this token may not export to {dest}"
            )));
        }
        let compression: ExportCompression = match &req.compression {
            None => ExportCompression::default(),
            Some(c) => c.parse().map_err(Refusal::Invalid)?,
        };
        let max_file_bytes = req.max_file_bytes.unwrap_or(self.config.max_file_bytes);
        if max_file_bytes < MIN_FILE_BYTES {
            return Err(Refusal::Invalid(format!(
                "max_file_bytes must be at least {MIN_FILE_BYTES}"
            )));
        }
        if req.sql.trim().is_empty() {
            return Err(Refusal::Invalid("sql must not be empty".into()));
        }
        // Planned now so mistakes (and tables the token may not see) are
        // answered at once; planned again when the job runs.
        sluice_planner::audit::note(|a| a.statement = Some(req.sql.clone()));
        let plan = self
            .governor
            .plan(scope, &req.sql)
            .await
            .map_err(Refusal::Query)?;
        if let Some(peer) = self.peer_read(&plan) {
            return Err(Refusal::Invalid(format!(
                "exports cannot read federation peers ({peer}): a peer's rows are never stored at this gateway"
            )));
        }
        let schema = plan.schema();
        let mut names = HashSet::new();
        if let Some(dup) = schema.fields().iter().find(|f| !names.insert(f.name())) {
            return Err(Refusal::Invalid(format!(
                "the result has more than one column named \"{}\": name them apart with AS",
                dup.name()
            )));
        }

        // Each file carries the schema and row group metadata.
        let footer = 4096 + 256 * schema.fields().len() as u64;
        if max_file_bytes < 2 * footer {
            return Err(Refusal::Invalid(format!(
                "max_file_bytes must be at least {} for a result of {} columns",
                2 * footer,
                schema.fields().len()
            )));
        }

        let overlaps = |d: &String| {
            DestinationUrl::parse(d)
                .is_ok_and(|other| other.is_within(&dest) || dest.is_within(&other))
        };
        if self
            .store
            .live_export_destinations()
            .await?
            .iter()
            .any(overlaps)
        {
            return Err(Refusal::Conflict(format!(
                "another export job is writing to {dest}"
            )));
        }
        // An earlier job's cleanup still owns keys there.
        if self
            .store
            .export_jobs_to_clean()
            .await?
            .iter()
            .any(|(_, d)| overlaps(d))
        {
            return Err(Refusal::Conflict(format!(
                "an earlier export job's cleanup at {dest} is not finished; try again later"
            )));
        }
        let target = self.store_for(&dest).map_err(unreachable_store)?;
        target
            .check_destination(&dest.path())
            .map_err(|e| Refusal::Conflict(format!("destination {dest}: {e}")))?;
        match export::inside_export(&target, &dest.path()).await {
            Ok(false) => {}
            Ok(true) => {
                return Err(Refusal::Conflict(format!(
                    "destination {dest} lies inside an earlier export (a _manifest.json above it)"
                )));
            }
            Err(e) => return Err(unreachable_store(e)),
        }
        match export::is_empty(&target, &dest.path()).await {
            Ok(true) => {}
            Ok(false) => {
                return Err(Refusal::Conflict(format!(
                    "destination {dest} is not empty"
                )));
            }
            Err(e) => return Err(unreachable_store(e)),
        }

        let job = NewJob {
            id: uuid::Uuid::new_v4().to_string(),
            token_id: scope.token_id.clone(),
            statement: req.sql,
            destination: dest.to_string(),
            compression: compression.as_str().to_string(),
            max_file_bytes,
            row_limit: scope.row_limit,
        };
        let enqueued = self
            .store
            .enqueue_export_job(
                &job,
                Utc::now(),
                self.config.max_jobs_per_token,
                self.config.max_queued,
            )
            .await;
        match enqueued {
            Ok(Enqueued::Queued) => {}
            Ok(Enqueued::TokenBusy) => {
                return Err(Refusal::TooMany(format!(
                    "this token already has {} export jobs queued or running",
                    self.config.max_jobs_per_token
                )));
            }
            Ok(Enqueued::QueueFull) => {
                return Err(Refusal::Unavailable("the export queue is full".into()));
            }
            Err(crate::error::Error::Store(sqlx::Error::Database(d)))
                if d.is_unique_violation() =>
            {
                return Err(Refusal::Conflict(format!(
                    "another export job is writing to {dest}"
                )));
            }
            Err(e) => return Err(e.into()),
        }
        tracing::info!(job_id = %job.id, token_id = %job.token_id, destination = %job.destination, "export job queued");
        self.wake.notify_waiters();
        let stored = self
            .store
            .export_job(&job.id)
            .await?
            .ok_or_else(|| Refusal::NotFound(format!("export job '{}' not found", job.id)))?;
        Ok(self.view(stored))
    }

    /// A job of `scope` (any job for admins).
    pub async fn get(&self, scope: &TokenScope, id: &str) -> Result<JobView, Refusal> {
        Ok(self.view(self.owned(scope, id).await?))
    }

    async fn owned(&self, scope: &TokenScope, id: &str) -> Result<ExportJob, Refusal> {
        match self.store.export_job(id).await? {
            Some(j) if scope.may_manage(&j.token_id) => Ok(j),
            _ => Err(Refusal::NotFound(format!("export job '{id}' not found"))),
        }
    }

    /// The newest jobs of `scope` (every token's for an admin with `all`).
    pub async fn list(&self, scope: &TokenScope, all: bool) -> Result<Vec<JobView>, Refusal> {
        let token = (!(all && scope.is_admin())).then_some(scope.token_id.as_str());
        let jobs = self.store.list_export_jobs(token, 200).await?;
        // Manifests only in single-job answers.
        Ok(jobs
            .into_iter()
            .map(|j| JobView {
                summary: None,
                ..self.view(j)
            })
            .collect())
    }

    /// Cancels a job; waits a little for a running one to stop.
    pub async fn cancel(&self, scope: &TokenScope, id: &str) -> Result<JobView, Refusal> {
        let job = self.owned(scope, id).await?;
        if job.state.is_final() {
            return Err(Refusal::Conflict(format!(
                "export job '{id}' has already {}",
                job.state.as_str()
            )));
        }
        let mut job = self
            .store
            .cancel_export_job(id, Utc::now())
            .await?
            .ok_or_else(|| Refusal::NotFound(format!("export job '{id}' not found")))?;
        let local = self
            .live
            .lock()
            .expect("live lock")
            .get(id)
            .map(|l| Arc::clone(&l.cancel));
        if let Some(cancel) = local {
            cancel.notify_one();
            let deadline = Instant::now() + Duration::from_secs(10);
            while Instant::now() < deadline && !job.state.is_final() {
                tokio::time::sleep(Duration::from_millis(50)).await;
                if let Some(j) = self.store.export_job(id).await? {
                    job = j;
                }
            }
        }
        Ok(self.view(job))
    }

    fn view(&self, job: ExportJob) -> JobView {
        let live = self.live.lock().expect("live lock");
        let (rows, bytes, files, elapsed) = match live.get(&job.id) {
            Some(l) if job.state == JobState::Running => (
                l.progress.rows.load(Ordering::Relaxed),
                l.progress.bytes.load(Ordering::Relaxed),
                l.progress.files.load(Ordering::Relaxed),
                l.started.elapsed(),
            ),
            _ => {
                let end = job.finished_at.unwrap_or_else(Utc::now);
                let elapsed = job
                    .started_at
                    .map(|s| (end - s).to_std().unwrap_or_default())
                    .unwrap_or_default();
                (job.rows, job.bytes, job.files, elapsed)
            }
        };
        drop(live);
        let secs = elapsed.as_secs_f64();
        let rate = |n: u64| if secs > 0.0 { n as f64 / secs } else { 0.0 };
        let summary = job
            .manifest
            .as_deref()
            .and_then(|m| serde_json::from_str(m).ok());
        JobView {
            manifest: (job.state == JobState::Succeeded)
                .then(|| format!("{}/{}", job.destination, export::MANIFEST_NAME)),
            summary,
            progress: json!({
                "rows": rows,
                "bytes": bytes,
                "files": files,
                "elapsed_ms": elapsed.as_millis() as u64,
                "rows_per_second": rate(rows),
                "bytes_per_second": rate(bytes),
            }),
            rows,
            bytes,
            files,
            id: job.id,
            token_id: job.token_id,
            state: job.state,
            sql: job.statement,
            destination: job.destination,
            compression: job.compression,
            max_file_bytes: job.max_file_bytes,
            row_limit: job.row_limit,
            created_at: job.created_at,
            started_at: job.started_at,
            finished_at: job.finished_at,
            truncated: job.truncated,
            error: job.error,
            cancel_requested: job.cancel_requested,
        }
    }
}

fn unreachable_store(e: ExportError) -> Refusal {
    tracing::warn!(error = %e, "export destination unreachable");
    Refusal::Unavailable("the destination's object store is unavailable".into())
}
