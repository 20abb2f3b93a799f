//! Device I/O end to end: the real binary polls a pymodbus TCP server started
//! by the test, scripts react to point changes, read and write points, use raw
//! Modbus and robot profiles; the HTTP API and the WebSocket stream show the
//! same points.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use vwed_e2e::pty::PtyPair;
use vwed_e2e::ws;
use vwed_e2e::{Opts, Runtime, TempDir, Value, json, py, wait_until};

pub(crate) const WAIT: Duration = Duration::from_secs(15);

// ------------------------------------------------------------------ the peer

fn python() -> String {
    std::env::var("VWED_TEST_PYTHON").unwrap_or_else(|_| "python3".to_string())
}

fn peer_script() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../hal/tests/peers/modbus_server.py")
}

/// `hal/tests/peers/modbus_server.py` on a loopback port; killed on drop.
pub(crate) struct ModbusServer {
    child: Child,
    pub(crate) port: u16,
}

impl ModbusServer {
    pub(crate) fn start() -> ModbusServer {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("free port")
            .port();
        ModbusServer::on(port)
    }

    fn on(port: u16) -> ModbusServer {
        let mut child = Command::new(python())
            .arg("-u")
            .arg(peer_script())
            .args(["tcp", "127.0.0.1", &port.to_string()])
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| {
                panic!("cannot start python3 (pip install -r tests/requirements.txt): {e}")
            });
        let stdout = child.stdout.take().expect("piped stdout");
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let mut lines = BufReader::new(stdout).lines();
            let ready = lines.any(|l| l.is_ok_and(|l| l.trim() == "READY"));
            let _ = tx.send(ready);
        });
        match rx.recv_timeout(WAIT) {
            Ok(true) => ModbusServer { child, port },
            _ => {
                let _ = child.kill();
                let _ = child.wait();
                panic!(
                    "modbus peer did not print READY; is pymodbus installed? \
                     (pip install -r tests/requirements.txt)"
                );
            }
        }
    }

    pub(crate) fn kill(mut self) -> u16 {
        let _ = self.child.kill();
        let _ = self.child.wait();
        self.port
    }
}

impl Drop for ModbusServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A minimal Modbus TCP client, so the test changes the device behind the
/// runtime's back, the way a PLC program would.
struct Master {
    s: TcpStream,
    tid: u16,
}

impl Master {
    fn connect(port: u16) -> Master {
        let s = TcpStream::connect(("127.0.0.1", port)).expect("connect to modbus peer");
        s.set_read_timeout(Some(Duration::from_secs(5)))
            .expect("timeout");
        Master { s, tid: 0 }
    }

    fn call(&mut self, pdu: &[u8]) -> Vec<u8> {
        self.tid = self.tid.wrapping_add(1);
        let mut f = Vec::new();
        f.extend_from_slice(&self.tid.to_be_bytes());
        f.extend_from_slice(&[0, 0]);
        f.extend_from_slice(&(pdu.len() as u16 + 1).to_be_bytes());
        f.push(1);
        f.extend_from_slice(pdu);
        self.s.write_all(&f).expect("send");
        let mut head = [0u8; 7];
        self.s.read_exact(&mut head).expect("reply header");
        let len = u16::from_be_bytes([head[4], head[5]]) as usize;
        let mut body = vec![0u8; len - 1];
        self.s.read_exact(&mut body).expect("reply body");
        assert!(body[0] < 0x80, "modbus exception {body:?}");
        body
    }

    fn write_register(&mut self, addr: u16, value: u16) {
        let mut pdu = vec![6];
        pdu.extend_from_slice(&addr.to_be_bytes());
        pdu.extend_from_slice(&value.to_be_bytes());
        self.call(&pdu);
    }

    fn read_holding(&mut self, addr: u16) -> u16 {
        let mut pdu = vec![3];
        pdu.extend_from_slice(&addr.to_be_bytes());
        pdu.extend_from_slice(&1u16.to_be_bytes());
        let r = self.call(&pdu);
        u16::from_be_bytes([r[2], r[3]])
    }
}

// ---------------------------------------------------------------- the runtime

fn device_config(port: u16) -> String {
    format!(
        r#"
board = "linux-sim"

[[bus]]
name = "plc"
kind = "tcp"
host = "127.0.0.1"
port = {port}
timeout_ms = 300
connect_timeout_ms = 300

[[device]]
name = "plc1"
bus = "plc"
unit = 1

[[point]]
tag = "plc1.setpoint"
device = "plc1"
table = "holding"
address = 10
type = "u16"
period_ms = 50

[[point]]
tag = "plc1.limit"
device = "plc1"
table = "holding"
address = 20
type = "u16"
period_ms = 100
read_only = true

[[point]]
tag = "plc1.speed"
device = "plc1"
table = "holding"
address = 1
type = "f32"
period_ms = 100

[[point]]
tag = "plc1.answer"
device = "plc1"
table = "input"
address = 1
type = "u16"
period_ms = 100

[[point]]
tag = "agv.target"
device = "plc1"
table = "holding"
address = 30
type = "u16"
period_ms = 50

[[point]]
tag = "agv.battery"
device = "plc1"
table = "holding"
address = 31
type = "u16"
period_ms = 100

[[robot]]
name = "agv"
description = "test AGV"
status = ["agv.battery", "agv.target"]

[robot.commands]
goto = "agv.target"
"#
    )
}

/// A runtime whose `io_config` points at a device config for the peer on `port`.
pub(crate) fn runtime_with_io(port: u16) -> (Runtime, TempDir) {
    let dir = TempDir::new("io");
    let cfg = dir.path().join("io.toml");
    std::fs::write(&cfg, device_config(port)).expect("write device config");
    let rt = Runtime::with(
        Opts::default()
            .env("VWED_IO_CONFIG", cfg.display())
            .env("VWED_STOP_GRACE_MS", 500),
    );
    (rt, dir)
}

pub(crate) fn point(rt: &Runtime, tag: &str) -> Value {
    let r = rt.get("/api/io/points");
    r.ok();
    r.data()
        .as_array()
        .expect("points list")
        .iter()
        .find(|p| p["tag"] == json!(tag))
        .cloned()
        .unwrap_or_else(|| panic!("point {tag} not listed: {}", r.text))
}

fn device(rt: &Runtime, name: &str) -> Value {
    let r = rt.get("/api/io/devices");
    r.ok();
    r.data()
        .as_array()
        .expect("devices list")
        .iter()
        .find(|d| d["device"] == json!(name))
        .cloned()
        .unwrap_or_else(|| panic!("device {name} not listed: {}", r.text))
}

const LISTENER: &str = r#"
    EVENTS = []

    def boot():
        @VWED.io.on_change("plc1.setpoint")
        def changed(c):
            EVENTS.append(c)

        @VWED.function.register("events")
        def events(args):
            return EVENTS
"#;

fn events(rt: &Runtime) -> Vec<Value> {
    rt.execute_ok(None, "events", json!({}))
        .as_array()
        .cloned()
        .unwrap_or_default()
}

// --------------------------------------------------------------------- tests

#[test]
fn point_change_reaches_a_script_listener() {
    let server = ModbusServer::start();
    let (rt, _dir) = runtime_with_io(server.port);
    rt.deploy("io", "listen.py", &py(LISTENER));
    wait_until(WAIT, "point plc1.setpoint good", || {
        point(&rt, "plc1.setpoint")["quality"] == "good"
    });

    let mut plc = Master::connect(server.port);
    plc.write_register(10, 777);
    wait_until(WAIT, "listener saw 777", || {
        events(&rt).iter().any(|e| e["value"] == json!(777))
    });
    let e = events(&rt)
        .into_iter()
        .find(|e| e["value"] == json!(777))
        .expect("event");
    assert_eq!(e["tag"], "plc1.setpoint");
    assert_eq!(e["previous"], json!(0));
    assert_eq!(e["quality"], "good");
    assert!(
        e["timestamp"].as_str().is_some_and(|t| t.ends_with('Z')),
        "{e}"
    );

    // The HTTP view agrees: value, quality, last change.
    let p = point(&rt, "plc1.setpoint");
    assert_eq!(p["value"], json!(777));
    assert!(p["last_change"].is_string(), "{p}");
    assert_eq!(p["writable"], json!(true));
    assert_eq!(point(&rt, "plc1.speed")["value"], json!(1.5));
    let d = device(&rt, "plc1");
    assert_eq!(d["state"], "connected");
    assert_eq!(d["kind"], "modbus_tcp");
    assert_eq!(d["points_bad"], json!(0));
    assert!(d["counters"]["responses"].as_u64().unwrap_or(0) > 0, "{d}");
    let agv = rt.get("/api/io/points?prefix=agv.");
    agv.ok();
    let tags: Vec<&str> = agv
        .data()
        .as_array()
        .expect("list")
        .iter()
        .filter_map(|p| p["tag"].as_str())
        .collect();
    assert_eq!(tags, ["agv.target", "agv.battery"]);
    let one = rt.get("/api/io/points/plc1.setpoint");
    one.ok();
    assert_eq!(one.data()["value"], json!(777));
    rt.get("/api/io/points/nope").fails(404, "未知的点位");
    let st = rt.get("/api/io/status");
    st.ok();
    assert_eq!(st.data()["forwarder"]["lost"], json!(0));
}

#[test]
fn quality_goes_bad_when_the_device_dies_and_good_when_it_returns() {
    let server = ModbusServer::start();
    let (rt, _dir) = runtime_with_io(server.port);
    rt.deploy("io", "listen.py", &py(LISTENER));
    wait_until(WAIT, "point good", || {
        point(&rt, "plc1.setpoint")["quality"] == "good"
    });

    let port = server.kill();
    wait_until(WAIT, "bad-quality event", || {
        events(&rt).iter().any(|e| e["quality"] == "bad")
    });
    let bad = events(&rt)
        .into_iter()
        .find(|e| e["quality"] == "bad")
        .expect("bad event");
    assert_eq!(bad["value"], Value::Null);
    assert!(bad["error"].is_string(), "{bad}");
    assert_eq!(point(&rt, "plc1.setpoint")["quality"], "bad");
    let d = device(&rt, "plc1");
    assert_ne!(d["state"], "connected", "{d}");
    assert!(d["last_error"].is_string(), "{d}");
    assert_eq!(d["connected"], json!(false));
    // A bad point is an error for a plain read, a dict with detail=True.
    let id = rt.deploy(
        "io",
        "reader.py",
        &py(r#"
        def boot():
            @VWED.function.register("read")
            def read(args):
                try:
                    return {"value": VWED.io.read("plc1.setpoint")}
                except VWED.Error as e:
                    return {"error": str(e), "detail": VWED.io.read("plc1.setpoint", detail=True)}
    "#),
    );
    let r = rt.execute_ok(Some(&id), "read", json!({}));
    assert!(
        r["error"].as_str().is_some_and(|e| e.contains("bad")),
        "{r}"
    );
    assert_eq!(r["detail"]["quality"], "bad");

    // Polling resumes by itself once the device is back: no restart needed.
    let _server = ModbusServer::on(port);
    let t0 = Instant::now();
    wait_until(WAIT, "good-quality event after the bad one", || {
        let ev = events(&rt);
        let i = ev.iter().position(|e| e["quality"] == "bad");
        i.is_some_and(|i| ev[i..].iter().any(|e| e["quality"] == "good"))
    });
    assert!(t0.elapsed() < Duration::from_secs(10), "{:?}", t0.elapsed());
    assert_eq!(point(&rt, "plc1.setpoint")["quality"], "good");
    wait_until(WAIT, "bus connected", || {
        device(&rt, "plc1")["state"] == "connected"
    });
    let d = device(&rt, "plc1");
    assert!(
        d["counters"]["connect_failures"].as_u64().unwrap_or(0) > 0
            || d["counters"]["transport_errors"].as_u64().unwrap_or(0) > 0,
        "{d}"
    );
}

#[test]
fn writes_from_scripts_and_http_are_checked_and_logged() {
    let server = ModbusServer::start();
    let (rt, _dir) = runtime_with_io(server.port);
    let id = rt.deploy(
        "io",
        "writer.py",
        &py(r#"
        def boot():
            @VWED.function.register("write")
            def write(args):
                try:
                    VWED.io.write(args["tag"], args["value"])
                    return {"ok": True}
                except VWED.Error as e:
                    return {"ok": False, "error": str(e)}

            @VWED.function.register("read")
            def read(args):
                return VWED.io.read(args["tag"], live=args.get("live", False))
    "#),
    );
    wait_until(WAIT, "points good", || {
        point(&rt, "plc1.setpoint")["quality"] == "good"
    });
    let r = rt.execute_ok(
        Some(&id),
        "write",
        json!({"tag": "plc1.setpoint", "value": 4321}),
    );
    assert_eq!(r, json!({"ok": true}));
    let mut plc = Master::connect(server.port);
    assert_eq!(plc.read_holding(10), 4321, "the device got the write");
    assert_eq!(
        rt.execute_ok(
            Some(&id),
            "read",
            json!({"tag": "plc1.setpoint", "live": true})
        ),
        json!(4321)
    );

    // Read-only: by config, and by table (input registers).
    let r = rt.execute_ok(Some(&id), "write", json!({"tag": "plc1.limit", "value": 1}));
    assert_eq!(r["ok"], json!(false));
    assert!(
        r["error"].as_str().is_some_and(|e| e.contains("read-only")),
        "{r}"
    );
    let r = rt.execute_ok(
        Some(&id),
        "write",
        json!({"tag": "plc1.answer", "value": 1}),
    );
    assert!(
        r["error"].as_str().is_some_and(|e| e.contains("read-only")),
        "{r}"
    );
    let r = rt.execute_ok(
        Some(&id),
        "write",
        json!({"tag": "plc1.setpoint", "value": "x"}),
    );
    assert!(
        r["error"].as_str().is_some_and(|e| e.contains("值无效")),
        "{r}"
    );
    assert_eq!(
        plc.read_holding(20),
        0,
        "the read-only register is untouched"
    );

    // Who wrote what, in the script's own log.
    let out = rt.output(&id);
    assert!(
        out.contains("plc1.setpoint = 4321") && out.contains(&id),
        "{out}"
    );
    assert!(out.contains("plc1.limit") && out.contains("失败"), "{out}");

    // HTTP: same checks.
    let r = rt.post("/api/io/points/plc1.setpoint", &json!({"value": 99}));
    r.ok();
    assert_eq!(r.data()["writer"], "http:127.0.0.1");
    assert_eq!(plc.read_holding(10), 99);
    rt.post("/api/io/points/plc1.limit", &json!({"value": 5}))
        .fails(403, "read-only");
    rt.post("/api/io/points/nope", &json!({"value": 5}))
        .fails(404, "未知的点位");
    rt.post("/api/io/points/plc1.setpoint", &json!({"value": [1]}))
        .fails(400, "值无效");
    rt.post("/api/io/points/plc1.setpoint", &json!({"valu": 1}))
        .expect_status(400);
    // Every write, allowed or not, with its writer.
    let w = rt.get("/api/io/writes");
    w.ok();
    let writes = w.data().as_array().cloned().unwrap_or_default();
    let has = |writer: &Value, target: &str, ok: bool| {
        writes
            .iter()
            .any(|x| &x["writer"] == writer && x["target"] == json!(target) && x["ok"] == json!(ok))
    };
    assert!(has(&json!(id), "plc1.setpoint", true), "{writes:?}");
    assert!(has(&json!(id), "plc1.limit", false), "{writes:?}");
    assert!(
        has(&json!("http:127.0.0.1"), "plc1.setpoint", true),
        "{writes:?}"
    );
    assert!(
        has(&json!("http:127.0.0.1"), "plc1.limit", false),
        "{writes:?}"
    );

    // And in the audit log: a script's writes under the script (queued, so
    // they may land a moment later), HTTP writes under the caller's token.
    let audit = |query: &str| {
        let r = rt.get(&format!("/api/audit?limit=100&{query}"));
        r.ok();
        r.data()["entries"].as_array().cloned().unwrap_or_default()
    };
    let script = format!("script:{id}");
    let logged = |entries: &[Value], user: &str, target: &str, status: u16| {
        entries.iter().any(|e| {
            e["user"] == json!(user) && e["target"] == json!(target) && e["status"] == json!(status)
        })
    };
    wait_until(WAIT, "script writes audited", || {
        let e = audit("action=io.write");
        logged(&e, &script, "plc1.setpoint", 200) && logged(&e, &script, "plc1.limit", 409)
    });
    let http = audit("action=/api/io/points");
    let path = "/api/io/points/plc1.setpoint";
    assert!(logged(&http, "admin.token", path, 200), "{http:?}");
    assert!(
        logged(&http, "admin.token", "/api/io/points/plc1.limit", 403),
        "{http:?}"
    );
    assert!(
        http.iter()
            .all(|e| e["action"] == json!("POST /api/io/points/{tag}")
                && e["role"] == json!("admin")),
        "{http:?}"
    );
}

#[test]
fn raw_modbus_serial_errors_and_the_one_shot_form_from_a_script() {
    let server = ModbusServer::start();
    let (rt, _dir) = runtime_with_io(server.port);
    let port = server.port;
    let id = rt.deploy(
        "io",
        "raw.py",
        &py(r#"
        def boot():
            @VWED.function.register("raw")
            def raw(args):
                plc = VWED.device.modbus("plc1")
                out = {
                    "hr0": plc.read_holding(0),
                    "hr50": plc.read_holding(50, 2),
                    "coils": plc.read_coils(0, 3),
                    "discrete": plc.read_discrete(0, 2),
                    "input1": plc.read_input(1),
                    "unit2": VWED.device.modbus("plc").read_holding(0, unit=2),
                }
                plc.write_register(40, 4040)
                plc.write_registers(41, [1, 2])
                plc.write_coil(5, True)
                out["after"] = plc.read_holding(40, 3)
                out["coil5"] = plc.read_coils(5)
                out["oneshot_write"] = VWED.device.modbus(ip="127.0.0.1", port=args["port"], register=42, value=7)
                out["oneshot_read"] = VWED.device.modbus(ip="127.0.0.1", port=args["port"], register=42)
                errors = {}
                for name, f in [
                    ("read_only", lambda: plc.write_register(20, 1)),
                    ("exception", lambda: plc.read_holding(500)),
                    ("unknown", lambda: VWED.device.modbus("nope").read_holding(0)),
                    ("unconfigured", lambda: VWED.device.modbus(ip="10.9.9.9", port=502, register=1)),
                    ("serial", lambda: VWED.device.serial("nope").request("PING", timeout=0.5)),
                ]:
                    try:
                        f()
                        errors[name] = None
                    except VWED.Error as e:
                        errors[name] = str(e)
                out["errors"] = errors
                return out
    "#),
    );
    let r = rt.execute_ok(Some(&id), "raw", json!({"port": port}));
    assert_eq!(r["hr0"], json!([1234]));
    assert_eq!(r["hr50"], json!([5050, 5051]));
    assert_eq!(r["coils"], json!([true, false, true]));
    assert_eq!(r["discrete"], json!([false, true]));
    assert_eq!(r["input1"], json!([42]));
    assert_eq!(r["unit2"], json!([2234]));
    assert_eq!(r["after"], json!([4040, 1, 2]));
    assert_eq!(r["coil5"], json!([true]));
    assert_eq!(r["oneshot_write"], Value::Null);
    assert_eq!(r["oneshot_read"], json!([7]));
    let err = |k: &str| r["errors"][k].as_str().unwrap_or("").to_string();
    assert!(err("read_only").contains("plc1.limit"), "{r}");
    assert!(err("exception").contains("illegal data address"), "{r}");
    assert!(
        err("unknown").contains("plc1"),
        "names the configured devices: {r}"
    );
    assert!(
        err("unconfigured").contains("10.9.9.9") && err("unconfigured").contains("io_config"),
        "{r}"
    );
    assert!(err("serial").contains("nope"), "{r}");
    let out = rt.output(&id);
    assert!(
        out.contains("plc1/plc/unit1/40"),
        "raw writes are logged: {out}"
    );
}

#[test]
fn robot_status_and_dispatch() {
    let server = ModbusServer::start();
    let (rt, _dir) = runtime_with_io(server.port);
    let mut plc = Master::connect(server.port);
    plc.write_register(31, 87);
    let id = rt.deploy(
        "io",
        "robot.py",
        &py(r#"
        def boot():
            @VWED.function.register("robot")
            def robot(args):
                if args.get("dispatch") is not None:
                    return VWED.robot.dispatch("agv", task_id=args["dispatch"])
                return {"one": VWED.robot.get_status("agv"), "all": VWED.robot.get_all()}

            @VWED.function.register("bad")
            def bad(args):
                try:
                    VWED.robot.get_status("ghost")
                except VWED.Error as e:
                    return str(e)
    "#),
    );
    wait_until(WAIT, "robot online with battery 87", || {
        let r = rt.execute_ok(Some(&id), "robot", json!({}));
        r["one"]["online"] == json!(true) && r["one"]["status"]["battery"] == json!(87)
    });
    let r = rt.execute_ok(Some(&id), "robot", json!({}));
    assert_eq!(r["one"]["robot_id"], "agv");
    assert_eq!(r["one"]["commands"], json!(["goto"]));
    assert_eq!(r["all"].as_array().map(Vec::len), Some(1));
    let d = rt.execute_ok(Some(&id), "robot", json!({"dispatch": 12}));
    assert_eq!(d["command"], "goto");
    assert_eq!(d["tag"], "agv.target");
    assert_eq!(plc.read_holding(30), 12);
    wait_until(WAIT, "status shows the new target", || {
        let r = rt.execute_ok(Some(&id), "robot", json!({}));
        r["one"]["status"]["target"] == json!(12)
    });
    let b = rt.execute_ok(Some(&id), "bad", json!({}));
    assert!(
        b.as_str()
            .is_some_and(|s| s.contains("ghost") && s.contains("agv")),
        "{b}"
    );
    let robots = rt.get("/api/io/robots");
    robots.ok();
    assert_eq!(robots.data()[0]["robot_id"], "agv");
}

#[test]
fn point_changes_stream_over_the_websocket_to_io_subscribers_only() {
    let server = ModbusServer::start();
    let (rt, _dir) = runtime_with_io(server.port);
    let mut io_ws = ws::connect(&rt, "?client_id=io-ui");
    ws::send(
        &mut io_ws,
        json!({"type": "subscribe", "script_id": "io:plc1.setpoint"}),
    );
    let mut logs_ws = ws::connect(&rt, "?client_id=log-ui");
    ws::send(&mut logs_ws, json!({"type": "subscribe", "script_id": "*"}));
    wait_until(WAIT, "point good", || {
        point(&rt, "plc1.setpoint")["quality"] == "good"
    });
    Master::connect(server.port).write_register(10, 555);
    let deadline = Instant::now() + WAIT;
    let mut got = None;
    while let Some(v) = ws::next(&mut io_ws, deadline) {
        if v["type"] == "io_point" {
            assert_eq!(v["tag"], "plc1.setpoint", "only the subscribed tag: {v}");
            if v["value"] == json!(555) {
                got = Some(v);
                break;
            }
        }
    }
    let v = got.expect("io_point with value 555");
    assert_eq!(v["quality"], "good");
    // A log subscriber of every script does not get point changes.
    let deadline = Instant::now() + Duration::from_millis(500);
    while let Some(v) = ws::next(&mut logs_ws, deadline) {
        assert_ne!(v["type"], "io_point", "{v}");
    }
}

#[test]
fn without_io_config_the_api_says_so() {
    let rt = Runtime::start();
    let r = rt.get("/api/io/points");
    r.ok();
    assert_eq!(r.data(), &json!([]));
    let r = rt.get("/api/io/devices");
    r.ok();
    assert_eq!(r.data(), &json!([]));
    rt.post("/api/io/points/a.b", &json!({"value": 1}))
        .fails(503, "I/O 未配置");
    let id = rt.deploy(
        "io",
        "none.py",
        &py(r#"
        def boot():
            @VWED.function.register("read")
            def read(args):
                try:
                    VWED.io.read("a.b")
                except VWED.Error as e:
                    return str(e)
    "#),
    );
    let e = rt.execute_ok(Some(&id), "read", json!({}));
    assert!(e.as_str().is_some_and(|s| s.contains("I/O 未配置")), "{e}");
}

#[test]
fn an_invalid_device_config_stops_the_start_with_its_location() {
    let dir = TempDir::new("io-bad");
    let cfg = dir.path().join("io.toml");
    std::fs::write(
        &cfg,
        "[[bus]]\nname = \"x\"\nkind = \"tcp\"\nhost = \"h\"\nport = 1\nspeed = 3\n",
    )
    .expect("write");
    let data = TempDir::new("io-bad-data");
    let out = Command::new(vwed_e2e::binary())
        .args(["serve", "--listen", "127.0.0.1:0", "--data-dir"])
        .arg(data.path())
        .arg("--io-config")
        .arg(&cfg)
        .arg("--board")
        .arg("linux-sim")
        .env("VWED_SAMPLE_PROJECT", "false")
        .stdin(Stdio::null())
        .output()
        .expect("run vwed-edge");
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("io.toml:") && err.contains("speed"), "{err}");
    let out = Command::new(vwed_e2e::binary())
        .args(["serve", "--listen", "127.0.0.1:0", "--data-dir"])
        .arg(data.path())
        .arg("--io-config")
        .arg(&cfg)
        .arg("--board")
        .arg("no-such-board")
        .stdin(Stdio::null())
        .output()
        .expect("run vwed-edge");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("no-such-board") && err.contains("linux-sim"),
        "{err}"
    );
    // A board without a device config is still checked.
    let out = Command::new(vwed_e2e::binary())
        .args(["serve", "--listen", "127.0.0.1:0", "--data-dir"])
        .arg(data.path())
        .args(["--board", "no-such-board"])
        .stdin(Stdio::null())
        .output()
        .expect("run vwed-edge");
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("no-such-board"));
}

/// `socat` pty pair with `hal/tests/peers/line_echo.py` on one end; killed on drop.
struct LinePeer {
    echo: Child,
    /// Dropped after the echo peer is killed.
    pty: PtyPair,
}

impl LinePeer {
    fn start() -> LinePeer {
        let pty = PtyPair::start("pty");
        let mut echo = Command::new(python())
            .arg("-u")
            .arg(peer_script().with_file_name("line_echo.py"))
            .arg(&pty.theirs)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("start line_echo.py");
        let mut first = String::new();
        let read = BufReader::new(echo.stdout.take().expect("stdout")).read_line(&mut first);
        let peer = LinePeer { echo, pty };
        read.expect("READY line");
        assert_eq!(first.trim(), "READY", "line_echo.py (pip install pyserial)");
        peer
    }
}

impl Drop for LinePeer {
    fn drop(&mut self) {
        let _ = self.echo.kill();
        let _ = self.echo.wait();
    }
}

#[test]
fn serial_line_device_request_from_a_script() {
    let peer = LinePeer::start();
    let dir = TempDir::new("io-line");
    let cfg = dir.path().join("io.toml");
    std::fs::write(
        &cfg,
        format!(
            "[[bus]]\nname = \"arm\"\nkind = \"line\"\nserial = \"{}\"\nbaud = 115200\n\
             terminator = \"\\r\\n\"\ntimeout_ms = 500\n",
            peer.pty.ours
        ),
    )
    .expect("write device config");
    let rt = Runtime::with(Opts::default().env("VWED_IO_CONFIG", cfg.display()));
    let id = rt.deploy(
        "io",
        "arm.py",
        &py(r#"
        def boot():
            @VWED.function.register("ask")
            def ask(args):
                arm = VWED.device.serial("arm")
                out = {"status": arm.request("STATUS"), "goto": arm.request("GOTO 3 4", timeout=2)}
                try:
                    arm.request("QUIET", timeout=0.3)
                    out["quiet"] = None
                except VWED.Error as e:
                    out["quiet"] = str(e)
                return out
    "#),
    );
    wait_until(WAIT, "line device connected", || {
        device(&rt, "arm")["state"] == "connected"
    });
    let r = rt.execute_ok(Some(&id), "ask", json!({}));
    assert_eq!(r["status"], "ECHO STATUS");
    assert_eq!(r["goto"], "ECHO GOTO 3 4");
    assert!(r["quiet"].as_str().is_some_and(|e| !e.is_empty()), "{r}");
    let d = device(&rt, "arm");
    assert_eq!(d["kind"], "line");
    assert!(d["counters"]["responses"].as_u64().unwrap_or(0) >= 2, "{d}");
    let w = rt.get("/api/io/writes");
    assert!(
        w.data().as_array().is_some_and(|v| v
            .iter()
            .any(|x| x["target"] == "serial:arm" && x["value"] == "GOTO 3 4")),
        "serial commands are logged with their sender: {}",
        w.text
    );
}
