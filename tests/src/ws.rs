//! A blocking client for the live-log WebSocket.

use std::net::TcpStream;
use std::time::{Duration, Instant};

use serde_json::Value;
use tungstenite::protocol::frame::coding::CloseCode;
use tungstenite::stream::MaybeTlsStream;
use tungstenite::{Message, WebSocket};

use crate::Runtime;

pub type Ws = WebSocket<MaybeTlsStream<TcpStream>>;

/// Connects to `/api/script/ws/script-logs{query}` with the runtime's admin
/// token; reads time out every 200 ms so that waits can give up.
pub fn connect(rt: &Runtime, query: &str) -> Ws {
    connect_with(rt, query, &[("authorization", &rt.bearer())]).expect("websocket connect")
}

/// As [`connect`], with exactly these extra headers (a credential or none).
pub fn connect_with(
    rt: &Runtime,
    query: &str,
    headers: &[(&str, &str)],
) -> Result<Ws, tungstenite::Error> {
    use tungstenite::client::IntoClientRequest;
    let url = format!(
        "ws://127.0.0.1:{}/api/script/ws/script-logs{query}",
        rt.port
    );
    let mut req = url.into_client_request()?;
    for (k, v) in headers {
        let name = tungstenite::http::HeaderName::from_bytes(k.as_bytes()).expect("header name");
        let value = tungstenite::http::HeaderValue::from_str(v).expect("header value");
        req.headers_mut().insert(name, value);
    }
    let (ws, _) = tungstenite::connect(req)?;
    if let MaybeTlsStream::Plain(s) = ws.get_ref() {
        s.set_read_timeout(Some(Duration::from_millis(200)))
            .expect("read timeout");
    }
    Ok(ws)
}

/// What reading the socket gave before a deadline.
enum Read {
    Text(String),
    Closed(Option<CloseCode>),
    Nothing,
}

fn read_until(ws: &mut Ws, deadline: Instant) -> Read {
    while Instant::now() < deadline {
        match ws.read() {
            Ok(Message::Text(t)) => return Read::Text(t.as_str().to_string()),
            Ok(Message::Close(frame)) => return Read::Closed(frame.map(|f| f.code)),
            Ok(_) => {}
            Err(tungstenite::Error::Io(e))
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) => {}
            Err(e) => panic!("websocket read: {e}"),
        }
    }
    Read::Nothing
}

/// Next text message as JSON, or `None` once `deadline` passes or the socket closes.
pub fn next(ws: &mut Ws, deadline: Instant) -> Option<Value> {
    match read_until(ws, deadline) {
        Read::Text(t) => serde_json::from_str(&t).ok(),
        _ => None,
    }
}

/// Reads (dropping messages) until the server closes the socket: its close
/// code, or None if it was still open after 20 s.
pub fn close_code(ws: &mut Ws) -> Option<CloseCode> {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        match read_until(ws, deadline) {
            Read::Text(_) => {}
            Read::Closed(code) => return Some(code.unwrap_or(CloseCode::Status)),
            Read::Nothing => return None,
        }
    }
}

/// Reads until a message matches `pred`; panics with what was seen otherwise.
#[track_caller]
pub fn wait(ws: &mut Ws, what: &str, pred: impl Fn(&Value) -> bool) -> Value {
    let deadline = Instant::now() + Duration::from_secs(20);
    let mut seen = Vec::new();
    while let Some(v) = next(ws, deadline) {
        if pred(&v) {
            return v;
        }
        if seen.len() < 50 {
            seen.push(v);
        }
    }
    panic!("no {what} on the websocket; saw: {seen:#?}");
}

pub fn send(ws: &mut Ws, v: Value) {
    ws.send(Message::text(v.to_string()))
        .expect("websocket send");
}
