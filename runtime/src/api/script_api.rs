//! `/script-api/*`: HTTP routes that scripts registered. The hot path: look the
//! route up, send the request to the owning worker, relay its answer.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use serde_json::json;
use vwed_ipc::{RouteRequest, ToWorker};
use warp::http::{HeaderMap, HeaderName, HeaderValue, Method, StatusCode, header};
use warp::path::Tail;

use super::reply::{Resp, fail, json_response};
use crate::engine::Engine;
use crate::worker::{Answer, CallError};

/// Header that lets a caller shorten (or lengthen, up to the configured maximum)
/// the handler timeout of one request.
const TIMEOUT_HEADER: &str = "x-vwed-timeout-ms";

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

#[allow(clippy::too_many_arguments)]
pub async fn handle(
    tail: Tail,
    method: Method,
    query: String,
    headers: HeaderMap,
    remote: Option<SocketAddr>,
    engine: Arc<Engine>,
    body: Bytes,
) -> Resp {
    let segs: Option<Vec<String>> = tail
        .as_str()
        .split('/')
        .filter(|s| !s.is_empty())
        .map(percent_decode)
        .collect();
    let Some(segs) = segs else {
        return fail(StatusCode::BAD_REQUEST, "请求路径编码无效");
    };
    let path = format!("/{}", segs.join("/"));
    let Some((route, path_params)) = engine.registry.match_route(method.as_str(), &segs) else {
        if engine.registry.path_known(&segs) {
            return fail(
                StatusCode::METHOD_NOT_ALLOWED,
                format!("接口 {path} 不支持 {method} 方法"),
            );
        }
        return fail(
            StatusCode::NOT_FOUND,
            format!("接口 {method} {path} 未注册"),
        );
    };
    let cfg = &engine.cfg;
    let timeout_ms = headers
        .get(TIMEOUT_HEADER)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok())
        .unwrap_or(cfg.call_timeout_ms)
        .clamp(1, cfg.max_call_timeout_ms);
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
        Ok(_) => {
            route.stats.record(false, us);
            fail(StatusCode::INTERNAL_SERVER_ERROR, "脚本应答类型错误")
        }
        Err(CallError::Timeout(ms)) => {
            route.stats.record(false, us);
            json_response(
                StatusCode::GATEWAY_TIMEOUT,
                &json!({
                    "success": false,
                    "error": format!("脚本接口执行超时 ({ms} ms)"),
                    "script_id": &*route.target.script_id,
                }),
            )
        }
        Err(e) => {
            route.stats.record(false, us);
            json_response(
                StatusCode::SERVICE_UNAVAILABLE,
                &json!({
                    "success": false,
                    "error": format!("路由 {} 对应的脚本服务不可用: {e}", route.path),
                    "script_id": &*route.target.script_id,
                }),
            )
        }
    }
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
