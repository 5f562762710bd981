//! The SQLite connections every request's token lookup reads through.
//!
//! Authentication reads the store on every request (no cache: a revocation
//! takes effect at the next request). Through the pool, each read is three
//! round trips to a connection's worker thread: the liveness ping sqlx
//! sends before handing out an idle connection, the query, and the ping it
//! sends when the connection is returned. A file on local disk does not go
//! stale like a socket, so these connections are held open for the lookup
//! alone and only the query crosses to their worker. Each read is its own
//! read transaction: in WAL mode it sees every write committed before it
//! starts, through whichever connection wrote it.
//!
//! A connection that fails, or whose lookup is abandoned midway, is
//! dropped and a new one opened by a later lookup; a failing lookup
//! reports the error (the caller refuses the request as "store
//! unavailable"), as does one that waits longer than the pool would for a
//! free connection.

use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use sqlx::sqlite::{SqliteConnectOptions, SqliteConnection};
use sqlx::{ConnectOptions as _, Connection as _};
use tokio::sync::Semaphore;

use super::rows::TokenRowWithHash;
use crate::error::{Error, Result};

/// How long a lookup waits for a free connection (the pool's acquire
/// timeout): past it the store counts as unavailable.
const ACQUIRE_TIMEOUT: Duration = Duration::from_secs(10);

/// A few dedicated connections; a lookup takes whichever is free.
#[derive(Debug)]
pub(super) struct TokenReader {
    options: SqliteConnectOptions,
    /// One permit per connection: holding one entitles a lookup to one
    /// connection from `idle` (or to opening one).
    permits: Semaphore,
    /// Open connections nobody is using.
    idle: Mutex<Vec<SqliteConnection>>,
    closed: AtomicBool,
}

impl TokenReader {
    /// At most `count` connections (opened on first use) with `options`.
    pub(super) fn new(options: SqliteConnectOptions, count: usize) -> Self {
        Self {
            options,
            permits: Semaphore::new(count.max(1)),
            idle: Mutex::new(Vec::new()),
            closed: AtomicBool::new(false),
        }
    }

    /// Runs `sql` (one `$1` placeholder bound to `key`) for at most one row.
    pub(super) async fn fetch_optional(
        &self,
        sql: &str,
        key: &str,
    ) -> Result<Option<TokenRowWithHash>> {
        let _permit = tokio::time::timeout(ACQUIRE_TIMEOUT, self.permits.acquire())
            .await
            .map_err(|_| Error::Store(sqlx::Error::PoolTimedOut))?
            .map_err(|_| Error::Store(sqlx::Error::PoolClosed))?;
        if self.closed.load(Ordering::Acquire) {
            return Err(Error::Store(sqlx::Error::PoolClosed));
        }
        let idle = self.idle.lock().unwrap_or_else(|e| e.into_inner()).pop();
        let mut conn = match idle {
            Some(conn) => conn,
            None => self.options.connect().await?,
        };
        // Dropped mid-query (the client went away), the connection is
        // dropped too: sqlx finishes the statement on its worker, and the
        // next lookup opens a new one.
        let row = sqlx::query_as(sql)
            .bind(key)
            .fetch_optional(&mut conn)
            .await;
        match row {
            Ok(row) => {
                self.idle
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .push(conn);
                Ok(row)
            }
            Err(e) => {
                // Whatever went wrong, the next lookup starts on a new
                // connection.
                let _ = conn.close().await;
                Err(e.into())
            }
        }
    }

    /// Closes the connections; lookups from now on fail as on a closed
    /// pool (a closed store reopens nothing, nor creates its file again).
    pub(super) async fn close(&self) {
        self.closed.store(true, Ordering::Release);
        self.permits.close();
        let idle = std::mem::take(&mut *self.idle.lock().unwrap_or_else(|e| e.into_inner()));
        for conn in idle {
            let _ = conn.close().await;
        }
    }

    /// Connections open and idle now.
    #[cfg(test)]
    pub(super) fn idle(&self) -> usize {
        self.idle.lock().unwrap_or_else(|e| e.into_inner()).len()
    }
}
