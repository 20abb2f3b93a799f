//! One connection's task: the TLS handshake (bounded), then hyper's HTTP/1
//! connection, closed when its phase overstays its limit, when the accept loop
//! needs its slot, or at shutdown.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::pin::pin;

use bytes::Bytes;
use http_body::Body;
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;
use tokio::sync::OwnedSemaphorePermit;
use tokio::sync::mpsc::Sender;
use warp::http::{Request, Response};

use super::body::TimedBody;
use super::io::{Stream, TrackedIo};
use super::service::Svc;
use super::slots::Registration;
use super::state::{ConnState, Signal, Verdict};
use super::stats::Event;

/// Serves one connection. `_alive` tells the accept loop, by being dropped, that
/// the connection is done.
pub async fn run<S, B>(
    reg: Registration,
    tcp: TcpStream,
    addr: SocketAddr,
    slot: OwnedSemaphorePermit,
    svc: S,
    _alive: Sender<()>,
) where
    S: tower_service::Service<Request<TimedBody>, Response = Response<B>, Error = Infallible>
        + Clone
        + Send
        + 'static,
    S::Future: Send + 'static,
    B: Body<Data = Bytes> + From<Bytes> + Unpin + Send + 'static,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    let state = reg.state.clone();
    let shared = state.shared.clone();
    let stream = match &shared.tls {
        None => Stream::Plain(tcp),
        Some(tls) => match handshake(tls, tcp, addr, &state).await {
            Ok(s) => s,
            Err(event) => {
                if let Some(e) = event {
                    shared.count(e);
                }
                return;
            }
        },
    };
    let io = TokioIo::new(TrackedIo::new(stream, state.clone(), slot));
    let svc = Svc::new(svc, state.clone(), addr);
    let mut conn = pin!(shared.http.serve_connection(io, svc).with_upgrades());
    let first = match state.verdict() {
        Verdict::Open(at) => at,
        Verdict::Close(e) => return shared.count(e),
    };
    let mut check = pin!(tokio::time::sleep_until(first));
    let mut stopping = false;
    loop {
        tokio::select! {
            biased;
            r = conn.as_mut() => {
                if let Err(e) = r {
                    tracing::debug!("HTTP connection from {addr}: {e}");
                }
                return;
            }
            () = check.as_mut() => match state.verdict() {
                Verdict::Open(at) => check.as_mut().reset(at),
                // Dropping the connection closes the socket.
                Verdict::Close(e) => return shared.count(e),
            },
            s = state.signalled() => match s {
                Signal::Evict if state.between_requests() => {
                    return shared.count(Event::Evicted);
                }
                // It became busy after it was picked: it stays.
                Signal::Evict => {}
                Signal::Stop if state.between_requests() => return,
                Signal::Stop if !stopping => {
                    stopping = true;
                    conn.as_mut().graceful_shutdown();
                }
                Signal::Stop => {}
            },
        }
    }
}

/// The TLS handshake within its time limit; on failure, what to count.
async fn handshake(
    tls: &tokio_rustls::TlsAcceptor,
    tcp: TcpStream,
    addr: SocketAddr,
    state: &ConnState,
) -> Result<Stream, Option<Event>> {
    let limit = state.shared.limits.tls_handshake;
    tokio::select! {
        r = tokio::time::timeout(limit, tls.accept(tcp)) => match r {
            Ok(Ok(s)) => {
                state.handshake_done();
                Ok(Stream::Tls(Box::new(s)))
            }
            Ok(Err(e)) => {
                tracing::debug!("TLS handshake with {addr} failed: {e}");
                Err(Some(Event::TlsFailed))
            }
            Err(_) => Err(Some(Event::TlsTimeout)),
        },
        s = state.signalled() => Err(matches!(s, Signal::Evict).then_some(Event::Evicted)),
    }
}
