//! Checks on the shape of a request, made before and besides the credential:
//! the `Host` it was sent to (DNS rebinding), the `Origin` of state-changing
//! requests and WebSocket upgrades (other web pages driving the API through a
//! technician's browser), the CSRF header of cookie-authenticated requests and
//! the JSON content type. The runtime sends no CORS headers at all, so a
//! browser never lets another origin read an answer.

use std::net::IpAddr;

use http::{HeaderMap, Method, StatusCode, header};

/// Why a request was refused; becomes a 401/403/415 with the JSON envelope.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Denied {
    pub status: StatusCode,
    pub message: String,
}

impl Denied {
    pub fn unauthorized(message: impl Into<String>) -> Denied {
        Denied {
            status: StatusCode::UNAUTHORIZED,
            message: message.into(),
        }
    }

    pub fn forbidden(message: impl Into<String>) -> Denied {
        Denied {
            status: StatusCode::FORBIDDEN,
            message: message.into(),
        }
    }
}

/// The header a cookie-authenticated state-changing request must carry.
pub const CSRF_HEADER: &str = "x-csrf-token";
/// Longest `Host`, `Origin` or `Authorization` value looked at.
const MAX_HEADER: usize = 1024;

/// Requests that change nothing: no Origin or CSRF check.
pub fn is_safe(method: &Method) -> bool {
    matches!(*method, Method::GET | Method::HEAD | Method::OPTIONS)
}

pub fn is_websocket(headers: &HeaderMap) -> bool {
    headers
        .get(header::UPGRADE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.eq_ignore_ascii_case("websocket"))
}

fn value(headers: &HeaderMap, name: impl header::AsHeaderName) -> Option<&str> {
    headers
        .get(name)
        .and_then(|v| v.to_str().ok())
        .filter(|v| v.len() <= MAX_HEADER)
}

/// Host names the runtime answers to. IP literals are always accepted: a page
/// can only make a browser send one when the page itself was loaded from that
/// address, so they cannot serve DNS rebinding. Names must be listed:
/// `localhost` (and `*.localhost`), the machine's host name (and `<name>.local`)
/// and the configured `allowed_hosts`.
#[derive(Debug, Clone)]
pub struct HostPolicy {
    names: Vec<String>,
}

impl HostPolicy {
    pub fn new(configured: &[String]) -> HostPolicy {
        let mut names: Vec<String> = configured
            .iter()
            .map(|h| split_port(&h.trim().to_ascii_lowercase()).0.to_string())
            .filter(|h| !h.is_empty())
            .collect();
        if let Some(h) = machine_hostname() {
            names.push(format!("{h}.local"));
            names.push(h);
        }
        HostPolicy { names }
    }

    pub fn allows(&self, host_header: &str) -> bool {
        let lower = host_header.trim().to_ascii_lowercase();
        let (host, _) = split_port(&lower);
        if host.is_empty() {
            return false;
        }
        let literal = match host.strip_prefix('[') {
            Some(inner) => inner.strip_suffix(']'),
            None => Some(host),
        };
        if literal.is_some_and(|ip| ip.parse::<IpAddr>().is_ok()) {
            return true;
        }
        host == "localhost" || host.ends_with(".localhost") || self.names.iter().any(|n| n == host)
    }

    /// The names besides IP literals, for the self-signed certificate.
    pub fn names(&self) -> &[String] {
        &self.names
    }
}

fn machine_hostname() -> Option<String> {
    let mut buf = [0u8; 256];
    // SAFETY: gethostname writes at most buf.len() bytes into our buffer.
    let r = unsafe { libc::gethostname(buf.as_mut_ptr().cast(), buf.len()) };
    if r != 0 {
        return None;
    }
    let end = buf.iter().position(|b| *b == 0).unwrap_or(buf.len());
    let name = std::str::from_utf8(&buf[..end]).ok()?.to_ascii_lowercase();
    (!name.is_empty()).then_some(name)
}

/// `host[:port]` or `[v6][:port]` → (host with brackets for v6, port text).
fn split_port(s: &str) -> (&str, &str) {
    if s.starts_with('[') {
        return match s.find(']') {
            Some(i) => (&s[..=i], s[i + 1..].trim_start_matches(':')),
            None => (s, ""),
        };
    }
    match s.rsplit_once(':') {
        // More than one ':' without brackets is a bare IPv6 address.
        Some((h, p)) if !h.contains(':') => (h, p),
        _ => (s, ""),
    }
}

/// Origins allowed besides the request's own (`scheme://host[:port]`).
#[derive(Debug, Clone, Default)]
pub struct OriginPolicy {
    allowed: Vec<String>,
}

impl OriginPolicy {
    pub fn new(configured: &[String]) -> OriginPolicy {
        OriginPolicy {
            allowed: configured
                .iter()
                .map(|o| o.trim().trim_end_matches('/').to_ascii_lowercase())
                .filter(|o| !o.is_empty())
                .collect(),
        }
    }

    /// Is a request with this `Origin`, sent to `host`, from our own pages (or
    /// an allowed origin)? `Origin: null` (sandboxed frames, file: pages) is not.
    pub fn allows(&self, origin: &str, host: &str) -> bool {
        let origin = origin.trim().trim_end_matches('/').to_ascii_lowercase();
        if self.allowed.contains(&origin) {
            return true;
        }
        let Some((scheme, authority)) = origin.split_once("://") else {
            return false;
        };
        let default_port = match scheme {
            "http" => "80",
            "https" => "443",
            _ => return false,
        };
        normalise(authority, default_port) == normalise(&host.to_ascii_lowercase(), default_port)
    }
}

fn normalise(authority: &str, default_port: &str) -> String {
    let (h, p) = split_port(authority.trim());
    if p.is_empty() || p == default_port {
        h.to_string()
    } else {
        format!("{h}:{p}")
    }
}

/// Host and Origin: both refuse with 403 and say which header was wrong.
pub fn check_origin(
    hosts: &HostPolicy,
    origins: &OriginPolicy,
    method: &Method,
    headers: &HeaderMap,
) -> Result<(), Denied> {
    let host = value(headers, header::HOST).unwrap_or("");
    if !hosts.allows(host) {
        return Err(Denied::forbidden(format!(
            "请求的 Host {host:?} 不是本机名称; 如需通过该名称访问, 请加入配置项 allowed_hosts"
        )));
    }
    if is_safe(method) && !is_websocket(headers) {
        return Ok(());
    }
    // Clients that are not browsers send no Origin; browsers always do on
    // cross-origin state-changing requests and on WebSocket upgrades.
    let Some(raw) = headers.get(header::ORIGIN) else {
        return Ok(());
    };
    match raw.to_str() {
        Ok(origin) if origins.allows(origin, host) => Ok(()),
        _ => Err(Denied::forbidden(format!(
            "跨源请求被拒绝 (Origin {:?}); 如需允许, 请加入配置项 allowed_origins",
            String::from_utf8_lossy(raw.as_bytes())
        ))),
    }
}

/// A JSON body must be declared as JSON: a cross-origin form or `text/plain`
/// POST (which a browser sends without asking first) is refused. A request
/// without a body needs no content type.
pub fn check_json(headers: &HeaderMap) -> Result<(), Denied> {
    let ct = headers.get(header::CONTENT_TYPE).map(|v| v.as_bytes());
    let empty = headers
        .get(header::CONTENT_LENGTH)
        .is_none_or(|v| v.as_bytes() == b"0")
        && !headers.contains_key(header::TRANSFER_ENCODING);
    let json = ct.is_some_and(|ct| {
        let mime = ct.split(|b| *b == b';').next().unwrap_or_default();
        let mime = String::from_utf8_lossy(mime).trim().to_ascii_lowercase();
        mime == "application/json" || (mime.starts_with("application/") && mime.ends_with("+json"))
    });
    if json || (ct.is_none() && empty) {
        Ok(())
    } else {
        Err(Denied {
            status: StatusCode::UNSUPPORTED_MEDIA_TYPE,
            message: "请求体必须是 JSON (Content-Type: application/json)".into(),
        })
    }
}

/// What the client presented as a credential, unchecked.
#[derive(Debug, PartialEq, Eq)]
pub enum Presented<'a> {
    Bearer(&'a str),
    Cookie(&'a str),
    Nothing,
}

pub const SESSION_COOKIE: &str = "vwed_session";

/// The credential in the request. A malformed `Authorization` header is an
/// error, not "no credential": the client meant to authenticate.
pub fn presented(headers: &HeaderMap) -> Result<Presented<'_>, Denied> {
    if let Some(raw) = headers.get(header::AUTHORIZATION) {
        let bad = || Denied::unauthorized("Authorization 请求头格式错误, 应为 \"Bearer <令牌>\"");
        let v = raw.to_str().map_err(|_| bad())?;
        if v.len() > MAX_HEADER {
            return Err(bad());
        }
        let (scheme, rest) = v.trim().split_once(' ').ok_or_else(bad)?;
        if !scheme.eq_ignore_ascii_case("bearer") || rest.trim().is_empty() {
            return Err(bad());
        }
        return Ok(Presented::Bearer(rest.trim()));
    }
    for v in headers.get_all(header::COOKIE) {
        let Ok(v) = v.to_str() else { continue };
        for pair in v.split(';') {
            if let Some((k, val)) = pair.trim().split_once('=')
                && k == SESSION_COOKIE
            {
                return Ok(Presented::Cookie(val.trim()));
            }
        }
    }
    Ok(Presented::Nothing)
}

/// `Set-Cookie` for a new session.
pub fn session_cookie(id: &str, max_age_s: u64, secure: bool) -> String {
    format!(
        "{SESSION_COOKIE}={id}; Path=/; HttpOnly; SameSite=Strict; Max-Age={max_age_s}{}",
        if secure { "; Secure" } else { "" }
    )
}

/// `Set-Cookie` that removes the session cookie.
pub fn clear_cookie(secure: bool) -> String {
    session_cookie("", 0, secure)
}

pub fn csrf_header(headers: &HeaderMap) -> Option<&str> {
    value(headers, CSRF_HEADER)
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::HeaderValue;

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.append(*k, HeaderValue::from_str(v).expect("header value"));
        }
        h
    }

    #[test]
    fn dns_rebinding_host_is_refused_ip_literals_and_own_names_pass() {
        let p = HostPolicy::new(&["edge-07.plant.example".into()]);
        for ok in [
            "127.0.0.1:8000",
            "localhost:8000",
            "LOCALHOST",
            "[::1]:8000",
            "192.168.1.50:8000",
            "edge-07.plant.example:8000",
            "edge-07.plant.example",
        ] {
            assert!(p.allows(ok), "{ok}");
        }
        for bad in [
            "evil.example",
            "evil.example:8000",
            "",
            "localhost.evil.example",
            "[::1",
        ] {
            assert!(!p.allows(bad), "{bad}");
        }
        if let Some(h) = machine_hostname() {
            assert!(p.allows(&format!("{h}:8000")));
        }
    }

    #[test]
    fn origin_must_match_host_or_be_listed() {
        let o = OriginPolicy::new(&["https://ui.example/".into()]);
        assert!(o.allows("http://127.0.0.1:8000", "127.0.0.1:8000"));
        assert!(o.allows("http://localhost", "localhost:80"));
        assert!(o.allows("https://edge", "edge:443"));
        assert!(o.allows("https://ui.example", "10.0.0.1:8000"));
        assert!(!o.allows("http://evil.example", "127.0.0.1:8000"));
        assert!(!o.allows("http://127.0.0.1:9000", "127.0.0.1:8000"));
        assert!(!o.allows("null", "127.0.0.1:8000"));
        assert!(!o.allows("file://", "127.0.0.1:8000"));
    }

    #[test]
    fn origin_checked_on_posts_and_websockets_only() {
        let hosts = HostPolicy::new(&[]);
        let origins = OriginPolicy::default();
        let cross = headers(&[
            ("host", "127.0.0.1:8000"),
            ("origin", "http://evil.example"),
        ]);
        assert!(check_origin(&hosts, &origins, &Method::GET, &cross).is_ok());
        let e = check_origin(&hosts, &origins, &Method::POST, &cross).expect_err("cross POST");
        assert_eq!(e.status, StatusCode::FORBIDDEN);
        let ws = headers(&[
            ("host", "127.0.0.1:8000"),
            ("origin", "http://evil.example"),
            ("upgrade", "websocket"),
        ]);
        assert!(check_origin(&hosts, &origins, &Method::GET, &ws).is_err());
        let curl = headers(&[("host", "127.0.0.1:8000")]);
        assert!(check_origin(&hosts, &origins, &Method::DELETE, &curl).is_ok());
        let rebinding = headers(&[("host", "evil.example")]);
        assert!(check_origin(&hosts, &origins, &Method::GET, &rebinding).is_err());
    }

    #[test]
    fn json_content_type_required_when_there_is_a_body() {
        let plain = headers(&[("content-type", "text/plain"), ("content-length", "10")]);
        assert_eq!(
            check_json(&plain).expect_err("text/plain").status,
            StatusCode::UNSUPPORTED_MEDIA_TYPE
        );
        let form = headers(&[("content-type", "application/x-www-form-urlencoded")]);
        assert!(check_json(&form).is_err());
        let none_with_body = headers(&[("content-length", "2")]);
        assert!(check_json(&none_with_body).is_err());
        assert!(
            check_json(&headers(&[(
                "content-type",
                "application/json; charset=utf-8"
            )]))
            .is_ok()
        );
        assert!(
            check_json(&headers(&[(
                "content-type",
                "application/merge-patch+json"
            )]))
            .is_ok()
        );
        assert!(check_json(&headers(&[])).is_ok(), "no body, no type");
    }

    #[test]
    fn credentials_are_found_and_malformed_ones_refused() {
        assert_eq!(
            presented(&headers(&[("authorization", "Bearer vwed_abc")])),
            Ok(Presented::Bearer("vwed_abc"))
        );
        assert_eq!(
            presented(&headers(&[("cookie", "a=1; vwed_session=xyz; b=2")])),
            Ok(Presented::Cookie("xyz"))
        );
        assert_eq!(
            presented(&headers(&[("cookie", "a=1")])),
            Ok(Presented::Nothing)
        );
        for bad in ["Basic dXNlcjpwdw==", "Bearer", "Bearer ", "vwed_abc"] {
            let e = presented(&headers(&[("authorization", bad)])).expect_err(bad);
            assert_eq!(e.status, StatusCode::UNAUTHORIZED);
        }
        let huge = format!("Bearer {}", "a".repeat(5000));
        assert!(presented(&headers(&[("authorization", &huge)])).is_err());
    }

    #[test]
    fn cookie_is_http_only_strict_and_secure_only_over_tls() {
        let c = session_cookie("abc", 60, false);
        assert!(c.contains("HttpOnly") && c.contains("SameSite=Strict") && !c.contains("Secure"));
        assert!(session_cookie("abc", 60, true).ends_with("; Secure"));
        assert!(clear_cookie(false).contains("Max-Age=0"));
    }
}
