//! The accept loop on a loopback port with a small filter: TLS, the client
//! address, the connection cap and shutdown. (Timeouts against the real binary
//! are in `tests/e2e/server_bounds.rs`.)

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use rustls::pki_types::{CertificateDer, PrivatePkcs8KeyDer, ServerName};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::oneshot;
use tokio::task::JoinHandle;
use warp::Filter;

use super::ServerSettings;
use super::{Limits, client_addr, serve};

/// Generous bound on any wait, so that a failing test ends.
const BOUND: Duration = Duration::from_secs(20);

struct Server {
    addr: SocketAddr,
    stop: Option<oneshot::Sender<()>>,
    task: JoinHandle<()>,
}

impl Server {
    async fn shut_down(mut self) {
        if let Some(s) = self.stop.take() {
            let _ = s.send(());
        }
        tokio::time::timeout(BOUND, self.task)
            .await
            .expect("serve returns after shutdown")
            .expect("serve task");
    }
}

/// `/hello` answers with the client's address; `/slow` after 500 ms.
async fn start(cfg: ServerSettings, tls: Option<Arc<rustls::ServerConfig>>) -> Server {
    let hello = warp::path("hello")
        .and(client_addr())
        .map(|a: Option<SocketAddr>| {
            format!(
                "hello {}",
                a.map(|a| a.ip().to_string()).unwrap_or_default()
            )
        });
    let slow = warp::path("slow").then(|| async {
        tokio::time::sleep(Duration::from_millis(500)).await;
        "done".to_string()
    });
    let app = hello.or(slow).unify();
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    let limits = Limits::from_settings(&cfg).expect("limits");
    let (tx, rx) = oneshot::channel::<()>();
    let task = tokio::spawn(serve(app, listener, limits, tls, async {
        let _ = rx.await;
    }));
    Server {
        addr,
        stop: Some(tx),
        task,
    }
}

fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// A server config with a fresh self-signed certificate for `localhost`; it
/// offers HTTP/2 as well, which the server must not let a client pick.
fn self_signed() -> (Arc<rustls::ServerConfig>, CertificateDer<'static>) {
    let made = rcgen::generate_simple_self_signed(vec!["localhost".to_string()]).expect("cert");
    let cert = made.cert.der().clone();
    let key = PrivatePkcs8KeyDer::from(made.signing_key.serialize_der());
    let mut cfg = rustls::ServerConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .expect("protocol versions")
        .with_no_client_auth()
        .with_single_cert(vec![cert.clone()], key.into())
        .expect("server config");
    cfg.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    (Arc::new(cfg), cert)
}

async fn tls_connect(
    addr: SocketAddr,
    cert: CertificateDer<'static>,
) -> tokio_rustls::client::TlsStream<TcpStream> {
    let mut roots = rustls::RootCertStore::empty();
    roots.add(cert).expect("trust the test certificate");
    let mut cfg = rustls::ClientConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .expect("protocol versions")
        .with_root_certificates(roots)
        .with_no_client_auth();
    cfg.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    let tcp = TcpStream::connect(addr).await.expect("connect");
    let name = ServerName::try_from("localhost").expect("name");
    tokio_rustls::TlsConnector::from(Arc::new(cfg))
        .connect(name, tcp)
        .await
        .expect("TLS handshake")
}

/// Sends a GET and reads the whole answer (`Connection: close`).
async fn get(io: &mut (impl AsyncRead + AsyncWrite + Unpin), path: &str) -> String {
    let req = format!("GET {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n");
    io.write_all(req.as_bytes()).await.expect("send");
    let mut out = Vec::new();
    tokio::time::timeout(BOUND, io.read_to_end(&mut out))
        .await
        .expect("answer within the bound")
        .expect("read");
    String::from_utf8_lossy(&out).into_owned()
}

/// Sends a GET on a connection that stays open; reads until the answer ends
/// with `end`.
async fn get_keep_alive(io: &mut TcpStream, path: &str, end: &str) -> String {
    let req = format!("GET {path} HTTP/1.1\r\nHost: localhost\r\n\r\n");
    io.write_all(req.as_bytes()).await.expect("send");
    let mut out = Vec::new();
    let mut buf = [0u8; 1024];
    tokio::time::timeout(BOUND, async {
        while !String::from_utf8_lossy(&out).ends_with(end) {
            let n = io.read(&mut buf).await.expect("read");
            assert!(n > 0, "closed before the answer");
            out.extend_from_slice(&buf[..n]);
        }
    })
    .await
    .expect("answer within the bound");
    String::from_utf8_lossy(&out).into_owned()
}

/// Resolves when the peer closed the connection (end of file or reset).
async fn closed(io: &mut TcpStream) -> bool {
    let mut buf = [0u8; 256];
    let wait = async {
        loop {
            match io.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(_) => {}
            }
        }
    };
    tokio::time::timeout(BOUND, wait).await.is_ok()
}

fn still_open(io: &TcpStream) -> bool {
    let mut buf = [0u8; 1];
    matches!(io.try_read(&mut buf), Err(e) if e.kind() == std::io::ErrorKind::WouldBlock)
}

#[tokio::test]
async fn tls_connection_serves_the_filter_and_knows_the_client() {
    let (tls, cert) = self_signed();
    let server = start(ServerSettings::default(), Some(tls)).await;
    let mut io = tls_connect(server.addr, cert).await;
    assert_eq!(
        io.get_ref().1.alpn_protocol(),
        Some(b"http/1.1".as_slice()),
        "the server speaks HTTP/1.1 only"
    );
    let answer = get(&mut io, "/hello").await;
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    assert!(answer.ends_with("hello 127.0.0.1"), "{answer}");
    server.shut_down().await;
}

#[tokio::test]
async fn stalled_or_plain_text_tls_handshake_is_closed() {
    let (tls, _) = self_signed();
    let cfg = ServerSettings {
        tls_handshake_timeout_ms: 300,
        ..ServerSettings::default()
    };
    let server = start(cfg, Some(tls)).await;
    // Says nothing: closed at the handshake limit.
    let mut silent = TcpStream::connect(server.addr).await.expect("connect");
    assert!(closed(&mut silent).await, "a silent TLS client stays open");
    // Speaks plain HTTP to the TLS port: refused.
    let mut plain = TcpStream::connect(server.addr).await.expect("connect");
    let answer = get(&mut plain, "/hello").await;
    assert!(!answer.contains("hello"), "{answer}");
    server.shut_down().await;
}

#[tokio::test]
async fn at_the_cap_the_longest_idle_connection_makes_room() {
    let cfg = ServerSettings {
        max_connections: 2,
        header_read_timeout_ms: 60_000,
        keep_alive_idle_ms: 60_000,
        ..ServerSettings::default()
    };
    let server = start(cfg, None).await;
    let mut oldest = TcpStream::connect(server.addr).await.expect("connect");
    // The accept loop takes connections in order; the first one is older.
    tokio::time::sleep(Duration::from_millis(50)).await;
    let mut younger = TcpStream::connect(server.addr).await.expect("connect");
    get_keep_alive(&mut younger, "/hello", "hello 127.0.0.1").await;
    let mut third = TcpStream::connect(server.addr).await.expect("connect");
    let answer = get(&mut third, "/hello").await;
    assert!(answer.contains("hello 127.0.0.1"), "{answer}");
    assert!(
        closed(&mut oldest).await,
        "the oldest idle connection stays"
    );
    assert!(
        still_open(&younger),
        "the younger connection was closed too"
    );
    server.shut_down().await;
}

#[tokio::test]
async fn a_request_in_progress_is_never_closed_for_room() {
    let cfg = ServerSettings {
        max_connections: 1,
        ..ServerSettings::default()
    };
    let server = start(cfg, None).await;
    let mut busy = TcpStream::connect(server.addr).await.expect("connect");
    let slow = tokio::spawn(async move { get(&mut busy, "/slow").await });
    tokio::time::sleep(Duration::from_millis(100)).await;
    let mut waiting = TcpStream::connect(server.addr).await.expect("connect");
    let answer = get(&mut waiting, "/hello").await;
    assert!(answer.contains("hello"), "{answer}");
    let slow = slow.await.expect("slow client");
    assert!(
        slow.starts_with("HTTP/1.1 200") && slow.ends_with("done"),
        "{slow}"
    );
    server.shut_down().await;
}

#[tokio::test]
async fn shutdown_lets_the_request_in_progress_finish() {
    let server = start(ServerSettings::default(), None).await;
    let mut busy = TcpStream::connect(server.addr).await.expect("connect");
    let slow = tokio::spawn(async move { get(&mut busy, "/slow").await });
    let mut idle = TcpStream::connect(server.addr).await.expect("connect");
    tokio::time::sleep(Duration::from_millis(100)).await;
    server.shut_down().await;
    let slow = slow.await.expect("slow client");
    assert!(slow.ends_with("done"), "{slow}");
    assert!(
        closed(&mut idle).await,
        "an idle connection outlived shutdown"
    );
}
