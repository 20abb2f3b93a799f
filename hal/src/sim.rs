//! An in-memory Modbus device for tests, demos and the simulator board.
//! It can be told to become unreachable or slow, to exercise the same
//! failure paths a real field device would.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use crate::error::{Exception, HalError};
use crate::master::Connector;
use crate::modbus::{ModbusLink, ModbusResult, RegisterBus, Request, Response, Table, UnitId};

#[derive(Debug, Clone)]
struct Unit {
    coils: Vec<bool>,
    discrete: Vec<bool>,
    holding: Vec<u16>,
    input: Vec<u16>,
}

#[derive(Debug)]
struct State {
    units: HashMap<UnitId, Unit>,
    reachable: bool,
    latency: Duration,
    requests: u64,
}

/// Shared handle: clones see and change the same device.
#[derive(Debug, Clone)]
pub struct SimDevice {
    state: Arc<Mutex<State>>,
}

impl Default for SimDevice {
    fn default() -> Self {
        Self::new()
    }
}

impl SimDevice {
    /// A device with no units; add them with [`SimDevice::add_unit`].
    pub fn new() -> Self {
        Self {
            state: Arc::new(Mutex::new(State {
                units: HashMap::new(),
                reachable: true,
                latency: Duration::ZERO,
                requests: 0,
            })),
        }
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Adds (or resets) a unit whose four tables each hold `size` entries;
    /// addresses at or beyond `size` answer "illegal data address".
    pub fn add_unit(&self, unit: UnitId, size: u16) {
        let n = usize::from(size);
        self.lock().units.insert(
            unit,
            Unit {
                coils: vec![false; n],
                discrete: vec![false; n],
                holding: vec![0; n],
                input: vec![0; n],
            },
        );
    }

    pub fn set_reachable(&self, reachable: bool) {
        self.lock().reachable = reachable;
    }

    pub fn set_latency(&self, latency: Duration) {
        self.lock().latency = latency;
    }

    /// Requests that reached the device (for tests of fairness and grouping).
    pub fn requests(&self) -> u64 {
        self.lock().requests
    }

    /// Sets registers (holding or input) as if the process changed them.
    pub fn set_words(&self, unit: UnitId, table: Table, addr: u16, values: &[u16]) -> bool {
        let mut state = self.lock();
        let Some(u) = state.units.get_mut(&unit) else {
            return false;
        };
        let words = match table {
            Table::Holding => &mut u.holding,
            Table::Input => &mut u.input,
            Table::Coil | Table::Discrete => return false,
        };
        store(words, addr, values)
    }

    pub fn set_bits(&self, unit: UnitId, table: Table, addr: u16, values: &[bool]) -> bool {
        let mut state = self.lock();
        let Some(u) = state.units.get_mut(&unit) else {
            return false;
        };
        let bits = match table {
            Table::Coil => &mut u.coils,
            Table::Discrete => &mut u.discrete,
            Table::Holding | Table::Input => return false,
        };
        store(bits, addr, values)
    }

    pub fn words(&self, unit: UnitId, table: Table, addr: u16, count: u16) -> Option<Vec<u16>> {
        let state = self.lock();
        let u = state.units.get(&unit)?;
        let words = match table {
            Table::Holding => &u.holding,
            Table::Input => &u.input,
            Table::Coil | Table::Discrete => return None,
        };
        load(words, addr, count).ok()
    }

    pub fn bits(&self, unit: UnitId, table: Table, addr: u16, count: u16) -> Option<Vec<bool>> {
        let state = self.lock();
        let u = state.units.get(&unit)?;
        let bits = match table {
            Table::Coil => &u.coils,
            Table::Discrete => &u.discrete,
            Table::Holding | Table::Input => return None,
        };
        load(bits, addr, count).ok()
    }

    /// Applies one request the way a device would.
    fn apply(&self, unit: UnitId, request: &Request) -> Option<Result<Response, Exception>> {
        let mut state = self.lock();
        state.requests += 1;
        let u = state.units.get_mut(&unit)?;
        let answer = match request {
            Request::ReadCoils { addr, count } => load(&u.coils, *addr, *count).map(Response::Bits),
            Request::ReadDiscreteInputs { addr, count } => {
                load(&u.discrete, *addr, *count).map(Response::Bits)
            }
            Request::ReadHoldingRegisters { addr, count } => {
                load(&u.holding, *addr, *count).map(Response::Words)
            }
            Request::ReadInputRegisters { addr, count } => {
                load(&u.input, *addr, *count).map(Response::Words)
            }
            Request::WriteSingleCoil { addr, value } => {
                written(store(&mut u.coils, *addr, &[*value]))
            }
            Request::WriteSingleRegister { addr, value } => {
                written(store(&mut u.holding, *addr, &[*value]))
            }
            Request::WriteMultipleCoils { addr, values } => {
                written(store(&mut u.coils, *addr, values))
            }
            Request::WriteMultipleRegisters { addr, values } => {
                written(store(&mut u.holding, *addr, values))
            }
        };
        Some(answer)
    }

    pub fn connector(&self, request_timeout: Duration) -> SimConnector {
        SimConnector {
            device: self.clone(),
            request_timeout,
        }
    }
}

fn load<T: Copy>(table: &[T], addr: u16, count: u16) -> Result<Vec<T>, Exception> {
    let start = usize::from(addr);
    let end = start + usize::from(count);
    table
        .get(start..end)
        .map(<[T]>::to_vec)
        .ok_or(Exception::IllegalDataAddress)
}

fn store<T: Copy>(table: &mut [T], addr: u16, values: &[T]) -> bool {
    let start = usize::from(addr);
    match table.get_mut(start..start + values.len()) {
        Some(slot) => {
            slot.copy_from_slice(values);
            true
        }
        None => false,
    }
}

fn written(ok: bool) -> Result<Response, Exception> {
    if ok {
        Ok(Response::Written)
    } else {
        Err(Exception::IllegalDataAddress)
    }
}

#[derive(Debug, Clone)]
pub struct SimConnector {
    device: SimDevice,
    request_timeout: Duration,
}

/// A "connection" to a simulated device.
#[derive(Debug)]
pub struct SimLink {
    device: SimDevice,
    request_timeout: Duration,
}

impl SimLink {
    pub fn new(device: SimDevice, request_timeout: Duration) -> Self {
        Self {
            device,
            request_timeout,
        }
    }
}

impl RegisterBus for SimLink {
    async fn call(&mut self, unit: UnitId, request: Request) -> ModbusResult<Response> {
        request.validate()?;
        let (latency, reachable) = {
            let s = self.device.lock();
            (s.latency, s.reachable)
        };
        if latency >= self.request_timeout {
            tokio::time::sleep(self.request_timeout).await;
            return Err(HalError::Timeout(self.request_timeout));
        }
        tokio::time::sleep(latency).await;
        if !reachable {
            return Err(HalError::Io {
                kind: std::io::ErrorKind::ConnectionReset,
                message: "simulated device unreachable".into(),
            });
        }
        // An absent unit stays silent, as on a real RTU line.
        self.device
            .apply(unit, &request)
            .ok_or(HalError::Timeout(self.request_timeout))
    }
}

impl Connector for SimConnector {
    type Link = ModbusLink<SimLink>;

    fn target(&self) -> String {
        "sim://".into()
    }

    async fn connect(&mut self) -> Result<Self::Link, HalError> {
        if !self.device.lock().reachable {
            return Err(HalError::Connect {
                target: self.target(),
                message: "simulated device unreachable".into(),
            });
        }
        Ok(ModbusLink(SimLink::new(
            self.device.clone(),
            self.request_timeout,
        )))
    }
}
