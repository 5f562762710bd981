//! Credential extraction and authentication.
//!
//! [`extract_secret`] is the one place where a token secret is read from
//! request metadata. The secret is wrapped in [`Secret`], whose `Debug` is
//! redacted, and is never logged.

use std::fmt;
use std::net::IpAddr;
use std::sync::Arc;

use base64::Engine;
use base64::alphabet;
use base64::engine::{DecodePaddingMode, GeneralPurpose, GeneralPurposeConfig};
use sluice_planner::{AuthFailureKind, Authenticator, TokenScope};
use tonic::metadata::MetadataMap;

use crate::error::{Error, Result};

/// Name of the metadata key carrying credentials.
pub(crate) const AUTHORIZATION: &str = "authorization";

/// Standard base64 that accepts input with or without `=` padding (Go's
/// ADBC driver sends none).
const BASE64_ANY_PADDING: GeneralPurpose = GeneralPurpose::new(
    &alphabet::STANDARD,
    GeneralPurposeConfig::new().with_decode_padding_mode(DecodePaddingMode::Indifferent),
);

/// A token secret as presented by the client. `Debug` never shows it.
pub(crate) struct Secret(String);

impl Secret {
    /// The secret itself, to hand to the authenticator or echo to the client.
    pub(crate) fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(<redacted>)")
    }
}

/// Which authorization schemes a call accepts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Schemes {
    /// `Bearer <token>` only (every call but Handshake).
    Bearer,
    /// `Bearer <token>` or `Basic base64(user:token)` (Handshake).
    BearerOrBasic,
}

/// Reads the token secret from the `authorization` metadata: `Bearer
/// <token>`, or — when `schemes` allows it — `Basic base64(user:token)`
/// where the password is the token. Scheme names are case-insensitive.
pub(crate) fn extract_secret(
    metadata: &MetadataMap,
    schemes: Schemes,
) -> Result<Secret, AuthFailureKind> {
    let malformed = AuthFailureKind::Malformed;
    let value = metadata
        .get(AUTHORIZATION)
        .ok_or(malformed)?
        .to_str()
        .map_err(|_| malformed)?
        .trim();
    let (scheme, rest) = value.split_once(' ').ok_or(malformed)?;
    let rest = rest.trim();
    let secret = if scheme.eq_ignore_ascii_case("bearer") {
        rest.to_owned()
    } else if scheme.eq_ignore_ascii_case("basic") && schemes == Schemes::BearerOrBasic {
        let decoded = BASE64_ANY_PADDING.decode(rest).map_err(|_| malformed)?;
        let text = String::from_utf8(decoded).map_err(|_| malformed)?;
        let (_user, password) = text.split_once(':').ok_or(malformed)?;
        password.to_owned()
    } else {
        return Err(malformed);
    };
    if secret.is_empty() {
        return Err(malformed);
    }
    Ok(Secret(secret))
}

/// Authenticates the caller of a request: extracts the secret and asks the
/// authenticator, passing the peer address for audience checks.
pub(crate) async fn authenticate<T>(
    authenticator: &dyn Authenticator,
    request: &tonic::Request<T>,
    schemes: Schemes,
) -> Result<(Secret, Arc<TokenScope>)> {
    let peer: Option<IpAddr> = request.remote_addr().map(|a| a.ip());
    // Missing or unparsable credentials go through the authenticator as an
    // empty secret, so every failure is counted (and rate limited) alike.
    let extracted = extract_secret(request.metadata(), schemes);
    let presented = extracted.as_ref().map(Secret::expose).unwrap_or_default();
    let scope =
        authenticator
            .authenticate(presented, peer)
            .await
            .map_err(|failure| match failure.retry_after {
                Some(_) => Error::Limited(failure),
                None => Error::Unauthenticated(failure.kind),
            })?;
    let secret = extracted.map_err(Error::Unauthenticated)?;
    Ok((secret, scope))
}

/// Refuses a share token on a connection without a verified client
/// certificate when `required`, with the same answer as any other
/// authentication failure. (The TLS layer has already rejected
/// certificates that do not chain to the configured client CA.)
pub(crate) fn check_share_certificate<T>(
    scope: &TokenScope,
    request: &tonic::Request<T>,
    required: bool,
) -> Result<()> {
    if !required || scope.token_type != sluice_planner::TokenType::Share {
        return Ok(());
    }
    let presented = request.peer_certs().is_some_and(|certs| !certs.is_empty());
    if presented {
        return Ok(());
    }
    tracing::info!(token_id = %scope.token_id, "share token refused: no client certificate");
    metrics::counter!("sluice_auth_failures_total", "kind" => "client_certificate").increment(1);
    Err(Error::Unauthenticated(AuthFailureKind::Audience))
}

#[cfg(test)]
mod tests {
    use super::*;
    use base64::engine::general_purpose::{STANDARD, STANDARD_NO_PAD};

    fn md(value: &str) -> MetadataMap {
        let mut m = MetadataMap::new();
        m.insert(AUTHORIZATION, value.parse().expect("valid header"));
        m
    }

    fn secret(value: &str, schemes: Schemes) -> Result<String, AuthFailureKind> {
        extract_secret(&md(value), schemes).map(|s| s.expose().to_owned())
    }

    #[test]
    fn bearer() {
        assert_eq!(secret("Bearer abc", Schemes::Bearer).unwrap(), "abc");
        assert_eq!(secret("bearer  abc ", Schemes::Bearer).unwrap(), "abc");
        assert_eq!(secret("Bearer abc", Schemes::BearerOrBasic).unwrap(), "abc");
        assert!(secret("Bearer ", Schemes::Bearer).is_err());
        assert!(secret("Bearer", Schemes::Bearer).is_err());
        assert!(secret("Token abc", Schemes::Bearer).is_err());
    }

    #[test]
    fn basic_with_and_without_padding() {
        // "user:tok1x" is 10 bytes: padded base64 ends in "==".
        let padded = STANDARD.encode("user:tok1x");
        let unpadded = STANDARD_NO_PAD.encode("user:tok1x");
        assert!(padded.ends_with('='));
        assert!(!unpadded.ends_with('='));
        for enc in [padded, unpadded] {
            let v = format!("Basic {enc}");
            assert_eq!(secret(&v, Schemes::BearerOrBasic).unwrap(), "tok1x");
            let v = format!("basic {enc}");
            assert_eq!(secret(&v, Schemes::BearerOrBasic).unwrap(), "tok1x");
        }
        // The password may itself contain ':'.
        let v = format!("Basic {}", STANDARD_NO_PAD.encode(":a:b"));
        assert_eq!(secret(&v, Schemes::BearerOrBasic).unwrap(), "a:b");
    }

    #[test]
    fn basic_refused_outside_handshake_and_when_malformed() {
        let v = format!("Basic {}", STANDARD.encode("user:tok1"));
        assert_eq!(
            secret(&v, Schemes::Bearer).unwrap_err(),
            AuthFailureKind::Malformed
        );
        assert!(secret("Basic !!!", Schemes::BearerOrBasic).is_err());
        let no_colon = format!("Basic {}", STANDARD.encode("usertok"));
        assert!(secret(&no_colon, Schemes::BearerOrBasic).is_err());
        let empty_pw = format!("Basic {}", STANDARD.encode("user:"));
        assert!(secret(&empty_pw, Schemes::BearerOrBasic).is_err());
        assert!(extract_secret(&MetadataMap::new(), Schemes::Bearer).is_err());
    }

    #[test]
    fn secret_debug_is_redacted() {
        let s = extract_secret(&md("Bearer hunter2"), Schemes::Bearer).unwrap();
        assert!(!format!("{s:?}").contains("hunter2"));
    }
}
