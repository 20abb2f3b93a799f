//! Devices that speak a text line protocol over a serial port: send one
//! line, read one line back, with a terminator and a timeout.

use std::future::Future;
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio_serial::SerialStream;

use crate::HalError;
use crate::master::{Bus, BusClient, Connector, Exchange};
use crate::serial_port::SerialSettings;

/// A request/response line device.
pub trait LineDevice: Send {
    /// Sends `line` (the terminator is appended) and returns the next line
    /// received, without its terminator.
    fn request(&mut self, line: &str) -> impl Future<Output = Result<String, HalError>> + Send;

    /// Sends `line` without waiting for an answer.
    fn send(&mut self, line: &str) -> impl Future<Output = Result<(), HalError>> + Send;
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LineRequest {
    pub line: String,
    pub expect_reply: bool,
}

/// Longest line we buffer; a peer that never sends the terminator must not
/// grow memory without bound.
const MAX_LINE: usize = 64 * 1024;

/// A line protocol over any byte stream (a serial port in production, a
/// pty in tests).
#[derive(Debug)]
pub struct LineLink<S> {
    stream: S,
    terminator: Vec<u8>,
    timeout: Duration,
    buffer: Vec<u8>,
}

impl<S: AsyncRead + AsyncWrite + Unpin + Send + 'static> LineLink<S> {
    pub fn new(stream: S, terminator: &[u8], timeout: Duration) -> Self {
        Self {
            stream,
            terminator: if terminator.is_empty() {
                b"\n".to_vec()
            } else {
                terminator.to_vec()
            },
            timeout,
            buffer: Vec::new(),
        }
    }

    async fn write_line(&mut self, line: &str) -> Result<(), HalError> {
        if line
            .as_bytes()
            .windows(self.terminator.len())
            .any(|w| w == self.terminator)
        {
            return Err(HalError::InvalidRequest(
                "line contains the terminator".into(),
            ));
        }
        // Anything received before our request is not its answer.
        self.buffer.clear();
        self.drain_waiting_input().await;
        let mut frame = Vec::with_capacity(line.len() + self.terminator.len());
        frame.extend_from_slice(line.as_bytes());
        frame.extend_from_slice(&self.terminator);
        let write = async {
            self.stream.write_all(&frame).await?;
            self.stream.flush().await
        };
        tokio::time::timeout(self.timeout, write)
            .await
            .map_err(|_| HalError::Timeout(self.timeout))?
            .map_err(|e| HalError::io(&e))
    }

    async fn drain_waiting_input(&mut self) {
        let mut scratch = [0u8; 256];
        // A zero timeout still polls the read once, so this takes only
        // what is already buffered and never waits.
        while let Ok(Ok(n)) =
            tokio::time::timeout(Duration::ZERO, self.stream.read(&mut scratch)).await
        {
            if n == 0 {
                break;
            }
        }
    }

    async fn read_line(&mut self) -> Result<String, HalError> {
        let timeout = self.timeout;
        tokio::time::timeout(timeout, self.read_line_inner())
            .await
            .map_err(|_| HalError::Timeout(timeout))?
    }

    async fn read_line_inner(&mut self) -> Result<String, HalError> {
        let mut chunk = [0u8; 256];
        loop {
            if let Some(pos) = find(&self.buffer, &self.terminator) {
                let rest = self.buffer.split_off(pos + self.terminator.len());
                self.buffer.truncate(pos);
                let line = std::mem::replace(&mut self.buffer, rest);
                return String::from_utf8(line)
                    .map_err(|_| HalError::Protocol("reply is not valid UTF-8".into()));
            }
            if self.buffer.len() > MAX_LINE {
                return Err(HalError::Protocol(format!(
                    "no terminator within {MAX_LINE} bytes"
                )));
            }
            let n = self
                .stream
                .read(&mut chunk)
                .await
                .map_err(|e| HalError::io(&e))?;
            if n == 0 {
                return Err(HalError::Io {
                    kind: std::io::ErrorKind::UnexpectedEof,
                    message: "stream closed".into(),
                });
            }
            self.buffer.extend_from_slice(&chunk[..n]);
        }
    }
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

impl<S: AsyncRead + AsyncWrite + Unpin + Send + 'static> LineDevice for LineLink<S> {
    async fn request(&mut self, line: &str) -> Result<String, HalError> {
        self.write_line(line).await?;
        self.read_line().await
    }

    async fn send(&mut self, line: &str) -> Result<(), HalError> {
        self.write_line(line).await
    }
}

impl<S: AsyncRead + AsyncWrite + Unpin + Send + 'static> Exchange for LineLink<S> {
    type Request = LineRequest;
    type Response = Option<String>;

    async fn exchange(&mut self, request: LineRequest) -> Result<Option<String>, HalError> {
        if request.expect_reply {
            self.request(&request.line).await.map(Some)
        } else {
            self.send(&request.line).await.map(|()| None)
        }
    }
}

#[derive(Debug, Clone)]
pub struct LineConnector {
    pub serial: SerialSettings,
    pub terminator: Vec<u8>,
    pub timeout: Duration,
}

impl Connector for LineConnector {
    type Link = LineLink<SerialStream>;

    fn target(&self) -> String {
        format!("line://{}", self.serial.describe())
    }

    async fn connect(&mut self) -> Result<Self::Link, HalError> {
        let stream = self.serial.open()?;
        Ok(LineLink::new(stream, &self.terminator, self.timeout))
    }
}

/// A running master for one line device.
pub type LineBus = Bus<LineRequest, Option<String>>;
/// One caller's fair-queued access to a [`LineBus`].
pub type LineClient = BusClient<LineRequest, Option<String>>;

impl LineDevice for LineClient {
    async fn request(&mut self, line: &str) -> Result<String, HalError> {
        let reply = BusClient::submit(
            self,
            LineRequest {
                line: line.to_owned(),
                expect_reply: true,
            },
        )
        .await?;
        reply.ok_or_else(|| HalError::Protocol("no reply line".into()))
    }

    async fn send(&mut self, line: &str) -> Result<(), HalError> {
        BusClient::submit(
            self,
            LineRequest {
                line: line.to_owned(),
                expect_reply: false,
            },
        )
        .await
        .map(|_| ())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn reads_line_split_across_chunks_and_keeps_the_rest() {
        let (client, mut peer) = tokio::io::duplex(64);
        let mut link = LineLink::new(client, b"\r\n", Duration::from_secs(1));
        let answer = tokio::spawn(async move {
            let mut buf = [0u8; 16];
            let n = peer.read(&mut buf).await.unwrap_or(0);
            assert_eq!(&buf[..n], b"PING\r\n");
            peer.write_all(b"PO").await.ok();
            tokio::time::sleep(Duration::from_millis(20)).await;
            peer.write_all(b"NG\r\n").await.ok();
            peer
        });
        assert_eq!(link.request("PING").await, Ok("PONG".to_owned()));
        drop(answer.await);
    }

    #[tokio::test]
    async fn silent_peer_times_out() {
        let (client, _peer) = tokio::io::duplex(64);
        let mut link = LineLink::new(client, b"\n", Duration::from_millis(50));
        assert_eq!(
            link.request("X").await,
            Err(HalError::Timeout(Duration::from_millis(50)))
        );
    }
}
