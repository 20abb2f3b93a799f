//! One master per physical bus.
//!
//! A bus (an RTU line, a TCP connection, a serial line) can carry one request
//! at a time. Every user of the bus (the poller, each script, the write path)
//! gets its own bounded queue; the master serves the queues round robin so a
//! chatty client cannot starve another, and a full queue is an immediate,
//! named error instead of a silent stall.
//!
//! The master owns the connection. Any transport error drops it and the
//! master reconnects with a capped exponential backoff, so polling always
//! resumes by itself once the device is back. While the bus is down, queued
//! and new requests fail at once with `NotConnected`: a write that waited
//! out an outage and reached the machine minutes later would be worse than
//! an error the caller can see.

use std::collections::VecDeque;
use std::future::Future;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use tokio::sync::{Notify, oneshot, watch};
use tokio::task::JoinHandle;

use crate::error::{ErrorKind, HalError};
use crate::status::{BusStatus, ConnectionState};

/// Opens connections to one bus. Called again after every transport error.
pub trait Connector: Send + 'static {
    type Link: Exchange;

    /// Human-readable description of the far end, for status and errors.
    fn target(&self) -> String;

    fn connect(&mut self) -> impl Future<Output = Result<Self::Link, HalError>> + Send;
}

/// A live connection that carries one request at a time.
pub trait Exchange: Send + 'static {
    type Request: Send + 'static;
    type Response: Send + 'static;

    /// An `Err` means the link is unusable and will be dropped.
    fn exchange(
        &mut self,
        request: Self::Request,
    ) -> impl Future<Output = Result<Self::Response, HalError>> + Send;

    /// Lets the master count device-level refusals apart from successes.
    fn is_exception(_response: &Self::Response) -> bool {
        false
    }
}

#[derive(Debug, Clone)]
pub struct MasterConfig {
    pub backoff_initial: Duration,
    /// Kept at or below 1 s so a returning device is polled again within
    /// about a second plus one connect attempt.
    pub backoff_max: Duration,
}

impl Default for MasterConfig {
    fn default() -> Self {
        Self {
            backoff_initial: Duration::from_millis(100),
            backoff_max: Duration::from_secs(1),
        }
    }
}

type Reply<Resp> = oneshot::Sender<Result<Resp, HalError>>;

struct Job<Req, Resp> {
    request: Req,
    reply: Reply<Resp>,
}

struct ClientQueue<Req, Resp> {
    id: u64,
    pending: VecDeque<Job<Req, Resp>>,
    capacity: usize,
}

struct Queues<Req, Resp> {
    clients: Vec<ClientQueue<Req, Resp>>,
    cursor: usize,
    next_id: u64,
    closed: bool,
    /// `Some(reason)` while the bus is waiting out a backoff.
    down: Option<String>,
}

impl<Req, Resp> Queues<Req, Resp> {
    fn pop_round_robin(&mut self) -> Option<Job<Req, Resp>> {
        let n = self.clients.len();
        for step in 0..n {
            let idx = (self.cursor + step) % n;
            if let Some(job) = self.clients[idx].pending.pop_front() {
                self.cursor = (idx + 1) % n;
                return Some(job);
            }
        }
        None
    }

    fn drain_all(&mut self) -> Vec<Job<Req, Resp>> {
        self.clients
            .iter_mut()
            .flat_map(|c| c.pending.drain(..))
            .collect()
    }
}

struct Shared<Req, Resp> {
    name: String,
    queues: Mutex<Queues<Req, Resp>>,
    wake: Notify,
    status: watch::Sender<BusStatus>,
}

impl<Req, Resp> Shared<Req, Resp> {
    fn lock(&self) -> MutexGuard<'_, Queues<Req, Resp>> {
        // A panic while holding this lock cannot leave the queues half
        // updated (every critical section is a few push/pop calls), so keep
        // serving rather than poisoning the whole bus.
        self.queues.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Updates counters without waking status watchers; only state and
    /// error changes notify.
    fn count(&self, f: impl FnOnce(&mut BusStatus)) {
        self.status.send_if_modified(|s| {
            f(s);
            false
        });
    }

    async fn next_job(&self) -> Option<Job<Req, Resp>> {
        loop {
            {
                let mut q = self.lock();
                if q.closed {
                    return None;
                }
                if let Some(job) = q.pop_round_robin() {
                    return Some(job);
                }
            }
            // notify_one stores a permit when nobody waits, so a request
            // queued between the check above and this await is not missed.
            self.wake.notified().await;
        }
    }

    fn go_down(&self, reason: &HalError) {
        let jobs = {
            let mut q = self.lock();
            q.down = Some(reason.to_string());
            q.drain_all()
        };
        let failed = jobs.len() as u64;
        for job in jobs {
            let _ = job.reply.send(Err(self.not_connected(&reason.to_string())));
        }
        self.count(|s| s.counters.rejected_not_connected += failed);
    }

    fn come_up(&self) {
        self.lock().down = None;
    }

    fn not_connected(&self, reason: &str) -> HalError {
        HalError::NotConnected {
            bus: self.name.clone(),
            reason: reason.to_owned(),
        }
    }

    fn close(&self) {
        let jobs = {
            let mut q = self.lock();
            q.closed = true;
            q.drain_all()
        };
        for job in jobs {
            let _ = job.reply.send(Err(HalError::Closed(self.name.clone())));
        }
        self.status
            .send_if_modified(|s| s.set_state(ConnectionState::Closed));
        self.wake.notify_one();
    }
}

/// Stops the master when the last [`Bus`] handle goes away.
struct Guard<Req, Resp> {
    shared: Arc<Shared<Req, Resp>>,
    task: JoinHandle<()>,
}

impl<Req, Resp> Drop for Guard<Req, Resp> {
    fn drop(&mut self) {
        self.task.abort();
        self.shared.close();
    }
}

/// Handle to a running bus master. Cheap to clone; the master stops when
/// the last handle is dropped or [`Bus::shutdown`] is called.
pub struct Bus<Req, Resp> {
    shared: Arc<Shared<Req, Resp>>,
    guard: Arc<Guard<Req, Resp>>,
}

impl<Req, Resp> Clone for Bus<Req, Resp> {
    fn clone(&self) -> Self {
        Self {
            shared: Arc::clone(&self.shared),
            guard: Arc::clone(&self.guard),
        }
    }
}

impl<Req, Resp> std::fmt::Debug for Bus<Req, Resp> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Bus")
            .field("name", &self.shared.name)
            .finish()
    }
}

impl<Req: Send + 'static, Resp: Send + 'static> Bus<Req, Resp> {
    /// Starts the master task. Must be called from within a Tokio runtime.
    pub fn spawn<C>(name: &str, connector: C, config: MasterConfig) -> Self
    where
        C: Connector,
        C::Link: Exchange<Request = Req, Response = Resp>,
    {
        let (status, _) = watch::channel(BusStatus::new(name, &connector.target()));
        let shared = Arc::new(Shared {
            name: name.to_owned(),
            queues: Mutex::new(Queues {
                clients: Vec::new(),
                cursor: 0,
                next_id: 0,
                closed: false,
                down: None,
            }),
            wake: Notify::new(),
            status,
        });
        let task = tokio::spawn(run(Arc::clone(&shared), connector, config));
        let guard = Arc::new(Guard {
            shared: Arc::clone(&shared),
            task,
        });
        Self { shared, guard }
    }
}

impl<Req, Resp> Bus<Req, Resp> {
    pub fn name(&self) -> &str {
        &self.shared.name
    }

    /// Registers a new client with its own bounded queue.
    pub fn client(&self, name: &str, capacity: usize) -> BusClient<Req, Resp> {
        let name: Arc<str> = Arc::from(name);
        let mut q = self.shared.lock();
        let id = q.next_id;
        q.next_id += 1;
        q.clients.push(ClientQueue {
            id,
            pending: VecDeque::new(),
            capacity: capacity.max(1),
        });
        BusClient {
            shared: Arc::clone(&self.shared),
            id,
            name,
        }
    }

    pub fn status(&self) -> watch::Receiver<BusStatus> {
        self.shared.status.subscribe()
    }

    pub fn status_now(&self) -> BusStatus {
        self.shared.status.borrow().clone()
    }

    /// Fails everything queued and stops the master.
    pub fn shutdown(&self) {
        self.guard.task.abort();
        self.shared.close();
    }
}

/// One caller's queue on a bus. Not `Clone`: give each independent caller
/// its own client so the master can be fair between them.
pub struct BusClient<Req, Resp> {
    shared: Arc<Shared<Req, Resp>>,
    id: u64,
    name: Arc<str>,
}

impl<Req, Resp> std::fmt::Debug for BusClient<Req, Resp> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BusClient")
            .field("bus", &self.shared.name)
            .field("client", &self.name)
            .finish()
    }
}

impl<Req, Resp> BusClient<Req, Resp> {
    pub fn bus_name(&self) -> &str {
        &self.shared.name
    }

    pub fn client_name(&self) -> &str {
        &self.name
    }

    /// Queues a request and waits for its answer. Dropping the future
    /// withdraws the request if the master has not started it yet.
    pub async fn submit(&self, request: Req) -> Result<Resp, HalError> {
        let (tx, rx) = oneshot::channel();
        {
            let mut q = self.shared.lock();
            if q.closed {
                return Err(HalError::Closed(self.shared.name.clone()));
            }
            if let Some(reason) = q.down.clone() {
                drop(q);
                self.shared
                    .count(|s| s.counters.rejected_not_connected += 1);
                return Err(self.shared.not_connected(&reason));
            }
            let Some(queue) = q.clients.iter_mut().find(|c| c.id == self.id) else {
                return Err(HalError::Closed(self.shared.name.clone()));
            };
            if queue.pending.len() >= queue.capacity {
                let capacity = queue.capacity;
                drop(q);
                self.shared.count(|s| s.counters.rejected_queue_full += 1);
                return Err(HalError::QueueFull {
                    bus: self.shared.name.clone(),
                    client: self.name.to_string(),
                    capacity,
                });
            }
            queue.pending.push_back(Job { request, reply: tx });
        }
        self.shared.wake.notify_one();
        rx.await
            .unwrap_or_else(|_| Err(HalError::Closed(self.shared.name.clone())))
    }
}

impl<Req, Resp> Drop for BusClient<Req, Resp> {
    fn drop(&mut self) {
        let mut q = self.shared.lock();
        if let Some(idx) = q.clients.iter().position(|c| c.id == self.id) {
            q.clients.remove(idx);
            if idx < q.cursor {
                q.cursor -= 1;
            }
            if q.cursor >= q.clients.len() {
                q.cursor = 0;
            }
        }
    }
}

type SharedFor<L> = Shared<<L as Exchange>::Request, <L as Exchange>::Response>;

async fn run<C: Connector>(
    shared: Arc<SharedFor<C::Link>>,
    mut connector: C,
    config: MasterConfig,
) {
    let mut backoff = config.backoff_initial;
    // Set while reopening a link that was fine a moment ago; the state
    // stays Connected unless the reopen fails, so one silent unit on a
    // shared RTU line does not make the whole bus flap in the status.
    let mut quiet = false;
    loop {
        shared.status.send_if_modified(|s| {
            s.counters.connect_attempts += 1;
            !quiet && s.set_state(ConnectionState::Connecting)
        });
        let failure = match connector.connect().await {
            Ok(link) => {
                shared.come_up();
                shared
                    .status
                    .send_if_modified(|s| s.set_state(ConnectionState::Connected));
                match serve(&shared, link).await {
                    None => return,
                    // The link worked before it broke, or one device on it
                    // did not answer (on a shared RTU line the others may
                    // be fine): reopen at once. A dead far end shows up as
                    // a failing connect and backs off there.
                    Some((err, served)) if served || err.kind() == ErrorKind::Timeout => {
                        if served {
                            backoff = config.backoff_initial;
                        }
                        quiet = true;
                        continue;
                    }
                    Some((err, _)) => err,
                }
            }
            Err(err) => {
                shared.status.send_modify(|s| {
                    s.counters.connect_failures += 1;
                    s.record_error(&err);
                });
                err
            }
        };
        quiet = false;
        shared.go_down(&failure);
        shared
            .status
            .send_if_modified(|s| s.set_state(ConnectionState::Disconnected));
        tokio::time::sleep(backoff).await;
        backoff = (backoff * 2).min(config.backoff_max);
    }
}

/// Serves requests until the link fails (returns the error and whether any
/// request succeeded on this link) or the bus closes (returns `None`).
async fn serve<L: Exchange>(
    shared: &Shared<L::Request, L::Response>,
    mut link: L,
) -> Option<(HalError, bool)> {
    let mut served = false;
    loop {
        let job = shared.next_job().await?;
        if job.reply.is_closed() {
            continue;
        }
        match link.exchange(job.request).await {
            Ok(response) => {
                let exception = L::is_exception(&response);
                shared.count(|s| {
                    s.counters.responses += 1;
                    if exception {
                        s.counters.exceptions += 1;
                    }
                });
                let _ = job.reply.send(Ok(response));
                served = true;
            }
            Err(err) => {
                shared.status.send_modify(|s| {
                    s.counters.transport_errors += 1;
                    if matches!(err, HalError::Timeout(_)) {
                        s.counters.timeouts += 1;
                    }
                    s.record_error(&err);
                });
                let _ = job.reply.send(Err(err.clone()));
                return Some((err, served));
            }
        }
    }
}
