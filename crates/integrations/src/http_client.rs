//! `VWED.http`: outgoing HTTP performed by the supervisor for scripts.
//!
//! A script may only reach hosts the operator listed in `http_allow_hosts`; the
//! default list is empty. Redirects are not followed (a redirect could leave the
//! allowed hosts), every request has a bounded timeout and the response body is
//! read only up to `http_max_response_bytes`. `https://` goes through the
//! runtime's rustls stack, trusting the system's roots and `tls_ca_file`.

use std::sync::{Arc, OnceLock};
use std::time::Duration;

use bytes::Bytes;
use http_body::Body as _;
use http_body_util::{BodyExt, Full};
use hyper::client::conn::http1;
use hyper::header::{self, HeaderMap};
use hyper::{Method, Request};
use hyper_util::rt::TokioIo;
use rustls::pki_types::ServerName;
use serde_json::{Map, Value, json};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;
use url::{Position, Url};
use vwed_ipc::{HttpRequest, JsonText};

use crate::Setup;

#[derive(Debug, thiserror::Error)]
pub enum HttpError {
    #[error("URL 无效: {0}")]
    BadUrl(String),
    #[error("不支持的协议 {0}: 仅支持 http:// 和 https://")]
    Scheme(String),
    #[error("TLS 配置错误: {0}")]
    Tls(String),
    #[error(
        "主机 {host} 不在允许列表中: 请在配置项 http_allow_hosts (环境变量 VWED_HTTP_ALLOW_HOSTS) 中加入 \"{entry}\""
    )]
    NotAllowed { host: String, entry: String },
    #[error("不支持的 HTTP 方法 {0}")]
    BadMethod(String),
    #[error("参数错误: {0}")]
    BadArgs(String),
    #[error("HTTP 请求超时 ({0} ms)")]
    Timeout(u64),
    #[error("响应过大: 超过 {0} 字节 (配置项 http_max_response_bytes)")]
    TooLarge(u64),
    #[error("HTTP 请求失败: {0}")]
    Transport(String),
}

/// Connecting (TCP and, for `https://`, the TLS handshake) gives up after this,
/// within the request's own timeout.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// The client TLS configuration of `https://` requests, made on first use: a
/// `tls_ca_file` that cannot be read fails that request (and is tried again on
/// the next); plain `http://` never needs it.
fn tls_config(cfg: &Setup) -> Result<Arc<rustls::ClientConfig>, HttpError> {
    static CONFIG: OnceLock<Arc<rustls::ClientConfig>> = OnceLock::new();
    if let Some(c) = CONFIG.get() {
        return Ok(c.clone());
    }
    let c = vwed_tls::http_client_config(&cfg.tls).map_err(|e| HttpError::Tls(e.to_string()))?;
    Ok(CONFIG.get_or_init(|| Arc::new(c)).clone())
}

/// The connection a request goes over: TCP, or TLS over TCP. One type for both
/// keeps a single copy of hyper's client code in the binary.
trait Io: AsyncRead + AsyncWrite + Send + Unpin {}
impl<T: AsyncRead + AsyncWrite + Send + Unpin> Io for T {}

/// Host (lowercase, IPv6 without brackets) and optional port of an allow-list entry.
fn parse_entry(entry: &str) -> (String, Option<u16>) {
    let e = entry.trim().to_ascii_lowercase();
    if let Some(rest) = e.strip_prefix('[') {
        if let Some((host, tail)) = rest.split_once(']') {
            let port = tail.strip_prefix(':').and_then(|p| p.parse().ok());
            return (host.to_string(), port);
        }
        return (rest.to_string(), None);
    }
    match e.split_once(':') {
        Some((host, port)) if !port.contains(':') => match port.parse() {
            Ok(p) => (host.to_string(), Some(p)),
            Err(_) => (e.clone(), None),
        },
        _ => (e, None),
    }
}

/// Is `url` allowed by `allow`? Entries are `host` (any port) or `host:port`.
pub fn allowed(allow: &[String], url: &Url) -> Result<(), HttpError> {
    let host = url
        .host_str()
        .ok_or_else(|| HttpError::BadUrl(url.to_string()))?
        .trim_start_matches('[')
        .trim_end_matches(']')
        .to_ascii_lowercase();
    let port = url.port_or_known_default();
    let ok = allow.iter().any(|entry| {
        let (h, p) = parse_entry(entry);
        h == host && p.is_none_or(|p| Some(p) == port)
    });
    if ok {
        return Ok(());
    }
    let shown = if host.contains(':') {
        format!("[{host}]")
    } else {
        host.clone()
    };
    Err(HttpError::NotAllowed {
        entry: port.map_or_else(|| shown.clone(), |p| format!("{shown}:{p}")),
        host: shown,
    })
}

pub fn parse_url(raw: &str) -> Result<Url, HttpError> {
    let url = Url::parse(raw).map_err(|e| HttpError::BadUrl(format!("{raw}: {e}")))?;
    match url.scheme() {
        "http" | "https" => Ok(url),
        other => Err(HttpError::Scheme(other.to_string())),
    }
}

/// A request, already checked.
pub struct Outgoing {
    pub method: Method,
    pub url: Url,
    pub headers: Vec<(String, String)>,
    pub body: Option<(Vec<u8>, &'static str)>,
    pub timeout: Duration,
    pub max_bytes: u64,
}

pub struct Fetched {
    pub status: u16,
    pub headers: Map<String, Value>,
    pub body: Vec<u8>,
}

impl Fetched {
    pub fn json(&self) -> Option<Value> {
        serde_json::from_slice(&self.body).ok()
    }

    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
}

/// Sends the request and reads at most `max_bytes` of the answer. The whole
/// exchange, connecting included, is bounded by the request's timeout.
pub async fn send(cfg: &Setup, req: Outgoing) -> Result<Fetched, HttpError> {
    let timeout_ms = req.timeout.as_millis() as u64;
    tokio::time::timeout(req.timeout, exchange(cfg, req, timeout_ms))
        .await
        .unwrap_or(Err(HttpError::Timeout(timeout_ms)))
}

/// TCP to the URL's host, then TLS for `https://` (checked against the system
/// roots and `tls_ca_file`, HTTP/1.1 by ALPN).
async fn connect(cfg: &Setup, url: &Url) -> Result<Box<dyn Io>, HttpError> {
    let host = url
        .host_str()
        .ok_or_else(|| HttpError::BadUrl(url.to_string()))?;
    let port = url.port_or_known_default().unwrap_or(80);
    let ip_or_name = host.trim_start_matches('[').trim_end_matches(']');
    let failed = |e: &dyn std::fmt::Display| HttpError::Transport(format!("{url}: {e}"));
    let stream = TcpStream::connect((ip_or_name, port))
        .await
        .map_err(|e| failed(&e))?;
    let _ = stream.set_nodelay(true);
    if url.scheme() != "https" {
        return Ok(Box::new(stream));
    }
    let name = ServerName::try_from(ip_or_name.to_string())
        .map_err(|e| HttpError::BadUrl(format!("{url}: {e}")))?;
    let tls = TlsConnector::from(tls_config(cfg)?)
        .connect(name, stream)
        .await
        .map_err(|e| failed(&e))?;
    Ok(Box::new(tls))
}

/// One request on a connection of its own (HTTP/1.1 over hyper, which the
/// runtime's server already carries; a pooling client with HTTP/2 would add
/// about 0.5 MB to the controller's binary for calls that are few and local).
async fn exchange(cfg: &Setup, req: Outgoing, timeout_ms: u64) -> Result<Fetched, HttpError> {
    let url = req.url;
    let failed = |e: &dyn std::fmt::Display| HttpError::Transport(format!("{url}: {e}"));
    let io = tokio::time::timeout(CONNECT_TIMEOUT, connect(cfg, &url))
        .await
        .map_err(|_| HttpError::Timeout(timeout_ms))??;
    let (mut sender, conn) = http1::handshake(TokioIo::new(io))
        .await
        .map_err(|e| failed(&e))?;
    // Drives the connection; it ends when the answer is read or dropped.
    tokio::spawn(async move {
        let _ = conn.await;
    });
    let request = build(&url, req.method, &req.headers, req.body)?;
    let resp = sender.send_request(request).await.map_err(|e| failed(&e))?;
    if resp
        .body()
        .size_hint()
        .exact()
        .is_some_and(|n| n > req.max_bytes)
    {
        return Err(HttpError::TooLarge(req.max_bytes));
    }
    let status = resp.status().as_u16();
    let headers = header_map(resp.headers());
    let mut body = Vec::new();
    let mut incoming = resp.into_body();
    while let Some(frame) = incoming.frame().await {
        let Ok(chunk) = frame.map_err(|e| failed(&e))?.into_data() else {
            continue; // trailers
        };
        if body.len() as u64 + chunk.len() as u64 > req.max_bytes {
            return Err(HttpError::TooLarge(req.max_bytes));
        }
        body.extend_from_slice(&chunk);
    }
    Ok(Fetched {
        status,
        headers,
        body,
    })
}

/// The request line and headers: origin-form target, `Host`, the script's
/// headers, `Accept: */*` and the body's content type unless the script set them.
fn build(
    url: &Url,
    method: Method,
    headers: &[(String, String)],
    body: Option<(Vec<u8>, &'static str)>,
) -> Result<Request<Full<Bytes>>, HttpError> {
    let has = |name: &str| headers.iter().any(|(k, _)| k.eq_ignore_ascii_case(name));
    let mut b = Request::builder()
        .method(method)
        .uri(&url[Position::BeforePath..Position::AfterQuery])
        .header(
            header::HOST,
            &url[Position::BeforeHost..Position::AfterPort],
        );
    for (k, v) in headers {
        b = b.header(k.as_str(), v.as_str());
    }
    if !has("accept") {
        b = b.header(header::ACCEPT, "*/*");
    }
    let body = match body {
        Some((bytes, ctype)) => {
            if !has("content-type") {
                b = b.header(header::CONTENT_TYPE, ctype);
            }
            Bytes::from(bytes)
        }
        None => Bytes::new(),
    };
    b.body(Full::new(body))
        .map_err(|e| HttpError::BadArgs(format!("请求头无效: {e}")))
}

/// Response headers as JSON; repeated ones joined with ", ".
fn header_map(h: &HeaderMap) -> Map<String, Value> {
    let mut headers = Map::new();
    for (k, v) in h {
        let v = String::from_utf8_lossy(v.as_bytes()).into_owned();
        match headers.get_mut(k.as_str()) {
            Some(Value::String(prev)) => {
                prev.push_str(", ");
                prev.push_str(&v);
            }
            _ => {
                headers.insert(k.as_str().to_string(), Value::String(v));
            }
        }
    }
    headers
}

/// A dynamic argument of `VWED.http.request` as a JSON value.
fn arg(t: Option<&JsonText>) -> Result<Option<Value>, HttpError> {
    t.map(|t| serde_json::from_str::<Value>(t.as_str()))
        .transpose()
        .map(|v| v.filter(|v| !v.is_null()))
        .map_err(|e| HttpError::BadArgs(e.to_string()))
}

fn plain(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

fn form_encode(pairs: &Map<String, Value>) -> String {
    // Url's query serializer: the form-urlencoded rules browsers use.
    let mut u = Url::parse("http://form.invalid/").unwrap_or_else(|_| unreachable!());
    {
        let mut q = u.query_pairs_mut();
        for (k, v) in pairs {
            q.append_pair(k, &plain(v));
        }
    }
    u.query().unwrap_or("").to_string()
}

fn timeout_of(cfg: &Setup, secs: Option<f64>) -> Result<Duration, HttpError> {
    let ms = match secs {
        None => cfg.settings.http_timeout_ms,
        Some(s) if s.is_finite() && s > 0.0 => (s * 1000.0).ceil() as u64,
        Some(s) => {
            return Err(HttpError::BadArgs(format!(
                "timeout 必须是正数秒, 得到 {s}"
            )));
        }
    };
    Ok(Duration::from_millis(
        ms.clamp(1, cfg.settings.http_max_timeout_ms.max(1)),
    ))
}

/// Checks a script's request against the configuration and builds it.
pub fn prepare(cfg: &Setup, a: HttpRequest) -> Result<Outgoing, HttpError> {
    let method = match a.method.to_ascii_uppercase().as_str() {
        m @ ("GET" | "POST" | "PUT" | "DELETE" | "PATCH" | "HEAD") => {
            Method::from_bytes(m.as_bytes()).map_err(|_| HttpError::BadMethod(a.method.clone()))?
        }
        _ => return Err(HttpError::BadMethod(a.method)),
    };
    let mut url = parse_url(&a.url)?;
    allowed(&cfg.settings.http_allow_hosts, &url)?;
    match arg(a.params.as_ref())? {
        None => {}
        Some(Value::Object(params)) => {
            let mut q = url.query_pairs_mut();
            for (k, v) in &params {
                q.append_pair(k, &plain(v));
            }
        }
        Some(_) => return Err(HttpError::BadArgs("params= 必须是字典".into())),
    }
    let headers = a.headers.unwrap_or_default().into_iter().collect();
    let body = match (arg(a.json.as_ref())?, arg(a.data.as_ref())?) {
        (Some(_), Some(_)) => {
            return Err(HttpError::BadArgs("json= 和 data= 只能给一个".into()));
        }
        (Some(j), None) => Some((j.to_string().into_bytes(), "application/json")),
        (None, Some(Value::Object(m))) => Some((
            form_encode(&m).into_bytes(),
            "application/x-www-form-urlencoded",
        )),
        (None, Some(Value::String(s))) => Some((s.into_bytes(), "text/plain; charset=utf-8")),
        (None, None) => None,
        (None, Some(_)) => {
            return Err(HttpError::BadArgs("data= 必须是字符串或字典".into()));
        }
    };
    Ok(Outgoing {
        method,
        url,
        headers,
        body,
        timeout: timeout_of(cfg, a.timeout)?,
        max_bytes: cfg.settings.http_max_response_bytes,
    })
}

/// The answer a script sees: `{status, headers, json, text, ok}`.
pub fn to_script(f: &Fetched) -> Value {
    json!({
        "status": f.status,
        "headers": f.headers,
        "json": f.json(),
        "text": f.text(),
        "ok": (200..300).contains(&f.status),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn url(s: &str) -> Url {
        Url::parse(s).expect("url")
    }

    #[test]
    fn allow_list_matching() {
        let allow = vec![
            "api.example.com".to_string(),
            "127.0.0.1:8080".to_string(),
            "[::1]:9000".to_string(),
        ];
        assert!(allowed(&allow, &url("http://API.example.com/x")).is_ok());
        assert!(allowed(&allow, &url("http://api.example.com:81/x")).is_ok());
        assert!(allowed(&allow, &url("http://127.0.0.1:8080/")).is_ok());
        assert!(allowed(&allow, &url("http://[::1]:9000/")).is_ok());
        let e = allowed(&allow, &url("http://127.0.0.1:8081/")).expect_err("port");
        assert!(e.to_string().contains("127.0.0.1:8081"), "{e}");
        assert!(e.to_string().contains("http_allow_hosts"), "{e}");
        assert!(allowed(&allow, &url("http://evil.example.com/")).is_err());
        assert!(allowed(&[], &url("http://api.example.com/")).is_err());
    }

    #[test]
    fn only_http_and_https_urls() {
        assert!(parse_url("https://x/").is_ok());
        assert!(parse_url("http://x/").is_ok());
        let e = parse_url("ftp://x/").expect_err("ftp");
        assert!(e.to_string().contains("http:// 和 https://"), "{e}");
        assert!(matches!(
            parse_url("file:///etc/passwd"),
            Err(HttpError::Scheme(_))
        ));
        assert!(matches!(parse_url("not a url"), Err(HttpError::BadUrl(_))));
    }

    #[test]
    fn prepare_builds_query_body_and_timeout() {
        let cfg = Setup {
            settings: crate::IntegrationSettings {
                http_allow_hosts: vec!["h".into()],
                ..Default::default()
            },
            ..Setup::default()
        };
        let a: HttpRequest = serde_json::from_value(json!({
            "method": "post", "url": "http://h/p?x=1",
            "params": {"q": "a b", "n": 2}, "data": {"k": "v&w"}, "timeout": 1e9
        }))
        .expect("args");
        let o = prepare(&cfg, a).expect("prepare");
        assert_eq!(o.url.as_str(), "http://h/p?x=1&n=2&q=a+b");
        let (body, ctype) = o.body.expect("body");
        assert_eq!(body, b"k=v%26w");
        assert_eq!(ctype, "application/x-www-form-urlencoded");
        assert_eq!(
            o.timeout,
            Duration::from_millis(cfg.settings.http_max_timeout_ms)
        );
        let bad: HttpRequest =
            serde_json::from_value(json!({"method": "TRACE", "url": "http://h/"})).expect("args");
        assert!(matches!(prepare(&cfg, bad), Err(HttpError::BadMethod(_))));
    }
}
