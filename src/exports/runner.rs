//! Running export jobs: runners claim queued jobs from the store (so
//! replicas share the queue), re-read the job's token, plan the statement
//! again in its scoped session, stream the result through the export
//! writer with a heartbeat (progress, cancellations from other replicas,
//! revocation), then commit and record the end.

use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use chrono::Utc;
use hmac::{Hmac, Mac as _};
use serde_json::json;
use sha2::{Digest as _, Sha256};
use sluice_connectors::export::{
    self, DestinationUrl, ExportCompression, ExportError, ExportStore, Leftover, Progress,
    UploadJournal, WriteOptions,
};
use sluice_planner::TokenScope;
use sluice_planner::secure_view::SecureView;
use tokio::sync::{Notify, watch};

use super::service::{Exports, Live};
use crate::store::Store;
use crate::store::exports::{ExportJob, JobResult, JobState};

/// How often a runner reports progress (and learns of cancellations).
const HEARTBEAT: Duration = Duration::from_secs(1);
/// How long a failed or cancelled job waits for its cleanup before it
/// ends anyway (the janitor finishes the cleanup).
const CLEANUP_WAIT: Duration = Duration::from_secs(5);
/// Rows per record batch of an export's query.
const EXPORT_BATCH_ROWS: usize = 2048;

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
    /// One runner: claims queued jobs and runs them, one at a time.
    pub(super) async fn runner(self: Arc<Self>, mut stop: watch::Receiver<bool>) {
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
    async fn token_allows(
        &self,
        job: &ExportJob,
    ) -> Result<sluice_planner::token::TokenRecord, Refused> {
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
            ExportError::Query(q) => {
                Self::query_failed(job_id, sluice_planner::Error::DataFusion(q))
            }
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

    /// A planning or query failure as the job's owner sees it: the
    /// planner's client message (opaque for connector and internal
    /// failures, whose detail goes to the log).
    fn query_failed(job_id: &str, e: sluice_planner::Error) -> Stop {
        if matches!(
            e.kind(),
            sluice_planner::ErrorKind::ConnectorFailed | sluice_planner::ErrorKind::Internal
        ) {
            tracing::warn!(job_id, error = %e, "export query failure");
        }
        Stop::Failed(e.message())
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
            .map_err(|e| Self::query_failed(&job.id, e))?;
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
        // Planning was bounded by the query time limit; the export itself
        // runs as long as the job (which has its own cancellation).
        let stream = plan
            .without_time_limit()
            .execute()
            .await
            .map_err(|e| Self::query_failed(&job.id, e))?;
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
    fn policy_fingerprint(&self, scope: &TokenScope, views: &[Arc<SecureView>]) -> String {
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
