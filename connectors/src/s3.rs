//! S3 access settings, shared by warehouses on S3 (`[catalogs.<name>.s3]`)
//! and export destinations (`[exports.s3]`).

use serde::Deserialize;
use sluice_planner::Secret;

/// `[catalogs.<name>.s3]` / `[exports.s3]`: S3 access (a warehouse or an
/// export destination on S3 or an S3-compatible server).
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
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
