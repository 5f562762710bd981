//! Where an export may go: destination URLs (`file:///…`, `s3://…`),
//! parsed so that none can leave its prefix, the names sluice reserves in
//! a destination, and the Parquet compressions an export may ask for.

use std::fmt;
use std::str::FromStr;

use object_store::path::Path;
use parquet::basic::{GzipLevel, ZstdLevel};

/// Directory under the local export root holding unfinished files.
pub const STAGING_DIR: &str = ".sluice-staging";
/// Name of the manifest, written last.
pub const MANIFEST_NAME: &str = "_manifest.json";

/// Parquet compression of an export.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ExportCompression {
    /// Zstandard (level 1), the default.
    #[default]
    Zstd,
    /// Snappy.
    Snappy,
    /// Gzip (level 6).
    Gzip,
    /// LZ4 (raw).
    Lz4,
    /// Uncompressed.
    None,
}

impl ExportCompression {
    /// The name used in requests and manifests.
    pub fn as_str(&self) -> &'static str {
        match self {
            Self::Zstd => "zstd",
            Self::Snappy => "snappy",
            Self::Gzip => "gzip",
            Self::Lz4 => "lz4",
            Self::None => "none",
        }
    }

    pub(super) fn parquet(&self) -> parquet::basic::Compression {
        use parquet::basic::Compression as C;
        match self {
            Self::Zstd => C::ZSTD(ZstdLevel::default()),
            Self::Snappy => C::SNAPPY,
            Self::Gzip => C::GZIP(GzipLevel::default()),
            Self::Lz4 => C::LZ4_RAW,
            Self::None => C::UNCOMPRESSED,
        }
    }
}

impl FromStr for ExportCompression {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        Ok(match s.to_ascii_lowercase().as_str() {
            "zstd" => Self::Zstd,
            "snappy" => Self::Snappy,
            "gzip" => Self::Gzip,
            "lz4" => Self::Lz4,
            "none" | "uncompressed" => Self::None,
            _ => {
                return Err(format!(
                    "unknown compression '{s}' (expected zstd, snappy, gzip, lz4 or none)"
                ));
            }
        })
    }
}

/// Which kind of object store a destination names.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Scheme {
    /// `file:///path`: a directory under the configured export root.
    File,
    /// `s3://bucket/prefix`.
    S3,
}

/// A parsed export destination (or a token's destination prefix):
/// `file:///a/b` or `s3://bucket/a/b`, normalised (no trailing slash).
///
/// Segments may contain ASCII letters, digits and `-_.=+@,:` only; `.`,
/// `..`, empty segments, escapes and every other character are refused, so
/// a destination can never leave its prefix.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct DestinationUrl {
    /// File or S3.
    pub scheme: Scheme,
    /// The bucket (S3 only).
    pub bucket: Option<String>,
    /// The path segments below the root or bucket.
    pub segments: Vec<String>,
}

impl DestinationUrl {
    /// Parses and normalises a destination.
    pub fn parse(text: &str) -> Result<Self, String> {
        let bad = |why: &str| format!("invalid destination '{}': {why}", text.escape_debug());
        let (scheme, rest) = if let Some(rest) = text.strip_prefix("file://") {
            let rest = rest
                .strip_prefix('/')
                .ok_or_else(|| bad("a file destination is written file:///path"))?;
            (Scheme::File, rest)
        } else if let Some(rest) = text.strip_prefix("s3://") {
            (Scheme::S3, rest)
        } else {
            return Err(bad("expected file:///path or s3://bucket/prefix"));
        };
        let rest = rest.strip_suffix('/').unwrap_or(rest);
        let mut parts = if rest.is_empty() {
            Vec::new()
        } else {
            rest.split('/').map(str::to_string).collect::<Vec<_>>()
        };
        let bucket = match scheme {
            Scheme::File => None,
            Scheme::S3 => {
                if parts.is_empty() {
                    return Err(bad("missing bucket"));
                }
                let b = parts.remove(0);
                let ok = (3..=63).contains(&b.len())
                    && b.bytes().all(|c| {
                        c.is_ascii_lowercase() || c.is_ascii_digit() || c == b'-' || c == b'.'
                    })
                    && !b.starts_with(['.', '-'])
                    && !b.contains("..");
                if !ok {
                    return Err(bad("not a valid bucket name"));
                }
                Some(b)
            }
        };
        for s in &parts {
            if s.is_empty() {
                return Err(bad("empty path segment"));
            }
            if s == "." || s == ".." {
                return Err(bad("'.' and '..' are not allowed"));
            }
            if !s.bytes().all(|c| {
                c.is_ascii_alphanumeric()
                    || matches!(c, b'-' | b'_' | b'.' | b'=' | b'+' | b'@' | b',' | b':')
            }) {
                return Err(bad(
                    "path segments may only contain ASCII letters, digits and -_.=+@,:",
                ));
            }
            // The object path must be spelled exactly like the destination.
            if object_store::path::PathPart::from(s.as_str()).as_ref() != s {
                return Err(bad(
                    "a path segment would be re-encoded by the object store",
                ));
            }
        }
        if scheme == Scheme::File && parts.first().is_some_and(|s| s == STAGING_DIR) {
            return Err(bad(&format!("'{STAGING_DIR}' is reserved")));
        }
        Ok(Self {
            scheme,
            bucket,
            segments: parts,
        })
    }

    /// Whether `self` is `prefix` or lies below it (segment by segment:
    /// `s3://b/acme` covers `s3://b/acme/q1`, not `s3://b/acme-evil`).
    pub fn is_within(&self, prefix: &DestinationUrl) -> bool {
        self.scheme == prefix.scheme
            && self.bucket == prefix.bucket
            && self.segments.len() >= prefix.segments.len()
            && self
                .segments
                .iter()
                .zip(&prefix.segments)
                .all(|(a, b)| a == b)
    }

    /// Whether `self` lies within one of a token's destination prefixes
    /// (prefixes that do not parse allow nothing).
    pub fn is_allowed_by(&self, prefixes: &[String]) -> bool {
        prefixes
            .iter()
            .filter_map(|p| DestinationUrl::parse(p).ok())
            .any(|p| self.is_within(&p))
    }

    /// The object path of the destination inside its store.
    pub fn path(&self) -> Path {
        Path::from_iter(self.segments.iter().map(String::as_str))
    }
}

impl fmt::Display for DestinationUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.scheme {
            Scheme::File => write!(f, "file:///{}", self.segments.join("/")),
            Scheme::S3 => {
                write!(f, "s3://{}", self.bucket.as_deref().unwrap_or_default())?;
                for s in &self.segments {
                    write!(f, "/{s}")?;
                }
                Ok(())
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn destinations_parse_and_normalise() {
        let d = DestinationUrl::parse("s3://my-bucket/acme/q1/").unwrap();
        assert_eq!(d.to_string(), "s3://my-bucket/acme/q1");
        assert_eq!(d.path().to_string(), "acme/q1");
        let f = DestinationUrl::parse("file:///acme/2026=11").unwrap();
        assert_eq!(f.to_string(), "file:///acme/2026=11");
        assert_eq!(
            DestinationUrl::parse("file:///").unwrap().to_string(),
            "file:///"
        );
        assert_eq!(
            DestinationUrl::parse("s3://bkt").unwrap().segments,
            Vec::<String>::new()
        );
    }

    #[test]
    fn destinations_refuse_escapes() {
        for bad in [
            "s3://b/acme/../other",
            "s3://bkt/acme/./x",
            "s3://bkt/acme//x",
            "s3://bkt/acme/%2e%2e/x",
            "s3://bkt/acme\\..\\x",
            "s3://bkt/a b",
            "s3://bkt/a\nb",
            "s3://bkt/a#b",
            "s3://bkt/a~b",
            "s3://bkt/a?b",
            "s3://B_ad/x",
            "s3://",
            "s3:///x",
            "file://acme",
            "file:///../etc",
            "file:///.sluice-staging/x",
            "file:////abs",
            "http://x/y",
            "/tmp/x",
            "",
        ] {
            assert!(DestinationUrl::parse(bad).is_err(), "{bad:?} was accepted");
        }
    }

    #[test]
    fn prefixes_match_whole_segments() {
        let p = |s| DestinationUrl::parse(s).unwrap();
        assert!(p("s3://bkt/acme/q1").is_within(&p("s3://bkt/acme")));
        assert!(p("s3://bkt/acme").is_within(&p("s3://bkt/acme/")));
        assert!(!p("s3://bkt/acme-evil/q1").is_within(&p("s3://bkt/acme")));
        assert!(!p("s3://bkt/ac").is_within(&p("s3://bkt/acme")));
        assert!(!p("s3://other/acme/q1").is_within(&p("s3://bkt/acme")));
        assert!(!p("file:///acme/q1").is_within(&p("s3://bkt/acme")));
        assert!(p("file:///acme/q1").is_within(&p("file:///")));
        assert!(p("s3://bkt/x").is_within(&p("s3://bkt")));
    }

    #[test]
    fn compression_names() {
        for c in ["zstd", "snappy", "gzip", "lz4", "none"] {
            assert_eq!(c.parse::<ExportCompression>().unwrap().as_str(), c);
        }
        assert!("brotli9".parse::<ExportCompression>().is_err());
    }
}
