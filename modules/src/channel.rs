//! The worker's end of the supervisor socket.
//!
//! Reads are non-blocking (`MSG_DONTWAIT`) so that the asyncio loop can drain
//! whatever is there when the fd turns readable; a synchronous `VWED.*` call instead
//! waits for its own answer and parks every other message in `stash` until the loop
//! gets to it. Writes are buffered and flushed once per batch: one syscall answers
//! many requests under load.

use std::collections::VecDeque;
use std::io;
use std::os::fd::RawFd;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use vwed_ipc::{
    FrameDecoder, FrameError, FromWorker, Json, ServiceError, ServiceErrorKind, ToWorker,
    encode_into,
};

#[derive(Debug, thiserror::Error)]
pub enum ChannelError {
    #[error("the supervisor closed the channel")]
    Closed,
    #[error("channel I/O failed: {0}")]
    Io(#[from] io::Error),
    #[error("{0}")]
    Frame(#[from] FrameError),
    #[error("no answer from the supervisor within {0:?}")]
    Timeout(Duration),
    #[error("worker channel not initialised")]
    NotInstalled,
}

impl From<ChannelError> for ServiceError {
    fn from(e: ChannelError) -> Self {
        let kind = match e {
            ChannelError::Timeout(_) => ServiceErrorKind::Timeout,
            ChannelError::Closed | ChannelError::Io(_) => ServiceErrorKind::Transport,
            ChannelError::Frame(_) | ChannelError::NotInstalled => ServiceErrorKind::Internal,
        };
        ServiceError::new(kind, e.to_string())
    }
}

pub struct Channel {
    fd: RawFd,
    dec: FrameDecoder,
    out: Vec<u8>,
    stash: VecDeque<ToWorker>,
    next_req: u64,
    eof: bool,
    last_flush: Instant,
}

static CHANNEL: Mutex<Option<Channel>> = Mutex::new(None);

pub fn install(fd: RawFd) {
    let ch = Channel {
        fd,
        dec: FrameDecoder::new(),
        out: Vec::with_capacity(64 * 1024),
        stash: VecDeque::new(),
        next_req: 1,
        eof: false,
        last_flush: Instant::now(),
    };
    *lock() = Some(ch);
}

fn lock() -> std::sync::MutexGuard<'static, Option<Channel>> {
    // A panic while holding the lock leaves the data usable: frames are only appended.
    CHANNEL.lock().unwrap_or_else(|p| p.into_inner())
}

pub fn with<R>(f: impl FnOnce(&mut Channel) -> Result<R, ChannelError>) -> Result<R, ChannelError> {
    let mut g = lock();
    let ch = g.as_mut().ok_or(ChannelError::NotInstalled)?;
    f(ch)
}

impl Channel {
    pub fn fd(&self) -> RawFd {
        self.fd
    }

    pub fn next_req(&mut self) -> u64 {
        let r = self.next_req;
        self.next_req += 1;
        r
    }

    pub fn send(&mut self, msg: &FromWorker) -> Result<(), ChannelError> {
        encode_into(msg, &mut self.out)?;
        Ok(())
    }

    /// Sends and flushes if the buffer has waited long enough: a handler that runs for
    /// seconds still streams its output.
    pub fn send_soon(&mut self, msg: &FromWorker) -> Result<(), ChannelError> {
        self.send(msg)?;
        if self.out.len() > 256 * 1024 || self.last_flush.elapsed() > Duration::from_millis(20) {
            self.flush()?;
        }
        Ok(())
    }

    pub fn has_output(&self) -> bool {
        !self.out.is_empty()
    }

    pub fn flush(&mut self) -> Result<(), ChannelError> {
        let mut off = 0;
        while off < self.out.len() {
            let rest = &self.out[off..];
            // SAFETY: `rest` is a valid initialised buffer for its length.
            let n = unsafe { libc::write(self.fd, rest.as_ptr().cast(), rest.len()) };
            if n < 0 {
                let e = io::Error::last_os_error();
                match e.kind() {
                    io::ErrorKind::Interrupted => continue,
                    io::ErrorKind::WouldBlock => {
                        wait_fd(self.fd, libc::POLLOUT, None)?;
                        continue;
                    }
                    io::ErrorKind::BrokenPipe => return Err(ChannelError::Closed),
                    _ => return Err(e.into()),
                }
            }
            off += n as usize;
        }
        self.out.clear();
        // One large reply or burst of output must not keep its buffer.
        self.out.shrink_to(1024 * 1024);
        self.last_flush = Instant::now();
        Ok(())
    }

    pub fn has_stash(&self) -> bool {
        !self.stash.is_empty()
    }

    pub fn is_eof(&self) -> bool {
        self.eof
    }

    /// Reads what is available without blocking. Returns false at end of stream.
    fn fill(&mut self) -> Result<bool, ChannelError> {
        loop {
            let spare = self.dec.spare(64 * 1024);
            // SAFETY: `spare` is a valid writable buffer for its length.
            let n = unsafe {
                libc::recv(
                    self.fd,
                    spare.as_mut_ptr().cast(),
                    spare.len(),
                    libc::MSG_DONTWAIT,
                )
            };
            if n < 0 {
                self.dec.commit(0);
                let e = io::Error::last_os_error();
                match e.kind() {
                    io::ErrorKind::Interrupted => continue,
                    io::ErrorKind::WouldBlock => return Ok(true),
                    _ => return Err(e.into()),
                }
            }
            self.dec.commit(n as usize);
            if n == 0 {
                self.eof = true;
                return Ok(false);
            }
        }
    }

    /// Everything that has arrived so far, stashed messages first.
    pub fn drain(&mut self) -> Result<Vec<ToWorker>, ChannelError> {
        self.fill()?;
        let mut msgs: Vec<ToWorker> = self.stash.drain(..).collect();
        while let Some(m) = self.dec.next_frame()? {
            msgs.push(m);
        }
        Ok(msgs)
    }

    /// Blocks until at least one message or end of stream.
    pub fn drain_blocking(&mut self) -> Result<Vec<ToWorker>, ChannelError> {
        loop {
            let msgs = self.drain()?;
            if !msgs.is_empty() || self.eof {
                return Ok(msgs);
            }
            wait_fd(self.fd, libc::POLLIN, None)?;
        }
    }

    /// Sends `msg` (which carries `req`) and waits for the supervisor's answer.
    pub fn request(
        &mut self,
        req: u64,
        msg: &FromWorker,
        timeout: Duration,
    ) -> Result<Result<Json, ServiceError>, ChannelError> {
        self.send(msg)?;
        self.flush()?;
        let deadline = Instant::now() + timeout;
        loop {
            while let Some(m) = self.dec.next_frame::<ToWorker>()? {
                match m {
                    ToWorker::Reply { req: r, result } if r == req => return Ok(result),
                    other => self.stash.push_back(other),
                }
            }
            if self.eof {
                return Err(ChannelError::Closed);
            }
            let now = Instant::now();
            if now >= deadline {
                return Err(ChannelError::Timeout(timeout));
            }
            wait_fd(self.fd, libc::POLLIN, Some(deadline - now))?;
            if !self.fill()? {
                // Decode what came before the end of stream, then report it.
                continue;
            }
        }
    }
}

fn wait_fd(fd: RawFd, events: i16, timeout: Option<Duration>) -> Result<(), ChannelError> {
    let mut pfd = libc::pollfd {
        fd,
        events,
        revents: 0,
    };
    let ms = timeout.map_or(-1, |t| t.as_millis().min(i32::MAX as u128) as i32);
    loop {
        // SAFETY: one valid pollfd.
        let r = unsafe { libc::poll(&mut pfd, 1, ms) };
        if r < 0 {
            let e = io::Error::last_os_error();
            if e.kind() == io::ErrorKind::Interrupted {
                continue;
            }
            return Err(e.into());
        }
        return Ok(());
    }
}
