//! The register/coil bus trait and the request/response vocabulary shared by
//! every Modbus-speaking implementation (TCP, RTU, simulated, bus clients).

use std::future::Future;

use serde::{Deserialize, Serialize};

use crate::error::{Exception, HalError};
use crate::master::{Bus, BusClient, Exchange};

/// Outer `Err`: the transport failed. Inner `Err`: the device answered with
/// an exception. Same shape as tokio-modbus so the two never get mixed up.
pub type ModbusResult<T> = Result<Result<T, Exception>, HalError>;

/// Modbus unit (slave) id.
pub type UnitId = u8;

/// Largest read of registers / bits allowed by the Modbus spec.
pub const MAX_READ_REGISTERS: u16 = 125;
pub const MAX_READ_BITS: u16 = 2000;
pub const MAX_WRITE_REGISTERS: u16 = 123;
pub const MAX_WRITE_BITS: u16 = 1968;

/// The four Modbus data tables.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Table {
    Coil,
    Discrete,
    Holding,
    Input,
}

impl Table {
    pub fn is_bits(self) -> bool {
        matches!(self, Self::Coil | Self::Discrete)
    }

    /// Discrete inputs and input registers cannot be written by any device.
    pub fn is_writable(self) -> bool {
        matches!(self, Self::Coil | Self::Holding)
    }

    pub fn max_read(self) -> u16 {
        if self.is_bits() {
            MAX_READ_BITS
        } else {
            MAX_READ_REGISTERS
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Request {
    ReadCoils { addr: u16, count: u16 },
    ReadDiscreteInputs { addr: u16, count: u16 },
    ReadHoldingRegisters { addr: u16, count: u16 },
    ReadInputRegisters { addr: u16, count: u16 },
    WriteSingleCoil { addr: u16, value: bool },
    WriteSingleRegister { addr: u16, value: u16 },
    WriteMultipleCoils { addr: u16, values: Vec<bool> },
    WriteMultipleRegisters { addr: u16, values: Vec<u16> },
}

impl Request {
    pub fn read(table: Table, addr: u16, count: u16) -> Self {
        match table {
            Table::Coil => Self::ReadCoils { addr, count },
            Table::Discrete => Self::ReadDiscreteInputs { addr, count },
            Table::Holding => Self::ReadHoldingRegisters { addr, count },
            Table::Input => Self::ReadInputRegisters { addr, count },
        }
    }

    /// Rejects requests no device could answer, before they occupy the bus.
    pub fn validate(&self) -> Result<(), HalError> {
        let (addr, count, max) = match self {
            Self::ReadCoils { addr, count } | Self::ReadDiscreteInputs { addr, count } => {
                (*addr, *count, MAX_READ_BITS)
            }
            Self::ReadHoldingRegisters { addr, count }
            | Self::ReadInputRegisters { addr, count } => (*addr, *count, MAX_READ_REGISTERS),
            Self::WriteSingleCoil { addr, .. } | Self::WriteSingleRegister { addr, .. } => {
                (*addr, 1, 1)
            }
            Self::WriteMultipleCoils { addr, values } => {
                (*addr, len_u16(values.len()), MAX_WRITE_BITS)
            }
            Self::WriteMultipleRegisters { addr, values } => {
                (*addr, len_u16(values.len()), MAX_WRITE_REGISTERS)
            }
        };
        if count == 0 || count > max {
            return Err(HalError::InvalidRequest(format!(
                "quantity {count} outside 1..={max}"
            )));
        }
        if u32::from(addr) + u32::from(count) > 0x1_0000 {
            return Err(HalError::InvalidRequest(format!(
                "address range {addr}+{count} exceeds 65535"
            )));
        }
        Ok(())
    }
}

fn len_u16(len: usize) -> u16 {
    u16::try_from(len).unwrap_or(u16::MAX)
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Response {
    Bits(Vec<bool>),
    Words(Vec<u16>),
    Written,
}

/// A request addressed to one unit; what a bus master queues.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ModbusRequest {
    pub unit: UnitId,
    pub request: Request,
}

/// Anything that can carry Modbus requests: a live connection, a simulated
/// device, or a client of a shared bus master.
pub trait RegisterBus: Send {
    fn call(
        &mut self,
        unit: UnitId,
        request: Request,
    ) -> impl Future<Output = ModbusResult<Response>> + Send;

    fn read_coils(
        &mut self,
        unit: UnitId,
        addr: u16,
        count: u16,
    ) -> impl Future<Output = ModbusResult<Vec<bool>>> + Send {
        let call = self.call(unit, Request::ReadCoils { addr, count });
        async move { expect_bits(call.await) }
    }

    fn read_discrete_inputs(
        &mut self,
        unit: UnitId,
        addr: u16,
        count: u16,
    ) -> impl Future<Output = ModbusResult<Vec<bool>>> + Send {
        let call = self.call(unit, Request::ReadDiscreteInputs { addr, count });
        async move { expect_bits(call.await) }
    }

    fn read_holding_registers(
        &mut self,
        unit: UnitId,
        addr: u16,
        count: u16,
    ) -> impl Future<Output = ModbusResult<Vec<u16>>> + Send {
        let call = self.call(unit, Request::ReadHoldingRegisters { addr, count });
        async move { expect_words(call.await) }
    }

    fn read_input_registers(
        &mut self,
        unit: UnitId,
        addr: u16,
        count: u16,
    ) -> impl Future<Output = ModbusResult<Vec<u16>>> + Send {
        let call = self.call(unit, Request::ReadInputRegisters { addr, count });
        async move { expect_words(call.await) }
    }

    fn write_single_coil(
        &mut self,
        unit: UnitId,
        addr: u16,
        value: bool,
    ) -> impl Future<Output = ModbusResult<()>> + Send {
        let call = self.call(unit, Request::WriteSingleCoil { addr, value });
        async move { expect_written(call.await) }
    }

    fn write_single_register(
        &mut self,
        unit: UnitId,
        addr: u16,
        value: u16,
    ) -> impl Future<Output = ModbusResult<()>> + Send {
        let call = self.call(unit, Request::WriteSingleRegister { addr, value });
        async move { expect_written(call.await) }
    }

    fn write_multiple_coils(
        &mut self,
        unit: UnitId,
        addr: u16,
        values: Vec<bool>,
    ) -> impl Future<Output = ModbusResult<()>> + Send {
        let call = self.call(unit, Request::WriteMultipleCoils { addr, values });
        async move { expect_written(call.await) }
    }

    fn write_multiple_registers(
        &mut self,
        unit: UnitId,
        addr: u16,
        values: Vec<u16>,
    ) -> impl Future<Output = ModbusResult<()>> + Send {
        let call = self.call(unit, Request::WriteMultipleRegisters { addr, values });
        async move { expect_written(call.await) }
    }
}

/// Adapts any [`RegisterBus`] connection to the bus master.
#[derive(Debug)]
pub struct ModbusLink<T>(pub T);

impl<T: RegisterBus + 'static> Exchange for ModbusLink<T> {
    type Request = ModbusRequest;
    type Response = Result<Response, Exception>;

    fn exchange(
        &mut self,
        request: ModbusRequest,
    ) -> impl Future<Output = Result<Self::Response, HalError>> + Send {
        self.0.call(request.unit, request.request)
    }

    fn is_exception(response: &Self::Response) -> bool {
        response.is_err()
    }
}

/// A running master for one Modbus bus.
pub type ModbusBus = Bus<ModbusRequest, Result<Response, Exception>>;
/// One caller's fair-queued access to a [`ModbusBus`].
pub type ModbusClient = BusClient<ModbusRequest, Result<Response, Exception>>;

impl RegisterBus for ModbusClient {
    async fn call(&mut self, unit: UnitId, request: Request) -> ModbusResult<Response> {
        request.validate()?;
        self.submit(ModbusRequest { unit, request }).await
    }
}

fn mismatch(got: &Response) -> HalError {
    HalError::Protocol(format!("unexpected response shape {got:?}"))
}

fn expect_bits(result: ModbusResult<Response>) -> ModbusResult<Vec<bool>> {
    match result? {
        Ok(Response::Bits(bits)) => Ok(Ok(bits)),
        Ok(other) => Err(mismatch(&other)),
        Err(exception) => Ok(Err(exception)),
    }
}

fn expect_words(result: ModbusResult<Response>) -> ModbusResult<Vec<u16>> {
    match result? {
        Ok(Response::Words(words)) => Ok(Ok(words)),
        Ok(other) => Err(mismatch(&other)),
        Err(exception) => Ok(Err(exception)),
    }
}

fn expect_written(result: ModbusResult<Response>) -> ModbusResult<()> {
    match result? {
        Ok(Response::Written) => Ok(Ok(())),
        Ok(other) => Err(mismatch(&other)),
        Err(exception) => Ok(Err(exception)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn validate_rejects_oversized_reads() {
        assert!(Request::read(Table::Holding, 0, 125).validate().is_ok());
        assert!(Request::read(Table::Holding, 0, 126).validate().is_err());
        assert!(Request::read(Table::Coil, 0, 2000).validate().is_ok());
        assert!(Request::read(Table::Coil, 0, 0).validate().is_err());
        assert!(Request::read(Table::Input, 65535, 2).validate().is_err());
    }
}
