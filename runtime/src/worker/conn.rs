//! The supervisor's end of a worker socket.
//!
//! Callers on any executor thread encode their request and hand the bytes to one
//! writer task, which batches whatever is queued into a single write. One reader task
//! decodes answers and completes the caller's oneshot; everything else the worker
//! says goes to the [`FrameSink`] of the script.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

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
    #[error("脚本繁忙: 已有 {0} 个请求在等待")]
    Busy(usize),
}

/// Requests one worker may have waiting at once. A flood against a slow script is
/// refused beyond this instead of queueing without bound.
pub const MAX_PENDING: usize = 10_000;

/// Receives everything a worker says that is not an answer to a request.
pub trait FrameSink: Send + Sync + 'static {
    fn on_frame(&self, conn: &Arc<WorkerConn>, msg: FromWorker);
    /// The channel closed (the worker exited or broke the protocol).
    fn on_closed(&self, conn: &Arc<WorkerConn>);
}

pub struct WorkerConn {
    tx: mpsc::UnboundedSender<Vec<u8>>,
    pending: Mutex<HashMap<u64, oneshot::Sender<Answer>>>,
    next_req: AtomicU64,
    alive: AtomicBool,
    /// Unix time (s) of the last frame from the worker.
    last_seen_ms: AtomicU64,
}

impl WorkerConn {
    pub fn start(stream: UnixStream, sink: Arc<dyn FrameSink>) -> Arc<WorkerConn> {
        let (rd, wr) = stream.into_split();
        let (tx, rx) = mpsc::unbounded_channel();
        let conn = Arc::new(WorkerConn {
            tx,
            pending: Mutex::new(HashMap::new()),
            next_req: AtomicU64::new(1),
            alive: AtomicBool::new(true),
            last_seen_ms: AtomicU64::new(crate::clock::unix_ms()),
        });
        tokio::spawn(write_loop(wr, rx));
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

    /// Fire and forget.
    pub fn send(&self, msg: &ToWorker) -> Result<(), CallError> {
        let bytes = encode(msg).map_err(|e| CallError::Encode(e.to_string()))?;
        self.tx.send(bytes).map_err(|_| CallError::Gone)
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
        let (otx, orx) = oneshot::channel();
        {
            let mut pending = self.lock_pending();
            if pending.len() >= MAX_PENDING {
                return Err(CallError::Busy(pending.len()));
            }
            pending.insert(req, otx);
        }
        if let Err(e) = self.send(msg) {
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
                self.lock_pending().remove(&req);
                let _ = self.send(&ToWorker::Cancel { req });
                Err(CallError::Timeout(timeout.as_millis() as u64))
            }
        }
    }

    fn lock_pending(&self) -> std::sync::MutexGuard<'_, HashMap<u64, oneshot::Sender<Answer>>> {
        self.pending.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn complete(&self, req: u64, answer: Answer) {
        if let Some(tx) = self.lock_pending().remove(&req) {
            let _ = tx.send(answer);
        }
    }

    fn close(&self) {
        self.alive.store(false, Ordering::Release);
        // Dropping the senders wakes every waiter with `Gone`.
        self.lock_pending().clear();
    }
}

async fn write_loop(
    mut wr: tokio::net::unix::OwnedWriteHalf,
    mut rx: mpsc::UnboundedReceiver<Vec<u8>>,
) {
    let mut buf: Vec<u8> = Vec::with_capacity(64 * 1024);
    while let Some(first) = rx.recv().await {
        buf.extend_from_slice(&first);
        while buf.len() < 1024 * 1024 {
            match rx.try_recv() {
                Ok(more) => buf.extend_from_slice(&more),
                Err(_) => break,
            }
        }
        if wr.write_all(&buf).await.is_err() {
            return;
        }
        buf.clear();
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
            .store(crate::clock::unix_ms(), Ordering::Relaxed);
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
