//! S3 access settings, shared by warehouses on S3 (`[catalogs.<name>.s3]`)
//! and export destinations (`[exports.s3]`).

use std::fmt;

use serde::Deserialize;
use sluice_planner::Secret;

use crate::location::redact_url;

/// `[catalogs.<name>.s3]` / `[exports.s3]`: S3 access (a warehouse or an
/// export destination on S3 or an S3-compatible server). `Debug` shows
/// the endpoint without credentials and only the access key id's first
/// four characters.
#[derive(Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct S3Config {
    /// Endpoint URL (for S3-compatible servers).
    pub endpoint: Option<String>,
    /// Region.
    pub region: Option<String>,
    /// Access key id.
    pub access_key_id: Option<String>,
    /// Secret access key (never logged).
    pub secret_access_key: Option<Secret>,
    /// Path-style addressing (needed by most S3-compatible servers).
    pub path_style: bool,
}

impl fmt::Debug for S3Config {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let key_id = self
            .access_key_id
            .as_deref()
            .map(|k| format!("{}…", k.chars().take(4).collect::<String>()));
        f.debug_struct("S3Config")
            .field("endpoint", &self.endpoint.as_deref().map(redact_url))
            .field("region", &self.region)
            .field("access_key_id", &key_id)
            .field("secret_access_key", &self.secret_access_key)
            .field("path_style", &self.path_style)
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_hides_the_secret_the_endpoint_credentials_and_most_of_the_key_id() {
        let config = S3Config {
            endpoint: Some("http://u:endpoint-pw@minio:9000".into()),
            region: Some("us-east-1".into()),
            access_key_id: Some("AKIAEXAMPLEKEYID".into()),
            secret_access_key: Some(Secret::new("wJalrXUtnFEMI")),
            path_style: true,
        };
        let debug = format!("{config:?}");
        for hidden in ["endpoint-pw", "EXAMPLEKEYID", "wJalrXUtnFEMI"] {
            assert!(!debug.contains(hidden), "{debug}");
        }
        assert!(
            debug.contains("AKIA…") && debug.contains("minio:9000"),
            "{debug}"
        );
    }
}
