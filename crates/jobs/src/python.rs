//! A Python job: a fresh worker (the same sandboxed worker process as a service
//! script) gets one `Job` message and answers with the result. What the job
//! writes streams into the execution's output and its log; its `VWED.*` calls are
//! served like a script's, under the execution id; registrations are refused.

use std::sync::{Arc, Mutex, Weak};
use vwed_base::sync::Locked;

use serde_json::Value;
use vwed_ipc::{
    FromWorker, JobRun, Level, ScriptError, ScriptErrorKind, ServiceError, ServiceErrorKind,
    Stream, ToWorker, lines,
};

use super::attempt::AttemptRun;
use super::capture::Capture;
use super::model::ExecStatus;
use super::process::{Outcome, conclude, drain, end_group, supervise};
use super::triggers::emitting_from;
use vwed_base::pipe::read_lines;
use vwed_engine::supervise::Supervised;
use vwed_engine::supervision::{RestartMode, RestartPolicy};
use vwed_engine::worker::{Answer, FrameSink, WorkerConn};
use vwed_engine::{Engine, Instance, answer_request, log_fields, perform_notified};

pub async fn run(a: &mut AttemptRun) -> Outcome {
    let engine = a.engine.clone();
    let w = match engine.fresh_worker() {
        Ok(w) => w,
        Err(e) => return Outcome::failed(format!("作业进程无法启动: {e}")),
    };
    let pid = w.pid;
    let Attached {
        mut child,
        sink,
        conn,
        readers,
    } = attach(a, &engine, w);
    let req = conn.next_req();
    let msg = ToWorker::Job(JobRun {
        req,
        execution_id: a.exec.id.clone(),
        job_path: super::model::job_path(a.exec.job_id),
        source: a.spec.content.clone(),
        params: a.exec.params.to_string(),
        env: a.env.clone(),
        sandbox: match sandbox_policy(&engine.cfg, &a.work_dir) {
            Ok(p) => p,
            Err(e) => {
                end_group(&mut child, pid, a.grace).await;
                return Outcome::failed(format!("作业沙箱无法准备: {e}"));
            }
        },
        max_line_bytes: u32::try_from(engine.cfg.engine.max_line_bytes).unwrap_or(u32::MAX),
    });
    let answer = match conn.send_request(req, &msg) {
        Ok(rx) => rx,
        Err(e) => {
            end_group(&mut child, pid, a.grace).await;
            return Outcome::failed(format!("作业无法发送到工作进程: {e}"));
        }
    };
    let ending = supervise(
        &mut child,
        async { answer.await.ok() },
        a.timeout,
        &mut a.cancel,
    )
    .await;
    let mut outcome = conclude(ending, &mut child, pid, a.grace, a.timeout, answered).await;
    drain(readers).await;
    outcome.traceback = sink.traceback.locked().take();
    outcome.sandbox = sink.sandbox.locked().take();
    outcome
}

/// What an attempt holds of its worker: the process, the connection with the
/// job's sink, and the readers of its fd 1 and 2.
struct Attached {
    child: tokio::process::Child,
    sink: Arc<JobSink>,
    conn: Arc<WorkerConn>,
    readers: Vec<tokio::task::JoinHandle<()>>,
}

fn attach(a: &AttemptRun, engine: &Arc<Engine>, w: vwed_engine::worker::SpawnedWorker) -> Attached {
    // The job's `VWED.*` calls are served as a script's, under the execution id.
    // A job is never restarted by the service supervision: its retries are its own.
    let policy = RestartPolicy {
        mode: RestartMode::Never,
        ..engine.cfg.supervision.default_policy()
    };
    let supervised = Arc::new(Supervised::new(
        super::model::job_path(a.exec.job_id),
        policy,
        a.exec.params.clone(),
    ));
    let inst = Arc::new(Instance::new(
        a.exec.id.clone(),
        0,
        "job".to_string(),
        vwed_engine::output::OutputRing::new(
            engine.cfg.engine.output_lines,
            engine.cfg.engine.output_max_bytes,
        ),
        &engine.logs,
        supervised,
    ));
    inst.set_pid(w.pid);
    let sink = Arc::new(JobSink {
        engine: Arc::downgrade(engine),
        inst: inst.clone(),
        capture: a.capture.clone(),
        line_limit: engine.cfg.engine.max_line_bytes,
        job: a.exec.job_id,
        depth: a.exec.depth,
        traceback: Mutex::new(None),
        sandbox: Mutex::new(None),
    });
    let conn = WorkerConn::start(w.stream, sink.clone());
    inst.set_conn(conn.clone());
    let mut readers = Vec::new();
    if let Some(out) = w.stdout {
        readers.push(sink.pipe(out, Stream::Stdout));
    }
    if let Some(err) = w.stderr {
        readers.push(sink.pipe(err, Stream::Stderr));
    }
    Attached {
        child: w.child,
        sink,
        conn,
        readers,
    }
}

fn sandbox_policy(
    cfg: &vwed_engine::EngineConfig,
    work_dir: &std::path::Path,
) -> std::io::Result<vwed_ipc::SandboxPolicy> {
    // Grants of jobs (`[sandbox.projects._jobs]`); the work dir is the one folder
    // a job may write besides them.
    let mut policy = vwed_engine::confinement::policy(cfg, vwed_sandbox::JOB_GRANTS)?;
    policy.scratch_dir = std::fs::canonicalize(work_dir)?
        .to_string_lossy()
        .into_owned();
    Ok(policy)
}

fn answered(answer: Answer) -> Outcome {
    match answer {
        Answer::Call(Ok(json)) => {
            let mut o = Outcome::new(ExecStatus::Succeeded);
            o.result = Some(serde_json::from_str(&json).unwrap_or(Value::String(json)));
            o.exit_code = Some(0);
            o
        }
        Answer::Call(Err(ScriptError {
            kind: ScriptErrorKind::BadResult,
            message,
        })) => Outcome::failed(message),
        Answer::Call(Err(ScriptError { message, .. })) => {
            let mut o = Outcome::new(ExecStatus::Failed);
            o.exception = Some(message);
            o
        }
        other => Outcome::failed(format!("工作进程应答类型错误: {other:?}")),
    }
}

struct JobSink {
    engine: Weak<Engine>,
    inst: Arc<Instance>,
    capture: Arc<Capture>,
    /// `max_line_bytes`: the worker cuts longer lines already; this holds for
    /// whatever arrives all the same.
    line_limit: usize,
    job: u64,
    depth: u8,
    /// The last traceback the job reported: its exception, in full.
    traceback: Mutex<Option<String>>,
    /// What the worker put in force before the job ran.
    sandbox: Mutex<Option<vwed_ipc::SandboxReport>>,
}

impl JobSink {
    fn line(&self, level: Level, stream: &'static str, text: &str, fields: Option<&Value>) {
        let text = lines::cut(text, self.line_limit);
        self.capture.push(&text);
        self.inst
            .log
            .script_line(level, stream, text.into_owned(), fields);
    }

    /// Lines written to the worker's fd 1/2 directly (the interpreter's own errors).
    fn pipe(
        &self,
        r: impl tokio::io::AsyncRead + Unpin + Send + 'static,
        stream: Stream,
    ) -> tokio::task::JoinHandle<()> {
        let (level, stream) = stream.logged_as();
        let (capture, log) = (self.capture.clone(), self.inst.log.clone());
        tokio::spawn(read_lines(r, self.line_limit, move |line| {
            capture.push(&line);
            log.script_line(level, stream, line, None);
        }))
    }
}

impl FrameSink for JobSink {
    fn on_frame(&self, conn: &Arc<WorkerConn>, msg: FromWorker) {
        let Some(engine) = self.engine.upgrade() else {
            return;
        };
        match msg {
            FromWorker::Output { stream, text } => {
                let (level, name) = stream.logged_as();
                for l in text.split('\n') {
                    self.line(level, name, l, None);
                }
            }
            FromWorker::Traceback { text } => {
                self.line(Level::Error, "stderr", &text, None);
                *self.traceback.locked() = Some(text);
            }
            FromWorker::Log {
                level,
                message,
                fields,
            } => {
                let fields = log_fields(&fields, self.line_limit);
                let message = lines::cut(&message, self.line_limit).into_owned();
                self.capture
                    .push(&format!("[{}] {message}", level.as_str()));
                self.inst
                    .log
                    .script_line(level, "log", message, fields.as_ref());
            }
            FromWorker::Request { req, service } => {
                answer_request(engine, &self.inst, conn, req, service)
            }
            FromWorker::Notify { service } => {
                let (job, depth) = (self.job, self.depth);
                perform_notified(engine, &self.inst, service, |e, name, data| {
                    emitting_from(job, depth, || e.emit(name, data));
                })
            }
            FromWorker::Register { req, .. } => {
                let refused = ServiceError::new(
                    ServiceErrorKind::Conflict,
                    "作业不能注册接口、函数、事件监听器或定时任务 (注册只属于服务脚本的 boot())",
                );
                let _ = conn.send(&ToWorker::Reply {
                    req,
                    result: Err(refused),
                });
            }
            FromWorker::Unregister { .. }
            | FromWorker::Booted { .. }
            | FromWorker::RouteReply(_)
            | FromWorker::CallReply { .. }
            | FromWorker::Done { .. }
            | FromWorker::Analysis { .. } => {}
            FromWorker::Confined { sandbox } => {
                *self.sandbox.locked() = Some(sandbox);
            }
        }
    }

    fn on_closed(&self, _conn: &Arc<WorkerConn>) {}
}
