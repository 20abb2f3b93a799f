//! The technicians' web UI, embedded in the binary (`ui/dist`, see
//! `build_ui.rs`): `/` and every page under `/ui/` answer with index.html
//! (`no-cache`: it names the current bundles), `/assets/*` with the hashed,
//! gzipped bundles (cached for a year: a new build has new names). All public:
//! the page holds nothing; the API it calls is what is protected.

use warp::Filter;
use warp::http::{HeaderMap, HeaderValue, StatusCode, header};

use super::reply::{Resp, fail};
use super::route::{self, Access, Rest, Route};

pub struct UiFile {
    pub path: &'static str,
    pub bytes: &'static [u8],
    pub content_type: &'static str,
    pub etag: &'static str,
}

pub static FILES: &[UiFile] = include!(concat!(env!("OUT_DIR"), "/ui_assets.rs"));

/// What the page may load and where it may connect: only this server.
const CSP: &str = "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; \
                   img-src 'self' data:; connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; \
                   form-action 'self'";

pub fn routes() -> Vec<Route> {
    vec![
        route::get("/", Access::Public).to(|at| at.and(warp::header::headers_cloned()).map(home)),
        route::get("/ui/{*page}", Access::Public)
            .to_rest(|at| at.and(warp::header::headers_cloned()).map(page)),
        route::get("/assets/{*file}", Access::Public)
            .to_rest(|at| at.and(warp::header::headers_cloned()).map(asset)),
    ]
}

#[cfg(test)]
#[derive(utoipa::OpenApi)]
#[openapi(paths(home, page, asset))]
pub struct Doc;

/// The web UI (index.html, `Cache-Control: no-cache`).
#[utoipa::path(
    get,
    path = "/",
    tag = "ui",
    responses((status = 200, description = "HTML", content_type = "text/html", body = String))
)]
fn home(headers: HeaderMap) -> Resp {
    index(headers)
}

/// A page of the web UI (the same index.html; the page routes in the browser).
#[utoipa::path(
    get,
    path = "/ui/{page}",
    tag = "ui",
    params(("page" = String, Path, description = "files, editor/<file_id>, run, logs, registry, io, system, login")),
    responses((status = 200, description = "HTML", content_type = "text/html", body = String))
)]
fn page(_: Rest, headers: HeaderMap) -> Resp {
    index(headers)
}

fn find(path: &str) -> Option<&'static UiFile> {
    FILES.iter().find(|f| f.path == path)
}

fn not_modified(headers: &HeaderMap, etag: &str) -> bool {
    headers
        .get(header::IF_NONE_MATCH)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.split(',').any(|t| t.trim() == etag || t.trim() == "*"))
}

fn respond(f: &UiFile, headers: &HeaderMap, cache: &'static str, gzip: bool) -> Resp {
    let mut r = if not_modified(headers, f.etag) {
        let mut r = Resp::new(Vec::new().into());
        *r.status_mut() = StatusCode::NOT_MODIFIED;
        r
    } else {
        Resp::new(f.bytes.into())
    };
    let h = r.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static(f.content_type),
    );
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static(cache));
    h.insert(header::ETAG, HeaderValue::from_static(f.etag));
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    if gzip {
        h.insert(header::CONTENT_ENCODING, HeaderValue::from_static("gzip"));
        h.insert(header::VARY, HeaderValue::from_static("Accept-Encoding"));
    }
    r
}

fn index(headers: HeaderMap) -> Resp {
    let Some(f) = find("index.html") else {
        return fail(StatusCode::NOT_FOUND, "本构建不含网页界面 (ui/dist 为空)");
    };
    let mut r = respond(f, &headers, "no-cache", false);
    let h = r.headers_mut();
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(CSP),
    );
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    r
}

fn accepts_gzip(headers: &HeaderMap) -> bool {
    headers
        .get_all(header::ACCEPT_ENCODING)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|e| {
            let mut parts = e.split(';');
            let name = parts.next().unwrap_or("").trim();
            let refused = parts.any(|p| matches!(p.trim(), "q=0" | "q=0.0" | "q=0.00" | "q=0.000"));
            (name.eq_ignore_ascii_case("gzip") || name == "*") && !refused
        })
}

/// A bundle of the web UI, gzipped, cached for a year (its name holds its hash).
#[utoipa::path(
    get,
    path = "/assets/{file}",
    tag = "ui",
    params(("file" = String, Path, description = "main-<hash>.js, chunk-<hash>.js, style-<hash>.css")),
    responses(
        (status = 200, description = "the bundle, Content-Encoding: gzip", body = String),
        (status = 404, description = "没有此网页资源", body = super::reply::Failure),
        (status = 406, description = "客户端不接受 gzip", body = super::reply::Failure),
    )
)]
fn asset(rest: Rest, headers: HeaderMap) -> Resp {
    let name = rest.as_str();
    let Some(f) = find(&format!("assets/{name}.gz")) else {
        return fail(StatusCode::NOT_FOUND, format!("没有此网页资源: {name}"));
    };
    if !accepts_gzip(&headers) {
        return fail(
            StatusCode::NOT_ACCEPTABLE,
            "网页资源只以 gzip 压缩提供 (请求头 Accept-Encoding: gzip)",
        );
    }
    respond(f, &headers, "public, max-age=31536000, immutable", true)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn h(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
        let mut m = HeaderMap::new();
        for (k, v) in pairs {
            m.append(*k, HeaderValue::from_static(v));
        }
        m
    }

    #[test]
    fn gzip_is_accepted_unless_refused() {
        assert!(accepts_gzip(&h(&[(
            "accept-encoding",
            "gzip, deflate, br"
        )])));
        assert!(accepts_gzip(&h(&[(
            "accept-encoding",
            "br;q=1, GZIP;q=0.5"
        )])));
        assert!(accepts_gzip(&h(&[("accept-encoding", "*")])));
        assert!(!accepts_gzip(&h(&[("accept-encoding", "gzip;q=0")])));
        assert!(!accepts_gzip(&h(&[("accept-encoding", "br")])));
        assert!(!accepts_gzip(&h(&[])));
    }

    #[test]
    fn the_build_embeds_an_index_and_its_bundles() {
        let index = find("index.html").expect("ui/dist/index.html is embedded");
        let html = std::str::from_utf8(index.bytes).expect("utf-8");
        for src in html.split('"').filter(|s| s.starts_with("/assets/")) {
            let name = format!("{}.gz", src.trim_start_matches('/'));
            assert!(
                find(&name).is_some(),
                "{src} is named by index.html but not embedded"
            );
        }
    }
}
