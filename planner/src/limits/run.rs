//! Where and for how long a statement runs.
//!
//! Planning and execution run on the gateway's own runtime
//! ([`ExecRuntime`]), whose threads have deep stacks ([`STACK_SIZE`]):
//! what the statement bounds admit can never exhaust them. Each statement runs as a task of that runtime:
//!
//! - it has a deadline; past it the task is stopped and the client gets a
//!   "time limit" error;
//! - dropping its result (a client that cancels or goes away) stops it;
//! - a panic inside it answers that statement with an internal error and
//!   touches nothing else;
//! - [`QueryControl`] tells code that computes for long inside one poll
//!   (the bounded functions) that the statement was stopped, so it gives
//!   its thread back within a row or so.

use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::sync::atomic::{AtomicBool, AtomicU8, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use arrow::datatypes::SchemaRef;
use datafusion::error::{DataFusionError, Result as DfResult};
use datafusion::physical_plan::SendableRecordBatchStream;
use datafusion::physical_plan::stream::RecordBatchStreamAdapter;
use futures::{FutureExt, StreamExt};
use tokio::task::JoinHandle;
use tokio::time::Instant;
use tracing::Instrument;

use crate::error::{Error, ErrorKind, Refusal, Result};

/// Stack of each execution thread. Virtual memory: only the pages a deep
/// statement touches are ever committed.
pub const STACK_SIZE: usize = 256 << 20;

/// Batches buffered between a running statement and its reader.
const BUFFERED_BATCHES: usize = 2;

/// Threads of the execution runtime: one per core, at least two.
pub fn threads() -> usize {
    std::thread::available_parallelism()
        .map(usize::from)
        .unwrap_or(2)
        .max(2)
}

/// The runtime statements are planned and executed on: [`threads`]
/// threads, each with a [`STACK_SIZE`] stack, started when first used.
/// Each gateway (each [`Limits`](super::Limits)) has its own, so one
/// gateway's statements never hold another's threads.
#[derive(Default)]
pub struct ExecRuntime {
    runtime: OnceLock<tokio::runtime::Runtime>,
}

impl ExecRuntime {
    /// The runtime's handle (starting it on first use).
    pub fn handle(&self) -> &tokio::runtime::Handle {
        self.runtime
            .get_or_init(|| {
                tokio::runtime::Builder::new_multi_thread()
                    .worker_threads(threads())
                    .thread_name("sluice-exec")
                    .thread_stack_size(STACK_SIZE)
                    .enable_all()
                    .build()
                    .expect("the execution runtime starts")
            })
            .handle()
    }
}

impl Drop for ExecRuntime {
    fn drop(&mut self) {
        // Dropped from async code too: do not wait for the threads.
        if let Some(rt) = self.runtime.take() {
            rt.shutdown_background();
        }
    }
}

impl std::fmt::Debug for ExecRuntime {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ExecRuntime")
            .field("started", &self.runtime.get().is_some())
            .finish()
    }
}

const RUNNING: u8 = 0;
const CANCELLED: u8 = 1;
const TIMED_OUT: u8 = 2;

/// Whether a statement may go on: shared by its task and by code that
/// computes inside one poll for long.
#[derive(Debug)]
pub struct QueryControl {
    state: AtomicU8,
    deadline: Mutex<Option<(Instant, Duration)>>,
    /// The deadline was cleared for good ([`QueryControl::clear_deadline`]):
    /// execution does not start a new one.
    unlimited: AtomicBool,
}

impl Default for QueryControl {
    fn default() -> Self {
        Self {
            state: AtomicU8::new(RUNNING),
            deadline: Mutex::new(None),
            unlimited: AtomicBool::new(false),
        }
    }
}

impl QueryControl {
    /// A control of a statement not started yet.
    pub fn new() -> Arc<Self> {
        Arc::new(Self::default())
    }

    /// Starts the clock: the statement may run for `limit` from now.
    pub fn start(&self, limit: Duration) -> Instant {
        let at = Instant::now() + limit;
        *self.deadline.lock().unwrap_or_else(|e| e.into_inner()) = Some((at, limit));
        at
    }

    /// Starts the clock unless planning already did.
    pub fn start_unless_started(&self, limit: Duration) {
        let mut deadline = self.deadline.lock().unwrap_or_else(|e| e.into_inner());
        if deadline.is_none() && !self.unlimited.load(Ordering::Acquire) {
            *deadline = Some((Instant::now() + limit, limit));
        }
    }

    /// Moves the deadline `by` later: time the statement spent waiting
    /// for a slot (bounded by `limits.queue_timeout`) is not run time.
    pub fn postpone(&self, by: Duration) {
        if let Some((at, _)) = self
            .deadline
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .as_mut()
        {
            *at += by;
        }
    }

    /// No deadline from now on, also when the statement then executes
    /// (export jobs, bounded by their own run time).
    pub fn clear_deadline(&self) {
        self.unlimited.store(true, Ordering::Release);
        *self.deadline.lock().unwrap_or_else(|e| e.into_inner()) = None;
    }

    /// The statement's client went away.
    pub fn cancel(&self) {
        let _ =
            self.state
                .compare_exchange(RUNNING, CANCELLED, Ordering::AcqRel, Ordering::Acquire);
    }

    /// `Err` once the statement was cancelled or is past its deadline.
    pub fn check(&self) -> DfResult<()> {
        match self.state.load(Ordering::Acquire) {
            CANCELLED => {
                return Err(
                    Refusal::new(ErrorKind::Cancelled, "the query was cancelled").into_datafusion(),
                );
            }
            TIMED_OUT => return Err(self.time_limit_error().into_datafusion()),
            _ => {}
        }
        let deadline = *self.deadline.lock().unwrap_or_else(|e| e.into_inner());
        if let Some((at, _)) = deadline
            && Instant::now() >= at
        {
            self.state.store(TIMED_OUT, Ordering::Release);
            return Err(self.time_limit_error().into_datafusion());
        }
        Ok(())
    }

    fn time_limit_error(&self) -> Refusal {
        let limit = self
            .deadline
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .map(|(_, l)| l)
            .unwrap_or_default();
        time_limit_error(limit)
    }
}

/// "Ran longer than its time limit of …".
fn time_limit_error(limit: Duration) -> Refusal {
    Refusal::new(
        ErrorKind::TimeLimit,
        format!(
            "the query ran longer than its time limit of {limit:?} (limits.query_timeout, or the \
             token's query_timeout)"
        ),
    )
}

/// Aborts a task (and marks its statement cancelled) when dropped: a
/// statement stops when nobody waits for it any more.
struct AbortOnDrop<T> {
    task: JoinHandle<T>,
    control: Arc<QueryControl>,
    /// Cleared once the task has ended by itself.
    armed: bool,
}

impl<T> Drop for AbortOnDrop<T> {
    fn drop(&mut self) {
        if self.armed {
            self.control.cancel();
            self.task.abort();
        }
    }
}

/// The message of a panic's payload.
fn panic_message(payload: &(dyn std::any::Any + Send)) -> String {
    payload
        .downcast_ref::<&str>()
        .map(|s| (*s).to_string())
        .or_else(|| payload.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "a panic without a message".to_string())
}

fn internal_after_panic(payload: &(dyn std::any::Any + Send)) -> Refusal {
    tracing::error!(panic = %panic_message(payload), "a statement panicked; it alone failed");
    Refusal::new(ErrorKind::Internal, "internal error")
}

/// Runs `work` (planning) on the execution runtime, with the request's
/// audit handle and span, until `control`'s deadline: a panic becomes an
/// internal error, the deadline a time-limit error; dropping the returned
/// future stops `work`.
pub async fn run<T, F>(
    runtime: &tokio::runtime::Handle,
    work: F,
    control: Arc<QueryControl>,
    limit: Duration,
) -> Result<T>
where
    T: Send + 'static,
    F: Future<Output = Result<T>> + Send + 'static,
{
    let audit = crate::audit::current();
    let span = tracing::Span::current();
    let guarded = AssertUnwindSafe(work).catch_unwind();
    let task = match audit {
        Some(handle) => runtime.spawn(crate::audit::with_handle(handle, guarded).instrument(span)),
        None => runtime.spawn(guarded.instrument(span)),
    };
    let mut task = AbortOnDrop {
        task,
        control: Arc::clone(&control),
        armed: true,
    };
    let deadline = control.start(limit);
    let joined = match tokio::time::timeout_at(deadline, &mut task.task).await {
        Ok(joined) => joined,
        Err(_) => {
            control.state.store(TIMED_OUT, Ordering::Release);
            return Err(Error::Refused(time_limit_error(limit)));
        }
    };
    // The task has ended: nothing left to abort or cancel.
    task.armed = false;
    match joined {
        Ok(Ok(result)) => result,
        Ok(Err(payload)) => Err(Error::Refused(internal_after_panic(payload.as_ref()))),
        Err(e) if e.is_panic() => Err(Error::Refused(internal_after_panic(
            e.into_panic().as_ref(),
        ))),
        Err(_) => Err(Error::refused(
            ErrorKind::Cancelled,
            "the query was cancelled",
        )),
    }
}

/// Runs `work` (synchronous, e.g. parsing client text) on a blocking
/// thread of the execution runtime, whose stack is as deep as its
/// workers'; a panic becomes an internal error.
pub async fn on_deep_stack<T, F>(runtime: &tokio::runtime::Handle, work: F) -> Result<T>
where
    T: Send + 'static,
    F: FnOnce() -> Result<T> + Send + 'static,
{
    match runtime.spawn_blocking(work).await {
        Ok(result) => result,
        Err(e) if e.is_panic() => Err(Error::Refused(internal_after_panic(
            e.into_panic().as_ref(),
        ))),
        Err(_) => Err(Error::refused(
            ErrorKind::Cancelled,
            "the request was cancelled",
        )),
    }
}

/// Executes a statement on the execution runtime: `start` builds its
/// physical stream there (its error is returned here), then its batches
/// flow to the returned stream (of `schema`) through a small buffer. The
/// statement stops at `control`'s deadline (the stream ends with a
/// time-limit error), when the returned stream is dropped, or at a panic
/// (an internal error). `hold` (its admission slot) lives as long as the
/// statement runs.
pub async fn spawn_stream<F, H>(
    runtime: &tokio::runtime::Handle,
    schema: SchemaRef,
    start: F,
    control: Arc<QueryControl>,
    hold: H,
) -> Result<SendableRecordBatchStream>
where
    F: Future<Output = DfResult<SendableRecordBatchStream>> + Send + 'static,
    H: Send + 'static,
{
    let (tx, rx) =
        tokio::sync::mpsc::channel::<DfResult<arrow::record_batch::RecordBatch>>(BUFFERED_BATCHES);
    let (started_tx, started_rx) = tokio::sync::oneshot::channel::<DfResult<()>>();
    let deadline = control
        .deadline
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .map(|(at, _)| at);
    let produce = {
        let tx = tx.clone();
        async move {
            let mut stream = match start.await {
                Ok(stream) => {
                    let _ = started_tx.send(Ok(()));
                    stream
                }
                Err(e) => {
                    let _ = started_tx.send(Err(e));
                    return Ok(());
                }
            };
            while let Some(item) = stream.next().await {
                let failed = item.is_err();
                if tx.send(item).await.is_err() || failed {
                    break;
                }
            }
            Ok::<_, DataFusionError>(())
        }
    };
    let audit = crate::audit::current();
    let span = tracing::Span::current();
    let watched = {
        let control = Arc::clone(&control);
        async move {
            let _hold = hold;
            let outcome = match deadline {
                Some(at) => tokio::time::timeout_at(at, AssertUnwindSafe(produce).catch_unwind())
                    .await
                    .map_err(|_| {
                        control.state.store(TIMED_OUT, Ordering::Release);
                        control.time_limit_error()
                    }),
                None => Ok(AssertUnwindSafe(produce).catch_unwind().await),
            };
            let error = match outcome {
                Ok(Ok(Ok(()))) => None,
                Ok(Ok(Err(e))) => Some(e),
                Ok(Err(payload)) => Some(internal_after_panic(payload.as_ref()).into_datafusion()),
                Err(limit) => Some(limit.into_datafusion()),
            };
            if let Some(e) = error {
                let _ = tx.send(Err(e)).await;
            }
        }
    };
    let task = match audit {
        Some(handle) => runtime.spawn(crate::audit::with_handle(handle, watched).instrument(span)),
        None => runtime.spawn(watched.instrument(span)),
    };
    let guard = AbortOnDrop {
        task,
        control,
        armed: true,
    };
    let mut rx = rx;
    // Building the stream (the optimizer folds constants) is bounded by
    // the deadline too, also on this side.
    let started = match deadline {
        Some(at) => match tokio::time::timeout_at(at, started_rx).await {
            Ok(started) => started,
            Err(_) => return Err(Error::Refused(guard.control.time_limit_error())),
        },
        None => started_rx.await,
    };
    match started {
        Ok(Ok(())) => {}
        Ok(Err(e)) => return Err(Error::DataFusion(e)),
        // The task ended before building its stream: a panic or the
        // deadline, which it reported on the batch channel.
        Err(_) => {
            return Err(match rx.recv().await {
                Some(Err(e)) => Error::DataFusion(e),
                _ => Error::refused(ErrorKind::Internal, "internal error"),
            });
        }
    }
    let batches = tokio_stream_from(rx).map(move |item| {
        // The guard lives as long as the stream is read.
        let _ = &guard;
        item
    });
    Ok(Box::pin(RecordBatchStreamAdapter::new(schema, batches)))
}

/// The items of `rx` as a stream.
fn tokio_stream_from<T: Send + 'static>(
    mut rx: tokio::sync::mpsc::Receiver<T>,
) -> impl futures::Stream<Item = T> + Send {
    futures::stream::poll_fn(move |cx| rx.poll_recv(cx))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_panic_answers_its_statement_only() {
        let rt = ExecRuntime::default();
        let control = QueryControl::new();
        let e = run(
            rt.handle(),
            async {
                if std::hint::black_box(true) {
                    panic!("deliberate");
                }
                Ok(())
            },
            control,
            Duration::from_secs(5),
        )
        .await
        .unwrap_err();
        assert_eq!(e.kind(), ErrorKind::Internal);
        assert!(!e.message().contains("deliberate"), "{e}");
        let ok = run(
            rt.handle(),
            async { Ok(7) },
            QueryControl::new(),
            Duration::from_secs(5),
        )
        .await;
        assert_eq!(ok.unwrap(), 7);
    }

    #[test]
    fn a_cleared_deadline_is_not_restarted_by_execution() {
        let control = QueryControl::new();
        control.start(Duration::from_millis(1));
        control.clear_deadline();
        control.start_unless_started(Duration::from_millis(1));
        std::thread::sleep(Duration::from_millis(5));
        assert!(control.check().is_ok(), "an export job keeps running");
        let plain = QueryControl::new();
        plain.start_unless_started(Duration::from_millis(1));
        std::thread::sleep(Duration::from_millis(5));
        assert!(plain.check().is_err());
    }

    #[test]
    fn time_waiting_for_a_slot_moves_the_deadline() {
        let control = QueryControl::new();
        control.start(Duration::from_millis(20));
        control.postpone(Duration::from_secs(60));
        std::thread::sleep(Duration::from_millis(30));
        assert!(control.check().is_ok());
    }

    #[tokio::test]
    async fn work_past_its_deadline_is_stopped() {
        let rt = ExecRuntime::default();
        let control = QueryControl::new();
        let t0 = std::time::Instant::now();
        let e = run(
            rt.handle(),
            async {
                tokio::time::sleep(Duration::from_secs(30)).await;
                Ok(())
            },
            Arc::clone(&control),
            Duration::from_millis(100),
        )
        .await
        .unwrap_err();
        assert_eq!(e.kind(), ErrorKind::TimeLimit);
        assert!(t0.elapsed() < Duration::from_secs(5));
        assert!(control.check().is_err());
    }

    #[test]
    fn deep_recursion_fits_the_execution_threads() {
        fn depth(n: usize) -> usize {
            // About a kilobyte of stack per level.
            let pad = std::hint::black_box([0u8; 1024]);
            if n == 0 {
                pad[0] as usize
            } else {
                1 + depth(n - 1) + pad[n % 1024] as usize
            }
        }
        let rt = ExecRuntime::default();
        let n = rt
            .handle()
            .block_on(async { tokio::spawn(async { depth(100_000) }).await })
            .unwrap();
        assert!(n >= 100_000);
    }
}
