//! Export jobs: governed query results streamed as Parquet to object
//! storage (`[exports]`, `/v1/exports`, `sluice export`).
//!
//! A submission is checked (destination under one of the token's
//! `export_destinations`, statement planned under the token's policy,
//! destination empty) and stored as `queued`. Each gateway runs up to
//! `concurrency` jobs (at most `max_running_per_token` of one token),
//! claiming queued jobs from the store, so replicas sharing a store share
//! the queue. A running job re-reads its
//! token (revoked or expired: the job fails; checked again every second
//! and before the commit), plans the statement again in
//! the token's scoped session (the one policy pipeline) and streams the
//! result through the export writer; the token's row limit applies.
//!
//! Runners report progress every second; that heartbeat also carries
//! cancellations asked for on other replicas. A job whose runner stopped
//! reporting (its gateway died) is marked failed by the janitor, which also
//! aborts the uploads and deletes the objects that failed or cancelled jobs
//! left behind (recorded in the store before they were created).

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use hmac::{Hmac, Mac as _};
use serde_json::json;
use sha2::{Digest as _, Sha256};
use sluice_connectors::export::{
    self, DestinationUrl, ExportCompression, ExportError, ExportStore, Leftover, Progress,
    S3Options, Scheme, UploadJournal, WriteOptions,
};
use sluice_planner::{Governor, TokenScope};
use tokio::sync::{Notify, watch};

use crate::config::{ExportsConfig, MIN_FILE_BYTES};
use crate::store::Store;
use crate::store::exports::{Enqueued, ExportJob, JobResult, JobState, NewJob};

/// How often a runner reports progress (and learns of cancellations).
const HEARTBEAT: Duration = Duration::from_secs(1);
/// How long a failed or cancelled job waits for its cleanup before it
/// ends anyway (the janitor finishes the cleanup).
const CLEANUP_WAIT: Duration = Duration::from_secs(5);
/// Rows per record batch of an export's query.
const EXPORT_BATCH_ROWS: usize = 2048;
/// How long a runner may stay silent before its job is taken for dead.
const STALE_AFTER: Duration = Duration::from_secs(15);

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

/// A running job on this gateway.
struct Live {
    cancel: Arc<Notify>,
    progress: Arc<Progress>,
    started: Instant,
}

/// The export service of one gateway.
pub struct Exports {
    store: Store,
    governor: Arc<Governor>,
    config: ExportsConfig,
    instance: String,
    fingerprint_key: Vec<u8>,
    local: ExportStore,
    s3: Mutex<HashMap<String, ExportStore>>,
    wake: Notify,
    live: Mutex<HashMap<String, Live>>,
    tasks: Mutex<Vec<tokio::task::JoinHandle<()>>>,
    /// `<root>/.sluice-staging`.
    staging: PathBuf,
    /// Where each job run's audit record goes (set by [`Exports::start`]).
    audit: std::sync::OnceLock<Arc<crate::audit::AuditLog>>,
}

impl std::fmt::Debug for Exports {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Exports")
            .field("instance", &self.instance)
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
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

struct Journal {
    store: Store,
    job_id: String,
}

#[async_trait]
impl UploadJournal for Journal {
    async fn record(&self, leftover: &Leftover) -> Result<(), String> {
        self.store
            .record_export_leftover(&self.job_id, leftover)
            .await
            .map_err(|e| e.to_string())
    }
}

/// How a run ended without succeeding.
enum Stop {
    Failed(String),
    Cancelled,
}

/// Why a job's token no longer allows it.
enum Refused {
    /// Revoked, expired, or the destination is no longer allowed.
    Definitely(String),
    /// The token store did not answer.
    Unknown,
}

impl Refused {
    fn stop(self) -> Stop {
        Stop::Failed(match self {
            Refused::Definitely(why) => why,
            Refused::Unknown => "the token store is unavailable".into(),
        })
    }
}

/// A written, uncommitted export.
struct Prepared {
    staged: export::Staged,
    manifest: String,
    target: ExportStore,
    prefix: object_store::path::Path,
    truncated: bool,
}

impl Exports {
    /// The service; `fingerprint_key` keys the manifests' policy fingerprints.
    pub fn new(
        store: Store,
        governor: Arc<Governor>,
        config: ExportsConfig,
        fingerprint_key: Vec<u8>,
    ) -> crate::error::Result<Self> {
        let root = config
            .root
            .clone()
            .unwrap_or_else(|| PathBuf::from("exports"));
        let local = ExportStore::local(&root)
            .map_err(|e| crate::error::Error::Config(format!("exports.root: {e}")))?;
        let staging = root.join(export::STAGING_DIR);
        std::fs::create_dir_all(&staging).map_err(crate::error::Error::io(&staging))?;
        if !std::fs::symlink_metadata(&staging).is_ok_and(|m| m.is_dir()) {
            return Err(crate::error::Error::Config(format!(
                "exports.root: {} must be a directory, not a symbolic link",
                staging.display()
            )));
        }
        Ok(Self {
            store,
            governor,
            config,
            instance: uuid::Uuid::new_v4().to_string(),
            fingerprint_key,
            local,
            s3: Mutex::new(HashMap::new()),
            wake: Notify::new(),
            live: Mutex::new(HashMap::new()),
            tasks: Mutex::new(Vec::new()),
            staging,
            audit: std::sync::OnceLock::new(),
        })
    }

    fn store_for(&self, dest: &DestinationUrl) -> Result<ExportStore, ExportError> {
        match dest.scheme {
            Scheme::File => Ok(self.local.clone()),
            Scheme::S3 => {
                let bucket = dest.bucket.clone().unwrap_or_default();
                let mut cache = self.s3.lock().expect("s3 cache lock");
                if let Some(s) = cache.get(&bucket) {
                    return Ok(s.clone());
                }
                let s3 = &self.config.s3;
                let store = ExportStore::s3(
                    &bucket,
                    &S3Options {
                        endpoint: s3.endpoint.clone(),
                        region: s3.region.clone(),
                        access_key_id: s3.access_key_id.clone(),
                        secret_access_key: s3
                            .secret_access_key
                            .as_ref()
                            .map(|s| s.expose().to_string()),
                        path_style: s3.path_style,
                        retry_timeout: self.config.retry_timeout,
                    },
                )?;
                cache.insert(bucket, store.clone());
                Ok(store)
            }
        }
    }

    /// The federation peer a plan reads, if any (DESIGN §7: no remote
    /// data is persisted at the receiver, so exports refuse them).
    fn peer_read(&self, plan: &sluice_planner::GovernedPlan) -> Option<String> {
        plan.secure_views().iter().find_map(|v| {
            let catalog = v.table.split('.').next().unwrap_or_default();
            self.governor.is_gated(catalog).then(|| catalog.to_string())
        })
    }

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
        let plan = self
            .governor
            .plan(scope, &req.sql)
            .await
            .map_err(Refusal::Query)?;
        if let Some(audit) = sluice_planner::audit::current() {
            audit.planned(&req.sql, &plan.facts());
        }
        if let Some(peer) = self.peer_read(&plan) {
            return Err(Refusal::Invalid(format!(
                "exports cannot read federation peers ({peer}): a peer's rows are never stored at this gateway"
            )));
        }
        let schema = plan.schema();
        let mut names = std::collections::HashSet::new();
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
            Some(j) if j.token_id == scope.token_id || scope.admin => Ok(j),
            _ => Err(Refusal::NotFound(format!("export job '{id}' not found"))),
        }
    }

    /// The newest jobs of `scope` (every token's for an admin with `all`).
    pub async fn list(&self, scope: &TokenScope, all: bool) -> Result<Vec<JobView>, Refusal> {
        let token = (!(all && scope.admin)).then_some(scope.token_id.as_str());
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

    /// Starts the runners and the janitor; they stop when `shutdown` says so.
    /// Each job run is audited to `audit` when it ends.
    pub fn start(
        self: &Arc<Self>,
        shutdown: watch::Receiver<bool>,
        audit: Arc<crate::audit::AuditLog>,
    ) {
        let _ = self.audit.set(audit);
        let this = Arc::clone(self);
        let janitor = tokio::spawn(async move {
            // A single embedded gateway: whatever was running died with the
            // previous process. Done before any runner claims a job.
            if this.store.is_embedded() {
                this.fail_stale(Utc::now()).await;
            }
            for _ in 0..this.config.concurrency {
                let runner = Arc::clone(&this);
                let handle = tokio::spawn(runner.runner(shutdown.clone()));
                this.tasks.lock().expect("tasks lock").push(handle);
            }
            let mut stop = shutdown;
            loop {
                this.janitor_pass().await;
                tokio::select! {
                    _ = tokio::time::sleep(this.config.cleanup_interval) => {}
                    _ = stop.wait_for(|s| *s) => return,
                }
            }
        });
        self.tasks.lock().expect("tasks lock").push(janitor);
    }

    /// After the shutdown signal: waits (at most `max`) for the runners to
    /// end their jobs (a commit completes, a running job is failed and
    /// cleaned up) so the store is closed after the last record.
    pub async fn stopped(&self, max: Duration) {
        let deadline = tokio::time::Instant::now() + max;
        loop {
            let handle = self.tasks.lock().expect("tasks lock").pop();
            let Some(handle) = handle else {
                return;
            };
            if tokio::time::timeout_at(deadline, handle).await.is_err() {
                tracing::warn!(
                    "export runners did not stop in time; the janitor will fail their jobs"
                );
                return;
            }
        }
    }

    /// One runner: claims queued jobs and runs them, one at a time.
    async fn runner(self: Arc<Self>, mut stop: watch::Receiver<bool>) {
        loop {
            if *stop.borrow() {
                return;
            }
            let claimed = self
                .store
                .claim_export_job(
                    &self.instance,
                    Utc::now(),
                    self.config.max_running_per_token,
                )
                .await;
            match claimed {
                Ok(Some(job)) => self.run(job, stop.clone()).await,
                Ok(None) => {
                    let woken = self.wake.notified();
                    tokio::select! {
                        _ = woken => {}
                        _ = tokio::time::sleep(Duration::from_secs(1)) => {}
                        _ = stop.wait_for(|s| *s) => return,
                    }
                }
                Err(e) => {
                    tracing::warn!(error = %e, "cannot claim an export job");
                    tokio::time::sleep(Duration::from_secs(2)).await;
                }
            }
        }
    }

    async fn fail_stale(&self, before: DateTime<Utc>) {
        match self.store.fail_stale_export_jobs(before, Utc::now()).await {
            Ok(ids) => {
                for id in ids {
                    tracing::warn!(job_id = %id, "export job marked failed: its gateway stopped while it was running");
                }
            }
            Err(e) => tracing::warn!(error = %e, "cannot check for stale export jobs"),
        }
    }

    async fn janitor_pass(&self) {
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
    async fn clean(&self, id: &str, destination: &str) -> bool {
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

    async fn run(self: &Arc<Self>, job: ExportJob, mut shutdown: watch::Receiver<bool>) {
        let progress = Arc::new(Progress::default());
        let cancel = Arc::new(Notify::new());
        // Why the heartbeat stopped the job (none: a cancellation).
        let reason: Arc<Mutex<Option<String>>> = Arc::default();
        self.live.lock().expect("live lock").insert(
            job.id.clone(),
            Live {
                cancel: Arc::clone(&cancel),
                progress: Arc::clone(&progress),
                started: Instant::now(),
            },
        );
        tracing::info!(job_id = %job.id, token_id = %job.token_id, destination = %job.destination, "export job started");
        let heartbeat = {
            let this = Arc::clone(self);
            let job = job.clone();
            let progress = Arc::clone(&progress);
            let cancel = Arc::clone(&cancel);
            let reason = Arc::clone(&reason);
            tokio::spawn(async move {
                loop {
                    tokio::time::sleep(HEARTBEAT).await;
                    let asked = this
                        .store
                        .export_heartbeat(
                            &job.id,
                            progress.rows.load(Ordering::Relaxed),
                            progress.bytes.load(Ordering::Relaxed),
                            progress.files.load(Ordering::Relaxed),
                            Utc::now(),
                        )
                        .await;
                    match asked {
                        Ok(true) => cancel.notify_one(),
                        Ok(false) => {}
                        Err(e) => {
                            tracing::warn!(job_id = %job.id, error = %e, "export heartbeat failed")
                        }
                    }
                    // Revocation (or a narrower export_destinations) stops
                    // a running export within a heartbeat.
                    // (A store that does not answer is not a revocation:
                    // the next beat checks again.)
                    if let Err(Refused::Definitely(why)) = this.token_allows(&job).await {
                        *reason.lock().expect("reason lock") = Some(why);
                        cancel.notify_one();
                    }
                }
            })
        };
        let max_run_time = self.config.max_run_time;
        let audit = crate::audit::handle_for(&job.id);
        audit.update(|a| {
            a.token_id = Some(job.token_id.clone());
            a.statement = Some(job.statement.clone());
        });
        let audit_info = crate::audit::export_info(Instant::now());
        let prepared = tokio::select! {
            r = sluice_planner::audit::with_handle(audit.clone(), self.prepare(&job, &progress)) => r,
            _ = cancel.notified() => Err(match reason.lock().expect("reason lock").take() {
                Some(why) => Stop::Failed(why),
                None => Stop::Cancelled,
            }),
            _ = shutdown.wait_for(|s| *s) => Err(Stop::Failed("the gateway shut down while the job was running".into())),
            _ = tokio::time::sleep(max_run_time) => Err(Stop::Failed(format!(
                "the job ran longer than exports.max_run_time ({}s)",
                max_run_time.as_secs()
            ))),
        };
        // The commit is never interrupted half-way: a cancellation that
        // arrives now comes too late.
        let outcome = match prepared {
            Ok(p) => self.commit(&job, p).await,
            Err(stop) => Err(stop),
        };
        heartbeat.abort();
        let figures = |truncated| JobResult {
            rows: progress.rows.load(Ordering::Relaxed),
            bytes: progress.bytes.load(Ordering::Relaxed),
            files: progress.files.load(Ordering::Relaxed),
            truncated,
            ..JobResult::default()
        };
        let (state, result) = match outcome {
            Ok((manifest, truncated)) => {
                if let Err(e) = self.store.forget_export_leftovers(&job.id, None).await {
                    tracing::warn!(job_id = %job.id, error = %e, "cannot forget committed export objects");
                }
                (
                    JobState::Succeeded,
                    JobResult {
                        manifest: Some(manifest),
                        ..figures(truncated)
                    },
                )
            }
            Err(stop) => {
                // Cleaned up now when the object store answers; when it
                // hangs, the janitor finishes the job's cleanup later.
                let cleaning = self.clean(&job.id, &job.destination);
                if tokio::time::timeout(CLEANUP_WAIT, cleaning).await.is_err() {
                    tracing::warn!(job_id = %job.id, "export cleanup is slow; the janitor will finish it");
                }
                match stop {
                    Stop::Cancelled => (
                        JobState::Cancelled,
                        JobResult {
                            error: Some("cancelled".into()),
                            ..figures(false)
                        },
                    ),
                    Stop::Failed(message) => (
                        JobState::Failed,
                        JobResult {
                            error: Some(message),
                            ..figures(false)
                        },
                    ),
                }
            }
        };
        match self
            .store
            .finish_export_job(&job.id, state, &result, Utc::now())
            .await
        {
            Ok(true) => {}
            Ok(false) => tracing::warn!(job_id = %job.id, "export job was no longer running"),
            Err(e) => {
                tracing::error!(job_id = %job.id, error = %e, "cannot record the end of an export job")
            }
        }
        self.live.lock().expect("live lock").remove(&job.id);
        if let Some(log) = self.audit.get() {
            audit.update(|a| {
                a.rows = result.rows;
                a.bytes = result.bytes;
                a.truncated = result.truncated;
                // The job record holds the message; the audit log only
                // the state (messages may quote the statement).
                a.error = (state != JobState::Succeeded).then(|| state.as_str().to_string());
            });
            let outcome = match state {
                JobState::Succeeded => sluice_planner::Outcome::Ok,
                JobState::Cancelled => sluice_planner::Outcome::Cancelled,
                _ => sluice_planner::Outcome::Error,
            };
            log.record(&audit_info, audit.snapshot(), outcome);
        }
        metrics::counter!("sluice_export_jobs_total", "state" => state.as_str()).increment(1);
        if state == JobState::Succeeded {
            metrics::counter!("sluice_export_rows_total").increment(result.rows);
            metrics::counter!("sluice_export_bytes_total").increment(result.bytes);
        }
        tracing::info!(
            job_id = %job.id,
            state = state.as_str(),
            rows = result.rows,
            bytes = result.bytes,
            files = result.files,
            error = result.error.as_deref().unwrap_or(""),
            "export job ended"
        );
    }

    /// The token of `job` as it is now: active, and still allowed to
    /// export to the job's destination.
    async fn token_allows(&self, job: &ExportJob) -> Result<crate::token::TokenRecord, Refused> {
        let record = match self.store.get_token(&job.token_id).await {
            Ok(Some(r)) if r.is_active(Utc::now()) => r,
            Ok(_) => {
                return Err(Refused::Definitely(
                    "the token was revoked or has expired".into(),
                ));
            }
            Err(e) => {
                tracing::warn!(job_id = %job.id, error = %e, "cannot re-read an export job's token");
                return Err(Refused::Unknown);
            }
        };
        let allowed = DestinationUrl::parse(&job.destination)
            .is_ok_and(|d| d.is_allowed_by(&record.export_destinations));
        if allowed {
            Ok(record)
        } else {
            Err(Refused::Definitely(
                "the token may no longer export to this destination".into(),
            ))
        }
    }

    /// A failure as the job's owner sees it: object store and journal
    /// details (endpoints, upload ids, server messages) go to the log only.
    fn failure(job_id: &str, e: ExportError) -> Stop {
        match e {
            ExportError::Query(q) => Stop::Failed(sluice_planner::Error::DataFusion(q).message()),
            ExportError::Storage(detail) => {
                tracing::warn!(job_id, error = %detail, "export object store failure");
                Stop::Failed(format!(
                    "the object store failed (details in the gateway log, job {job_id})"
                ))
            }
            ExportError::Journal(detail) | ExportError::Encode(detail) => {
                tracing::warn!(job_id, error = %detail, "export failure");
                Stop::Failed(format!(
                    "the export failed inside the gateway (details in its log, job {job_id})"
                ))
            }
            other => Stop::Failed(other.to_string()),
        }
    }

    /// Plans and writes (everything but the commit); cancellable.
    async fn prepare(&self, job: &ExportJob, progress: &Arc<Progress>) -> Result<Prepared, Stop> {
        let record = self.token_allows(job).await.map_err(Refused::stop)?;
        let dest = DestinationUrl::parse(&job.destination)
            .map_err(|e| Stop::Failed(format!("stored destination: {e}")))?;
        let scope = Arc::new(record.scope());
        let plan = self
            .governor
            .plan(&scope, &job.statement)
            .await
            .map_err(|e| Stop::Failed(e.message()))?;
        if let Some(audit) = sluice_planner::audit::current() {
            audit.planned(&job.statement, &plan.facts());
        }
        if let Some(peer) = self.peer_read(&plan) {
            return Err(Stop::Failed(format!(
                "exports cannot read federation peers ({peer})"
            )));
        }
        let views = plan.secure_views();
        let schema = plan.schema();
        // Smaller batches than queries use: the writer's channels hold a
        // few of them, and wide rows make 8192-row batches large.
        plan.set_batch_size(EXPORT_BATCH_ROWS);
        let stream = plan
            .execute()
            .await
            .map_err(|e| Stop::Failed(e.message()))?;
        let truncated = stream.truncation_flag();
        let fail = |e| Self::failure(&job.id, e);
        let target = self.store_for(&dest).map_err(fail)?;
        let prefix = dest.path();
        target.check_destination(&prefix).map_err(fail)?;
        if !export::is_empty(&target, &prefix).await.map_err(fail)? {
            return Err(fail(ExportError::NotEmpty(dest.to_string())));
        }
        let compression: ExportCompression = job.compression.parse().map_err(Stop::Failed)?;
        let options = WriteOptions {
            compression,
            max_file_bytes: job.max_file_bytes,
            memory_limit: usize::try_from(self.config.memory_limit).unwrap_or(usize::MAX),
            row_group_rows: self.config.row_group_rows,
            max_bytes: self.config.max_bytes_per_job,
            max_files: self.config.max_files_per_job,
        };
        let journal: Arc<dyn UploadJournal> = Arc::new(Journal {
            store: self.store.clone(),
            job_id: job.id.clone(),
        });
        let staged = export::write(
            &target,
            &prefix,
            &job.id,
            Box::pin(stream),
            &options,
            &journal,
            progress,
        )
        .await
        .map_err(fail)?;
        let truncated = truncated.load(Ordering::Acquire);
        let files = staged.files();
        let omitted: Vec<serde_json::Value> = views
            .iter()
            .flat_map(|v| {
                v.withheld_columns
                    .iter()
                    .map(|(c, why)| json!({"table": v.table, "column": c, "reason": why}))
            })
            .collect();
        let manifest = json!({
            "version": 1,
            "job_id": job.id,
            "token_id": job.token_id,
            "created_at": job.created_at,
            "finished_at": Utc::now(),
            "statement": job.statement,
            "statement_fingerprint": format!("sha256:{}", hex::encode(Sha256::digest(job.statement.as_bytes()))),
            "policy_fingerprint": self.policy_fingerprint(&scope, &views),
            "rows": files.iter().map(|f| f.rows).sum::<u64>(),
            "bytes": files.iter().map(|f| f.bytes).sum::<u64>(),
            "truncated": truncated,
            "row_limit": scope.row_limit,
            "compression": compression.as_str(),
            "schema": schema.fields().iter().map(|f| json!({
                "name": f.name(),
                "type": f.data_type().to_string(),
                "nullable": f.is_nullable(),
            })).collect::<Vec<_>>(),
            "files": files.iter().map(|f| json!({"path": f.name, "rows": f.rows, "bytes": f.bytes})).collect::<Vec<_>>(),
            "omitted_columns": omitted,
        });
        let manifest = serde_json::to_string_pretty(&manifest)
            .map_err(|e| Stop::Failed(format!("manifest: {e}")))?;
        Ok(Prepared {
            staged,
            manifest,
            target,
            prefix,
            truncated,
        })
    }

    /// Makes the files visible and writes the manifest; returns the
    /// manifest and whether rows were cut at the row limit.
    async fn commit(&self, job: &ExportJob, p: Prepared) -> Result<(String, bool), Stop> {
        // The last moment a revocation can stop the export.
        self.token_allows(job).await.map_err(Refused::stop)?;
        let fail = |e| Self::failure(&job.id, e);
        p.target.check_destination(&p.prefix).map_err(fail)?;
        let journal: Arc<dyn UploadJournal> = Arc::new(Journal {
            store: self.store.clone(),
            job_id: job.id.clone(),
        });
        p.staged
            .commit(&p.prefix, bytes::Bytes::from(p.manifest.clone()), &journal)
            .await
            .map_err(fail)?;
        Ok((p.manifest, p.truncated))
    }

    /// HMAC of the policies applied (keyed: a token must not be able to
    /// test guesses about hidden columns against it offline).
    fn policy_fingerprint(
        &self,
        scope: &TokenScope,
        views: &[Arc<sluice_planner::secure_view::SecureView>],
    ) -> String {
        let mut parts: Vec<String> = views
            .iter()
            .map(|v| format!("{}={}", v.table, v.fingerprint))
            .collect();
        parts.sort();
        let mut mac = Hmac::<Sha256>::new_from_slice(&self.fingerprint_key)
            .expect("HMAC accepts any key length");
        mac.update(b"sluice export policy v1\n");
        mac.update(parts.join("\n").as_bytes());
        mac.update(format!("\nrow_limit={}", scope.row_limit).as_bytes());
        format!("hmac-sha256:{}", hex::encode(mac.finalize().into_bytes()))
    }
}

fn unreachable_store(e: ExportError) -> Refusal {
    tracing::warn!(error = %e, "export destination unreachable");
    Refusal::Unavailable("the destination's object store is unavailable".into())
}
