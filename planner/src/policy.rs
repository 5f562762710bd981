//! The policy model: what a token may see (DESIGN §3–4).
//!
//! These types are stored as JSON in the token store and accepted verbatim by
//! the admin API, so their serde form is part of the public contract.

use std::collections::BTreeMap;
use std::fmt;
use std::str::FromStr;

use crate::limits::budget::Budget;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// Default hard cap of rows per request when a token does not set one.
pub const DEFAULT_ROW_LIMIT: u64 = 10_000;

/// Whether a token belongs to a local user or to a partner gateway.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum TokenType {
    /// A local user (BI tool, notebook).
    #[default]
    Public,
    /// Issued to a partner gateway (federation).
    Share,
}

impl TokenType {
    /// The lower-case name used in JSON and in the store.
    pub fn as_str(&self) -> &'static str {
        match self {
            TokenType::Public => "public",
            TokenType::Share => "share",
        }
    }
}

impl FromStr for TokenType {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "public" => Ok(TokenType::Public),
            "share" => Ok(TokenType::Share),
            other => Err(format!(
                "unknown token_type '{other}' (expected public or share)"
            )),
        }
    }
}

/// Which columns of a table a grant exposes.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum Columns {
    /// Every column of the table (subject to attachment/vector flags).
    #[default]
    All,
    /// Exactly these columns.
    List(Vec<String>),
}

impl Columns {
    /// Whether `name` is granted by this column list.
    pub fn contains(&self, name: &str) -> bool {
        match self {
            Columns::All => true,
            Columns::List(cols) => cols.iter().any(|c| c == name),
        }
    }
}

impl Serialize for Columns {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            Columns::All => s.serialize_str("*"),
            Columns::List(cols) => cols.serialize(s),
        }
    }
}

impl<'de> Deserialize<'de> for Columns {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Raw {
            Star(String),
            List(Vec<String>),
        }
        match Raw::deserialize(d)? {
            Raw::Star(s) if s == "*" => Ok(Columns::All),
            Raw::Star(s) => Err(serde::de::Error::custom(format!(
                "columns must be \"*\" or a list of column names, got \"{s}\""
            ))),
            Raw::List(cols) if cols.iter().any(|c| c == "*") => Ok(Columns::All),
            Raw::List(cols) => Ok(Columns::List(cols)),
        }
    }
}

/// How a masked column is presented. Every expression (select list,
/// predicates, joins, aggregates) sees only the masked value.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Mask {
    /// Lower-case hex SHA-256 of the value's text (UTF-8). NULL stays NULL.
    Hash,
    /// The constant `[REDACTED]` for text columns, NULL for other types.
    Redact,
    /// Always NULL (the column keeps its type).
    Null,
    /// Keep the first `keep_first` and last `keep_last` characters, replace
    /// every other character with `*`. Values no longer than
    /// `keep_first + keep_last` characters are entirely `*`.
    Partial {
        /// Characters kept at the start.
        keep_first: usize,
        /// Characters kept at the end.
        keep_last: usize,
    },
}

impl fmt::Display for Mask {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Mask::Hash => f.write_str("hash"),
            Mask::Redact => f.write_str("redact"),
            Mask::Null => f.write_str("null"),
            Mask::Partial {
                keep_first,
                keep_last,
            } => write!(f, "partial({keep_first},{keep_last})"),
        }
    }
}

impl FromStr for Mask {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let t = s.trim().to_ascii_lowercase();
        match t.as_str() {
            "hash" => return Ok(Mask::Hash),
            "redact" => return Ok(Mask::Redact),
            "null" => return Ok(Mask::Null),
            _ => {}
        }
        let bad = || {
            format!(
                "unknown mask '{s}' (expected hash, redact, null or partial(keep_first, keep_last))"
            )
        };
        let inner = t
            .strip_prefix("partial(")
            .and_then(|r| r.strip_suffix(')'))
            .ok_or_else(bad)?;
        let mut parts = inner.split(',').map(|p| p.trim().parse::<usize>());
        match (parts.next(), parts.next(), parts.next()) {
            (Some(Ok(keep_first)), Some(Ok(keep_last)), None) => Ok(Mask::Partial {
                keep_first,
                keep_last,
            }),
            _ => Err(bad()),
        }
    }
}

impl Serialize for Mask {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.to_string())
    }
}

impl<'de> Deserialize<'de> for Mask {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

/// Access to one table, or to every table matched by a glob
/// (`lake.sales.*`, `lake.*`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Grant {
    /// `catalog.namespace.table`, or a glob ending in `.*`.
    pub table: String,
    /// Granted columns (`"*"` or a list). Default `"*"`.
    #[serde(default)]
    pub columns: Columns,
    /// Column name → mask.
    #[serde(default)]
    pub masks: BTreeMap<String, Mask>,
    /// A row is visible only if at least one allow rule is TRUE (or there are none).
    #[serde(default)]
    pub allow_rules: Vec<String>,
    /// A row is invisible if any deny rule is TRUE or NULL.
    #[serde(default)]
    pub deny_rules: Vec<String>,
}

impl Grant {
    /// How specifically this grant matches `table` (a fully qualified,
    /// three-part name): `None` if it does not match; higher is more specific.
    pub fn specificity(&self, table: &str) -> Option<usize> {
        if self.table == table {
            return Some(usize::MAX);
        }
        if self.table == "*" {
            return Some(0);
        }
        let prefix = self.table.strip_suffix(".*")?;
        let rest = table.strip_prefix(prefix)?.strip_prefix('.')?;
        // `lake.*` matches `lake.sales.orders`; `lake.sales.*` matches `lake.sales.orders`.
        (!rest.is_empty()).then_some(prefix.split('.').count())
    }
}

/// Everything the planner needs to know about the token making a request.
/// Built by the authenticator from the stored token record.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TokenScope {
    /// The token's id (never its secret).
    pub token_id: String,
    /// Human-readable name.
    pub name: String,
    /// public or share.
    #[serde(default)]
    pub token_type: TokenType,
    /// May use the admin API and `system.*` tables.
    #[serde(default)]
    pub admin: bool,
    /// Values usable in rules as `token.<key>`: strings, numbers or booleans.
    #[serde(default)]
    pub attributes: BTreeMap<String, serde_json::Value>,
    /// Clearance: rows whose sensitivity is above it (or NULL) are invisible.
    #[serde(default)]
    pub max_sensitivity: i64,
    /// Hard cap of rows per statement.
    #[serde(default = "default_row_limit")]
    pub row_limit: u64,
    /// Attachment columns visible.
    #[serde(default)]
    pub allow_attachments: bool,
    /// Embedding columns visible.
    #[serde(default)]
    pub can_export_vectors: bool,
    /// Table grants.
    #[serde(default)]
    pub grants: Vec<Grant>,
    /// Run time of each statement; none = the gateway's
    /// `limits.query_timeout`.
    #[serde(
        default,
        with = "crate::units::opt_duration",
        skip_serializing_if = "Option::is_none"
    )]
    pub query_timeout: Option<std::time::Duration>,
    /// Bytes scanned and rows returned per hour and day (none: unlimited).
    #[serde(default, skip_serializing_if = "Budget::is_unlimited")]
    pub budget: Budget,
}

fn default_row_limit() -> u64 {
    DEFAULT_ROW_LIMIT
}

impl TokenScope {
    /// Whether the token may use the admin API and `system.*` tables.
    pub fn is_admin(&self) -> bool {
        self.admin
    }

    /// Whether the token may see or act on something token `owner` owns
    /// (a query, an export job, a token record): its own, or anything for
    /// an admin. The one place frontends ask this.
    pub fn may_manage(&self, owner: &str) -> bool {
        self.admin || self.token_id == owner
    }

    /// The most specific grant matching a fully qualified table name.
    pub fn grant_for(&self, table: &str) -> Option<&Grant> {
        self.grants
            .iter()
            .filter_map(|g| g.specificity(table).map(|s| (s, g)))
            .max_by_key(|(s, _)| *s)
            .map(|(_, g)| g)
    }

    /// The grant that applies to `table`: the most specific matching grant,
    /// plus the masks of every other matching grant (e.g. a covering glob)
    /// on columns it grants and does not mask itself, so a more specific
    /// grant can never unmask what a broader one masks.
    pub fn effective_grant(&self, table: &str) -> Option<Grant> {
        let mut best = self.grant_for(table)?.clone();
        for g in self
            .grants
            .iter()
            .filter(|g| g.specificity(table).is_some())
        {
            for (column, mask) in &g.masks {
                let granted = match &best.columns {
                    Columns::All => true,
                    Columns::List(cols) => cols.iter().any(|c| c.eq_ignore_ascii_case(column)),
                };
                let masked = best.masks.keys().any(|c| c.eq_ignore_ascii_case(column));
                if granted && !masked {
                    best.masks.insert(column.clone(), *mask);
                }
            }
        }
        Some(best)
    }

    /// Whether any grant could match a table in `catalog` / `catalog.schema`.
    pub fn may_see_prefix(&self, prefix: &str) -> bool {
        self.grants.iter().any(|g| {
            if g.table == "*" {
                return true;
            }
            let pat = g.table.strip_suffix(".*").unwrap_or(&g.table);
            // The grant names something inside the prefix, or the prefix lies inside the grant's glob.
            pat.starts_with(&format!("{prefix}."))
                || pat == prefix
                || (g.table.ends_with(".*") && prefix.starts_with(&format!("{pat}.")))
        })
    }
}

/// How a table's columns are classified by the operator (catalog config).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TableClass {
    /// Integer column holding each row's sensitivity.
    #[serde(default)]
    pub sensitivity_column: Option<String>,
    /// Binary or blob-URI columns hidden unless `allow_attachments`.
    #[serde(default)]
    pub attachment_columns: Vec<String>,
    /// Embedding columns hidden unless `can_export_vectors`. `None`: every
    /// list / fixed-size list of floating point column.
    #[serde(default)]
    pub vector_columns: Option<Vec<String>>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn masks_round_trip() {
        for s in ["hash", "redact", "null", "partial(2,3)"] {
            let m: Mask = s.parse().unwrap();
            assert_eq!(m.to_string(), s);
        }
        assert!("partial(2)".parse::<Mask>().is_err());
        assert!("sha1".parse::<Mask>().is_err());
        assert_eq!(
            " Partial( 1 , 0 ) ".parse::<Mask>().unwrap(),
            Mask::Partial {
                keep_first: 1,
                keep_last: 0
            }
        );
    }

    #[test]
    fn columns_serde() {
        let c: Columns = serde_json::from_str("\"*\"").unwrap();
        assert_eq!(c, Columns::All);
        let c: Columns = serde_json::from_str("[\"a\",\"b\"]").unwrap();
        assert_eq!(c, Columns::List(vec!["a".into(), "b".into()]));
        assert!(serde_json::from_str::<Columns>("\"a\"").is_err());
    }

    #[test]
    fn grant_specificity() {
        let g = |t: &str| Grant {
            table: t.into(),
            columns: Columns::All,
            masks: Default::default(),
            allow_rules: vec![],
            deny_rules: vec![],
        };
        assert!(
            g("lake.sales.orders")
                .specificity("lake.sales.orders")
                .is_some()
        );
        assert!(
            g("lake.sales.orders")
                .specificity("lake.sales.orders2")
                .is_none()
        );
        assert!(g("lake.sales.*").specificity("lake.sales.orders").is_some());
        assert!(
            g("lake.sales.*")
                .specificity("lake.salesx.orders")
                .is_none()
        );
        assert!(g("lake.*").specificity("lake.hr.people").is_some());
        assert!(g("lake.*").specificity("lakehouse.hr.people").is_none());
        let scope = TokenScope {
            token_id: "t".into(),
            name: "n".into(),
            token_type: TokenType::Public,
            admin: false,
            attributes: Default::default(),
            max_sensitivity: 0,
            row_limit: 10,
            allow_attachments: false,
            can_export_vectors: false,
            grants: vec![g("lake.*"), g("lake.sales.orders"), g("lake.sales.*")],
            query_timeout: None,
            budget: Budget::default(),
        };
        assert_eq!(
            scope.grant_for("lake.sales.orders").unwrap().table,
            "lake.sales.orders"
        );
        assert_eq!(
            scope.grant_for("lake.sales.customers").unwrap().table,
            "lake.sales.*"
        );
        assert_eq!(scope.grant_for("lake.hr.people").unwrap().table, "lake.*");
        assert!(scope.may_see_prefix("lake"));
        assert!(scope.may_see_prefix("lake.hr"));
        assert!(!scope.may_see_prefix("other"));
    }
}
