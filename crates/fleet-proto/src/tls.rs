//! The TLS client of `mqtts://`: rustls on the ring provider, the project's one
//! TLS stack (no aws-lc, nothing C to cross-compile beyond ring).

use std::path::{Path, PathBuf};
use std::sync::Arc;

use rustls::pki_types::PrivateKeyDer;
use rustls::pki_types::pem::PemObject;

/// Why the broker's TLS client cannot be set up.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    /// A PEM file of certificates that cannot be read or holds none.
    #[error(transparent)]
    Certificates(#[from] vwed_tls::TlsError),
    #[error("{path}: {source}")]
    Key {
        path: PathBuf,
        #[source]
        source: rustls::pki_types::pem::Error,
    },
    /// rustls refused a CA certificate, or the client certificate and its key.
    #[error("{path}: {source}")]
    Refused {
        path: PathBuf,
        #[source]
        source: rustls::Error,
    },
    #[error("mqtts://: no system root certificates found; set fleet.ca_file")]
    NoSystemRoots,
    #[error("TLS: {0}")]
    Protocol(#[source] rustls::Error),
    #[error("client_cert_file and client_key_file go together")]
    HalfClientAuth,
}

/// Roots from `ca_file`, or the system's; a client certificate when both
/// `cert_file` and `key_file` are given.
pub fn client_config(
    ca_file: Option<&Path>,
    cert_file: Option<&Path>,
    key_file: Option<&Path>,
) -> Result<Arc<rustls::ClientConfig>, TlsError> {
    let refused = |path: &Path| {
        let path = path.to_path_buf();
        move |source| TlsError::Refused { path, source }
    };
    let mut roots = rustls::RootCertStore::empty();
    match ca_file {
        Some(path) => {
            for c in vwed_tls::certificates(path)? {
                roots.add(c).map_err(refused(path))?;
            }
        }
        None => {
            roots = vwed_tls::system_roots();
            if roots.is_empty() {
                return Err(TlsError::NoSystemRoots);
            }
        }
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(TlsError::Protocol)?
        .with_root_certificates(roots);
    let cfg = match (cert_file, key_file) {
        (Some(cert), Some(key)) => {
            let chain = vwed_tls::certificates(cert)?;
            let key_der = PrivateKeyDer::from_pem_file(key).map_err(|source| TlsError::Key {
                path: key.to_path_buf(),
                source,
            })?;
            builder
                .with_client_auth_cert(chain, key_der)
                .map_err(refused(key))?
        }
        (None, None) => builder.with_no_client_auth(),
        _ => return Err(TlsError::HalfClientAuth),
    };
    Ok(Arc::new(cfg))
}
