use serde::{Deserialize, Serialize};

use crate::service::{ScriptError, Service, ServiceError};

/// JSON text. Kept as a string so that postcard never has to describe a dynamic value.
pub type Json = String;

/// Supervisor → worker.
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq)]
pub enum ToWorker {
    /// First message to a script worker: load the source and run `boot()`.
    Boot(Boot),
    /// An HTTP request for a route the script registered.
    Route(RouteRequest),
    /// Call a registered function. `args` is the caller's JSON value.
    Call { req: u64, handler: u32, args: Json },
    /// Deliver one event to listeners of this worker, in the given order.
    Event {
        req: u64,
        handlers: Vec<u32>,
        name: String,
        data: Json,
    },
    /// A timer fired.
    Timer { req: u64, handler: u32 },
    /// The caller gave up on `req` (timeout); drop or cancel the work if possible.
    Cancel { req: u64 },
    /// Answer to a worker's [`FromWorker::Request`] or [`FromWorker::Register`].
    Reply {
        req: u64,
        result: Result<Json, ServiceError>,
    },
    /// Analyzer mode: check a source text.
    Analyze { req: u64, source: String },
    /// Liveness check, answered with [`FromWorker::Done`] when the worker's loop is
    /// free: a worker stuck in a handler lets its heartbeat go stale.
    Ping { req: u64 },
    /// Finish: the worker should exit now. The supervisor kills it after a grace period.
    Stop,
    /// Run a one-shot job (a fresh worker runs one and is then stopped). Answered
    /// with [`FromWorker::CallReply`]: the job's result, or how it failed. A job
    /// that calls `sys.exit(n)` does not answer; its worker exits with `n`.
    Job(JobRun),
}

#[derive(Serialize, Deserialize, Debug, Clone, PartialEq)]
pub struct JobRun {
    pub req: u64,
    /// The execution id: what the job's log lines and `VWED` calls are filed under.
    pub execution_id: String,
    /// `jobs/<job id>`: the job's name in tracebacks, and its `VWED.data` namespace.
    pub job_path: String,
    pub source: String,
    /// JSON object of the input parameters: `PARAMS`, and `main(params)`.
    pub params: Json,
    /// The job's environment, replacing the worker's own `os.environ`.
    pub env: Vec<(String, String)>,
    /// How the worker confines itself before any of the job's code runs; the
    /// job's work dir is its scratch folder.
    pub sandbox: SandboxPolicy,
    /// Longest line of output or log the worker sends, in bytes (see `lines`).
    pub max_line_bytes: u32,
}

#[derive(Serialize, Deserialize, Debug, Clone, PartialEq)]
pub struct Boot {
    pub script_id: String,
    pub script_path: String,
    pub file_name: String,
    pub source: String,
    pub start_params: Json,
    /// How the worker confines itself before any of the script's code runs.
    pub sandbox: SandboxPolicy,
    /// Longest line of output or log the worker sends, in bytes (see `lines`).
    pub max_line_bytes: u32,
}

/// The confinement the supervisor chose for one script (paths are absolute).
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq, Default)]
pub struct SandboxPolicy {
    /// Kernel confinement (Landlock, seccomp, no privileges); off only for comparison.
    pub enabled: bool,
    /// Refuse to run the script unless every part of the confinement is in force.
    pub required: bool,
    /// Where the script may write (`VWED.util.scratch_dir()`); its working directory.
    pub scratch_dir: String,
    /// Readable besides Python itself: the project folder and granted paths.
    pub read: Vec<String>,
    /// Readable and writable besides the scratch folder: granted paths.
    pub write: Vec<String>,
    /// Paths no rule may cover (data dir, config file): a Python search path that
    /// contains one is left out.
    pub protect: Vec<String>,
    pub network: NetworkGrant,
}

/// The sockets a script may open; the default is none.
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq, Eq, Default)]
pub struct NetworkGrant {
    /// TCP ports it may connect to (any host).
    pub connect_tcp: Vec<u16>,
    /// TCP connections to any port.
    pub any_tcp: bool,
    /// TCP ports it may bind (listen on).
    pub bind_tcp: Vec<u16>,
    /// UDP sockets (ports cannot be limited by the kernel).
    pub udp: bool,
}

impl NetworkGrant {
    pub fn tcp(&self) -> bool {
        self.any_tcp || !self.connect_tcp.is_empty() || !self.bind_tcp.is_empty()
    }
}

/// What the worker actually put in force, one line per area, e.g.
/// `filesystem: "landlock v7"`. `missing` names each part that is not, and why.
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq, Default)]
pub struct SandboxReport {
    pub filesystem: String,
    pub network: String,
    pub processes: String,
    pub signals: String,
    pub privileges: String,
    pub missing: Vec<String>,
}

#[derive(Serialize, Deserialize, Debug, Clone, PartialEq)]
pub struct RouteRequest {
    pub req: u64,
    pub handler: u32,
    pub method: String,
    pub path: String,
    pub query: Vec<(String, String)>,
    pub path_params: Vec<(String, String)>,
    pub headers: Vec<(String, String)>,
    /// One byte string on the wire (a length, then the bytes), copied in one
    /// piece; serde's default would write each byte as an element of a sequence.
    #[serde(with = "serde_bytes")]
    pub body: Vec<u8>,
    pub client: String,
}

/// Worker → supervisor.
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq)]
pub enum FromWorker {
    /// `boot()` finished (or could not run), and how the worker is confined.
    Booted {
        outcome: BootOutcome,
        sandbox: SandboxReport,
    },
    /// A `VWED.*` registration. Answered with [`ToWorker::Reply`] so that a refused
    /// registration raises in the script.
    Register {
        req: u64,
        reg: Registration,
    },
    /// A registration was withdrawn by the script (e.g. `VWED.timer.cancel`).
    Unregister {
        kind: RegKind,
        handler: u32,
    },
    /// A `VWED.*` call that needs the supervisor. Answered with [`ToWorker::Reply`].
    Request {
        req: u64,
        service: Service,
    },
    /// Like `Request`, but nobody waits for an answer.
    Notify {
        service: Service,
    },
    /// Text the script wrote to stdout/stderr, one or more whole lines.
    Output {
        stream: Stream,
        text: String,
    },
    /// An exception a script raised (in boot, a handler, a timer, a listener): one
    /// record, the traceback as one text without the runtime's own frames.
    Traceback {
        text: String,
    },
    /// A `VWED.log.*` line.
    Log {
        level: Level,
        message: String,
        fields: Json,
    },
    RouteReply(RouteReply),
    CallReply {
        req: u64,
        result: Result<Json, ScriptError>,
    },
    /// An event or timer delivery finished.
    Done {
        req: u64,
        result: Result<(), String>,
    },
    /// Analyzer answer.
    Analysis {
        req: u64,
        analysis: Analysis,
    },
    /// How a job's worker confined itself, sent once the [`ToWorker::Job`]
    /// arrived and before any of the job's code runs (a script's worker says it
    /// with [`FromWorker::Booted`]).
    Confined {
        sandbox: SandboxReport,
    },
}

#[derive(Serialize, Deserialize, Debug, Clone, PartialEq)]
pub struct RouteReply {
    pub req: u64,
    pub status: u16,
    pub headers: Vec<(String, String)>,
    /// One byte string on the wire, as [`RouteRequest::body`].
    #[serde(with = "serde_bytes")]
    pub body: Vec<u8>,
}

#[derive(Serialize, Deserialize, Debug, Clone, PartialEq)]
pub enum BootOutcome {
    Ok,
    /// The module has no callable `boot`.
    NoBoot,
    /// The source does not compile.
    Syntax(SyntaxError),
    /// Loading the module or running `boot()` raised.
    Failed {
        message: String,
        traceback: String,
    },
}

#[derive(Serialize, Deserialize, Debug, Clone, PartialEq)]
pub struct SyntaxError {
    /// Python's own text, e.g. `invalid syntax (<script>, line 5)`.
    pub message: String,
    pub msg: String,
    pub line: Option<u32>,
    pub offset: Option<u32>,
}

#[derive(Serialize, Deserialize, Debug, Clone, PartialEq)]
pub struct Analysis {
    pub syntax_error: Option<SyntaxError>,
    pub has_boot_function: bool,
}

#[derive(Serialize, Deserialize, Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum RegKind {
    Route,
    Function,
    Listener,
    Timer,
}

#[derive(Serialize, Deserialize, Debug, Clone, PartialEq)]
pub enum Registration {
    Route {
        handler: u32,
        method: String,
        path: String,
        description: String,
        /// Callable without a credential (`VWED.api.get(path, public=True)`).
        public: bool,
    },
    Function {
        handler: u32,
        name: String,
        description: String,
        /// JSON array: the seed's `parameters` list or the plain `params` names.
        parameters: Json,
        /// JSON value or `null`.
        return_schema: Json,
        tags: Vec<String>,
        is_async: bool,
    },
    Listener {
        handler: u32,
        event: String,
        priority: i64,
    },
    Timer {
        handler: u32,
        name: String,
        schedule: TimerSchedule,
    },
}

impl Registration {
    pub fn kind(&self) -> RegKind {
        match self {
            Registration::Route { .. } => RegKind::Route,
            Registration::Function { .. } => RegKind::Function,
            Registration::Listener { .. } => RegKind::Listener,
            Registration::Timer { .. } => RegKind::Timer,
        }
    }

    pub fn handler(&self) -> u32 {
        match self {
            Registration::Route { handler, .. }
            | Registration::Function { handler, .. }
            | Registration::Listener { handler, .. }
            | Registration::Timer { handler, .. } => *handler,
        }
    }
}

#[derive(Serialize, Deserialize, Debug, Clone, PartialEq)]
pub enum TimerSchedule {
    /// First run after `delay_ms`, then every `interval_ms` if `repeat`.
    Interval {
        interval_ms: u64,
        delay_ms: u64,
        repeat: bool,
    },
    /// A five- or six-field cron expression.
    Cron { expr: String },
}

#[derive(Serialize, Deserialize, Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stream {
    Stdout,
    Stderr,
}

impl Stream {
    /// The level and the stream name a printed line is logged with.
    pub fn logged_as(self) -> (Level, &'static str) {
        match self {
            Stream::Stdout => (Level::Info, "stdout"),
            Stream::Stderr => (Level::Error, "stderr"),
        }
    }
}

#[derive(Serialize, Deserialize, Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Level {
    Debug,
    Info,
    Warning,
    Error,
}

impl Level {
    pub fn as_str(self) -> &'static str {
        match self {
            Level::Debug => "DEBUG",
            Level::Info => "INFO",
            Level::Warning => "WARNING",
            Level::Error => "ERROR",
        }
    }

    pub fn parse(s: &str) -> Option<Level> {
        match s.to_ascii_uppercase().as_str() {
            "DEBUG" => Some(Level::Debug),
            "INFO" => Some(Level::Info),
            "WARNING" | "WARN" => Some(Level::Warning),
            "ERROR" => Some(Level::Error),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{FrameDecoder, encode};
    use postcard::{de_flavors, ser_flavors};

    fn route_request(body: Vec<u8>) -> RouteRequest {
        RouteRequest {
            req: 1,
            handler: 2,
            method: "POST".into(),
            path: "/api/x".into(),
            query: vec![],
            path_params: vec![],
            headers: vec![("content-type".into(), "application/octet-stream".into())],
            body,
            client: "127.0.0.1".into(),
        }
    }

    fn body_of(len: usize) -> Vec<u8> {
        (0..len).map(|i| (i % 251) as u8).collect()
    }

    /// Counts the bytes postcard writes one at a time; a slice written whole is
    /// not counted.
    #[derive(Default)]
    struct CountPushes(usize);

    impl ser_flavors::Flavor for CountPushes {
        type Output = usize;
        fn try_push(&mut self, _: u8) -> postcard::Result<()> {
            self.0 += 1;
            Ok(())
        }
        fn try_extend(&mut self, _: &[u8]) -> postcard::Result<()> {
            Ok(())
        }
        fn finalize(self) -> postcard::Result<usize> {
            Ok(self.0)
        }
    }

    /// Counts the bytes postcard reads one at a time.
    struct CountPops<'de>(de_flavors::Slice<'de>, usize);

    impl<'de> de_flavors::Flavor<'de> for CountPops<'de> {
        type Remainder = usize;
        type Source = &'de [u8];
        fn pop(&mut self) -> postcard::Result<u8> {
            self.1 += 1;
            self.0.pop()
        }
        fn try_take_n(&mut self, ct: usize) -> postcard::Result<&'de [u8]> {
            self.0.try_take_n(ct)
        }
        fn finalize(self) -> postcard::Result<usize> {
            Ok(self.1)
        }
    }

    #[test]
    fn a_body_is_one_byte_string() {
        let len = 64 * 1024;
        let bare = postcard::to_allocvec(&route_request(Vec::new())).expect("encode");
        let req = route_request(body_of(len));
        let full = postcard::to_allocvec(&req).expect("encode");
        // The bytes, and a length prefix of 3 bytes instead of 1.
        assert_eq!(full.len() - bare.len(), len + 2);
        // Postcard writes a `u8` of a sequence as one raw byte too, so the size
        // alone would not tell a byte string from a sequence; how the body is
        // written and read does: as one slice, not byte by byte.
        let pushes = postcard::serialize_with_flavor(&req, CountPushes::default()).expect("count");
        assert!(pushes < 64, "{pushes} bytes pushed one at a time");
        let mut de =
            postcard::Deserializer::from_flavor(CountPops(de_flavors::Slice::new(&full), 0));
        let back = RouteRequest::deserialize(&mut de).expect("decode");
        let pops = de.finalize().expect("count");
        assert_eq!(back, req);
        assert!(pops < 64, "{pops} bytes read one at a time");

        let reply = RouteReply {
            req: 1,
            status: 200,
            headers: vec![],
            body: body_of(len),
        };
        let pushes =
            postcard::serialize_with_flavor(&reply, CountPushes::default()).expect("count");
        assert!(pushes < 64, "{pushes} bytes pushed one at a time");
        let reply_len = postcard::to_allocvec(&reply).expect("encode").len();
        assert!(reply_len <= len + 16, "{reply_len}");
    }

    #[test]
    fn a_large_body_survives_a_frame() {
        let big = 8 * 1024 * 1024;
        let req = ToWorker::Route(route_request(body_of(big)));
        let reply = FromWorker::RouteReply(RouteReply {
            req: 1,
            status: 200,
            headers: vec![("content-length".into(), (big + 3).to_string())],
            body: body_of(big + 3),
        });
        let mut d = FrameDecoder::new();
        d.extend(&encode(&req).expect("encode"));
        assert_eq!(d.next_frame::<ToWorker>().expect("decode"), Some(req));
        d.extend(&encode(&reply).expect("encode"));
        assert_eq!(d.next_frame::<FromWorker>().expect("decode"), Some(reply));
    }
}
