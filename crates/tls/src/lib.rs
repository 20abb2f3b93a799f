//! TLS with rustls and the ring provider: the API's `ServerConfig` (from
//! `tls_cert`/`tls_key`, or a self-signed certificate made on first start), and
//! the roots outgoing connections (`VWED.http`, SMTP STARTTLS) trust besides
//! the system's: `tls_ca_file`.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};

use serde::{Deserialize, Serialize};
use vwed_base::fsio::{Dir, FsError};

mod cert;

/// Where the self-signed certificate lives, below the data dir.
pub const SELF_SIGNED_DIR: &str = "tls";

#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("cannot read {0}: {1}")]
    Read(String, String),
    #[error("{0} holds no PEM certificate")]
    NoCertificate(String),
    #[error("set both tls_cert and tls_key, or neither (for a self-signed certificate)")]
    HalfConfigured,
    #[error("cannot make a self-signed certificate: {0}")]
    Generate(String),
    #[error("cannot write {0}: {1}")]
    Write(String, std::io::Error),
    #[error("TLS configuration refused: {0}")]
    Rustls(#[from] rustls::Error),
}

/// What the server loop needs to serve HTTPS.
pub struct ServerTls {
    pub config: Arc<rustls::ServerConfig>,
    /// SHA-256 of the leaf certificate, `AB:CD:...`, for pinning and for the log.
    pub fingerprint: String,
    pub cert_path: PathBuf,
    pub self_signed: bool,
}

/// Is HTTPS asked for?
pub fn enabled(cfg: &TlsSettings) -> bool {
    cfg.tls || !cfg.tls_cert.is_empty() || !cfg.tls_key.is_empty()
}

fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// The server TLS configuration, or None when HTTPS is off. `names` are the
/// host names a self-signed certificate is made for (besides localhost and
/// the loopback addresses); it is kept below `data_dir`.
pub fn server(
    cfg: &TlsSettings,
    data_dir: &Path,
    names: &[String],
) -> Result<Option<ServerTls>, TlsError> {
    if !enabled(cfg) {
        return Ok(None);
    }
    let (cert_path, key_path, self_signed) = match (cfg.tls_cert.is_empty(), cfg.tls_key.is_empty())
    {
        (false, false) => (
            PathBuf::from(&cfg.tls_cert),
            PathBuf::from(&cfg.tls_key),
            false,
        ),
        (true, true) => {
            let dir = data_dir.join(SELF_SIGNED_DIR);
            let (c, k) = (dir.join("cert.pem"), dir.join("key.pem"));
            if !c.exists() || !k.exists() {
                make_self_signed(data_dir, &self_signed_names(names))?;
            }
            (c, k, true)
        }
        _ => return Err(TlsError::HalfConfigured),
    };
    let chain = certificates(&cert_path)?;
    let key = PrivateKeyDer::from_pem_file(&key_path)
        .map_err(|e| TlsError::Read(key_path.display().to_string(), e.to_string()))?;
    let fingerprint = fingerprint(&chain[0]);
    let config = rustls::ServerConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()?
        .with_no_client_auth()
        .with_single_cert(chain, key)?;
    Ok(Some(ServerTls {
        config: Arc::new(config),
        fingerprint,
        cert_path,
        self_signed,
    }))
}

fn self_signed_names(names: &[String]) -> Vec<String> {
    let mut all = vec!["localhost".to_string(), "127.0.0.1".into(), "::1".into()];
    for n in names {
        if !all.contains(n) {
            all.push(n.clone());
        }
    }
    all
}

/// `cert.pem` and `key.pem` in `<data-dir>/tls/`, made if need be.
fn make_self_signed(data_dir: &Path, names: &[String]) -> Result<(), TlsError> {
    let (cert_pem, key_pem) = cert::self_signed(names, "VWED Edge (self-signed)")
        .map_err(|e| TlsError::Generate(e.to_string()))?;
    let shown = data_dir.join(SELF_SIGNED_DIR);
    let failed =
        |e: FsError| TlsError::Write(shown.display().to_string(), std::io::Error::other(e));
    let dir = Dir::open(data_dir)
        .map_err(|e| TlsError::Write(data_dir.display().to_string(), e))?
        .child(SELF_SIGNED_DIR, true)
        .map_err(failed)?;
    dir.write_atomic_mode("key.pem", key_pem.as_bytes(), 0o600)
        .map_err(failed)?;
    dir.write_atomic_mode("cert.pem", cert_pem.as_bytes(), 0o644)
        .map_err(failed)
}

pub fn certificates(path: &Path) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let shown = || path.display().to_string();
    let certs = CertificateDer::pem_file_iter(path)
        .map_err(|e| TlsError::Read(shown(), e.to_string()))?
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| TlsError::Read(shown(), e.to_string()))?;
    if certs.is_empty() {
        return Err(TlsError::NoCertificate(shown()));
    }
    Ok(certs)
}

pub fn fingerprint(cert: &CertificateDer<'_>) -> String {
    let d = ring::digest::digest(&ring::digest::SHA256, cert.as_ref());
    d.as_ref()
        .iter()
        .map(|b| format!("{b:02X}"))
        .collect::<Vec<_>>()
        .join(":")
}

/// The extra roots of `tls_ca_file` (empty when unset).
pub fn extra_roots(cfg: &TlsSettings) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    if cfg.tls_ca_file.trim().is_empty() {
        return Ok(Vec::new());
    }
    certificates(Path::new(cfg.tls_ca_file.trim()))
}

/// The system's root certificates (empty when none are found). A system bundle
/// may hold a certificate rustls cannot parse; the others still count.
pub fn system_roots() -> rustls::RootCertStore {
    let mut roots = rustls::RootCertStore::empty();
    roots.add_parsable_certificates(rustls_native_certs::load_native_certs().certs);
    roots
}

/// The client configuration of outgoing HTTPS (`VWED.http`, the task server):
/// system roots plus `tls_ca_file`, HTTP/1.1 offered by ALPN (the client speaks
/// nothing else).
pub fn http_client_config(cfg: &TlsSettings) -> Result<rustls::ClientConfig, TlsError> {
    let mut roots = system_roots();
    for der in extra_roots(cfg)? {
        roots
            .add(der)
            .map_err(|e| TlsError::Read(cfg.tls_ca_file.clone(), e.to_string()))?;
    }
    let mut c = rustls::ClientConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()?
        .with_root_certificates(roots)
        .with_no_client_auth();
    c.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(c)
}

/// The TLS settings, top-level keys of the runtime's configuration.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct TlsSettings {
    /// Serve the API over HTTPS. With `tls_cert`/`tls_key` empty, a self-signed
    /// certificate is made on first start (`<data-dir>/tls/`) and its SHA-256
    /// fingerprint logged.
    pub tls: bool,
    /// PEM certificate chain and private key for HTTPS; setting them turns `tls` on.
    pub tls_cert: String,
    pub tls_key: String,
    /// Extra PEM root certificates trusted by `VWED.http` and SMTP STARTTLS,
    /// besides the system's (`/etc/ssl/certs`).
    pub tls_ca_file: String,
}

#[cfg(test)]
mod tests;
