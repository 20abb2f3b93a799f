//! Peer processes the tests talk to (Python stand-ins in `tests/peers/`), and
//! certificates for their TLS: a test CA and the certificates it signs.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

use crate::TempDir;

/// A peer process started by a test; killed on drop.
pub struct Peer {
    child: Child,
    pub port: u16,
}

impl Drop for Peer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn script(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("peers")
        .join(name)
}

/// Starts `python3 peers/<name> args...` and reads its first line.
fn start(name: &str, args: &[String]) -> (Child, String) {
    let mut child = Command::new("python3")
        .arg(script(name))
        .args(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap_or_else(|e| {
            panic!("start python3 {name} (pip install -r tests/requirements.txt): {e}")
        });
    let mut line = String::new();
    BufReader::new(child.stdout.take().expect("stdout"))
        .read_line(&mut line)
        .expect("first line");
    (child, line.trim().to_string())
}

/// A certificate and its key, as PEM files.
#[derive(Debug, Clone)]
pub struct CertFiles {
    pub cert: PathBuf,
    pub key: PathBuf,
}

impl CertFiles {
    fn args(&self) -> [String; 2] {
        [
            self.cert.display().to_string(),
            self.key.display().to_string(),
        ]
    }
}

/// The HTTP stand-in (echo, slow, big bodies, a small task server); with
/// `tls`, it speaks HTTPS with that certificate.
pub fn http_standin(tls: Option<&CertFiles>) -> Peer {
    let args: Vec<String> = tls.map(|t| t.args().to_vec()).unwrap_or_default();
    let (child, line) = start("http_standin.py", &args);
    let port = line.parse().expect("port number");
    Peer { child, port }
}

/// aiosmtpd on loopback, saving messages into `outdir`; `auth` = required user
/// and password; with `starttls`, STARTTLS with that certificate is required
/// (before AUTH too).
pub fn smtp_standin(
    outdir: &Path,
    auth: Option<(&str, &str)>,
    starttls: Option<&CertFiles>,
) -> Peer {
    let port = crate::free_port();
    let mut args = vec![port.to_string(), outdir.display().to_string()];
    if let Some((u, p)) = auth {
        args.extend(["--auth".into(), u.into(), p.into()]);
    }
    if let Some(t) = starttls {
        args.push("--starttls".into());
        args.extend(t.args());
    }
    let (child, line) = start("smtp_standin.py", &args);
    assert_eq!(line, "ready", "aiosmtpd did not start (is it installed?)");
    Peer { child, port }
}

/// A certificate authority for tests, and the certificates it signs for
/// `127.0.0.1` and `localhost`. Its files live as long as it does.
pub struct TestCa {
    dir: TempDir,
    issuer: rcgen::Issuer<'static, rcgen::KeyPair>,
    /// The CA certificate (what `tls_ca_file` names).
    pub cert: PathBuf,
}

/// The names every test certificate is for.
fn loopback_names() -> Vec<String> {
    vec!["127.0.0.1".into(), "localhost".into()]
}

impl TestCa {
    pub fn new() -> TestCa {
        let dir = TempDir::new("ca");
        let key = rcgen::KeyPair::generate().expect("CA key");
        let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).expect("CA params");
        params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, "VWED Edge test CA");
        let ca = params.self_signed(&key).expect("CA certificate");
        let cert = dir.path().join("ca.pem");
        std::fs::write(&cert, ca.pem()).expect("write the CA certificate");
        TestCa {
            issuer: rcgen::Issuer::new(params, key),
            dir,
            cert,
        }
    }

    /// A certificate for the loopback names signed by this CA.
    pub fn issue(&self, name: &str) -> CertFiles {
        let key = rcgen::KeyPair::generate().expect("key");
        let params = rcgen::CertificateParams::new(loopback_names()).expect("params");
        let cert = params.signed_by(&key, &self.issuer).expect("signed");
        self.write(name, &cert.pem(), &key.serialize_pem())
    }

    /// A certificate for the loopback names that no CA signed.
    pub fn stranger(&self, name: &str) -> CertFiles {
        let made = rcgen::generate_simple_self_signed(loopback_names()).expect("self-signed");
        self.write(name, &made.cert.pem(), &made.signing_key.serialize_pem())
    }

    fn write(&self, name: &str, cert: &str, key: &str) -> CertFiles {
        let files = CertFiles {
            cert: self.dir.path().join(format!("{name}.pem")),
            key: self.dir.path().join(format!("{name}.key")),
        };
        std::fs::write(&files.cert, cert).expect("write certificate");
        std::fs::write(&files.key, key).expect("write key");
        files
    }
}

impl Default for TestCa {
    fn default() -> Self {
        TestCa::new()
    }
}
