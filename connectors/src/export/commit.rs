//! Making an export visible, or cleaning up after it: the files staged by
//! the writer, the commit (complete the S3 uploads or rename the local
//! files, then write the manifest), and the cleanup that aborts and
//! deletes what the journal says a job left on the object store.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use object_store::local::LocalFileSystem;
use object_store::multipart::{MultipartStore, PartId};
use object_store::path::Path;
use object_store::{ObjectStoreExt as _, PutMode, PutOptions, PutPayload};

use super::destination::{MANIFEST_NAME, STAGING_DIR};
use super::error::{ExportError, storage};
use super::journal::{ANY_UPLOAD, Leftover, UploadJournal};
use super::store::{ExportStore, open_uploads};

/// One file of a finished export.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExportFile {
    /// Name relative to the destination (`part-00000.parquet`).
    pub name: String,
    /// Rows in the file.
    pub rows: u64,
    /// Size in bytes.
    pub bytes: u64,
}

/// A finished but uncommitted file.
#[derive(Debug)]
pub(super) enum Pending {
    S3 {
        path: Path,
        id: String,
        parts: Vec<PartId>,
    },
    Local {
        staging: Path,
        path: Path,
    },
}

/// Files written and waiting for [`Staged::commit`].
#[derive(Debug)]
pub struct Staged {
    pub(super) store: ExportStore,
    pub(super) job_dir: Path,
    pub(super) files: Vec<(ExportFile, Pending)>,
}

/// The staging directory of `job_id` (local exports).
pub fn staging_dir(job_id: &str) -> Path {
    Path::from_iter([STAGING_DIR, job_id])
}

impl Staged {
    /// The files written, in order.
    pub fn files(&self) -> Vec<ExportFile> {
        self.files.iter().map(|(f, _)| f.clone()).collect()
    }

    /// Makes the files visible under the destination, then writes
    /// `manifest` as `_manifest.json`. On error, whatever was recorded in
    /// `journal` must be cleaned up by the caller ([`cleanup`]).
    pub async fn commit(
        self,
        prefix: &Path,
        manifest: Bytes,
        journal: &Arc<dyn UploadJournal>,
    ) -> Result<(), ExportError> {
        let store = self.store.object_store();
        for (_, pending) in self.files {
            match (pending, &self.store) {
                (Pending::S3 { path, id, parts }, ExportStore::S3(s3, _)) => {
                    // The key is this job's: the destination was empty and
                    // no other job may write there while this one lives.
                    journal
                        .record(&Leftover {
                            path: path.to_string(),
                            upload_id: None,
                        })
                        .await
                        .map_err(ExportError::Journal)?;
                    s3.complete_multipart(&path, &id, parts)
                        .await
                        .map_err(storage)?;
                }
                (Pending::Local { staging, path }, _) => {
                    // Recorded once it is ours: a file someone else put
                    // there makes the rename fail and is never deleted.
                    store
                        .rename_if_not_exists(&staging, &path)
                        .await
                        .map_err(storage)?;
                    let recorded = journal
                        .record(&Leftover {
                            path: path.to_string(),
                            upload_id: None,
                        })
                        .await;
                    if let Err(e) = recorded {
                        let _ = store.delete(&path).await;
                        return Err(ExportError::Journal(e));
                    }
                }
                (Pending::S3 { .. }, ExportStore::Local(..)) => {
                    unreachable!("S3 uploads only on S3 stores")
                }
            }
        }
        let manifest_path = prefix.clone().join(MANIFEST_NAME);
        journal
            .record(&Leftover {
                path: manifest_path.to_string(),
                upload_id: None,
            })
            .await
            .map_err(ExportError::Journal)?;
        store
            .put_opts(
                &manifest_path,
                PutPayload::from(manifest),
                PutOptions::from(PutMode::Create),
            )
            .await
            .map_err(storage)?;
        if let ExportStore::Local(fs, _) = &self.store {
            remove_staging(fs, &self.job_dir);
        }
        Ok(())
    }
}

fn remove_staging(fs: &LocalFileSystem, dir: &Path) {
    if let Ok(p) = fs.path_to_filesystem(dir)
        && let Err(e) = std::fs::remove_dir_all(&p)
        && e.kind() != std::io::ErrorKind::NotFound
    {
        tracing::warn!(dir = %p.display(), error = %e, "cannot remove an export staging directory");
    }
}

/// Aborts the uploads and deletes the objects `leftovers` name, and (local
/// exports) the job's staging directory. Returns the leftovers that are
/// gone; the rest must be tried again later.
///
/// Each call gets `deadline`: an object store that hangs delays the caller
/// by that much per leftover, not indefinitely.
pub async fn cleanup(
    store: &ExportStore,
    job_id: &str,
    leftovers: &[Leftover],
    deadline: Duration,
) -> Vec<Leftover> {
    if let ExportStore::Local(fs, _) = store {
        remove_staging(fs, &staging_dir(job_id));
    }
    let mut gone = Vec::new();
    for l in leftovers {
        let path = Path::from(l.path.as_str());
        // An open upload is only aborted: the key may belong to someone
        // else. Objects are deleted only when the job committed them.
        let timed = |r: Result<object_store::Result<()>, tokio::time::error::Elapsed>, what| match r
        {
            Ok(Ok(())) | Ok(Err(object_store::Error::NotFound { .. })) => true,
            Ok(Err(e)) => {
                tracing::warn!(job_id, path = %path, error = %e, "cannot {what}");
                false
            }
            Err(_) => {
                tracing::warn!(job_id, path = %path, "cannot {what}: no answer in time");
                false
            }
        };
        let done = match (&l.upload_id, store) {
            (Some(any), ExportStore::S3(s3, bucket)) if any == ANY_UPLOAD => {
                let abort_all = async {
                    for id in open_uploads(s3, bucket, path.as_ref()).await.map_err(|e| {
                        object_store::Error::Generic {
                            store: "S3",
                            source: Box::new(e),
                        }
                    })? {
                        match s3.abort_multipart(&path, &id).await {
                            Ok(()) | Err(object_store::Error::NotFound { .. }) => {}
                            Err(e) => return Err(e),
                        }
                    }
                    Ok(())
                };
                timed(
                    tokio::time::timeout(deadline, abort_all).await,
                    "abort the export uploads at a key",
                )
            }
            (Some(id), ExportStore::S3(s3, _)) => timed(
                tokio::time::timeout(deadline, s3.abort_multipart(&path, id)).await,
                "abort an export upload",
            ),
            (Some(_), ExportStore::Local(..)) => true,
            (None, _) => timed(
                tokio::time::timeout(deadline, store.object_store().delete(&path)).await,
                "delete an export object",
            ),
        };
        if done {
            gone.push(l.clone());
        }
    }
    gone
}
