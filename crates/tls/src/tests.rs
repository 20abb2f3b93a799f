//! The server configuration completes real handshakes, and outgoing HTTPS
//! trusts the configured extra roots.

use std::os::unix::fs::PermissionsExt;
use std::path::PathBuf;
use std::sync::Arc;

use rustls::pki_types::ServerName;

use super::*;

struct Dir(PathBuf);

impl Dir {
    fn new(tag: &str) -> Dir {
        let p = std::env::temp_dir().join(format!(
            "vwed-tls-{tag}-{}-{}",
            std::process::id(),
            vwed_base::clock::unix_ms()
        ));
        std::fs::create_dir_all(&p).expect("dir");
        Dir(p)
    }
}

impl Drop for Dir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn self_signed_cfg() -> TlsSettings {
    TlsSettings {
        tls: true,
        ..TlsSettings::default()
    }
}

/// A client that trusts exactly the certificate in `cert`.
fn client_for(cert: &Path) -> Arc<rustls::ClientConfig> {
    let mut roots = rustls::RootCertStore::empty();
    for c in certificates(cert).expect("cert") {
        roots.add(c).expect("root");
    }
    Arc::new(
        rustls::ClientConfig::builder_with_provider(provider())
            .with_safe_default_protocol_versions()
            .expect("versions")
            .with_root_certificates(roots)
            .with_no_client_auth(),
    )
}

/// Runs a full handshake in memory; returns whether both ends finished.
fn handshake(
    server: Arc<rustls::ServerConfig>,
    client: Arc<rustls::ClientConfig>,
    name: &str,
) -> Result<(), String> {
    let name = ServerName::try_from(name.to_string()).map_err(|e| e.to_string())?;
    let mut c = rustls::ClientConnection::new(client, name).map_err(|e| e.to_string())?;
    let mut s = rustls::ServerConnection::new(server).map_err(|e| e.to_string())?;
    for _ in 0..10 {
        let mut buf = Vec::new();
        c.write_tls(&mut buf).map_err(|e| e.to_string())?;
        s.read_tls(&mut buf.as_slice()).map_err(|e| e.to_string())?;
        s.process_new_packets().map_err(|e| e.to_string())?;
        let mut buf = Vec::new();
        s.write_tls(&mut buf).map_err(|e| e.to_string())?;
        c.read_tls(&mut buf.as_slice()).map_err(|e| e.to_string())?;
        c.process_new_packets().map_err(|e| e.to_string())?;
        if !c.is_handshaking() && !s.is_handshaking() {
            return Ok(());
        }
    }
    Err("handshake did not finish".into())
}

#[test]
fn self_signed_certificate_is_made_once_and_completes_a_handshake() {
    let d = Dir::new("self");
    let cfg = self_signed_cfg();
    let tls = server(&cfg, &d.0, &["edge-07.plant.example".into()])
        .expect("tls")
        .expect("on");
    assert!(tls.self_signed);
    assert_eq!(tls.fingerprint.len(), 32 * 3 - 1, "{}", tls.fingerprint);
    let key = d.0.join(SELF_SIGNED_DIR).join("key.pem");
    let mode = std::fs::metadata(&key).expect("key").permissions().mode();
    assert_eq!(mode & 0o777, 0o600);
    let client = client_for(&tls.cert_path);
    for name in ["localhost", "127.0.0.1", "edge-07.plant.example"] {
        handshake(tls.config.clone(), client.clone(), name).expect(name);
    }
    assert!(
        handshake(tls.config.clone(), client, "evil.example").is_err(),
        "name checked"
    );
    let again = server(&cfg, &d.0, &[]).expect("tls").expect("on");
    assert_eq!(again.fingerprint, tls.fingerprint, "made once, then reused");
}

#[test]
fn tls_is_off_by_default_and_half_a_configuration_is_refused() {
    let d = Dir::new("off");
    let cfg = TlsSettings::default();
    assert!(server(&cfg, &d.0, &[]).expect("off").is_none());
    let half = TlsSettings {
        tls_cert: "/x/cert.pem".into(),
        ..cfg
    };
    assert!(matches!(
        server(&half, &d.0, &[]),
        Err(TlsError::HalfConfigured)
    ));
}

#[test]
fn configured_cert_files_are_used_as_given() {
    let d = Dir::new("files");
    let made = server(&self_signed_cfg(), &d.0, &[])
        .expect("tls")
        .expect("on");
    let dir = d.0.join(SELF_SIGNED_DIR);
    let cfg = TlsSettings {
        tls_cert: dir.join("cert.pem").display().to_string(),
        tls_key: dir.join("key.pem").display().to_string(),
        ..TlsSettings::default()
    };
    let given = server(&cfg, &d.0.join("elsewhere"), &[])
        .expect("tls")
        .expect("on");
    assert!(!given.self_signed);
    assert_eq!(given.fingerprint, made.fingerprint);
    let broken = TlsSettings {
        tls_key: d.0.join("missing.pem").display().to_string(),
        ..cfg
    };
    assert!(matches!(
        server(&broken, &d.0, &[]),
        Err(TlsError::Read(..))
    ));
}

#[test]
fn vwed_http_client_trusts_tls_ca_file() {
    let d = Dir::new("client");
    let tls = server(&self_signed_cfg(), &d.0, &[])
        .expect("tls")
        .expect("on");
    let cfg = TlsSettings {
        tls_ca_file: tls.cert_path.display().to_string(),
        ..TlsSettings::default()
    };
    let client = http_client_config(&cfg).expect("client config");
    assert_eq!(client.alpn_protocols, vec![b"http/1.1".to_vec()]);
    handshake(tls.config.clone(), Arc::new(client), "localhost")
        .expect("https works with the configured root");
    // Without the extra root the same server is not trusted.
    let plain = http_client_config(&TlsSettings::default()).expect("client config");
    let e = handshake(tls.config.clone(), Arc::new(plain), "localhost").expect_err("untrusted");
    assert!(e.to_ascii_lowercase().contains("certificate"), "{e}");
    let missing = TlsSettings {
        tls_ca_file: d.0.join("nope.pem").display().to_string(),
        ..TlsSettings::default()
    };
    assert!(http_client_config(&missing).is_err());
}
