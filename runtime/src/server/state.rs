//! Where one connection stands: waiting for a request head, serving a request,
//! or kept alive between requests. The service, the request and response bodies
//! and the socket wrapper move it along; the connection task reads it to decide
//! when to close. All of them run on the connection's own task, so the phase and
//! its start are written in order; the accept loop only reads them to pick whom
//! to close at the cap, and the task checks again before it does.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU8, AtomicU64, Ordering};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use futures::task::AtomicWaker;

use super::Shared;
use super::stats::Event;

/// Waiting for (the rest of) a request head; the clock starts at the connection
/// (after its TLS handshake) or at the first byte of a later request.
const HEAD: u8 = 0;
/// A request is being served: its body, the handler and the response. The server
/// sets no deadline here (bodies have their own; handlers have call timeouts).
const BUSY: u8 = 1;
/// Kept alive after a response, waiting for the next request.
const IDLE: u8 = 2;
/// Answered 408 and lingering before the close (see `io.rs`).
const CLOSING: u8 = 3;

pub struct ConnState {
    phase: AtomicU8,
    /// Milliseconds since `shared.epoch` when the phase began.
    since_ms: AtomicU64,
    body_timed_out: AtomicBool,
    /// A 408 went out: linger before closing (see `io.rs`).
    linger: AtomicBool,
    evict: AtomicBool,
    stop: AtomicBool,
    waker: AtomicWaker,
    pub shared: Arc<Shared>,
}

pub enum Verdict {
    /// Look again at this instant.
    Open(tokio::time::Instant),
    Close(Event),
}

impl ConnState {
    pub fn new(shared: Arc<Shared>) -> ConnState {
        ConnState {
            phase: AtomicU8::new(HEAD),
            since_ms: AtomicU64::new(shared.now_ms()),
            body_timed_out: AtomicBool::new(false),
            linger: AtomicBool::new(false),
            evict: AtomicBool::new(false),
            stop: AtomicBool::new(false),
            waker: AtomicWaker::new(),
            shared,
        }
    }

    fn enter(&self, phase: u8) {
        self.since_ms.store(self.shared.now_ms(), Ordering::Relaxed);
        self.phase.store(phase, Ordering::Release);
    }

    /// The TLS handshake is done: the head clock starts now.
    pub fn handshake_done(&self) {
        self.enter(HEAD);
    }

    /// Bytes arrived. On a kept-alive connection they begin the next request head.
    pub fn on_read(&self) {
        if self.phase.load(Ordering::Relaxed) == IDLE {
            self.enter(HEAD);
        }
    }

    pub fn on_request(&self) {
        self.phase.store(BUSY, Ordering::Relaxed);
    }

    /// The response body was sent (or dropped).
    pub fn on_response_end(&self) {
        if self.phase.load(Ordering::Relaxed) == BUSY {
            self.enter(IDLE);
        }
    }

    pub fn on_body_timeout(&self) {
        self.body_timed_out.store(true, Ordering::Relaxed);
        self.linger.store(true, Ordering::Relaxed);
        self.shared.count(Event::BodyTimeout);
    }

    /// Did this request's body time out? Asked once, when its response is ready.
    pub fn take_body_timeout(&self) -> bool {
        self.body_timed_out.swap(false, Ordering::Relaxed)
    }

    pub fn lingers(&self) -> bool {
        self.linger.load(Ordering::Relaxed)
    }

    /// The 408 is out; the socket lingers before it closes.
    pub fn on_linger(&self) {
        self.enter(CLOSING);
    }

    /// No request is in progress: closing loses nothing that was asked for.
    pub fn between_requests(&self) -> bool {
        matches!(self.phase.load(Ordering::Acquire), HEAD | IDLE)
    }

    /// When the connection last started waiting for a client, if it is waiting.
    pub fn waiting_since(&self) -> Option<u64> {
        self.between_requests()
            .then(|| self.since_ms.load(Ordering::Relaxed))
    }

    /// Whether the phase overstayed its limit; if not, when to look again. The
    /// phase may change in between without waking the task (a response ends, a
    /// new head begins), so the next look is never further off than the shorter
    /// limit: a phase entered after this look then still gets checked in time.
    pub fn verdict(&self) -> Verdict {
        let limits = &self.shared.limits;
        let now = self.shared.now_ms();
        let recheck =
            now.saturating_add(duration_ms(limits.header_read.min(limits.keep_alive_idle)));
        let (limit, event) = match self.phase.load(Ordering::Acquire) {
            HEAD => (limits.header_read, Event::HeaderTimeout),
            IDLE => (limits.keep_alive_idle, Event::IdleTimeout),
            // Busy or lingering: nothing to cut.
            _ => return Verdict::Open(self.shared.instant(recheck)),
        };
        let due = self
            .since_ms
            .load(Ordering::Relaxed)
            .saturating_add(duration_ms(limit));
        if now >= due {
            Verdict::Close(event)
        } else {
            Verdict::Open(self.shared.instant(due.min(recheck)))
        }
    }

    /// Asks the connection's task to close it if it is still between requests.
    pub fn evict(&self) {
        self.evict.store(true, Ordering::Release);
        self.waker.wake();
    }

    /// Asks the connection's task to finish: at once when between requests, else
    /// after the response in progress.
    pub fn stop(&self) {
        self.stop.store(true, Ordering::Release);
        self.waker.wake();
    }

    /// Resolves when [`ConnState::evict`] or [`ConnState::stop`] was called (each
    /// is taken once).
    pub fn signalled(&self) -> Signalled<'_> {
        Signalled(self)
    }
}

pub enum Signal {
    Evict,
    Stop,
}

pub struct Signalled<'a>(&'a ConnState);

impl Future for Signalled<'_> {
    type Output = Signal;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Signal> {
        let s = self.0;
        s.waker.register(cx.waker());
        // Load first: this is polled on every wake-up of a busy connection.
        if s.stop.load(Ordering::Acquire) && s.stop.swap(false, Ordering::AcqRel) {
            Poll::Ready(Signal::Stop)
        } else if s.evict.load(Ordering::Acquire) && s.evict.swap(false, Ordering::AcqRel) {
            Poll::Ready(Signal::Evict)
        } else {
            Poll::Pending
        }
    }
}

fn duration_ms(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

/// Milliseconds since `epoch`, saturating.
pub fn ms_since(epoch: Instant) -> u64 {
    u64::try_from(epoch.elapsed().as_millis()).unwrap_or(u64::MAX)
}

/// `epoch + ms` as a tokio instant.
pub fn instant_at(epoch: Instant, ms: u64) -> tokio::time::Instant {
    tokio::time::Instant::from_std(epoch) + Duration::from_millis(ms)
}
