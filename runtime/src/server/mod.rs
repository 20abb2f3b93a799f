//! The runtime's own HTTP accept loop: a warp filter served through
//! `warp::service` on hyper's HTTP/1 connections, with the bounds warp's server
//! lacks (issue 9) and optional TLS (issue 10).
//!
//! - Every phase of a connection has a limit: the TLS handshake, the request head
//!   (from the connection's start, or from the first byte of a later request),
//!   the request body (a deadline and a rate floor, answered 408), and the wait
//!   between requests on a kept-alive connection. A request being served has no
//!   server deadline: handlers have their own call timeouts, and WebSocket
//!   sessions leave these limits with the upgrade.
//! - Connections are capped below the descriptor limit, leaving a reserve for the
//!   runtime's own files, workers and outgoing connections. At the cap, a new
//!   connection closes the one that has waited longest for its client (an idle
//!   keep-alive, a head that is not coming) rather than waiting: otherwise a
//!   crowd of idle connections would lock out `/health` and the API until
//!   timeouts freed a slot. Connections in the middle of a request are never
//!   closed for room; if all are, the new one waits.
//! - What was refused or cut is counted and logged (rate-limited, `stats.rs`).
//! - HTTP/1.1 only: every client of the API speaks it; HTTP/2 would need its own
//!   set of bounds.

mod body;
mod conn;
mod io;
mod limits;
mod service;
mod settings;
mod slots;
mod state;
mod stats;
#[cfg(test)]
mod tests;

use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::net::TcpListener;
use warp::{Filter, Rejection, Reply};

pub use limits::{Limits, LimitsError};
use service::ClientAddr;
pub use settings::ServerSettings;
use slots::Slots;
use state::ConnState;
use stats::{Event, Stats};

/// At shutdown, how long requests in progress get to finish.
const SHUTDOWN_DRAIN: Duration = Duration::from_secs(10);
/// Pause after a failed `accept` (out of descriptors, most likely), so the
/// listener does not spin while the backlog stays readable.
const ACCEPT_BACKOFF: Duration = Duration::from_millis(50);

/// The address of the client a request came from (`None` only if the request
/// did not come through [`serve`]). Replaces `warp::addr::remote()`, which only
/// warp's own server fills in.
pub fn client_addr() -> impl Filter<Extract = (Option<SocketAddr>,), Error = Infallible> + Copy {
    warp::ext::optional::<ClientAddr>().map(|a: Option<ClientAddr>| a.map(|ClientAddr(a)| a))
}

/// What [`client_addr`] reads, for in-process requests (`warp::test`) that do
/// not come through [`serve`].
#[cfg(test)]
pub fn test_client(addr: SocketAddr) -> ClientAddr {
    ClientAddr(addr)
}

/// What every connection shares.
pub struct Shared {
    limits: Limits,
    epoch: Instant,
    slots: Slots,
    stats: Stats,
    http: hyper::server::conn::http1::Builder,
    tls: Option<tokio_rustls::TlsAcceptor>,
}

impl Shared {
    fn now_ms(&self) -> u64 {
        state::ms_since(self.epoch)
    }

    fn instant(&self, ms: u64) -> tokio::time::Instant {
        state::instant_at(self.epoch, ms)
    }

    fn count(&self, e: Event) {
        self.stats.count(e, self.slots.open(), self.slots.cap());
    }
}

/// Serves `filter` on `listener` until `shutdown` resolves, then lets requests in
/// progress finish (up to [`SHUTDOWN_DRAIN`]). With `tls`, every connection is
/// TLS. Raises the soft descriptor limit to the hard one first.
pub async fn serve<F, R>(
    filter: F,
    listener: TcpListener,
    limits: Limits,
    tls: Option<Arc<rustls::ServerConfig>>,
    shutdown: impl Future<Output = ()>,
) where
    F: Filter<Extract = (R,), Error = Rejection> + Clone + Send + Sync + 'static,
    R: Reply,
{
    let cap = descriptor_budget(&limits);
    let mut http = hyper::server::conn::http1::Builder::new();
    // The head clock is ours (state.rs): hyper's would also run between requests
    // and cut kept-alive connections after the head limit.
    http.header_read_timeout(None);
    let shared = Arc::new(Shared {
        limits,
        epoch: Instant::now(),
        slots: Slots::new(cap),
        stats: Stats::new(),
        http,
        tls: tls.map(http1_only).map(tokio_rustls::TlsAcceptor::from),
    });
    let svc = warp::service(filter);
    // Each connection task holds a sender; `recv` ends when all of them are gone.
    let (alive, mut all_done) = tokio::sync::mpsc::channel::<()>(1);
    let ticker = tokio::spawn(log_ticker(shared.clone()));
    let mut shutdown = std::pin::pin!(shutdown);
    loop {
        let accepted = tokio::select! {
            r = listener.accept() => r,
            () = &mut shutdown => break,
        };
        let (tcp, addr) = match accepted {
            Ok(pair) => pair,
            Err(e) => {
                accept_failed(&shared, &e).await;
                continue;
            }
        };
        let slot = tokio::select! {
            s = shared.slots.take(|| shared.count(Event::CapWait)) => s,
            () = &mut shutdown => break,
        };
        let reg = shared
            .slots
            .register(Arc::new(ConnState::new(shared.clone())));
        tokio::spawn(conn::run(reg, tcp, addr, slot, svc.clone(), alive.clone()));
    }
    drop(listener);
    shared.slots.stop_all();
    drop(alive);
    if tokio::time::timeout(SHUTDOWN_DRAIN, all_done.recv())
        .await
        .is_err()
    {
        tracing::warn!(
            "HTTP: requests still in progress {} s after shutdown began; closing them",
            SHUTDOWN_DRAIN.as_secs()
        );
    }
    ticker.abort();
    shared.stats.flush(shared.slots.open(), cap);
}

/// This server speaks HTTP/1.1 only: offer exactly that in ALPN, so that no client
/// negotiates HTTP/2 with it.
fn http1_only(cfg: Arc<rustls::ServerConfig>) -> Arc<rustls::ServerConfig> {
    if cfg.alpn_protocols == [b"http/1.1".to_vec()] {
        return cfg;
    }
    let mut own = (*cfg).clone();
    own.alpn_protocols = vec![b"http/1.1".to_vec()];
    Arc::new(own)
}

/// Raises the descriptor limit and derives the connection cap from it; logs both.
fn descriptor_budget(limits: &Limits) -> usize {
    let nofile = match limits::raise_nofile() {
        Ok(n) => {
            let hard = if n.hard == libc::RLIM_INFINITY {
                "unlimited".to_string()
            } else {
                n.hard.to_string()
            };
            tracing::info!(
                "descriptor limit: soft {} raised to {} (hard {hard})",
                n.soft_before,
                n.soft
            );
            n.soft
        }
        Err(e) => {
            let soft = limits::current_nofile();
            tracing::warn!("cannot raise the descriptor limit ({e}); it stays at {soft}");
            soft
        }
    };
    let cap = limits.connection_cap(nofile);
    let kept = nofile.saturating_sub(cap as u64);
    if kept < limits.fd_reserve {
        tracing::warn!(
            "the descriptor limit {nofile} is too low for fd_reserve = {}: up to {cap} HTTP \
             connections, {kept} descriptors kept for the runtime",
            limits.fd_reserve
        );
    } else {
        tracing::info!(
            "up to {cap} HTTP connections; {kept} of {nofile} descriptors kept for the runtime"
        );
    }
    cap
}

async fn accept_failed(shared: &Shared, e: &std::io::Error) {
    use std::io::ErrorKind as K;
    // A connection that was reset while in the backlog: nothing to do.
    if matches!(
        e.kind(),
        K::ConnectionAborted | K::ConnectionReset | K::ConnectionRefused
    ) {
        return;
    }
    tracing::debug!("accept: {e}");
    shared.count(Event::AcceptError);
    if matches!(e.raw_os_error(), Some(libc::EMFILE | libc::ENFILE)) {
        // Out of descriptors although under the cap (the runtime used its
        // reserve): give one back.
        shared.slots.evict_oldest_waiting();
    }
    tokio::time::sleep(ACCEPT_BACKOFF).await;
}

/// Says what was counted since the last line, every [`stats::LOG_EVERY`].
async fn log_ticker(shared: Arc<Shared>) {
    loop {
        tokio::time::sleep(stats::LOG_EVERY).await;
        shared.stats.flush(shared.slots.open(), shared.slots.cap());
    }
}
