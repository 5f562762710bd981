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
//! A connection that fails is dropped and opened again on the next read;
//! the failing read reports the error (the caller refuses the request as
//! "store unavailable").

use std::sync::atomic::{AtomicUsize, Ordering};

use sqlx::sqlite::{SqliteConnectOptions, SqliteConnection};
use sqlx::{ConnectOptions as _, Connection as _};
use tokio::sync::Mutex;

use super::rows::TokenRowWithHash;
use crate::error::Result;

/// A few dedicated connections; a read takes whichever is free.
#[derive(Debug)]
pub(super) struct TokenReader {
    options: SqliteConnectOptions,
    connections: Vec<Mutex<Option<SqliteConnection>>>,
    next: AtomicUsize,
}

impl TokenReader {
    /// `count` connections (opened on first use) with `options`.
    pub(super) fn new(options: SqliteConnectOptions, count: usize) -> Self {
        Self {
            options,
            connections: (0..count.max(1)).map(|_| Mutex::new(None)).collect(),
            next: AtomicUsize::new(0),
        }
    }

    /// Runs `sql` (one `$1` placeholder bound to `key`) for at most one row.
    pub(super) async fn fetch_optional(
        &self,
        sql: &str,
        key: &str,
    ) -> Result<Option<TokenRowWithHash>> {
        let mut slot = self.free_connection().await;
        let conn = match slot.as_mut() {
            Some(conn) => conn,
            None => slot.insert(self.options.connect().await?),
        };
        let row = sqlx::query_as(sql)
            .bind(key)
            .fetch_optional(&mut *conn)
            .await;
        if row.is_err() {
            // Whatever went wrong, the next read starts on a new connection.
            if let Some(conn) = slot.take() {
                let _ = conn.close().await;
            }
        }
        Ok(row?)
    }

    /// Closes the open connections (a later read opens them again).
    pub(super) async fn close(&self) {
        for conn in &self.connections {
            if let Some(conn) = conn.lock().await.take() {
                let _ = conn.close().await;
            }
        }
    }

    /// A connection nobody is using, or else the next one in turn once it
    /// is free.
    async fn free_connection(&self) -> tokio::sync::MutexGuard<'_, Option<SqliteConnection>> {
        for conn in &self.connections {
            if let Ok(guard) = conn.try_lock() {
                return guard;
            }
        }
        let i = self.next.fetch_add(1, Ordering::Relaxed) % self.connections.len();
        self.connections[i].lock().await
    }
}
