//! `[exports]`: where exports may go, how many run, and the bounds of one
//! job. Sizes are bytes or a number with a unit (`"256MiB"`), durations
//! like `"30s"`.

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;
use sluice_connectors::S3Config;
use sluice_connectors::location::absolute;
use sluice_planner::units::{de_bytes, de_duration};

/// `[exports]`: governed Parquet exports to object storage.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ExportsConfig {
    /// Serve `/v1/exports` and run export jobs.
    pub enabled: bool,
    /// Directory of `file://` destinations (`file:///a/b` is `<root>/a/b`).
    /// Default: `<data_dir>/exports`.
    pub root: Option<PathBuf>,
    /// Jobs running at once on this gateway; the rest wait as `queued`.
    pub concurrency: usize,
    /// Most queued jobs (every token); beyond that submissions get 503.
    pub max_queued: usize,
    /// Most queued or running jobs of one token; beyond that 429.
    pub max_jobs_per_token: usize,
    /// Most running jobs of one token on one gateway; its other jobs wait
    /// while other tokens' jobs run.
    pub max_running_per_token: usize,
    /// Buffer memory of one job (row group in progress and upload parts),
    /// in bytes or with a unit (`"256MiB"`); at least 32 MiB.
    #[serde(deserialize_with = "de_bytes")]
    pub memory_limit: u64,
    /// Default size limit of one Parquet file (`max_file_bytes` of a request
    /// overrides it); at least 64 KiB.
    #[serde(deserialize_with = "de_bytes")]
    pub max_file_bytes: u64,
    /// Most rows in one row group (a row group also ends at a quarter of
    /// `memory_limit`).
    pub row_group_rows: usize,
    /// How long failing object store requests are retried.
    #[serde(deserialize_with = "de_duration")]
    pub retry_timeout: Duration,
    /// How often leftovers of failed jobs are cleaned up and jobs of
    /// stopped gateways are marked failed.
    #[serde(deserialize_with = "de_duration")]
    pub cleanup_interval: Duration,
    /// Longest a job may run before it fails.
    #[serde(deserialize_with = "de_duration")]
    pub max_run_time: Duration,
    /// Most bytes one job may write.
    #[serde(deserialize_with = "de_bytes")]
    pub max_bytes_per_job: u64,
    /// Most files one job may write.
    pub max_files_per_job: u64,
    /// How long ended jobs are kept.
    #[serde(deserialize_with = "de_duration")]
    pub retention: Duration,
    /// S3 access for `s3://` destinations.
    pub s3: S3Config,
}

impl Default for ExportsConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            root: None,
            concurrency: 2,
            max_queued: 100,
            max_jobs_per_token: 4,
            max_running_per_token: 1,
            memory_limit: 256 << 20,
            max_file_bytes: 512 << 20,
            row_group_rows: 1 << 20,
            retry_timeout: Duration::from_secs(30),
            cleanup_interval: Duration::from_secs(30),
            max_run_time: Duration::from_secs(6 * 3600),
            max_bytes_per_job: 1 << 40,
            max_files_per_job: 10_000,
            retention: Duration::from_secs(30 * 86400),
            s3: S3Config::default(),
        }
    }
}

/// Smallest `[exports] memory_limit`.
pub const MIN_EXPORT_MEMORY: u64 = 32 << 20;
/// Smallest `max_file_bytes`.
pub const MIN_FILE_BYTES: u64 = 64 << 10;

impl ExportsConfig {
    /// Makes `root` absolute (default `<data_dir>/exports`) and returns
    /// every problem with the settings.
    pub fn resolve(&mut self, base: &Path, data_dir: &Path) -> Vec<String> {
        self.root = Some(absolute(
            base,
            &self.root.take().unwrap_or_else(|| data_dir.join("exports")),
        ));
        let mut problems = Vec::new();
        if self.concurrency == 0 || self.max_jobs_per_token == 0 || self.max_running_per_token == 0
        {
            problems.push(
                "exports.concurrency, max_jobs_per_token and max_running_per_token must be at least 1"
                    .into(),
            );
        }
        if self.memory_limit < MIN_EXPORT_MEMORY {
            problems.push("exports.memory_limit must be at least 32MiB".into());
        }
        if self.max_file_bytes < MIN_FILE_BYTES {
            problems.push("exports.max_file_bytes must be at least 64KiB".into());
        }
        if self.row_group_rows == 0 {
            problems.push("exports.row_group_rows must be at least 1".into());
        }
        if self.max_run_time.is_zero() || self.max_bytes_per_job == 0 || self.max_files_per_job == 0
        {
            problems.push(
                "exports.max_run_time, max_bytes_per_job and max_files_per_job must be positive"
                    .into(),
            );
        }
        if self.retry_timeout.is_zero() || self.cleanup_interval.is_zero() {
            problems
                .push("exports.retry_timeout and exports.cleanup_interval must be positive".into());
        }
        if let Some(u) = &self.s3.endpoint
            && url::Url::parse(u).is_err()
        {
            problems.push(format!("exports.s3.endpoint: '{u}' is not a URL"));
        }
        problems
    }
}
