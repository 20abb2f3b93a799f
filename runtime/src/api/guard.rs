//! The request checks as warp filters, for the route table: [`admission`]
//! checks what an endpoint needs (`guard` for a role, `public` for anyone) and
//! refuses with a `Denied` rejection (401/403/415) that `recover` turns into
//! the envelope, recording the refusal in the audit log before answering.

use std::net::SocketAddr;
use std::sync::Arc;

use warp::http::{HeaderMap, HeaderValue, Method, header};
use warp::path::FullPath;
use warp::{Filter, Rejection};

use vwed_auth::audit::Entry;
use vwed_auth::{Auth, Denied, Principal, Role};

/// `METHOD /path`: the audit action of an HTTP call.
pub fn action(method: &Method, path: &str) -> String {
    format!("{method} {path}")
}

pub fn addr_text(addr: Option<SocketAddr>) -> String {
    addr.map(|a| a.to_string()).unwrap_or_default()
}

/// What an endpoint asks of a caller.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Need {
    Public,
    Role(Role),
}

/// Which requests (method, full path) of an endpoint need no credential
/// although it has a role: script routes registered as public.
pub type Opens = Arc<dyn Fn(&Method, &str) -> bool + Send + Sync>;

/// What the checks and the audit record look at.
fn parts() -> impl Filter<
    Extract = (Method, HeaderMap, FullPath, Option<SocketAddr>),
    Error = std::convert::Infallible,
> + Clone {
    warp::method()
        .and(warp::header::headers_cloned())
        .and(warp::path::full())
        .and(crate::server::client_addr())
}

/// Checks Host and Origin, and for `Need::Role` the credential, the role and
/// CSRF; with `json_body`, the content type. Extracts the caller (None when
/// the endpoint, or `opens` for this request, needs no credential). A refusal
/// is recorded under `label` (the endpoint's path pattern; the request's path
/// when None).
pub fn admission(
    auth: Arc<Auth>,
    need: Need,
    json_body: bool,
    label: Option<&'static str>,
    opens: Option<Opens>,
) -> impl Filter<Extract = (Option<Principal>,), Error = Rejection> + Clone {
    parts().and_then(
        move |method: Method, headers: HeaderMap, path: FullPath, addr| {
            let auth = auth.clone();
            // Whether the request is opened (a registry lookup) is asked only
            // when its credential does not do: on the hot path it does.
            let checked = match need {
                Need::Public => auth
                    .check_public(&method, &headers, json_body)
                    .map(|()| None),
                Need::Role(r) => match auth.check(&method, &headers, r, json_body) {
                    Err(_) if opens.as_ref().is_some_and(|o| o(&method, path.as_str())) => auth
                        .check_public(&method, &headers, json_body)
                        .map(|()| None),
                    other => other.map(Some),
                },
            };
            async move {
                match checked {
                    Ok(p) => Ok(p),
                    Err(d) => {
                        // Who was refused, when a credential checked out (403).
                        let who = auth.authenticate(&headers).ok();
                        let action = action(&method, label.unwrap_or(path.as_str()));
                        Err(refuse(&auth, who.as_ref(), &action, path.as_str(), addr, d).await)
                    }
                }
            }
        },
    )
}

/// The caller of a request its endpoint's admission let in, for handlers that
/// act on who it is (their own account, their own session, a WebSocket that
/// ends with the credential). No audit record: admission made it.
pub fn caller(auth: Arc<Auth>) -> impl Filter<Extract = (Principal,), Error = Rejection> + Clone {
    warp::header::headers_cloned().and_then(move |headers: HeaderMap| {
        let p = auth.authenticate(&headers);
        async move { p.map_err(|d| warp::reject::custom(Refused(d))) }
    })
}

async fn refuse(
    auth: &Auth,
    who: Option<&Principal>,
    action: &str,
    path: &str,
    addr: Option<SocketAddr>,
    d: Denied,
) -> Rejection {
    let entry = Entry::new(who, &addr_text(addr), action, path)
        .status(d.status.as_u16())
        .detail(d.message.clone());
    if let Err(e) = auth.audit.record(entry).await {
        tracing::error!("audit record lost: {e}");
    }
    warp::reject::custom(Refused(d))
}

/// A refusal of the checks as a warp rejection (the checks know no warp).
#[derive(Debug)]
struct Refused(Denied);

impl warp::reject::Reject for Refused {}

/// The answer to a refusal, with `WWW-Authenticate` on 401.
pub fn denied_response(d: &Denied) -> warp::reply::Response {
    let mut r = crate::api::reply::fail(d.status, &d.message);
    if d.status == warp::http::StatusCode::UNAUTHORIZED {
        r.headers_mut().insert(
            header::WWW_AUTHENTICATE,
            HeaderValue::from_static("Bearer realm=\"vwed-edge\""),
        );
    }
    r
}

/// For the API's `recover`: the answer to a `Denied` rejection.
pub fn recover(err: &Rejection) -> Option<warp::reply::Response> {
    err.find::<Refused>().map(|r| denied_response(&r.0))
}

#[cfg(test)]
/// [`admission`] of an endpoint that needs `need`: extracts the caller (what
/// the route table builds for a role, as the tests use it).
pub fn guard(
    auth: Arc<Auth>,
    need: Role,
    json_body: bool,
) -> impl Filter<Extract = (Principal,), Error = Rejection> + Clone {
    admission(auth, Need::Role(need), json_body, None, None).and_then(
        |p: Option<Principal>| async move {
            p.ok_or_else(|| {
                warp::reject::custom(Refused(Denied::unauthorized("需要登录或 API 令牌")))
            })
        },
    )
}

#[cfg(test)]
mod tests;
