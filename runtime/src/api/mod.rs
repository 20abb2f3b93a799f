//! The HTTP API: `/api/script/*` (the seed's contract), `/api/io/*`,
//! `/script-api/*` (routes scripts registered), `/api/openapi.json`, `/api/docs`
//! and `/health`. Each module declares its endpoints in the route table
//! (`route.rs`) and describes them for the OpenAPI document (`doc.rs`); this file
//! joins them and turns every rejection into the envelope.

mod answers;
pub(crate) mod auth;
mod body;
mod doc;
mod files;
mod fleet;
pub mod guard;
mod integration;
mod io;
mod jobs;
mod logs;
mod projects;
mod query;
mod registry;
pub(crate) mod reply;
mod route;
mod script_api;
mod scripts;
mod storage;
mod system;
mod tree;
mod ui;
mod ws;

#[cfg(test)]
mod tests;

use std::convert::Infallible;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Instant;

use serde_json::json;
use warp::filters::BoxedFilter;
use warp::http::StatusCode;
use warp::{Filter, Rejection};

use query::query_u64;
pub use reply::Resp;
use reply::{Envelope, Failure, fail, ok_data};
use route::{Access, Route};

use vwed_engine::Engine;

fn with_engine(
    engine: &Arc<Engine>,
) -> impl Filter<Extract = (Arc<Engine>,), Error = Infallible> + Clone + use<> {
    let engine = engine.clone();
    warp::any().map(move || engine.clone())
}

/// The request body, bounded by `max_body_bytes`.
fn body(s: &Services) -> impl Filter<Extract = (bytes::Bytes,), Error = Rejection> + Clone + use<> {
    body::limited(s.config.max_body_bytes)
}

/// What the API serves, each part handed to the modules that use it.
pub struct Services {
    pub engine: Arc<Engine>,
    /// The whole configuration: the API's own keys (`max_body_bytes`), what
    /// `/api/system/info` shows, the fleet and I/O sections.
    pub config: Arc<crate::config::Config>,
    /// The jobs service (`/api/v1/scripts`); None answers 503 there.
    pub jobs: Option<Arc<vwed_jobs::Jobs>>,
    pub started: Instant,
    /// False while the scripts of the last run are restored: `/health` says 503.
    pub ready: Arc<std::sync::atomic::AtomicBool>,
}

pub fn routes(s: &Services) -> BoxedFilter<(Resp,)> {
    route::mount(table(s), &s.engine.auth)
        .recover(recover)
        .unify()
        .boxed()
}

/// Every endpoint, in the order they are tried: the hot path first.
fn table(s: &Services) -> Vec<Route> {
    let (engine, started) = (&s.engine, s.started);
    let mut t = vec![health(engine, started, s.ready.clone())];
    t.extend(script_api::routes(s));
    t.extend(projects::routes(s));
    t.extend(files::routes(s));
    t.extend(tree::routes(s));
    t.extend(scripts::routes(s));
    t.extend(registry::routes(s));
    t.extend(logs::routes(s));
    t.extend(ws::routes(s));
    t.extend(io::routes(s));
    t.extend(integration::routes(s));
    t.extend(storage::routes(s));
    t.extend(system::routes(s));
    t.extend(jobs::routes(s));
    t.extend(fleet::routes(s));
    t.extend(auth::routes(&engine.auth));
    t.extend(doc::routes());
    t.extend(ui::routes());
    t
}

/// The modules' parts of the OpenAPI document.
#[cfg(test)]
fn documents() -> Vec<utoipa::openapi::OpenApi> {
    use utoipa::OpenApi;
    vec![
        HealthDoc::openapi(),
        script_api::Doc::openapi(),
        projects::Doc::openapi(),
        files::Doc::openapi(),
        tree::Doc::openapi(),
        scripts::Doc::openapi(),
        registry::Doc::openapi(),
        logs::Doc::openapi(),
        ws::Doc::openapi(),
        io::Doc::openapi(),
        integration::Doc::openapi(),
        storage::Doc::openapi(),
        system::Doc::openapi(),
        ui::Doc::openapi(),
        jobs::Doc::openapi(),
        fleet::Doc::openapi(),
        auth::Doc::openapi(),
    ]
}

#[cfg(test)]
#[derive(utoipa::OpenApi)]
#[openapi(paths(health_status))]
struct HealthDoc;

fn health(engine: &Arc<Engine>, started: Instant, ready: Arc<AtomicBool>) -> Route {
    let e = with_engine(engine);
    route::get("/health", Access::Public).to(move |at| {
        at.and(e)
            .and(warp::any().map(move || (started, ready.load(Ordering::Acquire))))
            .then(|engine, (started, ready)| async move {
                if ready {
                    health_status(engine, started).await
                } else {
                    not_ready()
                }
            })
    })
}

/// Liveness and basic figures. 503 `{"data": {"status": "starting"}}` while the
/// scripts that were running before a restart are being started again.
#[utoipa::path(
    get,
    path = "/health",
    tag = "system",
    responses(
        (status = 200, description = "data: status, version, uptime_s, scripts, pid, rss_bytes, safe_mode (+ safe_mode_reason, safe_mode_since, held_scripts)", body = Envelope<answers::Health>),
        (status = 503, description = "运行时正在启动, 正在恢复脚本", body = Failure),
    )
)]
async fn health_status(engine: Arc<Engine>, started: Instant) -> Resp {
    let mut data = json!({
        "status": "ok",
        "version": env!("CARGO_PKG_VERSION"),
        "uptime_s": started.elapsed().as_secs(),
        "scripts": engine.instances().len(),
        "pid": std::process::id(),
        "rss_bytes": vwed_engine::worker::rss_bytes(std::process::id()),
    });
    if let (Some(d), serde_json::Value::Object(safe)) =
        (data.as_object_mut(), engine.safe_mode.to_json())
    {
        d.extend(safe);
    }
    ok_data(data)
}

async fn recover(err: Rejection) -> Result<Resp, Infallible> {
    if let Some(r) = crate::api::guard::recover(&err) {
        return Ok(r);
    }
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
    } else if let Some(u) = err.find::<query::Unknown>() {
        fail(StatusCode::BAD_REQUEST, u.message())
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
fn not_ready() -> Resp {
    reply::json_response(
        StatusCode::SERVICE_UNAVAILABLE,
        &json!({"success": false, "error": "运行时正在启动, 正在恢复脚本", "data": {"status": "starting"}}),
    )
}
