//! `/api/auth/*` and `/api/audit`: login and logout, the caller's own account,
//! users and API tokens (admin), and the audit log (admin). The route table
//! checks each request (`Endpoint::admission`); the handlers that change
//! accounts or tokens write their own audit records, which name the account or
//! token changed.
//!
//! | route | who | what |
//! |---|---|---|
//! | `POST /api/auth/login` | anyone | `{username, password}` → session cookie + `csrf_token` |
//! | `POST /api/auth/logout` | viewer | ends the session |
//! | `GET /api/auth/me` | viewer | user, role, how authenticated, `csrf_token` |
//! | `POST /api/auth/password` | viewer (session) | `{current_password, new_password}` → new session |
//! | `GET/POST /api/auth/users` | admin | list / `{name, role, password?}` |
//! | `PATCH/DELETE /api/auth/users/{name}` | admin | `{role?, disabled?, password?}` / delete |
//! | `GET/POST /api/auth/tokens` | admin | list / `{name, role, expires_days?}` |
//! | `DELETE /api/auth/tokens/{id}` | admin | revoke |
//! | `GET /api/audit` | admin | `?user&action&since&until&result&status&before&limit` |

use std::collections::HashMap;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;

use bytes::Bytes;
use serde::Deserialize;
use serde_json::{Value, json};
use utoipa::{IntoParams, ToSchema};
use warp::Filter;
use warp::http::{HeaderValue, StatusCode, header};

use super::answers;
use super::body::{limited, parse_json};
use super::query::{self, query_u64};
use super::reply::{ApiError, Envelope, Failure, Resp, fail, finish, ok_data};
use super::route::{self, Access, Route};
use crate::api::guard::{addr_text, caller};
use crate::server::client_addr;
use vwed_auth::admin::Command;
use vwed_auth::audit::{Entry, Outcome, Query};
use vwed_auth::checks::{clear_cookie, session_cookie};
use vwed_auth::{Auth, LoginError, LoginOk, Principal, Role, Via};

/// Auth bodies are a few names and passwords.
const BODY_LIMIT: u64 = 16 * 1024;

fn with(
    auth: &Arc<Auth>,
) -> impl Filter<Extract = (Arc<Auth>,), Error = Infallible> + Clone + use<> {
    let auth = auth.clone();
    warp::any().map(move || auth.clone())
}

pub fn routes(auth: &Arc<Auth>) -> Vec<Route> {
    let (a, body) = (with(auth), limited(BODY_LIMIT));
    let me = caller(auth.clone());
    let admin = Role::Admin;
    vec![
        route::post("/api/auth/login", Access::Public)
            .audited_by_handler()
            .to(|at| {
                at.and(a.clone())
                    .and(client_addr())
                    .and(body.clone())
                    .then(login)
            }),
        route::post("/api/auth/logout", Role::Viewer)
            .no_body()
            .to(|at| at.and(me.clone()).and(a.clone()).then(logout)),
        route::get("/api/auth/me", Role::Viewer)
            .to(|at| at.and(me.clone()).and(a.clone()).then(whoami)),
        route::post("/api/auth/password", Role::Viewer).to(|at| {
            at.and(me.clone())
                .and(a.clone())
                .and(client_addr())
                .and(body.clone())
                .then(change_password)
        }),
        route::get("/api/auth/users", admin)
            .to(|at| at.and(me.clone()).and(a.clone()).then(users_list)),
        route::post("/api/auth/users", admin)
            .audited_by_handler()
            .to(|at| {
                at.and(me.clone())
                    .and(a.clone())
                    .and(client_addr())
                    .and(body.clone())
                    .then(users_add)
            }),
        route::patch("/api/auth/users/{name}", admin)
            .audited_by_handler()
            .to1(|at| {
                at.and(me.clone())
                    .and(a.clone())
                    .and(client_addr())
                    .and(body.clone())
                    .then(users_patch)
            }),
        route::delete("/api/auth/users/{name}", admin)
            .audited_by_handler()
            .to1(|at| {
                at.and(me.clone())
                    .and(a.clone())
                    .and(client_addr())
                    .then(users_delete)
            }),
        route::get("/api/auth/tokens", admin)
            .to(|at| at.and(me.clone()).and(a.clone()).then(tokens_list)),
        route::post("/api/auth/tokens", admin)
            .audited_by_handler()
            .to(|at| {
                at.and(me.clone())
                    .and(a.clone())
                    .and(client_addr())
                    .and(body)
                    .then(tokens_create)
            }),
        route::delete("/api/auth/tokens/{id}", admin)
            .audited_by_handler()
            .to1(|at| {
                at.and(me)
                    .and(a.clone())
                    .and(client_addr())
                    .then(tokens_revoke)
            }),
        route::get("/api/audit", admin)
            .to(|at| at.and(a).and(query::known::<AuditParams>()).then(audit)),
    ]
}

#[cfg(test)]
#[derive(utoipa::OpenApi)]
#[openapi(
    paths(
        login,
        logout,
        whoami,
        change_password,
        users_list,
        users_add,
        users_patch,
        users_delete,
        tokens_list,
        tokens_create,
        tokens_revoke,
        audit
    ),
    tags((name = "auth", description = "登录, 会话, 用户, API 令牌与审计日志"))
)]
pub struct Doc;

fn iso(ms: Option<u64>) -> Value {
    ms.map_or(Value::Null, |m| Value::String(vwed_base::clock::iso_utc(m)))
}

/// The answer to a login: the cookie, and the CSRF token the page must send back.
fn session_answer(auth: &Auth, ok: &LoginOk) -> Resp {
    let max_age = ok.expires_ms.saturating_sub(vwed_base::clock::unix_ms()) / 1000;
    let mut r = ok_data(json!({
        "user": ok.user,
        "role": ok.role.as_str(),
        "csrf_token": ok.csrf,
        "expires_at": iso(Some(ok.expires_ms)),
    }));
    let cookie = session_cookie(&ok.session_id, max_age, auth.settings.secure_cookie);
    if let Ok(v) = HeaderValue::from_str(&cookie) {
        r.headers_mut().insert(header::SET_COOKIE, v);
    }
    r
}

fn login_failure(e: &LoginError) -> Resp {
    let mut r = fail(e.status(), e);
    if let LoginError::Throttled(s) = e {
        r.headers_mut()
            .insert(header::RETRY_AFTER, HeaderValue::from(*s));
    }
    r
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
struct LoginBody {
    username: String,
    password: String,
}

/// Logs in with a password: sets the session cookie (HttpOnly, SameSite=Strict)
/// and answers the CSRF token that state-changing requests with the cookie
/// send as `X-CSRF-Token`. Failures are slowed per account and per address;
/// an unknown account and a wrong password get the same answer.
#[utoipa::path(
    post,
    path = "/api/auth/login",
    tag = "auth",
    request_body = LoginBody,
    responses(
        (status = 200, description = "data: {user, role, csrf_token, expires_at}; Set-Cookie: vwed_session", body = Envelope<answers::Session>),
        (status = 401, description = "用户名或密码错误", body = Failure),
        (status = 429, description = "登录失败次数过多; Retry-After", body = Failure),
        (status = 503, description = "登录请求过多", body = Failure),
    )
)]
async fn login(auth: Arc<Auth>, addr: Option<SocketAddr>, body: Bytes) -> Resp {
    let mut entry = Entry::new(None, &addr_text(addr), "auth.login", "");
    let req: LoginBody = match parse_json(&body) {
        Ok(r) => r,
        Err(e) => return record(&auth, entry, e.into_response()).await,
    };
    entry.user = req.username.chars().take(64).collect();
    let resp = match auth.login(&req.username, &req.password, addr).await {
        Ok(ok) => {
            entry.role = Some(ok.role);
            entry.via = "session".into();
            session_answer(&auth, &ok)
        }
        Err(e) => login_failure(&e),
    };
    record(&auth, entry, resp).await
}

/// Records `entry` with the status of `resp`, durably, then hands `resp` back.
async fn record(auth: &Auth, entry: Entry, resp: Resp) -> Resp {
    auth.audit.around(entry, futures::future::ready(resp)).await
}

/// Ends the caller's session on the server and clears the cookie.
#[utoipa::path(
    post,
    path = "/api/auth/logout",
    tag = "auth",
    responses((status = 200, description = "data: {session_ended}", body = Envelope<answers::LoggedOut>))
)]
async fn logout(p: Principal, auth: Arc<Auth>) -> Resp {
    let secure = auth.settings.secure_cookie;
    let ended = tokio::task::spawn_blocking(move || auth.logout(&p)).await;
    let mut r = match ended {
        Ok(Ok(ended)) => ok_data(json!({"session_ended": ended})),
        Ok(Err(e)) => fail(StatusCode::INTERNAL_SERVER_ERROR, e),
        Err(e) => fail(StatusCode::INTERNAL_SERVER_ERROR, e),
    };
    if let Ok(v) = HeaderValue::from_str(&clear_cookie(secure)) {
        r.headers_mut().insert(header::SET_COOKIE, v);
    }
    r
}

/// Who the caller is: user or token name, role, how authenticated, and for a
/// session its CSRF token and expiry.
#[utoipa::path(
    get,
    path = "/api/auth/me",
    tag = "auth",
    responses((status = 200, description = "data: {user, role, via, csrf_token, expires_at, no_auth}", body = Envelope<answers::Me>))
)]
async fn whoami(p: Principal, auth: Arc<Auth>) -> Resp {
    let csrf = match &p.via {
        Via::Session { csrf, .. } => Some(csrf.clone()),
        _ => None,
    };
    ok_data(json!({
        "user": p.name,
        "role": p.role.as_str(),
        "via": p.via.label(),
        "csrf_token": csrf,
        "expires_at": iso(p.expires_ms()),
        "no_auth": auth.settings.no_auth,
    }))
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
struct PasswordBody {
    current_password: String,
    new_password: String,
}

/// A signed-in user changes their own password. All their sessions end; the
/// answer carries a new one (cookie and CSRF token), like a login.
#[utoipa::path(
    post,
    path = "/api/auth/password",
    tag = "auth",
    request_body = PasswordBody,
    responses(
        (status = 200, description = "新会话, 同登录", body = Envelope<answers::Session>),
        (status = 400, description = "不是登录会话, 或新密码不符合要求", body = Failure),
        (status = 401, description = "当前密码错误", body = Failure),
    )
)]
async fn change_password(
    p: Principal,
    auth: Arc<Auth>,
    addr: Option<SocketAddr>,
    body: Bytes,
) -> Resp {
    if !matches!(p.via, Via::Session { .. }) {
        return fail(
            StatusCode::BAD_REQUEST,
            "仅适用于登录会话; 其他账户的密码请用 PATCH /api/auth/users/{name}",
        );
    }
    let req: PasswordBody = match parse_json(&body) {
        Ok(r) => r,
        Err(e) => return e.into_response(),
    };
    match auth
        .change_own_password(&p.name, &req.current_password, &req.new_password, addr)
        .await
    {
        Ok(ok) => session_answer(&auth, &ok),
        Err(e) => login_failure(&e),
    }
}

/// The accounts: name, role, state, last login.
#[utoipa::path(
    get,
    path = "/api/auth/users",
    tag = "auth",
    responses((status = 200, description = "data: [{name, role, disabled, created_at, last_login_at}]", body = Envelope<Vec<answers::UserView>>))
)]
async fn users_list(p: Principal, auth: Arc<Auth>) -> Resp {
    run(auth, p, None, "user.list", Ok(Command::UserList)).await
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
struct NewUser {
    name: String,
    role: Role,
    /// 不给时生成一个, 在应答中返回一次
    #[serde(default)]
    password: Option<String>,
}

/// Adds an account; without a password one is generated and answered once.
#[utoipa::path(
    post,
    path = "/api/auth/users",
    tag = "auth",
    request_body = NewUser,
    responses(
        (status = 200, description = "data: {name, role, password?}", body = Envelope<answers::UserView>),
        (status = 409, description = "用户已存在", body = Failure),
    )
)]
async fn users_add(p: Principal, auth: Arc<Auth>, addr: Option<SocketAddr>, body: Bytes) -> Resp {
    let cmd = parse_json::<NewUser>(&body).map(|u| Command::UserAdd {
        name: u.name,
        role: u.role,
        password: u.password,
    });
    run(auth, p, addr, "user.add", cmd).await
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
struct UserPatch {
    #[serde(default)]
    role: Option<Role>,
    #[serde(default)]
    disabled: Option<bool>,
    #[serde(default)]
    password: Option<String>,
}

/// Changes an account's role, disables or enables it, or sets its password
/// (which ends its sessions). A new password and other changes are two
/// commands, and two audit records.
#[utoipa::path(
    patch,
    path = "/api/auth/users/{name}",
    tag = "auth",
    params(("name" = String, Path, description = "用户名")),
    request_body = UserPatch,
    responses(
        (status = 200, description = "data: 修改后的账户", body = Envelope<answers::UserView>),
        (status = 404, description = "用户不存在", body = Failure),
    )
)]
async fn users_patch(
    name: String,
    p: Principal,
    auth: Arc<Auth>,
    addr: Option<SocketAddr>,
    body: Bytes,
) -> Resp {
    let patch: UserPatch = match parse_json(&body) {
        Ok(b) => b,
        Err(e) => return run(auth, p, addr, "user.set", Err(e)).await,
    };
    let mut last = None;
    if let Some(pw) = patch.password {
        let cmd = Command::UserPasswd {
            name: name.clone(),
            password: Some(pw),
        };
        let r = run(auth.clone(), p.clone(), addr, "user.passwd", Ok(cmd)).await;
        if !r.status().is_success() || (patch.role.is_none() && patch.disabled.is_none()) {
            return r;
        }
        last = Some(r);
    }
    if patch.role.is_some() || patch.disabled.is_some() || last.is_none() {
        let cmd = Command::UserSet {
            name,
            role: patch.role,
            disabled: patch.disabled,
        };
        return run(auth, p, addr, "user.set", Ok(cmd)).await;
    }
    last.unwrap_or_else(|| fail(StatusCode::BAD_REQUEST, "没有要修改的内容"))
}

/// Deletes an account (not the last enabled admin).
#[utoipa::path(
    delete,
    path = "/api/auth/users/{name}",
    tag = "auth",
    params(("name" = String, Path, description = "用户名")),
    responses(
        (status = 200, description = "已删除", body = Envelope<answers::UserDeleted>),
        (status = 404, description = "用户不存在", body = Failure),
    )
)]
async fn users_delete(
    name: String,
    p: Principal,
    auth: Arc<Auth>,
    addr: Option<SocketAddr>,
) -> Resp {
    run(auth, p, addr, "user.del", Ok(Command::UserDel { name })).await
}

/// The API tokens: id, name, role, expiry, last use, state (never the token).
#[utoipa::path(
    get,
    path = "/api/auth/tokens",
    tag = "auth",
    responses((status = 200, description = "data: [{id, name, role, created_at, expires_at, last_used_at, revoked_at}]", body = Envelope<Vec<answers::TokenView>>))
)]
async fn tokens_list(p: Principal, auth: Arc<Auth>) -> Resp {
    run(auth, p, None, "token.list", Ok(Command::TokenList)).await
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
struct NewToken {
    /// 用途, 如 task-server (显示在列表和审计日志中)
    name: String,
    role: Role,
    /// 有效天数, 不给则永不过期
    #[serde(default)]
    expires_days: Option<u64>,
}

/// Creates an API token for a machine (`Authorization: Bearer <token>`). The
/// token is in this answer only; the runtime keeps its hash.
#[utoipa::path(
    post,
    path = "/api/auth/tokens",
    tag = "auth",
    request_body = NewToken,
    responses((status = 200, description = "data: {id, name, role, token, expires_at}", body = Envelope<answers::TokenView>))
)]
async fn tokens_create(
    p: Principal,
    auth: Arc<Auth>,
    addr: Option<SocketAddr>,
    body: Bytes,
) -> Resp {
    let cmd = parse_json::<NewToken>(&body).map(|t| Command::TokenCreate {
        name: t.name,
        role: t.role,
        expires_days: t.expires_days,
    });
    run(auth, p, addr, "token.create", cmd).await
}

/// Revokes a token at once; WebSockets opened with it close.
#[utoipa::path(
    delete,
    path = "/api/auth/tokens/{id}",
    tag = "auth",
    params(("id" = u64, Path, description = "令牌 id (见列表)")),
    responses(
        (status = 200, description = "已吊销", body = Envelope<answers::TokenView>),
        (status = 404, description = "令牌不存在", body = Failure),
    )
)]
async fn tokens_revoke(id: u64, p: Principal, auth: Arc<Auth>, addr: Option<SocketAddr>) -> Resp {
    run(
        auth,
        p,
        addr,
        "token.revoke",
        Ok(Command::TokenRevoke { id }),
    )
    .await
}

/// Runs one management command for an admin, audited when it changes
/// something; a body that does not parse is recorded as a failed `action`.
async fn run(
    auth: Arc<Auth>,
    p: Principal,
    addr: Option<SocketAddr>,
    action: &'static str,
    cmd: Result<Command, ApiError>,
) -> Resp {
    let cmd = match cmd {
        Ok(c) => c,
        Err(e) => {
            let entry = Entry::new(Some(&p), &addr_text(addr), action, "");
            return record(&auth, entry, e.into_response()).await;
        }
    };
    let entry = cmd
        .changes()
        .then(|| Entry::new(Some(&p), &addr_text(addr), cmd.action(), &cmd.target()));
    let a = auth.clone();
    let work = async move {
        match tokio::task::spawn_blocking(move || a.execute(cmd, &p)).await {
            Ok(Ok(data)) => ok_data(data),
            Ok(Err(e)) => fail(
                StatusCode::from_u16(e.status()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR),
                e,
            ),
            Err(e) => fail(StatusCode::INTERNAL_SERVER_ERROR, e),
        }
    };
    match entry {
        Some(e) => auth.audit.around(e, work).await,
        None => work.await,
    }
}

#[derive(IntoParams)]
#[into_params(parameter_in = Query)]
#[allow(dead_code)]
struct AuditParams {
    /// 只要这个用户 (或令牌名, script:<id>, cli) 的记录
    user: Option<String>,
    /// 动作中包含的文字, 如 POST, /api/io, user.add
    action: Option<String>,
    /// 起始时间: unix 毫秒或 RFC 3339
    since: Option<String>,
    /// 截止时间 (不含): unix 毫秒或 RFC 3339
    until: Option<String>,
    /// ok, denied (401/403/429) 或 error
    result: Option<String>,
    /// 只要这个 HTTP 状态码
    status: Option<u16>,
    /// 上一页的 next_before
    before: Option<u64>,
    /// 每页最多条数 (默认 100, 最多 500)
    limit: Option<u64>,
}

/// `since`/`until` as Unix milliseconds or RFC 3339.
fn time_param(q: &HashMap<String, String>, key: &str) -> Result<Option<u64>, ApiError> {
    let Some(v) = q.get(key) else {
        return Ok(None);
    };
    if let Ok(ms) = v.parse::<u64>() {
        return Ok(Some(ms));
    }
    chrono::DateTime::parse_from_rfc3339(v)
        .map(|t| Some(t.timestamp_millis().max(0) as u64))
        .map_err(|_| {
            ApiError::bad_request(format!(
                "参数 {key} 须为毫秒时间戳或 RFC 3339 时间, 得到 {v}"
            ))
        })
}

fn audit_query(q: &HashMap<String, String>) -> Result<Query, ApiError> {
    let outcome = match q.get("result") {
        None => None,
        Some(r) => Some(Outcome::parse(r).ok_or_else(|| {
            ApiError::bad_request(format!("参数 result 须为 ok、denied 或 error, 得到 {r}"))
        })?),
    };
    let status = query_u64(q, "status")?
        .map(|s| u16::try_from(s).map_err(|_| ApiError::bad_request("参数 status 无效")))
        .transpose()?;
    Ok(Query {
        user: q.get("user").cloned(),
        action: q.get("action").cloned(),
        since_ms: time_param(q, "since")?,
        until_ms: time_param(q, "until")?,
        outcome,
        status,
        before: query_u64(q, "before")?,
        limit: query_u64(q, "limit")?.map_or(100, |l| l as usize),
    })
}

/// The audit log, newest first: every state-changing call and every refused
/// one (who, role, how, from where, action, target, status, time), and the
/// writes scripts made to I/O. Pages with `before`.
#[utoipa::path(
    get,
    path = "/api/audit",
    tag = "auth",
    params(AuditParams),
    responses((status = 200, description = "data: {entries, next_before, stats}", body = Envelope<answers::AuditPage>))
)]
async fn audit(auth: Arc<Auth>, q: HashMap<String, String>) -> Resp {
    finish(
        async {
            let query = audit_query(&q)?;
            let a = auth.clone();
            let page = tokio::task::spawn_blocking(move || a.audit.query(&query))
                .await
                .map_err(|e| ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, e))?
                .map_err(|e| ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, e))?;
            Ok(ok_data(json!({
                "entries": page.entries.iter().map(Entry::to_json).collect::<Vec<_>>(),
                "next_before": page.next,
                "stats": auth.audit.stats_json(),
            })))
        }
        .await,
    )
}

#[cfg(test)]
mod tests;
