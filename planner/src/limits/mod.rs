//! Everything that bounds what one request may cost the gateway, so that
//! no token holder can stop it for the others (DESIGN §8 "Limits"):
//!
//! - [`rate`]: statements per minute per token, failed authentications
//!   per client address;
//! - [`parse`]: parsing within a work budget (the parser backtracks);
//! - [`bounds`]: statements too large or too deep, refused before
//!   planning;
//! - [`functions`]: functions whose output or work grows with an argument
//!   (`repeat`, `array_repeat`, `range`, `levenshtein`, …), bounded per
//!   call and stoppable between rows;
//! - [`memory`]: the gateway-wide memory pool, each query's share of it,
//!   and spilling to disk;
//! - [`admission`]: queries executing at once, per gateway and per token,
//!   with a bounded queue;
//! - [`budget`]: each token's bytes scanned and rows returned per hour
//!   and day, against the budgets of its document;
//! - [`run`]: the execution runtime (threads with deep stacks), each
//!   query's time limit and cancellation, and panics turned into errors.
//!
//! [`Limits`] holds the shared state; the governor applies it to every
//! statement of every frontend.

pub mod admission;
pub mod bounds;
pub mod budget;
pub mod functions;
pub mod measure;
pub mod memory;
pub mod parse;
pub mod rate;
pub mod run;

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use serde::Deserialize;

pub use admission::{Admission, Slot};
pub use bounds::StatementBounds;
pub use budget::{Budget, Ledger, Meter, Usage};
pub use memory::MemoryBounds;
pub use rate::RateLimits;
pub use run::{ExecRuntime, QueryControl};

use crate::units::{de_bytes, de_duration};

/// `[limits]`: rates, statement bounds, memory, time and admission.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct LimitsConfig {
    /// Requests per minute of tokens whose document sets no `rate_limit`
    /// (0: unlimited).
    pub rate_limit_per_minute: u32,
    /// Failed authentications per minute allowed from one client address
    /// (IPv6: one /64) before every authentication from it is refused
    /// with 429 / `RESOURCE_EXHAUSTED` until the bucket refills (0: off).
    pub auth_failures_per_minute: u32,
    /// Run time of a statement (planning and execution, until its last
    /// row is produced) for tokens whose document sets no
    /// `query_timeout`.
    #[serde(deserialize_with = "de_duration")]
    pub query_timeout: Duration,
    /// Memory all executing queries together may hold (sorts, joins,
    /// aggregations); default: half the machine's (or the cgroup's) memory.
    #[serde(deserialize_with = "de_opt_bytes")]
    pub memory_limit: Option<u64>,
    /// Memory one query may hold; default: a quarter of the machine's
    /// memory (never more than `memory_limit`).
    #[serde(deserialize_with = "de_opt_bytes")]
    pub query_memory_limit: Option<u64>,
    /// Where sorts, aggregations and joins spill; default:
    /// `<data_dir>/spill`.
    pub spill_dir: Option<PathBuf>,
    /// Disk all spill files together may use (0: no spilling).
    #[serde(deserialize_with = "de_bytes")]
    pub spill_limit: u64,
    /// Queries executing at once in this gateway.
    pub max_concurrent_queries: usize,
    /// Queries of one token executing at once.
    pub max_queries_per_token: usize,
    /// Queries waiting for a slot; beyond it "too many queries".
    pub max_queued_queries: usize,
    /// Longest wait for a slot before "too many queries".
    #[serde(deserialize_with = "de_duration")]
    pub queue_timeout: Duration,
    /// Longest statement text.
    #[serde(deserialize_with = "de_bytes")]
    pub max_statement_bytes: u64,
    /// Deepest nesting of expressions, subqueries, set operations and
    /// joins in one statement.
    pub max_nesting_depth: usize,
    /// Most expressions (every operator, literal, name, list item) in one
    /// statement.
    pub max_expressions: usize,
    /// Most operators in a statement's logical plan (common table
    /// expressions referenced many times multiply them).
    pub max_plan_nodes: usize,
    /// Most bytes a function may produce for one batch of rows
    /// (`repeat`, `lpad`, `array_repeat`, `range`, …).
    #[serde(deserialize_with = "de_bytes")]
    pub max_function_output: u64,
}

impl Default for LimitsConfig {
    fn default() -> Self {
        Self {
            rate_limit_per_minute: 1200,
            auth_failures_per_minute: 30,
            query_timeout: Duration::from_secs(15 * 60),
            memory_limit: None,
            query_memory_limit: None,
            spill_dir: None,
            spill_limit: 16 << 30,
            max_concurrent_queries: 32,
            max_queries_per_token: 8,
            max_queued_queries: 256,
            queue_timeout: Duration::from_secs(30),
            max_statement_bytes: 1 << 20,
            max_nesting_depth: 128,
            max_expressions: 100_000,
            max_plan_nodes: 20_000,
            max_function_output: 16 << 20,
        }
    }
}

impl LimitsConfig {
    /// What is wrong with the settings (empty: nothing).
    pub fn problems(&self) -> Vec<String> {
        let mut problems = Vec::new();
        if self.query_timeout.is_zero() || self.queue_timeout.is_zero() {
            problems.push("limits.query_timeout and limits.queue_timeout must be positive".into());
        }
        if self.max_concurrent_queries == 0 || self.max_queries_per_token == 0 {
            problems.push(
                "limits.max_concurrent_queries and limits.max_queries_per_token must be at least 1"
                    .into(),
            );
        }
        if self.memory_limit == Some(0) || self.query_memory_limit == Some(0) {
            problems
                .push("limits.memory_limit and limits.query_memory_limit must be positive".into());
        }
        if let (Some(all), Some(one)) = (self.memory_limit, self.query_memory_limit)
            && one > all
        {
            problems.push(format!(
                "limits.query_memory_limit ({}) cannot exceed limits.memory_limit ({})",
                memory::human(one),
                memory::human(all)
            ));
        }
        if self.max_statement_bytes == 0 || self.max_nesting_depth < 8 || self.max_expressions < 64
        {
            problems.push(
                "limits.max_statement_bytes must be positive, limits.max_nesting_depth at least 8 and limits.max_expressions at least 64"
                    .into(),
            );
        }
        if self.max_function_output < (1 << 20) {
            problems.push("limits.max_function_output must be at least 1MiB".into());
        }
        problems
    }

    /// The statement bounds these settings give.
    pub fn statement_bounds(&self) -> StatementBounds {
        StatementBounds {
            max_bytes: usize::try_from(self.max_statement_bytes).unwrap_or(usize::MAX),
            max_depth: self.max_nesting_depth,
            max_expressions: self.max_expressions,
            max_plan_nodes: self.max_plan_nodes,
        }
    }
}

fn de_opt_bytes<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<u64>, D::Error> {
    de_bytes(d).map(Some)
}

/// The shared state of the limits: one per gateway, shared by every
/// session the governor builds.
#[derive(Debug)]
pub struct Limits {
    /// The settings.
    pub config: LimitsConfig,
    /// Statement bounds checked before planning.
    pub bounds: StatementBounds,
    /// The memory pool and spill space.
    pub memory: MemoryBounds,
    /// Executing-query slots.
    pub admission: Admission,
    /// Where statements are planned and executed.
    pub runtime: ExecRuntime,
    /// What each token has spent of its budgets.
    pub ledger: std::sync::Arc<budget::Ledger>,
}

impl Limits {
    /// The limits of `config`; spill files go to `config.spill_dir`, else
    /// `default_spill_dir`, else the system's temporary directory.
    pub fn new(config: LimitsConfig, default_spill_dir: Option<PathBuf>) -> crate::Result<Self> {
        let spill_dir = config.spill_dir.clone().or(default_spill_dir);
        let memory = MemoryBounds::new(
            config.memory_limit,
            config.query_memory_limit,
            spill_dir,
            config.spill_limit,
        )?;
        Ok(Self {
            bounds: config.statement_bounds(),
            admission: Admission::new(
                config.max_concurrent_queries,
                config.max_queries_per_token,
                config.max_queued_queries,
                config.queue_timeout,
            ),
            memory,
            config,
            runtime: ExecRuntime::default(),
            ledger: std::sync::Arc::new(budget::Ledger::new()),
        })
    }

    /// The time limit of a statement of a token whose own is `own`.
    pub fn query_timeout(&self, own: Option<Duration>) -> Duration {
        own.unwrap_or(self.config.query_timeout)
    }
}

impl Default for Limits {
    fn default() -> Self {
        Self::new(LimitsConfig::default(), None).expect("the default limits are valid")
    }
}

/// The gateway's limits, shared.
pub type SharedLimits = Arc<Limits>;
