//! `GET /api/script/logs` (paged history), `/logs/export` (streamed NDJSON or
//! text) and `/logs/stats` (store, rate-limit and queue counters).
//!
//! `script_id` selects one run of a script; `script_path` (`<project>/<file>`)
//! every run of it, across restarts. Pages are newest first unless `order=asc`.
//! `next_cursor` continues the same query in the same order; it is `null` once
//! the history is exhausted. A page may hold fewer than `limit` lines and still
//! carry a cursor when a selective filter made the scan stop early.

use std::collections::HashMap;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use bytes::Bytes;
use serde_json::json;
use utoipa::IntoParams;
use vwed_ipc::Level;
use warp::http::{HeaderValue, StatusCode, header};
use warp::{Filter, Reply};

use super::answers;
use super::query::{self, names};
use super::reply::{ApiError, Envelope, Failure, Resp, finish, ok_data};
use super::route::{self, Route};
use super::with_engine;
use vwed_auth::Role;
use vwed_engine::Engine;
use vwed_logs::{LogQuery, MAX_LIMIT, Order, decode_cursor, encode_cursor};

pub fn routes(s: &super::Services) -> Vec<Route> {
    let engine = &s.engine;
    let e = with_engine(engine);
    vec![
        route::get("/api/script/logs", Role::Viewer).to(|at| {
            at.and(e.clone())
                .and(query::accept(
                    [names::<Filters>(), names::<Paging>()].concat(),
                ))
                .then(list)
        }),
        route::get("/api/script/logs/export", Role::Viewer).to(|at| {
            at.and(e.clone())
                .and(query::accept(
                    [names::<Filters>(), names::<Format>()].concat(),
                ))
                .then(export)
        }),
        route::get("/api/script/logs/stats", Role::Viewer).to(|at| at.and(e).then(stats)),
    ]
}

#[cfg(test)]
#[derive(utoipa::OpenApi)]
#[openapi(paths(list, export, stats))]
pub struct Doc;

/// The filters both queries share.
#[derive(IntoParams)]
#[into_params(parameter_in = Query)]
#[allow(dead_code)]
struct Filters {
    /// 只要这个脚本的日志; 不给或 * 表示全部
    script_id: Option<String>,
    /// 只要这个脚本文件 (<项目>/<文件>) 的日志, 跨越每次运行
    script_path: Option<String>,
    /// 消息中包含的文字
    q: Option<String>,
    /// 最低级别: DEBUG, INFO, WARNING 或 ERROR
    level: Option<String>,
    /// 起始时间: unix 毫秒, RFC 3339 或本地时间 (2025-09-11T12:00:00)
    since: Option<String>,
    /// 截止时间, 格式同 since
    until: Option<String>,
    /// desc (默认, 最新在前) 或 asc
    order: Option<String>,
}

#[derive(IntoParams)]
#[into_params(parameter_in = Query)]
#[allow(dead_code)]
struct Paging {
    /// 每页最多行数
    limit: Option<u64>,
    /// 上一页的 next_cursor
    cursor: Option<String>,
}

#[derive(IntoParams)]
#[into_params(parameter_in = Query)]
#[allow(dead_code)]
struct Format {
    /// ndjson (默认) 或 text
    format: Option<String>,
}

/// Store, rate-limit and queue counters of the script logs.
#[utoipa::path(
    get,
    path = "/api/script/logs/stats",
    tag = "logs",
    responses((status = 200, description = "data: counters", body = Envelope<answers::LogStats>))
)]
async fn stats(engine: Arc<Engine>) -> Resp {
    ok_data(engine.logs.stats_json())
}

/// `1726059000000` (unix ms), RFC 3339 (`2025-09-11T12:00:00Z`, with offset) or
/// a local wall-clock time as the records show it (`2025-09-11T12:00:00`).
pub fn parse_time(s: &str) -> Option<u64> {
    let s = s.trim();
    if !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()) {
        return s.parse().ok();
    }
    if let Ok(t) = chrono::DateTime::parse_from_rfc3339(s) {
        return u64::try_from(t.timestamp_millis()).ok();
    }
    for fmt in [
        "%Y-%m-%dT%H:%M:%S%.f",
        "%Y-%m-%d %H:%M:%S%.f",
        "%Y-%m-%dT%H:%M:%S",
        "%Y-%m-%d %H:%M:%S",
    ] {
        if let Ok(n) = chrono::NaiveDateTime::parse_from_str(s, fmt) {
            use chrono::TimeZone;
            return chrono::Local
                .from_local_datetime(&n)
                .earliest()
                .and_then(|t| u64::try_from(t.timestamp_millis()).ok());
        }
    }
    chrono::NaiveDate::parse_from_str(s, "%Y-%m-%d")
        .ok()
        .and_then(|d| d.and_hms_opt(0, 0, 0))
        .and_then(|n| {
            use chrono::TimeZone;
            chrono::Local.from_local_datetime(&n).earliest()
        })
        .and_then(|t| u64::try_from(t.timestamp_millis()).ok())
}

fn parse_query(q: &HashMap<String, String>, paged: bool) -> Result<LogQuery, ApiError> {
    let mut lq = LogQuery {
        script_id: q
            .get("script_id")
            .filter(|s| !s.is_empty() && *s != "*")
            .cloned(),
        script_path: q.get("script_path").filter(|s| !s.is_empty()).cloned(),
        q: q.get("q").filter(|s| !s.is_empty()).cloned(),
        ..LogQuery::default()
    };
    if let Some(l) = q.get("level").filter(|s| !s.is_empty()) {
        lq.min_level = Level::parse(l).ok_or_else(|| {
            ApiError::bad_request(format!(
                "参数 level 必须是 DEBUG/INFO/WARNING/ERROR, 得到 {l}"
            ))
        })?;
    }
    for (key, slot) in [("since", &mut lq.since_ms), ("until", &mut lq.until_ms)] {
        if let Some(v) = q.get(key).filter(|s| !s.is_empty()) {
            *slot = Some(parse_time(v).ok_or_else(|| {
                ApiError::bad_request(format!("参数 {key} 必须是 ISO 时间或 unix 毫秒, 得到 {v}"))
            })?);
        }
    }
    match q.get("order").map(|s| s.to_ascii_lowercase()).as_deref() {
        None | Some("") | Some("desc") => lq.order = Order::Desc,
        Some("asc") => lq.order = Order::Asc,
        Some(o) => {
            return Err(ApiError::bad_request(format!(
                "参数 order 必须是 asc 或 desc, 得到 {o}"
            )));
        }
    }
    if paged {
        if let Some(l) = super::query_u64(q, "limit")? {
            if l == 0 || l as usize > MAX_LIMIT {
                return Err(ApiError::bad_request(format!(
                    "参数 limit 必须在 1 到 {MAX_LIMIT} 之间"
                )));
            }
            lq.limit = l as usize;
        }
        if let Some(c) = q.get("cursor").filter(|s| !s.is_empty()) {
            let (order, seq) = decode_cursor(c).map_err(ApiError::bad_request)?;
            lq.order = order;
            lq.after = Some(seq);
        }
    }
    Ok(lq)
}

/// One page of the persisted script logs; `next_cursor` continues it.
#[utoipa::path(
    get,
    path = "/api/script/logs",
    tag = "logs",
    params(Filters, Paging),
    responses(
        (status = 200, description = "data: {logs, count, order, next_cursor}", body = Envelope<answers::LogPage>),
        (status = 400, description = "参数无效", body = Failure),
    )
)]
async fn list(engine: Arc<Engine>, q: HashMap<String, String>) -> Resp {
    finish(
        async {
            let lq = parse_query(&q, true)?;
            let store = engine.logs.store.clone();
            let order = lq.order;
            let page = tokio::task::spawn_blocking(move || store.page(&lq))
                .await
                .map_err(|e| ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, e))?
                .map_err(|e| ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, e))?;
            Ok(ok_data(json!({
                "logs": page.entries.iter().map(|e| e.to_json()).collect::<Vec<_>>(),
                "count": page.entries.len(),
                "order": if order == Order::Desc { "desc" } else { "asc" },
                "next_cursor": page.next.map(|s| encode_cursor(order, s)),
            })))
        }
        .await,
    )
}

/// A response body fed by a bounded channel: the producer reads one page at a
/// time, so an export of the whole history never sits in memory.
struct ChunkStream(tokio::sync::mpsc::Receiver<Bytes>);

impl futures::Stream for ChunkStream {
    type Item = Result<Bytes, std::io::Error>;
    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        self.0.poll_recv(cx).map(|o| o.map(Ok))
    }
}

/// The whole matching history, streamed as NDJSON or text, in the order asked
/// (newest first unless `order=asc`).
#[utoipa::path(
    get,
    path = "/api/script/logs/export",
    tag = "logs",
    params(Filters, Format),
    responses(
        (status = 200, description = "logs.ndjson (每行一个 JSON 对象), format=text 时为 logs.txt (text/plain)", content_type = "application/x-ndjson", body = String),
        (status = 400, description = "参数无效", body = Failure),
    )
)]
async fn export(engine: Arc<Engine>, q: HashMap<String, String>) -> Resp {
    let text = match q.get("format").map(String::as_str) {
        None | Some("") | Some("ndjson") => false,
        Some("text") | Some("txt") => true,
        Some(f) => {
            return ApiError::bad_request(format!("参数 format 必须是 ndjson 或 text, 得到 {f}"))
                .into_response();
        }
    };
    let mut lq = match parse_query(&q, false) {
        Ok(lq) => lq,
        Err(e) => return e.into_response(),
    };
    lq.limit = MAX_LIMIT;
    let store = engine.logs.store.clone();
    let (tx, rx) = tokio::sync::mpsc::channel::<Bytes>(4);
    tokio::task::spawn_blocking(move || {
        loop {
            let page = match store.page(&lq) {
                Ok(p) => p,
                Err(e) => {
                    tracing::warn!("log export stopped: {e}");
                    return;
                }
            };
            let mut buf = Vec::with_capacity(page.entries.len() * 128);
            for e in &page.entries {
                if text {
                    buf.extend_from_slice(e.to_text().as_bytes());
                } else {
                    buf.extend_from_slice(e.to_json().to_string().as_bytes());
                }
                buf.push(b'\n');
            }
            // The client went away: stop reading.
            if !buf.is_empty() && tx.blocking_send(Bytes::from(buf)).is_err() {
                return;
            }
            match page.next {
                Some(s) => lq.after = Some(s),
                None => return,
            }
        }
    });
    let mut r = warp::reply::stream(ChunkStream(rx)).into_response();
    let (ctype, name) = if text {
        ("text/plain; charset=utf-8", "logs.txt")
    } else {
        ("application/x-ndjson", "logs.ndjson")
    };
    r.headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static(ctype));
    if let Ok(v) = HeaderValue::from_str(&format!("attachment; filename=\"{name}\"")) {
        r.headers_mut().insert(header::CONTENT_DISPOSITION, v);
    }
    r
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times() {
        assert_eq!(parse_time("1726059000000"), Some(1_726_059_000_000));
        assert_eq!(parse_time("2024-09-11T12:50:00Z"), Some(1_726_059_000_000));
        assert_eq!(
            parse_time("2024-09-11T14:50:00.5+02:00"),
            Some(1_726_059_000_500)
        );
        assert!(parse_time("2024-09-11T12:50:00").is_some());
        assert!(parse_time("2024-09-11").is_some());
        assert_eq!(parse_time("yesterday"), None);
    }
}
