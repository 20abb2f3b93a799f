//! What the server refused or cut, counted since start and said in a log line at
//! most every [`LOG_EVERY`] (the first one at once).

use std::fmt::Write as _;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};
use vwed_base::sync::Locked;

pub const LOG_EVERY: Duration = Duration::from_secs(10);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Event {
    /// An idle connection closed to make room for a new one at the cap.
    Evicted,
    /// A new connection had to wait at the cap: no connection was idle.
    CapWait,
    /// `accept` failed (out of descriptors, most likely).
    AcceptError,
    HeaderTimeout,
    IdleTimeout,
    /// A request body too slow or too long: answered 408.
    BodyTimeout,
    TlsTimeout,
    TlsFailed,
}

const EVENTS: [Event; 8] = [
    Event::Evicted,
    Event::CapWait,
    Event::AcceptError,
    Event::HeaderTimeout,
    Event::IdleTimeout,
    Event::BodyTimeout,
    Event::TlsTimeout,
    Event::TlsFailed,
];

impl Event {
    fn index(self) -> usize {
        self as usize
    }

    fn label(self) -> &'static str {
        match self {
            Event::Evicted => "idle closed to make room at the cap",
            Event::CapWait => "waits at the cap",
            Event::AcceptError => "accept errors",
            Event::HeaderTimeout => "header timeouts",
            Event::IdleTimeout => "keep-alive idle closes",
            Event::BodyTimeout => "body timeouts (408)",
            Event::TlsTimeout => "TLS handshake timeouts",
            Event::TlsFailed => "failed TLS handshakes",
        }
    }

    /// Closing an idle keep-alive connection is routine; running into the cap
    /// means the runtime is being crowded.
    fn level(self) -> tracing::Level {
        match self {
            Event::IdleTimeout => tracing::Level::DEBUG,
            Event::HeaderTimeout | Event::BodyTimeout | Event::TlsTimeout | Event::TlsFailed => {
                tracing::Level::INFO
            }
            Event::Evicted | Event::CapWait | Event::AcceptError => tracing::Level::WARN,
        }
    }
}

type Counts = [u64; EVENTS.len()];

pub struct Stats {
    counts: [AtomicU64; EVENTS.len()],
    epoch: Instant,
    /// Milliseconds since `epoch` of the last line; `u64::MAX` before the first.
    last_log_ms: AtomicU64,
    logged: Mutex<Counts>,
}

impl Stats {
    pub fn new() -> Stats {
        Stats {
            counts: Default::default(),
            epoch: Instant::now(),
            last_log_ms: AtomicU64::new(u64::MAX),
            logged: Mutex::new([0; EVENTS.len()]),
        }
    }

    /// Counts `e`, and logs the totals unless a line went out less than
    /// [`LOG_EVERY`] ago (the periodic [`Stats::flush`] catches up on those).
    pub fn count(&self, e: Event, open: usize, cap: usize) {
        self.counts[e.index()].fetch_add(1, Ordering::Relaxed);
        let now = self.now_ms();
        let last = self.last_log_ms.load(Ordering::Relaxed);
        let due = last == u64::MAX || now.saturating_sub(last) >= LOG_EVERY.as_millis() as u64;
        if due
            && self
                .last_log_ms
                .compare_exchange(last, now, Ordering::Relaxed, Ordering::Relaxed)
                .is_ok()
        {
            self.log_changes(open, cap);
        }
    }

    /// Logs the totals if anything was counted since the last line.
    pub fn flush(&self, open: usize, cap: usize) {
        self.last_log_ms.store(self.now_ms(), Ordering::Relaxed);
        self.log_changes(open, cap);
    }

    #[cfg(test)]
    pub fn get(&self, e: Event) -> u64 {
        self.counts[e.index()].load(Ordering::Relaxed)
    }

    fn now_ms(&self) -> u64 {
        u64::try_from(self.epoch.elapsed().as_millis()).unwrap_or(u64::MAX - 1)
    }

    fn log_changes(&self, open: usize, cap: usize) {
        let now: Counts = std::array::from_fn(|i| self.counts[i].load(Ordering::Relaxed));
        let mut logged = self.logged.locked();
        let level = EVENTS
            .iter()
            .filter(|e| now[e.index()] != logged[e.index()])
            .map(|e| e.level())
            // tracing's Level orders ERROR < WARN < INFO < DEBUG: the most severe is the least.
            .min();
        let Some(level) = level else {
            return;
        };
        *logged = now;
        drop(logged);
        let mut line = format!("HTTP connections: {open} open (cap {cap}); since start:");
        for (i, e) in EVENTS.iter().enumerate() {
            let sep = if i == 0 { " " } else { ", " };
            let _ = write!(line, "{sep}{} {}", now[e.index()], e.label());
        }
        match level {
            tracing::Level::WARN => tracing::warn!("{line}"),
            tracing::Level::INFO => tracing::info!("{line}"),
            _ => tracing::debug!("{line}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn events_index_their_own_slot() {
        for (i, e) in EVENTS.iter().enumerate() {
            assert_eq!(e.index(), i, "{e:?}");
        }
    }

    #[test]
    fn counts_add_up_whether_or_not_a_line_is_due() {
        let s = Stats::new();
        s.count(Event::Evicted, 1, 4);
        s.count(Event::Evicted, 1, 4);
        s.count(Event::BodyTimeout, 1, 4);
        s.flush(1, 4);
        assert_eq!(s.get(Event::Evicted), 2);
        assert_eq!(s.get(Event::BodyTimeout), 1);
        assert_eq!(s.get(Event::TlsFailed), 0);
    }
}
