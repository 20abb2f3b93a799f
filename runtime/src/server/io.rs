//! The socket under hyper: plain TCP or TLS, holding the connection's slot until
//! it closes (also after a WebSocket upgrade took it over), telling the
//! connection state when a new request begins, and lingering after a 408 so the
//! client reads the answer instead of a reset.

use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, ready};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;
use tokio::sync::OwnedSemaphorePermit;
use tokio::time::Sleep;
use tokio_rustls::server::TlsStream;

use super::state::ConnState;

/// After a 408, how long unread body bytes are read and dropped before the close.
/// Closing with unread bytes makes the kernel send a reset, and a client still
/// sending would see that instead of the 408.
const LINGER: Duration = Duration::from_secs(2);
/// Most bytes read and dropped while lingering.
const LINGER_MAX_BYTES: usize = 1024 * 1024;

pub enum Stream {
    Plain(TcpStream),
    Tls(Box<TlsStream<TcpStream>>),
}

pub struct TrackedIo {
    stream: Stream,
    state: Arc<ConnState>,
    close: Close,
    _slot: OwnedSemaphorePermit,
}

enum Close {
    Open,
    Lingering {
        until: Pin<Box<Sleep>>,
        dropped: usize,
    },
    Done,
}

impl TrackedIo {
    pub fn new(stream: Stream, state: Arc<ConnState>, slot: OwnedSemaphorePermit) -> TrackedIo {
        TrackedIo {
            stream,
            state,
            close: Close::Open,
            _slot: slot,
        }
    }
}

impl Stream {
    fn pinned(&mut self) -> Pin<&mut (dyn AsyncReadWrite + Send)> {
        match self {
            Stream::Plain(s) => Pin::new(s),
            Stream::Tls(s) => Pin::new(s.as_mut()),
        }
    }

    /// Reads and drops what the client still sends, until it closes, the time is
    /// up or enough was dropped.
    fn poll_linger(
        &mut self,
        cx: &mut Context<'_>,
        until: &mut Pin<Box<Sleep>>,
        dropped: &mut usize,
    ) -> Poll<()> {
        let mut buf = [0u8; 4096];
        loop {
            if until.as_mut().poll(cx).is_ready() || *dropped >= LINGER_MAX_BYTES {
                return Poll::Ready(());
            }
            let mut rb = ReadBuf::new(&mut buf);
            match ready!(self.pinned().poll_read(cx, &mut rb)) {
                Ok(()) if !rb.filled().is_empty() => *dropped += rb.filled().len(),
                _ => return Poll::Ready(()),
            }
        }
    }
}

trait AsyncReadWrite: AsyncRead + AsyncWrite + Unpin {}
impl<T: AsyncRead + AsyncWrite + Unpin> AsyncReadWrite for T {}

impl AsyncRead for TrackedIo {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let before = buf.filled().len();
        ready!(this.stream.pinned().poll_read(cx, buf))?;
        if buf.filled().len() > before {
            this.state.on_read();
        }
        Poll::Ready(Ok(()))
    }
}

impl AsyncWrite for TrackedIo {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        self.get_mut().stream.pinned().poll_write(cx, buf)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        self.get_mut().stream.pinned().poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        match &self.stream {
            Stream::Plain(s) => s.is_write_vectored(),
            Stream::Tls(s) => s.is_write_vectored(),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.get_mut().stream.pinned().poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        loop {
            match &mut this.close {
                Close::Open if !this.state.lingers() => {
                    return this.stream.pinned().poll_shutdown(cx);
                }
                Close::Open => {
                    ready!(this.stream.pinned().poll_shutdown(cx))?;
                    this.state.on_linger();
                    this.close = Close::Lingering {
                        until: Box::pin(tokio::time::sleep(LINGER)),
                        dropped: 0,
                    };
                }
                Close::Lingering { until, dropped } => {
                    ready!(this.stream.poll_linger(cx, until, dropped));
                    this.close = Close::Done;
                }
                Close::Done => return Poll::Ready(Ok(())),
            }
        }
    }
}
