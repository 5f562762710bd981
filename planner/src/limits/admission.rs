//! Admission: how many statements execute at once, in the gateway
//! (`[limits] max_concurrent_queries`) and per token
//! (`[limits] max_queries_per_token`). A statement beyond them waits in a
//! bounded queue (`[limits] max_queued_queries`) for at most
//! `[limits] queue_timeout`; beyond that it is refused as "too many
//! queries". A token may have as many statements waiting as executing.
//! A statement holds a slot while it is planned, and again from the start
//! of its execution until its result stream ends or is dropped.

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use crate::error::{Error, ErrorKind, Result};

/// Per-token semaphores kept before idle ones are forgotten.
const PRUNE_AT: usize = 4096;

/// The gateway's executing-query slots.
#[derive(Debug)]
pub struct Admission {
    global: Arc<Semaphore>,
    max_concurrent: usize,
    per_token: usize,
    max_queued: usize,
    queue_timeout: Duration,
    queued: Arc<AtomicUsize>,
    tokens: Mutex<HashMap<String, TokenShare>>,
}

/// One token's slots and how many of its statements wait for one.
#[derive(Debug, Clone)]
struct TokenShare {
    slots: Arc<Semaphore>,
    waiting: Arc<AtomicUsize>,
}

/// Gives back a place in a queue when a wait ends, however it ends.
struct Leave(Arc<AtomicUsize>);

impl Drop for Leave {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
    }
}

/// An executing statement's slots; dropping it frees them.
#[derive(Debug)]
pub struct Slot {
    _token: OwnedSemaphorePermit,
    _global: OwnedSemaphorePermit,
}

impl Admission {
    /// `max_concurrent` statements in all, `per_token` per token, at most
    /// `max_queued` waiting, each for at most `queue_timeout`.
    pub fn new(
        max_concurrent: usize,
        per_token: usize,
        max_queued: usize,
        queue_timeout: Duration,
    ) -> Self {
        Self {
            global: Arc::new(Semaphore::new(max_concurrent.max(1))),
            max_concurrent: max_concurrent.max(1),
            per_token: per_token.max(1),
            max_queued,
            queue_timeout,
            queued: Arc::new(AtomicUsize::new(0)),
            tokens: Mutex::new(HashMap::new()),
        }
    }

    /// Statements executing now.
    pub fn executing(&self) -> usize {
        self.max_concurrent - self.global.available_permits()
    }

    /// Statements waiting now.
    pub fn queued(&self) -> usize {
        self.queued.load(Ordering::Relaxed)
    }

    fn token_share(&self, token_id: &str) -> TokenShare {
        let mut tokens = self.tokens.lock().unwrap_or_else(|e| e.into_inner());
        if tokens.len() >= PRUNE_AT && !tokens.contains_key(token_id) {
            // Idle tokens: no permit out, nobody else holding the share.
            let full = self.per_token;
            tokens.retain(|_, s| {
                Arc::strong_count(&s.slots) > 1 || s.slots.available_permits() < full
            });
        }
        tokens
            .entry(token_id.to_string())
            .or_insert_with(|| TokenShare {
                slots: Arc::new(Semaphore::new(self.per_token)),
                waiting: Arc::new(AtomicUsize::new(0)),
            })
            .clone()
    }

    /// A slot for a statement of `token_id`: at once if one is free, else
    /// after waiting in the queue; "too many queries" when the queue is
    /// full or the wait is over.
    pub async fn admit(&self, token_id: &str) -> Result<Slot> {
        let share = self.token_share(token_id);
        let own = Arc::clone(&share.slots);
        if let Ok(token) = Arc::clone(&own).try_acquire_owned() {
            if let Ok(global) = Arc::clone(&self.global).try_acquire_owned() {
                return Ok(Slot {
                    _token: token,
                    _global: global,
                });
            }
            drop(token);
        }
        // A token may have as many statements waiting as executing: one
        // token's backlog never fills the gateway's queue.
        let own_claim = share
            .waiting
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |w| {
                (w < self.per_token).then_some(w + 1)
            });
        if own_claim.is_err() {
            return Err(Error::refused(
                ErrorKind::TooManyQueries,
                format!(
                    "too many queries of this token: {} are executing and {} waiting \
                     (limits.max_queries_per_token); finish or cancel one first",
                    self.per_token, self.per_token
                ),
            ));
        }
        let _own_leave = Leave(Arc::clone(&share.waiting));
        // Claim a place in the queue (never more than `max_queued`).
        let claimed = self
            .queued
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |q| {
                (q < self.max_queued).then_some(q + 1)
            });
        if claimed.is_err() {
            return Err(Error::refused(
                ErrorKind::TooManyQueries,
                format!(
                    "too many queries: {} are executing and {} waiting in this gateway \
                     (limits.max_concurrent_queries, limits.max_queued_queries); retry later",
                    self.executing(),
                    self.max_queued
                ),
            ));
        }
        let _leave = Leave(Arc::clone(&self.queued));
        let global = Arc::clone(&self.global);
        let wait = async move {
            // The token's own share first, so one token's backlog never
            // holds gateway slots while it waits for itself.
            let token = own.acquire_owned().await.ok()?;
            let global = global.acquire_owned().await.ok()?;
            Some(Slot {
                _token: token,
                _global: global,
            })
        };
        match tokio::time::timeout(self.queue_timeout, wait).await {
            Ok(Some(slot)) => Ok(slot),
            _ => Err(Error::refused(
                ErrorKind::TooManyQueries,
                format!(
                    "too many queries: no slot became free within {:?} (limits.queue_timeout; \
                     {} statements at once per token, limits.max_queries_per_token, and {} in \
                     this gateway, limits.max_concurrent_queries); retry later",
                    self.queue_timeout, self.per_token, self.max_concurrent
                ),
            )),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_token_beyond_its_share_waits_then_is_refused() {
        let a = Admission::new(10, 2, 10, Duration::from_millis(100));
        let s1 = a.admit("t").await.unwrap();
        let _s2 = a.admit("t").await.unwrap();
        let e = a.admit("t").await.unwrap_err();
        assert_eq!(e.kind(), ErrorKind::TooManyQueries);
        assert!(e.message().contains("limits.queue_timeout"), "{e}");
        // Another token is not held up by the first one's backlog.
        let _other = a.admit("u").await.unwrap();
        // A freed slot goes to the next waiter.
        let waiter = tokio::spawn(async move {
            let a = a;
            a.admit("t").await.map(|_| ())
        });
        tokio::time::sleep(Duration::from_millis(20)).await;
        drop(s1);
        waiter.await.unwrap().unwrap();
    }

    #[tokio::test]
    async fn one_token_cannot_fill_the_queue() {
        let a = Arc::new(Admission::new(4, 1, 100, Duration::from_secs(5)));
        let _held = a.admit("t").await.unwrap();
        let waiting = {
            let a = Arc::clone(&a);
            tokio::spawn(async move { a.admit("t").await.map(|_| ()) })
        };
        tokio::time::sleep(Duration::from_millis(20)).await;
        let e = a.admit("t").await.unwrap_err();
        assert!(e.message().contains("of this token"), "{e}");
        assert_eq!(a.queued(), 1);
        // Others still find room.
        let _other = a.admit("u").await.unwrap();
        waiting.abort();
    }

    #[tokio::test]
    async fn a_full_queue_refuses_at_once() {
        let a = Arc::new(Admission::new(1, 1, 1, Duration::from_secs(5)));
        let _held = a.admit("t").await.unwrap();
        let queued = {
            let a = Arc::clone(&a);
            tokio::spawn(async move { a.admit("u").await.map(|_| ()) })
        };
        tokio::time::sleep(Duration::from_millis(20)).await;
        assert_eq!(a.queued(), 1);
        let t0 = std::time::Instant::now();
        let e = a.admit("v").await.unwrap_err();
        assert!(t0.elapsed() < Duration::from_secs(1));
        assert!(e.message().contains("limits.max_queued_queries"), "{e}");
        queued.abort();
        let _ = queued.await;
        assert_eq!(a.queued(), 0, "an abandoned wait leaves the queue");
    }
}
