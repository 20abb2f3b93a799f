//! `/script-api/*`: HTTP routes that scripts registered. The hot path: look the
//! route up, send the request to the owning worker, relay its answer.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use serde_json::json;
use vwed_ipc::{RouteReply, RouteRequest, ToWorker};
use warp::Filter;
use warp::http::{HeaderMap, HeaderName, HeaderValue, Method, StatusCode, header};

use super::reply::{Failure, Resp, fail, json_response};
use super::route::{self, Rest, Route};
use super::{body, with_engine};
use vwed_auth::Role;
use vwed_engine::worker::{Answer, CallError};
use vwed_engine::{Engine, Wired};
use vwed_registry::RouteEntry;

/// Header that lets a caller shorten (or lengthen, up to the configured maximum)
/// the handler timeout of one request.
const TIMEOUT_HEADER: &str = "x-vwed-timeout-ms";

/// One entry for every route scripts register: operator or above, unless the
/// script registered the route as public. Its filter chain is the hot path:
/// each filter here runs for every script request.
pub fn routes(s: &super::Services) -> Vec<Route> {
    let engine = &s.engine;
    let (e, b) = (with_engine(engine), body(s));
    let engine = engine.clone();
    let opens = move |method: &Method, full: &str| {
        full.strip_prefix(PREFIX)
            .and_then(segments)
            .is_some_and(|segs| engine.registry.is_public(method.as_str(), &segs))
    };
    vec![
        route::any("/script-api/{*path}", Role::Operator)
            .to_rest(|at| {
                at.and(warp::method())
                    .and(warp::query::raw().or(warp::any().map(String::new)).unify())
                    .and(warp::header::headers_cloned())
                    .and(crate::server::client_addr())
                    .and(e)
                    .and(b)
                    .then(handle)
            })
            .opened_by(Arc::new(opens)),
    ]
}

const PREFIX: &str = "/script-api";

#[cfg(test)]
#[derive(utoipa::OpenApi)]
#[openapi(paths(handle))]
pub struct Doc;

pub(super) fn percent_decode(s: &str) -> Option<String> {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'%' if i + 2 < bytes.len() => {
                let hex = std::str::from_utf8(&bytes[i + 1..i + 3]).ok()?;
                out.push(u8::from_str_radix(hex, 16).ok()?);
                i += 3;
            }
            b'%' => return None,
            b => {
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8(out).ok()
}

fn query_pairs(raw: &str) -> Vec<(String, String)> {
    raw.split('&')
        .filter(|p| !p.is_empty())
        .map(|p| {
            let (k, v) = p.split_once('=').unwrap_or((p, ""));
            let dec = |s: &str| {
                let s = s.replace('+', " ");
                percent_decode(&s).unwrap_or(s)
            };
            (dec(k), dec(v))
        })
        .collect()
}

/// A route a running script registered (`VWED.api.register_route`), answered
/// by the script's handler: status, headers and body are the handler's. `path`
/// may span several segments. All query parameters go to the script. Header
/// `x-vwed-timeout-ms` shortens or lengthens the handler timeout of this request.
#[utoipa::path(
    method(get, post, put, delete, patch),
    path = "/script-api/{path}",
    tag = "script-api",
    params(("path" = String, Path, description = "脚本注册的路径, 可含多段")),
    responses(
        (status = 200, description = "脚本处理函数的应答 (任意内容)"),
        (status = 404, description = "接口未注册", body = Failure),
        (status = 405, description = "接口不支持此方法", body = Failure),
        (status = 504, description = "脚本接口执行超时; 另有 script_id", body = Failure),
        (status = 503, description = "脚本服务不可用; 另有 script_id", body = Failure),
    )
)]
async fn handle(
    tail: Rest,
    method: Method,
    query: String,
    headers: HeaderMap,
    remote: Option<SocketAddr>,
    engine: Arc<Engine>,
    body: Bytes,
) -> Resp {
    let Some(segs) = segments(tail.as_str()) else {
        return fail(StatusCode::BAD_REQUEST, "请求路径编码无效");
    };
    let path = format!("/{}", segs.join("/"));
    let Some((route, path_params)) = engine.registry.match_route(method.as_str(), &segs) else {
        return unmatched(&engine, &method, &path, &segs);
    };
    let timeout_ms = timeout_ms(&engine, &headers);
    let conn = &route.target.conn;
    let req = conn.next_req();
    let msg = ToWorker::Route(RouteRequest {
        req,
        handler: route.target.handler,
        method: method.as_str().to_string(),
        path,
        query: query_pairs(&query),
        path_params,
        headers: headers
            .iter()
            .map(|(k, v)| {
                (
                    k.as_str().to_string(),
                    String::from_utf8_lossy(v.as_bytes()).into_owned(),
                )
            })
            .collect(),
        body: body.to_vec(),
        client: remote.map(|a| a.ip().to_string()).unwrap_or_default(),
    });
    let t0 = Instant::now();
    let answer = conn
        .request(req, &msg, Duration::from_millis(timeout_ms))
        .await;
    let us = t0.elapsed().as_micros() as u64;
    match answer {
        Ok(Answer::Route(reply)) => {
            route.stats.record(reply.status < 500, us);
            relay(reply)
        }
        Ok(_) => {
            route.stats.record(false, us);
            fail(StatusCode::INTERNAL_SERVER_ERROR, "脚本应答类型错误")
        }
        Err(e) => {
            route.stats.record(false, us);
            call_failed(&route, e)
        }
    }
}

/// The decoded segments of the path below `/script-api`.
fn segments(tail: &str) -> Option<Vec<String>> {
    tail.split('/')
        .filter(|s| !s.is_empty())
        .map(percent_decode)
        .collect()
}

/// 405 when the path is registered under another method, else 404.
fn unmatched(engine: &Engine, method: &Method, path: &str, segs: &[String]) -> Resp {
    if engine.registry.path_known(segs) {
        return fail(
            StatusCode::METHOD_NOT_ALLOWED,
            format!("接口 {path} 不支持 {method} 方法"),
        );
    }
    fail(
        StatusCode::NOT_FOUND,
        format!("接口 {method} {path} 未注册"),
    )
}

fn timeout_ms(engine: &Engine, headers: &HeaderMap) -> u64 {
    let cfg = &engine.cfg;
    headers
        .get(TIMEOUT_HEADER)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok())
        .unwrap_or(cfg.engine.call_timeout_ms)
        .clamp(1, cfg.engine.max_call_timeout_ms)
}

/// The script's answer as the HTTP response; JSON unless the script said otherwise.
fn relay(reply: RouteReply) -> Resp {
    let mut r = warp::reply::Response::new(reply.body.into());
    *r.status_mut() =
        StatusCode::from_u16(reply.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let h = r.headers_mut();
    let mut has_type = false;
    for (k, v) in reply.headers {
        if let (Ok(name), Ok(value)) = (
            HeaderName::try_from(k.as_str()),
            HeaderValue::try_from(v.as_str()),
        ) {
            has_type |= name == header::CONTENT_TYPE;
            h.append(name, value);
        }
    }
    if !has_type {
        h.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json; charset=utf-8"),
        );
    }
    r
}

fn call_failed(route: &RouteEntry<Wired>, e: CallError) -> Resp {
    let (status, error) = match e {
        CallError::Timeout(ms) => (
            StatusCode::GATEWAY_TIMEOUT,
            format!("脚本接口执行超时 ({ms} ms)"),
        ),
        e => (
            StatusCode::SERVICE_UNAVAILABLE,
            format!("路由 {} 对应的脚本服务不可用: {e}", route.path),
        ),
    };
    json_response(
        status,
        &json!({
            "success": false,
            "error": error,
            "script_id": &*route.target.script_id,
        }),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decoding() {
        assert_eq!(percent_decode("a%20b/%E4%B8%AD").as_deref(), Some("a b/中"));
        assert_eq!(percent_decode("bad%2"), None);
        assert_eq!(percent_decode("bad%zz"), None);
        assert_eq!(
            query_pairs("name=x+y&a=%31&flag"),
            vec![
                ("name".into(), "x y".into()),
                ("a".into(), "1".into()),
                ("flag".into(), "".into())
            ]
        );
    }
}
