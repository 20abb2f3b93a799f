//! `VWED.io`, `VWED.device` and `VWED.robot` calls from script workers.

use std::sync::Arc;

use serde::Deserialize;
use serde_json::{Value, json};

use super::error::IoOpError;
use super::raw::{RawArgs, RawOp};
use super::{Who, audit};
use crate::engine::{Engine, Instance};

#[derive(Deserialize)]
struct TagArgs {
    tag: String,
    #[serde(default)]
    value: Value,
    #[serde(default)]
    live: bool,
    #[serde(default)]
    detail: bool,
}

#[derive(Deserialize)]
struct SerialArgs {
    device: String,
    line: String,
    #[serde(default)]
    timeout_ms: Option<u64>,
}

#[derive(Deserialize)]
struct OneShotArgs {
    ip: String,
    #[serde(default = "default_port")]
    port: u16,
    #[serde(default)]
    unit: Option<u8>,
    register: u16,
    #[serde(default)]
    value: Option<Value>,
    #[serde(default)]
    count: Option<u16>,
}

fn default_port() -> u16 {
    502
}

#[derive(Deserialize)]
struct RobotArgs {
    robot_id: String,
    #[serde(default)]
    command: Option<String>,
    #[serde(default)]
    value: Value,
    #[serde(default)]
    task_id: Value,
}

fn parse<T: for<'de> Deserialize<'de>>(args: &str) -> Result<T, IoOpError> {
    serde_json::from_str(args).map_err(|e| IoOpError::BadArgs(e.to_string()))
}

/// Performs one `io.*`, `device.*` or `robot.*` service call.
pub async fn call(
    engine: &Arc<Engine>,
    inst: &Arc<Instance>,
    service: &str,
    args: &str,
) -> Result<String, String> {
    let Some(io) = engine.io.get().cloned() else {
        return Err(IoOpError::NotConfigured.to_string());
    };
    let who = Who::Script(inst.script_id.to_string());
    let e: &Engine = engine;
    let r: Result<Value, IoOpError> = async {
        match service {
            "io.read" => {
                let a: TagArgs = parse(args)?;
                io.read_point(e, &who, &a.tag, a.live, a.detail).await
            }
            "io.write" => {
                let a: TagArgs = parse(args)?;
                io.write_point(e, &who, &a.tag, &a.value)
                    .await
                    .map(|()| Value::Null)
            }
            "io.points" => Ok(Value::Array(io.points_json())),
            "device.serial.request" => {
                let a: SerialArgs = parse(args)?;
                let target = format!("serial:{}", a.device);
                let r = io
                    .serial_request(e, &who, &a.device, &a.line, a.timeout_ms)
                    .await;
                audit::write(
                    e,
                    &who,
                    &target,
                    &json!(a.line),
                    &r.as_ref().map(|_| ()).map_err(ToString::to_string),
                );
                r.map(|line| json!(line))
            }
            "device.modbus.oneshot" => {
                let a: OneShotArgs = parse(args)?;
                let bus = io.bus_for_address(&a.ip, a.port)?;
                let (op, value) = match a.value {
                    Some(v) => (RawOp::WriteRegister, Some(v)),
                    None => (RawOp::ReadHolding, None),
                };
                let raw = RawArgs {
                    target: bus,
                    unit: a.unit,
                    address: a.register,
                    count: a.count,
                    value,
                    values: None,
                };
                io.modbus(e, &who, op, raw).await
            }
            s if s.starts_with("device.modbus.") => {
                let name = &s["device.modbus.".len()..];
                let op = RawOp::parse(name)
                    .ok_or_else(|| IoOpError::BadArgs(format!("未知的 Modbus 操作 {name}")))?;
                io.modbus(e, &who, op, parse(args)?).await
            }
            "robot.get_status" => {
                let a: RobotArgs = parse(args)?;
                io.robot_status(&a.robot_id)
            }
            "robot.get_all" => Ok(Value::Array(io.robots_json())),
            "robot.dispatch" => {
                let a: RobotArgs = parse(args)?;
                let value = if a.value.is_null() {
                    a.task_id
                } else {
                    a.value
                };
                io.robot_dispatch(e, &who, &a.robot_id, a.command.as_deref(), &value)
                    .await
            }
            other => Err(IoOpError::BadArgs(format!("未知的服务调用: {other}"))),
        }
    }
    .await;
    r.map(|v| v.to_string()).map_err(|e| e.to_string())
}
