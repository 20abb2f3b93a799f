//! `/api/auth/*` and `/api/audit`: login and logout, the caller's own account,
//! users and API tokens (admin), and the audit log (admin). Every route here
//! carries its own checks (`auth::filters`), so `routes()` can be joined to the
//! API as it is.
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
use warp::filters::BoxedFilter;
use warp::http::{HeaderValue, StatusCode, header};
use warp::{Filter, Rejection};

use super::body::{limited, parse_json};
use super::reply::{ApiError, Resp, fail, finish, ok_data};
use crate::auth::admin::Command;
use crate::auth::audit::{Entry, Outcome, Query};
use crate::auth::checks::{clear_cookie, session_cookie};
use crate::auth::filters::{addr_text, guard, public};
use crate::auth::{Auth, LoginError, LoginOk, Principal, Role, Via};

/// Auth bodies are a few names and passwords.
const BODY_LIMIT: u64 = 16 * 1024;

fn with(
    auth: &Arc<Auth>,
) -> impl Filter<Extract = (Arc<Auth>,), Error = Infallible> + Clone + use<> {
    let auth = auth.clone();
    warp::any().map(move || auth.clone())
}

fn remote() -> impl Filter<Extract = (Option<SocketAddr>,), Error = Infallible> + Clone {
    crate::server::client_addr()
}

pub fn routes(auth: Arc<Auth>) -> BoxedFilter<(Resp,)> {
    let body = || limited(BODY_LIMIT);
    let admin = |json| guard(auth.clone(), Role::Admin, json);
    let p = warp::path("api").and(warp::path("auth"));

    let login = p
        .and(warp::path!("login"))
        .and(warp::post())
        .and(public(auth.clone(), true))
        .and(with(&auth))
        .and(remote())
        .and(body())
        .then(login);
    let logout = p
        .and(warp::path!("logout"))
        .and(warp::post())
        .and(guard(auth.clone(), Role::Viewer, false))
        .and(with(&auth))
        .and(remote())
        .then(logout);
    let me = p
        .and(warp::path!("me"))
        .and(warp::get())
        .and(guard(auth.clone(), Role::Viewer, false))
        .and(with(&auth))
        .map(me);
    let password = p
        .and(warp::path!("password"))
        .and(warp::post())
        .and(guard(auth.clone(), Role::Viewer, true))
        .and(with(&auth))
        .and(remote())
        .and(body())
        .then(change_password);

    let users = p.and(warp::path!("users")).and(
        warp::get()
            .and(admin(false))
            .and(with(&auth))
            .and(remote())
            .then(|pr, auth, addr| run(auth, pr, addr, Ok(Command::UserList)))
            .or(warp::post()
                .and(admin(true))
                .and(with(&auth))
                .and(remote())
                .and(body())
                .then(|pr, auth, addr, b: Bytes| run(auth, pr, addr, user_add(&b))))
            .unify(),
    );
    let user_path = move || p.and(warp::path!("users" / String));
    let user = user_path()
        .and(warp::patch())
        .and(admin(true))
        .and(with(&auth))
        .and(remote())
        .and(body())
        .then(user_patch)
        .or(user_path()
            .and(warp::delete())
            .and(admin(false))
            .and(with(&auth))
            .and(remote())
            .then(|name, pr, auth, addr| run(auth, pr, addr, Ok(Command::UserDel { name }))))
        .unify();
    let tokens = p.and(warp::path!("tokens")).and(
        warp::get()
            .and(admin(false))
            .and(with(&auth))
            .and(remote())
            .then(|pr, auth, addr| run(auth, pr, addr, Ok(Command::TokenList)))
            .or(warp::post()
                .and(admin(true))
                .and(with(&auth))
                .and(remote())
                .and(body())
                .then(|pr, auth, addr, b: Bytes| run(auth, pr, addr, token_create(&b))))
            .unify(),
    );
    let token = p
        .and(warp::path!("tokens" / u64))
        .and(warp::delete())
        .and(admin(false))
        .and(with(&auth))
        .and(remote())
        .then(|id, pr, auth, addr| run(auth, pr, addr, Ok(Command::TokenRevoke { id })));
    let audit = warp::path!("api" / "audit")
        .and(warp::get())
        .and(admin(false))
        .and(with(&auth))
        .and(warp::query::<HashMap<String, String>>())
        .then(audit);

    let all = login
        .or(logout)
        .unify()
        .or(me)
        .unify()
        .or(password)
        .unify()
        .or(users)
        .unify()
        .or(user)
        .unify()
        .or(tokens)
        .unify()
        .or(token)
        .unify()
        .or(audit)
        .unify()
        .recover(recover)
        .unify();
    own_paths().and(all).boxed()
}

/// Only `/api/auth/*` and `/api/audit` get here; anything else passes on
/// untouched to the rest of the API.
fn own_paths() -> impl Filter<Extract = (), Error = Rejection> + Clone {
    warp::path::full()
        .and_then(|p: warp::path::FullPath| async move {
            let p = p.as_str();
            if p.starts_with("/api/auth/") || p == "/api/audit" {
                Ok(())
            } else {
                Err(warp::reject::not_found())
            }
        })
        .untuple_one()
}

/// Refusals by the checks get their 401/403/415; the rest as everywhere in the API.
async fn recover(err: Rejection) -> Result<Resp, Infallible> {
    match crate::auth::filters::recover(&err) {
        Some(r) => Ok(r),
        None => super::recover(err).await,
    }
}

fn iso(ms: Option<u64>) -> Value {
    ms.map_or(Value::Null, |m| Value::String(crate::logs::iso_utc(m)))
}

/// The answer to a login: the cookie, and the CSRF token the page must send back.
fn session_answer(auth: &Auth, ok: &LoginOk) -> Resp {
    let max_age = ok.expires_ms.saturating_sub(crate::clock::unix_ms()) / 1000;
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

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct LoginBody {
    username: String,
    password: String,
}

async fn login(auth: Arc<Auth>, addr: Option<SocketAddr>, body: Bytes) -> Resp {
    let req: LoginBody = match parse_json(&body) {
        Ok(r) => r,
        Err(e) => return e.into_response(),
    };
    let mut entry = Entry::new(None, &addr_text(addr), "auth.login", "");
    entry.user = req.username.chars().take(64).collect();
    let (resp, role) = match auth.login(&req.username, &req.password, addr).await {
        Ok(ok) => (session_answer(&auth, &ok), Some(ok.role)),
        Err(e) => (login_failure(&e), None),
    };
    entry.role = role;
    if role.is_some() {
        entry.via = "session".into();
    }
    record(&auth, entry.status(resp.status().as_u16())).await;
    resp
}

async fn record(auth: &Auth, entry: Entry) {
    if let Err(e) = auth.audit.record(entry).await {
        tracing::error!("audit record lost: {e}");
    }
}

async fn logout(p: Principal, auth: Arc<Auth>, addr: Option<SocketAddr>) -> Resp {
    let entry = Entry::new(Some(&p), &addr_text(addr), "auth.logout", "");
    let a = auth.clone();
    auth.audit
        .around(entry, async move {
            let secure = a.settings.secure_cookie;
            let ended = tokio::task::spawn_blocking(move || a.logout(&p)).await;
            let mut r = match ended {
                Ok(Ok(ended)) => ok_data(json!({"session_ended": ended})),
                Ok(Err(e)) => fail(StatusCode::INTERNAL_SERVER_ERROR, e),
                Err(e) => fail(StatusCode::INTERNAL_SERVER_ERROR, e),
            };
            if let Ok(v) = HeaderValue::from_str(&clear_cookie(secure)) {
                r.headers_mut().insert(header::SET_COOKIE, v);
            }
            r
        })
        .await
}

fn me(p: Principal, auth: Arc<Auth>) -> Resp {
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

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct PasswordBody {
    current_password: String,
    new_password: String,
}

/// A signed-in user changes their own password. All their sessions end; the
/// answer carries a new one (cookie and CSRF token), like a login.
async fn change_password(
    p: Principal,
    auth: Arc<Auth>,
    addr: Option<SocketAddr>,
    body: Bytes,
) -> Resp {
    let entry = Entry::new(
        Some(&p),
        &addr_text(addr),
        "auth.password",
        &format!("user:{}", p.name),
    );
    let a = auth.clone();
    auth.audit
        .around(entry, async move {
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
            match a
                .change_own_password(&p.name, &req.current_password, &req.new_password, addr)
                .await
            {
                Ok(ok) => session_answer(&a, &ok),
                Err(e) => login_failure(&e),
            }
        })
        .await
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct NewUser {
    name: String,
    role: Role,
    #[serde(default)]
    password: Option<String>,
}

fn user_add(body: &[u8]) -> Result<Command, ApiError> {
    let u: NewUser = parse_json(body)?;
    Ok(Command::UserAdd {
        name: u.name,
        role: u.role,
        password: u.password,
    })
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct UserPatch {
    #[serde(default)]
    role: Option<Role>,
    #[serde(default)]
    disabled: Option<bool>,
    #[serde(default)]
    password: Option<String>,
}

/// A new password and other changes are two commands (and two audit entries).
async fn user_patch(
    name: String,
    p: Principal,
    auth: Arc<Auth>,
    addr: Option<SocketAddr>,
    body: Bytes,
) -> Resp {
    let patch: UserPatch = match parse_json(&body) {
        Ok(b) => b,
        Err(e) => return e.into_response(),
    };
    let mut last = None;
    if let Some(pw) = patch.password {
        let cmd = Command::UserPasswd {
            name: name.clone(),
            password: Some(pw),
        };
        let r = run(auth.clone(), p.clone(), addr, Ok(cmd)).await;
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
        return run(auth, p, addr, Ok(cmd)).await;
    }
    last.unwrap_or_else(|| fail(StatusCode::BAD_REQUEST, "没有要修改的内容"))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct NewToken {
    name: String,
    role: Role,
    #[serde(default)]
    expires_days: Option<u64>,
}

fn token_create(body: &[u8]) -> Result<Command, ApiError> {
    let t: NewToken = parse_json(body)?;
    Ok(Command::TokenCreate {
        name: t.name,
        role: t.role,
        expires_days: t.expires_days,
    })
}

/// Runs one management command for an admin, audited when it changes something.
async fn run(
    auth: Arc<Auth>,
    p: Principal,
    addr: Option<SocketAddr>,
    cmd: Result<Command, ApiError>,
) -> Resp {
    let cmd = match cmd {
        Ok(c) => c,
        Err(e) => return e.into_response(),
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
    let status = super::query_u64(q, "status")?
        .map(|s| u16::try_from(s).map_err(|_| ApiError::bad_request("参数 status 无效")))
        .transpose()?;
    Ok(Query {
        user: q.get("user").cloned(),
        action: q.get("action").cloned(),
        since_ms: time_param(q, "since")?,
        until_ms: time_param(q, "until")?,
        outcome,
        status,
        before: super::query_u64(q, "before")?,
        limit: super::query_u64(q, "limit")?.map_or(100, |l| l as usize),
    })
}

async fn audit(_p: Principal, auth: Arc<Auth>, q: HashMap<String, String>) -> Resp {
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
