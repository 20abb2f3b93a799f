//! Request bodies with a deadline and a rate floor. The clock runs only while the
//! handler waits for bytes the client has not sent: a handler that reads late,
//! or a body that already arrived, is never cut.

use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use bytes::Bytes;
use http_body::{Body, Frame, SizeHint};
use hyper::body::Incoming;
use tokio::time::{Instant, Sleep};

use super::limits::BodyLimits;
use super::state::ConnState;

#[derive(Debug, thiserror::Error)]
pub enum BodyError {
    #[error("{0}")]
    Read(#[from] hyper::Error),
    #[error("the request body took longer than {0} s")]
    TooLong(u64),
    #[error("the request body arrived slower than {0} bytes/s")]
    TooSlow(u64),
}

pub struct TimedBody {
    inner: Incoming,
    state: Arc<ConnState>,
    limits: BodyLimits,
    received: u64,
    /// Made at the first wait; most bodies never need it.
    clock: Option<Box<Clock>>,
    failed: bool,
}

struct Clock {
    started: Instant,
    window_start: Instant,
    /// `received` when the window started.
    window_base: u64,
    sleep: Pin<Box<Sleep>>,
}

impl TimedBody {
    pub fn new(inner: Incoming, state: Arc<ConnState>) -> TimedBody {
        let limits = state.shared.limits.body;
        TimedBody {
            inner,
            state,
            limits,
            received: 0,
            clock: None,
            failed: false,
        }
    }

    /// Called when the client has not sent the next bytes yet: fails if it has
    /// been too slow or too long, else arms the timer for the next check.
    fn check(&mut self, cx: &mut Context<'_>) -> Result<(), BodyError> {
        let limits = self.limits;
        let received = self.received;
        let clock = self.clock.get_or_insert_with(|| {
            let now = Instant::now();
            Box::new(Clock {
                started: now,
                window_start: now,
                window_base: received,
                sleep: Box::pin(tokio::time::sleep_until(now + limits.total)),
            })
        });
        let floor = limits.bytes_per_window();
        loop {
            let now = Instant::now();
            if now >= clock.started + limits.total {
                return Err(BodyError::TooLong(limits.total.as_secs()));
            }
            if floor > 0 && now >= clock.window_start + limits.window {
                if received - clock.window_base < floor {
                    return Err(BodyError::TooSlow(limits.min_bytes_per_s));
                }
                clock.window_start = now;
                clock.window_base = received;
            }
            let mut due = clock.started + limits.total;
            if floor > 0 {
                due = due.min(clock.window_start + limits.window);
            }
            if clock.sleep.deadline() != due {
                clock.sleep.as_mut().reset(due);
            }
            if clock.sleep.as_mut().poll(cx).is_pending() {
                return Ok(());
            }
        }
    }
}

impl Body for TimedBody {
    type Data = Bytes;
    type Error = BodyError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BodyError>>> {
        let this = self.get_mut();
        if this.failed {
            return Poll::Ready(None);
        }
        match Pin::new(&mut this.inner).poll_frame(cx) {
            Poll::Ready(Some(Ok(frame))) => {
                if let Some(data) = frame.data_ref() {
                    this.received += data.len() as u64;
                }
                Poll::Ready(Some(Ok(frame)))
            }
            Poll::Ready(other) => Poll::Ready(other.map(|r| r.map_err(BodyError::Read))),
            Poll::Pending => match this.check(cx) {
                Ok(()) => Poll::Pending,
                Err(e) => {
                    this.failed = true;
                    this.state.on_body_timeout();
                    Poll::Ready(Some(Err(e)))
                }
            },
        }
    }

    fn is_end_stream(&self) -> bool {
        self.failed || self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}
