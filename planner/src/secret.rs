//! [`Secret`]: a token secret, password or key whose `Debug` never shows
//! it. Every frontend, the configuration and the connectors hold secrets
//! in this one type, so none can reach a log line by a `{:?}`.

use std::fmt;

use serde::Deserialize;

/// A secret string. `Debug` prints `"[redacted]"`; [`Secret::expose`]
/// hands the value to the one component that needs it.
#[derive(Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(transparent)]
pub struct Secret(String);

impl Secret {
    /// Wraps a secret.
    pub fn new(s: impl Into<String>) -> Self {
        Self(s.into())
    }

    /// The secret itself.
    pub fn expose(&self) -> &str {
        &self.0
    }

    /// Whether it is empty.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("\"[redacted]\"")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_never_shows_the_secret() {
        let s = Secret::new("hunter2");
        assert_eq!(format!("{s:?}"), "\"[redacted]\"");
        assert_eq!(s.expose(), "hunter2");
        let parsed: Secret = serde_json::from_str("\"abc\"").unwrap();
        assert_eq!(parsed, Secret::new("abc"));
    }
}
