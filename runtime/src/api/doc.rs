//! The API described: `GET /api/openapi.json` (OpenAPI 3.1, made from the
//! modules' `#[utoipa::path]` handlers and their request and query types, plus
//! each endpoint's role from the route table) and `GET /api/docs`, a page that
//! renders that document in the browser without anything from outside.
//!
//! The binary serves `openapi.json` as the test
//! `api::tests::the_served_document_is_the_generated_one` wrote it from the code,
//! and fails on when the code changed: making the document at run time would
//! put utoipa's builders into the binary, about 0.75 MB on x86_64, which the
//! controller's 15 MB budget cannot spare. Regenerate it with
//! `VWED_WRITE_OPENAPI=1 cargo test -p vwed-edge --lib the_served_document`.
//! The binary holds it gzip-compressed (build.rs): sent as it is to clients that
//! accept gzip, inflated for the others.

#[cfg(test)]
pub use generate::{SCRIPT_METHODS, document, merged};
use warp::Filter;
use warp::http::{HeaderValue, StatusCode, header};

use super::reply::Resp;
use super::route::{self, Route};
use vwed_auth::Role;

const PAGE: &str = include_str!("docs_page.html");
/// `openapi.json` as a gzip member, made by build.rs.
const PACKED: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/openapi.json.gz"));
#[cfg(test)]
pub const DOCUMENT: &str = include_str!("openapi.json");

pub fn routes() -> Vec<Route> {
    vec![
        route::get("/api/openapi.json", Role::Viewer).to(|at| {
            at.and(warp::header::optional::<String>("accept-encoding"))
                .then(openapi_json)
        }),
        route::get("/api/docs", Role::Viewer).to(|at| at.then(docs_page)),
    ]
}

/// This document.
#[utoipa::path(
    get,
    path = "/api/openapi.json",
    tag = "system",
    responses((status = 200, description = "OpenAPI 3.1", content_type = "application/json", body = Object))
)]
async fn openapi_json(accept_encoding: Option<String>) -> Resp {
    let gzip_ok = accept_encoding.is_some_and(|a| accepts_gzip(&a));
    let mut r = if gzip_ok {
        let mut r = Resp::new(PACKED.into());
        r.headers_mut()
            .insert(header::CONTENT_ENCODING, HeaderValue::from_static("gzip"));
        r
    } else {
        Resp::new(unpacked().into())
    };
    let h = r.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json; charset=utf-8"),
    );
    h.insert(header::VARY, HeaderValue::from_static("accept-encoding"));
    r
}

/// Does an `Accept-Encoding` value allow gzip? (`gzip` or `*`, unless with `q=0`.)
fn accepts_gzip(value: &str) -> bool {
    value.split(',').any(|item| {
        let mut parts = item.split(';').map(str::trim);
        let coding = parts.next().unwrap_or("");
        let refused = parts.any(|p| {
            p.strip_prefix("q=")
                .and_then(|q| q.parse::<f32>().ok())
                .is_some_and(|q| q == 0.0)
        });
        (coding.eq_ignore_ascii_case("gzip") || coding == "*") && !refused
    })
}

/// The document inflated from [`PACKED`]: skip the 10-byte gzip header (build.rs
/// writes no optional fields), inflate up to the 8-byte trailer.
fn unpacked() -> Vec<u8> {
    let deflated = PACKED
        .get(10..PACKED.len().saturating_sub(8))
        .unwrap_or(&[]);
    miniz_oxide::inflate::decompress_to_vec(deflated).unwrap_or_default()
}

/// A readable reference of this API, rendered in the browser from `/api/openapi.json`.
#[utoipa::path(
    get,
    path = "/api/docs",
    tag = "system",
    responses((status = 200, description = "HTML", content_type = "text/html", body = String))
)]
async fn docs_page() -> Resp {
    let mut r = Resp::new(PAGE.into());
    *r.status_mut() = StatusCode::OK;
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/html; charset=utf-8"),
    );
    r
}

#[cfg(test)]
mod generate {
    use serde_json::Value;
    use utoipa::OpenApi;
    use utoipa::openapi::extensions::Extensions;
    use utoipa::openapi::path::{Operation, PathItem};
    use utoipa::openapi::{self, RefOr, Response};

    use super::super::route::{Endpoint, Kind, Verb};
    use super::{__path_docs_page, __path_openapi_json};

    /// The methods a script may register, which `/script-api/*` therefore answers.
    pub const SCRIPT_METHODS: [&str; 5] = ["GET", "POST", "PUT", "DELETE", "PATCH"];

    #[derive(OpenApi)]
    #[openapi(
        info(
            title = "VWED Edge API",
            description = "VWED Edge 运行时的 HTTP 接口。`/api/script/*` 遵循 VWED 在线脚本编辑模块接口文档; \
                应答是信封 `{success, message?, data?}` (Envelope_*, data 的类型见各接口), \
                失败时为 `{success: false, error, data?}` (Failure)。\
                每个操作的 `x-vwed-role` 是可以调用它的最低角色 (viewer < operator < engineer < admin, \
                或 public)。"
        ),
        paths(openapi_json, docs_page),
        components(schemas(super::super::reply::Failure)),
        tags(
            (name = "system", description = "健康检查与接口文档"),
            (name = "projects", description = "脚本项目"),
            (name = "files", description = "脚本文件, 语法检查, 上传"),
            (name = "scripts", description = "脚本的启动, 停止, 输出, 函数调用, 事件"),
            (name = "registry", description = "脚本注册的接口, 函数, 监听器和定时器"),
            (name = "logs", description = "持久化的脚本日志"),
            (name = "websocket", description = "实时日志 WebSocket"),
            (name = "io", description = "设备 I/O: 点位, 设备, 机器人"),
            (name = "integration", description = "任务系统的脚本块与任务变量"),
            (name = "storage", description = "库位"),
            (name = "script-api", description = "脚本注册的 HTTP 接口"),
            (name = "ui", description = "网页界面 (内嵌在程序中)"),
        )
    )]
    pub struct Doc;

    /// The document of the whole API: the modules' parts, with each operation's
    /// role (`x-vwed-role`) taken from the route table and an error answer for
    /// every operation.
    pub fn document(endpoints: &[Endpoint]) -> openapi::OpenApi {
        let mut doc = match merged(Doc::openapi(), super::super::documents()) {
            Ok(doc) => doc,
            Err(e) => panic!("{e}"),
        };
        for ep in endpoints {
            let path = ep.path.replace("{*", "{");
            let Some(item) = doc.paths.paths.get_mut(&path) else {
                continue;
            };
            let ops = operations(item, ep.verb);
            let several = ops.len() > 1;
            for (method, op) in ops {
                mark(op, ep);
                // Function names repeat across modules (`list`, `get`); ids may not.
                let tag = op.tags.as_ref().and_then(|t| t.first()).cloned();
                if let (Some(tag), Some(id)) = (tag, op.operation_id.as_mut()) {
                    *id = format!("{tag}.{id}");
                    if several {
                        id.push('.');
                        id.push_str(&method.to_ascii_lowercase());
                    }
                }
            }
        }
        doc
    }

    /// The modules' parts joined into `doc`. utoipa's merge keeps the first of
    /// two schemas with one name, so two Rust types of the same name in two
    /// modules would silently be documented as one (a client would send one
    /// type's fields to the other's endpoint): that is an error here.
    pub fn merged(
        mut doc: openapi::OpenApi,
        parts: Vec<openapi::OpenApi>,
    ) -> Result<openapi::OpenApi, String> {
        let mut seen = std::collections::BTreeMap::<String, Value>::new();
        for part in std::iter::once(&doc).chain(&parts) {
            let Some(components) = &part.components else {
                continue;
            };
            for (name, schema) in &components.schemas {
                let schema = serde_json::to_value(schema).map_err(|e| e.to_string())?;
                match seen.get(name) {
                    Some(first) if *first != schema => {
                        return Err(format!(
                            "two different types are documented under the schema name \
                             {name}: {first} and {schema}; give them distinct names"
                        ));
                    }
                    Some(_) => {}
                    None => {
                        seen.insert(name.clone(), schema);
                    }
                }
            }
        }
        for part in parts {
            doc.merge(part);
        }
        Ok(doc)
    }

    /// The operations an endpoint's verb stands for in a path item.
    pub fn operations(item: &mut PathItem, verb: Verb) -> Vec<(&'static str, &mut Operation)> {
        let ops = [
            ("GET", &mut item.get),
            ("POST", &mut item.post),
            ("PUT", &mut item.put),
            ("DELETE", &mut item.delete),
            ("PATCH", &mut item.patch),
        ];
        ops.into_iter()
            .filter(|(m, _)| match verb {
                Verb::Any => SCRIPT_METHODS.contains(m),
                v => v.as_str() == *m,
            })
            .filter_map(|(m, op)| Some((m, op.as_mut()?)))
            .collect()
    }

    fn mark(op: &mut Operation, ep: &Endpoint) {
        let mut ext = vec![("x-vwed-role".to_string(), Value::from(ep.access.as_str()))];
        if ep.kind == Kind::WebSocket {
            ext.push(("x-vwed-websocket".to_string(), Value::Bool(true)));
        }
        op.extensions
            .get_or_insert_with(Extensions::default)
            .merge(ext.into_iter().collect());
        op.responses
            .responses
            .entry("default".into())
            .or_insert_with(|| RefOr::T(error_response()));
    }

    /// The schema of every error answer (`reply::Failure`).
    const FAILURE: &str = "Failure";

    fn error_response() -> Response {
        openapi::ResponseBuilder::new()
            .description(
                "其他错误: success=false, error 说明原因 (400 参数无效, 404 接口不存在, \
                 405 方法不允许, 413 请求体过大, 500 内部错误)",
            )
            .content(
                "application/json",
                openapi::ContentBuilder::new()
                    .schema(Some(openapi::Ref::from_schema_name(FAILURE)))
                    .build(),
            )
            .build()
    }
}
