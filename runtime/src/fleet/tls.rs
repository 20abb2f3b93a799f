//! The TLS client of `mqtts://`: rustls on the ring provider, the project's one
//! TLS stack (no aws-lc, nothing C to cross-compile beyond ring).

use std::path::Path;
use std::sync::Arc;

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};

use super::FleetError;

fn pem_error(path: &Path, e: impl std::fmt::Display) -> FleetError {
    FleetError::Settings(format!("{}: {e}", path.display()))
}

fn certificates(path: &Path) -> Result<Vec<CertificateDer<'static>>, FleetError> {
    let certs = CertificateDer::pem_file_iter(path)
        .map_err(|e| pem_error(path, e))?
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| pem_error(path, e))?;
    if certs.is_empty() {
        return Err(pem_error(path, "no certificate in the file"));
    }
    Ok(certs)
}

/// Roots from `ca_file`, or the system's; a client certificate when both
/// `cert_file` and `key_file` are given.
pub fn client_config(
    ca_file: Option<&Path>,
    cert_file: Option<&Path>,
    key_file: Option<&Path>,
) -> Result<Arc<rustls::ClientConfig>, FleetError> {
    let mut roots = rustls::RootCertStore::empty();
    match ca_file {
        Some(path) => {
            for c in certificates(path)? {
                roots.add(c).map_err(|e| pem_error(path, e))?;
            }
        }
        None => {
            roots = crate::tls::system_roots();
            if roots.is_empty() {
                return Err(FleetError::Settings(
                    "mqtts://: no system root certificates found; set fleet.ca_file".into(),
                ));
            }
        }
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| FleetError::Settings(format!("TLS: {e}")))?
        .with_root_certificates(roots);
    let cfg = match (cert_file, key_file) {
        (Some(cert), Some(key)) => {
            let chain = certificates(cert)?;
            let key_der = PrivateKeyDer::from_pem_file(key).map_err(|e| pem_error(key, e))?;
            builder
                .with_client_auth_cert(chain, key_der)
                .map_err(|e| pem_error(key, e))?
        }
        (None, None) => builder.with_no_client_auth(),
        _ => {
            return Err(FleetError::Settings(
                "client_cert_file and client_key_file go together".into(),
            ));
        }
    };
    Ok(Arc::new(cfg))
}
