//! Access control wired into the real binary: every endpoint asks for a
//! credential and says clearly why one is refused, login storms stay bounded,
//! WebSockets close when their credential ends, script routes are the
//! operator's unless registered public, and what changed is in the audit log
//! before the answer (it survives a kill -9).

use std::time::Duration;

use tungstenite::protocol::frame::coding::CloseCode;
use vwed_e2e::*;

/// A new API token of `role` made by the admin: (id, token).
pub(crate) fn new_token(rt: &Runtime, admin: &str, role: &str, days: Option<u64>) -> (u64, String) {
    let mut body = json!({"name": format!("{role}-e2e"), "role": role});
    if let Some(d) = days {
        body["expires_days"] = json!(d);
    }
    let r = rt.send_as(Some(admin), "POST", "/api/auth/tokens", Some(&body));
    r.ok();
    let id = r.data()["id"].as_u64().expect("token id");
    (id, r.data()["token"].as_str().expect("token").to_string())
}

/// The first admin logs in with the password the first start wrote.
fn admin_login(rt: &Runtime) -> Resp {
    let pw = std::fs::read_to_string(rt.data_dir().join("initial-admin-password"))
        .expect("initial password");
    rt.send_as(
        None,
        "POST",
        "/api/auth/login",
        Some(&json!({"username": "admin", "password": pw.trim()})),
    )
}

/// Logs in as the first admin: (cookie pair, CSRF token).
pub(crate) fn admin_session(rt: &Runtime) -> (String, String) {
    let r = admin_login(rt);
    r.ok();
    let cookie = r.header("set-cookie").expect("cookie");
    let pair = cookie.split(';').next().expect("name=value").to_string();
    (
        pair,
        r.data()["csrf_token"].as_str().expect("csrf").to_string(),
    )
}

fn denied(rt: &Runtime) -> usize {
    let r = rt.send_as(
        Some(&admin_token(rt.data_dir())),
        "GET",
        "/api/audit?result=denied&limit=500",
        None,
    );
    r.ok();
    r.data()["entries"].as_array().map_or(0, Vec::len)
}

#[test]
fn every_endpoint_needs_a_credential_and_a_bad_one_gets_a_clear_401() {
    let rt = Runtime::with(Opts::default().anonymous());
    let admin = admin_token(rt.data_dir());
    rt.get("/health").ok();
    for path in [
        "/api/script/projects",
        "/api/io/status",
        "/api/audit",
        "/api/openapi.json",
        "/api/script/ws/script-logs?client_id=x",
        "/script-api/anything",
    ] {
        let r = rt.get(path);
        r.fails(401, "需要登录或 API 令牌");
        assert_eq!(
            r.header("www-authenticate"),
            Some("Bearer realm=\"vwed-edge\"")
        );
    }
    let long = format!("Bearer {}", "a".repeat(8_000));
    let unknown = format!("Bearer vwed_{}", "0".repeat(64));
    for (value, says) in [
        ("Basic YWRtaW46YWRtaW4=", "格式错误"),
        ("Bearer", "格式错误"),
        ("vwed_abc", "格式错误"),
        (long.as_str(), "格式错误"),
        ("Bearer vwed_zz", "无效或已吊销"),
        (unknown.as_str(), "无效或已吊销"),
    ] {
        rt.send(
            "GET",
            "/api/script/projects",
            None,
            &[("authorization", value)],
        )
        .fails(401, says);
    }
    // Bytes that are not text, and a session cookie of 20 KB.
    let raw = reqwest::header::HeaderValue::from_bytes(b"Bearer \xff\xfe").expect("obs-text");
    let r = rt
        .client()
        .get(rt.url("/api/script/projects"))
        .header("authorization", raw)
        .send()
        .expect("sent");
    assert_eq!(r.status().as_u16(), 401);
    let cookie = format!("vwed_session={}", "x".repeat(20_000));
    rt.send("GET", "/api/script/projects", None, &[("cookie", &cookie)])
        .fails(401, "会话无效");

    // A revoked token stops at once.
    let (id, op) = new_token(&rt, &admin, "operator", Some(30));
    rt.send_as(Some(&op), "GET", "/api/auth/me", None).ok();
    rt.send_as(
        Some(&admin),
        "DELETE",
        &format!("/api/auth/tokens/{id}"),
        None,
    )
    .ok();
    rt.send_as(Some(&op), "GET", "/api/auth/me", None)
        .fails(401, "吊销");

    // Who exists is not told: an unknown account and a wrong password read the same.
    let login = |user: &str| {
        rt.send_as(
            None,
            "POST",
            "/api/auth/login",
            Some(&json!({"username": user, "password": "not-this-one"})),
        )
    };
    assert_eq!(login("admin").text, login("nobody-at-all").text);

    rt.get("/health").ok();
    // 6 paths + 6 malformed + raw + cookie + revoked + 2 failed logins.
    assert!(denied(&rt) >= 17, "every refusal is recorded");
}

#[test]
fn a_login_storm_is_bounded_and_the_api_keeps_answering() {
    let rt = Runtime::start();
    let storm: Vec<_> = (0..48)
        .map(|i| {
            let (url, c) = (rt.url("/api/auth/login"), rt.bare());
            std::thread::spawn(move || {
                let body =
                    json!({"username": format!("user{}", i % 7), "password": "wrong-password"});
                let r = c.post(url).json(&body).send().expect("login answered");
                let retry = r.headers().contains_key("retry-after");
                (r.status().as_u16(), retry)
            })
        })
        .collect();
    // Token requests are not held up behind the hashing.
    for _ in 0..10 {
        rt.get("/api/script/projects").ok();
    }
    for t in storm {
        let (status, retry) = t.join().expect("storm thread");
        assert!(matches!(status, 401 | 429 | 503), "{status}");
        assert_eq!(retry, status == 429);
    }
    // The address has failed too often: even the right password waits now.
    admin_login(&rt).fails(429, "请");
    rt.get("/health").ok();
}

#[test]
fn a_websocket_closes_when_its_token_is_revoked_or_its_session_ends() {
    let rt = Runtime::start();
    let (id, viewer) = new_token(&rt, rt.token(), "viewer", None);
    let auth = format!("Bearer {viewer}");
    let mut socket = ws::connect_with(&rt, "?client_id=long", &[("authorization", &auth)])
        .expect("a viewer token opens the socket");
    ws::wait(&mut socket, "welcome", |m| m["type"] == "welcome");
    // A while of traffic first: a long session, not a fresh one.
    for _ in 0..5 {
        ws::send(&mut socket, json!({"type": "ping"}));
        ws::wait(&mut socket, "pong", |m| m["type"] == "pong");
        std::thread::sleep(Duration::from_millis(200));
    }
    rt.delete(&format!("/api/auth/tokens/{id}")).ok();
    assert_eq!(ws::close_code(&mut socket), Some(CloseCode::Policy));

    // A browser session: the page's own origin may open it; logout closes it.
    let (cookie, csrf) = admin_session(&rt);
    let origin = format!("http://127.0.0.1:{}", rt.port);
    let mut socket = ws::connect_with(
        &rt,
        "?client_id=page",
        &[("cookie", &cookie), ("origin", &origin)],
    )
    .expect("the session opens the socket");
    ws::wait(&mut socket, "welcome", |m| m["type"] == "welcome");
    let out = rt
        .bare()
        .post(rt.url("/api/auth/logout"))
        .header("cookie", &cookie)
        .header("x-csrf-token", &csrf)
        .send()
        .expect("logout");
    assert_eq!(out.status().as_u16(), 200);
    assert_eq!(ws::close_code(&mut socket), Some(CloseCode::Policy));

    // Another origin, or no credential: no socket at all.
    let evil = ws::connect_with(
        &rt,
        "?client_id=x",
        &[
            ("authorization", &rt.bearer()),
            ("origin", "http://evil.example"),
        ],
    );
    assert!(matches!(evil, Err(tungstenite::Error::Http(r)) if r.status() == 403));
    let anon = ws::connect_with(&rt, "?client_id=x", &[]);
    assert!(matches!(anon, Err(tungstenite::Error::Http(r)) if r.status() == 401));
}

const HOOKS: &str = r#"
def boot():
    @VWED.api.post("/hook", public=True)
    def hook(req):
        return {"got": req["body"]}

    @VWED.api.get("/private")
    def private(req):
        return {"ok": True}

    @VWED.function.register("misuse")
    def misuse():
        try:
            VWED.api.get("/odd", public="yes")
            return "accepted"
        except VWED.Error as e:
            return str(e)
"#;

#[test]
fn script_routes_need_an_operator_unless_the_script_made_them_public() {
    let rt = Runtime::start();
    rt.deploy("hooks", "main.py", &py(HOOKS));
    let (_, viewer) = new_token(&rt, rt.token(), "viewer", None);
    let (_, operator) = new_token(&rt, rt.token(), "operator", None);
    let hook = rt.send_as(None, "POST", "/script-api/hook", Some(&json!({"n": 1})));
    assert_eq!(hook.status, 200, "{}", hook.text);
    assert_eq!(hook.json["got"], json!({"n": 1}));
    rt.send_as(None, "GET", "/script-api/private", None)
        .fails(401, "需要登录或 API 令牌");
    rt.send_as(Some(&viewer), "GET", "/script-api/private", None)
        .fails(403, "operator");
    let ok = rt.send_as(Some(&operator), "GET", "/script-api/private", None);
    assert_eq!(ok.json, json!({"ok": true}), "{}", ok.text);
    // Public is per route and method: GET /hook is not registered, and says so
    // only to a caller who may know.
    rt.send_as(None, "GET", "/script-api/hook", None)
        .fails(401, "");
    rt.send_as(Some(&operator), "GET", "/script-api/hook", None)
        .fails(405, "不支持");

    let status = rt.get("/api/script/registry/status");
    let routes = &status.ok().data()["api_routes"];
    assert_eq!(routes["POST:/hook"]["public"], json!(true), "{routes}");
    assert_eq!(routes["GET:/private"]["public"], json!(false), "{routes}");
    let stubs = rt.get("/api/script/stubs/vwed.pyi").text;
    assert!(
        stubs.contains("def post(self, path: str, description: str = \"\", public: bool = False"),
        "{stubs}"
    );
    let misuse = rt.execute_ok(None, "misuse", json!({}));
    assert!(
        misuse
            .as_str()
            .is_some_and(|e| e.contains("public must be True or False")),
        "{misuse}"
    );

    // Refusals on script routes are audited; their successes are not (the hot path).
    let audit = rt.get("/api/audit?action=/script-api&limit=50");
    let entries = audit.ok().data()["entries"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    assert!(
        entries.iter().all(|e| e["result"] == json!("denied")),
        "{entries:?}"
    );
    assert!(
        entries
            .iter()
            .any(|e| e["action"] == json!("GET /script-api/private") && e["status"] == json!(403)),
        "{entries:?}"
    );
}

#[test]
fn changes_and_refusals_are_in_the_audit_log_before_the_answer() {
    let rt = Runtime::start();
    let (_, viewer) = new_token(&rt, rt.token(), "viewer", None);
    rt.create_project("audited");
    rt.send_as(
        Some(&viewer),
        "POST",
        "/api/script/projects",
        Some(&json!({"project_name": "nope"})),
    )
    .fails(403, "engineer");
    // Killed right after the answers: the records were durable before them.
    let rt = Runtime::start_in(rt.kill9_keep_data(), Opts::default());
    let r = rt.get("/api/audit?action=/api/script/projects&limit=10");
    let entries = r.ok().data()["entries"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    let made = entries
        .iter()
        .find(|e| e["status"] == json!(200))
        .unwrap_or_else(|| panic!("{entries:?}"));
    assert_eq!(made["user"], json!("admin.token"));
    assert_eq!(made["role"], json!("admin"));
    assert_eq!(made["action"], json!("POST /api/script/projects"));
    assert!(
        made["addr"]
            .as_str()
            .is_some_and(|a| a.starts_with("127.0.0.1:")),
        "{made}"
    );
    assert!(
        made["time"].as_str().is_some_and(|t| t.ends_with('Z')),
        "{made}"
    );
    let refused = entries
        .iter()
        .find(|e| e["status"] == json!(403))
        .unwrap_or_else(|| panic!("{entries:?}"));
    assert_eq!(refused["user"], json!("viewer-e2e"));
    assert_eq!(refused["result"], json!("denied"));
}
