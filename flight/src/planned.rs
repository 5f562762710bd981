//! Plans made by `GetFlightInfo`, kept for the `DoGet` that follows.
//!
//! A Flight SQL query is two calls: `GetFlightInfo` plans the statement
//! (errors and schema surface there) and `DoGet` runs it. When the `DoGet`
//! reaches the replica that planned it, soon, under exactly the scope the
//! plan was made for, it runs that plan instead of planning again. Any
//! other case (another replica, a restart, a token whose grants changed in
//! between, a second `DoGet` of the same ticket, a plan older than
//! [`KEEP`]) re-plans from the ticket, as before: the ticket stays
//! self-contained.

use std::collections::{HashMap, VecDeque};
use std::fmt;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use sha2::{Digest, Sha256};
use sluice_planner::{GovernedPlan, TokenScope};

/// How long a plan waits for its `DoGet`.
pub(crate) const KEEP: Duration = Duration::from_secs(30);

/// How many plans wait at most; the oldest goes first.
pub(crate) const MOST: usize = 256;

/// How many plans of one token wait at most: a token that plans without
/// fetching only displaces its own plans.
pub(crate) const MOST_PER_TOKEN: usize = 16;

/// Statements (SQL and bound parameters) longer than this are not kept:
/// their plans can be large, and planning them again costs little next to
/// running them.
pub(crate) const MOST_STATEMENT_BYTES: usize = 64 << 10;

/// A ticket handle's digest (handles carry the statement: long).
type Key = [u8; 32];

/// Plans waiting for their `DoGet`, by ticket handle.
#[derive(Default)]
pub(crate) struct Planned {
    inner: Mutex<Waiting>,
}

/// Kept plans hold statements and parameters: only their number is shown.
impl fmt::Debug for Planned {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let waiting = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        f.debug_struct("Planned")
            .field("waiting", &waiting.plans.len())
            .finish()
    }
}

#[derive(Default)]
struct Waiting {
    plans: HashMap<Key, (GovernedPlan, Instant)>,
    /// Keys in the order they were kept (some maybe taken since).
    order: VecDeque<Key>,
}

impl Waiting {
    /// Drops plans older than [`KEEP`] and, while there are `most` or
    /// more, the oldest.
    fn sweep(&mut self, now: Instant, most: usize) {
        while let Some(oldest) = self.order.front() {
            let stale = match self.plans.get(oldest) {
                None => true,
                Some((_, at)) => now.duration_since(*at) > KEEP || self.plans.len() >= most,
            };
            if !stale {
                break;
            }
            if let Some(oldest) = self.order.pop_front() {
                self.plans.remove(&oldest);
            }
        }
    }
}

fn key(handle: &[u8]) -> Key {
    Sha256::digest(handle).into()
}

impl Planned {
    /// Keeps `plan` for the `DoGet` of the ticket `handle`, unless its
    /// statement (`statement_bytes`: SQL and parameters) is long.
    pub(crate) fn keep(&self, handle: &[u8], statement_bytes: usize, plan: GovernedPlan) {
        if statement_bytes > MOST_STATEMENT_BYTES {
            return;
        }
        let mut waiting = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        let now = Instant::now();
        waiting.sweep(now, MOST);
        let token = &plan.scope().token_id;
        let mut own: Vec<(Instant, Key)> = waiting
            .plans
            .iter()
            .filter(|(_, (p, _))| &p.scope().token_id == token)
            .map(|(k, (_, at))| (*at, *k))
            .collect();
        if own.len() >= MOST_PER_TOKEN {
            own.sort_unstable();
            for (_, k) in &own[..=own.len() - MOST_PER_TOKEN] {
                waiting.plans.remove(k);
            }
        }
        // Taken plans leave their keys in `order` behind a fresh one at
        // the front; drop them once they outnumber the plans.
        if waiting.order.len() > 2 * MOST {
            let Waiting { plans, order } = &mut *waiting;
            order.retain(|k| plans.contains_key(k));
        }
        let key = key(handle);
        waiting.order.push_back(key);
        waiting.plans.insert(key, (plan, now));
    }

    /// The plan kept for `handle` if it was made for exactly `scope` and
    /// is fresh, with how long it waited. Taken at most once.
    pub(crate) fn take(
        &self,
        handle: &[u8],
        scope: &TokenScope,
    ) -> Option<(GovernedPlan, Duration)> {
        let (plan, at) = {
            let mut waiting = self.inner.lock().unwrap_or_else(|e| e.into_inner());
            let found = waiting.plans.remove(&key(handle));
            waiting.sweep(Instant::now(), usize::MAX);
            found?
        };
        let waited = at.elapsed();
        (waited <= KEEP && plan.scope().as_ref() == scope).then_some((plan, waited))
    }
}

#[cfg(test)]
mod tests {
    use sluice_test_support::catalog::governor;
    use sluice_test_support::tokens::token;

    use super::*;

    async fn plan(name: &str) -> GovernedPlan {
        governor()
            .plan(&token(name), "SELECT order_id FROM lake.sales.orders")
            .await
            .expect("plannable")
    }

    #[tokio::test]
    async fn the_plan_is_taken_once_by_the_scope_it_was_made_for() {
        let planned = Planned::default();
        planned.keep(b"ticket", 60, plan("eu").await);
        assert!(planned.take(b"other", &token("eu")).is_none());
        assert!(planned.take(b"ticket", &token("eu")).is_some());
        assert!(
            planned.take(b"ticket", &token("eu")).is_none(),
            "a second DoGet of the ticket re-plans"
        );
    }

    #[tokio::test]
    async fn a_scope_that_changed_since_planning_gets_no_kept_plan() {
        let planned = Planned::default();
        planned.keep(b"ticket", 60, plan("eu").await);
        // Same token id, other grants: as after an update of the token.
        let mut changed = TokenScope::clone(&token("eu"));
        changed.row_limit = changed.row_limit.saturating_sub(1);
        assert!(planned.take(b"ticket", &changed).is_none());
        // Taken (and dropped) by the failed attempt: no later match either.
        assert!(planned.take(b"ticket", &token("eu")).is_none());
    }

    #[tokio::test]
    async fn one_token_keeps_at_most_its_newest_plans_and_displaces_no_other() {
        let planned = Planned::default();
        planned.keep(b"other token", 60, plan("admin").await);
        let kept = plan("eu").await;
        for i in 0..MOST + 10 {
            planned.keep(&i.to_le_bytes(), 60, kept.clone());
        }
        assert!(planned.take(&0usize.to_le_bytes(), &token("eu")).is_none());
        assert!(
            planned
                .take(&(MOST + 9).to_le_bytes(), &token("eu"))
                .is_some()
        );
        assert!(
            planned.take(b"other token", &token("admin")).is_some(),
            "another token's plan survives the flood"
        );
        let waiting = planned.inner.lock().unwrap();
        assert!(waiting.plans.len() < MOST_PER_TOKEN);
        assert!(waiting.order.len() <= 2 * MOST + 1);
    }

    #[tokio::test]
    async fn long_statements_are_planned_again_instead_of_kept() {
        let planned = Planned::default();
        planned.keep(b"ticket", MOST_STATEMENT_BYTES + 1, plan("eu").await);
        assert!(planned.take(b"ticket", &token("eu")).is_none());
    }

    #[tokio::test]
    async fn debug_shows_how_many_plans_wait_but_no_statement() {
        let planned = Planned::default();
        planned.keep(b"ticket", 60, plan("eu").await);
        let shown = format!("{planned:?}");
        assert!(shown.contains("waiting: 1"), "{shown}");
        assert!(!shown.contains("orders"), "{shown}");
    }
}
