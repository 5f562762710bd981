//! The result stream of a governed statement: at most `row_limit` rows,
//! every batch conformed to the announced schema, a flag telling whether
//! rows were cut, and the rows it returned reported once when it ends
//! (read to its end, failed or dropped) so the statement is charged.

use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::task::{Context, Poll};

use arrow::datatypes::SchemaRef;
use arrow::record_batch::RecordBatch;
use datafusion::execution::RecordBatchStream;
use datafusion::physical_plan::SendableRecordBatchStream;
use futures::Stream;

/// Key of the Flight `app_metadata` / schema metadata / Trino warning that
/// reports a truncated result.
pub const TRUNCATED_METADATA_KEY: &str = "sluice.truncated";

/// The result stream of a governed statement: at most `row_limit` rows;
/// [`GovernedStream::truncated`] tells whether rows were cut.
pub struct GovernedStream {
    inner: SendableRecordBatchStream,
    remaining: u64,
    truncated: Arc<AtomicBool>,
    done: bool,
    schema: Option<SchemaRef>,
    returned: u64,
    on_end: Option<Box<dyn FnOnce(u64) -> u64 + Send>>,
    scanned: Arc<AtomicU64>,
}

/// Gives `batch` exactly `schema`'s fields, casting (strictly: a value that
/// does not fit is an error, never NULL) columns whose type differs: the
/// physical plan chose another (e.g. Int32 for a UNION the logical plan
/// typed Int64), or a federation peer answered with another. The columns
/// are taken in order; a batch without columns keeps its row count.
pub fn conform(batch: RecordBatch, schema: &SchemaRef) -> datafusion::error::Result<RecordBatch> {
    if batch.schema_ref().as_ref() == schema.as_ref() {
        return Ok(batch);
    }
    let columns = batch
        .columns()
        .iter()
        .zip(schema.fields())
        .map(|(c, f)| {
            if c.data_type() == f.data_type() {
                Ok(Arc::clone(c))
            } else {
                let strict = arrow::compute::CastOptions {
                    safe: false,
                    ..Default::default()
                };
                arrow::compute::cast_with_options(c, f.data_type(), &strict)
            }
        })
        .collect::<Result<Vec<_>, _>>()?;
    let options =
        arrow::record_batch::RecordBatchOptions::new().with_row_count(Some(batch.num_rows()));
    Ok(RecordBatch::try_new_with_options(
        Arc::clone(schema),
        columns,
        &options,
    )?)
}

impl GovernedStream {
    /// Caps `inner` at `limit` rows.
    pub fn new(inner: SendableRecordBatchStream, limit: u64) -> Self {
        Self {
            inner,
            remaining: limit,
            truncated: Arc::new(AtomicBool::new(false)),
            done: false,
            schema: None,
            returned: 0,
            on_end: None,
            scanned: Arc::new(AtomicU64::new(0)),
        }
    }

    /// Calls `f` with the number of rows returned, once, when the stream
    /// ends or is dropped; `f` answers the bytes the run read (its charge).
    pub fn on_end(mut self, f: impl FnOnce(u64) -> u64 + Send + 'static) -> Self {
        self.on_end = Some(Box::new(f));
        self
    }

    /// The bytes the run read through its secure views, once the stream
    /// has ended (0 before).
    pub fn bytes_scanned(&self) -> u64 {
        self.scanned.load(Ordering::Acquire)
    }

    /// A handle to [`GovernedStream::bytes_scanned`] that outlives the
    /// stream: set when it ends, fails or is dropped.
    pub fn bytes_scanned_handle(&self) -> Arc<AtomicU64> {
        Arc::clone(&self.scanned)
    }

    /// Stops the run, then charges it: what its tasks read until they
    /// stop (after a row-limit cut, an error) is part of the charge.
    fn end(&mut self) {
        if self.on_end.is_none() {
            return;
        }
        let schema = self.inner.schema();
        drop(std::mem::replace(
            &mut self.inner,
            Box::pin(datafusion::physical_plan::EmptyRecordBatchStream::new(
                schema,
            )),
        ));
        if let Some(f) = self.on_end.take() {
            self.scanned.store(f(self.returned), Ordering::Release);
        }
    }

    /// Conforms every batch to `schema` (see [`GovernedPlan::schema`]).
    pub fn conform_to(mut self, schema: SchemaRef) -> Self {
        self.schema = Some(schema);
        self
    }

    /// Whether rows were cut so far (final once the stream has ended).
    pub fn truncated(&self) -> bool {
        self.truncated.load(Ordering::Acquire)
    }

    /// A handle to the truncation flag that outlives the stream.
    pub fn truncation_flag(&self) -> Arc<AtomicBool> {
        Arc::clone(&self.truncated)
    }
}

impl Stream for GovernedStream {
    type Item = datafusion::error::Result<RecordBatch>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let polled = self.as_mut().poll_rows(cx);
        match &polled {
            Poll::Ready(Some(Ok(batch))) => self.returned += batch.num_rows() as u64,
            // After an error nothing more is read: the charge is final.
            Poll::Ready(None | Some(Err(_))) => {
                self.done = true;
                self.end();
            }
            Poll::Pending => {}
        }
        polled
    }
}

impl GovernedStream {
    fn poll_rows(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<datafusion::error::Result<RecordBatch>>> {
        loop {
            if self.done {
                return Poll::Ready(None);
            }
            let batch = match self.inner.as_mut().poll_next(cx) {
                Poll::Ready(Some(Ok(b))) => b,
                Poll::Ready(None) => {
                    self.done = true;
                    return Poll::Ready(None);
                }
                other => return other,
            };
            let batch = match &self.schema {
                Some(schema) => match conform(batch, schema) {
                    Ok(b) => b,
                    Err(e) => return Poll::Ready(Some(Err(e))),
                },
                None => batch,
            };
            let n = batch.num_rows() as u64;
            if n == 0 {
                continue;
            }
            if n <= self.remaining {
                self.remaining -= n;
                return Poll::Ready(Some(Ok(batch)));
            }
            // More rows than allowed: cut, flag, stop pulling.
            self.truncated.store(true, Ordering::Release);
            self.done = true;
            let keep = self.remaining as usize;
            self.remaining = 0;
            if keep == 0 {
                return Poll::Ready(None);
            }
            return Poll::Ready(Some(Ok(batch.slice(0, keep))));
        }
    }
}

impl RecordBatchStream for GovernedStream {
    fn schema(&self) -> SchemaRef {
        self.schema.clone().unwrap_or_else(|| self.inner.schema())
    }
}

impl Drop for GovernedStream {
    fn drop(&mut self) {
        self.end();
    }
}

impl std::fmt::Debug for GovernedStream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GovernedStream")
            .field("remaining", &self.remaining)
            .field("truncated", &self.truncated())
            .finish()
    }
}
