//! The HTTP server's bounds: top-level keys of the runtime's configuration
//! (docs/limits.md).

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default)]
pub struct ServerSettings {
    /// Time a client has to send a request head (request line and headers): from
    /// the start of the connection (after the TLS handshake), or from the first byte
    /// of a later request on a kept-alive connection. Past it the connection closes.
    pub header_read_timeout_ms: u64,
    /// Longest a request body may take to arrive, counted from the first time the
    /// handler waits for it; past it the answer is 408 and the connection closes.
    pub body_read_timeout_ms: u64,
    /// Slowest a request body may arrive, in bytes per second over each
    /// `body_rate_window_ms` (408 below it); 0 = no floor.
    pub body_min_bytes_per_s: u64,
    pub body_rate_window_ms: u64,
    /// How long a kept-alive connection may wait for its next request.
    pub keep_alive_idle_ms: u64,
    /// How long a connection may take for its TLS handshake (with TLS on).
    pub tls_handshake_timeout_ms: u64,
    /// HTTP connections open at once, WebSockets included. The descriptor limit
    /// may lower it: see `fd_reserve`. At the cap a new connection closes the one
    /// that has waited longest for its client.
    pub max_connections: usize,
    /// Descriptors kept for the runtime's own files, workers and outgoing
    /// connections: HTTP connections get the limit (the soft RLIMIT_NOFILE, raised
    /// to the hard one at start) minus this, but at least a quarter of the limit.
    pub fd_reserve: u64,
}

impl Default for ServerSettings {
    fn default() -> Self {
        ServerSettings {
            header_read_timeout_ms: 10_000,
            body_read_timeout_ms: 60_000,
            body_min_bytes_per_s: 1_024,
            body_rate_window_ms: 10_000,
            keep_alive_idle_ms: 30_000,
            tls_handshake_timeout_ms: 10_000,
            max_connections: 1_024,
            fd_reserve: 256,
        }
    }
}
