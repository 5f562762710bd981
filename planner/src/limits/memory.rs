//! Memory of executing queries: one pool for the whole gateway
//! (`[limits] memory_limit`), each query's share of it
//! (`[limits] query_memory_limit`), and the disk sorts, aggregations and
//! sort-merge joins spill to when their share is used up
//! (`[limits] spill_dir`, at most `[limits] spill_limit`).
//!
//! DataFusion's operators reserve memory before they hold it and spill
//! (where they can) when a reservation is refused; a reservation they
//! cannot do without fails the query with a "resources exhausted" error
//! naming the limit. The gateway-wide pool is DataFusion's
//! `FairSpillPool`: spilling operators of all queries share what the
//! others do not hold. [`QueryPool`] puts each query's cap in front of it.

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use datafusion::error::{DataFusionError, Result as DfResult};
use datafusion::execution::disk_manager::{DiskManagerBuilder, DiskManagerMode};
use datafusion::execution::memory_pool::{
    FairSpillPool, GreedyMemoryPool, MemoryConsumer, MemoryLimit, MemoryPool, MemoryReservation,
};
use datafusion::execution::runtime_env::{RuntimeEnv, RuntimeEnvBuilder};

use crate::error::{Error, ErrorKind, Result};

/// The gateway-wide memory pool and spill space, and the runtime
/// environment of each query.
#[derive(Debug)]
pub struct MemoryBounds {
    pool: Arc<dyn MemoryPool>,
    memory_limit: usize,
    query_limit: usize,
    base: Arc<RuntimeEnv>,
    /// `base` with a pool that grants nothing ([`MemoryBounds::planning_runtime`]).
    planning: Arc<RuntimeEnv>,
}

impl MemoryBounds {
    /// A pool of `memory_limit` bytes (default: half the machine's
    /// memory), `query_limit` bytes per query (default: a quarter, at
    /// most `memory_limit`), spilling to `spill_dir` (default: the
    /// system's temporary directory) up to `spill_limit` bytes (0: never).
    pub fn new(
        memory_limit: Option<u64>,
        query_limit: Option<u64>,
        spill_dir: Option<PathBuf>,
        spill_limit: u64,
    ) -> Result<Self> {
        let machine = machine_memory();
        let memory_limit = memory_limit.unwrap_or(machine / 2).max(1);
        let query_limit = query_limit.unwrap_or(machine / 4).clamp(1, memory_limit);
        let mode = match (spill_limit, spill_dir) {
            (0, _) => DiskManagerMode::Disabled,
            (_, Some(dir)) => {
                std::fs::create_dir_all(&dir).map_err(|e| {
                    Error::refused(
                        ErrorKind::Internal,
                        format!("cannot create the spill directory {}: {e}", dir.display()),
                    )
                })?;
                DiskManagerMode::Directories(vec![dir])
            }
            (_, None) => DiskManagerMode::OsTmpDirectory,
        };
        let disk = DiskManagerBuilder::default()
            .with_mode(mode)
            .with_max_temp_directory_size(spill_limit.max(1));
        let to_usize = |n: u64| usize::try_from(n).unwrap_or(usize::MAX);
        let pool: Arc<dyn MemoryPool> = Arc::new(FairSpillPool::new(to_usize(memory_limit)));
        let base = RuntimeEnvBuilder::new()
            .with_disk_manager_builder(disk)
            .with_memory_pool(Arc::clone(&pool))
            .build_arc()?;
        let planning = RuntimeEnvBuilder::from_runtime_env(&base)
            .with_memory_pool(Arc::new(GreedyMemoryPool::new(0)))
            .build_arc()?;
        Ok(Self {
            pool,
            memory_limit: to_usize(memory_limit),
            query_limit: to_usize(query_limit),
            base,
            planning,
        })
    }

    /// The runtime environment sessions plan in: the shared spill space,
    /// caches and object stores, and a pool that grants nothing. A
    /// statement's memory comes from its run's share
    /// ([`MemoryBounds::query_runtime`]); anything that tried to execute
    /// in a session without it fails instead of escaping the cap.
    pub fn planning_runtime(&self) -> Arc<RuntimeEnv> {
        Arc::clone(&self.planning)
    }

    /// The runtime environment of one query: the shared pool behind the
    /// query's own cap, the shared spill space, caches and object stores.
    pub fn query_runtime(&self) -> Arc<RuntimeEnv> {
        let pool = QueryPool {
            shared: Arc::clone(&self.pool),
            limit: self.query_limit,
            memory_limit: self.memory_limit,
            reserved: AtomicUsize::new(0),
        };
        RuntimeEnvBuilder::from_runtime_env(&self.base)
            .with_memory_pool(Arc::new(pool))
            .build_arc()
            // Rebuilding from a built environment reuses its parts.
            .unwrap_or_else(|_| Arc::clone(&self.base))
    }

    /// Bytes reserved by all executing queries now.
    pub fn reserved(&self) -> usize {
        self.pool.reserved()
    }

    /// The gateway-wide limit in bytes.
    pub fn memory_limit(&self) -> usize {
        self.memory_limit
    }

    /// The per-query limit in bytes.
    pub fn query_limit(&self) -> usize {
        self.query_limit
    }
}

/// One query's view of the gateway's pool: reservations beyond
/// `limit` bytes for the query, or beyond what the shared pool has left,
/// fail with a message naming the limit.
#[derive(Debug)]
struct QueryPool {
    shared: Arc<dyn MemoryPool>,
    limit: usize,
    memory_limit: usize,
    reserved: AtomicUsize,
}

impl MemoryPool for QueryPool {
    fn register(&self, consumer: &MemoryConsumer) {
        self.shared.register(consumer);
    }

    fn unregister(&self, consumer: &MemoryConsumer) {
        self.shared.unregister(consumer);
    }

    fn grow(&self, reservation: &MemoryReservation, additional: usize) {
        self.shared.grow(reservation, additional);
        self.reserved.fetch_add(additional, Ordering::Relaxed);
    }

    fn shrink(&self, reservation: &MemoryReservation, shrink: usize) {
        self.shared.shrink(reservation, shrink);
        self.reserved.fetch_sub(shrink, Ordering::Relaxed);
    }

    fn try_grow(&self, reservation: &MemoryReservation, additional: usize) -> DfResult<()> {
        // Claim first, so concurrent operators of one query cannot
        // overdraw its share together.
        let before = self.reserved.fetch_add(additional, Ordering::Relaxed);
        if before.saturating_add(additional) > self.limit {
            self.reserved.fetch_sub(additional, Ordering::Relaxed);
            return Err(DataFusionError::ResourcesExhausted(format!(
                "the query needs more than its memory limit of {} (limits.query_memory_limit){}",
                human(self.limit as u64),
                spill_hint(reservation)
            )));
        }
        if self.shared.try_grow(reservation, additional).is_err() {
            self.reserved.fetch_sub(additional, Ordering::Relaxed);
            return Err(DataFusionError::ResourcesExhausted(format!(
                "the gateway's query memory ({} for all queries, limits.memory_limit) is in use; \
                 retry later{}",
                human(self.memory_limit as u64),
                spill_hint(reservation)
            )));
        }
        Ok(())
    }

    fn reserved(&self) -> usize {
        self.reserved.load(Ordering::Relaxed)
    }

    fn memory_limit(&self) -> MemoryLimit {
        MemoryLimit::Finite(self.limit)
    }
}

/// Operators that can spill do so when refused; those that cannot say
/// which part of the statement needs the memory.
fn spill_hint(reservation: &MemoryReservation) -> String {
    let name = reservation.consumer().name();
    let what = if ["HashJoin", "CrossJoin", "NestedLoopJoin"]
        .iter()
        .any(|j| name.starts_with(j))
    {
        "a join's build side"
    } else if name.contains("Aggregat") || name.contains("Group") {
        "an aggregation"
    } else if name.contains("Sort") {
        "a sort"
    } else if name.contains("Window") {
        "a window function"
    } else {
        return String::new();
    };
    format!(" in {what}")
}

/// Bytes in binary units, as the configuration writes them.
pub fn human(bytes: u64) -> String {
    const UNITS: [(&str, u64); 4] = [
        ("TiB", 1 << 40),
        ("GiB", 1 << 30),
        ("MiB", 1 << 20),
        ("KiB", 1 << 10),
    ];
    for (unit, size) in UNITS {
        if bytes >= size {
            let value = bytes as f64 / size as f64;
            return if bytes.is_multiple_of(size) {
                format!("{}{unit}", bytes / size)
            } else {
                format!("{value:.1}{unit}")
            };
        }
    }
    format!("{bytes}B")
}

/// The memory this process may use: the cgroup's limit when one is set
/// (containers), else the machine's.
pub fn machine_memory() -> u64 {
    let cgroup = std::fs::read_to_string("/sys/fs/cgroup/memory.max")
        .ok()
        .and_then(|s| s.trim().parse::<u64>().ok());
    let total = std::fs::read_to_string("/proc/meminfo").ok().and_then(|s| {
        s.lines()
            .find_map(|l| l.strip_prefix("MemTotal:"))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
            .map(|kib| kib * 1024)
    });
    match (cgroup, total) {
        (Some(c), Some(t)) => c.min(t),
        (Some(c), None) => c,
        (None, Some(t)) => t,
        // Not Linux: a conservative guess.
        (None, None) => 4 << 30,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bounds(all: u64, one: u64) -> MemoryBounds {
        MemoryBounds::new(Some(all), Some(one), None, 0).unwrap()
    }

    #[test]
    fn a_query_cannot_reserve_beyond_its_share() {
        let b = bounds(1000, 400);
        let rt = b.query_runtime();
        let r = MemoryConsumer::new("ExternalSorter[0]").register(&rt.memory_pool);
        r.try_grow(300).unwrap();
        let e = r.try_grow(200).unwrap_err().to_string();
        assert!(
            e.contains("limits.query_memory_limit") && e.contains("in a sort"),
            "{e}"
        );
        assert_eq!(b.reserved(), 300);
        drop(r);
        assert_eq!(b.reserved(), 0);
    }

    #[test]
    fn queries_together_cannot_exceed_the_gateway_pool() {
        let b = bounds(1000, 600);
        let (a, c) = (b.query_runtime(), b.query_runtime());
        let ra = MemoryConsumer::new("HashJoinInput").register(&a.memory_pool);
        let rc = MemoryConsumer::new("HashJoinInput").register(&c.memory_pool);
        ra.try_grow(600).unwrap();
        let e = rc.try_grow(500).unwrap_err().to_string();
        assert!(
            e.contains("limits.memory_limit") && e.contains("join"),
            "{e}"
        );
        rc.try_grow(400).unwrap();
    }

    #[test]
    fn the_query_limit_never_exceeds_the_gateway_limit() {
        let b = MemoryBounds::new(Some(1 << 20), None, None, 0).unwrap();
        assert!(b.query_limit() <= b.memory_limit());
        assert!(machine_memory() > 0);
        assert_eq!(human(256 << 20), "256MiB");
        assert_eq!(human(1536), "1.5KiB");
    }
}
