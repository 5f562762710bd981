//! The connection to Milvus and every call made over it: the
//! configuration and client one catalog and its tables share (the client
//! reconnected after a transport failure), each call under the catalog's
//! deadline, failures turned into errors that never quote the server's
//! text.

use std::fmt;

use datafusion::common::Result as DFResult;
use datafusion::error::DataFusionError;
use milvus::v2::prelude::{ClientV2, ConnectConfig, ConsistencyLevel};
use sluice_planner::connector::ConnectorUnavailable;

use super::config::{MilvusConfig, consistency_level};
use crate::error::Error;

/// Largest page / top-k Milvus accepts.
pub(super) const MILVUS_MAX_LIMIT: usize = 16_384;

/// What a catalog and its tables share: the configuration and the
/// connection.
pub(super) struct Shared {
    pub(super) cfg: MilvusConfig,
    pub(super) client: tokio::sync::Mutex<Option<ClientV2>>,
}

/// An answer larger than the SDK accepts (4 MiB): ask for fewer rows.
#[derive(Debug)]
struct AnswerTooLarge;

impl fmt::Display for AnswerTooLarge {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("the Milvus answer exceeds the 4 MiB message limit")
    }
}

impl std::error::Error for AnswerTooLarge {}

pub(super) fn is_too_large(e: &DataFusionError) -> bool {
    matches!(e.find_root(), DataFusionError::External(x) if x.is::<AnswerTooLarge>())
}

fn unavailable(cfg: &MilvusConfig, reason: impl Into<String>) -> DataFusionError {
    ConnectorUnavailable {
        catalog: cfg.name.clone(),
        reason: reason.into(),
        peer: false,
    }
    .into_datafusion()
}

impl Shared {
    /// The connection of a catalog, not made yet.
    pub(super) fn new(cfg: MilvusConfig) -> Self {
        Self {
            cfg,
            client: tokio::sync::Mutex::new(None),
        }
    }

    pub(super) fn consistency(&self) -> Option<ConsistencyLevel> {
        self.cfg.consistency.as_deref().and_then(consistency_level)
    }

    async fn client(&self) -> DFResult<ClientV2> {
        let mut guard = self.client.lock().await;
        if let Some(c) = guard.as_ref() {
            return Ok(c.clone());
        }
        let mut config = ConnectConfig::new()
            .uri(self.cfg.uri.clone())
            .connect_timeout(self.cfg.timeout)
            .rpc_timeout(self.cfg.timeout)
            // Retries end within the call's deadline (and an oversized
            // answer is not asked for again and again).
            .retry(
                milvus::v2::prelude::RetryConfig::new()
                    .max_attempts(3)
                    .max_retry_timeout(self.cfg.timeout),
            )
            .database(self.cfg.database.clone());
        if let Some(t) = &self.cfg.token {
            config = config.token(t.expose().to_string());
        }
        if let Some(u) = &self.cfg.username {
            config = config.username(u.clone());
        }
        if let Some(p) = &self.cfg.password {
            config = config.password(p.expose().to_string());
        }
        let client = match tokio::time::timeout(self.cfg.timeout, ClientV2::new(&config)).await {
            Ok(Ok(c)) => c,
            Ok(Err(e)) => {
                tracing::warn!(catalog = %self.cfg.name, error = %e, "cannot connect to milvus");
                return Err(unavailable(&self.cfg, "cannot connect"));
            }
            Err(_) => {
                return Err(unavailable(
                    &self.cfg,
                    format!("no connection within {:?}", self.cfg.timeout),
                ));
            }
        };
        *guard = Some(client.clone());
        Ok(client)
    }

    /// Runs one call under the deadline. Transport failures drop the
    /// client (the next call reconnects) and are reported as
    /// unavailability with a fixed reason: server and transport texts can
    /// quote the request's expression (the token's policy), so they only
    /// go to the log.
    pub(super) async fn call<T, F>(&self, what: &str, f: impl FnOnce(ClientV2) -> F) -> DFResult<T>
    where
        F: Future<Output = milvus::v2::error::Result<T>>,
    {
        self.call_traced(what, None, f).await
    }

    /// [`Shared::call`] on behalf of a request whose W3C trace id is
    /// `trace`: Milvus receives it as its `client_request_id` (which Milvus
    /// uses as the trace id of its own spans).
    pub(super) async fn call_traced<T, F>(
        &self,
        what: &str,
        trace: Option<&str>,
        f: impl FnOnce(ClientV2) -> F,
    ) -> DFResult<T>
    where
        F: Future<Output = milvus::v2::error::Result<T>>,
    {
        use milvus::v2::error::Error as E;
        let client = self.client().await?;
        let call = f(client);
        let call = async move {
            match trace {
                Some(t) => milvus::v2::client::with_client_request_id(t.to_string(), call).await,
                None => call.await,
            }
        };
        let outcome = tokio::time::timeout(self.cfg.timeout, call).await;
        let e = match outcome {
            Ok(Ok(v)) => return Ok(v),
            Ok(Err(e)) => e,
            Err(_) => {
                *self.client.lock().await = None;
                tracing::warn!(catalog = %self.cfg.name, what, "milvus call timed out");
                return Err(unavailable(
                    &self.cfg,
                    format!("{what}: no answer within {:?}", self.cfg.timeout),
                ));
            }
        };
        tracing::warn!(catalog = %self.cfg.name, what, error = %e, "milvus call failed");
        let root = match &e {
            E::RetryExhausted { source, .. } => source.as_ref(),
            other => other,
        };
        match root {
            // The answer exceeds the SDK's 4 MiB message limit.
            // gRPC codes 8 (RESOURCE_EXHAUSTED) and 11 (OUT_OF_RANGE).
            E::Grpc(status) if matches!(i32::from(status.code()), 8 | 11) => {
                Err(DataFusionError::External(Box::new(AnswerTooLarge)))
            }
            E::Grpc(_) | E::Timeout(_) | E::Cancelled(_) | E::RetryExhausted { .. } => {
                *self.client.lock().await = None;
                Err(unavailable(
                    &self.cfg,
                    format!("{what} failed (transport error)"),
                ))
            }
            // CollectionNotLoaded: an operator must load it.
            E::Server(s) if s.code() == 101 || s.legacy_code() == 101 => Err(unavailable(
                &self.cfg,
                format!("{what} failed: the collection is not loaded"),
            )),
            _ => Err(DataFusionError::External(Box::new(Error::Milvus {
                catalog: self.cfg.name.clone(),
                message: format!("{what} failed; the details are in the server log"),
            }))),
        }
    }
}
