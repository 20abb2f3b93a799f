//! Modbus TCP client transport.

use std::future::Future;
use std::time::Duration;

use tokio::net::TcpStream;
use tokio_modbus::client::Context;

use crate::master::Connector;
use crate::modbus::{ModbusLink, ModbusResult, RegisterBus, Request, Response, UnitId};
use crate::{HalError, modbus_wire};

#[derive(Debug, Clone)]
pub struct TcpConnector {
    /// `host:port`; resolved on every connect so a DHCP/DNS change is
    /// picked up after a reconnect.
    pub address: String,
    pub connect_timeout: Duration,
    pub request_timeout: Duration,
}

impl TcpConnector {
    pub fn new(address: impl Into<String>) -> Self {
        Self {
            address: address.into(),
            connect_timeout: Duration::from_secs(1),
            request_timeout: Duration::from_secs(1),
        }
    }
}

/// A connected Modbus TCP session.
pub struct TcpLink {
    ctx: Context,
    request_timeout: Duration,
}

impl std::fmt::Debug for TcpLink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TcpLink").finish_non_exhaustive()
    }
}

impl TcpLink {
    pub async fn connect(
        address: &str,
        connect_timeout: Duration,
        request_timeout: Duration,
    ) -> Result<Self, HalError> {
        let failed = |message: String| HalError::Connect {
            target: address.to_owned(),
            message,
        };
        let stream = tokio::time::timeout(connect_timeout, TcpStream::connect(address))
            .await
            .map_err(|_| failed(format!("no answer within {connect_timeout:?}")))?
            .map_err(|e| failed(e.to_string()))?;
        // Requests are tiny and latency matters more than throughput.
        stream
            .set_nodelay(true)
            .map_err(|e| failed(e.to_string()))?;
        Ok(Self {
            ctx: tokio_modbus::client::tcp::attach(stream),
            request_timeout,
        })
    }
}

impl RegisterBus for TcpLink {
    fn call(
        &mut self,
        unit: UnitId,
        request: Request,
    ) -> impl Future<Output = ModbusResult<Response>> + Send {
        modbus_wire::call(&mut self.ctx, self.request_timeout, unit, request)
    }
}

impl Connector for TcpConnector {
    type Link = ModbusLink<TcpLink>;

    fn target(&self) -> String {
        format!("modbus-tcp://{}", self.address)
    }

    async fn connect(&mut self) -> Result<Self::Link, HalError> {
        TcpLink::connect(&self.address, self.connect_timeout, self.request_timeout)
            .await
            .map(ModbusLink)
    }
}
