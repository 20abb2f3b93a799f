//! The API in process: the mounted filter driven with `warp::test`, over an
//! `Engine` on a temporary data dir. No worker is started here; what needs one
//! (script routes that answer, starts, analyzer checks) is for the e2e tests.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Instant;

use serde_json::{Value, json};
use warp::filters::BoxedFilter;
use warp::http::StatusCode;
use warp::ws::Message;

use super::Services;
use super::route::{Endpoint, Verb};
use super::{Resp, doc, routes, table};
use crate::config::Config;
use vwed_auth::Role;
use vwed_engine::Engine;

/// A new API token of `role`.
fn token(auth: &vwed_auth::Auth, role: Role) -> String {
    let cmd = vwed_auth::admin::Command::TokenCreate {
        name: format!("test-{}", role.as_str()),
        role,
        expires_days: None,
    };
    let out = auth
        .execute(cmd, &vwed_auth::Principal::cli())
        .expect("token");
    out["token"].as_str().expect("token value").to_string()
}

/// A data dir that is removed with the test.
struct TempDir(PathBuf);

impl TempDir {
    fn new() -> TempDir {
        static N: AtomicUsize = AtomicUsize::new(0);
        let n = N.fetch_add(1, Ordering::Relaxed);
        let p = std::env::temp_dir().join(format!("vwed-api-test-{}-{n}", std::process::id()));
        let _ = std::fs::remove_dir_all(&p);
        std::fs::create_dir_all(&p).expect("temp dir");
        TempDir(p)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Small body limit, so that the 413 paths are cheap to reach.
const BODY_LIMIT: u64 = 4096;

struct Api {
    filter: BoxedFilter<(Resp,)>,
    engine: Arc<Engine>,
    config: Arc<Config>,
    /// A token of each role; requests go as admin unless a test says otherwise.
    tokens: HashMap<Role, String>,
    _dir: TempDir,
}

/// Where the in-process requests say they go (the checks want a Host).
const HOST: &str = "127.0.0.1:8000";

impl Api {
    fn new() -> Api {
        let dir = TempDir::new();
        let cfg = Config {
            data_dir: dir.0.clone(),
            max_body_bytes: BODY_LIMIT,
            sample_project: false,
            ..Config::default()
        };
        let mut cfg = cfg;
        cfg.engine.spare_worker = false;
        let db = vwed_db::open(&cfg.data_dir.join("vwed.redb"), 1 << 20).expect("db");
        let store = vwed_store::ScriptStore::new(db, &cfg.data_dir).expect("store");
        let logs =
            vwed_logs::Logs::open(&cfg.logs, &cfg.data_dir, cfg.db_cache_bytes).expect("logs");
        // Never started: anything that would spawn a worker or the analyzer fails
        // with 503 instead of running this test binary.
        let exe = PathBuf::from("/nonexistent/vwed-edge");
        let settings = vwed_auth::Settings::resolve(&cfg.auth, false);
        let auth = vwed_auth::Auth::open(&cfg.data_dir, settings).expect("auth");
        let tokens = Role::ALL
            .into_iter()
            .map(|role| (role, token(&auth, role)))
            .collect();
        let setup = cfg.integrations_setup();
        let engine = Engine::new(
            Arc::new(cfg.engine_config()),
            setup,
            store,
            exe,
            None,
            logs,
            auth,
        );
        let config = Arc::new(cfg);
        Api {
            filter: routes(&services(&engine, &config)),
            config,
            engine,
            tokens,
            _dir: dir,
        }
    }

    /// `Authorization` of a role's token.
    fn bearer(&self, role: Role) -> String {
        format!("Bearer {}", self.tokens[&role])
    }

    async fn send(&self, method: &str, path: &str, body: &[u8]) -> Reply {
        self.send_as(Some(Role::Admin), method, path, body).await
    }

    /// A JSON request with a token of `role`, or with no credential.
    async fn send_as(&self, role: Option<Role>, method: &str, path: &str, body: &[u8]) -> Reply {
        let mut r = warp::test::request()
            .method(method)
            .path(path)
            .header("host", HOST)
            .header("content-type", "application/json")
            .body(body);
        if let Some(role) = role {
            r = r.header("authorization", self.bearer(role));
        }
        let reply = Reply::new(r.reply(&self.filter).await);
        conform::check(
            method,
            path,
            reply.status.as_u16(),
            &reply.content_type,
            &reply.json,
        );
        reply
    }

    async fn get(&self, path: &str) -> Reply {
        self.send("GET", path, b"").await
    }

    async fn post(&self, path: &str, body: Value) -> Reply {
        self.send("POST", path, body.to_string().as_bytes()).await
    }
}

struct Reply {
    status: StatusCode,
    content_type: String,
    text: String,
    json: Value,
}

impl Reply {
    fn new(r: warp::http::Response<bytes::Bytes>) -> Reply {
        let content_type = r
            .headers()
            .get("content-type")
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_string();
        let text = String::from_utf8_lossy(r.body()).into_owned();
        let json = serde_json::from_str(&text).unwrap_or(Value::Null);
        Reply {
            status: r.status(),
            content_type,
            text,
            json,
        }
    }

    fn error(&self) -> &str {
        self.json["error"].as_str().unwrap_or("")
    }

    #[track_caller]
    fn ok(&self) -> &Value {
        assert_eq!(self.status, StatusCode::OK, "{}", self.text);
        assert_eq!(self.json["success"], json!(true), "{}", self.text);
        &self.json
    }

    /// A failure in the envelope: the status, `success: false` and an error
    /// that says `what`.
    #[track_caller]
    fn fails(&self, status: u16, what: &str) {
        assert_eq!(self.status.as_u16(), status, "{}", self.text);
        assert!(
            self.content_type.starts_with("application/json"),
            "{}",
            self.content_type
        );
        assert_eq!(self.json["success"], json!(false), "{}", self.text);
        assert!(
            self.error().contains(what),
            "wanted {what:?}: {}",
            self.text
        );
    }
}

/// The API's services for in-process tests: no jobs service, ready.
fn services(engine: &Arc<Engine>, config: &Arc<Config>) -> Services {
    Services {
        engine: engine.clone(),
        config: config.clone(),
        jobs: None,
        started: Instant::now(),
        ready: Arc::new(std::sync::atomic::AtomicBool::new(true)),
    }
}

fn endpoints(api: &Api) -> Vec<Endpoint> {
    table(&services(&api.engine, &api.config))
        .iter()
        .map(|r| r.endpoint)
        .collect()
}

fn document(api: &Api) -> Value {
    serde_json::to_value(doc::document(&endpoints(api))).expect("document as JSON")
}

const METHODS: [&str; 5] = ["get", "post", "put", "delete", "patch"];

/// Every (METHOD, path) the document describes.
fn operations(doc: &Value) -> Vec<(String, String, Value)> {
    let mut out = Vec::new();
    for (path, item) in doc["paths"].as_object().expect("paths") {
        for m in METHODS {
            if let Some(op) = item.get(m) {
                out.push((m.to_ascii_uppercase(), path.clone(), op.clone()));
            }
        }
    }
    out
}

fn doc_path(ep: &Endpoint) -> String {
    ep.path.replace("{*", "{")
}

fn methods_of(ep: &Endpoint) -> Vec<&'static str> {
    match ep.verb {
        Verb::Any => doc::SCRIPT_METHODS.to_vec(),
        v => vec![v.as_str()],
    }
}

#[tokio::test]
async fn every_route_in_the_table_is_in_the_document_and_back() {
    let api = Api::new();
    let table = endpoints(&api);
    let doc = document(&api);
    assert_eq!(doc["openapi"], json!("3.1.0"));
    let ops = operations(&doc);
    for ep in &table {
        for m in methods_of(ep) {
            let op = ops
                .iter()
                .find(|(om, p, _)| om == m && *p == doc_path(ep))
                .unwrap_or_else(|| panic!("{m} {} is not in the document", ep.path));
            assert_eq!(
                op.2["x-vwed-role"],
                json!(ep.access.as_str()),
                "{m} {}",
                ep.path
            );
        }
    }
    for (m, path, _) in &ops {
        assert!(
            table
                .iter()
                .any(|ep| doc_path(ep) == *path && methods_of(ep).contains(&m.as_str())),
            "{m} {path} is documented but not mounted"
        );
    }
    // Operation ids are unique, and every reference leads somewhere.
    let mut ids = std::collections::HashSet::new();
    for (m, path, op) in &ops {
        let id = op["operationId"].as_str().unwrap_or_default().to_string();
        assert!(ids.insert(id.clone()), "{m} {path}: operationId {id} twice");
    }
    let text = doc.to_string();
    for r in text.split("\"$ref\":\"").skip(1) {
        let r = &r[..r.find('"').unwrap_or(0)];
        let name = r.trim_start_matches("#/components/schemas/");
        assert!(
            doc["components"]["schemas"].get(name).is_some(),
            "dangling reference {r}"
        );
    }
    // Each endpoint once.
    let mut seen = std::collections::HashSet::new();
    for ep in &table {
        assert!(seen.insert((ep.verb, ep.path)), "{} twice", ep.path);
    }
}

/// Who may call the table's entry `verb path`.
fn access_of(api: &Api, verb: Verb, path: &str) -> Option<super::route::Access> {
    endpoints(api)
        .into_iter()
        .find(|e| e.verb == verb && e.path == path)
        .map(|e| e.access)
}

#[tokio::test]
async fn the_roles_follow_the_rules() {
    use super::route::Access;
    let api = Api::new();
    for ep in endpoints(&api) {
        let p = ep.path;
        let want = if p == "/health" || p == "/api/auth/login" {
            Access::Public
        } else if p == "/" || p.starts_with("/ui/") || p.starts_with("/assets/") {
            // The web UI's page and bundles hold nothing; the API they call does.
            Access::Public
        } else if p.starts_with("/script-api/") {
            Role::Operator.into()
        } else if p == "/api/script/ws/broadcast/test"
            || p.starts_with("/api/auth/users")
            || p.starts_with("/api/auth/tokens")
            || p == "/api/audit"
        {
            // Accounts, tokens and the audit log are the admin's.
            Role::Admin.into()
        } else if p.starts_with("/api/auth/") {
            // Each signed-in caller's own session and password.
            Role::Viewer.into()
        } else if ep.verb == Verb::Get {
            // Reading: status, logs, registry, I/O values, files, this document.
            Role::Viewer.into()
        } else {
            // Changing state takes more than reading, whatever the area.
            assert!(
                matches!(ep.access, Access::Role(r) if r >= Role::Operator),
                "{} {p}: a viewer (or anyone) may change state",
                ep.verb.as_str()
            );
            continue;
        };
        assert_eq!(ep.access, want, "{} {p}", ep.verb.as_str());
    }
    let role = |m: Verb, p: &str| access_of(&api, m, p);
    assert_eq!(
        role(Verb::Post, "/api/script/scripts/start"),
        Some(Role::Operator.into())
    );
    assert_eq!(
        role(Verb::Post, "/api/io/points/{tag}"),
        Some(Role::Operator.into())
    );
    assert_eq!(
        role(Verb::Put, "/api/script/files/{file_id}"),
        Some(Role::Engineer.into())
    );
    assert_eq!(
        role(Verb::Post, "/api/script/projects"),
        Some(Role::Engineer.into())
    );
}

#[tokio::test]
async fn jobs_safe_mode_and_fleet_routes_have_their_roles() {
    let api = Api::new();
    let role = |m: Verb, p: &str| access_of(&api, m, p);
    // Running, cancelling and leaving safe mode are the operator's; defining
    // jobs and taking projects out of fleet control are the engineer's.
    for (verb, path, want) in [
        (Verb::Post, "/api/script/safe-mode/exit", Role::Operator),
        (
            Verb::Post,
            "/api/v1/scripts/{script_id}/execute",
            Role::Operator,
        ),
        (
            Verb::Post,
            "/api/v1/scripts/executions/{execution_id}/cancel",
            Role::Operator,
        ),
        (Verb::Post, "/api/v1/scripts", Role::Engineer),
        (Verb::Put, "/api/v1/scripts/{script_id}", Role::Engineer),
        (Verb::Delete, "/api/v1/scripts/{script_id}", Role::Engineer),
        (
            Verb::Post,
            "/api/v1/scripts/{script_id}/acknowledge",
            Role::Engineer,
        ),
        (Verb::Post, "/api/v1/scripts/templates", Role::Engineer),
        (
            Verb::Post,
            "/api/fleet/projects/{project_name}/detach",
            Role::Engineer,
        ),
        (
            Verb::Post,
            "/api/fleet/projects/{project_name}/attach",
            Role::Engineer,
        ),
    ] {
        assert_eq!(
            role(verb, path),
            Some(want.into()),
            "{} {path}",
            verb.as_str()
        );
    }
}

/// A path of the document with its parameters filled in.
fn concrete(path: &str, op: &Value) -> String {
    concrete_with(path, op, "1")
}

/// As [`concrete`], with `int` for integer parameters.
fn concrete_with(path: &str, op: &Value, int: &str) -> String {
    let mut out = path.to_string();
    for p in op["parameters"].as_array().into_iter().flatten() {
        if p["in"] != json!("path") {
            continue;
        }
        let name = p["name"].as_str().unwrap_or("");
        let value = if p["schema"]["type"] == json!("integer") {
            int
        } else {
            "x"
        };
        out = out.replace(&format!("{{{name}}}"), value);
    }
    assert!(
        !out.contains('{'),
        "{path}: a path parameter is not documented"
    );
    out
}

/// The role just below `r`, if any.
fn below(r: Role) -> Option<Role> {
    let i = Role::ALL.iter().position(|x| *x == r)?;
    i.checked_sub(1).map(|j| Role::ALL[j])
}

/// Every mounted route × every role, through the served filter: no credential
/// is 401 (public routes: anything but 401/403), the role just below the
/// lowest allowed is 403, the lowest allowed is let in. Every method on every
/// documented path is tried, so a handler mounted beside the table (or a
/// table entry the filter does not serve as declared) shows as an answer the
/// table does not explain. Every refusal is in the audit log.
#[tokio::test]
async fn every_route_admits_and_refuses_each_role_as_the_table_says() {
    use super::route::{Access, Body};
    let api = Api::new();
    let table = endpoints(&api);
    let doc = document(&api);
    let (mut refused, mut admitted) = (0, 0);
    for (path, item) in doc["paths"].as_object().expect("paths") {
        let some_op = METHODS
            .iter()
            .find_map(|m| item.get(*m))
            .expect("an operation");
        // Ids nothing has: the probes must not revoke the tokens they use.
        let url = concrete_with(path, some_op, "999999");
        for m in METHODS.map(|m| m.to_ascii_uppercase()) {
            let entry = table
                .iter()
                .find(|ep| doc_path(ep) == *path && methods_of(ep).contains(&m.as_str()));
            let json_body = entry.is_some_and(|ep| ep.body == Body::Json);
            let body: &[u8] = if json_body { b"{}" } else { b"" };
            let anon = api.send_as(None, &m, &url, body).await;
            let Some(ep) = entry else {
                assert_eq!(
                    anon.status, 405,
                    "{m} {url} answers without a table entry: {}",
                    anon.text
                );
                continue;
            };
            let lowest = match ep.access {
                Access::Public => {
                    assert!(
                        !matches!(anon.status.as_u16(), 401 | 403),
                        "{m} {url} is public: {}",
                        anon.text
                    );
                    // Admitted as anyone, the lowest there is.
                    admitted += 1;
                    continue;
                }
                Access::Role(r) => r,
            };
            anon.fails(401, "");
            refused += 1;
            if let Some(low) = below(lowest) {
                api.send_as(Some(low), &m, &url, body)
                    .await
                    .fails(403, "权限不足");
                refused += 1;
            }
            let ok = api.send_as(Some(lowest), &m, &url, body).await;
            assert!(
                !matches!(ok.status.as_u16(), 401 | 403),
                "{m} {url} as {}: {}",
                lowest.as_str(),
                ok.text
            );
            admitted += 1;
        }
    }
    assert!(
        admitted >= table.len(),
        "{admitted} admitted of {} routes",
        table.len()
    );
    let logged = api
        .engine
        .auth
        .audit
        .query(&vwed_auth::audit::Query {
            outcome: Some(vwed_auth::audit::Outcome::Denied),
            limit: 500,
            ..Default::default()
        })
        .expect("audit");
    assert_eq!(logged.entries.len(), refused, "every refusal is recorded");
}

/// An endpoint's declared body is what its document says it reads: a JSON
/// request body exactly where the content type is checked.
#[tokio::test]
async fn json_bodies_are_declared_where_the_document_has_them() {
    use super::route::Body;
    let api = Api::new();
    let doc = document(&api);
    for ep in endpoints(&api) {
        for m in methods_of(&ep) {
            let op = &doc["paths"][doc_path(&ep)][m.to_ascii_lowercase()];
            let json_in_doc = op["requestBody"]["content"]
                .get("application/json")
                .is_some();
            assert_eq!(
                ep.body == Body::Json,
                json_in_doc,
                "{m} {}: declared {:?}",
                ep.path,
                ep.body
            );
        }
    }
}

#[tokio::test]
async fn every_documented_path_is_served() {
    let api = Api::new();
    let doc = document(&api);
    for (m, path, op) in operations(&doc) {
        let body: &[u8] = if m == "GET" { b"" } else { b"{}" };
        let r = api.send(&m, &concrete(&path, &op), body).await;
        // The router's own 404; a handler may still say 404 for a missing thing.
        let unrouted = r.status == StatusCode::NOT_FOUND && r.error() == "接口不存在";
        assert!(!unrouted, "{m} {path}: {}", r.text);
        assert_ne!(r.status, StatusCode::METHOD_NOT_ALLOWED, "{m} {path}");
    }
}

#[tokio::test]
async fn unknown_query_parameters_are_400_with_the_known_ones() {
    let api = Api::new();
    let doc = document(&api);
    let mut checked = 0;
    for (m, path, op) in operations(&doc) {
        let known: Vec<&str> = op["parameters"]
            .as_array()
            .into_iter()
            .flatten()
            .filter(|p| p["in"] == json!("query"))
            .filter_map(|p| p["name"].as_str())
            .collect();
        if known.is_empty() {
            continue;
        }
        let url = format!("{}?zz_unknown=1", concrete(&path, &op));
        let r = api.send(&m, &url, b"").await;
        r.fails(400, "未知的查询参数 zz_unknown");
        for k in known {
            assert!(
                r.error().contains(k),
                "{m} {path}: {k} not listed: {}",
                r.text
            );
        }
        checked += 1;
    }
    assert!(checked >= 10, "only {checked} endpoints take a query");
    // Known ones still work, and script routes get every parameter.
    api.get("/api/script/projects?status=all").await.ok();
    api.get("/api/script/logs?limit=5&order=asc").await.ok();
    api.get("/api/script/logs/export?format=ndjson&limit=5")
        .await
        .fails(400, "可用的参数");
    api.get("/script-api/x?anything=1")
        .await
        .fails(404, "未注册");
}

#[tokio::test]
async fn unknown_routes_and_wrong_methods_are_enveloped() {
    let api = Api::new();
    api.get("/api/script/nothing/here")
        .await
        .fails(404, "接口不存在");
    api.get("/nothing").await.fails(404, "接口不存在");
    api.get("/api/script/files/abc")
        .await
        .fails(404, "接口不存在");
    api.get("/api/script/files/1/x")
        .await
        .fails(404, "接口不存在");
    api.send("DELETE", "/api/script/projects", b"")
        .await
        .fails(405, "请求方法不允许");
    api.send("PATCH", "/api/script/files/1", b"{}")
        .await
        .fails(405, "请求方法不允许");
    api.post("/health", json!({}))
        .await
        .fails(405, "请求方法不允许");
    // Script routes answer for themselves.
    api.get("/script-api/none")
        .await
        .fails(404, "接口 GET /none 未注册");
    api.get("/script-api/%zz")
        .await
        .fails(400, "请求路径编码无效");
}

#[tokio::test]
async fn bad_bodies_are_400_with_a_message() {
    let api = Api::new();
    for (m, path) in [
        ("POST", "/api/script/projects"),
        ("POST", "/api/script/files"),
        ("PUT", "/api/script/files/1"),
        ("POST", "/api/script/validate-syntax"),
        ("POST", "/api/script/scripts/start"),
        ("POST", "/api/script/scripts/execute-function"),
        ("POST", "/api/script/events/emit"),
        ("POST", "/api/script/integration/execute"),
        ("POST", "/api/script/storage/locations"),
        ("POST", "/api/script/ws/broadcast/test"),
    ] {
        api.send(m, path, b"{not json")
            .await
            .fails(400, "请求体不是合法的JSON");
        api.send(m, path, b"[1, 2]").await.fails(400, "");
    }
    let wrong = [
        ("/api/script/projects", json!({"project_name": 5})),
        (
            "/api/script/files",
            json!({"project_id": "1", "file_name": "a.py"}),
        ),
        ("/api/script/scripts/start", json!({"file_id": "1"})),
        (
            "/api/script/projects",
            json!({"project_name": "p", "colour": "red"}),
        ),
    ];
    for (path, body) in wrong {
        api.post(path, body).await.fails(400, "请求参数错误");
    }
    api.post("/api/script/scripts/start", json!({}))
        .await
        .fails(400, "缺少script_path参数");
    api.post("/api/script/events/emit", json!({"event_name": ""}))
        .await
        .fails(400, "event_name");
}

#[tokio::test]
async fn oversized_bodies_are_413_with_the_limit() {
    let api = Api::new();
    let big = json!({"project_name": "x".repeat(BODY_LIMIT as usize)});
    api.post("/api/script/projects", big.clone())
        .await
        .fails(413, &format!("请求体过大, 上限 {BODY_LIMIT} 字节"));
    api.post("/script-api/anything", big)
        .await
        .fails(413, "请求体过大");
    let boundary = "XyZ";
    let part = "a".repeat(BODY_LIMIT as usize);
    let form = format!(
        "--{boundary}\r\nContent-Disposition: form-data; name=\"project_id\"\r\n\r\n1\r\n\
         --{boundary}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"u.py\"\r\n\r\n{part}\r\n\
         --{boundary}--\r\n"
    );
    let r = warp::test::request()
        .method("POST")
        .path("/api/script/upload")
        .header("host", HOST)
        .header("authorization", api.bearer(Role::Engineer))
        .header(
            "content-type",
            format!("multipart/form-data; boundary={boundary}"),
        )
        .header("content-length", form.len())
        .body(form)
        .reply(&api.filter)
        .await;
    Reply::new(r).fails(413, "请求体过大");
    assert!(api.get("/api/script/projects").await.ok()["data"] == json!([]));
}

#[tokio::test]
async fn projects_and_text_files_round_trip() {
    let api = Api::new();
    let p = api
        .post("/api/script/projects", json!({"project_name": "demo"}))
        .await;
    let pid = p.ok()["data"]["id"].as_u64().expect("project id");
    assert!(p.json["message"].as_str().unwrap_or("").contains("demo"));
    api.post("/api/script/projects", json!({"project_name": "demo"}))
        .await
        .fails(409, "");
    // A text file needs no analyzer.
    let f = api
        .post(
            "/api/script/files",
            json!({"project_id": pid, "file_name": "notes.txt", "content": "hi", "file_type": "text"}),
        )
        .await;
    let fid = f.ok()["data"]["id"].as_u64().expect("file id");
    let one = api.get(&format!("/api/script/files/{fid}")).await;
    assert_eq!(one.ok()["data"]["content"], json!("hi"));
    let list = api
        .get(&format!(
            "/api/script/projects/{pid}/files?include_content=true"
        ))
        .await;
    assert_eq!(list.ok()["data"]["files"][0]["content"], json!("hi"));
    api.get(&format!(
        "/api/script/projects/{pid}/files?include_content=maybe"
    ))
    .await
    .fails(400, "include_content");
    let found = api.get("/api/script/files/search?keyword=notes").await;
    assert_eq!(found.ok()["data"]["count"], json!(1));
    api.get("/api/script/files/search")
        .await
        .fails(400, "keyword");
    let up = api
        .send(
            "PUT",
            &format!("/api/script/files/{fid}"),
            json!({"content": "ho"}).to_string().as_bytes(),
        )
        .await;
    assert_eq!(up.ok()["data"]["backup_version"], json!(1));
    let versions = api.get(&format!("/api/script/files/{fid}/versions")).await;
    assert_eq!(versions.ok()["data"]["versions"][0]["version"], json!(1));
    let v1 = api
        .get(&format!("/api/script/files/{fid}/versions/1"))
        .await;
    assert_eq!(v1.ok()["data"]["content"], json!("hi"));
    api.get(&format!("/api/script/files/{fid}/versions/9"))
        .await
        .fails(404, "没有版本");
    api.send("DELETE", &format!("/api/script/files/{fid}"), b"")
        .await
        .ok();
    api.get(&format!("/api/script/files/{fid}"))
        .await
        .fails(404, "");
}

#[tokio::test]
async fn status_endpoints_answer_without_workers() {
    let api = Api::new();
    let h = api.get("/health").await;
    assert_eq!(h.ok()["data"]["status"], json!("ok"));
    assert_eq!(
        api.get("/api/script/scripts/running").await.ok()["data"],
        json!([])
    );
    let reg = api.get("/api/script/registry/status").await;
    assert_eq!(reg.ok()["data"]["api_routes"], json!({}));
    api.get("/api/script/integration/functions?tags=a,b")
        .await
        .ok();
    api.get("/api/script/logs/stats").await.ok();
    api.get("/api/script/ws/connections/status").await.ok();
    let io = api.get("/api/io/status").await;
    assert_eq!(io.ok()["data"]["configured"], json!(false));
    api.post("/api/io/points/t1", json!({"value": 1}))
        .await
        .fails(503, "");
    let stubs = api.get("/api/script/stubs/vwed.pyi").await;
    assert_eq!(stubs.status, StatusCode::OK);
    assert!(stubs.content_type.starts_with("text/x-python"));
    api.get("/api/script/scripts/nope/output")
        .await
        .fails(404, "nope");
    api.post("/api/script/scripts/nope/stop", json!({}))
        .await
        .fails(404, "");
    let emit = api
        .post(
            "/api/script/events/emit",
            json!({"event_name": "e", "data": 1}),
        )
        .await;
    assert_eq!(emit.ok()["data"]["listeners"], json!(0));
    let exec = api
        .post(
            "/api/script/scripts/execute-function",
            json!({"function_name": "nothing"}),
        )
        .await;
    assert_eq!(exec.status, StatusCode::NOT_FOUND, "{}", exec.text);
    assert_eq!(exec.json["success"], json!(false));
}

#[tokio::test]
async fn locations_and_task_variables() {
    let api = Api::new();
    let seeded = api
        .post(
            "/api/script/storage/locations",
            json!([{"location_code": "A-1", "area": "a"}]),
        )
        .await;
    assert_eq!(seeded.ok()["data"]["created"], json!(1));
    let list = api
        .get("/api/script/storage/locations?area=a&locked=false")
        .await;
    assert_eq!(list.ok()["data"]["total"], json!(1));
    api.get("/api/script/storage/locations/A-1").await.ok();
    api.get("/api/script/storage/locations/B-9")
        .await
        .fails(404, "");
    api.post(
        "/api/script/storage/locations/A-1/unlock",
        json!({"force": true}),
    )
    .await
    .ok();
    api.get("/api/script/integration/tasks/t1/variables")
        .await
        .fails(404, "t1");
    let del = api
        .send("DELETE", "/api/script/integration/tasks/t1/variables", b"")
        .await;
    assert_eq!(del.ok()["data"]["deleted"], json!(false));
}

/// The binary serves `openapi.json` (see doc.rs); it must be what the code
/// describes now. `VWED_WRITE_OPENAPI=1` writes it instead of comparing.
#[tokio::test]
async fn the_served_document_is_the_generated_one() {
    let api = Api::new();
    let made = serde_json::to_string_pretty(&document(&api)).expect("document as JSON") + "\n";
    if std::env::var_os("VWED_WRITE_OPENAPI").is_some() {
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/src/api/openapi.json");
        std::fs::write(path, &made).expect("write openapi.json");
        return;
    }
    assert!(
        made == doc::DOCUMENT,
        "runtime/src/api/openapi.json is not what the code describes; regenerate it with \
         VWED_WRITE_OPENAPI=1 cargo test -p vwed-edge --lib the_served_document"
    );
}

#[tokio::test]
async fn the_document_and_its_page_are_served() {
    let api = Api::new();
    let r = api.get("/api/openapi.json").await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(r.json["openapi"], json!("3.1.0"));
    assert!(
        r.json["components"]["schemas"]
            .as_object()
            .is_some_and(|s| {
                s.keys().any(|k| k.starts_with("Envelope")) && s.contains_key("CreateFile")
            })
    );
    let page = api.get("/api/docs").await;
    assert_eq!(page.status, StatusCode::OK);
    assert!(page.content_type.starts_with("text/html"));
    assert!(page.text.contains("openapi.json"));
    // Offline: nothing is loaded from elsewhere.
    assert!(!page.text.contains("http://") && !page.text.contains("https://"));
}

/// The document is held gzip-compressed (build.rs): a client that accepts gzip
/// gets those bytes, one that does not (or refuses gzip) the JSON itself.
#[tokio::test]
async fn the_document_goes_gzip_to_clients_that_accept_it_and_plain_to_others() {
    let api = Api::new();
    let ask = |accept: &'static str| {
        warp::test::request()
            .path("/api/openapi.json")
            .header("host", HOST)
            .header("authorization", api.bearer(Role::Viewer))
            .header("accept-encoding", accept)
            .reply(&api.filter)
    };
    let gz = ask("br, GZIP;q=0.8").await;
    assert_eq!(gz.status(), StatusCode::OK);
    assert_eq!(gz.headers()["content-encoding"], "gzip");
    assert_eq!(gz.headers()["vary"], "accept-encoding");
    assert!(
        gz.body().len() * 5 < doc::DOCUMENT.len(),
        "{}",
        gz.body().len()
    );
    // Another implementation checks the gzip framing and the CRC.
    let mut py = std::process::Command::new("python3")
        .args([
            "-c",
            "import gzip,sys; sys.stdout.buffer.write(gzip.decompress(sys.stdin.buffer.read()))",
        ])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("python3");
    std::io::Write::write_all(&mut py.stdin.take().expect("stdin"), gz.body()).expect("write");
    let out = py.wait_with_output().expect("python3 output");
    assert!(out.status.success());
    assert_eq!(out.stdout, doc::DOCUMENT.as_bytes());
    for accept in ["identity", "gzip;q=0", "deflate, br"] {
        let plain = ask(accept).await;
        assert!(
            plain.headers().get("content-encoding").is_none(),
            "{accept}"
        );
        assert_eq!(plain.body(), doc::DOCUMENT.as_bytes(), "{accept}");
    }
}

#[tokio::test]
async fn the_log_websocket_greets_and_answers() {
    let api = Api::new();
    let mut ws = warp::test::ws()
        .path("/api/script/ws/script-logs?client_id=t1&client_type=test")
        .header("host", HOST)
        .header("authorization", api.bearer(Role::Viewer))
        .handshake(api.filter.clone())
        .await
        .expect("handshake");
    let msg = |m: Message| -> Value {
        serde_json::from_str(m.to_str().unwrap_or("")).unwrap_or(Value::Null)
    };
    let welcome = msg(ws.recv().await.expect("welcome"));
    assert_eq!(welcome["type"], json!("welcome"));
    ws.send_text(json!({"type": "ping"}).to_string()).await;
    assert_eq!(msg(ws.recv().await.expect("pong"))["type"], json!("pong"));
    ws.send_text("{bad").await;
    assert_eq!(msg(ws.recv().await.expect("error"))["type"], json!("error"));

    let mut bad = warp::test::ws()
        .path("/api/script/ws/script-logs?client_type=web")
        .header("host", HOST)
        .header("authorization", api.bearer(Role::Viewer))
        .handshake(api.filter.clone())
        .await
        .expect("handshake");
    let err = msg(bad.recv().await.expect("error"));
    assert!(err["message"].as_str().unwrap_or("").contains("client_id"));

    let refused = warp::test::ws()
        .path("/api/script/ws/script-logs?client_id=t&colour=red")
        .header("host", HOST)
        .header("authorization", api.bearer(Role::Viewer))
        .handshake(api.filter.clone())
        .await;
    assert!(refused.is_err(), "an unknown parameter refuses the upgrade");
}

mod conform;
mod tree;

/// Two request types of one name (`ExecBody` of execute-function and of
/// integration/execute) were merged into one schema, so integration/execute was
/// documented with the other's `timeout_ms` and a generated client was refused.
/// The merge now refuses two different schemas under one name, and the two
/// bodies are documented apart.
#[tokio::test]
async fn two_request_types_named_exec_body_are_documented_apart() {
    mod calls {
        #[derive(utoipa::ToSchema)]
        #[allow(dead_code)]
        pub struct ExecBody {
            pub timeout_ms: Option<u64>,
        }
    }
    mod blocks {
        #[derive(utoipa::ToSchema)]
        #[allow(dead_code)]
        pub struct ExecBody {
            pub timeout: Option<u64>,
        }
    }
    #[derive(utoipa::OpenApi)]
    #[openapi(components(schemas(calls::ExecBody)))]
    struct Calls;
    #[derive(utoipa::OpenApi)]
    #[openapi(components(schemas(blocks::ExecBody)))]
    struct Blocks;
    use utoipa::OpenApi;
    let Err(err) = doc::merged(Calls::openapi(), vec![Calls::openapi(), Blocks::openapi()]) else {
        panic!("two types under one name must not merge");
    };
    assert!(err.contains("ExecBody"), "{err}");

    let api = Api::new();
    let doc = document(&api);
    let body = |path: &str| {
        let r = doc["paths"][path]["post"]["requestBody"]["content"]["application/json"]["schema"]
            ["$ref"]
            .as_str()
            .unwrap_or_default()
            .trim_start_matches("#/components/schemas/")
            .to_string();
        doc["components"]["schemas"][&r]["properties"].clone()
    };
    let call = body("/api/script/scripts/execute-function");
    let block = body("/api/script/integration/execute");
    assert!(call.get("timeout_ms").is_some(), "{call}");
    assert!(block.get("timeout_ms").is_none(), "{block}");
    assert!(
        block.get("timeout").is_some() && block.get("task_id").is_some(),
        "{block}"
    );
}

/// Readiness was a gate in front of the route table, so `/health` answered 503
/// during start-up without its Host being checked.
#[tokio::test]
async fn health_before_ready_is_a_route_table_entry_and_checks_the_host() {
    let api = Api::new();
    let mut s = services(&api.engine, &api.config);
    s.ready = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let filter = routes(&s);
    let health = |host: &'static str| {
        warp::test::request()
            .method("GET")
            .path("/health")
            .header("host", host)
    };
    let starting = Reply::new(health(HOST).reply(&filter).await);
    starting.fails(503, "正在启动");
    assert_eq!(starting.json["data"]["status"], json!("starting"));
    Reply::new(health("evil.example").reply(&filter).await).fails(403, "Host");
    s.ready.store(true, std::sync::atomic::Ordering::Release);
    Reply::new(health(HOST).reply(&filter).await).ok();
}
