//! Glue between our request vocabulary and a tokio-modbus client context,
//! shared by the TCP and RTU transports.

use std::borrow::Cow;
use std::time::Duration;

use tokio_modbus::client::{Client, Context};
use tokio_modbus::slave::{Slave, SlaveContext};

use crate::error::{Exception, HalError};
use crate::modbus::{ModbusResult, Request, Response, UnitId};

/// tokio-modbus has no timeouts of its own; a device that never answers
/// would hold the bus forever without one.
pub(crate) async fn call(
    ctx: &mut Context,
    timeout: Duration,
    unit: UnitId,
    request: Request,
) -> ModbusResult<Response> {
    request.validate()?;
    ctx.set_slave(Slave(unit));
    let wire = to_wire(&request);
    let answer = tokio::time::timeout(timeout, ctx.call(wire))
        .await
        .map_err(|_| HalError::Timeout(timeout))?;
    match answer {
        Ok(Ok(response)) => from_wire(&request, response).map(Ok),
        Ok(Err(code)) => Ok(Err(Exception::from_code(u8::from(code)))),
        Err(tokio_modbus::Error::Transport(err)) => Err(HalError::io(&err)),
        Err(tokio_modbus::Error::Protocol(err)) => Err(HalError::Protocol(err.to_string())),
    }
}

fn to_wire(request: &Request) -> tokio_modbus::Request<'_> {
    use tokio_modbus::Request as W;
    match request {
        Request::ReadCoils { addr, count } => W::ReadCoils(*addr, *count),
        Request::ReadDiscreteInputs { addr, count } => W::ReadDiscreteInputs(*addr, *count),
        Request::ReadHoldingRegisters { addr, count } => W::ReadHoldingRegisters(*addr, *count),
        Request::ReadInputRegisters { addr, count } => W::ReadInputRegisters(*addr, *count),
        Request::WriteSingleCoil { addr, value } => W::WriteSingleCoil(*addr, *value),
        Request::WriteSingleRegister { addr, value } => W::WriteSingleRegister(*addr, *value),
        Request::WriteMultipleCoils { addr, values } => {
            W::WriteMultipleCoils(*addr, Cow::Borrowed(values))
        }
        Request::WriteMultipleRegisters { addr, values } => {
            W::WriteMultipleRegisters(*addr, Cow::Borrowed(values))
        }
    }
}

fn from_wire(request: &Request, response: tokio_modbus::Response) -> Result<Response, HalError> {
    use tokio_modbus::Response as W;
    let wrong_length = |got: usize, want: u16| {
        HalError::Protocol(format!("response carries {got} items, expected {want}"))
    };
    match (request, response) {
        (Request::ReadCoils { count, .. }, W::ReadCoils(mut bits))
        | (Request::ReadDiscreteInputs { count, .. }, W::ReadDiscreteInputs(mut bits)) => {
            // Bits arrive padded to whole bytes.
            if bits.len() < usize::from(*count) {
                return Err(wrong_length(bits.len(), *count));
            }
            bits.truncate(usize::from(*count));
            Ok(Response::Bits(bits))
        }
        (Request::ReadHoldingRegisters { count, .. }, W::ReadHoldingRegisters(words))
        | (Request::ReadInputRegisters { count, .. }, W::ReadInputRegisters(words)) => {
            if words.len() != usize::from(*count) {
                return Err(wrong_length(words.len(), *count));
            }
            Ok(Response::Words(words))
        }
        (Request::WriteSingleCoil { .. }, W::WriteSingleCoil(..))
        | (Request::WriteSingleRegister { .. }, W::WriteSingleRegister(..))
        | (Request::WriteMultipleCoils { .. }, W::WriteMultipleCoils(..))
        | (Request::WriteMultipleRegisters { .. }, W::WriteMultipleRegisters(..)) => {
            Ok(Response::Written)
        }
        (_, other) => Err(HalError::Protocol(format!(
            "response {other:?} does not match request {request:?}"
        ))),
    }
}
