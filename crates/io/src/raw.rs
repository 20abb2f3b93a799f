//! Raw Modbus register/coil access and serial line requests, addressed by
//! device (bus + unit from the config) or by bus name.

use std::time::Duration;

use serde_json::{Value, json};
use vwed_boards::BusConfig;
use vwed_hal::{LineRequest, ModbusRequest, PointSpec, Request, Response, Table, UnitId};

use super::error::IoOpError;
use super::{IoRuntime, Who};

/// One raw Modbus operation as scripts name it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RawOp {
    ReadHolding,
    ReadInput,
    ReadCoils,
    ReadDiscrete,
    WriteRegister,
    WriteRegisters,
    WriteCoil,
    WriteCoils,
}

impl RawOp {
    fn is_write(self) -> bool {
        matches!(
            self,
            RawOp::WriteRegister | RawOp::WriteRegisters | RawOp::WriteCoil | RawOp::WriteCoils
        )
    }
}

#[derive(Debug, Default, serde::Deserialize)]
pub struct RawArgs {
    /// A device name or a bus name.
    pub target: String,
    #[serde(default)]
    pub unit: Option<UnitId>,
    pub address: u16,
    #[serde(default)]
    pub count: Option<u16>,
    #[serde(default)]
    pub value: Option<Value>,
    #[serde(default)]
    pub values: Option<Vec<Value>>,
}

fn word(v: &Value) -> Result<u16, IoOpError> {
    v.as_u64()
        .and_then(|n| u16::try_from(n).ok())
        .or_else(|| {
            v.as_i64()
                .filter(|n| (-32768..0).contains(n))
                .map(|n| n as i16 as u16)
        })
        .ok_or_else(|| {
            IoOpError::BadValue(format!("寄存器值必须是 -32768..65535 的整数, 得到 {v}"))
        })
}

fn bit(v: &Value) -> Result<bool, IoOpError> {
    match v {
        Value::Bool(b) => Ok(*b),
        Value::Number(n) if n.as_u64() == Some(0) || n.as_u64() == Some(1) => {
            Ok(n.as_u64() == Some(1))
        }
        other => Err(IoOpError::BadValue(format!(
            "线圈值必须是 true/false, 得到 {other}"
        ))),
    }
}

/// The first read-only point that `n` entries from `addr` would overwrite.
fn read_only_overlap<'a>(
    points: &'a [PointSpec],
    bus: &str,
    unit: UnitId,
    table: Table,
    addr: u16,
    n: u16,
) -> Option<&'a str> {
    let (start, end) = (u32::from(addr), u32::from(addr) + u32::from(n));
    points
        .iter()
        .filter(|p| p.bus == bus && p.unit == unit && p.table == table && p.read_only)
        .find(|p| {
            let ps = u32::from(p.address);
            ps < end && start < ps + u32::from(p.width())
        })
        .map(|p| p.tag.as_str())
}

impl IoRuntime {
    /// Bus and unit of a device name, or a bus name with the given unit.
    fn resolve(&self, target: &str, unit: Option<UnitId>) -> Result<(String, UnitId), IoOpError> {
        let d = &self.setup.devices;
        if let Some(dev) = d.devices.iter().find(|x| x.name == target) {
            return Ok((dev.bus.clone(), unit.unwrap_or(dev.unit)));
        }
        if self.io.modbus_bus(target).is_some() {
            return Ok((target.to_string(), unit.unwrap_or(1)));
        }
        Err(IoOpError::UnknownDevice {
            name: target.to_string(),
            known: self.known_targets(),
        })
    }

    fn known_targets(&self) -> String {
        let d = &self.setup.devices;
        let mut names: Vec<String> = d.devices.iter().map(|x| x.name.clone()).collect();
        names.extend(d.buses.iter().map(|b| format!("bus {}", b.name)));
        if names.is_empty() {
            "无".to_string()
        } else {
            names.join(", ")
        }
    }

    /// A raw write covering a read-only point is refused like a write by tag.
    fn check_raw_write(
        &self,
        bus: &str,
        unit: UnitId,
        table: Table,
        addr: u16,
        n: u16,
    ) -> Result<(), IoOpError> {
        match read_only_overlap(&self.setup.devices.points, bus, unit, table, addr, n) {
            Some(tag) => Err(IoOpError::ReadOnly(tag.to_string())),
            None => Ok(()),
        }
    }

    pub async fn modbus(&self, who: &Who, op: RawOp, a: RawArgs) -> Result<Value, IoOpError> {
        let (bus, unit) = self.resolve(&a.target, a.unit)?;
        if !op.is_write() {
            return self.modbus_call(who, op, &bus, unit, &a).await;
        }
        let target = format!("{}/{bus}/unit{unit}/{}", a.target, a.address);
        let shown = a
            .value
            .clone()
            .or_else(|| a.values.clone().map(Value::Array))
            .unwrap_or(Value::Null);
        self.audited(
            who,
            &target,
            &shown,
            self.modbus_call(who, op, &bus, unit, &a),
        )
        .await
    }

    async fn modbus_call(
        &self,
        who: &Who,
        op: RawOp,
        bus: &str,
        unit: UnitId,
        a: &RawArgs,
    ) -> Result<Value, IoOpError> {
        let request = self.modbus_request(op, bus, unit, a)?;
        request.validate()?;
        let client = self
            .callers
            .modbus(&self.io, &who.queue_name(), bus, self.alive())
            .ok_or_else(|| IoOpError::UnknownDevice {
                name: bus.to_string(),
                known: self.known_targets(),
            })?;
        match client.submit(ModbusRequest { unit, request }).await? {
            Ok(Response::Words(w)) => Ok(json!(w)),
            Ok(Response::Bits(b)) => Ok(json!(b)),
            Ok(Response::Written) => Ok(Value::Null),
            Err(ex) => Err(IoOpError::Exception(ex)),
        }
    }

    /// The HAL request for `op`; writes over read-only points are refused here.
    fn modbus_request(
        &self,
        op: RawOp,
        bus: &str,
        unit: UnitId,
        a: &RawArgs,
    ) -> Result<Request, IoOpError> {
        let addr = a.address;
        let count = a.count.unwrap_or(1);
        let value = || {
            a.value
                .as_ref()
                .ok_or_else(|| IoOpError::BadArgs("缺少 value".into()))
        };
        let values = || {
            a.values
                .as_ref()
                .filter(|v| !v.is_empty())
                .ok_or_else(|| IoOpError::BadArgs("缺少 values (非空列表)".into()))
        };
        let guard = |table, n: usize| {
            let n = u16::try_from(n).unwrap_or(u16::MAX);
            self.check_raw_write(bus, unit, table, addr, n)
        };
        Ok(match op {
            RawOp::ReadHolding => Request::ReadHoldingRegisters { addr, count },
            RawOp::ReadInput => Request::ReadInputRegisters { addr, count },
            RawOp::ReadCoils => Request::ReadCoils { addr, count },
            RawOp::ReadDiscrete => Request::ReadDiscreteInputs { addr, count },
            RawOp::WriteRegister => {
                guard(Table::Holding, 1)?;
                let value = word(value()?)?;
                Request::WriteSingleRegister { addr, value }
            }
            RawOp::WriteRegisters => {
                let values = values()?.iter().map(word).collect::<Result<Vec<_>, _>>()?;
                guard(Table::Holding, values.len())?;
                Request::WriteMultipleRegisters { addr, values }
            }
            RawOp::WriteCoil => {
                guard(Table::Coil, 1)?;
                let value = bit(value()?)?;
                Request::WriteSingleCoil { addr, value }
            }
            RawOp::WriteCoils => {
                let values = values()?.iter().map(bit).collect::<Result<Vec<_>, _>>()?;
                guard(Table::Coil, values.len())?;
                Request::WriteMultipleCoils { addr, values }
            }
        })
    }

    /// The seed's one-shot form `VWED.device.modbus(ip=, port=, register=, value=)`:
    /// writes a holding register when a value is given, else reads.
    #[allow(clippy::too_many_arguments)]
    pub async fn modbus_oneshot(
        &self,
        who: &Who,
        ip: &str,
        port: u16,
        unit: Option<UnitId>,
        register: u16,
        value: Option<Value>,
        count: Option<u16>,
    ) -> Result<Value, IoOpError> {
        let target = self.bus_for_address(ip, port)?;
        let op = match value {
            Some(_) => RawOp::WriteRegister,
            None => RawOp::ReadHolding,
        };
        let raw = RawArgs {
            target,
            unit,
            address: register,
            count,
            value,
            values: None,
        };
        self.modbus(who, op, raw).await
    }

    /// The seed's one-shot form `VWED.device.modbus(ip=, port=, register=, value=)`:
    /// only for a Modbus TCP bus the device config declares.
    pub fn bus_for_address(&self, ip: &str, port: u16) -> Result<String, IoOpError> {
        let want = format!("{ip}:{port}");
        self.setup
            .devices
            .buses
            .iter()
            .find(|b| matches!(&b.config, BusConfig::Tcp { address, .. } if *address == want))
            .map(|b| b.name.clone())
            .ok_or_else(|| {
                IoOpError::BadArgs(format!(
                    "设备配置中没有地址为 {want} 的 Modbus TCP 总线; 请在 io_config 中添加 \
                     [[bus]] name = \"...\" kind = \"tcp\" host = \"{ip}\" port = {port}, \
                     然后使用 VWED.device.modbus(\"<bus 或 device 名称>\")"
                ))
            })
    }

    /// Sends one line to a line device (a `line` bus) and returns its reply
    /// (`null` when the device sent none); recorded like a write.
    pub async fn serial_request(
        &self,
        who: &Who,
        device: &str,
        line: &str,
        timeout_ms: Option<u64>,
    ) -> Result<Value, IoOpError> {
        let target = format!("serial:{device}");
        let reply = self
            .audited(who, &target, &json!(line), async {
                let client = self
                    .callers
                    .line(&self.io, &who.queue_name(), device, self.alive())
                    .ok_or_else(|| IoOpError::UnknownDevice {
                        name: device.to_string(),
                        known: self.line_buses(),
                    })?;
                let req = LineRequest {
                    line: line.to_string(),
                    expect_reply: true,
                };
                Ok(match timeout_ms {
                    // Dropping the submit withdraws the request if it has not started.
                    Some(ms) => tokio::time::timeout(Duration::from_millis(ms), client.submit(req))
                        .await
                        .map_err(|_| IoOpError::Timeout(ms))?,
                    None => client.submit(req).await,
                }?)
            })
            .await?;
        Ok(json!(reply))
    }

    fn line_buses(&self) -> String {
        self.setup
            .devices
            .buses
            .iter()
            .filter(|b| matches!(b.config, BusConfig::Line { .. }))
            .map(|b| b.name.clone())
            .collect::<Vec<_>>()
            .join(", ")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;
    use vwed_hal::{DataType, Encoding};

    fn point(tag: &str, address: u16, data_type: DataType, read_only: bool) -> PointSpec {
        PointSpec {
            tag: tag.into(),
            bus: "b".into(),
            unit: 1,
            table: Table::Holding,
            address,
            encoding: Encoding::plain(data_type),
            period: Duration::from_millis(100),
            deadband: 0.0,
            read_only,
        }
    }

    #[test]
    fn raw_writes_over_read_only_points_are_found() {
        let pts = [
            point("rw", 0, DataType::U16, false),
            point("ro32", 10, DataType::U32, true),
        ];
        let hit = |addr, n| read_only_overlap(&pts, "b", 1, Table::Holding, addr, n);
        assert_eq!(hit(0, 1), None);
        assert_eq!(hit(9, 1), None);
        assert_eq!(hit(9, 2), Some("ro32"), "touches the first word");
        assert_eq!(hit(11, 1), Some("ro32"), "the second word of a u32");
        assert_eq!(hit(12, 5), None);
        assert_eq!(read_only_overlap(&pts, "b", 2, Table::Holding, 10, 1), None);
        assert_eq!(read_only_overlap(&pts, "b", 1, Table::Coil, 10, 1), None);
    }

    #[test]
    fn register_and_coil_values() {
        assert_eq!(word(&serde_json::json!(65535)).ok(), Some(65535));
        assert_eq!(word(&serde_json::json!(-2)).ok(), Some(0xFFFE));
        assert!(word(&serde_json::json!(65536)).is_err());
        assert!(word(&serde_json::json!(1.5)).is_err());
        assert_eq!(bit(&serde_json::json!(1)).ok(), Some(true));
        assert!(bit(&serde_json::json!(2)).is_err());
    }
}
