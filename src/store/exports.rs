//! Export jobs and their leftovers in the store (`migrations/*/0002_exports.sql`).
//!
//! State changes are conditional updates (`… WHERE state = 'queued'`), so
//! replicas sharing a Postgres store never run a job twice or resurrect a
//! finished one.

use chrono::{DateTime, Utc};
use serde::Serialize;
use sluice_connectors::export::Leftover;

use super::rows::{from_millis, to_millis};
use super::{Backend, Store};
use crate::error::Result;

/// The life of a job.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum JobState {
    /// Waiting for a free slot.
    Queued,
    /// Writing.
    Running,
    /// Committed: files and manifest are at the destination.
    Succeeded,
    /// Failed; nothing is left at the destination.
    Failed,
    /// Cancelled; nothing is left at the destination.
    Cancelled,
}

impl JobState {
    /// The stored name.
    pub fn as_str(&self) -> &'static str {
        match self {
            Self::Queued => "queued",
            Self::Running => "running",
            Self::Succeeded => "succeeded",
            Self::Failed => "failed",
            Self::Cancelled => "cancelled",
        }
    }

    fn parse(s: &str) -> Self {
        match s {
            "queued" => Self::Queued,
            "running" => Self::Running,
            "succeeded" => Self::Succeeded,
            "cancelled" => Self::Cancelled,
            _ => Self::Failed,
        }
    }

    /// Whether the job has ended.
    pub fn is_final(&self) -> bool {
        matches!(self, Self::Succeeded | Self::Failed | Self::Cancelled)
    }
}

/// One export job as stored.
#[derive(Debug, Clone)]
pub struct ExportJob {
    /// Job id.
    pub id: String,
    /// The token that submitted it.
    pub token_id: String,
    /// State.
    pub state: JobState,
    /// The statement.
    pub statement: String,
    /// Normalised destination URL.
    pub destination: String,
    /// Parquet compression.
    pub compression: String,
    /// File size limit.
    pub max_file_bytes: u64,
    /// The token's row limit when submitted.
    pub row_limit: u64,
    /// Submission time.
    pub created_at: DateTime<Utc>,
    /// Start of the run.
    pub started_at: Option<DateTime<Utc>>,
    /// End of the run.
    pub finished_at: Option<DateTime<Utc>>,
    /// Rows written.
    pub rows: u64,
    /// Bytes written.
    pub bytes: u64,
    /// Files written.
    pub files: u64,
    /// Rows were cut at the row limit.
    pub truncated: bool,
    /// A cancellation was asked for.
    pub cancel_requested: bool,
    /// Why it failed.
    pub error: Option<String>,
    /// The manifest (JSON) of a succeeded job.
    pub manifest: Option<String>,
}

/// What a new job is made of.
#[derive(Debug, Clone)]
pub struct NewJob {
    /// Job id.
    pub id: String,
    /// The submitting token.
    pub token_id: String,
    /// The statement.
    pub statement: String,
    /// Normalised destination.
    pub destination: String,
    /// Compression name.
    pub compression: String,
    /// File size limit.
    pub max_file_bytes: u64,
    /// The token's row limit.
    pub row_limit: u64,
}

/// What [`Store::enqueue_export_job`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Enqueued {
    /// Stored as queued.
    Queued,
    /// The token has its maximum of live jobs.
    TokenBusy,
    /// The queue is full.
    QueueFull,
}

/// The final figures of a job.
#[derive(Debug, Clone, Default)]
pub struct JobResult {
    /// Rows written.
    pub rows: u64,
    /// Bytes written.
    pub bytes: u64,
    /// Files written.
    pub files: u64,
    /// Cut at the row limit.
    pub truncated: bool,
    /// Error message (failed jobs).
    pub error: Option<String>,
    /// Manifest JSON (succeeded jobs).
    pub manifest: Option<String>,
}

const JOB_COLUMNS: &str = "id, token_id, state, statement, destination, compression, \
     max_file_bytes, row_limit, created_at, started_at, finished_at, rows_written, \
     bytes_written, files_written, truncated, cancel_requested, error, manifest";

#[derive(sqlx::FromRow)]
struct JobRow {
    id: String,
    token_id: String,
    state: String,
    statement: String,
    destination: String,
    compression: String,
    max_file_bytes: i64,
    row_limit: i64,
    created_at: i64,
    started_at: Option<i64>,
    finished_at: Option<i64>,
    rows_written: i64,
    bytes_written: i64,
    files_written: i64,
    truncated: bool,
    cancel_requested: bool,
    error: Option<String>,
    manifest: Option<String>,
}

impl JobRow {
    fn into_job(self) -> Result<ExportJob> {
        let what = |f: &str| format!("export_jobs.{f} of job {}", self.id);
        let unsigned = |v: i64| u64::try_from(v).unwrap_or(0);
        Ok(ExportJob {
            state: JobState::parse(&self.state),
            created_at: from_millis(&what("created_at"), self.created_at)?,
            started_at: self
                .started_at
                .map(|ms| from_millis(&what("started_at"), ms))
                .transpose()?,
            finished_at: self
                .finished_at
                .map(|ms| from_millis(&what("finished_at"), ms))
                .transpose()?,
            max_file_bytes: unsigned(self.max_file_bytes),
            row_limit: unsigned(self.row_limit),
            rows: unsigned(self.rows_written),
            bytes: unsigned(self.bytes_written),
            files: unsigned(self.files_written),
            truncated: self.truncated,
            cancel_requested: self.cancel_requested,
            id: self.id,
            token_id: self.token_id,
            statement: self.statement,
            destination: self.destination,
            compression: self.compression,
            error: self.error,
            manifest: self.manifest,
        })
    }
}

fn signed(v: u64) -> i64 {
    i64::try_from(v).unwrap_or(i64::MAX)
}

impl Store {
    /// Stores a new queued job unless its token already has
    /// `max_per_token` live jobs or `max_queued` jobs are queued; checked
    /// and inserted atomically (SQLite: one statement; Postgres: under a
    /// table lock), so concurrent submissions cannot exceed the limits.
    pub async fn enqueue_export_job(
        &self,
        job: &NewJob,
        now: DateTime<Utc>,
        max_per_token: usize,
        max_queued: usize,
    ) -> Result<Enqueued> {
        const INSERT: &str = "INSERT INTO export_jobs (id, token_id, state, statement, destination, \
             compression, max_file_bytes, row_limit, created_at) \
             SELECT $1, $2, 'queued', $3, $4, $5, $6, $7, $8 \
             WHERE (SELECT COUNT(*) FROM export_jobs WHERE token_id = $2 \
                    AND state IN ('queued', 'running')) < $9 \
               AND (SELECT COUNT(*) FROM export_jobs WHERE state = 'queued') < $10";
        macro_rules! insert {
            () => {
                sqlx::query(INSERT)
                    .bind(&job.id)
                    .bind(&job.token_id)
                    .bind(&job.statement)
                    .bind(&job.destination)
                    .bind(&job.compression)
                    .bind(signed(job.max_file_bytes))
                    .bind(signed(job.row_limit))
                    .bind(to_millis(now))
                    .bind(signed(max_per_token as u64))
                    .bind(signed(max_queued as u64))
            };
        }
        let inserted = match &self.backend {
            Backend::Sqlite(p) => insert!().execute(p).await?.rows_affected(),
            Backend::Postgres(p) => {
                let mut tx = p.begin().await?;
                sqlx::query("LOCK TABLE export_jobs IN SHARE ROW EXCLUSIVE MODE")
                    .execute(&mut *tx)
                    .await?;
                let n = insert!().execute(&mut *tx).await?.rows_affected();
                tx.commit().await?;
                n
            }
        };
        if inserted == 1 {
            return Ok(Enqueued::Queued);
        }
        let (mine,): (i64,) = with_pool!(self, p => {
            sqlx::query_as(
                "SELECT COUNT(*) FROM export_jobs WHERE token_id = $1 AND state IN ('queued', 'running')",
            )
            .bind(&job.token_id)
            .fetch_one(p)
            .await?
        });
        if mine >= signed(max_per_token as u64) {
            Ok(Enqueued::TokenBusy)
        } else {
            Ok(Enqueued::QueueFull)
        }
    }

    /// One job.
    pub async fn export_job(&self, id: &str) -> Result<Option<ExportJob>> {
        let sql = format!("SELECT {JOB_COLUMNS} FROM export_jobs WHERE id = $1");
        let row: Option<JobRow> = with_pool!(self, p => {
            sqlx::query_as(&sql).bind(id).fetch_optional(p).await?
        });
        row.map(JobRow::into_job).transpose()
    }

    /// The newest `limit` jobs of `token_id` (every token's with `None`).
    pub async fn list_export_jobs(
        &self,
        token_id: Option<&str>,
        limit: i64,
    ) -> Result<Vec<ExportJob>> {
        let rows: Vec<JobRow> = match token_id {
            Some(t) => {
                let sql = format!(
                    "SELECT {JOB_COLUMNS} FROM export_jobs WHERE token_id = $1 \
                     ORDER BY created_at DESC, id LIMIT $2"
                );
                with_pool!(self, p => {
                    sqlx::query_as(&sql).bind(t).bind(limit).fetch_all(p).await?
                })
            }
            None => {
                let sql = format!(
                    "SELECT {JOB_COLUMNS} FROM export_jobs ORDER BY created_at DESC, id LIMIT $1"
                );
                with_pool!(self, p => {
                    sqlx::query_as(&sql).bind(limit).fetch_all(p).await?
                })
            }
        };
        rows.into_iter().map(JobRow::into_job).collect()
    }

    /// Destinations of queued or running jobs.
    pub async fn live_export_destinations(&self) -> Result<Vec<String>> {
        let rows: Vec<(String,)> = with_pool!(self, p => {
            sqlx::query_as(
                "SELECT destination FROM export_jobs WHERE state IN ('queued', 'running')",
            )
            .fetch_all(p)
            .await?
        });
        Ok(rows.into_iter().map(|(d,)| d).collect())
    }

    /// Takes the oldest queued job for `instance` (none if every queued job
    /// was taken by another replica meanwhile).
    /// A token with `max_running_per_token` running jobs waits.
    pub async fn claim_export_job(
        &self,
        instance: &str,
        now: DateTime<Utc>,
        max_running_per_token: usize,
    ) -> Result<Option<ExportJob>> {
        let ids: Vec<(String,)> = with_pool!(self, p => {
            // Tokens with fewer running jobs first, so one token's long
            // jobs cannot keep everyone else's queued.
            sqlx::query_as(
                "SELECT q.id FROM export_jobs q WHERE q.state = 'queued' \
                 AND (SELECT COUNT(*) FROM export_jobs r WHERE r.token_id = q.token_id \
                      AND r.state = 'running') < $1 \
                 ORDER BY (SELECT COUNT(*) FROM export_jobs r WHERE r.token_id = q.token_id \
                  AND r.state = 'running'), q.created_at, q.id LIMIT 8",
            )
            .bind(signed(max_running_per_token as u64))
            .fetch_all(p)
            .await?
        });
        for (id,) in ids {
            let done = with_pool!(self, p => {
                sqlx::query(
                    "UPDATE export_jobs SET state = 'running', instance = $1, started_at = $2, \
                     heartbeat_at = $2 WHERE id = $3 AND state = 'queued'",
                )
                .bind(instance)
                .bind(to_millis(now))
                .bind(&id)
                .execute(p)
                .await?
                .rows_affected()
            });
            if done == 1 {
                return self.export_job(&id).await;
            }
        }
        Ok(None)
    }

    /// Records a running job's progress; returns whether a cancellation was
    /// asked for (or the job is no longer running).
    pub async fn export_heartbeat(
        &self,
        id: &str,
        rows: u64,
        bytes: u64,
        files: u64,
        now: DateTime<Utc>,
    ) -> Result<bool> {
        let found: Option<(bool,)> = with_pool!(self, p => {
            sqlx::query_as(
                "UPDATE export_jobs SET rows_written = $1, bytes_written = $2, files_written = $3, \
                 heartbeat_at = $4 WHERE id = $5 AND state = 'running' RETURNING cancel_requested",
            )
            .bind(signed(rows))
            .bind(signed(bytes))
            .bind(signed(files))
            .bind(to_millis(now))
            .bind(id)
            .fetch_optional(p)
            .await?
        });
        Ok(found.is_none_or(|(c,)| c))
    }

    /// Ends a running job in `state`. False if it was not running.
    pub async fn finish_export_job(
        &self,
        id: &str,
        state: JobState,
        result: &JobResult,
        now: DateTime<Utc>,
    ) -> Result<bool> {
        let n = with_pool!(self, p => {
            sqlx::query(
                "UPDATE export_jobs SET state = $1, finished_at = $2, rows_written = $3, \
                 bytes_written = $4, files_written = $5, truncated = $6, error = $7, manifest = $8 \
                 WHERE id = $9 AND state = 'running'",
            )
            .bind(state.as_str())
            .bind(to_millis(now))
            .bind(signed(result.rows))
            .bind(signed(result.bytes))
            .bind(signed(result.files))
            .bind(result.truncated)
            .bind(&result.error)
            .bind(&result.manifest)
            .bind(id)
            .execute(p)
            .await?
            .rows_affected()
        });
        Ok(n == 1)
    }

    /// Cancels a queued job at once, or asks its runner to stop a running
    /// one. Returns the job afterwards (`None`: no such job).
    pub async fn cancel_export_job(
        &self,
        id: &str,
        now: DateTime<Utc>,
    ) -> Result<Option<ExportJob>> {
        with_pool!(self, p => {
            sqlx::query(
                "UPDATE export_jobs SET state = 'cancelled', finished_at = $1, \
                 cancel_requested = $2, error = 'cancelled' WHERE id = $3 AND state = 'queued'",
            )
            .bind(to_millis(now))
            .bind(true)
            .bind(id)
            .execute(p)
            .await?;
            sqlx::query(
                "UPDATE export_jobs SET cancel_requested = $1 WHERE id = $2 AND state = 'running'",
            )
            .bind(true)
            .bind(id)
            .execute(p)
            .await?;
        });
        self.export_job(id).await
    }

    /// Marks running jobs whose runner has not reported since `before` as
    /// failed; returns their ids.
    pub async fn fail_stale_export_jobs(
        &self,
        before: DateTime<Utc>,
        now: DateTime<Utc>,
    ) -> Result<Vec<String>> {
        let ids: Vec<(String,)> = with_pool!(self, p => {
            sqlx::query_as(
                "UPDATE export_jobs SET state = 'failed', finished_at = $1, \
                 error = 'the gateway stopped while the job was running' \
                 WHERE state = 'running' AND (heartbeat_at IS NULL OR heartbeat_at < $2) RETURNING id",
            )
            .bind(to_millis(now))
            .bind(to_millis(before))
            .fetch_all(p)
            .await?
        });
        Ok(ids.into_iter().map(|(i,)| i).collect())
    }

    /// Records what a job is about to put on the object store.
    pub async fn record_export_leftover(&self, job_id: &str, l: &Leftover) -> Result<()> {
        with_pool!(self, p => {
            sqlx::query(
                "INSERT INTO export_leftovers (job_id, path, upload_id) VALUES ($1, $2, $3) \
                 ON CONFLICT (job_id, path, upload_id) DO NOTHING",
            )
            .bind(job_id)
            .bind(&l.path)
            .bind(l.upload_id.as_deref().unwrap_or_default())
            .execute(p)
            .await?;
        });
        Ok(())
    }

    /// What a job may have left on the object store.
    pub async fn export_leftovers(&self, job_id: &str) -> Result<Vec<Leftover>> {
        let rows: Vec<(String, String)> = with_pool!(self, p => {
            sqlx::query_as(
                "SELECT path, upload_id FROM export_leftovers WHERE job_id = $1 ORDER BY path, upload_id",
            )
                .bind(job_id)
                .fetch_all(p)
                .await?
        });
        Ok(rows
            .into_iter()
            .map(|(path, upload_id)| Leftover {
                path,
                upload_id: (!upload_id.is_empty()).then_some(upload_id),
            })
            .collect())
    }

    /// Forgets leftovers that are gone (or committed, with `None`: all).
    pub async fn forget_export_leftovers(
        &self,
        job_id: &str,
        paths: Option<&[Leftover]>,
    ) -> Result<()> {
        match paths {
            None => with_pool!(self, p => {
                sqlx::query("DELETE FROM export_leftovers WHERE job_id = $1")
                    .bind(job_id)
                    .execute(p)
                    .await?;
            }),
            Some(list) => {
                for l in list {
                    with_pool!(self, p => {
                        sqlx::query(
                            "DELETE FROM export_leftovers WHERE job_id = $1 AND path = $2 \
                             AND upload_id = $3",
                        )
                            .bind(job_id)
                            .bind(&l.path)
                            .bind(l.upload_id.as_deref().unwrap_or_default())
                            .execute(p)
                            .await?;
                    });
                }
            }
        }
        Ok(())
    }

    /// Ended jobs that still have leftovers: (id, destination).
    pub async fn export_jobs_to_clean(&self) -> Result<Vec<(String, String)>> {
        let rows: Vec<(String, String)> = with_pool!(self, p => {
            sqlx::query_as(
                "SELECT DISTINCT j.id, j.destination FROM export_jobs j \
                 JOIN export_leftovers l ON l.job_id = j.id \
                 WHERE j.state IN ('failed', 'cancelled')",
            )
            .fetch_all(p)
            .await?
        });
        Ok(rows)
    }

    /// Deletes ended jobs that finished before `before` and left nothing
    /// behind; returns how many.
    pub async fn delete_old_export_jobs(&self, before: DateTime<Utc>) -> Result<u64> {
        let n = with_pool!(self, p => {
            sqlx::query(
                "DELETE FROM export_jobs WHERE state IN ('succeeded', 'failed', 'cancelled') \
                 AND finished_at < $1 AND NOT EXISTS \
                 (SELECT 1 FROM export_leftovers l WHERE l.job_id = export_jobs.id)",
            )
            .bind(to_millis(before))
            .execute(p)
            .await?
            .rows_affected()
        });
        Ok(n)
    }

    /// Whether the store is the embedded SQLite one (a single gateway).
    pub fn is_embedded(&self) -> bool {
        matches!(self.backend, Backend::Sqlite(_))
    }
}
