//! Connection state and error counters per device, for `/api/io/devices`.

use serde_json::{Value, json};
use vwed_boards::BusConfig;
use vwed_hal::{BusStatus, Quality};

use super::IoRuntime;
use super::json::iso;

fn bus_json(s: &BusStatus) -> Value {
    json!({
        "bus": s.bus,
        "target": s.target,
        "state": s.state,
        "since": iso(s.since),
        "last_error": s.last_error.as_ref().map(ToString::to_string),
        "last_error_at": s.last_error_at.map(iso),
        "counters": s.counters,
    })
}

impl IoRuntime {
    /// One entry per configured device, then one per line device (a `line` bus).
    pub fn devices_json(&self) -> Vec<Value> {
        let snaps = self.io.poller().snapshot();
        let specs = &self.setup.devices.points;
        let mut out = Vec::new();
        for d in &self.setup.devices.devices {
            let Some(bus) = self.io.modbus_bus(&d.bus) else {
                continue;
            };
            let mine: Vec<_> = specs
                .iter()
                .zip(&snaps)
                .filter(|(p, _)| p.bus == d.bus && p.unit == d.unit)
                .collect();
            let bad = mine
                .iter()
                .filter(|(_, s)| s.quality == Quality::Bad)
                .count();
            let kind = self
                .setup
                .devices
                .buses
                .iter()
                .find(|b| b.name == d.bus)
                .map_or("modbus", |b| match b.config {
                    BusConfig::Tcp { .. } => "modbus_tcp",
                    BusConfig::Rtu { .. } => "modbus_rtu",
                    BusConfig::Sim { .. } => "sim",
                    BusConfig::Line { .. } => "line",
                });
            let mut j = bus_json(&bus.status_now());
            j["device"] = json!(d.name);
            j["unit"] = json!(d.unit);
            j["kind"] = json!(kind);
            j["points"] = json!(mine.len());
            j["points_bad"] = json!(bad);
            j["connected"] = json!(j["state"] == "connected" && bad == 0);
            out.push(j);
        }
        for b in &self.setup.devices.buses {
            if !matches!(b.config, BusConfig::Line { .. }) {
                continue;
            }
            if let Some(line) = self.io.line_bus(&b.name) {
                let mut j = bus_json(&line.status_now());
                j["device"] = json!(b.name);
                j["unit"] = Value::Null;
                j["kind"] = json!("line");
                j["points"] = json!(0);
                j["points_bad"] = json!(0);
                j["connected"] = json!(j["state"] == "connected");
                out.push(j);
            }
        }
        out
    }
}
