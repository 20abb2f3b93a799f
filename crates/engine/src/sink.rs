//! What a script's worker says besides answers: registrations, output, logs and
//! `VWED.*` service calls.

use std::sync::{Arc, Weak};
use vwed_base::sync::Locked;

use vwed_ipc::lines;
use vwed_ipc::{
    FromWorker, Level, RegKind, Registration, Service, ServiceError, ServiceErrorKind, Stream,
    ToWorker,
};

use super::error_kinds::service_error;
use super::instance::{Instance, State};
use super::{Engine, Prepared, Target};
use crate::worker::{FrameSink, WorkerConn};

pub struct ScriptSink {
    engine: Weak<Engine>,
    inst: Arc<Instance>,
    /// `max_line_bytes`: the worker cuts longer lines already; this holds for
    /// whatever arrives all the same.
    line_limit: usize,
}

impl ScriptSink {
    pub fn new(engine: Weak<Engine>, inst: Arc<Instance>) -> Self {
        let line_limit = engine
            .upgrade()
            .map_or(lines::DEFAULT_LINE_BYTES, |e| e.cfg.engine.max_line_bytes);
        ScriptSink {
            engine,
            inst,
            line_limit,
        }
    }

    fn register(
        &self,
        engine: &Engine,
        conn: &Arc<WorkerConn>,
        reg: vwed_ipc::Registration,
    ) -> Result<(), ServiceError> {
        // A script registering in a loop must not exhaust the supervisor's memory.
        let made = self
            .inst
            .registrations
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let max = engine.cfg.engine.max_registrations;
        if made >= max {
            return Err(ServiceError::new(
                ServiceErrorKind::LimitExceeded,
                format!("注册数量已达上限 ({max} 个接口/函数/监听器/定时任务)"),
            ));
        }
        let target = Target {
            script_id: self.inst.script_id.clone(),
            conn: conn.clone(),
            handler: reg.handler(),
        };
        let prepared = engine
            .registry
            .prepare(reg, target)
            .map_err(service_error)?;
        let timeout = std::time::Duration::from_millis(engine.cfg.engine.call_timeout_ms);
        match &prepared {
            Prepared::Listener(l) => super::events::spawn_listener(l, timeout),
            Prepared::Timer(t) => super::timers::spawn_timer(t, timeout),
            _ => {}
        }
        let mut boot = self.inst.boot.locked();
        if let Some(phase) = boot.as_mut() {
            // During boot: stage, so that a failed start leaves nothing behind.
            if let Err(e) = engine.registry.conflict(&prepared, &phase.staged) {
                let refused = ServiceError::new(ServiceErrorKind::Conflict, e.to_string());
                phase.conflict.get_or_insert(e);
                return Err(refused);
            }
            phase.staged.push(prepared);
            return Ok(());
        }
        drop(boot);
        if self.inst.state() != State::Running {
            return Err(ServiceError::new(
                ServiceErrorKind::Conflict,
                "脚本已停止, 不再接受注册",
            ));
        }
        engine
            .registry
            .conflict(&prepared, &[])
            .and_then(|()| engine.registry.commit(vec![prepared]))
            .map_err(service_error)
    }

    /// One record in the script's log and output ring, cut to the line limit.
    fn record(
        &self,
        level: Level,
        stream: &'static str,
        text: &str,
        fields: Option<serde_json::Value>,
    ) {
        let text = lines::cut(text, self.line_limit).into_owned();
        let mut ring = self.inst.output.locked();
        self.inst
            .log
            .script_line(level, stream, text.clone(), fields.as_ref());
        ring.push(level, stream, text, fields);
    }

    /// Printed text: one record per line.
    fn lines(&self, stream: Stream, text: &str) {
        let (level, name) = stream.logged_as();
        for line in text.split('\n') {
            self.record(level, name, line, None);
        }
    }

    fn on_register(&self, engine: &Engine, conn: &Arc<WorkerConn>, req: u64, reg: Registration) {
        let result = self
            .register(engine, conn, reg)
            .map(|()| "null".to_string());
        let _ = conn.send(&ToWorker::Reply { req, result });
    }

    fn on_unregister(&self, engine: &Engine, kind: RegKind, handler: u32) {
        // Withdrawn during boot: it was only staged.
        let mut boot = self.inst.boot.locked();
        if let Some(phase) = boot.as_mut() {
            phase
                .staged
                .retain(|p| !(p.kind() == kind && p.handler() == handler));
        } else {
            drop(boot);
            engine
                .registry
                .withdraw(&self.inst.script_id, kind, handler);
        }
    }
}

/// A worker's `VWED.*` request, performed off the reader task and answered.
pub fn answer_request(
    engine: Arc<Engine>,
    inst: &Arc<Instance>,
    conn: &Arc<WorkerConn>,
    req: u64,
    service: Service,
) {
    let inst = inst.clone();
    let conn = conn.clone();
    tokio::spawn(async move {
        let result = engine.service(&inst, service).await;
        let _ = conn.send(&ToWorker::Reply { req, result });
    });
}

/// A `VWED.*` call nobody waits for. Emits are delivered here, through `emit`, in
/// frame order: one worker's events reach each listener in the order it emitted
/// them. Anything else runs in the background; a failure becomes a log line.
pub fn perform_notified(
    engine: Arc<Engine>,
    inst: &Arc<Instance>,
    service: Service,
    emit: impl FnOnce(&Engine, &str, &serde_json::Value),
) {
    if let Service::EventEmit { name, data } = &service {
        match serde_json::from_str::<serde_json::Value>(data.as_str()) {
            Ok(v) => emit(&engine, name, &v),
            Err(e) => inst.note(Level::Warning, format!("event.emit 参数错误: {e}")),
        }
        return;
    }
    let inst = inst.clone();
    tokio::spawn(async move {
        let name = service.name();
        if let Err(e) = engine.service(&inst, service).await {
            inst.note(Level::Warning, format!("{name} 失败: {e}"));
        }
    });
}

impl FrameSink for ScriptSink {
    fn on_frame(&self, conn: &Arc<WorkerConn>, msg: FromWorker) {
        let Some(engine) = self.engine.upgrade() else {
            return;
        };
        match msg {
            FromWorker::Booted { outcome, sandbox } => {
                let _ = self.inst.sandbox.set(sandbox);
                let mut boot = self.inst.boot.locked();
                if let Some(done) = boot.as_mut().and_then(|p| p.done.take()) {
                    let _ = done.send(outcome);
                }
            }
            FromWorker::Register { req, reg } => self.on_register(&engine, conn, req, reg),
            FromWorker::Unregister { kind, handler } => self.on_unregister(&engine, kind, handler),
            FromWorker::Request { req, service } => {
                answer_request(engine, &self.inst, conn, req, service)
            }
            FromWorker::Notify { service } => {
                perform_notified(engine, &self.inst, service, |e, name, data| {
                    e.emit(name, data);
                })
            }
            FromWorker::Output { stream, text } => self.lines(stream, &text),
            FromWorker::Traceback { text } => self.record(Level::Error, "stderr", &text, None),
            FromWorker::Log {
                level,
                message,
                fields,
            } => {
                let fields = log_fields(&fields, self.line_limit);
                self.record(level, "log", &message, fields);
            }
            FromWorker::RouteReply(_)
            | FromWorker::CallReply { .. }
            | FromWorker::Done { .. }
            | FromWorker::Analysis { .. }
            | FromWorker::Confined { .. } => {}
        }
    }

    fn on_closed(&self, _conn: &Arc<WorkerConn>) {}
}

/// The fields of a `VWED.log` line (a script's or a job's); a JSON text over the
/// line limit is replaced by a note rather than parsed.
pub fn log_fields(fields: &str, limit: usize) -> Option<serde_json::Value> {
    if fields.len() > limit {
        let note = format!("字段过长 ({} 字节), 已省略", fields.len());
        return Some(serde_json::json!({ "_truncated": note }));
    }
    serde_json::from_str::<serde_json::Value>(fields)
        .ok()
        .filter(|v| v.as_object().is_some_and(|o| !o.is_empty()))
}
