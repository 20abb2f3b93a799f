//! The supervisor's end of a worker socket.
//!
//! Callers on any executor thread encode their request and hand the bytes to one
//! writer task, which batches whatever is queued into a single write. One reader task
//! decodes answers and completes the caller's oneshot; everything else the worker
//! says goes to the [`FrameSink`] of the script.
//!
//! The queue to the writer is bounded by bytes, not by a channel's slot count:
//! requests (routes, calls, events, timers, pings) beyond [`MAX_QUEUED_BYTES`]
//! are refused with [`CallError::Busy`]. Control frames and replies to the
//! worker's own requests always pass; they are paced by the worker, which
//! waits for each reply it asked for.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use vwed_base::sync::Locked;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::UnixStream;
use tokio::sync::{mpsc, oneshot};
use vwed_ipc::{FrameDecoder, FromWorker, Json, RouteReply, ScriptError, ToWorker, encode};

/// What a worker answered.
#[derive(Debug)]
pub enum Answer {
    Route(RouteReply),
    Call(Result<Json, ScriptError>),
    Done(Result<(), String>),
}

#[derive(Debug, thiserror::Error)]
pub enum CallError {
    #[error("执行超时 ({0} ms)")]
    Timeout(u64),
    #[error("脚本进程已退出")]
    Gone,
    #[error("请求无法编码: {0}")]
    Encode(String),
    #[error("脚本应答类型错误")]
    Protocol,
    #[error("脚本繁忙: {0}")]
    Busy(Backlog),
}

/// What a busy worker has too much of.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum Backlog {
    #[error("已有 {0} 个请求在等待")]
    Requests(usize),
    #[error("待发送的数据已达 {0} 字节")]
    Bytes(usize),
}

/// Requests one worker may have waiting at once. A flood against a slow script is
/// refused beyond this instead of queueing without bound.
pub const MAX_PENDING: usize = 10_000;

/// Bytes of frames that may wait for one worker (queued, or taken by the writer
/// and not yet written). A frame always passes when nothing waits, so a single
/// request of any accepted body size gets through.
pub const MAX_QUEUED_BYTES: usize = 16 * 1024 * 1024;

/// A worker that let a request time out and has not been seen free since: it is
/// still in a handler (or a backlog of them) past the caller's timeout.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Busy {
    /// Unix time (ms) of the first timeout.
    pub since_ms: u64,
    /// What timed out: route, function, event or timer.
    pub work: &'static str,
    pub timeout_ms: u64,
}

/// What kind of work a request is, for [`Busy`]; `None` for probes.
fn work_of(msg: &ToWorker) -> Option<&'static str> {
    match msg {
        ToWorker::Route(_) => Some("route"),
        ToWorker::Call { .. } => Some("function"),
        ToWorker::Event { .. } => Some("event"),
        ToWorker::Timer { .. } => Some("timer"),
        ToWorker::Analyze { .. } => Some("analyze"),
        _ => None,
    }
}

type Pending = HashMap<u64, (oneshot::Sender<Answer>, Option<&'static str>)>;

/// Receives everything a worker says that is not an answer to a request.
pub trait FrameSink: Send + Sync + 'static {
    fn on_frame(&self, conn: &Arc<WorkerConn>, msg: FromWorker);
    /// The channel closed (the worker exited or broke the protocol).
    fn on_closed(&self, conn: &Arc<WorkerConn>);
}

pub struct WorkerConn {
    tx: mpsc::UnboundedSender<Vec<u8>>,
    /// Bytes sent to the writer and not yet written; see [`MAX_QUEUED_BYTES`].
    queued: Arc<AtomicUsize>,
    pending: Mutex<Pending>,
    next_req: AtomicU64,
    alive: AtomicBool,
    /// Unix time (ms) of the last frame from the worker.
    last_seen_ms: AtomicU64,
    busy: Mutex<Option<Busy>>,
    /// Requests the worker has answered, for its CPU priority (`priority.rs`).
    answered: AtomicU64,
    /// Woken when the worker becomes [`Busy`], for whoever watches it.
    pub overdue: tokio::sync::Notify,
}

impl WorkerConn {
    pub fn start(stream: UnixStream, sink: Arc<dyn FrameSink>) -> Arc<WorkerConn> {
        let (rd, wr) = stream.into_split();
        let (tx, rx) = mpsc::unbounded_channel();
        let queued = Arc::new(AtomicUsize::new(0));
        let conn = Arc::new(WorkerConn {
            tx,
            queued: queued.clone(),
            pending: Mutex::new(HashMap::new()),
            next_req: AtomicU64::new(1),
            alive: AtomicBool::new(true),
            last_seen_ms: AtomicU64::new(vwed_base::clock::unix_ms()),
            busy: Mutex::new(None),
            answered: AtomicU64::new(0),
            overdue: tokio::sync::Notify::new(),
        });
        tokio::spawn(write_loop(wr, rx, queued));
        tokio::spawn(read_loop(rd, conn.clone(), sink));
        conn
    }

    pub fn is_alive(&self) -> bool {
        self.alive.load(Ordering::Acquire)
    }

    pub fn last_seen_secs(&self) -> f64 {
        self.last_seen_ms.load(Ordering::Relaxed) as f64 / 1000.0
    }

    pub fn next_req(&self) -> u64 {
        self.next_req.fetch_add(1, Ordering::Relaxed)
    }

    /// Fire and forget, outside the byte budget: for control frames and replies
    /// to the worker's own requests.
    pub fn send(&self, msg: &ToWorker) -> Result<(), CallError> {
        let bytes = encode(msg).map_err(|e| CallError::Encode(e.to_string()))?;
        self.queued.fetch_add(bytes.len(), Ordering::AcqRel);
        self.push(bytes)
    }

    /// Counts `bytes` against the budget, or refuses them when it is spent.
    fn reserve(&self, bytes: usize) -> Result<(), CallError> {
        let before = self.queued.fetch_add(bytes, Ordering::AcqRel);
        if before > 0 && before + bytes > MAX_QUEUED_BYTES {
            self.queued.fetch_sub(bytes, Ordering::AcqRel);
            return Err(CallError::Busy(Backlog::Bytes(before)));
        }
        Ok(())
    }

    /// Hands counted bytes to the writer.
    fn push(&self, bytes: Vec<u8>) -> Result<(), CallError> {
        let len = bytes.len();
        self.tx.send(bytes).map_err(|_| {
            self.queued.fetch_sub(len, Ordering::AcqRel);
            CallError::Gone
        })
    }

    /// Sends a request numbered `req` and waits for its answer. On timeout the
    /// worker is told to cancel the work.
    pub async fn request(
        &self,
        req: u64,
        msg: &ToWorker,
        timeout: Duration,
    ) -> Result<Answer, CallError> {
        let rx = self.send_request(req, msg)?;
        self.wait_answer(req, rx, timeout).await
    }

    /// Sends a request now, in the caller's order; the answer arrives on the
    /// returned receiver (see [`WorkerConn::wait_answer`]).
    pub fn send_request(
        &self,
        req: u64,
        msg: &ToWorker,
    ) -> Result<oneshot::Receiver<Answer>, CallError> {
        if !self.is_alive() {
            return Err(CallError::Gone);
        }
        let bytes = encode(msg).map_err(|e| CallError::Encode(e.to_string()))?;
        let len = bytes.len();
        self.reserve(len)?;
        let (otx, orx) = oneshot::channel();
        {
            let mut pending = self.lock_pending();
            if pending.len() >= MAX_PENDING {
                self.queued.fetch_sub(len, Ordering::AcqRel);
                return Err(CallError::Busy(Backlog::Requests(pending.len())));
            }
            pending.insert(req, (otx, work_of(msg)));
        }
        if let Err(e) = self.push(bytes) {
            self.lock_pending().remove(&req);
            return Err(e);
        }
        Ok(orx)
    }

    pub async fn wait_answer(
        &self,
        req: u64,
        rx: oneshot::Receiver<Answer>,
        timeout: Duration,
    ) -> Result<Answer, CallError> {
        match tokio::time::timeout(timeout, rx).await {
            Ok(Ok(answer)) => Ok(answer),
            Ok(Err(_)) => Err(CallError::Gone),
            Err(_) => {
                let work = self.lock_pending().remove(&req).and_then(|(_, w)| w);
                let _ = self.send(&ToWorker::Cancel { req });
                let ms = timeout.as_millis() as u64;
                if let Some(work) = work {
                    self.mark_busy(work, ms);
                }
                Err(CallError::Timeout(ms))
            }
        }
    }

    /// Whether the worker's loop is free: a ping queues behind everything sent
    /// before it and is answered only when the loop gets to it. A ping that is
    /// not answered in time leaves no mark.
    pub async fn ping(&self, timeout: Duration) -> bool {
        let req = self.next_req();
        let Ok(rx) = self.send_request(req, &ToWorker::Ping { req }) else {
            return false;
        };
        match tokio::time::timeout(timeout, rx).await {
            Ok(Ok(_)) => true,
            _ => {
                self.lock_pending().remove(&req);
                false
            }
        }
    }

    fn mark_busy(&self, work: &'static str, timeout_ms: u64) {
        let mut busy = self.busy.locked();
        if busy.is_none() {
            *busy = Some(Busy {
                since_ms: vwed_base::clock::unix_ms(),
                work,
                timeout_ms,
            });
            self.overdue.notify_one();
        }
    }

    pub fn busy(&self) -> Option<Busy> {
        *self.busy.locked()
    }

    /// The worker was seen free after `seen` became busy: no longer busy, unless
    /// a newer timeout made it busy again meanwhile.
    pub fn clear_busy(&self, seen: Busy) {
        let mut busy = self.busy.locked();
        if *busy == Some(seen) {
            *busy = None;
        }
    }

    fn lock_pending(&self) -> std::sync::MutexGuard<'_, Pending> {
        self.pending.locked()
    }

    fn complete(&self, req: u64, answer: Answer) {
        if let Some((tx, _)) = self.lock_pending().remove(&req) {
            self.answered.fetch_add(1, Ordering::Relaxed);
            let _ = tx.send(answer);
        }
    }

    /// How many requests the worker has answered so far.
    pub fn answered(&self) -> u64 {
        self.answered.load(Ordering::Relaxed)
    }

    fn close(&self) {
        self.alive.store(false, Ordering::Release);
        // Dropping the senders wakes every waiter with `Gone`.
        *self.lock_pending() = HashMap::new();
        // Ends the writer, and with it the socket: an ended run's connection is
        // kept (for its state) but must not hold a descriptor.
        let _ = self.tx.send(Vec::new());
    }
}

/// The channel to this task is unbounded in slots; what bounds it is the byte
/// count `queued`, released here once the bytes are written.
async fn write_loop(
    mut wr: tokio::net::unix::OwnedWriteHalf,
    mut rx: mpsc::UnboundedReceiver<Vec<u8>>,
    queued: Arc<AtomicUsize>,
) {
    let mut buf: Vec<u8> = Vec::with_capacity(64 * 1024);
    // An empty frame is never encoded: it is `WorkerConn::close` asking us to end.
    while let Some(first) = rx.recv().await {
        if first.is_empty() {
            return;
        }
        buf.extend_from_slice(&first);
        while buf.len() < 1024 * 1024 {
            match rx.try_recv() {
                Ok(more) if more.is_empty() => return,
                Ok(more) => buf.extend_from_slice(&more),
                Err(_) => break,
            }
        }
        if wr.write_all(&buf).await.is_err() {
            return;
        }
        queued.fetch_sub(buf.len(), Ordering::AcqRel);
        buf.clear();
        // One large request body must not keep its buffer for the worker's life.
        buf.shrink_to(2 * 1024 * 1024);
    }
}

async fn read_loop(
    mut rd: tokio::net::unix::OwnedReadHalf,
    conn: Arc<WorkerConn>,
    sink: Arc<dyn FrameSink>,
) {
    let mut dec = FrameDecoder::new();
    'outer: loop {
        let spare = dec.spare(64 * 1024);
        let n = match rd.read(spare).await {
            Ok(0) | Err(_) => {
                dec.commit(0);
                break;
            }
            Ok(n) => n,
        };
        dec.commit(n);
        conn.last_seen_ms
            .store(vwed_base::clock::unix_ms(), Ordering::Relaxed);
        loop {
            match dec.next_frame::<FromWorker>() {
                Ok(Some(msg)) => match msg {
                    FromWorker::RouteReply(r) => conn.complete(r.req, Answer::Route(r)),
                    FromWorker::CallReply { req, result } => {
                        conn.complete(req, Answer::Call(result))
                    }
                    FromWorker::Done { req, result } => conn.complete(req, Answer::Done(result)),
                    other => sink.on_frame(&conn, other),
                },
                Ok(None) => break,
                Err(e) => {
                    tracing::warn!("worker sent a malformed frame, closing: {e}");
                    break 'outer;
                }
            }
        }
    }
    conn.close();
    sink.on_closed(&conn);
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Ignore;

    impl FrameSink for Ignore {
        fn on_frame(&self, _: &Arc<WorkerConn>, _: FromWorker) {}
        fn on_closed(&self, _: &Arc<WorkerConn>) {}
    }

    fn call(conn: &WorkerConn, args: &str) -> Result<oneshot::Receiver<Answer>, CallError> {
        let req = conn.next_req();
        let msg = ToWorker::Call {
            req,
            handler: 1,
            args: args.to_string(),
        };
        conn.send_request(req, &msg)
    }

    /// A worker that answers pings only while `free` says so, and never a call.
    fn fake_worker(mut theirs: UnixStream, free: Arc<AtomicBool>) {
        tokio::spawn(async move {
            let mut dec = FrameDecoder::new();
            loop {
                let n = match theirs.read(dec.spare(4096)).await {
                    Ok(0) | Err(_) => return,
                    Ok(n) => n,
                };
                dec.commit(n);
                while let Ok(Some(msg)) = dec.next_frame::<ToWorker>() {
                    if let ToWorker::Ping { req } = msg
                        && free.load(Ordering::SeqCst)
                    {
                        let done = FromWorker::Done {
                            req,
                            result: Ok(()),
                        };
                        let _ = theirs.write_all(&encode(&done).expect("encode")).await;
                    }
                }
            }
        });
    }

    #[tokio::test]
    async fn a_timed_out_call_makes_the_worker_busy_until_it_answers_a_ping() {
        let (ours, theirs) = UnixStream::pair().expect("socket pair");
        let conn = WorkerConn::start(ours, Arc::new(Ignore));
        let free = Arc::new(AtomicBool::new(false));
        fake_worker(theirs, free.clone());
        assert!(!conn.ping(Duration::from_millis(50)).await);
        assert_eq!(conn.busy(), None, "an unanswered ping leaves no mark");

        let rx = call(&conn, "{}").expect("sent");
        let req = conn.next_req() - 1;
        let r = conn.wait_answer(req, rx, Duration::from_millis(50)).await;
        assert!(matches!(r, Err(CallError::Timeout(50))), "{r:?}");
        let busy = conn.busy().expect("busy after the timeout");
        assert_eq!((busy.work, busy.timeout_ms), ("function", 50));

        assert!(!conn.ping(Duration::from_millis(50)).await);
        assert_eq!(conn.busy(), Some(busy), "still busy");
        free.store(true, Ordering::SeqCst);
        assert!(conn.ping(Duration::from_secs(5)).await);
        conn.clear_busy(busy);
        assert_eq!(conn.busy(), None);
    }

    #[tokio::test]
    async fn requests_to_a_worker_that_stopped_reading_are_refused_by_bytes() {
        let (ours, mut theirs) = UnixStream::pair().expect("socket pair");
        let conn = WorkerConn::start(ours, Arc::new(Ignore));
        let mib = "x".repeat(1024 * 1024);
        let mut accepted = Vec::new();
        let refused = loop {
            match call(&conn, &mib) {
                Ok(rx) => accepted.push(rx),
                Err(e) => break e,
            }
            assert!(
                accepted.len() < 200,
                "never refused: the queue is unbounded"
            );
            // Let the writer fill the socket and block on it.
            tokio::task::yield_now().await;
        };
        assert!(
            matches!(refused, CallError::Busy(Backlog::Bytes(n)) if n > MAX_QUEUED_BYTES / 2),
            "{refused}"
        );
        assert!(accepted.len() >= MAX_QUEUED_BYTES / mib.len() - 1);
        assert!(refused.to_string().contains("字节"), "{refused}");
        // Replies to the worker's own requests still pass.
        conn.send(&ToWorker::Reply {
            req: 1,
            result: Ok("null".into()),
        })
        .expect("replies are not budgeted");

        // Once the worker reads again, requests are taken again.
        let reader = tokio::spawn(async move {
            let mut buf = vec![0u8; 1 << 16];
            while matches!(theirs.read(&mut buf).await, Ok(n) if n > 0) {}
        });
        let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
        while call(&conn, &mib).is_err() {
            assert!(tokio::time::Instant::now() < deadline, "budget never freed");
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        reader.abort();
    }
}
