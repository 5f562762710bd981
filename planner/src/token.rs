//! The token document: what an admin sends to `POST /v1/tokens` or
//! `sluice token create --file`, and the record the store keeps (DESIGN §3).
//!
//! Secrets are `slc_` + base64url(32 random bytes from the OS), shown once
//! and stored only as their SHA-256 (hex).

use std::collections::BTreeMap;
use std::fmt;
use std::net::IpAddr;
use std::str::FromStr;

use crate::limits::budget::Budget;
use crate::policy::{Grant, TokenScope, TokenType};
use crate::secret::Secret;
use base64::Engine as _;
use chrono::{DateTime, Utc};
use ipnet::IpNet;
use rand::TryRngCore as _;
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use sha2::{Digest, Sha256};

/// Prefix of every token secret.
pub const SECRET_PREFIX: &str = "slc_";

/// Bytes of randomness in a secret (256 bits).
const SECRET_BYTES: usize = 32;

/// A new random secret from the operating system's CSPRNG (`slc_` +
/// base64url of 256 bits), to show once to its owner.
pub fn generate_secret() -> Secret {
    let mut bytes = [0u8; SECRET_BYTES];
    rand::rngs::OsRng
        .try_fill_bytes(&mut bytes)
        .expect("the operating system's random number generator failed");
    Secret::new(format!(
        "{SECRET_PREFIX}{}",
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
    ))
}

/// Lower-case hex SHA-256 of a presented secret.
pub fn hash_secret(secret: &str) -> String {
    hex::encode(Sha256::digest(secret.as_bytes()))
}

/// Whether a presented string has the shape of a sluice secret.
pub fn looks_like_secret(s: &str) -> bool {
    s.strip_prefix(SECRET_PREFIX).is_some_and(|rest| {
        rest.len() == 43
            && rest
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
    })
}

/// A client network: a CIDR (`10.0.0.0/8`) or a single address (`10.1.2.3`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cidr(pub IpNet);

impl Cidr {
    /// Whether `ip` lies in this network (IPv4-mapped IPv6 addresses count as IPv4).
    pub fn contains(&self, ip: IpAddr) -> bool {
        self.0.contains(&ip.to_canonical())
    }
}

impl FromStr for Cidr {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let s = s.trim();
        s.parse::<IpNet>()
            .or_else(|_| s.parse::<IpAddr>().map(IpNet::from))
            .map(|n| Cidr(n.trunc()))
            .map_err(|_| format!("audience.cidrs: '{s}' is not a CIDR or IP address"))
    }
}

impl fmt::Display for Cidr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

impl Serialize for Cidr {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Cidr {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        String::deserialize(d)?
            .parse()
            .map_err(serde::de::Error::custom)
    }
}

/// Who may present a token. Empty lists mean "anyone".
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Audience {
    /// Client networks the token may be used from.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub cidrs: Vec<Cidr>,
    /// Partner organisations (federation peers) the token may be used by.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub orgs: Vec<String>,
}

impl Audience {
    /// Whether a request from `client` is inside the audience's networks.
    /// With a CIDR list, a request whose address is unknown is refused.
    pub fn allows_client(&self, client: Option<IpAddr>) -> bool {
        // Org restrictions cannot be verified yet: a token that has one
        // (stored before creation started refusing them) fails closed.
        if !self.orgs.is_empty() {
            return false;
        }
        if self.cidrs.is_empty() {
            return true;
        }
        client.is_some_and(|ip| self.cidrs.iter().any(|c| c.contains(ip)))
    }
}

/// Longest `query_timeout` a token may have.
const MAX_QUERY_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(7 * 24 * 3600);

/// The token document accepted by the admin API and the CLI. Unknown fields
/// are rejected.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TokenSpec {
    /// Human-readable name (required).
    pub name: String,
    /// `public` (default) or `share`.
    #[serde(default)]
    pub token_type: TokenType,
    /// RFC 3339 expiry; none = never expires.
    #[serde(default)]
    pub expires_at: Option<DateTime<Utc>>,
    /// Share tokens: the endpoint the partner must call.
    #[serde(default)]
    pub provider_base_url: Option<String>,
    /// Values usable in rules as `token.<key>` (strings, numbers, booleans).
    #[serde(default)]
    pub attributes: BTreeMap<String, serde_json::Value>,
    /// Clearance (default 0).
    #[serde(default)]
    pub max_sensitivity: i64,
    /// Rows per statement; default: `[policy] default_row_limit`.
    #[serde(default)]
    pub row_limit: Option<u64>,
    /// Attachment columns visible (default false).
    #[serde(default)]
    pub allow_attachments: bool,
    /// Embedding columns visible (default false).
    #[serde(default)]
    pub can_export_vectors: bool,
    /// May use the admin API and `system.*` tables (default false).
    #[serde(default)]
    pub admin: bool,
    /// Client CIDRs / orgs allowed to present the token.
    #[serde(default)]
    pub audience: Audience,
    /// Requests per minute (token bucket); none = the gateway's
    /// `limits.rate_limit_per_minute`.
    #[serde(default)]
    pub rate_limit: Option<u32>,
    /// Run time of each statement (`"30s"`, `"5m"`); none = the gateway's
    /// `limits.query_timeout`.
    #[serde(
        default,
        with = "crate::units::opt_duration",
        skip_serializing_if = "Option::is_none"
    )]
    pub query_timeout: Option<std::time::Duration>,
    /// Bytes scanned and rows returned per hour and per UTC day (each
    /// optional); a token whose budget is spent is refused until the
    /// window resets.
    #[serde(default, skip_serializing_if = "Budget::is_unlimited")]
    pub budget: Budget,
    /// Table grants (deny by default).
    #[serde(default)]
    pub grants: Vec<Grant>,
    /// Destination prefixes (`s3://bucket/prefix`, `file:///path` under
    /// the export root) the token may export to; none by default. Checked
    /// and normalised by the export jobs (`DestinationUrl`), which own the
    /// syntax of destinations.
    #[serde(default)]
    pub export_destinations: Vec<String>,
}

impl TokenSpec {
    /// Parses a token document, with an error message naming the problem
    /// (unknown field, wrong type, …).
    pub fn from_json(bytes: &[u8]) -> Result<Self, String> {
        let mut de = serde_json::Deserializer::from_slice(bytes);
        let spec: Self = serde_path_to_error::deserialize(&mut de).map_err(|e| {
            let path = e.path().to_string();
            let inner = e.into_inner();
            if path == "." {
                format!("invalid token document: {inner}")
            } else {
                format!("invalid token document: {path}: {inner}")
            }
        })?;
        de.end()
            .map_err(|e| format!("invalid token document: {e}"))?;
        Ok(spec)
    }

    /// The full-access admin token `sluice init` creates.
    pub fn admin(name: &str, row_limit: u64) -> Self {
        TokenSpec {
            name: name.to_string(),
            token_type: TokenType::Public,
            expires_at: None,
            provider_base_url: None,
            attributes: BTreeMap::new(),
            max_sensitivity: i64::MAX,
            row_limit: Some(row_limit),
            allow_attachments: true,
            can_export_vectors: true,
            admin: true,
            audience: Audience::default(),
            rate_limit: None,
            query_timeout: None,
            budget: Budget::default(),
            grants: vec![Grant {
                table: "*".into(),
                columns: Default::default(),
                masks: Default::default(),
                allow_rules: vec![],
                deny_rules: vec![],
            }],
            export_destinations: vec![],
        }
    }

    /// Checks that do not need the catalogs (the governor validates tables,
    /// columns, rules and masks). Returns every problem found.
    pub fn check(&self, now: DateTime<Utc>) -> Vec<String> {
        let mut problems = Vec::new();
        if self.name.trim().is_empty() {
            problems.push("name must not be empty".to_string());
        }
        if self.name.len() > 200 {
            problems.push("name is longer than 200 characters".to_string());
        }
        if self.row_limit == Some(0) {
            problems.push("row_limit must be at least 1".to_string());
        }
        if self.row_limit.is_some_and(|l| l > i64::MAX as u64) {
            problems.push("row_limit is too large".to_string());
        }
        if self
            .query_timeout
            .is_some_and(|t| t.is_zero() || t > MAX_QUERY_TIMEOUT)
        {
            problems.push(
                "query_timeout must be positive and at most 7 days (omit it for the gateway's default, limits.query_timeout)"
                    .to_string(),
            );
        }
        problems.extend(self.budget.problems());
        if self.rate_limit == Some(0) {
            problems.push(
                "rate_limit must be at least 1 request per minute (omit it for the gateway's default, limits.rate_limit_per_minute)"
                    .to_string(),
            );
        }
        if let Some(exp) = self.expires_at
            && exp <= now
        {
            problems.push(format!("expires_at {} is in the past", exp.to_rfc3339()));
        }
        match (self.token_type, &self.provider_base_url) {
            (TokenType::Share, None) => problems.push(
                "share tokens need provider_base_url (the endpoint the partner calls, grpc+tls://host:port)"
                    .to_string(),
            ),
            (TokenType::Public, Some(_)) => {
                problems.push("provider_base_url is only for share tokens".to_string())
            }
            _ => {}
        }
        if self.token_type == TokenType::Share && self.admin {
            problems.push("share tokens cannot be admin tokens".to_string());
        }
        if let Some(u) = &self.provider_base_url {
            match url::Url::parse(u) {
                Ok(p)
                    if matches!(
                        p.scheme(),
                        "grpc" | "grpc+tls" | "grpc+tcp" | "http" | "https"
                    ) => {}
                _ => problems.push(format!(
                    "provider_base_url '{u}' is not a grpc://, grpc+tls://, http:// or https:// URL"
                )),
            }
        }
        for (k, v) in &self.attributes {
            if k.is_empty() || !k.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
                problems.push(format!(
                    "attribute name '{k}' must be non-empty ASCII letters, digits or '_'"
                ));
            }
            if !(v.is_string() || v.is_number() || v.is_boolean()) {
                problems.push(format!(
                    "attribute '{k}' must be a string, number or boolean"
                ));
            }
        }
        if !self.audience.orgs.is_empty() {
            // Refused rather than stored unenforced: an org restriction that
            // is silently ignored would fail open.
            problems.push(
                "audience.orgs is not supported yet (clients carry no verified organisation); \
                 restrict by audience.cidrs"
                    .to_string(),
            );
        }
        for (i, g) in self.grants.iter().enumerate() {
            if g.table.trim().is_empty() {
                problems.push(format!("grants[{i}].table must not be empty"));
            }
        }
        problems
    }

    /// The scope a token made from this document would have.
    pub fn scope(&self, token_id: &str, default_row_limit: u64) -> TokenScope {
        TokenScope {
            token_id: token_id.to_string(),
            name: self.name.clone(),
            token_type: self.token_type,
            admin: self.admin,
            attributes: self.attributes.clone(),
            max_sensitivity: self.max_sensitivity,
            row_limit: self.row_limit.unwrap_or(default_row_limit),
            allow_attachments: self.allow_attachments,
            can_export_vectors: self.can_export_vectors,
            grants: self.grants.clone(),
            query_timeout: self.query_timeout,
            budget: self.budget.clone(),
        }
    }
}

/// A stored token, as shown by the API and the CLI (never the secret or its hash).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TokenRecord {
    /// Token id (public; appears in logs and audit records).
    pub id: String,
    /// Human-readable name.
    pub name: String,
    /// public or share.
    pub token_type: TokenType,
    /// Who created it (`token:<id>`, `cli`, `init`).
    pub created_by: String,
    /// Creation time.
    pub created_at: DateTime<Utc>,
    /// Expiry, if any.
    pub expires_at: Option<DateTime<Utc>>,
    /// Revocation time, if revoked.
    pub revoked_at: Option<DateTime<Utc>>,
    /// Share tokens: the endpoint the partner must call.
    pub provider_base_url: Option<String>,
    /// Client CIDRs / orgs allowed to present the token.
    pub audience: Audience,
    /// Rule attributes.
    pub attributes: BTreeMap<String, serde_json::Value>,
    /// Table grants.
    pub grants: Vec<Grant>,
    /// Clearance.
    pub max_sensitivity: i64,
    /// Rows per statement.
    pub row_limit: u64,
    /// Attachment columns visible.
    pub allow_attachments: bool,
    /// Embedding columns visible.
    pub can_export_vectors: bool,
    /// Requests per minute (token bucket); none = the gateway's
    /// `limits.rate_limit_per_minute`.
    pub rate_limit: Option<u32>,
    /// Run time of each statement (`"30s"`, `"5m"`); none = the gateway's
    /// `limits.query_timeout`.
    #[serde(
        default,
        with = "crate::units::opt_duration",
        skip_serializing_if = "Option::is_none"
    )]
    pub query_timeout: Option<std::time::Duration>,
    /// Bytes scanned and rows returned per hour and day.
    #[serde(default, skip_serializing_if = "Budget::is_unlimited")]
    pub budget: Budget,
    /// Admin token.
    pub admin: bool,
    /// Destination prefixes the token may export to (normalised).
    #[serde(default)]
    pub export_destinations: Vec<String>,
}

impl TokenRecord {
    /// Whether the token is usable at `now` (not revoked, not expired).
    pub fn is_active(&self, now: DateTime<Utc>) -> bool {
        self.revoked_at.is_none() && !self.is_expired(now)
    }

    /// Whether the token has expired at `now`.
    pub fn is_expired(&self, now: DateTime<Utc>) -> bool {
        self.expires_at.is_some_and(|e| e <= now)
    }

    /// The scope the planner enforces for this token.
    pub fn scope(&self) -> TokenScope {
        TokenScope {
            token_id: self.id.clone(),
            name: self.name.clone(),
            token_type: self.token_type,
            admin: self.admin,
            attributes: self.attributes.clone(),
            max_sensitivity: self.max_sensitivity,
            row_limit: self.row_limit,
            allow_attachments: self.allow_attachments,
            can_export_vectors: self.can_export_vectors,
            grants: self.grants.clone(),
            query_timeout: self.query_timeout,
            budget: self.budget.clone(),
        }
    }
}

/// What creating a share token returns: no secret (it is generated when the
/// profile is downloaded, once).
#[derive(Debug, Serialize)]
pub struct CreatedShare {
    /// The new token's id.
    pub id: String,
    /// Its name.
    pub name: String,
    /// Where its profile is downloaded (once).
    pub download_url: String,
}

impl CreatedShare {
    /// The answer for share token `id`.
    pub fn new(id: &str, name: &str) -> Self {
        Self {
            id: id.to_string(),
            name: name.to_string(),
            download_url: format!("/v1/tokens/{id}/download"),
        }
    }
}

/// What creating a token returns: its id and its secret, shown once.
#[derive(Serialize)]
pub struct CreatedToken {
    /// The new token's id.
    pub id: String,
    /// The secret (only time it is ever visible).
    pub secret: String,
}

impl fmt::Debug for CreatedToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CreatedToken")
            .field("id", &self.id)
            .field("secret", &"[redacted]")
            .finish()
    }
}

#[cfg(test)]
mod tests {

    #[test]
    fn org_audiences_fail_closed() {
        let local: IpAddr = "127.0.0.1".parse().unwrap();
        let open = Audience::default();
        assert!(open.allows_client(Some(local)));
        // A stored token with an org restriction (which cannot be verified
        // yet) is refused rather than allowed from anywhere.
        let orgs = Audience {
            orgs: vec!["acme".into()],
            ..Audience::default()
        };
        assert!(!orgs.allows_client(Some(local)));
    }

    use super::*;

    const EXAMPLE: &str = r#"{"name": "eu-analyst", "token_type": "public", "expires_at": "2027-01-01T00:00:00Z",
 "attributes": {"region": "eu"}, "max_sensitivity": 2, "row_limit": 1000,
 "allow_attachments": false, "can_export_vectors": false, "admin": false, "audience": {"cidrs": ["127.0.0.0/8"]}, "rate_limit": 600,
 "grants": [{"table": "lake.sales.orders", "columns": ["order_id", "region", "amount", "customer_email"], "masks": {"customer_email": "hash"}, "allow_rules": ["region = token.region"], "deny_rules": ["amount > 10000"]}]}"#;

    #[test]
    fn generated_secrets_are_unique_hashed_and_redacted() {
        let s = generate_secret();
        assert!(looks_like_secret(s.expose()), "{}", s.expose());
        assert_ne!(s, generate_secret());
        assert_eq!(hash_secret(s.expose()).len(), 64);
        assert!(!format!("{s:?}").contains(s.expose()));
        assert!(!looks_like_secret("slc_short"));
        assert!(!looks_like_secret(&format!("xyz_{}", &s.expose()[4..])));
    }

    #[test]
    fn example_document_parses() {
        let spec = TokenSpec::from_json(EXAMPLE.as_bytes()).unwrap();
        assert_eq!(spec.name, "eu-analyst");
        assert_eq!(spec.row_limit, Some(1000));
        assert_eq!(spec.audience.cidrs.len(), 1);
        let now: DateTime<Utc> = "2026-01-01T00:00:00Z".parse().unwrap();
        assert!(spec.check(now).is_empty(), "{:?}", spec.check(now));
        let scope = spec.scope("id1", 10);
        assert_eq!(scope.row_limit, 1000);
        assert_eq!(scope.grants[0].allow_rules, vec!["region = token.region"]);
    }

    #[test]
    fn unknown_fields_are_named() {
        let err = TokenSpec::from_json(br#"{"name":"x","colums":[]}"#).unwrap_err();
        assert!(err.contains("colums"), "{err}");
        let err =
            TokenSpec::from_json(br#"{"name":"x","grants":[{"table":"a.b.c","deny":["x"]}]}"#)
                .unwrap_err();
        assert!(err.contains("deny"), "{err}");
        let err =
            TokenSpec::from_json(br#"{"name":"x","audience":{"cidrs":["nope"]}}"#).unwrap_err();
        assert!(err.contains("nope"), "{err}");
    }

    #[test]
    fn basic_checks() {
        let mut spec = TokenSpec::admin(" ", 10);
        spec.row_limit = Some(0);
        spec.rate_limit = Some(0);
        spec.expires_at = Some("2000-01-01T00:00:00Z".parse().unwrap());
        spec.attributes
            .insert("bad key".into(), serde_json::json!({"x": 1}));
        spec.provider_base_url = Some("ftp://x".into());
        let problems = spec.check(Utc::now());
        // Seven above, and provider_base_url on a public token.
        assert_eq!(problems.len(), 8, "{problems:?}");
    }

    #[test]
    fn share_tokens_need_an_endpoint_and_no_admin() {
        let mut spec = TokenSpec::admin("p", 10);
        spec.token_type = TokenType::Share;
        let problems = spec.check(Utc::now());
        assert!(
            problems
                .iter()
                .any(|p| p.contains("need provider_base_url")),
            "{problems:?}"
        );
        assert!(
            problems.iter().any(|p| p.contains("cannot be admin")),
            "{problems:?}"
        );
        spec.admin = false;
        spec.provider_base_url = Some("grpc+tls://gw.example:50051".into());
        assert!(spec.check(Utc::now()).is_empty());
    }

    #[test]
    fn audience() {
        let a: Audience =
            serde_json::from_str(r#"{"cidrs":["127.0.0.0/8","10.1.2.3","::1"]}"#).unwrap();
        assert!(a.allows_client(Some("127.4.5.6".parse().unwrap())));
        assert!(a.allows_client(Some("::ffff:127.0.0.1".parse().unwrap())));
        assert!(a.allows_client(Some("10.1.2.3".parse().unwrap())));
        assert!(a.allows_client(Some("::1".parse().unwrap())));
        assert!(!a.allows_client(Some("10.1.2.4".parse().unwrap())));
        assert!(!a.allows_client(None));
        assert!(Audience::default().allows_client(None));
        assert_eq!(
            serde_json::to_string(&a).unwrap(),
            r#"{"cidrs":["127.0.0.0/8","10.1.2.3/32","::1/128"]}"#
        );
    }

    #[test]
    fn a_query_timeout_is_a_duration_within_a_week() {
        let spec = TokenSpec::from_json(br#"{"name": "n", "query_timeout": "90s"}"#).unwrap();
        assert_eq!(spec.query_timeout, Some(std::time::Duration::from_secs(90)));
        assert_eq!(
            spec.scope("t", 10).query_timeout,
            Some(std::time::Duration::from_secs(90))
        );
        for bad in [r#""0s""#, r#""8d""#] {
            let spec = TokenSpec::from_json(
                format!(r#"{{"name": "n", "query_timeout": {bad}}}"#).as_bytes(),
            )
            .unwrap();
            assert!(
                spec.check(chrono::Utc::now())
                    .iter()
                    .any(|p| p.contains("query_timeout")),
                "{bad}"
            );
        }
        assert!(TokenSpec::from_json(br#"{"name": "n", "query_timeout": "soon"}"#).is_err());
    }
}
