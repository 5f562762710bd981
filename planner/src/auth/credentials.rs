//! The one ingress of credentials: every frontend (Flight SQL, Trino HTTP,
//! the admin API) reads the `Authorization` value with
//! [`secret_from_authorization`] and authenticates with [`authenticate`],
//! so the schemes accepted, the handling of missing or malformed
//! credentials and what is noted about the caller are the same
//! everywhere.

use std::net::IpAddr;
use std::sync::Arc;

use base64::Engine;
use base64::alphabet;
use base64::engine::{DecodePaddingMode, GeneralPurpose, GeneralPurposeConfig};

use super::{AuthFailure, AuthFailureKind, Authenticator};
use crate::policy::{TokenScope, TokenType};
use crate::secret::Secret;

/// Standard base64 that accepts input with or without `=` padding (Go's
/// ADBC driver sends none).
const BASE64_ANY_PADDING: GeneralPurpose = GeneralPurpose::new(
    &alphabet::STANDARD,
    GeneralPurposeConfig::new().with_decode_padding_mode(DecodePaddingMode::Indifferent),
);

/// The authorization schemes a request may use.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Schemes {
    /// `Bearer <secret>` only.
    Bearer,
    /// `Bearer <secret>` or `Basic base64(user:secret)`, where the password
    /// is the secret and the user is ignored (Flight's handshake, Trino).
    BearerOrBasic,
}

/// Whether a request starts new work or continues work already charged.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Charge {
    /// A new request: counted against the token's rate limit.
    Request,
    /// Paging or cancelling work already counted (see
    /// [`Authenticator::authenticate_continuation`]).
    Continuation,
}

/// The one `Authorization` value of a request, from all the values it
/// sent under that name: none when there is no such header, more than one
/// (which one a proxy or the gateway would read is not defined: the
/// request is ambiguous, and refused like a malformed one) or a value that
/// is not visible ASCII.
pub fn single_authorization<'a>(mut values: impl Iterator<Item = &'a [u8]>) -> Option<&'a str> {
    let first = values.next()?;
    if values.next().is_some() {
        return None;
    }
    std::str::from_utf8(first).ok().filter(|v| v.is_ascii())
}

/// The token secret in an `Authorization` header value: `Bearer
/// <secret>`, or — when `schemes` allows it — `Basic base64(user:secret)`.
/// Scheme names are case-insensitive and surrounding spaces ignored; a
/// missing value, another scheme or an empty secret is
/// [`AuthFailureKind::Malformed`].
pub fn secret_from_authorization(
    value: Option<&str>,
    schemes: Schemes,
) -> Result<Secret, AuthFailureKind> {
    let malformed = AuthFailureKind::Malformed;
    let (scheme, rest) = value
        .ok_or(malformed)?
        .trim()
        .split_once(' ')
        .ok_or(malformed)?;
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
    Ok(Secret::new(secret))
}

/// Authenticates a request from its `Authorization` value and client
/// address. Missing or malformed credentials go through the authenticator
/// as an empty secret, so every failure is counted (and rate limited)
/// alike and answered the same way. `admit` is the frontend's own check of
/// the token on this connection (Flight: a share token needs a client
/// certificate); its refusal is an authentication failure like any other.
/// Once admitted, the token, and for a share token the partner's name, are
/// noted in the request's audit facts and span.
pub async fn authenticate(
    authenticator: &dyn Authenticator,
    authorization: Option<&str>,
    schemes: Schemes,
    client: Option<IpAddr>,
    charge: Charge,
    admit: impl FnOnce(&TokenScope) -> Result<(), AuthFailureKind>,
) -> Result<(Secret, Arc<TokenScope>), AuthFailure> {
    let extracted = secret_from_authorization(authorization, schemes);
    let presented = extracted.as_ref().map(Secret::expose).unwrap_or_default();
    let scope = match charge {
        Charge::Request => authenticator.authenticate(presented, client).await?,
        Charge::Continuation => {
            authenticator
                .authenticate_continuation(presented, client)
                .await?
        }
    };
    let secret = extracted.map_err(AuthFailure::new)?;
    admit(&scope).map_err(AuthFailure::new)?;
    tracing::Span::current().record("token_id", scope.token_id.as_str());
    crate::audit::note(|a| {
        a.token_id = Some(scope.token_id.clone());
        if scope.token_type == TokenType::Share {
            a.peer = Some(scope.name.clone());
        }
    });
    Ok((secret, scope))
}

#[cfg(test)]
mod tests {
    use base64::engine::general_purpose::{STANDARD, STANDARD_NO_PAD};

    use super::*;

    #[test]
    fn two_authorization_headers_are_no_credential() {
        let one: [&[u8]; 1] = [b"Bearer a"];
        assert_eq!(single_authorization(one.into_iter()), Some("Bearer a"));
        let two: [&[u8]; 2] = [b"Bearer a", b"Bearer b"];
        assert_eq!(single_authorization(two.into_iter()), None);
        let none: [&[u8]; 0] = [];
        assert_eq!(single_authorization(none.into_iter()), None);
        let bytes: [&[u8]; 1] = [b"Bearer \xff"];
        assert_eq!(single_authorization(bytes.into_iter()), None);
    }

    fn secret(value: &str, schemes: Schemes) -> Result<String, AuthFailureKind> {
        secret_from_authorization(Some(value), schemes).map(|s| s.expose().to_owned())
    }

    #[test]
    fn bearer_is_read_with_any_case_and_spacing() {
        assert_eq!(secret("Bearer abc", Schemes::Bearer).unwrap(), "abc");
        assert_eq!(secret("bearer  abc ", Schemes::Bearer).unwrap(), "abc");
        assert_eq!(secret("Bearer abc", Schemes::BearerOrBasic).unwrap(), "abc");
        assert_eq!(
            secret("Bearer ", Schemes::Bearer),
            Err(AuthFailureKind::Malformed)
        );
        assert_eq!(
            secret("Bearer", Schemes::Bearer),
            Err(AuthFailureKind::Malformed)
        );
        assert_eq!(
            secret("Token abc", Schemes::Bearer),
            Err(AuthFailureKind::Malformed)
        );
    }

    #[test]
    fn basic_is_read_with_and_without_padding() {
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
    fn basic_is_refused_where_not_allowed_and_when_malformed() {
        let v = format!("Basic {}", STANDARD.encode("user:tok1"));
        assert_eq!(secret(&v, Schemes::Bearer), Err(AuthFailureKind::Malformed));
        assert_eq!(
            secret("Basic !!!", Schemes::BearerOrBasic),
            Err(AuthFailureKind::Malformed)
        );
        let no_colon = format!("Basic {}", STANDARD.encode("usertok"));
        assert_eq!(
            secret(&no_colon, Schemes::BearerOrBasic),
            Err(AuthFailureKind::Malformed)
        );
        let empty_pw = format!("Basic {}", STANDARD.encode("user:"));
        assert_eq!(
            secret(&empty_pw, Schemes::BearerOrBasic),
            Err(AuthFailureKind::Malformed)
        );
        assert_eq!(
            secret_from_authorization(None, Schemes::Bearer).map(|s| s.expose().to_owned()),
            Err(AuthFailureKind::Malformed)
        );
    }

    #[test]
    fn the_secret_read_is_redacted_in_debug() {
        let s = secret_from_authorization(Some("Bearer hunter2"), Schemes::Bearer).unwrap();
        assert!(!format!("{s:?}").contains("hunter2"));
    }
}
