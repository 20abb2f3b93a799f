//! The HTTP API: `/api/script/*` (the seed's contract), `/script-api/*` (routes
//! scripts registered) and `/health`.

pub(crate) mod auth;
mod body;
mod files;
mod integration;
mod io;
mod logs;
mod projects;
pub(crate) mod reply;
mod script_api;
mod scripts;
mod storage;
mod ws;

use std::collections::HashMap;
use std::convert::Infallible;
use std::sync::Arc;
use std::time::Instant;

use serde_json::json;
use warp::filters::BoxedFilter;
use warp::http::StatusCode;
use warp::{Filter, Rejection};

pub use reply::Resp;
use reply::{ApiError, fail, ok_data};

use crate::engine::Engine;

pub fn query_bool(q: &HashMap<String, String>, key: &str) -> Result<Option<bool>, ApiError> {
    match q.get(key).map(|v| v.to_ascii_lowercase()) {
        None => Ok(None),
        Some(v) if matches!(v.as_str(), "true" | "1" | "yes") => Ok(Some(true)),
        Some(v) if matches!(v.as_str(), "false" | "0" | "no") => Ok(Some(false)),
        Some(v) => Err(ApiError::bad_request(format!(
            "参数 {key} 必须是 true 或 false, 得到 {v}"
        ))),
    }
}

pub fn query_u64(q: &HashMap<String, String>, key: &str) -> Result<Option<u64>, ApiError> {
    q.get(key)
        .map(|v| {
            v.parse::<u64>()
                .map_err(|_| ApiError::bad_request(format!("参数 {key} 必须是非负整数, 得到 {v}")))
        })
        .transpose()
}

fn with_engine(
    engine: Arc<Engine>,
) -> impl Filter<Extract = (Arc<Engine>,), Error = Infallible> + Clone {
    warp::any().map(move || engine.clone())
}

fn query() -> impl Filter<Extract = (HashMap<String, String>,), Error = Rejection> + Clone {
    warp::query::<HashMap<String, String>>()
}

pub fn routes(engine: Arc<Engine>, started: Instant) -> BoxedFilter<(Resp,)> {
    let limit = engine.cfg.max_body_bytes;
    let e = with_engine(engine.clone());
    let body = move || body::limited(limit);
    let api = || warp::path("api").and(warp::path("script"));

    let projects = api()
        .and(warp::path("projects"))
        .and(warp::path::end())
        .and(
            warp::post()
                .and(e.clone())
                .and(body())
                .then(projects::create)
                .or(warp::get().and(e.clone()).and(query()).then(projects::list))
                .unify(),
        )
        .boxed();
    let project_files = api()
        .and(warp::path!("projects" / u64 / "files"))
        .and(warp::get())
        .and(e.clone())
        .and(query())
        .then(projects::files)
        .boxed();

    let files_root = api()
        .and(warp::path!("files"))
        .and(warp::post())
        .and(e.clone())
        .and(body())
        .then(files::create)
        .boxed();
    let files_search = api()
        .and(warp::path!("files" / "search"))
        .and(warp::get())
        .and(e.clone())
        .and(query())
        .then(files::search)
        .boxed();
    let file_path = move || api().and(warp::path!("files" / u64));
    let file_one = file_path()
        .and(warp::get())
        .and(e.clone())
        .then(files::get)
        .or(file_path()
            .and(warp::put())
            .and(e.clone())
            .and(body())
            .then(files::update))
        .unify()
        .or(file_path()
            .and(warp::delete())
            .and(e.clone())
            .then(files::delete))
        .unify()
        .boxed();
    let file_versions = api()
        .and(warp::path!("files" / u64 / "versions"))
        .and(warp::get())
        .and(e.clone())
        .then(files::versions)
        .boxed();
    let file_version = api()
        .and(warp::path!("files" / u64 / "versions" / u64))
        .and(warp::get())
        .and(e.clone())
        .then(files::version)
        .boxed();
    let validate = api()
        .and(warp::path!("validate-syntax"))
        .and(warp::post())
        .and(e.clone())
        .and(body())
        .then(files::validate)
        .boxed();
    let upload = api()
        .and(warp::path!("upload"))
        .and(warp::post())
        .and(e.clone())
        .and(warp::multipart::form().max_length(limit))
        .then(files::upload)
        .boxed();

    let start = api()
        .and(warp::path!("scripts" / "start"))
        .and(warp::post())
        .and(e.clone())
        .and(body())
        .then(scripts::start)
        .boxed();
    let running = api()
        .and(warp::path!("scripts" / "running"))
        .and(warp::get())
        .and(e.clone())
        .then(scripts::running)
        .boxed();
    let execute = api()
        .and(warp::path!("scripts" / "execute-function"))
        .and(warp::post())
        .and(e.clone())
        .and(body())
        .then(scripts::execute_function)
        .boxed();
    let stop = api()
        .and(warp::path!("scripts" / String / "stop"))
        .and(warp::post())
        .and(e.clone())
        .then(scripts::stop)
        .boxed();
    let restart = api()
        .and(warp::path!("scripts" / String / "restart"))
        .and(warp::post())
        .and(e.clone())
        .then(scripts::restart)
        .boxed();
    let output = api()
        .and(warp::path!("scripts" / String / "output"))
        .and(warp::get())
        .and(e.clone())
        .and(query())
        .then(scripts::output)
        .boxed();
    let registry = api()
        .and(warp::path!("registry" / "status"))
        .and(warp::get())
        .and(e.clone())
        .then(scripts::registry_status)
        .boxed();
    let integration = api()
        .and(warp::path!("integration" / "functions"))
        .and(warp::get())
        .and(e.clone())
        .and(query())
        .then(scripts::integration_functions)
        .boxed();
    let emit = api()
        .and(warp::path!("events" / "emit"))
        .and(warp::post())
        .and(e.clone())
        .and(body())
        .then(scripts::emit_event)
        .boxed();
    let stubs = api()
        .and(warp::path!("stubs" / "vwed.pyi"))
        .and(warp::get())
        .map(|| {
            let mut r = warp::reply::Response::new(vwed_pyhost::STUBS_PYI.into());
            r.headers_mut().insert(
                warp::http::header::CONTENT_TYPE,
                warp::http::HeaderValue::from_static("text/x-python; charset=utf-8"),
            );
            r
        })
        .boxed();

    let script_api = warp::path("script-api")
        .and(warp::path::tail())
        .and(warp::method())
        .and(warp::query::raw().or(warp::any().map(String::new)).unify())
        .and(warp::header::headers_cloned())
        .and(warp::addr::remote())
        .and(e.clone())
        .and(body())
        .then(script_api::handle)
        .boxed();

    let health_engine = engine.clone();
    let health = warp::path!("health")
        .and(warp::get())
        .map(move || {
            let scripts = health_engine.instances();
            ok_data(json!({
                "status": "ok",
                "version": env!("CARGO_PKG_VERSION"),
                "uptime_s": started.elapsed().as_secs(),
                "scripts": scripts.len(),
                "pid": std::process::id(),
                "rss_bytes": crate::worker::rss_bytes(std::process::id()),
            }))
        })
        .boxed();

    health
        .or(script_api)
        .unify()
        .or(integration::routes(engine.clone(), limit))
        .unify()
        .or(storage::routes(engine.clone(), limit))
        .unify()
        .or(projects)
        .unify()
        .or(project_files)
        .unify()
        .or(files_search)
        .unify()
        .or(file_versions)
        .unify()
        .or(file_version)
        .unify()
        .or(file_one)
        .unify()
        .or(files_root)
        .unify()
        .or(validate)
        .unify()
        .or(upload)
        .unify()
        .or(start)
        .unify()
        .or(running)
        .unify()
        .or(execute)
        .unify()
        .or(stop)
        .unify()
        .or(restart)
        .unify()
        .or(output)
        .unify()
        .or(registry)
        .unify()
        .or(integration)
        .unify()
        .or(emit)
        .unify()
        .or(stubs)
        .unify()
        .or(logs::routes(engine.clone()))
        .unify()
        .or(ws::routes(engine.clone()))
        .unify()
        .or(io::routes(engine.clone()))
        .unify()
        .recover(recover)
        .unify()
        .boxed()
}

pub(crate) async fn recover(err: Rejection) -> Result<Resp, Infallible> {
    use warp::reject::{
        InvalidQuery, LengthRequired, MethodNotAllowed, PayloadTooLarge, UnsupportedMediaType,
    };
    let r = if let Some(t) = err.find::<body::TooLarge>() {
        fail(
            StatusCode::PAYLOAD_TOO_LARGE,
            format!("请求体过大, 上限 {} 字节", t.0),
        )
    } else if err.find::<PayloadTooLarge>().is_some() {
        fail(StatusCode::PAYLOAD_TOO_LARGE, "请求体过大")
    } else if let Some(b) = err.find::<body::BodyError>() {
        fail(StatusCode::BAD_REQUEST, format!("请求体读取失败: {}", b.0))
    } else if err.find::<InvalidQuery>().is_some() {
        fail(StatusCode::BAD_REQUEST, "查询参数格式错误")
    } else if err.find::<LengthRequired>().is_some() {
        fail(StatusCode::LENGTH_REQUIRED, "缺少 Content-Length 请求头")
    } else if err.find::<UnsupportedMediaType>().is_some() {
        fail(StatusCode::UNSUPPORTED_MEDIA_TYPE, "不支持的 Content-Type")
    } else if let Some(h) = err.find::<warp::reject::InvalidHeader>() {
        fail(StatusCode::BAD_REQUEST, format!("请求头无效: {}", h.name()))
    } else if let Some(h) = err.find::<warp::reject::MissingHeader>() {
        fail(StatusCode::BAD_REQUEST, format!("缺少请求头: {}", h.name()))
    } else if err.find::<MethodNotAllowed>().is_some() {
        fail(StatusCode::METHOD_NOT_ALLOWED, "请求方法不允许")
    } else if err.is_not_found() {
        fail(StatusCode::NOT_FOUND, "接口不存在")
    } else {
        tracing::warn!("unhandled rejection: {err:?}");
        fail(StatusCode::BAD_REQUEST, format!("请求无效: {err:?}"))
    };
    Ok(r)
}

/// `/health` before restored scripts are up.
pub fn not_ready() -> Resp {
    reply::json_response(
        StatusCode::SERVICE_UNAVAILABLE,
        &json!({"success": false, "error": "运行时正在启动, 正在恢复脚本", "data": {"status": "starting"}}),
    )
}
