//! The export service of one gateway: its state (the store, the governor,
//! the object stores of destinations, the jobs running here) and its
//! lifecycle (runners and janitor started, and stopped with the gateway).
//! The API side is in `submit`, running jobs in `runner`, cleaning up in
//! `janitor`.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use chrono::Utc;
use sluice_connectors::export::{self, DestinationUrl, ExportError, ExportStore, Progress, Scheme};
use sluice_planner::{GovernedPlan, Governor};
use tokio::sync::{Notify, watch};

use super::config::ExportsConfig;
use crate::store::Store;

/// A running job on this gateway.
pub(super) struct Live {
    pub(super) cancel: Arc<Notify>,
    pub(super) progress: Arc<Progress>,
    pub(super) started: Instant,
}

/// The export service of one gateway.
pub struct Exports {
    pub(super) store: Store,
    pub(super) governor: Arc<Governor>,
    pub(super) config: ExportsConfig,
    pub(super) instance: String,
    pub(super) fingerprint_key: Vec<u8>,
    pub(super) local: ExportStore,
    pub(super) s3: Mutex<HashMap<String, ExportStore>>,
    pub(super) wake: Notify,
    pub(super) live: Mutex<HashMap<String, Live>>,
    pub(super) tasks: Mutex<Vec<tokio::task::JoinHandle<()>>>,
    /// `<root>/.sluice-staging`.
    pub(super) staging: PathBuf,
    /// Where each job run's audit record goes (set by [`Exports::start`]).
    pub(super) audit: std::sync::OnceLock<Arc<crate::audit::AuditLog>>,
}

impl std::fmt::Debug for Exports {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Exports")
            .field("instance", &self.instance)
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
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

    pub(super) fn store_for(&self, dest: &DestinationUrl) -> Result<ExportStore, ExportError> {
        match dest.scheme {
            Scheme::File => Ok(self.local.clone()),
            Scheme::S3 => {
                let bucket = dest.bucket.clone().unwrap_or_default();
                let mut cache = self.s3.lock().expect("s3 cache lock");
                if let Some(s) = cache.get(&bucket) {
                    return Ok(s.clone());
                }
                let store = ExportStore::s3(&bucket, &self.config.s3, self.config.retry_timeout)?;
                cache.insert(bucket, store.clone());
                Ok(store)
            }
        }
    }

    /// The federation peer a plan reads, if any (DESIGN §7: no remote
    /// data is persisted at the receiver, so exports refuse them).
    pub(super) fn peer_read(&self, plan: &GovernedPlan) -> Option<String> {
        plan.secure_views().iter().find_map(|v| {
            let catalog = v.table.split('.').next().unwrap_or_default();
            self.governor.is_gated(catalog).then(|| catalog.to_string())
        })
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
}
