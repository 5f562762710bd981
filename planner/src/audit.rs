//! What a request did, as the frontends learn it: [`AuditFacts`] collected
//! through an [`AuditHandle`] that the server's audit layer puts into each
//! request's extensions and turns into one audit record when the response
//! is done, and the [`Receipt`] that tells the client what policy did to
//! its result.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use datafusion::logical_expr::LogicalPlan;
use serde::Serialize;

use arrow::datatypes::SchemaRef;

use crate::secure_view::SecureView;

/// What policy did to a result, as the token may know it. Serialised as
/// JSON (see [`Receipt::to_json`]):
///
/// ```json
/// {"v":1,"tables":["lake.hr.employees"],"masked":["lake.hr.employees.ssn"],
///  "withheld":["lake.hr.employees.photo"],"row_policy":{"lake.hr.employees":"3f0c…"},
///  "truncated":false}
/// ```
///
/// - `tables`: tables the statement read (each once);
/// - `masked`: masked columns the statement reads (every value of them it
///   saw was masked);
/// - `withheld`: columns the token's grant names but its flags withhold
///   (attachments, vectors). Columns the token was never granted are not
///   listed: for the token they do not exist;
/// - `row_policy`: for each table whose rows are filtered by policy
///   (sensitivity clearance, allow and deny rules), the policy fingerprint
///   (the same one `EXPLAIN` and the audit log show);
/// - `truncated`: whether the result was cut at the token's `row_limit`
///   (known once the result has been read to its end).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Receipt {
    /// Format version.
    pub v: u8,
    /// Tables read.
    pub tables: Vec<String>,
    /// Masked columns read (`catalog.namespace.table.column`).
    pub masked: Vec<String>,
    /// Granted columns withheld by the token's flags.
    pub withheld: Vec<String>,
    /// Row policy fingerprint by table.
    pub row_policy: BTreeMap<String, String>,
    /// Rows cut at `row_limit`.
    pub truncated: bool,
}

impl Receipt {
    /// Compact JSON.
    pub fn to_json(&self) -> String {
        serde_json::to_string(self).unwrap_or_default()
    }

    /// With the truncation flag set.
    pub fn with_truncated(mut self, truncated: bool) -> Self {
        self.truncated = truncated;
        self
    }
}

/// What the governor knows about a planned statement, for the receipt and
/// the audit record.
#[derive(Debug, Clone, Default)]
pub struct PlanFacts {
    /// The client's receipt (before execution: `truncated` false).
    pub receipt: Receipt,
    /// Result column names.
    pub columns: Vec<String>,
    /// Columns of the tables read that the token cannot see, qualified
    /// (admins read them in the audit log; never shown to the token).
    pub blocked: Vec<String>,
}

impl PlanFacts {
    /// The facts of `plan`, which reads `views` and answers with `schema`.
    pub(crate) fn of(plan: &LogicalPlan, views: &[Arc<SecureView>], schema: &SchemaRef) -> Self {
        let mut receipt = Receipt {
            v: 1,
            ..Receipt::default()
        };
        let mut blocked = Vec::new();
        let read = columns_read(plan);
        for view in views {
            receipt.tables.push(view.table.clone());
            for c in &view.columns {
                if c.mask.is_some() && read.contains(&c.name) {
                    receipt.masked.push(format!("{}.{}", view.table, c.name));
                }
            }
            for (c, _) in &view.withheld_columns {
                receipt.withheld.push(format!("{}.{}", view.table, c));
            }
            if view.predicate.is_some() {
                receipt
                    .row_policy
                    .insert(view.table.clone(), view.fingerprint.clone());
            }
            blocked.extend(
                view.blocked_columns
                    .iter()
                    .map(|c| format!("{}.{}", view.table, c)),
            );
        }
        PlanFacts {
            receipt,
            columns: schema.fields().iter().map(|f| f.name().clone()).collect(),
            blocked,
        }
    }
}

/// Names of the columns any expression of `plan` (subqueries included)
/// references, plus the columns table scans project. Matching by name
/// over-counts only when two tables read share a column name.
fn columns_read(plan: &LogicalPlan) -> std::collections::HashSet<String> {
    use datafusion::common::tree_node::{TreeNode, TreeNodeRecursion};
    use datafusion::logical_expr::Expr;
    let mut names = std::collections::HashSet::new();
    let _ = plan.apply_with_subqueries(|node| {
        if let LogicalPlan::TableScan(scan) = node
            && let Some(indices) = &scan.projection
        {
            let schema = scan.source.schema();
            for i in indices {
                if let Some(f) = schema.fields().get(*i) {
                    names.insert(f.name().clone());
                }
            }
        }
        let _ = node.apply_expressions(|e| {
            e.apply(|e| {
                if let Expr::Column(c) = e {
                    names.insert(c.name.clone());
                }
                Ok(TreeNodeRecursion::Continue)
            })
        });
        Ok(TreeNodeRecursion::Continue)
    });
    names
}

/// How a request ended, for the audit record.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    /// Answered.
    Ok,
    /// Authentication failed.
    Unauthenticated,
    /// Authenticated but not allowed (admin-only, read-only, another
    /// token's ticket or job).
    Denied,
    /// Refused by a rate limit.
    RateLimited,
    /// Failed (invalid request, unknown table, execution error).
    Error,
    /// The client went away or cancelled before the answer was complete.
    Cancelled,
}

impl Outcome {
    /// The stored spelling.
    pub fn as_str(&self) -> &'static str {
        match self {
            Outcome::Ok => "ok",
            Outcome::Unauthenticated => "unauthenticated",
            Outcome::Denied => "denied",
            Outcome::RateLimited => "rate_limited",
            Outcome::Error => "error",
            Outcome::Cancelled => "cancelled",
        }
    }
}

/// What the request's handlers learned; the audit layer adds time,
/// protocol, client address, latency and outcome.
#[derive(Debug, Clone, Default)]
pub struct AuditFacts {
    /// The authenticated token.
    pub token_id: Option<String>,
    /// The statement as sent (the audit writer stores only its
    /// fingerprint and its text with literals removed).
    pub statement: Option<String>,
    /// A query the request belongs to (Trino query id, export job id).
    pub query_id: Option<String>,
    /// Tables read.
    pub tables: Vec<String>,
    /// Result columns.
    pub columns: Vec<String>,
    /// Columns of the tables read that the token cannot see.
    pub columns_blocked: Vec<String>,
    /// Masked columns read.
    pub columns_masked: Vec<String>,
    /// Row policy fingerprints by table.
    pub row_policy: BTreeMap<String, String>,
    /// Rows returned.
    pub rows: u64,
    /// Bytes returned (Arrow in-memory size of the result batches).
    pub bytes: u64,
    /// Bytes the statement read through its secure views (what the
    /// token's `bytes_scanned` budgets count).
    pub bytes_scanned: u64,
    /// Rows cut at `row_limit`.
    pub truncated: bool,
    /// A decided outcome (otherwise the layer derives it from the status).
    pub outcome: Option<Outcome>,
    /// The error shown to the client, if any.
    pub error: Option<String>,
    /// The W3C trace id of the request's span (connectors pass it on).
    pub trace_id: Option<String>,
    /// Federation: the share token's name when a partner gateway made the
    /// request (provider side), or the peers a statement read (receiver
    /// side, comma-separated).
    pub peer: Option<String>,
}

impl AuditFacts {
    /// Masked values returned: rows × masked columns read (an upper
    /// bound for aggregates, exact for plain selections).
    pub fn values_masked(&self) -> u64 {
        self.rows.saturating_mul(self.columns_masked.len() as u64)
    }
}

tokio::task_local! {
    static CURRENT: AuditHandle;
}

/// The audit handle of the request being served, if the server's audit
/// layer set one (see [`with_handle`]).
pub fn current() -> Option<AuditHandle> {
    CURRENT.try_with(Clone::clone).ok()
}

/// Runs `f` with `handle` as the [`current`] one. Handlers that build a
/// response stream take the handle when they build it.
pub async fn with_handle<F: std::future::Future>(handle: AuditHandle, f: F) -> F::Output {
    CURRENT.scope(handle, f).await
}

/// Records that the current request read from federation peer `name`.
pub fn note_peer(name: &str) {
    note(|a| match &mut a.peer {
        Some(p) if p.split(',').any(|x| x == name) => {}
        Some(p) => {
            p.push(',');
            p.push_str(name);
        }
        None => a.peer = Some(name.to_string()),
    });
}

/// Updates the current request's facts, if there is a current request.
pub fn note(f: impl FnOnce(&mut AuditFacts)) {
    if let Some(h) = current() {
        h.update(f);
    }
}

/// A shared, fillable [`AuditFacts`]: cloned into request extensions, so
/// the layer that writes the record sees what the handler recorded, even
/// after a streamed response has ended.
#[derive(Debug, Clone, Default)]
pub struct AuditHandle(Arc<Mutex<AuditFacts>>);

impl AuditHandle {
    /// A new, empty handle.
    pub fn new() -> Self {
        Self::default()
    }

    /// Changes the facts.
    pub fn update(&self, f: impl FnOnce(&mut AuditFacts)) {
        let mut guard = self.0.lock().unwrap_or_else(|e| e.into_inner());
        f(&mut guard);
    }

    /// A copy of the facts so far.
    pub fn snapshot(&self) -> AuditFacts {
        self.0.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// Records what a planned statement reads: its tables, columns and
    /// policy facts (the governor does, for every plan it makes).
    pub fn record_plan(&self, facts: &PlanFacts) {
        self.update(|a| {
            a.tables = facts.receipt.tables.clone();
            a.columns = facts.columns.clone();
            a.columns_blocked = facts.blocked.clone();
            a.columns_masked = facts.receipt.masked.clone();
            a.row_policy = facts.receipt.row_policy.clone();
        });
    }

    /// Adds returned rows and bytes.
    pub fn returned(&self, rows: u64, bytes: u64) {
        self.update(|a| {
            a.rows += rows;
            a.bytes += bytes;
        });
    }
}
