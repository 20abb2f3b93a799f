//! The connection cap: one permit per open connection (held by its socket, so a
//! WebSocket keeps its slot after the upgrade), and the list of connections still
//! served by hyper, from which the oldest one waiting for its client is closed
//! when a new connection arrives at the cap.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;
use vwed_base::sync::Locked;

use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use super::state::ConnState;

/// How often a new connection waiting at the cap looks again for someone to close.
const RETRY_AT_CAP: Duration = Duration::from_millis(100);

pub struct Slots {
    cap: usize,
    permits: Arc<Semaphore>,
    conns: Mutex<HashMap<u64, Arc<ConnState>>>,
    next_id: AtomicU64,
}

/// Removes its connection from the list when dropped.
pub struct Registration {
    pub state: Arc<ConnState>,
    id: u64,
}

impl Drop for Registration {
    fn drop(&mut self) {
        self.state.shared.slots.lock().remove(&self.id);
    }
}

impl Slots {
    pub fn new(cap: usize) -> Slots {
        Slots {
            cap,
            permits: Arc::new(Semaphore::new(cap)),
            conns: Mutex::new(HashMap::new()),
            next_id: AtomicU64::new(0),
        }
    }

    pub fn cap(&self) -> usize {
        self.cap
    }

    /// Connections open, WebSockets included.
    pub fn open(&self) -> usize {
        self.cap.saturating_sub(self.permits.available_permits())
    }

    fn lock(&self) -> MutexGuard<'_, HashMap<u64, Arc<ConnState>>> {
        self.conns.locked()
    }

    /// A slot for a new connection. At the cap, closes the connection that has
    /// waited longest for its client (an idle keep-alive or a head that is not
    /// coming) and takes its slot; if every connection is busy, calls `on_wait`
    /// and waits.
    pub async fn take(&self, on_wait: impl FnOnce()) -> OwnedSemaphorePermit {
        if let Ok(p) = self.permits.clone().try_acquire_owned() {
            return p;
        }
        let mut on_wait = Some(on_wait);
        loop {
            if !self.evict_oldest_waiting()
                && let Some(f) = on_wait.take()
            {
                f();
            }
            let wait = self.permits.clone().acquire_owned();
            if let Ok(Ok(p)) = tokio::time::timeout(RETRY_AT_CAP, wait).await {
                return p;
            }
        }
    }

    /// Asks the connection waiting longest for its client to close; false if
    /// none is waiting.
    pub fn evict_oldest_waiting(&self) -> bool {
        let conns = self.lock();
        let oldest = conns
            .values()
            .filter_map(|c| c.waiting_since().map(|t| (t, c)))
            .min_by_key(|(t, _)| *t);
        match oldest {
            Some((_, c)) => {
                c.evict();
                true
            }
            None => false,
        }
    }

    /// Lists a new connection; done by the accept loop before the connection's
    /// task runs, so that [`Slots::stop_all`] reaches every connection.
    pub fn register(&self, state: Arc<ConnState>) -> Registration {
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        self.lock().insert(id, state.clone());
        Registration { state, id }
    }

    /// Asks every connection still served to finish.
    pub fn stop_all(&self) {
        for c in self.lock().values() {
            c.stop();
        }
    }
}
