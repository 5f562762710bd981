//! `sluice certs create`: a certificate authority, a server certificate and
//! client certificates for TLS / mTLS between gateways, generated in-process
//! (rcgen). For tests, demos and small deployments; production setups may
//! bring certificates from their own PKI instead.

use std::path::Path;

use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa,
    Issuer, KeyPair, KeyUsagePurpose,
};

use crate::error::{Error, Result};

/// Subject of the CA sluice creates (kept the same when the CA is reused,
/// so certificates issued later chain to the same CA certificate).
const CA_COMMON_NAME: &str = "sluice federation CA";

fn fail(what: &str, e: impl std::fmt::Display) -> Error {
    Error::Refused(format!("{what}: {e}"))
}

fn ca_params() -> Result<CertificateParams> {
    let mut params = CertificateParams::new(Vec::<String>::new()).map_err(|e| fail("CA", e))?;
    let mut dn = DistinguishedName::new();
    dn.push(DnType::CommonName, CA_COMMON_NAME);
    params.distinguished_name = dn;
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    Ok(params)
}

fn write(dir: &Path, name: &str, text: &str, private: bool) -> Result<()> {
    use std::io::Write as _;
    let path = dir.join(name);
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    if private {
        use std::os::unix::fs::OpenOptionsExt as _;
        options.mode(0o600);
    }
    #[cfg(not(unix))]
    let _ = private;
    options
        .open(&path)
        .and_then(|mut f| f.write_all(text.as_bytes()))
        .map_err(|e| fail(&path.display().to_string(), e))
}

/// What [`create`] wrote.
#[derive(Debug)]
pub struct Created {
    /// Files written, relative to the directory.
    pub files: Vec<String>,
    /// Whether an existing CA was reused.
    pub reused_ca: bool,
}

/// Writes `ca.pem`/`ca.key` (unless both exist: then they are reused),
/// `server.pem`/`server.key` for `hosts` (DNS names or IP addresses) unless
/// `hosts` is empty, and `<client>.pem`/`<client>.key` per client name.
pub fn create(dir: &Path, hosts: &[String], clients: &[String]) -> Result<Created> {
    std::fs::create_dir_all(dir).map_err(|e| fail(&dir.display().to_string(), e))?;
    let mut files = Vec::new();
    let ca_pem_path = dir.join("ca.pem");
    let (ca_key, reused_ca) = match (
        std::fs::read_to_string(dir.join("ca.key")),
        dir.join("ca.pem").is_file(),
    ) {
        (Ok(pem), true) => (
            KeyPair::from_pem(&pem).map_err(|e| fail("ca.key", e))?,
            true,
        ),
        _ => {
            let key = KeyPair::generate().map_err(|e| fail("CA key", e))?;
            let cert = ca_params()?.self_signed(&key).map_err(|e| fail("CA", e))?;
            write(dir, "ca.pem", &cert.pem(), false)?;
            write(dir, "ca.key", &key.serialize_pem(), true)?;
            files.extend(["ca.pem".to_string(), "ca.key".to_string()]);
            (key, false)
        }
    };
    let issuer = Issuer::new(ca_params()?, ca_key);
    if !hosts.is_empty() {
        let mut params =
            CertificateParams::new(hosts.to_vec()).map_err(|e| fail("server hosts", e))?;
        params
            .distinguished_name
            .push(DnType::CommonName, hosts[0].clone());
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        let key = KeyPair::generate().map_err(|e| fail("server key", e))?;
        let cert = params
            .signed_by(&key, &issuer)
            .map_err(|e| fail("server certificate", e))?;
        // The full chain (leaf, then CA): clients get the CA from it, and a
        // share profile's CA defaults to its last certificate.
        let ca_pem = std::fs::read_to_string(&ca_pem_path)
            .map_err(|e| fail(&ca_pem_path.display().to_string(), e))?;
        write(dir, "server.pem", &format!("{}{ca_pem}", cert.pem()), false)?;
        write(dir, "server.key", &key.serialize_pem(), true)?;
        files.extend(["server.pem".to_string(), "server.key".to_string()]);
    }
    for name in clients {
        if name.is_empty()
            || !name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
        {
            return Err(Error::Refused(format!(
                "client name '{name}' must be ASCII letters, digits, '-' or '_'"
            )));
        }
        let mut params = CertificateParams::new(Vec::<String>::new())
            .map_err(|e| fail("client certificate", e))?;
        params
            .distinguished_name
            .push(DnType::CommonName, name.clone());
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        let key = KeyPair::generate().map_err(|e| fail("client key", e))?;
        let cert = params
            .signed_by(&key, &issuer)
            .map_err(|e| fail("client certificate", e))?;
        write(dir, &format!("{name}.pem"), &cert.pem(), false)?;
        write(dir, &format!("{name}.key"), &key.serialize_pem(), true)?;
        files.extend([format!("{name}.pem"), format!("{name}.key")]);
    }
    Ok(Created { files, reused_ca })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn writes_a_ca_and_reuses_it() {
        let dir = tempfile::tempdir().unwrap();
        let first = create(
            dir.path(),
            &["127.0.0.1".into(), "localhost".into()],
            &["r".into()],
        )
        .unwrap();
        assert!(!first.reused_ca);
        for f in [
            "ca.pem",
            "ca.key",
            "server.pem",
            "server.key",
            "r.pem",
            "r.key",
        ] {
            assert!(dir.path().join(f).is_file(), "{f}");
        }
        let ca = std::fs::read_to_string(dir.path().join("ca.pem")).unwrap();
        let chain = std::fs::read_to_string(dir.path().join("server.pem")).unwrap();
        assert!(chain.ends_with(&ca), "server.pem is the chain, CA last");
        let second = create(dir.path(), &[], &["s".into()]).unwrap();
        assert!(second.reused_ca);
        assert_eq!(
            std::fs::read_to_string(dir.path().join("ca.pem")).unwrap(),
            ca
        );
        assert!(create(dir.path(), &[], &["../x".into()]).is_err());
    }
}
