//! Discards input that arrived before a request was sent.
//!
//! Serial protocols (Modbus RTU, text lines) have no transaction ids: a
//! reply that arrives after its request timed out would otherwise be read
//! as the answer to the next request, silently returning the wrong data.

use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::task::{Context, Poll};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

/// Tells a [`StaleInputGuard`] that the next write starts a new request.
#[derive(Debug, Clone, Default)]
pub(crate) struct NewRequest {
    pending: Arc<AtomicBool>,
    discarded: Arc<AtomicU64>,
}

impl NewRequest {
    pub(crate) fn mark(&self) {
        self.pending.store(true, Ordering::Release);
    }

    pub(crate) fn discarded_bytes(&self) -> u64 {
        self.discarded.load(Ordering::Relaxed)
    }
}

/// Wraps a byte stream; on the first write after [`NewRequest::mark`] it
/// reads and drops whatever input is already waiting.
#[derive(Debug)]
pub(crate) struct StaleInputGuard<S> {
    inner: S,
    signal: NewRequest,
}

impl<S> StaleInputGuard<S> {
    pub(crate) fn new(inner: S, signal: NewRequest) -> Self {
        Self { inner, signal }
    }
}

impl<S: AsyncRead + Unpin> StaleInputGuard<S> {
    fn drain(&mut self, cx: &mut Context<'_>) {
        let mut scratch = [0u8; 256];
        loop {
            let mut buf = ReadBuf::new(&mut scratch);
            match Pin::new(&mut self.inner).poll_read(cx, &mut buf) {
                Poll::Ready(Ok(())) if !buf.filled().is_empty() => {
                    self.signal
                        .discarded
                        .fetch_add(buf.filled().len() as u64, Ordering::Relaxed);
                }
                // Nothing waiting (Pending), end of stream or an error: the
                // request's own read will see the latter two.
                _ => return,
            }
        }
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for StaleInputGuard<S> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_read(cx, buf)
    }
}

impl<S: AsyncRead + AsyncWrite + Unpin> AsyncWrite for StaleInputGuard<S> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        if self.signal.pending.swap(false, Ordering::AcqRel) {
            self.drain(cx);
        }
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    #[tokio::test]
    async fn input_waiting_before_a_request_is_dropped() {
        let (ours, mut peer) = tokio::io::duplex(256);
        let signal = NewRequest::default();
        let mut guarded = StaleInputGuard::new(ours, signal.clone());
        peer.write_all(b"late answer").await.expect("write");
        tokio::task::yield_now().await;
        signal.mark();
        guarded.write_all(b"Q").await.expect("write");
        peer.write_all(b"fresh").await.expect("write");
        let mut got = [0u8; 5];
        guarded.read_exact(&mut got).await.expect("read");
        assert_eq!(&got, b"fresh");
        assert_eq!(signal.discarded_bytes(), 11);
    }
}
