//! The request checks as warp filters, for the route table: `guard` for routes
//! that need a role, `public` for those anyone may call. Both refuse with a
//! `Denied` rejection (401/403/415) that `recover` turns into the envelope, and
//! record the refusal in the audit log before answering.

use std::net::SocketAddr;
use std::sync::Arc;

use warp::http::{HeaderMap, HeaderValue, Method, header};
use warp::path::FullPath;
use warp::{Filter, Rejection};

use super::audit::Entry;
use super::{Auth, Denied, Principal, Role};

/// `METHOD /path`: the audit action of an HTTP call.
pub fn action(method: &Method, path: &str) -> String {
    format!("{method} {path}")
}

pub fn addr_text(addr: Option<SocketAddr>) -> String {
    addr.map(|a| a.to_string()).unwrap_or_default()
}

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

/// Checks Host, Origin, the credential, `need`, CSRF and (with `json_body`) the
/// content type; extracts the caller.
pub fn guard(
    auth: Arc<Auth>,
    need: Role,
    json_body: bool,
) -> impl Filter<Extract = (Principal,), Error = Rejection> + Clone {
    parts().and_then(
        move |method: Method, headers: HeaderMap, path: FullPath, addr| {
            let auth = auth.clone();
            async move {
                match auth.check(&method, &headers, need, json_body) {
                    Ok(p) => Ok(p),
                    Err(d) => {
                        // Who was refused, when a credential checked out (403).
                        let who = auth.authenticate(&headers).ok();
                        Err(refuse(&auth, who.as_ref(), &method, path.as_str(), addr, d).await)
                    }
                }
            }
        },
    )
}

/// Checks Host, Origin and (with `json_body`) the content type of a route that
/// needs no credential.
pub fn public(
    auth: Arc<Auth>,
    json_body: bool,
) -> impl Filter<Extract = (), Error = Rejection> + Clone {
    parts()
        .and_then(
            move |method: Method, headers: HeaderMap, path: FullPath, addr| {
                let auth = auth.clone();
                async move {
                    match auth.check_public(&method, &headers, json_body) {
                        Ok(()) => Ok(()),
                        Err(d) => Err(refuse(&auth, None, &method, path.as_str(), addr, d).await),
                    }
                }
            },
        )
        .untuple_one()
}

async fn refuse(
    auth: &Auth,
    who: Option<&Principal>,
    method: &Method,
    path: &str,
    addr: Option<SocketAddr>,
    d: Denied,
) -> Rejection {
    let entry = Entry::new(who, &addr_text(addr), &action(method, path), path)
        .status(d.status.as_u16())
        .detail(d.message.clone());
    if let Err(e) = auth.audit.record(entry).await {
        tracing::error!("audit record lost: {e}");
    }
    warp::reject::custom(d)
}

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
    err.find::<Denied>().map(denied_response)
}
