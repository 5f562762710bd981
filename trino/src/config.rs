//! `[trino]`: the Trino client protocol (`POST /v1/statement`) on
//! `http_addr`. Durations are written like Trino's (`"500ms"`, `"30s"`,
//! `"5m"`, `"1h"`, `"1.5d"`).

use std::time::Duration;

use serde::Deserialize;
use sluice_planner::units::de_duration;

use crate::query::Limits;

/// The `[trino]` section.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct TrinoConfig {
    /// Serve the Trino protocol.
    pub enabled: bool,
    /// A query whose client has not polled for this long is cancelled and
    /// its resources freed (Trino's `query.client.timeout`).
    #[serde(deserialize_with = "de_duration")]
    pub client_timeout: Duration,
    /// Longest a query may run; the session property
    /// `query_max_run_time` can only lower it.
    #[serde(deserialize_with = "de_duration")]
    pub max_run_time: Duration,
    /// How long one poll waits for data before answering without any.
    #[serde(deserialize_with = "de_duration")]
    pub max_wait: Duration,
    /// Most rows in one result page.
    pub page_max_rows: usize,
    /// Most bytes of JSON row data in one result page (a page holds at
    /// least one row).
    pub page_max_bytes: usize,
    /// Queries executing at once; further ones wait in state QUEUED.
    pub max_concurrent_queries: usize,
    /// Queries waiting at once; beyond that a query fails with
    /// QUERY_QUEUE_FULL. Queries whose pages were not all fetched count.
    pub max_queued_queries: usize,
    /// Live queries of one token (running, queued or not fully fetched);
    /// beyond that its new queries fail with QUERY_REJECTED, so one token
    /// cannot take every slot.
    pub max_queries_per_token: usize,
    /// Base URL of `nextUri` / `infoUri` when sluice runs behind a proxy
    /// (default: `http://` + the request's `Host`).
    pub external_url: Option<String>,
}

impl Default for TrinoConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            client_timeout: Duration::from_secs(300),
            max_run_time: Duration::from_secs(3600),
            max_wait: Duration::from_secs(1),
            page_max_rows: 65_536,
            page_max_bytes: 1 << 20,
            max_concurrent_queries: 16,
            max_queued_queries: 100,
            max_queries_per_token: 8,
            external_url: None,
        }
    }
}

impl TrinoConfig {
    /// Every problem with the settings, each a sentence naming its key.
    pub fn problems(&self) -> Vec<String> {
        let mut problems = Vec::new();
        if self.page_max_rows == 0 || self.page_max_bytes == 0 {
            problems.push("trino.page_max_rows and trino.page_max_bytes must be at least 1".into());
        }
        if self.max_concurrent_queries == 0 || self.max_queries_per_token == 0 {
            problems.push(
                "trino.max_concurrent_queries and trino.max_queries_per_token must be at least 1"
                    .into(),
            );
        }
        if self.client_timeout < self.max_wait * 2 {
            problems.push(
                "trino.client_timeout must be at least twice trino.max_wait (a poll waits up to max_wait)"
                    .into(),
            );
        }
        if self.client_timeout.is_zero() || self.max_run_time.is_zero() {
            problems.push("trino.client_timeout and trino.max_run_time must be positive".into());
        }
        if let Some(u) = &self.external_url
            && url::Url::parse(u).is_err()
        {
            problems.push(format!("trino.external_url: '{u}' is not a URL"));
        }
        problems
    }

    /// The bounds of running queries.
    pub fn limits(&self) -> Limits {
        Limits {
            page_max_rows: self.page_max_rows.max(1),
            page_max_bytes: self.page_max_bytes.max(1),
            max_wait: self.max_wait,
            client_timeout: self.client_timeout,
            max_run_time: self.max_run_time,
            max_concurrent: self.max_concurrent_queries.max(1),
            max_queued: self.max_queued_queries,
            max_per_token: self.max_queries_per_token.max(1),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_valid_and_bad_values_are_named() {
        assert!(TrinoConfig::default().problems().is_empty());
        let bad = TrinoConfig {
            page_max_rows: 0,
            max_wait: Duration::from_secs(10),
            client_timeout: Duration::from_secs(5),
            external_url: Some("not a url".into()),
            ..TrinoConfig::default()
        };
        let problems = bad.problems().join("; ");
        for key in [
            "trino.page_max_rows",
            "trino.client_timeout must be at least twice",
            "trino.external_url",
        ] {
            assert!(problems.contains(key), "{key} in {problems}");
        }
    }

    #[test]
    fn durations_are_written_like_trinos() {
        let c: TrinoConfig = serde_json::from_value(serde_json::json!({
            "client_timeout": "2m", "max_wait": "250ms", "max_run_time": "1.5h"
        }))
        .unwrap();
        assert_eq!(c.client_timeout, Duration::from_secs(120));
        assert_eq!(c.max_wait, Duration::from_millis(250));
        assert_eq!(c.max_run_time, Duration::from_secs(5400));
        assert!(serde_json::from_value::<TrinoConfig>(serde_json::json!({"max_wait": 3})).is_err());
    }
}
