//! `_vwed`: the native module that `vwed_runtime.py` builds the `VWED` object on.
//! Everything that crosses to the supervisor goes through here.

use std::sync::{Mutex, OnceLock};
use std::time::Duration;

use pyo3::exceptions::{PyRuntimeError, PyValueError};
use pyo3::prelude::*;
use pyo3::types::{PyDict, PyList, PyString, PyTuple};
use vwed_ipc::{
    Analysis, BootOutcome, FromWorker, Level, RegKind, Registration, RouteReply, RouteRequest,
    ScriptError, ScriptErrorKind, Service, ServiceError, ServiceErrorKind, Stream, SyntaxError,
    TimerSchedule, ToWorker,
};

use crate::bounded;
use crate::channel::{self, ChannelError};
use crate::convert::{json_to_py, py_to_json, py_to_json_string, value_to_py};

static SCRIPT_ID: Mutex<String> = Mutex::new(String::new());
static HEADERS_TYPE: OnceLock<Py<PyAny>> = OnceLock::new();
/// `(kind, code, message) -> VWEDError`: the facade's error classes.
static ERROR_FACTORY: OnceLock<Py<PyAny>> = OnceLock::new();

/// Registrations are answered at once by the supervisor; this only bounds a stuck one.
const REGISTER_TIMEOUT: Duration = Duration::from_secs(30);

fn chan_err(e: ChannelError) -> PyErr {
    service_err(ServiceError::from(e))
}

/// The `VWEDError` subclass for `e`'s kind, with its message (and Modbus code).
fn service_err(e: ServiceError) -> PyErr {
    Python::attach(|py| {
        let made = ERROR_FACTORY.get().map(|f| {
            f.bind(py)
                .call1((e.kind.as_str(), e.kind.code(), e.message.as_str()))
        });
        match made {
            Some(Ok(err)) => PyErr::from_value(err),
            Some(Err(failed)) => failed,
            None => PyRuntimeError::new_err(e.message),
        }
    })
}

/// `(kind, code, message)`, as the loop hands an asynchronous failure to the facade.
fn error_tuple(e: &ServiceError) -> (&'static str, Option<u8>, &str) {
    (e.kind.as_str(), e.kind.code(), e.message.as_str())
}

fn bad_arguments(message: String) -> PyErr {
    service_err(ServiceError::new(ServiceErrorKind::BadArguments, message))
}

/// A wait in seconds from a script: NaN, infinite or negative is refused instead
/// of reaching `Duration`, which panics on them.
fn wait_of(timeout_s: f64) -> PyResult<Duration> {
    if !timeout_s.is_finite() || timeout_s < 0.0 {
        return Err(bad_arguments(format!(
            "timeout 必须是有限的非负秒数, 得到 {timeout_s}"
        )));
    }
    Ok(Duration::from_secs_f64(timeout_s.clamp(0.001, 86_400.0)))
}

/// The service `name` with the script's `args`, checked against [`Service`].
fn service_of(name: &str, args: &Bound<'_, PyAny>) -> PyResult<Service> {
    let args =
        py_to_json_string(args).map_err(|e| bad_arguments(format!("{name} 参数错误: {e}")))?;
    Service::from_json(name, &args).map_err(service_err)
}

fn send(msg: FromWorker) -> PyResult<()> {
    channel::with(|ch| ch.send(&msg)).map_err(chan_err)
}

fn send_soon(msg: FromWorker) -> PyResult<()> {
    channel::with(|ch| ch.send_soon(&msg)).map_err(chan_err)
}

fn to_py_messages<'py>(
    py: Python<'py>,
    msgs: Vec<ToWorker>,
    eof: bool,
) -> PyResult<Bound<'py, PyList>> {
    let list = PyList::empty(py);
    for m in msgs {
        let item: Bound<'py, PyAny> = match m {
            ToWorker::Boot(b) => {
                bounded::set_line_limit(b.max_line_bytes as usize);
                // Before the script exists in Python: nothing of it runs unconfined.
                if let Some(refused) = crate::sandbox::enter(py, &b.sandbox) {
                    report_boot(refused)?;
                    continue;
                }
                if let Ok(mut g) = SCRIPT_ID.lock() {
                    g.clone_from(&b.script_id);
                }
                let params = json_to_py(py, &b.start_params)?;
                (
                    "boot",
                    b.script_id,
                    b.script_path,
                    b.file_name,
                    b.source,
                    params,
                )
                    .into_pyobject(py)?
                    .into_any()
            }
            ToWorker::Route(r) => {
                let req = r.req;
                let handler = r.handler;
                let data = request_data(py, r)?;
                ("route", req, handler, data).into_pyobject(py)?.into_any()
            }
            ToWorker::Call { req, handler, args } => {
                let args = json_to_py(py, &args)?;
                ("call", req, handler, args).into_pyobject(py)?.into_any()
            }
            ToWorker::Event {
                req,
                handlers,
                name,
                data,
            } => {
                let data = json_to_py(py, &data)?;
                ("event", req, handlers, name, data)
                    .into_pyobject(py)?
                    .into_any()
            }
            ToWorker::Timer { req, handler } => {
                ("timer", req, handler).into_pyobject(py)?.into_any()
            }
            ToWorker::Cancel { req } => ("cancel", req).into_pyobject(py)?.into_any(),
            ToWorker::Reply { req, result } => match result {
                Ok(v) => ("reply", req, json_to_py(py, &v)?, py.None())
                    .into_pyobject(py)?
                    .into_any(),
                Err(e) => ("reply", req, py.None(), error_tuple(&e))
                    .into_pyobject(py)?
                    .into_any(),
            },
            ToWorker::Analyze { req, source } => {
                ("analyze", req, source).into_pyobject(py)?.into_any()
            }
            ToWorker::Ping { req } => ("ping", req).into_pyobject(py)?.into_any(),
            ToWorker::Stop => ("stop",).into_pyobject(py)?.into_any(),
            ToWorker::Job(j) => match job_message(py, j)? {
                Some(item) => item,
                None => continue,
            },
        };
        list.append(item)?;
    }
    if eof {
        list.append(("eof",))?;
    }
    Ok(list)
}

/// A one-shot job for the loop, once the worker has confined itself; `None` when
/// the confinement the policy requires is not complete (the job is answered as
/// failed instead of run).
fn job_message<'py>(py: Python<'py>, j: vwed_ipc::JobRun) -> PyResult<Option<Bound<'py, PyAny>>> {
    bounded::set_line_limit(j.max_line_bytes as usize);
    // As for a script's Boot: nothing of the job runs unconfined.
    let refused = crate::sandbox::enter(py, &j.sandbox);
    send(FromWorker::Confined {
        sandbox: crate::sandbox::report(),
    })?;
    if let Some(refused) = refused {
        let message = match refused {
            BootOutcome::Failed { message, .. } => message,
            other => format!("{other:?}"),
        };
        let result = Err(ScriptError {
            kind: ScriptErrorKind::Raised,
            message,
        });
        send(FromWorker::CallReply { req: j.req, result })?;
        flush()?;
        return Ok(None);
    }
    if let Ok(mut g) = SCRIPT_ID.lock() {
        g.clone_from(&j.execution_id);
    }
    let params = json_to_py(py, &j.params)?;
    let item = (
        "job",
        j.req,
        j.execution_id,
        j.job_path,
        j.source,
        params,
        j.env,
    );
    Ok(Some(item.into_pyobject(py)?.into_any()))
}

fn request_data<'py>(py: Python<'py>, r: RouteRequest) -> PyResult<Bound<'py, PyAny>> {
    let d = PyDict::new(py);
    d.set_item("method", r.method)?;
    d.set_item("path", r.path)?;
    let q = PyDict::new(py);
    for (k, v) in r.query {
        // First value wins, like most web frameworks' dict view of a query string.
        if !q.contains(&k)? {
            q.set_item(k, v)?;
        }
    }
    d.set_item("query_params", q)?;
    let pp = PyDict::new(py);
    for (k, v) in r.path_params {
        pp.set_item(k, v)?;
    }
    d.set_item("path_params", pp)?;
    let h = PyDict::new(py);
    for (k, v) in r.headers {
        h.set_item(k, v)?;
    }
    let headers = match HEADERS_TYPE.get() {
        Some(t) => t.bind(py).call1((h,))?,
        None => h.into_any(),
    };
    d.set_item("headers", headers)?;
    if r.body.is_empty() {
        d.set_item("body", PyDict::new(py))?;
        d.set_item("json", py.None())?;
    } else {
        match serde_json::from_slice::<serde_json::Value>(&r.body) {
            Ok(v) => {
                let obj = value_to_py(py, &v)?;
                d.set_item("body", &obj)?;
                d.set_item("json", obj)?;
            }
            Err(_) => {
                d.set_item("body", String::from_utf8_lossy(&r.body))?;
                d.set_item("json", py.None())?;
            }
        }
    }
    d.set_item("client", r.client)?;
    if let Ok(g) = SCRIPT_ID.lock() {
        d.set_item("script_id", g.as_str())?;
    }
    Ok(d.into_any())
}

#[pyfunction]
fn configure(headers_type: Bound<'_, PyAny>, error_factory: Bound<'_, PyAny>) {
    let _ = HEADERS_TYPE.set(headers_type.unbind());
    let _ = ERROR_FACTORY.set(error_factory.unbind());
}

/// The submodules of `vwed_runtime`, by name: the worker needs no files on disk.
#[pyfunction]
fn runtime_sources(py: Python<'_>) -> PyResult<Bound<'_, PyDict>> {
    let d = PyDict::new(py);
    for (name, source) in crate::RUNTIME_MODULES {
        d.set_item(name, source)?;
    }
    Ok(d)
}

/// Every service name, for the facade's self-check.
#[pyfunction]
fn service_names() -> Vec<&'static str> {
    Service::names().to_vec()
}

#[pyfunction]
fn fileno() -> PyResult<i32> {
    channel::with(|ch| Ok(ch.fd())).map_err(chan_err)
}

/// Messages that have arrived, without blocking.
#[pyfunction]
fn recv(py: Python<'_>) -> PyResult<Bound<'_, PyList>> {
    let (msgs, eof) = channel::with(|ch| Ok((ch.drain()?, ch.is_eof()))).map_err(chan_err)?;
    to_py_messages(py, msgs, eof)
}

/// Waits for at least one message (used before the event loop runs).
#[pyfunction]
fn recv_blocking(py: Python<'_>) -> PyResult<Bound<'_, PyList>> {
    let (msgs, eof) = py
        .detach(|| channel::with(|ch| Ok((ch.drain_blocking()?, ch.is_eof()))))
        .map_err(chan_err)?;
    to_py_messages(py, msgs, eof)
}

/// True when messages were parked during a synchronous call and the loop must look
/// again even though the socket may not turn readable.
#[pyfunction]
fn pending() -> PyResult<bool> {
    channel::with(|ch| Ok(ch.has_stash())).map_err(chan_err)
}

#[pyfunction]
fn has_output() -> PyResult<bool> {
    channel::with(|ch| Ok(ch.has_output())).map_err(chan_err)
}

#[pyfunction]
fn flush() -> PyResult<()> {
    channel::with(|ch| ch.flush()).map_err(chan_err)
}

/// What a script wrote to stdout (1) or stderr (2): whole lines go to the
/// supervisor, each at most the line limit. Tells whether anything was queued.
#[pyfunction]
fn output(stream: i32, text: Bound<'_, PyString>) -> PyResult<bool> {
    bounded::write(stream, &text, |lines| send_output(stream, lines))
}

/// Sends the unfinished line of `stream`, if any (`sys.stdout.flush()`).
#[pyfunction]
fn output_flush(stream: i32) -> PyResult<bool> {
    bounded::flush(stream, |lines| send_output(stream, lines))
}

fn send_output(stream: i32, mut text: String) -> PyResult<()> {
    // The supervisor splits on line breaks; the last one ends the last line.
    if text.ends_with('\n') {
        text.pop();
    }
    let stream = if stream == 2 {
        Stream::Stderr
    } else {
        Stream::Stdout
    };
    send_soon(FromWorker::Output { stream, text })
}

#[pyfunction]
fn log(level: &str, message: Bound<'_, PyString>, fields: Bound<'_, PyAny>) -> PyResult<()> {
    let level = Level::parse(level)
        .ok_or_else(|| PyValueError::new_err(format!("unknown log level {level}")))?;
    let message = bounded::record(&message)?;
    let fields = if fields.is_none() {
        String::from("{}")
    } else {
        bounded::fields(&fields)?
    };
    send_soon(FromWorker::Log {
        level,
        message,
        fields,
    })
}

/// Sends a request and waits for its answer; a refusal raises its `VWEDError`.
fn blocking_request(
    py: Python<'_>,
    msg_for: impl FnOnce(u64) -> FromWorker,
    timeout: Duration,
) -> PyResult<String> {
    let req = channel::with(|ch| Ok(ch.next_req())).map_err(chan_err)?;
    let msg = msg_for(req);
    py.detach(|| channel::with(|ch| ch.request(req, &msg, timeout)))
        .map_err(chan_err)?
        .map_err(service_err)
}

fn register(py: Python<'_>, reg: Registration) -> PyResult<()> {
    blocking_request(
        py,
        |req| FromWorker::Register { req, reg },
        REGISTER_TIMEOUT,
    )
    .map(drop)
}

#[pyfunction]
fn register_route(
    py: Python<'_>,
    handler: u32,
    method: String,
    path: String,
    description: String,
    public: bool,
) -> PyResult<()> {
    register(
        py,
        Registration::Route {
            handler,
            method,
            path,
            description,
            public,
        },
    )
}

#[pyfunction]
#[allow(clippy::too_many_arguments)]
fn register_function(
    py: Python<'_>,
    handler: u32,
    name: String,
    description: String,
    parameters: Bound<'_, PyAny>,
    return_schema: Bound<'_, PyAny>,
    tags: Vec<String>,
    is_async: bool,
) -> PyResult<()> {
    let parameters = py_to_json_string(&parameters)?;
    let return_schema = py_to_json_string(&return_schema)?;
    register(
        py,
        Registration::Function {
            handler,
            name,
            description,
            parameters,
            return_schema,
            tags,
            is_async,
        },
    )
}

#[pyfunction]
fn register_listener(py: Python<'_>, handler: u32, event: String, priority: i64) -> PyResult<()> {
    register(
        py,
        Registration::Listener {
            handler,
            event,
            priority,
        },
    )
}

#[pyfunction]
#[pyo3(signature = (handler, name, interval_ms, delay_ms, repeat, cron=None))]
fn register_timer(
    py: Python<'_>,
    handler: u32,
    name: String,
    interval_ms: u64,
    delay_ms: u64,
    repeat: bool,
    cron: Option<String>,
) -> PyResult<()> {
    let schedule = match cron {
        Some(expr) => TimerSchedule::Cron { expr },
        None => TimerSchedule::Interval {
            interval_ms,
            delay_ms,
            repeat,
        },
    };
    register(
        py,
        Registration::Timer {
            handler,
            name,
            schedule,
        },
    )
}

#[pyfunction]
fn unregister(kind: &str, handler: u32) -> PyResult<()> {
    let kind = match kind {
        "route" => RegKind::Route,
        "function" => RegKind::Function,
        "listener" => RegKind::Listener,
        "timer" => RegKind::Timer,
        other => {
            return Err(PyValueError::new_err(format!(
                "unknown registration kind {other}"
            )));
        }
    };
    send_soon(FromWorker::Unregister { kind, handler })
}

/// A synchronous service call: blocks this thread (not the GIL) until the answer.
#[pyfunction]
fn request<'py>(
    py: Python<'py>,
    name: &str,
    args: Bound<'py, PyAny>,
    timeout_s: f64,
) -> PyResult<Bound<'py, PyAny>> {
    let timeout = wait_of(timeout_s)?;
    let service = service_of(name, &args)?;
    let v = blocking_request(py, |req| FromWorker::Request { req, service }, timeout)?;
    json_to_py(py, &v)
}

/// An asynchronous service call: the answer comes back through `recv()` as
/// `("reply", req, value, None)` or `("reply", req, None, (kind, code, message))`.
#[pyfunction]
fn request_nowait(name: &str, args: Bound<'_, PyAny>) -> PyResult<u64> {
    let service = service_of(name, &args)?;
    channel::with(|ch| {
        let req = ch.next_req();
        ch.send(&FromWorker::Request { req, service })?;
        Ok(req)
    })
    .map_err(chan_err)
}

#[pyfunction]
fn notify(name: &str, args: Bound<'_, PyAny>) -> PyResult<()> {
    let service = service_of(name, &args)?;
    send_soon(FromWorker::Notify { service })
}

/// An exception the script raised, as one record.
#[pyfunction]
fn traceback(text: Bound<'_, PyString>) -> PyResult<()> {
    let text = bounded::record(&text)?;
    send_soon(FromWorker::Traceback { text })
}

fn syntax_from_tuple(t: &Bound<'_, PyTuple>) -> PyResult<SyntaxError> {
    let (message, msg, line, offset): (String, String, Option<u32>, Option<u32>) = t.extract()?;
    Ok(SyntaxError {
        message,
        msg,
        line,
        offset,
    })
}

/// Reports the outcome of `boot()`: kind is ok / noboot / syntax / failed.
#[pyfunction]
#[pyo3(signature = (kind, detail=None, traceback=None))]
fn booted(
    kind: &str,
    detail: Option<Bound<'_, PyAny>>,
    traceback: Option<Bound<'_, PyString>>,
) -> PyResult<()> {
    let outcome = match kind {
        "ok" => BootOutcome::Ok,
        "noboot" => BootOutcome::NoBoot,
        "syntax" => {
            let t = detail.ok_or_else(|| PyValueError::new_err("syntax outcome needs details"))?;
            BootOutcome::Syntax(syntax_from_tuple(t.cast::<PyTuple>()?)?)
        }
        _ => BootOutcome::Failed {
            message: match detail {
                Some(d) => bounded::record(&d.str()?)?,
                None => String::new(),
            },
            traceback: match traceback {
                Some(t) => bounded::record(&t)?,
                None => String::new(),
            },
        },
    };
    report_boot(outcome)
}

fn report_boot(outcome: BootOutcome) -> PyResult<()> {
    send(FromWorker::Booted {
        outcome,
        sandbox: crate::sandbox::report(),
    })?;
    flush()
}

#[pyfunction]
fn route_reply(
    req: u64,
    status: u16,
    headers: Vec<(String, String)>,
    body: Bound<'_, PyAny>,
    raw: bool,
) -> PyResult<()> {
    let body = if raw {
        if let Ok(s) = body.cast::<PyString>() {
            s.to_cow()?.as_bytes().to_vec()
        } else if let Ok(b) = body.cast::<pyo3::types::PyBytes>() {
            b.as_bytes().to_vec()
        } else {
            let mut out = Vec::new();
            py_to_json(&body, &mut out)?;
            out
        }
    } else {
        let mut out = Vec::with_capacity(64);
        py_to_json(&body, &mut out)?;
        out
    };
    send(FromWorker::RouteReply(RouteReply {
        req,
        status,
        headers,
        body,
    }))
}

/// Answers a function call: `error` is None for a result, else the failure's kind
/// (`argument_mismatch`, `raised`, `bad_result`) with `value` as its message.
#[pyfunction]
#[pyo3(signature = (req, value, error=None))]
fn call_reply(req: u64, value: Bound<'_, PyAny>, error: Option<&str>) -> PyResult<()> {
    let kind = match error {
        None => {
            let result = Ok(py_to_json_string(&value)?);
            return send(FromWorker::CallReply { req, result });
        }
        Some("argument_mismatch") => ScriptErrorKind::ArgumentMismatch,
        Some("bad_result") => ScriptErrorKind::BadResult,
        Some(_) => ScriptErrorKind::Raised,
    };
    let message = value.to_string();
    send(FromWorker::CallReply {
        req,
        result: Err(ScriptError { kind, message }),
    })
}

#[pyfunction]
#[pyo3(signature = (req, error=None))]
fn done(req: u64, error: Option<String>) -> PyResult<()> {
    send(FromWorker::Done {
        req,
        result: error.map_or(Ok(()), Err),
    })
}

#[pyfunction]
#[pyo3(signature = (req, syntax, has_boot_function))]
fn analysis(req: u64, syntax: Option<Bound<'_, PyTuple>>, has_boot_function: bool) -> PyResult<()> {
    let syntax_error = match syntax {
        Some(t) => Some(syntax_from_tuple(&t)?),
        None => None,
    };
    send(FromWorker::Analysis {
        req,
        analysis: Analysis {
            syntax_error,
            has_boot_function,
        },
    })?;
    flush()
}

/// Leaves at once: a script's stray threads or atexit hooks must not keep a stopped
/// worker alive.
#[pyfunction]
fn exit(code: i32) -> PyResult<()> {
    let _ = channel::with(|ch| ch.flush());
    std::process::exit(code)
}

#[pymodule]
pub fn _vwed(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_function(wrap_pyfunction!(configure, m)?)?;
    m.add_function(wrap_pyfunction!(fileno, m)?)?;
    m.add_function(wrap_pyfunction!(recv, m)?)?;
    m.add_function(wrap_pyfunction!(recv_blocking, m)?)?;
    m.add_function(wrap_pyfunction!(pending, m)?)?;
    m.add_function(wrap_pyfunction!(has_output, m)?)?;
    m.add_function(wrap_pyfunction!(flush, m)?)?;
    m.add_function(wrap_pyfunction!(output, m)?)?;
    m.add_function(wrap_pyfunction!(output_flush, m)?)?;
    m.add_function(wrap_pyfunction!(log, m)?)?;
    m.add_function(wrap_pyfunction!(register_route, m)?)?;
    m.add_function(wrap_pyfunction!(register_function, m)?)?;
    m.add_function(wrap_pyfunction!(register_listener, m)?)?;
    m.add_function(wrap_pyfunction!(register_timer, m)?)?;
    m.add_function(wrap_pyfunction!(unregister, m)?)?;
    m.add_function(wrap_pyfunction!(request, m)?)?;
    m.add_function(wrap_pyfunction!(request_nowait, m)?)?;
    m.add_function(wrap_pyfunction!(notify, m)?)?;
    m.add_function(wrap_pyfunction!(traceback, m)?)?;
    m.add_function(wrap_pyfunction!(service_names, m)?)?;
    m.add_function(wrap_pyfunction!(runtime_sources, m)?)?;
    m.add_function(wrap_pyfunction!(booted, m)?)?;
    m.add_function(wrap_pyfunction!(route_reply, m)?)?;
    m.add_function(wrap_pyfunction!(call_reply, m)?)?;
    m.add_function(wrap_pyfunction!(done, m)?)?;
    m.add_function(wrap_pyfunction!(analysis, m)?)?;
    m.add_function(wrap_pyfunction!(exit, m)?)?;
    m.add_function(wrap_pyfunction!(crate::sandbox::scratch_dir, m)?)?;
    Ok(())
}
