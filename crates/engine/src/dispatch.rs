//! `VWED.*` calls that a worker asks the supervisor to perform: one `match` over
//! [`Service`], each arm handing typed arguments to the function that does the work.

use std::sync::Arc;

use serde_json::{Value, json};
use vwed_ipc::{JsonText, ModbusArgs, Service, ServiceError, ServiceErrorKind};

use super::Engine;
use super::error_kinds::{Failed, Kind};
use super::instance::Instance;
use vwed_integrations::{self as integrations, task_server::Op};
use vwed_io::{IoRuntime, RawArgs, RawOp, Who};
use vwed_store::ScriptData;

/// A dynamic argument as a JSON value.
fn value(t: &JsonText) -> Result<Value, ServiceError> {
    serde_json::from_str(t.as_str())
        .map_err(|e| ServiceError::new(ServiceErrorKind::BadArguments, format!("参数错误: {e}")))
}

/// Runs blocking store work off the executor threads.
async fn blocking<T, E>(f: impl FnOnce() -> Result<T, E> + Send + 'static) -> Result<T, Failed>
where
    T: Send + 'static,
    E: Kind + Send + 'static,
{
    match tokio::task::spawn_blocking(f).await {
        Ok(r) => r.map_err(Failed::from),
        Err(e) => Err(Failed(ServiceError::new(
            ServiceErrorKind::Internal,
            e.to_string(),
        ))),
    }
}

impl Engine {
    /// Performs one service call and answers with JSON text or a typed error.
    pub async fn service(
        self: &Arc<Self>,
        inst: &Arc<Instance>,
        service: Service,
    ) -> Result<String, ServiceError> {
        match self.perform(inst, service).await {
            Ok(v) => Ok(v.to_string()),
            Err(Failed(e)) => Err(e),
        }
    }

    // long: one arm per service, so that the compiler checks every one is handled;
    // each arm only hands typed arguments on.
    async fn perform(
        self: &Arc<Self>,
        inst: &Arc<Instance>,
        service: Service,
    ) -> Result<Value, Failed> {
        let db = self.store.db().clone();
        let setup = self.integrations.clone();
        let script = inst.script_id.clone();
        match service {
            Service::FunctionCall {
                name,
                args,
                timeout_ms,
            } => Ok(self
                .call_function(None, &name, &value(&args)?, timeout_ms)
                .await?),
            Service::FunctionList => Ok(Value::Array(self.functions_json())),
            Service::LogFlush => self.flush_logs(inst).await,
            Service::EventEmit { name, data } => {
                self.emit(&name, &value(&data)?);
                Ok(Value::Null)
            }
            Service::DataSet { key, value: v } => {
                value(&v)?;
                self.data_op(inst, move |d, s| {
                    d.set(s, &key, v.as_str()).map(|()| Value::Null)
                })
                .await
            }
            Service::DataGet { key } => {
                self.data_op(inst, move |d, s| {
                    d.get(s, &key).map(|v| match v {
                        Some(value) => json!({"found": true, "value": value}),
                        None => json!({"found": false}),
                    })
                })
                .await
            }
            Service::DataHas { key } => {
                self.data_op(inst, move |d, s| {
                    d.get(s, &key).map(|v| Value::Bool(v.is_some()))
                })
                .await
            }
            Service::DataDelete { key } => {
                self.data_op(inst, move |d, s| d.delete(s, &key).map(Value::Bool))
                    .await
            }
            Service::DataKeys => self.data_op(inst, |d, s| d.keys(s).map(|k| json!(k))).await,
            Service::DataClear => {
                self.data_op(inst, |d, s| d.clear(s).map(|()| Value::Null))
                    .await
            }
            Service::TaskGetVariables { task_id } => {
                blocking(move || integrations::get_variables(db, &task_id)).await
            }
            Service::TaskSetVariable {
                task_id,
                name,
                value: v,
            } => {
                let v = value(&v)?;
                blocking(move || integrations::set_variable(db, &task_id, &name, v)).await
            }
            Service::TaskCreate {
                task_label,
                input_params,
            } => {
                let op = Op::Create {
                    task_label,
                    input_params: value(&input_params)?,
                };
                Ok(integrations::task_server::call(&setup, &script, op).await?)
            }
            Service::TaskGetStatus { task_id } => {
                let op = Op::Status { task_id };
                Ok(integrations::task_server::call(&setup, &script, op).await?)
            }
            Service::TaskStop { task_id } => {
                let op = Op::Stop { task_id };
                Ok(integrations::task_server::call(&setup, &script, op).await?)
            }
            Service::TaskExecute {
                task_id,
                input_params,
            } => {
                let op = Op::Execute {
                    task_id,
                    input_params: value(&input_params)?,
                };
                Ok(integrations::task_server::call(&setup, &script, op).await?)
            }
            Service::StorageGetLocation { location_code } => {
                blocking(move || integrations::get_location(db, &location_code)).await
            }
            Service::StorageListLocations {
                area,
                locked,
                limit,
            } => {
                blocking(move || integrations::list_locations(db, area.as_deref(), locked, limit))
                    .await
            }
            Service::StorageLockLocation {
                location_code,
                task_id,
            } => blocking(move || integrations::lock_location(db, &location_code, &task_id)).await,
            Service::StorageUnlockLocation {
                location_code,
                task_id,
                force,
            } => {
                blocking(move || {
                    integrations::unlock_location(db, &location_code, task_id.as_deref(), force)
                })
                .await
            }
            Service::HttpRequest(r) => Ok(integrations::http_request(&setup, r).await?),
            Service::MailSend(m) => Ok(integrations::mail::send(&setup, m).await?),
            Service::MailAttachmentDir => {
                Ok(integrations::mail::ensure_attachment_dir(&setup).await?)
            }
            Service::IoRead { tag, live, detail } => {
                let (io, who) = self.io_for(inst)?;
                Ok(io.read_point(&who, &tag, live, detail).await?)
            }
            Service::IoWrite { tag, value: v } => {
                let (io, who) = self.io_for(inst)?;
                io.write_point(&who, &tag, &value(&v)?).await?;
                Ok(Value::Null)
            }
            Service::IoPoints => Ok(Value::Array(self.io_for(inst)?.0.points_json())),
            Service::SerialRequest {
                device,
                line,
                timeout_ms,
            } => {
                let (io, who) = self.io_for(inst)?;
                Ok(io.serial_request(&who, &device, &line, timeout_ms).await?)
            }
            Service::ModbusOneShot {
                ip,
                port,
                unit,
                register,
                value: v,
                count,
            } => {
                let (io, who) = self.io_for(inst)?;
                let v = v.as_ref().map(value).transpose()?;
                Ok(io
                    .modbus_oneshot(&who, &ip, port, unit, register, v, count)
                    .await?)
            }
            Service::ModbusReadHolding(a) => self.modbus(inst, RawOp::ReadHolding, a).await,
            Service::ModbusReadInput(a) => self.modbus(inst, RawOp::ReadInput, a).await,
            Service::ModbusReadCoils(a) => self.modbus(inst, RawOp::ReadCoils, a).await,
            Service::ModbusReadDiscrete(a) => self.modbus(inst, RawOp::ReadDiscrete, a).await,
            Service::ModbusWriteRegister(a) => self.modbus(inst, RawOp::WriteRegister, a).await,
            Service::ModbusWriteRegisters(a) => self.modbus(inst, RawOp::WriteRegisters, a).await,
            Service::ModbusWriteCoil(a) => self.modbus(inst, RawOp::WriteCoil, a).await,
            Service::ModbusWriteCoils(a) => self.modbus(inst, RawOp::WriteCoils, a).await,
            Service::RobotGetStatus { robot_id } => {
                Ok(self.io_for(inst)?.0.robot_status(&robot_id)?)
            }
            Service::RobotGetAll => Ok(Value::Array(self.io_for(inst)?.0.robots_json())),
            Service::RobotDispatch {
                robot_id,
                command,
                value: v,
                task_id,
            } => {
                let (io, who) = self.io_for(inst)?;
                // The seed dispatches a task id; `value` is the general form.
                let v = value(&v)?;
                let v = if v.is_null() { value(&task_id)? } else { v };
                Ok(io
                    .robot_dispatch(&who, &robot_id, command.as_deref(), &v)
                    .await?)
            }
        }
    }

    /// The I/O runtime and the script as its caller.
    fn io_for(&self, inst: &Instance) -> Result<(Arc<IoRuntime>, Who), Failed> {
        let io = self
            .io
            .get()
            .cloned()
            .ok_or(vwed_io::IoOpError::NotConfigured)?;
        Ok((io, Who::Script(inst.script_id.to_string())))
    }

    async fn modbus(&self, inst: &Instance, op: RawOp, a: ModbusArgs) -> Result<Value, Failed> {
        let (io, who) = self.io_for(inst)?;
        let raw = RawArgs {
            target: a.target,
            unit: a.unit,
            address: a.address,
            count: a.count,
            value: a.value.as_ref().map(value).transpose()?,
            values: a
                .values
                .map(|vs| vs.iter().map(value).collect::<Result<Vec<_>, _>>())
                .transpose()?,
        };
        Ok(io.modbus(&who, op, raw).await?)
    }

    /// Frames are handled in order, so every line this worker sent before the
    /// request is already queued: the answer means they are on disk.
    async fn flush_logs(&self, inst: &Instance) -> Result<Value, Failed> {
        let n = self
            .logs
            .store
            .flush()
            .await
            .map_err(|e| ServiceError::new(ServiceErrorKind::Internal, e.to_string()))?;
        // Lines this run lost to its rate limit are not on disk: say so.
        let dropped = inst
            .log
            .rate_dropped
            .load(std::sync::atomic::Ordering::Relaxed);
        Ok(json!({"committed": n, "rate_dropped": dropped}))
    }

    /// Data belongs to the script file, not the run: it survives restarts.
    async fn data_op(
        &self,
        inst: &Instance,
        op: impl FnOnce(&ScriptData, &str) -> Result<Value, vwed_store::DataError> + Send + 'static,
    ) -> Result<Value, Failed> {
        let data = self.data.clone();
        let script = inst.script_path.clone();
        blocking(move || op(&data, &script)).await
    }
}
