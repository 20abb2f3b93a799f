//! Starts a whole I/O setup (buses, line devices, poller) from plain data,
//! so the supervisor needs one call and config loaders need no transport
//! knowledge.

use std::collections::HashMap;
use std::time::Duration;

use tokio::sync::{mpsc, watch};

use crate::master::{Bus, MasterConfig};
use crate::modbus::ModbusBus;
use crate::modbus_rtu::RtuConnector;
use crate::modbus_tcp::TcpConnector;
use crate::point::PointSpec;
use crate::poller::{Change, Poller, PollerConfig, PollerError};
use crate::serial_line::{LineBus, LineConnector};
use crate::serial_port::SerialSettings;
use crate::sim::SimDevice;
use crate::status::BusStatus;

#[derive(Debug, Clone)]
pub enum BusKind {
    ModbusTcp {
        /// `host:port`
        address: String,
        connect_timeout: Duration,
        request_timeout: Duration,
    },
    ModbusRtu {
        serial: SerialSettings,
        request_timeout: Duration,
    },
    /// A text line protocol device (not polled; used by scripts and robots).
    Line {
        serial: SerialSettings,
        terminator: Vec<u8>,
        timeout: Duration,
    },
    Sim {
        device: SimDevice,
        request_timeout: Duration,
    },
}

#[derive(Debug, Clone)]
pub struct BusSpec {
    pub name: String,
    pub kind: BusKind,
}

#[derive(Debug, Clone, Default)]
pub struct IoSpec {
    pub buses: Vec<BusSpec>,
    pub points: Vec<PointSpec>,
    pub master: MasterConfig,
    pub poller: PollerConfig,
}

#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum IoError {
    #[error("duplicate bus name {0}")]
    DuplicateBus(String),
    #[error("bus {bus}: {message}")]
    InvalidBus { bus: String, message: String },
    #[error(transparent)]
    Poller(#[from] PollerError),
}

/// Everything running for one I/O configuration. Dropping it stops the
/// poller and all bus masters.
#[derive(Debug)]
pub struct Io {
    modbus: HashMap<String, ModbusBus>,
    lines: HashMap<String, LineBus>,
    sims: HashMap<String, SimDevice>,
    poller: Poller,
}

/// The buses started so far, by kind.
#[derive(Default)]
struct Buses {
    modbus: HashMap<String, ModbusBus>,
    lines: HashMap<String, LineBus>,
    sims: HashMap<String, SimDevice>,
}

impl Buses {
    /// Starts `bus`'s master; a name already taken or bad serial settings are
    /// refused.
    fn start(&mut self, bus: BusSpec, master: &MasterConfig) -> Result<(), IoError> {
        if self.modbus.contains_key(&bus.name) || self.lines.contains_key(&bus.name) {
            return Err(IoError::DuplicateBus(bus.name));
        }
        let invalid = |message: String| IoError::InvalidBus {
            bus: bus.name.clone(),
            message,
        };
        let name = bus.name.clone();
        match bus.kind {
            BusKind::ModbusTcp {
                address,
                connect_timeout,
                request_timeout,
            } => {
                let connector = TcpConnector {
                    address,
                    connect_timeout,
                    request_timeout,
                };
                let started = Bus::spawn(&name, connector, master.clone());
                self.modbus.insert(name, started);
            }
            BusKind::ModbusRtu {
                serial,
                request_timeout,
            } => {
                serial.validate().map_err(invalid)?;
                let connector = RtuConnector {
                    serial,
                    request_timeout,
                };
                let started = Bus::spawn(&name, connector, master.clone());
                self.modbus.insert(name, started);
            }
            BusKind::Line {
                serial,
                terminator,
                timeout,
            } => {
                serial.validate().map_err(invalid)?;
                let connector = LineConnector {
                    serial,
                    terminator,
                    timeout,
                };
                let started = Bus::spawn(&name, connector, master.clone());
                self.lines.insert(name, started);
            }
            BusKind::Sim {
                device,
                request_timeout,
            } => {
                let connector = device.connector(request_timeout);
                self.sims.insert(name.clone(), device);
                let started = Bus::spawn(&name, connector, master.clone());
                self.modbus.insert(name, started);
            }
        }
        Ok(())
    }
}

impl Io {
    /// Starts every bus and the poller. Must be called from within a Tokio
    /// runtime. Serial ports that do not exist yet are not an error: their
    /// bus reports `Disconnected` and keeps retrying, like a cable unplugged.
    pub fn start(spec: IoSpec) -> Result<(Self, mpsc::Receiver<Change>), IoError> {
        let mut buses = Buses::default();
        for bus in spec.buses {
            buses.start(bus, &spec.master)?;
        }
        let Buses {
            modbus,
            lines,
            sims,
        } = buses;
        let (poller, changes) = Poller::start(spec.points, &modbus, &spec.poller)?;
        Ok((
            Self {
                modbus,
                lines,
                sims,
                poller,
            },
            changes,
        ))
    }

    pub fn poller(&self) -> &Poller {
        &self.poller
    }

    pub fn modbus_bus(&self, name: &str) -> Option<&ModbusBus> {
        self.modbus.get(name)
    }

    pub fn line_bus(&self, name: &str) -> Option<&LineBus> {
        self.lines.get(name)
    }

    /// The simulated device behind a `Sim` bus, to drive demos and tests.
    pub fn sim(&self, name: &str) -> Option<&SimDevice> {
        self.sims.get(name)
    }

    /// Status receivers of every bus, Modbus and line, sorted by name.
    pub fn bus_statuses(&self) -> Vec<watch::Receiver<BusStatus>> {
        let mut all: Vec<(&String, watch::Receiver<BusStatus>)> = self
            .modbus
            .iter()
            .map(|(n, b)| (n, b.status()))
            .chain(self.lines.iter().map(|(n, b)| (n, b.status())))
            .collect();
        all.sort_by(|a, b| a.0.cmp(b.0));
        all.into_iter().map(|(_, rx)| rx).collect()
    }

    /// Stops the poller and every bus; pending requests fail with `Closed`.
    pub fn shutdown(self) {
        drop(self.poller);
        for bus in self.modbus.values() {
            bus.shutdown();
        }
        for bus in self.lines.values() {
            bus.shutdown();
        }
    }
}
