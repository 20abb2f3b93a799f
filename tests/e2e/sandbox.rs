//! The sandbox, tried as an attacker would from an ordinary script: every escape
//! fails with an error the script can catch, and a grant in the configuration
//! opens exactly what it names. Runaway scripts are in runaway.rs. (What it costs
//! is in BENCHMARKS.md, not here.)

use std::net::TcpListener;
use std::path::Path;

use vwed_e2e::{Opts, Runtime, TempDir, Value, json, process_alive, py};

/// One function, `attempt`, that tries the named thing and says what happened.
const ATTACKER: &str = r##"
import ctypes, os, platform, socket, subprocess

libc = ctypes.CDLL(None, use_errno=True)
# (socket, ptrace) by number, for a raw syscall that no Python wrapper sees.
NR = {"x86_64": (41, 101), "aarch64": (198, 117)}[platform.machine()]

def raw(nr, *args):
    r = libc.syscall(nr, *args)
    if r < 0:
        e = ctypes.get_errno()
        raise OSError(e, os.strerror(e))
    return r

def read(p):
    with open(p, "rb") as f:
        return f.read(64)

def append(p):
    with open(p, "a") as f:
        f.write("# pwned\n")

def fork_loop():
    for _ in range(50):
        pid = os.fork()
        if pid == 0:
            os._exit(0)
        os.waitpid(pid, 0)

def connect(port):
    socket.create_connection(("127.0.0.1", port), timeout=5).close()

ATTEMPTS = {
    "read_passwd": lambda a: read("/etc/passwd"),
    "read_other_project": lambda a: read(a["other_source"]),
    "list_other_project": lambda a: os.listdir(os.path.dirname(a["other_source"])),
    "read_database": lambda a: read(a["database"]),
    "read_config": lambda a: read(a["config"]),
    "read_supervisor_environ": lambda a: read(f"/proc/{os.getppid()}/environ"),
    "read_supervisor_exe": lambda a: read(f"/proc/{os.getppid()}/exe"),
    "run_supervisor_exe": lambda a: subprocess.run(
        [f"/proc/{os.getppid()}/exe", "config"], capture_output=True),
    "exec_supervisor_exe": lambda a: os.execv(f"/proc/{os.getppid()}/exe", ["vwed-edge", "config"]),
    "write_own_source": lambda a: append(a["own_source"]),
    "write_other_project": lambda a: append(a["other_source"]),
    "write_outside": lambda a: append(a["outside"]),
    "tcp_socket": lambda a: connect(a["api_port"]),
    "udp_socket": lambda a: socket.socket(socket.AF_INET, socket.SOCK_DGRAM),
    "raw_socket": lambda a: socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_ICMP),
    "netlink_socket": lambda a: socket.socket(socket.AF_NETLINK, socket.SOCK_RAW, 0),
    "unix_socket": lambda a: socket.socket(socket.AF_UNIX, socket.SOCK_STREAM),
    "fork_loop": lambda a: fork_loop(),
    "kill_supervisor": lambda a: os.kill(os.getppid(), 9),
    "ptrace_supervisor": lambda a: raw(NR[1], 16, os.getppid(), 0, 0),
    "raw_socket_syscall": lambda a: raw(NR[0], 2, 1, 0),
    # What a script may do, to show the refusals above are not blanket ones.
    "read_own_source": lambda a: read(a["own_source"]),
    "write_scratch": lambda a: append(os.path.join(VWED.util.scratch_dir(), "notes.txt")),
    "read_granted": lambda a: read(a["granted_file"]),
    "write_granted": lambda a: append(os.path.join(a["granted_dir"], "out.txt")),
    "connect_granted": lambda a: connect(a["granted_port"]),
}

def boot(params):
    # Function names are global: a second copy of this script takes a prefix.
    prefix = params.get("prefix", "")

    @VWED.function.register(prefix + "attempt")
    def attempt(args):
        try:
            value = ATTEMPTS[args["kind"]](args)
        except OSError as e:
            return {"ok": False, "error": f"{type(e).__name__}: {e}"}
        return {"ok": True, "value": repr(value)[:200]}

    @VWED.function.register(prefix + "environment")
    def environment(args):
        return {"environ": dict(os.environ), "cwd": os.getcwd(),
                "scratch": VWED.util.scratch_dir()}
"##;

const SECRET: &str = "s3cret-smtp-password";

/// Things that must fail, with the error the script must see.
const ESCAPES: &[&str] = &[
    "read_passwd",
    "read_other_project",
    "list_other_project",
    "read_database",
    "read_config",
    "read_supervisor_environ",
    "read_supervisor_exe",
    "run_supervisor_exe",
    "exec_supervisor_exe",
    "write_own_source",
    "write_other_project",
    "write_outside",
    "tcp_socket",
    "udp_socket",
    "raw_socket",
    "netlink_socket",
    "unix_socket",
    "fork_loop",
    "kill_supervisor",
    "ptrace_supervisor",
    "raw_socket_syscall",
    "read_granted",
    "write_granted",
    "connect_granted",
];

/// A runtime whose secrets sit where the issue found them: in the config file and
/// in the supervisor's environment.
fn runtime_with_secrets(config: &Path, grants: &str) -> Runtime {
    std::fs::write(config, format!("smtp_password = \"{SECRET}\"\n\n{grants}"))
        .expect("write config");
    Runtime::with(
        Opts::default()
            .env("VWED_CONFIG", config.display())
            .env("VWED_SMTP_USERNAME", SECRET),
    )
}

struct Targets {
    args: Value,
    _outside: TempDir,
}

/// Paths and ports the attacker aims at; `granted_*` are what project `p` may get.
fn targets(rt: &Runtime, config: &Path, granted: &Path, port: u16) -> Targets {
    let outside = TempDir::new("outside");
    std::fs::write(outside.path().join("notes.txt"), "x").expect("outside file");
    let args = json!({
        "own_source": rt.project_dir("p").join("attacker.py"),
        "other_source": rt.project_dir("victim").join("secret.py"),
        "database": rt.data_dir().join("vwed.redb"),
        "config": config,
        "outside": outside.path().join("notes.txt"),
        "api_port": rt.port,
        "granted_file": granted.join("recipe.txt"),
        "granted_dir": granted,
        "granted_port": port,
    });
    Targets {
        args,
        _outside: outside,
    }
}

fn attempt(rt: &Runtime, script: &str, t: &Targets, kind: &str) -> Value {
    let mut args = t.args.clone();
    args["kind"] = json!(kind);
    let prefix = if script.starts_with("second_") {
        "second_"
    } else {
        ""
    };
    rt.execute_ok(Some(script), &format!("{prefix}attempt"), args)
}

/// What a test aims at besides the runtime: a config file, a folder and a port
/// that a grant may name, and a listener on that port.
struct Outside {
    config: std::path::PathBuf,
    granted: TempDir,
    port: u16,
    _etc: TempDir,
    _listener: TcpListener,
}

fn outside() -> Outside {
    let etc = TempDir::new("etc");
    let granted = TempDir::new("granted");
    std::fs::write(granted.path().join("recipe.txt"), "r").expect("granted file");
    let listener = TcpListener::bind("127.0.0.1:0").expect("listener");
    Outside {
        config: etc.path().join("config.toml"),
        granted,
        port: listener.local_addr().expect("addr").port(),
        _etc: etc,
        _listener: listener,
    }
}

#[test]
fn every_escape_from_a_script_fails_with_an_error_it_can_catch() {
    // Bound whole: the folder and the listener must live as long as the test.
    let out = outside();
    let (config, granted, port) = (&out.config, &out.granted, out.port);
    let rt = runtime_with_secrets(config, "");
    let victim = rt.create_project("victim");
    rt.create_file(
        victim,
        "secret.py",
        "TOKEN = 'victim'\ndef boot():\n    pass\n",
    );
    let attacker = rt.deploy("p", "attacker.py", ATTACKER);
    let t = targets(&rt, config, granted.path(), port);

    for kind in ESCAPES {
        let r = attempt(&rt, &attacker, &t, kind);
        assert_eq!(r["ok"], json!(false), "{kind} succeeded: {r}");
        let error = r["error"].as_str().unwrap_or("");
        assert!(
            error.starts_with("PermissionError"),
            "{kind}: expected a PermissionError, got {r}"
        );
    }
    for kind in ["read_own_source", "write_scratch"] {
        let r = attempt(&rt, &attacker, &t, kind);
        assert_eq!(r["ok"], json!(true), "{kind} was refused: {r}");
    }
    let victim_source =
        std::fs::read_to_string(rt.project_dir("victim").join("secret.py")).expect("victim");
    assert!(!victim_source.contains("pwned"), "{victim_source}");

    // The supervisor, the script and its worker are all still there.
    rt.get("/health").expect_status(200);
    assert!(process_alive(rt.pid()));
    let entry = rt.running_entry(&attacker).expect("attacker still listed");
    assert_eq!(entry["status"], json!("running"));
    let sandbox = &entry["sandbox"];
    assert_eq!(sandbox["complete"], json!(true), "{sandbox}");
    assert_eq!(sandbox["processes"], json!("seccomp"), "{sandbox}");
    assert!(
        sandbox["filesystem"]
            .as_str()
            .is_some_and(|f| f.starts_with("landlock v")),
        "{sandbox}"
    );

    // No secret of the supervisor's reaches the script's environment.
    let env = rt.execute_ok(Some(&attacker), "environment", json!({}));
    assert!(!env["environ"].to_string().contains(SECRET), "{env}");
    assert!(
        env["environ"].as_object().is_some_and(|e| !e
            .keys()
            .any(|k| k.starts_with("VWED_") && k != "VWED_SUPERVISOR_PID")),
        "{env}"
    );
    let scratch = rt.scratch_dir("p");
    assert_eq!(env["scratch"], json!(scratch), "{env}");
    assert_eq!(env["cwd"], json!(scratch), "{env}");
    assert!(scratch.join("notes.txt").is_file());
}

#[test]
fn a_grant_opens_exactly_what_the_configuration_names() {
    // Bound whole: the folder and the listener must live as long as the test.
    let out = outside();
    let (config, granted, port) = (&out.config, &out.granted, out.port);
    let grants = format!(
        "[sandbox.projects.p]\nread = [\"{dir}\"]\nwrite = [\"{dir}\"]\nnetwork = [\"tcp:{port}\"]\n",
        dir = granted.path().display()
    );
    let rt = runtime_with_secrets(config, &grants);
    rt.create_project("victim");
    let granted_script = rt.deploy("p", "attacker.py", ATTACKER);
    let q = rt.create_project("q");
    rt.create_file(q, "second_attacker.py", ATTACKER);
    let other_script = rt.start_ok("q/second_attacker.py", Some(json!({"prefix": "second_"})));
    let t = targets(&rt, config, granted.path(), port);

    for kind in ["read_granted", "write_granted", "connect_granted"] {
        let r = attempt(&rt, &granted_script, &t, kind);
        assert_eq!(
            r["ok"],
            json!(true),
            "{kind} refused despite the grant: {r}"
        );
        let r = attempt(&rt, &other_script, &t, kind);
        assert_eq!(r["ok"], json!(false), "{kind} allowed without a grant: {r}");
    }
    assert!(granted.path().join("out.txt").is_file());
    // A port grant is one port: the runtime's own API stays out of reach, and UDP
    // and the rest stay closed.
    for kind in [
        "tcp_socket",
        "udp_socket",
        "raw_socket",
        "read_config",
        "read_database",
    ] {
        let r = attempt(&rt, &granted_script, &t, kind);
        assert_eq!(r["ok"], json!(false), "{kind} allowed by a port grant: {r}");
        assert!(
            r["error"]
                .as_str()
                .is_some_and(|e| e.starts_with("PermissionError")),
            "{kind}: {r}"
        );
    }
}

#[test]
fn a_grant_that_would_expose_the_data_dir_keeps_the_runtime_from_starting() {
    let data = TempDir::new("data");
    let etc = TempDir::new("etc");
    let config = etc.path().join("config.toml");
    let parent = data.path().parent().expect("parent of the data dir");
    std::fs::write(
        &config,
        format!("[sandbox.projects.p]\nread = [\"{}\"]\n", parent.display()),
    )
    .expect("config");
    let out = std::process::Command::new(vwed_e2e::binary())
        .arg("serve")
        .arg("--listen")
        .arg("127.0.0.1:0")
        .arg("--data-dir")
        .arg(data.path())
        .arg("--config")
        .arg(&config)
        .env_remove("VWED_CONFIG")
        .output()
        .expect("run vwed-edge");
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("would expose"), "{stderr}");
}

/// The analyzer parses every saved source; it runs none, and gets nothing but Python.
#[test]
fn the_analyzer_worker_is_confined_too() {
    let rt = Runtime::start();
    let p = rt.create_project("p");
    rt.create_file(p, "a.py", "def boot():\n    pass\n");
    let analyzer = children(rt.pid())
        .into_iter()
        .find(|(_, cmd)| cmd.contains("--analyzer"))
        .map(|(pid, _)| pid)
        .expect("an analyzer worker after a file was saved");
    let status = std::fs::read_to_string(format!("/proc/{analyzer}/status")).expect("status");
    for line in ["NoNewPrivs:\t1", "Seccomp:\t2", "CapEff:\t0000000000000000"] {
        assert!(status.contains(line), "{line} missing:\n{status}");
    }
}

/// Processes whose parent is `parent`, with their command lines.
fn children(parent: u32) -> Vec<(u32, String)> {
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    dir.flatten()
        .filter_map(|e| e.file_name().to_str()?.parse::<u32>().ok())
        .filter(|pid| {
            std::fs::read_to_string(format!("/proc/{pid}/stat"))
                .ok()
                .and_then(|s| {
                    let rest = s.rsplit_once(')')?.1.to_string();
                    rest.split_whitespace().nth(1)?.parse::<u32>().ok()
                })
                == Some(parent)
        })
        .map(|pid| {
            let cmd = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
            (pid, String::from_utf8_lossy(&cmd).replace('\0', " "))
        })
        .collect()
}

#[test]
fn with_the_sandbox_off_scripts_run_unconfined_and_the_runtime_says_so() {
    let rt = Runtime::with(Opts::default().env("VWED_SANDBOX__ENABLED", "false"));
    let sid = rt.deploy(
        "p",
        "open.py",
        &py(r#"
            import socket
            def boot():
                @VWED.function.register("udp")
                def udp(args):
                    socket.socket(socket.AF_INET, socket.SOCK_DGRAM).close()
                    return VWED.util.scratch_dir()
        "#),
    );
    assert_eq!(
        rt.execute_ok(Some(&sid), "udp", json!({})),
        json!(rt.scratch_dir("p"))
    );
    let sandbox = &rt.running_entry(&sid).expect("listed")["sandbox"];
    assert_eq!(sandbox["filesystem"], json!("off"), "{sandbox}");
    assert_eq!(sandbox["complete"], json!(false), "{sandbox}");
}

#[test]
fn with_the_sandbox_required_a_fully_confined_script_starts() {
    let rt = Runtime::with(Opts::default().env("VWED_SANDBOX__REQUIRED", "true"));
    let sid = rt.deploy("p", "ok.py", "def boot():\n    pass\n");
    let sandbox = &rt.running_entry(&sid).expect("listed")["sandbox"];
    assert_eq!(sandbox["complete"], json!(true), "{sandbox}");
    assert_eq!(sandbox["missing"], json!([]), "{sandbox}");
}
