//! Hardware abstraction layer. Knows nothing about HTTP, redb or Python.
//!
//! - [`RegisterBus`] and [`LineDevice`]: small fallible traits for Modbus
//!   register/coil access and text line devices.
//! - Transports: [`TcpConnector`], [`RtuConnector`], [`LineConnector`],
//!   [`SimDevice`].
//! - [`Bus`]: one master per physical bus, fair queues per client,
//!   reconnect with capped backoff, [`BusStatus`] on a watch channel.
//! - [`Poller`]: grouped reads on per-point periods, quality, deadband,
//!   change records, write by tag.
//! - [`Io`]: starts all of the above from an [`IoSpec`].

mod error;
mod io;
mod master;
mod modbus;
mod modbus_rtu;
mod modbus_tcp;
mod modbus_wire;
mod plan;
mod point;
mod poller;
mod serial_line;
mod serial_port;
mod sim;
mod stale_input;
mod status;

pub use error::{ErrorKind, Exception, HalError};
pub use io::{BusKind, BusSpec, Io, IoError, IoSpec};
pub use master::{Bus, BusClient, Connector, Exchange, MasterConfig};
pub use modbus::{
    MAX_READ_BITS, MAX_READ_REGISTERS, MAX_WRITE_BITS, MAX_WRITE_REGISTERS, ModbusBus,
    ModbusClient, ModbusLink, ModbusRequest, ModbusResult, RegisterBus, Request, Response, Table,
    UnitId,
};
pub use modbus_rtu::{RtuConnector, RtuLink};
pub use modbus_tcp::{TcpConnector, TcpLink};
pub use plan::{ReadBlock, plan_reads};
pub use point::{ByteOrder, CodecError, DataType, Encoding, PointSpec, Value, WordOrder};
pub use poller::{
    Change, PointSnapshot, Poller, PollerConfig, PollerError, PollerStats, Quality, TagWriter,
    WriteError,
};
pub use serial_line::{LineBus, LineClient, LineConnector, LineDevice, LineLink, LineRequest};
pub use serial_port::{Parity, SerialSettings};
pub use sim::{SimConnector, SimDevice, SimLink};
pub use status::{BusCounters, BusStatus, ConnectionState};
