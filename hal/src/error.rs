//! Error types shared by every transport.
//!
//! Device exception responses are *not* errors here: a device that answers
//! "illegal data address" is healthy and reachable, so such answers travel as
//! the inner `Err` of [`crate::ModbusResult`], while [`HalError`] means the
//! transport failed and the bus master will reconnect.

use std::fmt;
use std::time::Duration;

use serde::Serialize;

/// Modbus exception code returned by a device.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Exception {
    IllegalFunction,
    IllegalDataAddress,
    IllegalDataValue,
    ServerDeviceFailure,
    Acknowledge,
    ServerDeviceBusy,
    MemoryParityError,
    GatewayPathUnavailable,
    GatewayTargetDevice,
    Other(u8),
}

impl Exception {
    pub fn from_code(code: u8) -> Self {
        match code {
            0x01 => Self::IllegalFunction,
            0x02 => Self::IllegalDataAddress,
            0x03 => Self::IllegalDataValue,
            0x04 => Self::ServerDeviceFailure,
            0x05 => Self::Acknowledge,
            0x06 => Self::ServerDeviceBusy,
            0x08 => Self::MemoryParityError,
            0x0A => Self::GatewayPathUnavailable,
            0x0B => Self::GatewayTargetDevice,
            other => Self::Other(other),
        }
    }

    pub fn code(self) -> u8 {
        match self {
            Self::IllegalFunction => 0x01,
            Self::IllegalDataAddress => 0x02,
            Self::IllegalDataValue => 0x03,
            Self::ServerDeviceFailure => 0x04,
            Self::Acknowledge => 0x05,
            Self::ServerDeviceBusy => 0x06,
            Self::MemoryParityError => 0x08,
            Self::GatewayPathUnavailable => 0x0A,
            Self::GatewayTargetDevice => 0x0B,
            Self::Other(code) => code,
        }
    }
}

impl fmt::Display for Exception {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let name = match self {
            Self::IllegalFunction => "illegal function",
            Self::IllegalDataAddress => "illegal data address",
            Self::IllegalDataValue => "illegal data value",
            Self::ServerDeviceFailure => "server device failure",
            Self::Acknowledge => "acknowledge",
            Self::ServerDeviceBusy => "server device busy",
            Self::MemoryParityError => "memory parity error",
            Self::GatewayPathUnavailable => "gateway path unavailable",
            Self::GatewayTargetDevice => "gateway target device failed to respond",
            Self::Other(_) => "exception",
        };
        write!(f, "modbus exception 0x{:02X} ({name})", self.code())
    }
}

/// Coarse classification of a [`HalError`], for callers that only need to
/// decide what to do (retry later, fix the request, give up).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ErrorKind {
    Connect,
    Io,
    Timeout,
    Protocol,
    NotConnected,
    QueueFull,
    Closed,
    InvalidRequest,
}

/// A transport-level failure. `Clone` because one failure is reported to
/// every request that was waiting on the bus and kept as the bus's last error.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum HalError {
    #[error("cannot connect to {target}: {message}")]
    Connect { target: String, message: String },
    #[error("i/o error ({kind:?}): {message}")]
    Io {
        kind: std::io::ErrorKind,
        message: String,
    },
    #[error("no response within {0:?}")]
    Timeout(Duration),
    #[error("protocol error: {0}")]
    Protocol(String),
    #[error("bus {bus} is not connected (last error: {reason})")]
    NotConnected { bus: String, reason: String },
    #[error("request queue of client '{client}' on bus {bus} is full ({capacity} pending)")]
    QueueFull {
        bus: String,
        client: String,
        capacity: usize,
    },
    #[error("bus {0} has shut down")]
    Closed(String),
    #[error("invalid request: {0}")]
    InvalidRequest(String),
}

impl HalError {
    pub fn kind(&self) -> ErrorKind {
        match self {
            Self::Connect { .. } => ErrorKind::Connect,
            Self::Io { .. } => ErrorKind::Io,
            Self::Timeout(_) => ErrorKind::Timeout,
            Self::Protocol(_) => ErrorKind::Protocol,
            Self::NotConnected { .. } => ErrorKind::NotConnected,
            Self::QueueFull { .. } => ErrorKind::QueueFull,
            Self::Closed(_) => ErrorKind::Closed,
            Self::InvalidRequest(_) => ErrorKind::InvalidRequest,
        }
    }

    pub(crate) fn io(err: &std::io::Error) -> Self {
        Self::Io {
            kind: err.kind(),
            message: err.to_string(),
        }
    }
}
