//! The object store of a destination: the local export root or one S3
//! bucket, how to reach S3, checks of a destination before writing, and
//! the S3 call `object_store` lacks (listing the multipart uploads open at
//! a key).

use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt as _;
use object_store::aws::{AmazonS3, AmazonS3Builder};
use object_store::local::LocalFileSystem;
use object_store::path::Path;
use object_store::{ClientOptions, ObjectStore, ObjectStoreExt as _, RetryConfig};

use super::destination::MANIFEST_NAME;
use super::error::{ExportError, storage};
use crate::s3::S3Config;

/// The object store of one destination.
#[derive(Debug, Clone)]
pub enum ExportStore {
    /// The local export root.
    Local(Arc<LocalFileSystem>, std::path::PathBuf),
    /// One S3 bucket, and how to list its multipart uploads.
    S3(Arc<AmazonS3>, Arc<S3Bucket>),
}

impl ExportStore {
    /// The local filesystem under `root` (created if missing).
    pub fn local(root: &std::path::Path) -> Result<Self, ExportError> {
        std::fs::create_dir_all(root)
            .map_err(|e| ExportError::Storage(format!("cannot create {}: {e}", root.display())))?;
        Ok(Self::Local(
            Arc::new(LocalFileSystem::new_with_prefix(root).map_err(storage)?),
            root.to_path_buf(),
        ))
    }

    /// Local destinations: no existing part of `prefix` below the root may
    /// be a symbolic link (which could lead outside the root) or a file.
    pub fn check_destination(&self, prefix: &Path) -> Result<(), ExportError> {
        let Self::Local(_, root) = self else {
            return Ok(());
        };
        let mut at = root.clone();
        for part in prefix.parts() {
            at.push(part.as_ref());
            match std::fs::symlink_metadata(&at) {
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
                Err(e) => {
                    return Err(ExportError::Destination(format!(
                        "cannot inspect the destination: {}",
                        e.kind()
                    )));
                }
                Ok(m) if m.file_type().is_symlink() => {
                    return Err(ExportError::Destination(
                        "the destination goes through a symbolic link".into(),
                    ));
                }
                Ok(m) if !m.is_dir() => {
                    return Err(ExportError::Destination(
                        "a part of the destination is a file".into(),
                    ));
                }
                Ok(_) => {}
            }
        }
        Ok(())
    }

    /// One S3 bucket.
    pub fn s3(bucket: &str, o: &S3Config, retry_timeout: Duration) -> Result<Self, ExportError> {
        let mut b = AmazonS3Builder::from_env()
            .with_bucket_name(bucket)
            .with_virtual_hosted_style_request(!o.path_style)
            .with_retry(RetryConfig {
                max_retries: 10,
                retry_timeout,
                ..RetryConfig::default()
            })
            .with_client_options(
                ClientOptions::new()
                    .with_connect_timeout(Duration::from_secs(5))
                    .with_timeout(Duration::from_secs(120)),
            );
        if let Some(e) = &o.endpoint {
            b = b.with_endpoint(e).with_allow_http(e.starts_with("http://"));
        }
        if let Some(r) = &o.region {
            b = b.with_region(r);
        }
        if let Some(k) = &o.access_key_id {
            b = b.with_access_key_id(k);
        }
        if let Some(s) = &o.secret_access_key {
            b = b.with_secret_access_key(s.expose());
        }
        let region = o
            .region
            .clone()
            .or_else(|| std::env::var("AWS_REGION").ok())
            .or_else(|| std::env::var("AWS_DEFAULT_REGION").ok())
            .unwrap_or_else(|| "us-east-1".into());
        let endpoint = o
            .endpoint
            .clone()
            .unwrap_or_else(|| format!("https://s3.{region}.amazonaws.com"));
        let base = match (o.path_style, endpoint.split_once("://")) {
            (false, Some((scheme, host))) => format!("{scheme}://{bucket}.{host}"),
            _ => format!("{}/{bucket}", endpoint.trim_end_matches('/')),
        };
        Ok(Self::S3(
            Arc::new(b.build().map_err(storage)?),
            Arc::new(S3Bucket {
                base: base.trim_end_matches('/').to_string(),
                region,
                http: reqwest::Client::builder()
                    .connect_timeout(Duration::from_secs(5))
                    .timeout(Duration::from_secs(30))
                    .build()
                    .map_err(|e| ExportError::Storage(e.to_string()))?,
            }),
        ))
    }

    pub(super) fn object_store(&self) -> &dyn ObjectStore {
        match self {
            Self::Local(s, _) => s.as_ref(),
            Self::S3(s, _) => s.as_ref(),
        }
    }
}

/// What ListMultipartUploads needs (object_store has no call for it).
#[derive(Debug)]
pub struct S3Bucket {
    /// `https://bucket.host` or `http://host/bucket`.
    base: String,
    region: String,
    http: reqwest::Client,
}

/// RFC 3986 encoding of a query value (what SigV4 signs).
fn query_encode(s: &str) -> String {
    let mut out = String::new();
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

fn xml_unescape(s: &str) -> String {
    s.replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&quot;", "\"")
        .replace("&apos;", "'")
        .replace("&amp;", "&")
}

fn xml_field<'a>(block: &'a str, tag: &str) -> Option<&'a str> {
    let open = format!("<{tag}>");
    let close = format!("</{tag}>");
    let start = block.find(&open)? + open.len();
    let end = block[start..].find(&close)? + start;
    Some(&block[start..end])
}

/// The ids of the multipart uploads open at exactly `key`.
pub(super) async fn open_uploads(
    s3: &AmazonS3,
    bucket: &S3Bucket,
    key: &str,
) -> Result<Vec<String>, ExportError> {
    let credential = s3.credentials().get_credential().await.map_err(storage)?;
    let url = format!("{}/?prefix={}&uploads=", bucket.base, query_encode(key));
    let mut request = http::Request::builder()
        .method(http::Method::GET)
        .uri(&url)
        .body(object_store::client::HttpRequestBody::empty())
        .map_err(|e| ExportError::Storage(e.to_string()))?;
    object_store::aws::AwsAuthorizer::new(&credential, "s3", &bucket.region)
        .authorize(&mut request, None);
    let response = bucket
        .http
        .get(&url)
        .headers(request.headers().clone())
        .send()
        .await
        .map_err(|e| ExportError::Storage(format!("listing multipart uploads: {e}")))?;
    let status = response.status();
    let body = response
        .text()
        .await
        .map_err(|e| ExportError::Storage(format!("listing multipart uploads: {e}")))?;
    if !status.is_success() {
        return Err(ExportError::Storage(format!(
            "listing multipart uploads: HTTP {status}"
        )));
    }
    Ok(body
        .split("<Upload>")
        .skip(1)
        .filter_map(|block| {
            let k = xml_unescape(xml_field(block, "Key")?);
            let id = xml_unescape(xml_field(block, "UploadId")?);
            (k == key).then_some(id)
        })
        .collect())
}

/// Whether nothing is stored under `prefix`.
pub async fn is_empty(store: &ExportStore, prefix: &Path) -> Result<bool, ExportError> {
    let mut list = store.object_store().list(Some(prefix));
    match list.next().await {
        None => Ok(true),
        Some(Ok(_)) => Ok(false),
        Some(Err(e)) => Err(storage(e)),
    }
}

/// Whether `prefix` lies inside an earlier export (a `_manifest.json` in
/// one of the directories above it), where readers of that export would
/// pick up its files.
pub async fn inside_export(store: &ExportStore, prefix: &Path) -> Result<bool, ExportError> {
    let parts: Vec<_> = prefix.parts().collect();
    for n in 0..parts.len() {
        let manifest = Path::from_iter(parts[..n].iter().cloned()).join(MANIFEST_NAME);
        match store.object_store().head(&manifest).await {
            Ok(_) => return Ok(true),
            Err(object_store::Error::NotFound { .. }) => {}
            Err(e) => return Err(storage(e)),
        }
    }
    Ok(false)
}
