//! Modbus RTU over a serial port.

use std::future::Future;
use std::time::Duration;

use tokio_modbus::client::Context;

use crate::master::Connector;
use crate::modbus::{ModbusLink, ModbusResult, RegisterBus, Request, Response, UnitId};
use crate::serial_port::SerialSettings;
use crate::stale_input::{NewRequest, StaleInputGuard};
use crate::{HalError, modbus_wire};

#[derive(Debug, Clone)]
pub struct RtuConnector {
    pub serial: SerialSettings,
    pub request_timeout: Duration,
}

impl RtuConnector {
    pub fn new(serial: SerialSettings) -> Self {
        Self {
            serial,
            request_timeout: Duration::from_millis(500),
        }
    }
}

/// An open RTU line. After any error the master reopens the port, which
/// also throws away a late answer that would otherwise be taken as the
/// reply to the next request.
pub struct RtuLink {
    ctx: Context,
    request_timeout: Duration,
    new_request: NewRequest,
}

impl std::fmt::Debug for RtuLink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RtuLink").finish_non_exhaustive()
    }
}

impl RtuLink {
    pub fn open(serial: &SerialSettings, request_timeout: Duration) -> Result<Self, HalError> {
        let stream = serial.open()?;
        let new_request = NewRequest::default();
        let guarded = StaleInputGuard::new(stream, new_request.clone());
        Ok(Self {
            ctx: tokio_modbus::client::rtu::attach(guarded),
            request_timeout,
            new_request,
        })
    }
}

impl RtuLink {
    /// Bytes thrown away because they arrived before a request was sent
    /// (late answers to timed-out requests, line noise).
    pub fn discarded_bytes(&self) -> u64 {
        self.new_request.discarded_bytes()
    }
}

impl RegisterBus for RtuLink {
    fn call(
        &mut self,
        unit: UnitId,
        request: Request,
    ) -> impl Future<Output = ModbusResult<Response>> + Send {
        self.new_request.mark();
        modbus_wire::call(&mut self.ctx, self.request_timeout, unit, request)
    }
}

impl Connector for RtuConnector {
    type Link = ModbusLink<RtuLink>;

    fn target(&self) -> String {
        format!("modbus-rtu://{}", self.serial.describe())
    }

    async fn connect(&mut self) -> Result<Self::Link, HalError> {
        RtuLink::open(&self.serial, self.request_timeout).map(ModbusLink)
    }
}
