//! `/api/script/ws/*`: the live log WebSocket, its connection status, a test
//! broadcast and a self-contained test page. The WebSocket lives as long as
//! the credential that opened it: a revoked or expired token, an ended session,
//! a disabled account close it with 1008 (policy violation).

use std::collections::HashMap;
use std::sync::Arc;

use bytes::Bytes;
use futures::{SinkExt, StreamExt};
use serde::Deserialize;
use serde_json::{Value, json};
use utoipa::{IntoParams, ToSchema};
use vwed_ipc::Level;
use warp::filters::ws::{Message, WebSocket, Ws};
use warp::{Filter, Reply};

use super::answers;
use super::body::parse_json;
use super::query;
use super::reply::{ApiError, Envelope, Failure, Resp, finish, ok_data, ok_message};
use super::route::{self, Route};
use super::{body, with_engine};
use crate::api::guard::caller;
use vwed_auth::{Principal, Role};
use vwed_engine::Engine;
use vwed_logs::{ALL, Conn, LineFilter, LogQuery, MAX_LIMIT};

const TEST_PAGE: &str = include_str!("ws_test_page.html");

pub fn routes(s: &super::Services) -> Vec<Route> {
    let engine = &s.engine;
    let (e, b) = (with_engine(engine), body(s));
    vec![
        // The query is checked before the upgrade, so that a bad one is a 400.
        route::get("/api/script/ws/script-logs", Role::Viewer)
            .websocket()
            .to(|at| {
                at.and(query::known::<SocketQuery>())
                    .and(warp::ws())
                    .and(caller(engine.auth.clone()))
                    .and(e.clone())
                    .then(socket)
            }),
        route::get("/api/script/ws/connections/status", Role::Viewer)
            .to(|at| at.and(e.clone()).then(connections)),
        route::post("/api/script/ws/broadcast/test", Role::Admin)
            .to(|at| at.and(e).and(b).then(broadcast_test)),
        route::get("/api/script/ws/test-page", Role::Viewer).to(|at| at.then(test_page)),
    ]
}

#[cfg(test)]
#[derive(utoipa::OpenApi)]
#[openapi(paths(socket, connections, broadcast_test, test_page))]
pub struct Doc;

#[derive(IntoParams)]
#[into_params(parameter_in = Query)]
#[allow(dead_code)]
struct SocketQuery {
    /// 客户端ID, 必填 (缺少时服务端发送错误消息并关闭连接)
    client_id: Option<String>,
    /// 客户端类型, 默认 web
    client_type: Option<String>,
}

/// The live log WebSocket (seed 001 §4): after `welcome`, the client sends
/// `subscribe` / `unsubscribe` (`script_id`, optional `last` for history),
/// `ping` or `get_status`; the server sends `script_log` lines of the subscribed
/// scripts and I/O point changes (`io:*` topics).
#[utoipa::path(
    get,
    path = "/api/script/ws/script-logs",
    tag = "websocket",
    params(SocketQuery),
    responses(
        (status = 101, description = "WebSocket 连接建立"),
        (status = 400, description = "不是 WebSocket 握手, 或查询参数无效", body = Failure),
    )
)]
async fn socket(q: HashMap<String, String>, ws: Ws, who: Principal, engine: Arc<Engine>) -> Resp {
    ws.on_upgrade(move |s| session(s, q, who, engine))
        .into_response()
}

/// The connected WebSocket clients and their subscriptions.
#[utoipa::path(
    get,
    path = "/api/script/ws/connections/status",
    tag = "websocket",
    responses((status = 200, description = "data: {total_connections, total_script_subscriptions, connections, script_subscriptions}", body = Envelope<answers::WsStatus>))
)]
async fn connections(engine: Arc<Engine>) -> Resp {
    ok_data(engine.logs.hub.status_json())
}

/// A self-contained page to try the log WebSocket.
#[utoipa::path(
    get,
    path = "/api/script/ws/test-page",
    tag = "websocket",
    responses((status = 200, description = "HTML", content_type = "text/html", body = String))
)]
async fn test_page() -> Resp {
    warp::reply::html(TEST_PAGE).into_response()
}

#[derive(Deserialize, ToSchema)]
struct BroadcastBody {
    script_id: String,
    /// 消息文字 (其他 JSON 值按文本发送), 默认 "测试消息"
    #[serde(default)]
    message: Value,
    /// debug, info (默认), warning 或 error
    #[serde(default)]
    level: Option<String>,
}

/// Sends a test line to the subscribers of a script (seed 001 §4.6).
#[utoipa::path(
    post,
    path = "/api/script/ws/broadcast/test",
    tag = "websocket",
    request_body = BroadcastBody,
    responses((status = 200, description = "message, data: {script_id, delivered}", body = Envelope<answers::Broadcast>))
)]
async fn broadcast_test(engine: Arc<Engine>, body: Bytes) -> Resp {
    finish((|| {
        let b: BroadcastBody = parse_json(&body)?;
        if b.script_id.is_empty() {
            return Err(ApiError::bad_request("缺少 script_id 参数"));
        }
        let level = match b.level.as_deref() {
            None | Some("") => Level::Info,
            Some(l) => Level::parse(l).ok_or_else(|| {
                ApiError::bad_request(format!("level 必须是 debug/info/warning/error, 得到 {l}"))
            })?,
        };
        let message = match b.message {
            Value::String(s) => s,
            Value::Null => "测试消息".to_string(),
            other => other.to_string(),
        };
        let delivered = engine.logs.hub.publish(&b.script_id, || {
            json!({
                "type": "script_log",
                "script_id": b.script_id,
                "timestamp": vwed_base::clock::utc_now(),
                "level": level.as_str(),
                "message": message,
                "stream": "test",
                "test": true,
            })
        });
        Ok(ok_message(
            format!("测试消息已广播到脚本 {} 的订阅者", b.script_id),
            Some(json!({"script_id": b.script_id, "delivered": delivered})),
        ))
    })())
}

#[derive(Deserialize)]
struct ClientMsg {
    #[serde(rename = "type")]
    kind: String,
    #[serde(default)]
    script_id: Option<String>,
    /// Instead of `script_id`: every run of the script at this path.
    #[serde(default)]
    script_path: Option<String>,
    /// On subscribe: also send the newest `last` stored lines.
    #[serde(default)]
    last: Option<usize>,
    /// On subscribe: only lines of this level or higher (this connection's lines).
    #[serde(default)]
    level: Option<String>,
    /// On subscribe: only lines whose message or fields hold this text.
    #[serde(default)]
    q: Option<String>,
}

async fn session(
    socket: WebSocket,
    q: HashMap<String, String>,
    who: Principal,
    engine: Arc<Engine>,
) {
    let (mut tx, mut rx) = socket.split();
    let Some(client_id) = q.get("client_id").filter(|s| !s.trim().is_empty()) else {
        let err = json!({"type": "error", "message": "缺少必填参数 client_id", "timestamp": vwed_base::clock::utc_now()});
        let _ = tx.send(Message::text(err.to_string())).await;
        let _ = tx
            .send(Message::close_with(1008u16, "client_id is required"))
            .await;
        return;
    };
    let client_type = q
        .get("client_type")
        .map(String::as_str)
        .filter(|s| !s.trim().is_empty())
        .unwrap_or("web");
    let hub = engine.logs.hub.clone();
    let conn = hub.connect(client_id, client_type);
    conn.reply(json!({
        "type": "welcome",
        "connection_id": conn.connection_id,
        "server_time": vwed_base::clock::utc_now(),
        "message": "连接建立成功",
    }));
    // The writer owns the socket's send half; the reader below only queues.
    let (revoked, closing) = tokio::sync::oneshot::channel::<()>();
    let writer = tokio::spawn(write_out(tx, conn.clone(), closing));
    let auth = engine.auth.clone();
    let mut ended = std::pin::pin!(auth.until_invalid(&who));
    loop {
        let msg = tokio::select! {
            m = rx.next() => m,
            () = &mut ended => {
                tracing::info!(user = %who.name, via = %who.via.label(), "WebSocket closed: credential no longer valid");
                let _ = revoked.send(());
                // The close frame gets a moment; then the connection goes.
                let _ = tokio::time::timeout(CLOSE_GRACE, writer).await;
                hub.disconnect(&conn);
                return;
            }
        };
        let Some(Ok(msg)) = msg else { break };
        if msg.is_close() {
            break;
        }
        if let Ok(text) = msg.to_str() {
            on_message(&engine, &conn, text).await;
        }
    }
    hub.disconnect(&conn);
    // A writer stuck on a client that stopped reading would wait forever.
    writer.abort();
}

/// How long the close frame of a revoked session may take to go out.
const CLOSE_GRACE: std::time::Duration = std::time::Duration::from_secs(2);

/// Sends what the connection queues; on `closing`, a 1008 close frame.
async fn write_out(
    mut tx: futures::stream::SplitSink<WebSocket, Message>,
    out: Arc<Conn>,
    closing: tokio::sync::oneshot::Receiver<()>,
) {
    let mut closing = std::pin::pin!(closing);
    loop {
        let batch = tokio::select! {
            b = out.next_batch() => b,
            _ = &mut closing => {
                let _ = tx
                    .send(Message::close_with(1008u16, "credential revoked or expired"))
                    .await;
                let _ = tx.close().await;
                return;
            }
        };
        let Some(batch) = batch else { break };
        for m in batch {
            if tx.feed(Message::text(&*m)).await.is_err() {
                return;
            }
        }
        if tx.flush().await.is_err() {
            return;
        }
    }
    let _ = tx.close().await;
}

async fn on_message(engine: &Arc<Engine>, conn: &Arc<Conn>, text: &str) {
    let now = vwed_base::clock::utc_now();
    let m: ClientMsg = match serde_json::from_str(text) {
        Ok(m) => m,
        Err(e) => {
            conn.reply(
                json!({"type": "error", "message": format!("消息格式错误: {e}"), "timestamp": now}),
            );
            return;
        }
    };
    let target = match m.script_path.filter(|p| !p.is_empty()) {
        Some(path) => Target::Path(path),
        None => Target::Run(
            m.script_id
                .filter(|s| !s.is_empty())
                .unwrap_or_else(|| ALL.to_string()),
        ),
    };
    match m.kind.as_str() {
        "subscribe" => {
            if matches!(&target, Target::Run(t) if t == METRICS_TOPIC) {
                start_metrics(engine, conn);
            }
            let filter = match line_filter(m.level.as_deref(), m.q) {
                Ok(f) => f,
                Err(e) => {
                    conn.reply(json!({"type": "error", "message": e, "timestamp": now}));
                    return;
                }
            };
            if let Some(f) = filter {
                conn.set_filter(f);
            }
            target.subscribe(conn);
            let (key, name) = target.key();
            conn.reply(json!({
                "type": "subscribed",
                key: name,
                "timestamp": now,
                "message": format!("已订阅脚本 {name} 的日志"),
            }));
            if let Some(n) = m.last.filter(|n| *n > 0) {
                send_history(engine, conn, target.history(), n.min(MAX_LIMIT)).await;
            }
        }
        "unsubscribe" => {
            let was = target.unsubscribe(conn);
            let (key, name) = target.key();
            conn.reply(json!({
                "type": "unsubscribed",
                key: name,
                "was_subscribed": was,
                "timestamp": now,
                "message": format!("已取消订阅脚本 {name} 的日志"),
            }));
        }
        "ping" => conn.reply(json!({"type": "pong", "timestamp": now})),
        "get_status" => conn.reply(json!({
            "type": "status",
            "timestamp": now,
            "connection_id": conn.connection_id,
            "client_id": conn.client_id,
            "client_type": conn.client_type,
            "connected_at": conn.connected_at,
            "subscribed_scripts": conn.subscriptions(),
            "skipped": conn.skipped_total.load(std::sync::atomic::Ordering::Relaxed),
        })),
        other => conn.reply(json!({
            "type": "error",
            "message": format!("未知的消息类型: {other}"),
            "timestamp": now,
        })),
    }
}

/// The log-line filter a subscribe asks for, if it names one.
fn line_filter(level: Option<&str>, q: Option<String>) -> Result<Option<LineFilter>, String> {
    let min_level = match level.filter(|l| !l.is_empty()) {
        None => None,
        Some(l) => Some(
            Level::parse(l)
                .ok_or_else(|| format!("level 必须是 debug/info/warning/error, 得到 {l}"))?,
        ),
    };
    // Either key present, even empty, sets the filter: an empty one clears it.
    let asked = level.is_some() || q.is_some();
    let text = q.filter(|t| !t.is_empty());
    Ok(asked.then_some(LineFilter { min_level, text }))
}

/// Topic of the running scripts with CPU, memory, uptime and restarts, pushed
/// every [`METRICS_EVERY`] to the connections that subscribed to it.
const METRICS_TOPIC: &str = "metrics";
const METRICS_EVERY: std::time::Duration = std::time::Duration::from_secs(2);
/// A connection with more than this many messages waiting gets no new figures.
const METRICS_BACKLOG: usize = 16;

/// Pushes `scripts_running` to one connection until it unsubscribes or goes.
/// Per connection, so that nothing runs while nobody watches.
fn start_metrics(engine: &Arc<Engine>, conn: &Arc<Conn>) {
    if conn.subscriptions().iter().any(|s| s == METRICS_TOPIC) {
        return;
    }
    let (engine, conn) = (Arc::downgrade(engine), Arc::downgrade(conn));
    tokio::spawn(async move {
        let mut every = tokio::time::interval(METRICS_EVERY);
        every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
        loop {
            every.tick().await;
            let (Some(engine), Some(conn)) = (engine.upgrade(), conn.upgrade()) else {
                return;
            };
            if !conn.subscriptions().iter().any(|s| s == METRICS_TOPIC) {
                return;
            }
            if conn.queued() < METRICS_BACKLOG {
                conn.reply(json!({
                    "type": "scripts_running",
                    "timestamp": vwed_base::clock::utc_now(),
                    "data": engine.running_json(),
                }));
            }
        }
    });
}

/// What a subscribe names: one run (`script_id`, `*` for all), or every run of
/// one script (`script_path`), across restarts that give it new script_ids.
enum Target {
    Run(String),
    Path(String),
}

impl Target {
    fn key(&self) -> (&'static str, &str) {
        match self {
            Target::Run(sid) => ("script_id", sid),
            Target::Path(path) => ("script_path", path),
        }
    }

    fn subscribe(&self, conn: &Conn) {
        match self {
            Target::Run(sid) => conn.subscribe(sid),
            Target::Path(path) => conn.subscribe_path(path),
        }
    }

    fn unsubscribe(&self, conn: &Conn) -> bool {
        match self {
            Target::Run(sid) => conn.unsubscribe(sid),
            Target::Path(path) => conn.unsubscribe_path(path),
        }
    }

    /// The stored lines this subscription covers.
    fn history(&self) -> LogQuery {
        let (script_id, script_path) = match self {
            Target::Run(sid) => ((sid != ALL).then(|| sid.clone()), None),
            Target::Path(path) => (None, Some(path.clone())),
        };
        LogQuery {
            script_id,
            script_path,
            ..LogQuery::default()
        }
    }
}

/// Stored lines, oldest first, marked `history` (live lines may overlap them;
/// `seq` tells them apart).
async fn send_history(engine: &Arc<Engine>, conn: &Arc<Conn>, filter: LogQuery, n: usize) {
    let store = engine.logs.store.clone();
    // Commit what is queued first: a line logged just before the subscribe was
    // already broadcast, and must then be in the history instead of nowhere.
    let lines = tokio::task::spawn_blocking(move || {
        let _ = store.flush_blocking();
        store.last_lines(filter, n)
    })
    .await;
    match lines {
        Ok(Ok(lines)) => {
            for e in lines {
                let mut v = json!({
                    "type": "script_log",
                    "script_id": e.script_id,
                    "timestamp": vwed_base::clock::iso_utc(e.ts_ms),
                    "level": e.level.as_str(),
                    "message": e.message,
                    "seq": e.seq,
                    "stream": e.stream,
                    "script_path": e.script_path,
                    "history": true,
                });
                if let Some(f) = e.fields_json() {
                    v["fields"] = f;
                }
                conn.reply(v);
            }
        }
        Ok(Err(e)) => {
            conn.reply(json!({"type": "error", "message": format!("读取历史日志失败: {e}")}))
        }
        Err(e) => conn.reply(json!({"type": "error", "message": e.to_string()})),
    }
}
