//! Fleet sync helpers: a Mosquitto broker of the test's own (free loopback port,
//! persistence in a temp dir), the `vwed-fleet` command line, and the
//! `mosquitto_pub`/`mosquitto_sub` clients to look at or tamper with what the
//! broker holds.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::{Opts, Runtime, TempDir, free_port, wait_until};

/// How long a deployment may take to converge in a test (generous: a bound, not
/// a measurement).
pub const CONVERGE: Duration = Duration::from_secs(90);

/// A Mosquitto of the test's own.
pub struct Broker {
    child: Option<Child>,
    pub port: u16,
    dir: TempDir,
}

impl Broker {
    pub fn start() -> Broker {
        let mut b = Broker {
            child: None,
            port: free_port(),
            dir: TempDir::new("mosquitto"),
        };
        b.spawn();
        b
    }

    fn spawn(&mut self) {
        let d = self.dir.path();
        let conf = d.join("mosquitto.conf");
        std::fs::write(
            &conf,
            format!(
                "listener {port} 127.0.0.1\nallow_anonymous true\npersistence true\n\
                 persistence_location {dir}/\nautosave_interval 1\nuser root\n\
                 max_queued_messages 100000\nlog_dest file {dir}/mosquitto.log\n",
                port = self.port,
                dir = d.display()
            ),
        )
        .expect("write mosquitto.conf");
        let child = Command::new("mosquitto")
            .arg("-c")
            .arg(&conf)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| {
                panic!("cannot start mosquitto (scripts/install-deps installs it): {e}")
            });
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(10);
        while std::net::TcpStream::connect(("127.0.0.1", self.port)).is_err() {
            assert!(
                Instant::now() < deadline,
                "mosquitto did not listen on {}",
                self.port
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    pub fn url(&self) -> String {
        format!("mqtt://127.0.0.1:{}", self.port)
    }

    fn signal(&mut self, sig: libc::c_int) {
        if let Some(mut c) = self.child.take() {
            // SAFETY: kill(2) on our own child, not yet reaped.
            unsafe {
                libc::kill(c.id() as libc::pid_t, sig);
            }
            let _ = c.wait();
        }
    }

    /// Stops it gracefully (it saves its persistence) and starts it again on the
    /// same port with the same data.
    pub fn restart(&mut self) {
        self.signal(libc::SIGTERM);
        self.spawn();
    }

    pub fn stop(&mut self) {
        self.signal(libc::SIGTERM);
    }

    pub fn start_again(&mut self) {
        self.spawn();
    }

    /// `mosquitto_pub` or `mosquitto_sub` on this broker, QoS 1, for `topic`.
    fn client(&self, program: &str, topic: &str) -> Command {
        let mut cmd = Command::new(program);
        let port = self.port.to_string();
        cmd.args(["-h", "127.0.0.1", "-p", &port, "-q", "1", "-t", topic]);
        cmd
    }

    /// `mosquitto_pub`: QoS 1, retained if asked.
    pub fn publish(&self, topic: &str, payload: &[u8], retain: bool) {
        use std::io::Write;
        let mut cmd = self.client("mosquitto_pub", topic);
        cmd.arg("-s");
        if retain {
            cmd.arg("-r");
        }
        let mut child = cmd
            .stdin(Stdio::piped())
            .spawn()
            .expect("mosquitto_pub (scripts/install-deps installs mosquitto-clients)");
        child
            .stdin
            .take()
            .expect("stdin")
            .write_all(payload)
            .expect("write payload");
        let status = child.wait().expect("mosquitto_pub");
        assert!(status.success(), "mosquitto_pub {topic} failed");
    }

    /// The message retained on `topic`, if any.
    pub fn retained(&self, topic: &str) -> Option<Vec<u8>> {
        let out = self
            .client("mosquitto_sub", topic)
            .args(["--retained-only", "-C", "1", "-W", "2", "-N"])
            .output()
            .expect("mosquitto_sub");
        (!out.stdout.is_empty()).then_some(out.stdout)
    }

    /// The retained JSON on `topic`, or Null.
    pub fn retained_json(&self, topic: &str) -> Value {
        self.retained(topic)
            .and_then(|b| serde_json::from_slice(&b).ok())
            .unwrap_or(Value::Null)
    }

    /// A `mosquitto_sub` that writes every message on `topic` (one line each) to a
    /// file until it is dropped. `session`: a persistent session under that client
    /// id, so that messages published while it was away are kept for it.
    pub fn record(&self, topic: &str, session: Option<&str>) -> Recorder {
        let dir = TempDir::new("mqtt-rec");
        let file = dir.path().join("messages.txt");
        let out = std::fs::File::create(&file).expect("recorder file");
        let mut cmd = self.client("mosquitto_sub", topic);
        if let Some(id) = session {
            cmd.args(["-c", "-i", id]);
        }
        let child = cmd
            .stdout(Stdio::from(out))
            .stderr(Stdio::null())
            .spawn()
            .expect("mosquitto_sub");
        Recorder {
            child: Some(child),
            file,
            _dir: dir,
        }
    }
}

impl Drop for Broker {
    fn drop(&mut self) {
        self.signal(libc::SIGKILL);
    }
}

/// Messages a `mosquitto_sub` received.
pub struct Recorder {
    child: Option<Child>,
    file: PathBuf,
    _dir: TempDir,
}

impl Recorder {
    pub fn lines(&self) -> Vec<Value> {
        std::fs::read_to_string(&self.file)
            .unwrap_or_default()
            .lines()
            .filter_map(|l| serde_json::from_str(l).ok())
            .collect()
    }

    pub fn stop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

impl Drop for Recorder {
    fn drop(&mut self) {
        self.stop();
    }
}

/// A broker, a signing key and the names of one test fleet.
pub struct Fleet {
    pub broker: Broker,
    pub name: String,
    pub key: PathBuf,
    pub public_key: String,
    dir: TempDir,
}

impl Fleet {
    pub fn new() -> Fleet {
        let broker = Broker::start();
        let dir = TempDir::new("fleet");
        let key = dir.path().join("signer.key");
        let out = cli_output(&["keygen", "--out", &key.display().to_string()]);
        assert!(
            out.status.success(),
            "keygen: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let public_key = String::from_utf8_lossy(&out.stdout).trim().to_string();
        Fleet {
            broker,
            name: "f1".into(),
            key,
            public_key,
            dir,
        }
    }

    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// Settings of a device of this fleet (every call allowed, a short health
    /// window).
    pub fn device(&self, id: &str, groups: &[&str]) -> Opts {
        Opts::default()
            .env("VWED_FLEET__BROKER_URL", self.broker.url())
            .env("VWED_FLEET__DEVICE_ID", id)
            .env("VWED_FLEET__FLEET", &self.name)
            .env("VWED_FLEET__GROUPS", groups.join(","))
            .env("VWED_FLEET__TRUSTED_KEYS", &self.public_key)
            .env("VWED_FLEET__HEALTH_WINDOW_MS", 1_500)
            .env(
                "VWED_FLEET__CALLS",
                "execute,start,stop,restart,status,logs",
            )
            .env("VWED_FLEET__KEEP_ALIVE_S", 5)
            .env("VWED_STOP_GRACE_MS", 500)
    }

    pub fn start_device(&self, id: &str, groups: &[&str]) -> Runtime {
        Runtime::with(self.device(id, groups))
    }

    /// `vwed-fleet <cmd> --broker .. --fleet .. <args>`.
    pub fn cli(&self, cmd: &str, args: &[&str]) -> Output {
        let url = self.broker.url();
        let mut all = vec![cmd, "--broker", &url, "--fleet", &self.name];
        all.extend_from_slice(args);
        cli_output(&all)
    }

    /// Deploys; panics unless the command succeeds. Returns what it printed.
    #[track_caller]
    pub fn deploy(&self, args: &[&str]) -> Value {
        self.deploy_signed(&self.key, args)
    }

    /// Deploys signed with `key`.
    #[track_caller]
    pub fn deploy_signed(&self, key: &Path, args: &[&str]) -> Value {
        let key = key.display().to_string();
        let mut all = args.to_vec();
        all.extend_from_slice(&["--key", &key]);
        let out = self.cli("deploy", &all);
        assert!(
            out.status.success(),
            "deploy failed: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        serde_json::from_slice(&out.stdout).expect("deploy prints JSON")
    }

    /// `status --wait` for a target: its exit code and the devices it printed.
    pub fn wait(&self, target: &[&str], expect: usize) -> (i32, Value) {
        let expect = expect.to_string();
        let wait = CONVERGE.as_secs().to_string();
        let mut args = target.to_vec();
        args.extend_from_slice(&["--wait", "--expect", &expect, "--wait-s", &wait, "--json"]);
        let out = self.cli("status", &args);
        let json = serde_json::from_slice(&out.stdout).unwrap_or(Value::Null);
        (out.status.code().unwrap_or(-1), json)
    }

    /// `status --wait` that must end with every targeted device committed.
    #[track_caller]
    pub fn converge(&self, target: &[&str], expect: usize) -> Value {
        let (code, json) = self.wait(target, expect);
        assert_eq!(code, 0, "deployment did not converge: {json}");
        json
    }

    /// A device's retained reported state.
    pub fn state(&self, device: &str) -> Value {
        self.broker
            .retained_json(&format!("vwed/v1/{}/device/{device}/state", self.name))
    }

    pub fn topic(&self, rest: &str) -> String {
        format!("vwed/v1/{}/{rest}", self.name)
    }

    /// Waits until the device's retained state satisfies `cond`.
    #[track_caller]
    pub fn wait_state(&self, device: &str, what: &str, cond: impl Fn(&Value) -> bool) -> Value {
        let mut last = Value::Null;
        wait_until(CONVERGE, what, || {
            last = self.state(device);
            cond(&last)
        });
        last
    }
}

impl Default for Fleet {
    fn default() -> Self {
        Fleet::new()
    }
}

/// Runs the central fleet tool (`vwed-fleet`) with these arguments.
pub fn cli_output(args: &[&str]) -> Output {
    let mut cmd = Command::new(fleet_binary());
    cmd.args(args);
    for (k, _) in std::env::vars() {
        if k.starts_with("VWED_") {
            cmd.env_remove(k);
        }
    }
    cmd.output().expect("run vwed-fleet")
}

/// The `vwed-fleet` binary under test.
pub fn fleet_binary() -> PathBuf {
    crate::workspace_binary("vwed-fleet", "VWED_FLEET_BIN")
}

/// A project folder with these files, for `--project name=dir`.
pub fn project_dir(files: &[(&str, &str)]) -> TempDir {
    let d = TempDir::new("project");
    write_files(d.path(), files);
    d
}

pub fn write_files(dir: &Path, files: &[(&str, &str)]) {
    for (path, content) in files {
        let p = dir.join(path);
        if let Some(parent) = p.parent() {
            std::fs::create_dir_all(parent).expect("mkdir");
        }
        std::fs::write(&p, content).expect("write project file");
    }
}
