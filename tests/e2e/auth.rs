//! Access control on the real binary: the first start's admin files, login over
//! HTTP, `vwed-edge user|token` through the running runtime's admin socket and
//! offline, `--no-auth` refused off loopback, secrets masked by `config`.

use std::io::Write;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use vwed_e2e::*;

/// Runs `vwed-edge <args> --data-dir <dir>`; returns (success, stdout, stderr).
fn cli(dir: &Path, args: &[&str], stdin: Option<&str>) -> (bool, String, String) {
    let mut cmd = Command::new(binary());
    cmd.args(args).arg("--data-dir").arg(dir);
    for (k, _) in std::env::vars() {
        if k.starts_with("VWED_") {
            cmd.env_remove(k);
        }
    }
    let mut child = cmd
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start vwed-edge");
    if let Some(mut input) = child.stdin.take() {
        input
            .write_all(stdin.unwrap_or("").as_bytes())
            .expect("stdin");
    }
    let out = child.wait_with_output().expect("vwed-edge ran");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn cli_json(dir: &Path, args: &[&str], stdin: Option<&str>) -> Value {
    let mut all = args.to_vec();
    all.push("--json");
    let (ok, out, err) = cli(dir, &all, stdin);
    assert!(ok, "vwed-edge {args:?} failed:\n{err}\n{out}");
    serde_json::from_str(&out).unwrap_or_else(|e| panic!("{e}: {out}"))
}

fn bearer(token: &str) -> String {
    format!("Bearer {}", token.trim())
}

fn me(rt: &Runtime, token: &str) -> Resp {
    rt.send(
        "GET",
        "/api/auth/me",
        None,
        &[("authorization", &bearer(token))],
    )
}

fn login(rt: &Runtime, user: &str, password: &str) -> Resp {
    rt.post(
        "/api/auth/login",
        &json!({"username": user, "password": password}),
    )
}

#[test]
fn first_start_writes_private_admin_files_and_both_work() {
    let rt = Runtime::with(Opts::default().anonymous());
    let dir = rt.data_dir().to_path_buf();
    for f in ["admin.token", "initial-admin-password", "auth.redb"] {
        let mode = std::fs::metadata(dir.join(f))
            .unwrap_or_else(|e| panic!("{f}: {e}"))
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600, "{f}");
    }
    let token = std::fs::read_to_string(dir.join("admin.token")).expect("token");
    let r = me(&rt, &token);
    r.ok();
    assert_eq!(r.data()["role"], "admin");
    let pw = std::fs::read_to_string(dir.join("initial-admin-password")).expect("password");
    let r = login(&rt, "admin", pw.trim());
    r.ok();
    let cookie = r.header("set-cookie").expect("cookie").to_string();
    assert!(cookie.contains("HttpOnly") && cookie.contains("SameSite=Strict"));
    login(&rt, "admin", "wrong-password").fails(401, "用户名或密码错误");
    login(&rt, "nobody", "wrong-password").fails(401, "用户名或密码错误");
}

#[test]
fn browser_attacks_are_refused_by_the_real_server() {
    let rt = Runtime::with(Opts::default().anonymous());
    let token = std::fs::read_to_string(rt.data_dir().join("admin.token")).expect("token");
    let auth = bearer(&token);
    // DNS rebinding: a name that is not ours in Host.
    rt.send(
        "GET",
        "/api/auth/me",
        None,
        &[("authorization", &auth), ("host", "evil.example")],
    )
    .fails(403, "Host");
    // A cross-origin form-style POST (no preflight) to a JSON route.
    let r = rt.send_raw(
        "POST",
        "/api/auth/login",
        "text/plain",
        br#"{"username":"admin","password":"x"}"#.to_vec(),
    );
    assert_eq!(r.status, 415, "{}", r.text);
    rt.send(
        "POST",
        "/api/auth/tokens",
        Some(&json!({"name": "x", "role": "admin"})),
        &[("authorization", &auth), ("origin", "http://evil.example")],
    )
    .fails(403, "Origin");
    let r = rt.send(
        "OPTIONS",
        "/api/auth/tokens",
        None,
        &[
            ("origin", "http://evil.example"),
            ("access-control-request-method", "POST"),
        ],
    );
    assert!(
        r.headers
            .keys()
            .all(|k| !k.as_str().starts_with("access-control-")),
        "no CORS headers: {:?}",
        r.headers
    );
    rt.send(
        "GET",
        "/api/auth/users",
        None,
        &[("authorization", "Bearer vwed_not-a-real-token")],
    )
    .fails(401, "令牌");
}

#[test]
fn cli_manages_accounts_through_the_running_runtime_and_offline() {
    let rt = Runtime::with(Opts::default().anonymous());
    let dir = rt.data_dir().to_path_buf();
    let admin = std::fs::read_to_string(dir.join("admin.token")).expect("token");

    // Running: through admin.sock; the runtime sees the change at once.
    let t = cli_json(
        &dir,
        &["token", "create", "--name", "plc", "--role", "operator"],
        None,
    );
    let plc = t["token"].as_str().expect("token shown once").to_string();
    assert_eq!(me(&rt, &plc).ok().data()["role"], "operator");
    cli_json(
        &dir,
        &["user", "add", "kim", "--role", "viewer", "--password-stdin"],
        Some("kim-password-1\n"),
    );
    login(&rt, "kim", "kim-password-1").ok();
    let id = t["id"].as_u64().expect("id").to_string();
    cli_json(&dir, &["token", "revoke", &id], None);
    me(&rt, &plc).fails(401, "吊销");
    let users = cli_json(&dir, &["user", "list"], None);
    let kim = users
        .as_array()
        .and_then(|u| u.iter().find(|u| u["name"] == "kim"))
        .expect("kim listed")
        .clone();
    assert!(kim["last_login_at"].is_string(), "{kim}");
    cli_json(&dir, &["user", "set", "kim", "--role", "operator"], None);
    let users = cli_json(&dir, &["user", "list"], None);
    let role = |users: &Value| {
        users
            .as_array()
            .and_then(|u| u.iter().find(|u| u["name"] == "kim"))
            .map(|kim| kim["role"].clone())
    };
    assert_eq!(role(&users), Some(Value::from("operator")), "{users}");
    let (ok, text, _) = cli(&dir, &["token", "list"], None);
    assert!(
        ok && text.contains("plc") && text.contains("revoked"),
        "{text}"
    );
    let (ok, _, err) = cli(&dir, &["user", "del", "admin"], None);
    assert!(!ok && err.contains("管理员"), "last admin stays: {err}");

    // Stopped: the CLI opens the store itself.
    let data = rt.terminate_keep_data(Duration::from_secs(20));
    assert!(!data.path().join("admin.sock").exists(), "socket removed");
    cli_json(
        data.path(),
        &["user", "passwd", "kim", "--password-stdin"],
        Some("kim-password-2\n"),
    );
    let offline = cli_json(
        data.path(),
        &[
            "token",
            "create",
            "--name",
            "offline",
            "--role",
            "engineer",
            "--expires-days",
            "7",
        ],
        None,
    );
    let offline = offline["token"].as_str().expect("token").to_string();

    let rt = Runtime::start_in(data, Opts::default().anonymous());
    login(&rt, "kim", "kim-password-1").fails(401, "");
    login(&rt, "kim", "kim-password-2").ok();
    assert_eq!(me(&rt, &offline).ok().data()["role"], "engineer");
    let audit = rt.send(
        "GET",
        "/api/audit?limit=100",
        None,
        &[("authorization", &bearer(&admin))],
    );
    let entries = audit.ok().data()["entries"].clone();
    let seen = |action: &str, addr: &str| {
        entries.as_array().is_some_and(|e| {
            e.iter().any(|e| {
                e["action"] == action && e["addr"].as_str().is_some_and(|a| a.starts_with(addr))
            })
        })
    };
    assert!(seen("token.create", "admin.sock"), "{entries}");
    assert!(seen("user.passwd", "offline"), "{entries}");
    assert!(seen("auth.login", "127.0.0.1"), "{entries}");
}

#[test]
fn no_auth_is_refused_off_loopback() {
    let data = TempDir::new("noauth");
    let out = Command::new(binary())
        .args(["serve", "--no-auth", "--listen", "0.0.0.0:1", "--data-dir"])
        .arg(data.path())
        .env("VWED_SAMPLE_PROJECT", "false")
        .output()
        .expect("vwed-edge ran");
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("--no-auth") && err.contains("loopback"),
        "{err}"
    );
}

#[test]
fn config_masks_secrets_and_reads_them_from_files() {
    let dir = TempDir::new("secrets");
    let run = |env: &[(&str, &str)]| {
        let mut cmd = Command::new(binary());
        cmd.arg("config");
        for (k, _) in std::env::vars() {
            if k.starts_with("VWED_") {
                cmd.env_remove(k);
            }
        }
        cmd.envs(env.iter().copied());
        cmd.output().expect("vwed-edge config")
    };
    let out = run(&[("VWED_SMTP_PASSWORD", "hunter2-secret")]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success());
    assert!(
        text.contains("smtp_password = \"***\"") && !text.contains("hunter2"),
        "{text}"
    );
    let file = dir.path().join("smtp");
    std::fs::write(&file, "from-a-file\n").expect("write");
    let f = file.display().to_string();
    let out = run(&[("VWED_SMTP_PASSWORD_FILE", &f)]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(text.contains("smtp_password = \"***\"") && !text.contains("from-a-file"));
    let both = run(&[("VWED_SMTP_PASSWORD_FILE", &f), ("VWED_SMTP_PASSWORD", "x")]);
    assert!(!both.status.success(), "one or the other");
}
