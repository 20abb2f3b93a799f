//! Connection state of one bus, published on a watch channel so that a
//! supervisor can show it and alert on it instead of polling going quiet.

use std::time::SystemTime;

use serde::Serialize;

use crate::error::HalError;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ConnectionState {
    Connecting,
    Connected,
    /// Waiting out a backoff before the next connect attempt.
    Disconnected,
    /// The bus was shut down; no more requests will be served.
    Closed,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct BusCounters {
    /// Requests answered by the device (including exception answers).
    pub responses: u64,
    pub exceptions: u64,
    pub transport_errors: u64,
    pub timeouts: u64,
    pub connect_attempts: u64,
    pub connect_failures: u64,
    /// Requests refused because the caller's queue was full.
    pub rejected_queue_full: u64,
    /// Requests failed without being sent because the bus was down.
    pub rejected_not_connected: u64,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct BusStatus {
    pub bus: String,
    pub target: String,
    pub state: ConnectionState,
    pub since: SystemTime,
    pub last_error: Option<HalError>,
    pub last_error_at: Option<SystemTime>,
    pub counters: BusCounters,
}

impl BusStatus {
    pub(crate) fn new(bus: &str, target: &str) -> Self {
        Self {
            bus: bus.to_owned(),
            target: target.to_owned(),
            state: ConnectionState::Connecting,
            since: SystemTime::now(),
            last_error: None,
            last_error_at: None,
            counters: BusCounters::default(),
        }
    }

    /// Returns whether the state changed, so watchers are only woken then.
    pub(crate) fn set_state(&mut self, state: ConnectionState) -> bool {
        if self.state == state {
            return false;
        }
        self.state = state;
        self.since = SystemTime::now();
        true
    }

    pub(crate) fn record_error(&mut self, err: &HalError) {
        self.last_error = Some(err.clone());
        self.last_error_at = Some(SystemTime::now());
    }
}

impl Serialize for HalError {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&self.to_string())
    }
}
