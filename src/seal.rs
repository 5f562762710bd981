//! Sealing secrets at rest (AES-256-GCM): the share tokens and client keys
//! of federation peers. A sealed value is `nonce (12 bytes) || ciphertext`;
//! the associated data binds it to its row and purpose, so a sealed value
//! copied into another row or column does not open.

use std::fmt;
use std::path::Path;

use aes_gcm::aead::{Aead, KeyInit, Payload};
use aes_gcm::{Aes256Gcm, Nonce};
use base64::Engine as _;
use rand::TryRngCore as _;

use crate::error::{Error, Result};

const NONCE_LEN: usize = 12;
const KEY_LEN: usize = 32;

/// The sealing key. `Debug` never shows it.
#[derive(Clone)]
pub struct SealKey(Aes256Gcm);

impl fmt::Debug for SealKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SealKey(<redacted>)")
    }
}

impl SealKey {
    /// A key from 32 bytes.
    pub fn from_bytes(bytes: &[u8]) -> Result<Self> {
        if bytes.len() != KEY_LEN {
            return Err(Error::Refused(format!(
                "federation.seal_key must be {KEY_LEN} bytes (base64), not {}",
                bytes.len()
            )));
        }
        Aes256Gcm::new_from_slice(bytes)
            .map(Self)
            .map_err(|_| Error::Refused("federation.seal_key is not a valid key".into()))
    }

    /// A key from its base64 text (standard or URL-safe alphabet).
    pub fn from_base64(text: &str) -> Result<Self> {
        let text = text.trim();
        let bytes = base64::engine::general_purpose::STANDARD
            .decode(text)
            .or_else(|_| base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(text))
            .map_err(|_| Error::Refused("federation.seal_key is not base64".into()))?;
        Self::from_bytes(&bytes)
    }

    /// The configured key, else the one in `<data_dir>/seal.key`, created
    /// (mode 0600) when missing.
    pub fn load(configured: Option<&str>, data_dir: &Path) -> Result<Self> {
        if let Some(k) = configured {
            return Self::from_base64(k);
        }
        let path = data_dir.join("seal.key");
        match std::fs::read_to_string(&path) {
            Ok(text) => Self::from_base64(&text),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                let mut bytes = [0u8; KEY_LEN];
                rand::rngs::OsRng
                    .try_fill_bytes(&mut bytes)
                    .expect("the operating system's random number generator failed");
                let text = base64::engine::general_purpose::STANDARD.encode(bytes);
                write_private(&path, text.as_bytes())
                    .map_err(|e| Error::Refused(format!("cannot write {}: {e}", path.display())))?;
                tracing::info!(path = %path.display(), "generated the federation seal key");
                Self::from_bytes(&bytes)
            }
            Err(e) => Err(Error::Refused(format!(
                "cannot read {}: {e}",
                path.display()
            ))),
        }
    }

    /// Seals `plaintext` for `(row, purpose)`.
    pub fn seal(&self, plaintext: &[u8], row: &str, purpose: &str) -> Vec<u8> {
        let mut nonce = [0u8; NONCE_LEN];
        rand::rngs::OsRng
            .try_fill_bytes(&mut nonce)
            .expect("the operating system's random number generator failed");
        let aad = format!("sluice/{purpose}/{row}");
        let sealed = self
            .0
            .encrypt(
                Nonce::from_slice(&nonce),
                Payload {
                    msg: plaintext,
                    aad: aad.as_bytes(),
                },
            )
            .expect("AES-GCM encryption of a short value cannot fail");
        let mut out = nonce.to_vec();
        out.extend(sealed);
        out
    }

    /// Opens what [`SealKey::seal`] sealed for `(row, purpose)`.
    pub fn open(&self, sealed: &[u8], row: &str, purpose: &str) -> Result<Vec<u8>> {
        let fail = || {
            Error::Refused(format!(
                "a sealed {purpose} ({}) does not open: federation.seal_key differs from the key it was sealed with, or the row was altered",
                row.split('#').next().unwrap_or_default()
            ))
        };
        if sealed.len() < NONCE_LEN {
            return Err(fail());
        }
        let (nonce, ciphertext) = sealed.split_at(NONCE_LEN);
        let aad = format!("sluice/{purpose}/{row}");
        self.0
            .decrypt(
                Nonce::from_slice(nonce),
                Payload {
                    msg: ciphertext,
                    aad: aad.as_bytes(),
                },
            )
            .map_err(|_| fail())
    }
}

fn write_private(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    use std::io::Write as _;
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)?;
    }
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt as _;
        options.mode(0o600);
    }
    let mut file = options.open(path)?;
    file.write_all(bytes)?;
    file.sync_all()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seals_and_opens_bound_to_row_and_purpose() {
        let key = SealKey::from_bytes(&[7u8; 32]).unwrap();
        let sealed = key.seal(b"slc_secret", "p1", "token");
        assert!(!sealed.windows(10).any(|w| w == b"slc_secret"));
        assert_eq!(key.open(&sealed, "p1", "token").unwrap(), b"slc_secret");
        assert!(key.open(&sealed, "p2", "token").is_err());
        assert!(key.open(&sealed, "p1", "client_key").is_err());
        let other = SealKey::from_bytes(&[8u8; 32]).unwrap();
        assert!(other.open(&sealed, "p1", "token").is_err());
        assert_ne!(key.seal(b"x", "p1", "token"), key.seal(b"x", "p1", "token"));
    }

    #[test]
    fn key_file_is_created_once_and_private() {
        let dir = tempfile::tempdir().unwrap();
        let a = SealKey::load(None, dir.path()).unwrap();
        let sealed = a.seal(b"v", "r", "token");
        let b = SealKey::load(None, dir.path()).unwrap();
        assert_eq!(b.open(&sealed, "r", "token").unwrap(), b"v");
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt as _;
            let mode = std::fs::metadata(dir.path().join("seal.key"))
                .unwrap()
                .permissions()
                .mode();
            assert_eq!(mode & 0o777, 0o600);
        }
        assert!(SealKey::from_base64("c2hvcnQ=").is_err());
    }
}
