//! Per-caller HAL handles: a `TagWriter` and raw bus clients for each script
//! (and one set for HTTP), so one busy caller cannot starve another on a bus.
//! Handles of scripts that stopped are dropped the next time a handle is made,
//! which also removes their queues from the bus masters.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use vwed_base::sync::Locked;

use vwed_hal::{Io, LineClient, ModbusClient, TagWriter};

/// Requests one caller may have queued on one bus.
pub const QUEUE_CAPACITY: usize = 64;

#[derive(Default)]
struct Handles {
    writer: Option<Arc<TagWriter>>,
    modbus: HashMap<String, Arc<ModbusClient>>,
    lines: HashMap<String, Arc<LineClient>>,
}

#[derive(Default)]
pub struct Callers {
    by_name: Mutex<HashMap<String, Handles>>,
}

impl Callers {
    fn with<T>(
        &self,
        name: &str,
        alive: impl Fn(&str) -> bool,
        f: impl FnOnce(&mut Handles) -> T,
    ) -> T {
        let mut map = self.by_name.locked();
        if !map.contains_key(name) {
            map.retain(|n, _| alive(n));
        }
        f(map.entry(name.to_string()).or_default())
    }

    pub fn writer(&self, io: &Io, name: &str, alive: impl Fn(&str) -> bool) -> Arc<TagWriter> {
        self.with(name, alive, |h| {
            h.writer
                .get_or_insert_with(|| Arc::new(io.poller().writer(name)))
                .clone()
        })
    }

    pub fn modbus(
        &self,
        io: &Io,
        name: &str,
        bus: &str,
        alive: impl Fn(&str) -> bool,
    ) -> Option<Arc<ModbusClient>> {
        let b = io.modbus_bus(bus)?;
        Some(self.with(name, alive, |h| {
            h.modbus
                .entry(bus.to_string())
                .or_insert_with(|| Arc::new(b.client(name, QUEUE_CAPACITY)))
                .clone()
        }))
    }

    pub fn line(
        &self,
        io: &Io,
        name: &str,
        bus: &str,
        alive: impl Fn(&str) -> bool,
    ) -> Option<Arc<LineClient>> {
        let b = io.line_bus(bus)?;
        Some(self.with(name, alive, |h| {
            h.lines
                .entry(bus.to_string())
                .or_insert_with(|| Arc::new(b.client(name, QUEUE_CAPACITY)))
                .clone()
        }))
    }
}
