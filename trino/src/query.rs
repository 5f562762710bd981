//! Running Trino queries: one producer task per query pulls the governed
//! stream, encodes pages and hands them over a bounded channel to the
//! client's polls. Memory per query is bounded by the channel (two pages)
//! plus one batch; `DELETE`, an abandoned client or the time limit abort
//! the task, which drops the DataFusion stream and frees its memory.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU8, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use chrono::{DateTime, Utc};
use futures::StreamExt;
use serde_json::Value;
use sluice_planner::GovernedPlan;
use tokio::sync::{Semaphore, mpsc};
use tokio::task::AbortHandle;

use crate::encode;
use crate::error::{
    ABANDONED_QUERY, EXCEEDED_TIME_LIMIT, GENERIC_INTERNAL_ERROR, QUERY_QUEUE_FULL, QUERY_REJECTED,
    TrinoError, USER_CANCELED, from_datafusion, from_plan_error,
};

/// Longest error message kept for a statement that failed before it ran
/// (messages can echo the statement).
const MAX_ERROR_MESSAGE: usize = 1024;

/// Query states as Trino reports them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum State {
    /// Waiting for an execution slot.
    Queued = 0,
    /// Executing.
    Running = 1,
    /// All rows produced.
    Finished = 2,
    /// Failed or cancelled.
    Failed = 3,
}

impl State {
    /// Trino's name.
    pub fn as_str(self) -> &'static str {
        match self {
            State::Queued => "QUEUED",
            State::Running => "RUNNING",
            State::Finished => "FINISHED",
            State::Failed => "FAILED",
        }
    }

    fn from_u8(v: u8) -> State {
        match v {
            0 => State::Queued,
            1 => State::Running,
            2 => State::Finished,
            _ => State::Failed,
        }
    }
}

/// Page and time bounds of queries.
#[derive(Debug, Clone)]
pub struct Limits {
    /// Most rows per page.
    pub page_max_rows: usize,
    /// Most JSON bytes per page.
    pub page_max_bytes: usize,
    /// How long a poll waits for data.
    pub max_wait: Duration,
    /// Idle time after which a query is abandoned.
    pub client_timeout: Duration,
    /// Gateway-wide run-time limit.
    pub max_run_time: Duration,
    /// Queries executing at once.
    pub max_concurrent: usize,
    /// Queries waiting at once.
    pub max_queued: usize,
    /// Live queries of one token (running, queued, or holding pages
    /// nobody fetched yet).
    pub max_per_token: usize,
}

/// What the producer hands to polls.
#[derive(Debug)]
pub enum Msg {
    /// Comma-separated JSON rows and their count.
    Page(Vec<u8>, usize),
    /// All rows were sent; whether the row limit cut the result.
    Finished {
        /// Rows were cut.
        truncated: bool,
    },
}

/// How far the producer got (for the first answer, which carries no data
/// but can already report a truncated result that ended quickly).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Progress {
    /// Queued or producing.
    Working,
    /// Waiting for the client to fetch pages.
    Blocked,
    /// All pages produced; whether the row limit cut the result.
    Ended(bool),
    /// Failed.
    Failed,
}

/// A response already sent for a page token, kept for retries.
#[derive(Debug, Clone)]
pub struct Cached {
    /// The page token it answered.
    pub token: u64,
    /// Body.
    pub body: Bytes,
    /// Extra headers.
    pub headers: Vec<(&'static str, String)>,
}

/// Per-query state behind the poll lock.
#[derive(Debug)]
pub struct Pages {
    /// Pages from the producer.
    pub rx: mpsc::Receiver<Msg>,
    /// A message read ahead (after a page, to fold a quick end into it).
    pub pending: Option<Msg>,
    /// The last response (for retries).
    pub last: Option<Cached>,
    /// Whether the final response was produced.
    pub done: bool,
}

/// One query.
#[derive(Debug)]
pub struct Query {
    /// Trino query id.
    pub id: String,
    /// Unguessable part of the query's URLs.
    pub slug: String,
    /// The token that runs it (only it may poll, see or cancel it).
    pub token_id: String,
    /// `X-Trino-User` as sent (recorded, never trusted).
    pub user: Option<String>,
    /// Creation time.
    pub created: DateTime<Utc>,
    /// The result's columns (Trino JSON).
    pub columns: Value,
    /// Polling state.
    pub pages: tokio::sync::Mutex<Pages>,
    /// The statement and what policy did to it (for audit records and
    /// receipts); unset for statements that failed before planning.
    pub facts: std::sync::OnceLock<(String, sluice_planner::PlanFacts)>,
    started: Instant,
    state: AtomicU8,
    last_access: Mutex<Instant>,
    failure: Mutex<Option<TrinoError>>,
    rows: AtomicU64,
    /// Bytes the query read through its secure views that no audit record
    /// holds yet: set by the producer when the run ends however it ends,
    /// taken by the poll that reports the end.
    scanned: AtomicU64,
    truncated: AtomicBool,
    done: AtomicBool,
    finished_at: Mutex<Option<Instant>>,
    producing: AtomicBool,
    task: Mutex<Option<AbortHandle>>,
    progress: tokio::sync::watch::Sender<Progress>,
}

impl Query {
    fn new(
        id: String,
        token_id: String,
        user: Option<String>,
        columns: Value,
        rx: mpsc::Receiver<Msg>,
    ) -> Self {
        Query {
            id,
            slug: uuid::Uuid::new_v4().simple().to_string(),
            token_id,
            user,
            created: Utc::now(),
            columns,
            pages: tokio::sync::Mutex::new(Pages {
                rx,
                pending: None,
                last: None,
                done: false,
            }),
            facts: std::sync::OnceLock::new(),
            started: Instant::now(),
            state: AtomicU8::new(State::Queued as u8),
            last_access: Mutex::new(Instant::now()),
            failure: Mutex::new(None),
            rows: AtomicU64::new(0),
            scanned: AtomicU64::new(0),
            truncated: AtomicBool::new(false),
            done: AtomicBool::new(false),
            finished_at: Mutex::new(None),
            producing: AtomicBool::new(false),
            task: Mutex::new(None),
            progress: tokio::sync::watch::channel(Progress::Working).0,
        }
    }

    /// Current state.
    pub fn state(&self) -> State {
        State::from_u8(self.state.load(Ordering::Acquire))
    }

    fn set_state(&self, s: State) {
        self.state.store(s as u8, Ordering::Release);
    }

    /// Records a poll (resets the abandonment clock).
    pub fn touch(&self) {
        *self.last_access.lock().expect("lock") = Instant::now();
    }

    fn idle(&self) -> Duration {
        self.last_access.lock().expect("lock").elapsed()
    }

    /// Bytes read that no audit record holds yet (see `scanned`); taken
    /// once.
    pub fn take_bytes_scanned(&self) -> u64 {
        self.scanned.swap(0, Ordering::AcqRel)
    }

    /// The failure, once the query failed.
    pub fn failure(&self) -> Option<TrinoError> {
        self.failure.lock().expect("lock").clone()
    }

    /// Waits up to `limit` until the producer ended, failed or waits for
    /// the client; returns how far it got.
    pub async fn settle(&self, limit: Duration) -> Progress {
        let mut rx = self.progress.subscribe();
        let _ = tokio::time::timeout(limit, rx.wait_for(|p| *p != Progress::Working)).await;
        *rx.borrow()
    }

    fn set_progress(&self, p: Progress) {
        self.progress.send_replace(p);
    }

    /// Fails the query (the first failure wins) and stops its producer.
    pub fn fail(&self, error: TrinoError) {
        {
            let mut f = self.failure.lock().expect("lock");
            if f.is_none() {
                *f = Some(error);
            }
        }
        self.set_state(State::Failed);
        self.set_progress(Progress::Failed);
        if let Some(task) = self.task.lock().expect("lock").take() {
            task.abort();
        }
    }

    /// Whether the final response was produced (the query holds no pages).
    pub fn is_done(&self) -> bool {
        self.done.load(Ordering::Acquire)
    }

    /// Marks the final response as produced.
    pub fn set_done(&self) {
        if !self.done.swap(true, Ordering::AcqRel) {
            *self.finished_at.lock().expect("lock") = Some(Instant::now());
        }
    }

    /// Time since the final response was produced.
    fn since_done(&self) -> Option<Duration> {
        self.finished_at.lock().expect("lock").map(|t| t.elapsed())
    }

    /// Whether the query still holds execution resources or pages: not
    /// done, or its producer task has not ended yet (a task that does not
    /// yield outlives its cancellation until it does).
    pub fn is_live(&self) -> bool {
        !self.is_done() || self.producing.load(Ordering::Acquire)
    }

    /// Marks the final page as produced.
    pub fn finish(&self, truncated: bool) {
        self.truncated.store(truncated, Ordering::Release);
        if self.state() != State::Failed {
            self.set_state(State::Finished);
        }
    }

    /// Rows handed to the client so far.
    pub fn rows(&self) -> u64 {
        self.rows.load(Ordering::Acquire)
    }

    /// Counts rows handed to the client.
    pub fn add_rows(&self, n: usize) {
        self.rows.fetch_add(n as u64, Ordering::AcqRel);
    }

    /// Whether the row limit cut the result.
    pub fn truncated(&self) -> bool {
        self.truncated.load(Ordering::Acquire)
    }

    /// Time since the query was created.
    pub fn elapsed(&self) -> Duration {
        self.started.elapsed()
    }
}

/// All running queries of this gateway.
#[derive(Debug)]
pub struct Queries {
    map: Mutex<HashMap<String, Arc<Query>>>,
    permits: Arc<Semaphore>,
    token_slots: Mutex<HashMap<String, Arc<Semaphore>>>,
    seq: AtomicU64,
    /// Bounds.
    pub limits: Limits,
}

impl Queries {
    /// An empty registry.
    pub fn new(limits: Limits) -> Arc<Self> {
        Arc::new(Self {
            map: Mutex::new(HashMap::new()),
            permits: Arc::new(Semaphore::new(limits.max_concurrent)),
            token_slots: Mutex::new(HashMap::new()),
            seq: AtomicU64::new(0),
            limits,
        })
    }

    /// Execution slots one token may hold at once: half of them, rounded
    /// up, so another token always finds one when there are two or more.
    pub fn slots_per_token(&self) -> usize {
        // Also fewer than the execution threads: an expression that runs
        // long between two batches holds its thread until it yields.
        self.limits
            .max_concurrent
            .div_ceil(2)
            .min(sluice_planner::limits::run::threads().saturating_sub(1))
            .max(1)
    }

    fn token_slots(&self, token: &str) -> Arc<Semaphore> {
        let mut slots = self.token_slots.lock().expect("lock");
        Arc::clone(
            slots
                .entry(token.to_string())
                .or_insert_with(|| Arc::new(Semaphore::new(self.slots_per_token()))),
        )
    }

    /// A new Trino-style query id (`20241130_083100_00001_a1b2c`).
    pub fn next_id(&self) -> String {
        let n = self.seq.fetch_add(1, Ordering::AcqRel) + 1;
        let suffix: String = uuid::Uuid::new_v4().simple().to_string()[..5].to_string();
        format!(
            "{}_{:05}_{suffix}",
            Utc::now().format("%Y%m%d_%H%M%S"),
            n % 100_000
        )
    }

    /// Starts `plan` as query `id`: it queues for an execution slot, runs
    /// within `run_time`, and streams pages to polls.
    pub fn start(
        self: &Arc<Self>,
        id: String,
        token_id: String,
        user: Option<String>,
        columns: Value,
        plan: GovernedPlan,
        run_time: Duration,
    ) -> Result<Arc<Query>, TrinoError> {
        let (tx, rx) = mpsc::channel(2);
        let query = Arc::new(Query::new(id.clone(), token_id, user, columns, rx));
        {
            // Admission under the registry lock, so concurrent requests
            // cannot overshoot: every query that is not done holds a slot,
            // a queue place or undelivered pages.
            let mut map = self.map.lock().expect("lock");
            let live: Vec<&Arc<Query>> = map.values().filter(|q| q.is_live()).collect();
            if live.len() >= self.limits.max_concurrent + self.limits.max_queued {
                return Err(TrinoError::new(
                    QUERY_QUEUE_FULL,
                    format!(
                        "Too many queries: {} running or queued (trino.max_concurrent_queries + trino.max_queued_queries)",
                        live.len()
                    ),
                ));
            }
            let own = live.iter().filter(|q| q.token_id == query.token_id).count();
            if own >= self.limits.max_per_token {
                return Err(TrinoError::new(
                    QUERY_REJECTED,
                    format!(
                        "This token already has {own} queries running, queued or not fully fetched (trino.max_queries_per_token); finish or cancel one first"
                    ),
                ));
            }
            map.insert(id, Arc::clone(&query));
        }
        // DataFusion runs on its own runtime: a CPU-bound plan that never
        // yields must not starve the HTTP and Flight servers.
        query.producing.store(true, Ordering::Release);
        let runtime = plan.limits().runtime.handle().clone();
        let handle = runtime.spawn(produce(
            Arc::clone(self),
            Arc::clone(&query),
            plan,
            tx,
            run_time,
        ));
        *query.task.lock().expect("lock") = Some(handle.abort_handle());
        // The run-time limit is also watched from here, where timers run
        // even while the plan hogs the execution threads.
        // It ends with the production (or the query), not after the full
        // limit, and never fails a result that was completely produced.
        let weak = Arc::downgrade(&query);
        let mut progress = query.progress.subscribe();
        tokio::spawn(async move {
            tokio::select! {
                () = tokio::time::sleep(run_time) => {}
                _ = progress.wait_for(|p| matches!(p, Progress::Ended(_) | Progress::Failed)) => return,
            }
            if let Some(q) = weak.upgrade()
                && !q.is_done()
                && *q.progress.borrow() == Progress::Working
            {
                q.fail(time_limit(run_time));
            }
        });
        Ok(query)
    }

    /// Registers a statement that failed before it ran, so its error is
    /// answered by the first poll like every other result (some clients
    /// read nothing from the POST answer).
    pub fn start_failed(
        &self,
        id: String,
        token_id: String,
        user: Option<String>,
        error: TrinoError,
    ) -> Arc<Query> {
        let mut error = error;
        if error.message.len() > MAX_ERROR_MESSAGE {
            let mut cut = MAX_ERROR_MESSAGE;
            while !error.message.is_char_boundary(cut) {
                cut -= 1;
            }
            error.message.truncate(cut);
            error.message.push_str(" …");
        }
        let (_tx, rx) = mpsc::channel(1);
        let query = Arc::new(Query::new(id.clone(), token_id, user, Value::Null, rx));
        query.fail(error);
        // Holds no execution resources: retired like a finished query.
        query.set_done();
        self.map
            .lock()
            .expect("lock")
            .insert(id, Arc::clone(&query));
        self.retire();
        query
    }

    /// Bounds what finished queries keep for retries of their last
    /// response: at most `max_concurrent + max_queued` of them, and at most
    /// `max_per_token` per token; the oldest are forgotten first.
    pub fn retire(&self) {
        let mut map = self.map.lock().expect("lock");
        let mut done: Vec<(Duration, String, String)> = map
            .values()
            .filter(|q| !q.is_live())
            .filter_map(|q| {
                q.since_done()
                    .map(|d| (d, q.id.clone(), q.token_id.clone()))
            })
            .collect();
        // Oldest first.
        done.sort_by_key(|d| std::cmp::Reverse(d.0));
        let global = self.limits.max_concurrent + self.limits.max_queued;
        let mut per_token: HashMap<String, usize> = HashMap::new();
        for (_, _, token) in &done {
            *per_token.entry(token.clone()).or_default() += 1;
        }
        let mut total = done.len();
        let mut evict = Vec::new();
        for (_, id, token) in &done {
            let own = per_token.get_mut(token).expect("counted");
            if total > global || *own > self.limits.max_per_token {
                evict.push(id.clone());
                total -= 1;
                *own -= 1;
            }
        }
        for id in evict {
            map.remove(&id);
        }
    }

    /// The query `id`, if it exists.
    pub fn get(&self, id: &str) -> Option<Arc<Query>> {
        self.map.lock().expect("lock").get(id).cloned()
    }

    /// Every live query: running, queued or not fully fetched (for
    /// `GET /v1/query`).
    pub fn all(&self) -> Vec<Arc<Query>> {
        let mut all: Vec<_> = self
            .map
            .lock()
            .expect("lock")
            .values()
            .filter(|q| !q.is_done())
            .cloned()
            .collect();
        all.sort_by(|a, b| a.id.cmp(&b.id));
        all
    }

    /// Cancels and forgets query `id`.
    pub fn cancel(&self, id: &str) {
        if let Some(q) = self.map.lock().expect("lock").remove(id) {
            q.fail(TrinoError::new(USER_CANCELED, "Query was canceled"));
            q.set_done();
        }
    }

    /// Cancels queries whose clients stopped polling and forgets finished
    /// ones nobody polled for a while. Returns how many were removed.
    pub fn reap(&self) -> usize {
        let timeout = self.limits.client_timeout;
        let mut map = self.map.lock().expect("lock");
        // Finished queries stay a little for retries of their last page.
        let grace = timeout.min(Duration::from_secs(30));
        // Finished ones by the time since they finished: retries do not
        // extend it.
        let stale: Vec<String> = map
            .values()
            .filter(|q| match q.since_done() {
                Some(d) => d > grace && !q.producing.load(Ordering::Acquire),
                None => q.idle() > timeout,
            })
            .map(|q| q.id.clone())
            .collect();
        {
            let share = self.slots_per_token();
            self.token_slots
                .lock()
                .expect("lock")
                .retain(|_, sem| Arc::strong_count(sem) > 1 || sem.available_permits() < share);
        }
        for id in &stale {
            let Some(q) = map.get(id).cloned() else {
                continue;
            };
            if q.since_done().is_some() {
                map.remove(id);
                continue;
            }
            // Abandoned: stop it, free its pages, and keep it for the grace
            // period so a late poll learns why.
            tracing::info!(query_id = %q.id, token_id = %q.token_id, "Trino query abandoned by its client");
            q.fail(TrinoError::new(
                ABANDONED_QUERY,
                format!(
                    "Query {} was abandoned: no poll for {:?} (trino.client_timeout)",
                    q.id, timeout
                ),
            ));
            q.set_done();
            if let Ok(mut pages) = q.pages.try_lock() {
                pages.rx.close();
                while pages.rx.try_recv().is_ok() {}
                pages.pending = None;
            }
            q.touch();
        }
        stale.len()
    }

    /// Runs [`Queries::reap`] periodically until the registry is dropped.
    pub fn spawn_reaper(self: &Arc<Self>) {
        let weak = Arc::downgrade(self);
        let every = (self.limits.client_timeout / 4)
            .clamp(Duration::from_millis(100), Duration::from_secs(5));
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(every);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tick.tick().await;
                let Some(queries) = weak.upgrade() else {
                    return;
                };
                queries.reap();
            }
        });
    }

    /// Fails every query (shutdown).
    pub fn shutdown(&self) {
        let all: Vec<_> = self.map.lock().expect("lock").drain().collect();
        for (_, q) in all {
            q.fail(TrinoError::new(
                crate::error::SERVER_SHUTTING_DOWN,
                "sluice is shutting down",
            ));
        }
    }
}

/// The producer of one query.
async fn produce(
    queries: Arc<Queries>,
    query: Arc<Query>,
    plan: GovernedPlan,
    tx: mpsc::Sender<Msg>,
    run_time: Duration,
) {
    // Cleared when this task ends, however it ends (dropped on abort).
    struct Producing(Arc<Query>);
    impl Drop for Producing {
        fn drop(&mut self) {
            self.0.producing.store(false, Ordering::Release);
        }
    }
    let _producing = Producing(Arc::clone(&query));
    let deadline = tokio::time::Instant::now() + run_time;
    let queued = std::time::Instant::now();
    let limits = queries.limits.clone();
    // The token's share first, then a gateway slot.
    let token_slots = queries.token_slots(&query.token_id);
    let permit = tokio::time::timeout_at(deadline, async {
        let own = token_slots.acquire_owned().await?;
        let global = Arc::clone(&queries.permits).acquire_owned().await?;
        Ok::<_, tokio::sync::AcquireError>((own, global))
    })
    .await;
    // Waiting in QUEUED is not the statement's run time (the planner's
    // query_timeout); trino.max_run_time above counts it, as in Trino.
    plan.postpone_deadline(queued.elapsed());
    let permits = match permit {
        Ok(Ok(p)) => p,
        Ok(Err(_)) => {
            query.fail(TrinoError::new(
                GENERIC_INTERNAL_ERROR,
                "query slots closed",
            ));
            return;
        }
        Err(_) => {
            query.fail(time_limit(run_time));
            return;
        }
    };
    query.set_state(State::Running);
    // What the run read, set when its stream ends or is dropped.
    let mut scanned: Option<Arc<AtomicU64>> = None;
    let run = async {
        let mut stream = plan.execute().await.map_err(|e| from_plan_error(&e))?;
        scanned = Some(stream.bytes_scanned_handle());
        let mut page = Vec::new();
        let mut rows = 0usize;
        while let Some(batch) = stream.next().await {
            let batch = batch.map_err(from_datafusion)?;
            let mut start = 0;
            while start < batch.num_rows() {
                let room = limits.page_max_rows - rows;
                let n = encode::write_rows(
                    &batch,
                    start,
                    room,
                    &mut page,
                    limits.page_max_bytes,
                    rows == 0,
                )
                .map_err(|e| from_datafusion(e.into()))?;
                start += n;
                rows += n;
                if rows >= limits.page_max_rows || page.len() >= limits.page_max_bytes {
                    let full = std::mem::take(&mut page);
                    if tx.capacity() == 0 {
                        query.set_progress(Progress::Blocked);
                    }
                    if tx.send(Msg::Page(full, rows)).await.is_err() {
                        return Ok(None); // the query is gone
                    }
                    rows = 0;
                }
            }
        }
        if rows > 0 && tx.send(Msg::Page(page, rows)).await.is_err() {
            return Ok(None);
        }
        Ok::<_, TrinoError>(Some(stream.truncated()))
    };
    let outcome = tokio::time::timeout_at(deadline, run).await;
    // The stream is gone (ended, failed or stopped at the deadline): its
    // charge is final. Recorded before the end is announced.
    if let Some(bytes) = scanned.map(|s| s.load(Ordering::Acquire)) {
        query.scanned.fetch_add(bytes, Ordering::AcqRel);
    }
    // Free the slots and stop counting before the end is announced, so the
    // client's next query is admitted.
    drop(permits);
    query.producing.store(false, Ordering::Release);
    match outcome {
        Ok(Ok(Some(truncated))) => {
            query.set_progress(Progress::Ended(truncated));
            let _ = tx.send(Msg::Finished { truncated }).await;
        }
        Ok(Ok(None)) => {}
        Ok(Err(e)) => query.fail(e),
        Err(_) => query.fail(time_limit(run_time)),
    }
}

fn time_limit(limit: Duration) -> TrinoError {
    TrinoError::new(
        EXCEEDED_TIME_LIMIT,
        format!("Query exceeded the maximum run time of {limit:?}"),
    )
}
