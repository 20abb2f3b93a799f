//! Helpers shared by the end-to-end tests: start the real `vwed-edge` binary on a
//! loopback port with a temporary data dir, talk to it over HTTP, and kill it (and
//! remove the data dir) when the test is done.
//!
//! The binary comes from `VWED_EDGE_BIN`, or else sits next to the test executables
//! (`target/<profile>/vwed-edge`, the tests live in `target/<profile>/deps/`); the
//! central fleet tool likewise from `VWED_FLEET_BIN` or `target/<profile>/vwed-fleet`.
//!
//! Every request carries the admin API token the runtime wrote on its first
//! start (`<data-dir>/admin.token`), as a reader of the README does; the access
//! control tests opt out with [`Opts::anonymous`] and present what they mean to.

pub mod fleet;
pub mod peers;
pub mod pty;
pub mod ws;

use std::fs;
use std::io::Read;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

pub use serde_json::{Value, json};

/// How long a runtime may take to answer `/health` after it was started.
pub const STARTUP_TIMEOUT: Duration = Duration::from_secs(20);
/// Default timeout of one HTTP request made by a test.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);

/// The `vwed-edge` binary under test.
pub fn binary() -> PathBuf {
    workspace_binary("vwed-edge", "VWED_EDGE_BIN")
}

/// A binary of the workspace, `name` also being its package (`cargo build -p
/// <name>`): from the environment variable `var`, or else next to the test
/// executables.
pub fn workspace_binary(name: &str, var: &str) -> PathBuf {
    if let Some(p) = std::env::var_os(var) {
        let p = PathBuf::from(p);
        assert!(
            p.is_file(),
            "{var}={} is not a file; build it first: cargo build -p {name}",
            p.display()
        );
        return p;
    }
    let exe = std::env::current_exe().expect("path of the running test executable");
    let candidate = exe.parent().and_then(Path::parent).map(|d| d.join(name));
    match candidate {
        Some(p) if p.is_file() => p,
        other => panic!(
            "{name} binary not found (looked at {}); build it first: cargo build -p {name} \
             (or set {var})",
            other.map_or_else(|| "<none>".into(), |p| p.display().to_string())
        ),
    }
}

static COUNTER: AtomicU64 = AtomicU64::new(0);

/// A directory removed (with everything in it) on drop.
#[derive(Debug)]
pub struct TempDir {
    path: PathBuf,
}

impl TempDir {
    pub fn new(tag: &str) -> TempDir {
        let nanos = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.subsec_nanos())
            .unwrap_or(0);
        let path = std::env::temp_dir().join(format!(
            "vwed-e2e-{tag}-{}-{}-{nanos:08x}",
            std::process::id(),
            COUNTER.fetch_add(1, Ordering::Relaxed)
        ));
        fs::create_dir_all(&path).expect("create temp dir");
        TempDir { path }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.path);
    }
}

/// Settings of a runtime to start.
#[derive(Debug, Clone, Default)]
pub struct Opts {
    /// Keep the sample project (off unless asked for).
    pub sample_project: bool,
    /// Extra `VWED_*` settings, e.g. `("VWED_STOP_GRACE_MS", "300")`.
    pub env: Vec<(String, String)>,
    /// Soft and hard `RLIMIT_NOFILE` of the runtime, set before it starts.
    pub nofile: Option<u64>,
    /// More arguments after `serve --listen .. --data-dir ..`, e.g. `--safe`.
    pub args: Vec<String>,
    /// Send no credential by default.
    pub anonymous: bool,
    /// Serve the API over HTTPS (`VWED_TLS=true`, a self-signed certificate);
    /// the test client trusts that certificate.
    pub https: bool,
}

impl Opts {
    pub fn env(mut self, key: &str, value: impl ToString) -> Opts {
        self.env.push((key.to_string(), value.to_string()));
        self
    }

    pub fn sample(mut self) -> Opts {
        self.sample_project = true;
        self
    }

    pub fn nofile(mut self, limit: u64) -> Opts {
        self.nofile = Some(limit);
        self
    }

    pub fn arg(mut self, arg: &str) -> Opts {
        self.args.push(arg.to_string());
        self
    }

    pub fn anonymous(mut self) -> Opts {
        self.anonymous = true;
        self
    }

    pub fn https(mut self) -> Opts {
        self.https = true;
        self.env("VWED_TLS", "true")
    }
}

/// One answer: status, headers and the body (as JSON when it is JSON).
#[derive(Debug, Clone)]
pub struct Resp {
    pub status: u16,
    pub headers: reqwest::header::HeaderMap,
    pub text: String,
    pub json: Value,
}

impl Resp {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    /// `self.json[key]`, for short assertions.
    pub fn get(&self, key: &str) -> &Value {
        &self.json[key]
    }

    /// The `data` of the envelope.
    pub fn data(&self) -> &Value {
        &self.json["data"]
    }

    /// The `error` of the envelope, or "".
    pub fn error(&self) -> &str {
        self.json["error"].as_str().unwrap_or("")
    }

    /// Panics (with the body) unless the status is `status`.
    #[track_caller]
    pub fn expect_status(&self, status: u16) -> &Resp {
        assert_eq!(
            self.status, status,
            "expected HTTP {status}, got {}: {}",
            self.status, self.text
        );
        self
    }

    /// Panics unless this is a 200 with `success: true`.
    #[track_caller]
    pub fn ok(&self) -> &Resp {
        assert!(
            self.status == 200 && self.json["success"] == json!(true),
            "expected a successful answer, got HTTP {}: {}",
            self.status,
            self.text
        );
        self
    }

    /// Panics unless this is `status` with `success: false` and an error containing
    /// `needle`.
    #[track_caller]
    pub fn fails(&self, status: u16, needle: &str) -> &Resp {
        assert_eq!(
            self.status, status,
            "expected HTTP {status}, got {}: {}",
            self.status, self.text
        );
        assert_eq!(
            self.json["success"],
            json!(false),
            "expected success=false: {}",
            self.text
        );
        assert!(
            self.error().contains(needle),
            "expected an error containing {needle:?}, got: {}",
            self.text
        );
        self
    }
}

/// A running `vwed-edge serve`.
pub struct Runtime {
    child: Option<Child>,
    pub base: String,
    pub port: u16,
    data: Option<TempDir>,
    stderr_path: PathBuf,
    _log_dir: TempDir,
    client: reqwest::blocking::Client,
    /// The same, without the token.
    bare: reqwest::blocking::Client,
    /// The admin token of `<data-dir>/admin.token`.
    token: Option<String>,
}

/// A loopback port that was free a moment ago.
pub fn free_port() -> u16 {
    let l = TcpListener::bind("127.0.0.1:0").expect("bind an ephemeral port on 127.0.0.1");
    l.local_addr().expect("local addr").port()
}

/// How the test client trusts a runtime serving HTTPS.
enum Trust<'a> {
    /// Plain HTTP.
    Nothing,
    /// Any certificate: only to see `/health` before the certificate is known.
    Anything,
    /// This PEM certificate (the runtime's self-signed one).
    Certificate(&'a Path),
}

fn http_client(token: Option<&str>, trust: Trust<'_>) -> reqwest::blocking::Client {
    let mut headers = reqwest::header::HeaderMap::new();
    if let Some(t) = token {
        let mut v = reqwest::header::HeaderValue::from_str(&format!("Bearer {t}"))
            .expect("token as a header value");
        v.set_sensitive(true);
        headers.insert(reqwest::header::AUTHORIZATION, v);
    }
    let mut b = reqwest::blocking::Client::builder()
        .timeout(REQUEST_TIMEOUT)
        .no_proxy()
        .default_headers(headers)
        .tls_info(true);
    match trust {
        Trust::Nothing => {}
        Trust::Anything => b = b.danger_accept_invalid_certs(true),
        Trust::Certificate(pem) => {
            let text = fs::read(pem).unwrap_or_else(|e| panic!("{}: {e}", pem.display()));
            let cert = reqwest::Certificate::from_pem(&text).expect("PEM certificate");
            b = b.tls_built_in_root_certs(false).add_root_certificate(cert);
        }
    }
    b.build().expect("http client")
}

/// The admin token a runtime wrote into its data dir on its first start.
pub fn admin_token(data_dir: &Path) -> String {
    let path = data_dir.join("admin.token");
    fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()))
        .trim()
        .to_string()
}

impl Runtime {
    /// A runtime with no sample project and default settings.
    pub fn start() -> Runtime {
        Runtime::with(Opts::default())
    }

    pub fn with(opts: Opts) -> Runtime {
        Runtime::start_in(TempDir::new("data"), opts)
    }

    /// Starts a runtime on an existing data dir (e.g. one a killed runtime left).
    pub fn start_in(data: TempDir, opts: Opts) -> Runtime {
        let bin = binary();
        let mut last_err = String::new();
        for _attempt in 0..5 {
            let port = free_port();
            let log_dir = TempDir::new("log");
            let stderr_path = log_dir.path().join("stderr.log");
            let stderr = fs::File::create(&stderr_path).expect("create stderr log");
            let mut cmd = Command::new(&bin);
            cmd.arg("serve")
                .arg("--listen")
                .arg(format!("127.0.0.1:{port}"))
                .arg("--data-dir")
                .arg(data.path())
                .args(&opts.args);
            // The tests decide every setting; nothing leaks in from the environment.
            for (k, _) in std::env::vars() {
                if k.starts_with("VWED_") {
                    cmd.env_remove(k);
                }
            }
            cmd.env(
                "VWED_SAMPLE_PROJECT",
                if opts.sample_project { "true" } else { "false" },
            )
            .env("RUST_LOG", "info");
            for (k, v) in &opts.env {
                cmd.env(k, v);
            }
            if let Some(limit) = opts.nofile {
                set_nofile(&mut cmd, limit);
            }
            let child = cmd
                .stdin(Stdio::null())
                // The log goes to stdout: keep it with stderr, for tests and failures.
                .stdout(Stdio::from(stderr.try_clone().expect("clone the log file")))
                .stderr(Stdio::from(stderr))
                .spawn()
                .unwrap_or_else(|e| panic!("cannot start {}: {e}", bin.display()));
            let (scheme, probe) = match opts.https {
                true => ("https", Trust::Anything),
                false => ("http", Trust::Nothing),
            };
            let mut rt = Runtime {
                child: Some(child),
                base: format!("{scheme}://127.0.0.1:{port}"),
                port,
                data: None,
                stderr_path,
                _log_dir: log_dir,
                client: http_client(None, probe),
                bare: http_client(None, Trust::Nothing),
                token: None,
            };
            match rt.wait_healthy(STARTUP_TIMEOUT) {
                Ok(()) => {
                    let cert = data.path().join("tls").join("cert.pem");
                    let trust = || match opts.https {
                        true => Trust::Certificate(&cert),
                        false => Trust::Nothing,
                    };
                    let token = (!opts.anonymous).then(|| admin_token(data.path()));
                    rt.client = http_client(token.as_deref(), trust());
                    rt.bare = http_client(None, trust());
                    rt.token = token;
                    rt.data = Some(data);
                    return rt;
                }
                Err(e) => {
                    let log = rt.stderr();
                    rt.kill9();
                    // Another process took the port between our probe and the bind.
                    if log.contains("cannot listen") {
                        last_err = format!("{e}\n{log}");
                        continue;
                    }
                    panic!("vwed-edge did not become healthy: {e}\n--- stderr ---\n{log}");
                }
            }
        }
        panic!("vwed-edge could not bind a port in 5 attempts: {last_err}");
    }

    fn wait_healthy(&mut self, timeout: Duration) -> Result<(), String> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(child) = self.child.as_mut()
                && let Ok(Some(status)) = child.try_wait()
            {
                return Err(format!("vwed-edge exited early with {status}"));
            }
            let r = self
                .client
                .get(format!("{}/health", self.base))
                .timeout(Duration::from_secs(2))
                .send();
            if let Ok(r) = r
                && r.status().as_u16() == 200
            {
                return Ok(());
            }
            if Instant::now() > deadline {
                return Err(format!("no 200 from /health within {timeout:?}"));
            }
            std::thread::sleep(Duration::from_millis(30));
        }
    }

    /// The admin token requests carry (panics for an anonymous runtime).
    pub fn token(&self) -> &str {
        self.token
            .as_deref()
            .expect("this runtime was started anonymous: it has no token")
    }

    /// `Authorization` of the admin token, for requests made by hand.
    pub fn bearer(&self) -> String {
        format!("Bearer {}", self.token())
    }

    /// A client whose requests carry the admin token (none if anonymous), for
    /// requests from other threads.
    pub fn client(&self) -> reqwest::blocking::Client {
        self.client.clone()
    }

    /// A client that sends no credential by itself.
    pub fn bare(&self) -> reqwest::blocking::Client {
        self.bare.clone()
    }

    /// The supervisor's pid.
    pub fn pid(&self) -> u32 {
        self.child.as_ref().map_or(0, Child::id)
    }

    pub fn data_dir(&self) -> &Path {
        self.data.as_ref().expect("data dir").path()
    }

    /// Where the sources of a project live.
    pub fn project_dir(&self, project: &str) -> PathBuf {
        self.data_dir().join("projects").join(project)
    }

    /// The folder scripts of `project` may write (`VWED.util.scratch_dir()`).
    pub fn scratch_dir(&self, project: &str) -> PathBuf {
        self.data_dir().join("scratch").join(project)
    }

    /// What the runtime wrote to stdout (its log) and stderr so far.
    pub fn stderr(&self) -> String {
        let mut s = String::new();
        if let Ok(mut f) = fs::File::open(&self.stderr_path) {
            let _ = f.read_to_string(&mut s);
        }
        s
    }

    /// SIGKILLs the supervisor and reaps it.
    pub fn kill9(&mut self) {
        if let Some(mut child) = self.child.take() {
            // SAFETY: kill(2) on the pid of our own child, not yet reaped.
            unsafe {
                libc::kill(child.id() as libc::pid_t, libc::SIGKILL);
            }
            let _ = child.wait();
        }
    }

    /// SIGTERMs the supervisor and waits (bounded) for it to exit; panics if it does
    /// not exit in time. Returns its data dir for another runtime.
    pub fn terminate_keep_data(mut self, timeout: Duration) -> TempDir {
        let mut child = self.child.take().expect("runtime running");
        // SAFETY: kill(2) on the pid of our own child, not yet reaped.
        unsafe {
            libc::kill(child.id() as libc::pid_t, libc::SIGTERM);
        }
        match reap(&mut child, timeout) {
            Some(status) => assert!(
                status.success(),
                "vwed-edge exited with {status} after SIGTERM:\n{}",
                self.stderr()
            ),
            None => panic!(
                "vwed-edge did not exit within {timeout:?} of SIGTERM:\n{}",
                self.stderr()
            ),
        }
        self.data.take().expect("data dir")
    }

    /// Waits (bounded) for the supervisor to die on its own, e.g. by a test hook
    /// that kills it; reaps it and hands back its data dir.
    pub fn wait_dead_keep_data(mut self, timeout: Duration) -> TempDir {
        let mut child = self.child.take().expect("runtime running");
        if reap(&mut child, timeout).is_none() {
            panic!(
                "vwed-edge did not die within {timeout:?}:\n{}",
                self.stderr()
            );
        }
        self.data.take().expect("data dir")
    }

    /// SIGKILLs the supervisor and hands back its data dir for another runtime.
    pub fn kill9_keep_data(mut self) -> TempDir {
        self.kill9();
        self.data.take().expect("data dir")
    }

    // ------------------------------------------------------------------ HTTP

    pub fn url(&self, path: &str) -> String {
        format!("{}{}", self.base, path)
    }

    /// Sends a request; `body` is sent as JSON when given.
    pub fn send(
        &self,
        method: &str,
        path: &str,
        body: Option<&Value>,
        headers: &[(&str, &str)],
    ) -> Resp {
        let method = reqwest::Method::from_bytes(method.as_bytes()).expect("HTTP method");
        let mut rb = self.client.request(method, self.url(path));
        for (k, v) in headers {
            rb = rb.header(*k, *v);
        }
        if let Some(b) = body {
            rb = rb.json(b);
        }
        self.finish(rb, path)
    }

    /// Sends a request with `token` as its credential, or with none.
    pub fn send_as(
        &self,
        token: Option<&str>,
        method: &str,
        path: &str,
        body: Option<&Value>,
    ) -> Resp {
        let method = reqwest::Method::from_bytes(method.as_bytes()).expect("HTTP method");
        let mut rb = self.bare.request(method, self.url(path));
        if let Some(t) = token {
            rb = rb.bearer_auth(t);
        }
        if let Some(b) = body {
            rb = rb.json(b);
        }
        self.finish(rb, path)
    }

    /// Sends raw bytes with a content type.
    pub fn send_raw(&self, method: &str, path: &str, content_type: &str, body: Vec<u8>) -> Resp {
        let method = reqwest::Method::from_bytes(method.as_bytes()).expect("HTTP method");
        let rb = self
            .client
            .request(method, self.url(path))
            .header("content-type", content_type)
            .body(body);
        self.finish(rb, path)
    }

    pub fn send_multipart(&self, path: &str, form: reqwest::blocking::multipart::Form) -> Resp {
        let rb = self.client.post(self.url(path)).multipart(form);
        self.finish(rb, path)
    }

    fn finish(&self, rb: reqwest::blocking::RequestBuilder, path: &str) -> Resp {
        let r = rb.send().unwrap_or_else(|e| {
            panic!(
                "request to {path} failed: {e}\n--- runtime stderr ---\n{}",
                self.stderr()
            )
        });
        let status = r.status().as_u16();
        let headers = r.headers().clone();
        let text = r.text().unwrap_or_default();
        let json = serde_json::from_str(&text).unwrap_or(Value::Null);
        Resp {
            status,
            headers,
            text,
            json,
        }
    }

    pub fn get(&self, path: &str) -> Resp {
        self.send("GET", path, None, &[])
    }

    pub fn post(&self, path: &str, body: &Value) -> Resp {
        self.send("POST", path, Some(body), &[])
    }

    pub fn put(&self, path: &str, body: &Value) -> Resp {
        self.send("PUT", path, Some(body), &[])
    }

    pub fn delete(&self, path: &str) -> Resp {
        self.send("DELETE", path, None, &[])
    }

    // ------------------------------------------------------------ the API

    pub fn create_project_resp(&self, name: &str) -> Resp {
        self.post("/api/script/projects", &json!({"project_name": name}))
    }

    /// Creates a project and returns its id.
    pub fn create_project(&self, name: &str) -> u64 {
        let r = self.create_project_resp(name);
        r.ok();
        r.data()["id"].as_u64().expect("project id")
    }

    pub fn create_file_resp(&self, project_id: u64, file_path: &str, content: &str) -> Resp {
        let file_name = file_path.rsplit('/').next().unwrap_or(file_path);
        self.post(
            "/api/script/files",
            &json!({
                "project_id": project_id,
                "file_name": file_name,
                "file_path": file_path,
                "content": content,
            }),
        )
    }

    /// Creates a file with content and returns its id.
    pub fn create_file(&self, project_id: u64, file_path: &str, content: &str) -> u64 {
        let r = self.create_file_resp(project_id, file_path, content);
        r.ok();
        r.data()["id"].as_u64().expect("file id")
    }

    pub fn start_script(&self, script_path: &str, params: Option<Value>) -> Resp {
        let mut body = json!({"script_path": script_path});
        if let Some(p) = params {
            body["start_params"] = p;
        }
        self.post("/api/script/scripts/start", &body)
    }

    /// Starts a script that must start; returns its script_id.
    #[track_caller]
    pub fn start_ok(&self, script_path: &str, params: Option<Value>) -> String {
        let r = self.start_script(script_path, params);
        r.ok();
        r.get("script_id")
            .as_str()
            .expect("script_id in the start answer")
            .to_string()
    }

    /// Creates project `project` (once) and file `file` in it, and starts it.
    #[track_caller]
    pub fn deploy(&self, project: &str, file: &str, source: &str) -> String {
        let pid = self
            .project_id(project)
            .unwrap_or_else(|| self.create_project(project));
        self.create_file(pid, file, source);
        self.start_ok(&format!("{project}/{file}"), None)
    }

    /// The id of an existing active project.
    pub fn project_id(&self, name: &str) -> Option<u64> {
        let r = self.get("/api/script/projects?status=all");
        r.ok();
        r.data()
            .as_array()?
            .iter()
            .find(|p| p["project_name"] == json!(name))
            .and_then(|p| p["id"].as_u64())
    }

    pub fn stop(&self, script_id: &str) -> Resp {
        self.post(&format!("/api/script/scripts/{script_id}/stop"), &json!({}))
    }

    pub fn restart(&self, script_id: &str) -> Resp {
        self.post(
            &format!("/api/script/scripts/{script_id}/restart"),
            &json!({}),
        )
    }

    /// Calls a route a script registered, `/script-api<path>`.
    pub fn call_route(&self, method: &str, path: &str, body: Option<&Value>) -> Resp {
        self.send(method, &format!("/script-api{path}"), body, &[])
    }

    pub fn execute(&self, script_id: Option<&str>, name: &str, args: Value) -> Resp {
        let mut body = json!({"function_name": name, "function_args": args});
        if let Some(s) = script_id {
            body["script_id"] = json!(s);
        }
        self.post("/api/script/scripts/execute-function", &body)
    }

    /// Runs a function that must succeed and returns its result.
    #[track_caller]
    pub fn execute_ok(&self, script_id: Option<&str>, name: &str, args: Value) -> Value {
        let r = self.execute(script_id, name, args);
        r.ok();
        r.get("result").clone()
    }

    pub fn running(&self) -> Vec<Value> {
        let r = self.get("/api/script/scripts/running");
        r.ok();
        r.data().as_array().cloned().unwrap_or_default()
    }

    /// The running-list entry of a script, if listed.
    pub fn running_entry(&self, script_id: &str) -> Option<Value> {
        self.running()
            .into_iter()
            .find(|s| s["script_id"] == json!(script_id))
    }

    /// The script's output (print, tracebacks, logs) as one text.
    pub fn output(&self, script_id: &str) -> String {
        let r = self.get(&format!(
            "/api/script/scripts/{script_id}/output?limit=10000"
        ));
        r.ok();
        r.data()["lines"]
            .as_array()
            .map(|l| {
                l.iter()
                    .filter_map(|x| x["message"].as_str())
                    .collect::<Vec<_>>()
                    .join("\n")
            })
            .unwrap_or_default()
    }

    pub fn registry(&self) -> Value {
        let r = self.get("/api/script/registry/status");
        r.ok();
        r.data().clone()
    }
}

/// Waits up to `timeout` for `child` to exit; past it, kills it and says `None`.
fn reap(child: &mut Child, timeout: Duration) -> Option<std::process::ExitStatus> {
    let deadline = Instant::now() + timeout;
    loop {
        match child.try_wait() {
            Ok(Some(status)) => return Some(status),
            Ok(None) if Instant::now() < deadline => std::thread::sleep(Duration::from_millis(20)),
            _ => {
                let _ = child.kill();
                let _ = child.wait();
                return None;
            }
        }
    }
}

/// Starts `cmd` with `limit` as its soft and hard `RLIMIT_NOFILE`.
fn set_nofile(cmd: &mut Command, limit: u64) {
    use std::os::unix::process::CommandExt;
    let rl = libc::rlimit {
        rlim_cur: limit,
        rlim_max: limit,
    };
    // SAFETY: the closure runs in the forked child before exec and only calls
    // setrlimit(2), which is async-signal-safe.
    unsafe {
        cmd.pre_exec(move || {
            if libc::setrlimit(libc::RLIMIT_NOFILE, &rl) == 0 {
                Ok(())
            } else {
                Err(std::io::Error::last_os_error())
            }
        });
    }
}

impl Drop for Runtime {
    fn drop(&mut self) {
        self.kill9();
        if std::thread::panicking() {
            eprintln!("--- vwed-edge stderr ---\n{}", self.stderr());
        }
    }
}

/// Polls `cond` every 20 ms until it holds; panics with `what` after `timeout`.
#[track_caller]
pub fn wait_until(timeout: Duration, what: &str, mut cond: impl FnMut() -> bool) {
    let deadline = Instant::now() + timeout;
    loop {
        if cond() {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "timed out after {timeout:?}: {what}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Is the process alive (not gone, not a zombie)?
pub fn process_alive(pid: u32) -> bool {
    match fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(stat) => {
            // The state follows the parenthesised command name.
            let state = stat
                .rsplit_once(')')
                .and_then(|(_, rest)| rest.split_whitespace().next())
                .unwrap_or("?");
            state != "Z" && state != "X"
        }
        Err(_) => false,
    }
}

/// Does `s` look like `<file_name>_<13 digits>_<8 lowercase hex>`?
pub fn is_script_id(s: &str, file_name: &str) -> bool {
    let Some(rest) = s.strip_prefix(file_name).and_then(|r| r.strip_prefix('_')) else {
        return false;
    };
    let mut parts = rest.split('_');
    let (Some(ms), Some(hex), None) = (parts.next(), parts.next(), parts.next()) else {
        return false;
    };
    ms.len() == 13
        && ms.bytes().all(|b| b.is_ascii_digit())
        && hex.len() == 8
        && hex
            .bytes()
            .all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase())
}

/// Source code from an indented Rust literal: drops the common indentation.
pub fn py(src: &str) -> String {
    let lines: Vec<&str> = src.lines().collect();
    let indent = lines
        .iter()
        .filter(|l| !l.trim().is_empty())
        .map(|l| l.len() - l.trim_start().len())
        .min()
        .unwrap_or(0);
    let mut out = String::new();
    for l in lines {
        if l.len() >= indent {
            out.push_str(&l[indent..]);
        } else {
            out.push_str(l.trim_start());
        }
        out.push('\n');
    }
    out.trim_start_matches('\n').to_string()
}
