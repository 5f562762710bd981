//! Per-token cost budgets: bytes scanned and rows returned per hour and
//! per day (UTC clock hours and days), set in the token document.
//!
//! A statement is refused before it is planned and again before it runs
//! once any of its token's budgets is spent. While it runs, [`Usage`]
//! counts the bytes of the batches that leave each secure view (their
//! visible values, weighed by `limits::measure`) and charges them to the
//! token at once, so a running statement stops as soon as the token is
//! over a bytes budget, whichever of its statements read the bytes. Rows
//! are charged when the governed stream ends: a statement that started
//! within its rows budget returns its result (at most `row_limit` rows).
//! The [`Ledger`] keeps each token's totals of the current hour and day;
//! at start the server seeds it from `system.audit_log`, which records
//! both figures per request (see the README for what that rebuild can
//! miss).

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use chrono::{DateTime, Datelike, Duration as ChronoDuration, TimeZone, Timelike, Utc};
use serde::{Deserialize, Serialize};

use crate::error::{Error, ErrorKind, Refusal, Result};

/// The `budget` of a token document: every field optional (none: no
/// budget of that kind). Byte sizes are written like `"10GiB"` or a plain
/// number of bytes.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Budget {
    /// Bytes read through secure views per clock hour.
    #[serde(default, with = "opt_bytes", skip_serializing_if = "Option::is_none")]
    pub bytes_scanned_per_hour: Option<u64>,
    /// Bytes read through secure views per UTC day.
    #[serde(default, with = "opt_bytes", skip_serializing_if = "Option::is_none")]
    pub bytes_scanned_per_day: Option<u64>,
    /// Rows returned to the client per clock hour.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rows_returned_per_hour: Option<u64>,
    /// Rows returned to the client per UTC day.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rows_returned_per_day: Option<u64>,
}

impl Budget {
    /// Whether no budget is set.
    pub fn is_unlimited(&self) -> bool {
        *self == Budget::default()
    }

    /// Problems of the document's values, each a sentence.
    pub fn problems(&self) -> Vec<String> {
        let fields = [
            ("bytes_scanned_per_hour", self.bytes_scanned_per_hour),
            ("bytes_scanned_per_day", self.bytes_scanned_per_day),
            ("rows_returned_per_hour", self.rows_returned_per_hour),
            ("rows_returned_per_day", self.rows_returned_per_day),
        ];
        let mut problems: Vec<String> = fields
            .iter()
            .filter(|(_, v)| *v == Some(0) || v.is_some_and(|v| v > i64::MAX as u64))
            .map(|(name, _)| {
                format!(
                    "budget.{name} must be at least 1 and fit in 63 bits (omit it for no budget)"
                )
            })
            .collect();
        if let (Some(h), Some(d)) = (self.bytes_scanned_per_hour, self.bytes_scanned_per_day)
            && h > d
        {
            problems.push(
                "budget.bytes_scanned_per_hour is larger than budget.bytes_scanned_per_day".into(),
            );
        }
        if let (Some(h), Some(d)) = (self.rows_returned_per_hour, self.rows_returned_per_day)
            && h > d
        {
            problems.push(
                "budget.rows_returned_per_hour is larger than budget.rows_returned_per_day".into(),
            );
        }
        problems
    }
}

/// What one statement has cost so far: a session extension the secure
/// views count into. Once the statement runs, its reads are charged to its
/// token's totals as they happen ([`Meter`]), so the statements of a token
/// share its bytes budgets: a query re-reading a table, a long export or
/// several statements at once stop as soon as the token is over one.
#[derive(Debug, Default)]
pub struct Usage {
    /// Bytes this run read (for its audit record).
    bytes_scanned: AtomicU64,
    /// Bytes read while no meter was set (charged when the run ends).
    unmetered: AtomicU64,
    meter: Mutex<Option<Meter>>,
}

/// Where a running statement's reads are charged: its token's totals in
/// the ledger, against its budget.
#[derive(Debug, Clone)]
pub struct Meter {
    ledger: Arc<Ledger>,
    token: String,
    budget: Budget,
}

impl Meter {
    /// Charges `token`'s reads to `ledger` against `budget`.
    pub fn new(ledger: Arc<Ledger>, token: impl Into<String>, budget: Budget) -> Self {
        Self {
            ledger,
            token: token.into(),
            budget,
        }
    }
}

impl Usage {
    /// Counts bytes that left a secure view and charges them to the
    /// token; refuses once the token is over one of its bytes budgets.
    pub fn scanned(&self, bytes: u64) -> std::result::Result<(), Refusal> {
        self.bytes_scanned.fetch_add(bytes, Ordering::Relaxed);
        let meter = self.meter.lock().unwrap_or_else(|e| e.into_inner());
        match &*meter {
            Some(m) => m.ledger.scan(&m.token, &m.budget, bytes, Utc::now()),
            None => {
                self.unmetered.fetch_add(bytes, Ordering::Relaxed);
                Ok(())
            }
        }
    }

    /// Charges the next run's reads as they happen (none: at its end).
    pub fn meter_to(&self, meter: Option<Meter>) {
        *self.meter.lock().unwrap_or_else(|e| e.into_inner()) = meter;
    }

    /// Bytes read since the last call (a prepared statement's session
    /// runs it more than once; each run is charged what it read), and how
    /// many of them no meter charged yet.
    pub fn take_bytes_scanned(&self) -> (u64, u64) {
        (
            self.bytes_scanned.swap(0, Ordering::Relaxed),
            self.unmetered.swap(0, Ordering::Relaxed),
        )
    }
}

/// Totals of one window (an hour or a day) and when it began.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct Spent {
    /// Bytes scanned in the window.
    pub bytes_scanned: u64,
    /// Rows returned in the window.
    pub rows_returned: u64,
}

#[derive(Debug, Default, Clone, Copy)]
struct Windows {
    hour_start: i64,
    hour: Spent,
    day_start: i64,
    day: Spent,
}

impl Windows {
    /// Drops totals of windows that have ended by `now`. Windows only
    /// move forward: a clock stepped back (NTP) across an hour or midnight
    /// keeps the totals rather than handing out a fresh budget. A clock
    /// that was wrong by more than a day and is corrected re-anchors the
    /// windows, so it cannot lock a token out until that far-off time.
    fn roll(&mut self, now: DateTime<Utc>) {
        const DAY: i64 = 24 * 3600;
        let (hour, day) = window_starts(now);
        let (hour, day) = (hour.timestamp(), day.timestamp());
        if hour > self.hour_start || hour < self.hour_start - DAY {
            self.hour_start = hour;
            self.hour = Spent::default();
        }
        if day > self.day_start || day < self.day_start - DAY {
            self.day_start = day;
            self.day = Spent::default();
        }
    }
}

/// A budget, what the window spent of it and when the window resets.
type Line = (&'static str, Option<u64>, u64, DateTime<Utc>);

/// Each of `budget`'s limits with what `w` spent of it.
fn lines(budget: &Budget, w: &Windows, now: DateTime<Utc>) -> [Line; 4] {
    let (hour, day) = window_starts(now);
    let (next_hour, next_day) = (
        hour + ChronoDuration::hours(1),
        day + ChronoDuration::days(1),
    );
    [
        (
            "bytes_scanned_per_hour",
            budget.bytes_scanned_per_hour,
            w.hour.bytes_scanned,
            next_hour,
        ),
        (
            "rows_returned_per_hour",
            budget.rows_returned_per_hour,
            w.hour.rows_returned,
            next_hour,
        ),
        (
            "bytes_scanned_per_day",
            budget.bytes_scanned_per_day,
            w.day.bytes_scanned,
            next_day,
        ),
        (
            "rows_returned_per_day",
            budget.rows_returned_per_day,
            w.day.rows_returned,
            next_day,
        ),
    ]
}

/// The refusal naming the `spent` budgets (none when there are none):
/// statements run again at the latest of their resets.
fn refusal(spent: &[Line], now: DateTime<Utc>, context: &str) -> Option<Refusal> {
    let until = spent.iter().map(|(.., at)| *at).max()?;
    let names: Vec<String> = spent
        .iter()
        .map(|(name, limit, used, _)| {
            format!("budget.{name} ({used} of {})", limit.unwrap_or_default())
        })
        .collect();
    let wait = (until - now).num_seconds().max(1) as u64;
    Some(
        Refusal::new(
            ErrorKind::BudgetSpent,
            format!(
                "the token's budget is spent: {}{context}; statements run again at {} (in {wait} s)",
                names.join(", "),
                until.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
            ),
        )
        .with_retry_after(wait),
    )
}

/// The start of the clock hour and of the UTC day that contain `now`.
pub fn window_starts(now: DateTime<Utc>) -> (DateTime<Utc>, DateTime<Utc>) {
    let hour = now
        .with_minute(0)
        .and_then(|t| t.with_second(0))
        .and_then(|t| t.with_nanosecond(0))
        .unwrap_or(now);
    let day = Utc
        .with_ymd_and_hms(now.year(), now.month(), now.day(), 0, 0, 0)
        .single()
        .unwrap_or(now);
    (hour, day)
}

/// A token's budget state as introspection shows it.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct BudgetState {
    /// Spent in the current clock hour.
    pub hour: Spent,
    /// When the hour's totals reset (RFC 3339).
    pub hour_resets_at: DateTime<Utc>,
    /// Spent in the current UTC day.
    pub day: Spent,
    /// When the day's totals reset (RFC 3339).
    pub day_resets_at: DateTime<Utc>,
}

/// Every token's totals of the current hour and day (this gateway's).
#[derive(Debug, Default)]
pub struct Ledger {
    tokens: Mutex<HashMap<String, Windows>>,
}

impl Ledger {
    /// An empty ledger.
    pub fn new() -> Self {
        Self::default()
    }

    fn with<T>(&self, token: &str, now: DateTime<Utc>, f: impl FnOnce(&mut Windows) -> T) -> T {
        let mut tokens = self.tokens.lock().unwrap_or_else(|e| e.into_inner());
        let w = tokens.entry(token.to_string()).or_default();
        w.roll(now);
        f(w)
    }

    /// Refuses when one of `budget`'s limits is reached, naming it and
    /// when it resets.
    pub fn check(&self, token: &str, budget: &Budget, now: DateTime<Utc>) -> Result<()> {
        if budget.is_unlimited() {
            return Ok(());
        }
        let w = self.with(token, now, |w| *w);
        let spent: Vec<Line> = lines(budget, &w, now)
            .into_iter()
            .filter(|(_, limit, used, _)| limit.is_some_and(|l| *used >= l))
            .collect();
        match refusal(&spent, now, "") {
            Some(r) => Err(Error::Refused(r)),
            None => Ok(()),
        }
    }

    /// Charges `bytes` a running statement of `token` just read; refuses
    /// once the token is over one of `budget`'s bytes budgets (the reads
    /// of all its statements count, as they happen).
    pub fn scan(
        &self,
        token: &str,
        budget: &Budget,
        bytes: u64,
        now: DateTime<Utc>,
    ) -> std::result::Result<(), Refusal> {
        let w = self.with(token, now, |w| {
            for s in [&mut w.hour, &mut w.day] {
                s.bytes_scanned = s.bytes_scanned.saturating_add(bytes);
            }
            *w
        });
        let over: Vec<Line> = lines(budget, &w, now)
            .into_iter()
            .filter(|(name, limit, used, _)| {
                name.starts_with("bytes") && limit.is_some_and(|l| *used > l)
            })
            .collect();
        refusal(&over, now, " while the statement ran").map_or(Ok(()), Err)
    }

    /// Charges a finished (or stopped) statement.
    pub fn charge(&self, token: &str, bytes_scanned: u64, rows_returned: u64, now: DateTime<Utc>) {
        self.with(token, now, |w| {
            for s in [&mut w.hour, &mut w.day] {
                s.bytes_scanned = s.bytes_scanned.saturating_add(bytes_scanned);
                s.rows_returned = s.rows_returned.saturating_add(rows_returned);
            }
        });
    }

    /// Sets what a token had spent when the gateway started (from the
    /// audit log): its totals since the start of the hour and of the day.
    pub fn seed(&self, token: &str, hour: Spent, day: Spent, now: DateTime<Utc>) {
        self.with(token, now, |w| {
            w.hour = hour;
            w.day = day;
        });
    }

    /// What `token` has spent in the current hour and day.
    pub fn state(&self, token: &str, now: DateTime<Utc>) -> BudgetState {
        let w = self.with(token, now, |w| *w);
        let (hour, day) = window_starts(now);
        BudgetState {
            hour: w.hour,
            hour_resets_at: hour + ChronoDuration::hours(1),
            day: w.day,
            day_resets_at: day + ChronoDuration::days(1),
        }
    }
}

/// Optional byte sizes as strings (`"10GiB"`) or numbers.
mod opt_bytes {
    use serde::{Deserialize, Deserializer, Serializer};

    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Size {
        Number(u64),
        Text(String),
    }

    pub(super) fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<u64>, D::Error> {
        match Option::<Size>::deserialize(d)? {
            None => Ok(None),
            Some(Size::Number(n)) => Ok(Some(n)),
            Some(Size::Text(t)) => crate::units::parse_bytes(&t)
                .map(Some)
                .map_err(serde::de::Error::custom),
        }
    }

    pub(super) fn serialize<S: Serializer>(v: &Option<u64>, s: S) -> Result<S::Ok, S::Error> {
        match v {
            Some(n) => s.serialize_u64(*n),
            None => s.serialize_none(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(h: u32, m: u32) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 12, 7, h, m, 0).unwrap()
    }

    #[test]
    fn a_budget_reads_byte_sizes_and_refuses_zero_and_unknown_fields() {
        let b: Budget = serde_json::from_str(
            r#"{"bytes_scanned_per_hour": "1MiB", "rows_returned_per_day": 500}"#,
        )
        .unwrap();
        assert_eq!(b.bytes_scanned_per_hour, Some(1 << 20));
        assert_eq!(b.rows_returned_per_day, Some(500));
        assert!(b.problems().is_empty());
        let zero: Budget = serde_json::from_str(r#"{"rows_returned_per_hour": 0}"#).unwrap();
        assert!(zero.problems()[0].contains("rows_returned_per_hour"));
        let inverted: Budget =
            serde_json::from_str(r#"{"rows_returned_per_hour": 10, "rows_returned_per_day": 5}"#)
                .unwrap();
        assert!(inverted.problems()[0].contains("larger"));
        assert!(serde_json::from_str::<Budget>(r#"{"rows_per_hour": 1}"#).is_err());
        assert!(serde_json::from_str::<Budget>(r#"{"bytes_scanned_per_day": "lots"}"#).is_err());
    }

    #[test]
    fn the_totals_survive_a_clock_stepped_back() {
        let ledger = Ledger::new();
        let budget = Budget {
            rows_returned_per_hour: Some(10),
            ..Budget::default()
        };
        ledger.charge("t", 0, 10, at(11, 1));
        assert!(ledger.check("t", &budget, at(11, 2)).is_err());
        // The clock steps back into the previous hour: still spent.
        assert!(ledger.check("t", &budget, at(10, 59)).is_err());
        assert!(ledger.check("t", &budget, at(12, 0)).is_ok());
        // A clock set years ahead and then corrected does not lock the
        // token out until then.
        let later = Utc.with_ymd_and_hms(2030, 1, 1, 0, 0, 0).unwrap();
        ledger.charge("t", 0, 10, later);
        assert!(ledger.check("t", &budget, later).is_err());
        assert!(ledger.check("t", &budget, at(12, 5)).is_ok());
    }

    #[test]
    fn reads_are_charged_as_they_happen_and_shared_by_the_tokens_statements() {
        let ledger = Arc::new(Ledger::new());
        let budget = Budget {
            bytes_scanned_per_hour: Some(1000),
            bytes_scanned_per_day: Some(5000),
            ..Budget::default()
        };
        ledger.charge("t", 600, 0, Utc::now());
        // Two statements of the token at once: their reads add up.
        let (a, b) = (Usage::default(), Usage::default());
        for u in [&a, &b] {
            u.meter_to(Some(Meter::new(Arc::clone(&ledger), "t", budget.clone())));
        }
        a.scanned(200).unwrap();
        b.scanned(200).unwrap();
        let e = a.scanned(1).unwrap_err();
        assert_eq!(e.kind(), ErrorKind::BudgetSpent);
        assert!(
            e.message()
                .contains("budget.bytes_scanned_per_hour (1001 of 1000)"),
            "{}",
            e.message()
        );
        assert!(e.retry_after().is_some());
        assert!(b.scanned(1).is_err(), "the other statement stops too");
        // What was read is charged once: live, not again at the end.
        assert_eq!(a.take_bytes_scanned(), (201, 0));
        assert_eq!(ledger.state("t", Utc::now()).hour.bytes_scanned, 600 + 402);
        // Without a meter the bytes wait for the end of the run.
        let free = Usage::default();
        free.scanned(u64::MAX).unwrap();
        assert_eq!(free.take_bytes_scanned(), (u64::MAX, u64::MAX));
    }

    #[test]
    fn a_spent_budget_refuses_until_its_window_resets() {
        let ledger = Ledger::new();
        let budget = Budget {
            rows_returned_per_hour: Some(100),
            bytes_scanned_per_day: Some(1000),
            ..Budget::default()
        };
        ledger.check("t", &budget, at(10, 0)).unwrap();
        ledger.charge("t", 10, 99, at(10, 5));
        ledger.check("t", &budget, at(10, 6)).unwrap();
        ledger.charge("t", 10, 1, at(10, 7));
        let e = ledger.check("t", &budget, at(10, 8)).unwrap_err();
        assert_eq!(e.kind(), ErrorKind::BudgetSpent);
        assert!(
            e.message()
                .contains("budget.rows_returned_per_hour (100 of 100)"),
            "{}",
            e.message()
        );
        assert!(
            e.message().contains("2026-12-07T11:00:00Z"),
            "{}",
            e.message()
        );
        // Other tokens are not affected; the next hour starts afresh.
        ledger.check("u", &budget, at(10, 8)).unwrap();
        ledger.check("t", &budget, at(11, 0)).unwrap();
        // The day's bytes carry over hours and reset at midnight UTC.
        ledger.charge("t", 990, 0, at(11, 1));
        let e = ledger.check("t", &budget, at(12, 0)).unwrap_err();
        assert!(
            e.message().contains("bytes_scanned_per_day (1010 of 1000)"),
            "{}",
            e.message()
        );
        assert!(
            e.message().contains("2026-12-08T00:00:00Z"),
            "{}",
            e.message()
        );
        ledger
            .check(
                "t",
                &budget,
                Utc.with_ymd_and_hms(2026, 12, 8, 0, 0, 1).unwrap(),
            )
            .unwrap();
    }

    #[test]
    fn seeded_totals_count_against_the_budget_and_show_in_the_state() {
        let ledger = Ledger::new();
        let budget = Budget {
            rows_returned_per_day: Some(50),
            ..Budget::default()
        };
        let spent = |rows| Spent {
            bytes_scanned: 7,
            rows_returned: rows,
        };
        ledger.seed("t", spent(20), spent(50), at(9, 30));
        assert!(ledger.check("t", &budget, at(9, 31)).is_err());
        let state = ledger.state("t", at(9, 31));
        assert_eq!(
            (state.hour.rows_returned, state.day.rows_returned),
            (20, 50)
        );
        assert_eq!(state.hour_resets_at, at(10, 0));
        // An unlimited token is never refused.
        ledger.check("t", &Budget::default(), at(9, 31)).unwrap();
    }
}
