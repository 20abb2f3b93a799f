//! `/api/io/*`: points (value, quality, last change), devices (connection
//! state, error counters), writes by tag, robots and I/O counters.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;

use bytes::Bytes;
use serde::Deserialize;
use serde_json::{Value, json};
use utoipa::{IntoParams, ToSchema};
use warp::Filter;
use warp::http::StatusCode;

use super::answers;
use super::body::parse_json;
use super::query;
use super::reply::{ApiError, Envelope, Failure, Resp, finish, ok_data, ok_message};
use super::route::{self, Route};
use super::{body, with_engine};
use vwed_auth::Role;
use vwed_engine::Engine;
use vwed_io::{IoOpError, IoRuntime, Who};

pub fn routes(s: &super::Services) -> Vec<Route> {
    let engine = &s.engine;
    let (e, b) = (with_engine(engine), body(s));
    vec![
        route::get("/api/io/points", Role::Viewer).to(|at| {
            at.and(e.clone())
                .and(query::known::<PointsQuery>())
                .then(list_points)
        }),
        route::get("/api/io/points/{tag}", Role::Viewer)
            .to1(|at| at.and(e.clone()).then(read_point)),
        route::post("/api/io/points/{tag}", Role::Operator).to1(|at| {
            at.and(crate::server::client_addr())
                .and(e.clone())
                .and(b)
                .then(write_point)
        }),
        route::get("/api/io/devices", Role::Viewer).to(|at| at.and(e.clone()).then(devices)),
        route::get("/api/io/robots", Role::Viewer).to(|at| at.and(e.clone()).then(robots)),
        route::get("/api/io/writes", Role::Viewer).to(|at| at.and(e.clone()).then(writes)),
        route::get("/api/io/status", Role::Viewer).to(|at| at.and(e).then(status)),
    ]
}

#[cfg(test)]
#[derive(utoipa::OpenApi)]
#[openapi(paths(list_points, read_point, write_point, devices, robots, writes, status))]
pub struct Doc;

#[derive(IntoParams)]
#[into_params(parameter_in = Query)]
#[allow(dead_code)]
struct PointsQuery {
    /// 只要标签以此开头的点位
    prefix: Option<String>,
}

/// The devices: connection state and error counters.
#[utoipa::path(
    get,
    path = "/api/io/devices",
    tag = "io",
    responses((status = 200, description = "data: list of devices (empty without I/O)", body = Envelope<answers::IoDevices>))
)]
async fn devices(engine: Arc<Engine>) -> Resp {
    listing(&engine, |io| io.devices_json())
}

/// The configured robots and their state.
#[utoipa::path(
    get,
    path = "/api/io/robots",
    tag = "io",
    responses((status = 200, description = "data: list of robots (empty without I/O)", body = Envelope<Vec<answers::RobotView>>))
)]
async fn robots(engine: Arc<Engine>) -> Resp {
    listing(&engine, |io| io.robots_json())
}

/// The most recent point writes (the audit trail kept in memory).
#[utoipa::path(
    get,
    path = "/api/io/writes",
    tag = "io",
    responses((status = 200, description = "data: recent writes", body = Envelope<answers::IoWrites>))
)]
async fn writes(engine: Arc<Engine>) -> Resp {
    listing(&engine, |io| io.recent_writes.to_json())
}

/// A list the I/O keeps; empty without an I/O configuration.
fn listing(engine: &Engine, list: impl FnOnce(&IoRuntime) -> Vec<Value>) -> Resp {
    ok_data(Value::Array(
        engine.io.get().map(|io| list(io)).unwrap_or_default(),
    ))
}

/// I/O counters, or `configured: false` without an I/O configuration.
#[utoipa::path(
    get,
    path = "/api/io/status",
    tag = "io",
    responses((status = 200, description = "data: counters", body = Envelope<answers::IoStatus>))
)]
async fn status(engine: Arc<Engine>) -> Resp {
    match engine.io.get() {
        Some(io) => ok_data(io.stats_json()),
        None => {
            ok_data(json!({"configured": false, "message": IoOpError::NotConfigured.to_string()}))
        }
    }
}

/// All points (value, quality, last change), or those whose tag starts with `prefix`.
#[utoipa::path(
    get,
    path = "/api/io/points",
    tag = "io",
    params(PointsQuery),
    responses((status = 200, description = "data: list of points", body = Envelope<Vec<answers::PointView>>))
)]
async fn list_points(engine: Arc<Engine>, q: HashMap<String, String>) -> Resp {
    let mut snaps = engine
        .io
        .get()
        .map(|io| io.io.poller().snapshot())
        .unwrap_or_default();
    if let Some(p) = q.get("prefix").filter(|p| !p.is_empty()) {
        snaps.retain(|s| s.tag.starts_with(p.as_str()));
    }
    let mut r = warp::reply::Response::new(vwed_io::points_envelope(&snaps).into());
    r.headers_mut().insert(
        warp::http::header::CONTENT_TYPE,
        warp::http::HeaderValue::from_static("application/json; charset=utf-8"),
    );
    r
}

fn io_error(e: IoOpError) -> ApiError {
    ApiError::new(
        StatusCode::from_u16(e.status()).unwrap_or(StatusCode::BAD_GATEWAY),
        e,
    )
}

fn runtime(engine: &Engine) -> Result<Arc<IoRuntime>, ApiError> {
    engine
        .io
        .get()
        .cloned()
        .ok_or_else(|| io_error(IoOpError::NotConfigured))
}

/// One point as last polled; reading does not touch the device.
#[utoipa::path(
    get,
    path = "/api/io/points/{tag}",
    tag = "io",
    params(("tag" = String, Path, description = "点位标签")),
    responses(
        (status = 200, description = "data: the point", body = Envelope<answers::PointView>),
        (status = 404, description = "未知的点位", body = Failure),
        (status = 503, description = "未配置 I/O", body = Failure),
    )
)]
async fn read_point(tag: String, engine: Arc<Engine>) -> Resp {
    finish(
        async {
            let io = runtime(&engine)?;
            // A GET shows the point table; it does not touch the device.
            let snap = io
                .io
                .poller()
                .point(&tag)
                .ok_or_else(|| io_error(IoOpError::UnknownTag(tag.clone())))?;
            Ok(ok_data(vwed_io::snapshot_json(&snap)))
        }
        .await,
    )
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
struct WriteBody {
    /// 要写入的值 (数字或布尔, 按点位类型检查)
    value: Value,
}

/// Writes a point: checked against the point's type and limits, and audited.
#[utoipa::path(
    post,
    path = "/api/io/points/{tag}",
    tag = "io",
    params(("tag" = String, Path, description = "点位标签")),
    request_body = WriteBody,
    responses(
        (status = 200, description = "message, data: {tag, value, writer}", body = Envelope<answers::PointWritten>),
        (status = 400, description = "值无效", body = Failure),
        (status = 403, description = "点位只读", body = Failure),
        (status = 404, description = "未知的点位", body = Failure),
        (status = 502, description = "设备应答异常或超时", body = Failure),
        (status = 503, description = "未配置 I/O", body = Failure),
    )
)]
async fn write_point(
    tag: String,
    remote: Option<SocketAddr>,
    engine: Arc<Engine>,
    body: Bytes,
) -> Resp {
    finish(
        async {
            let io = runtime(&engine)?;
            let b: WriteBody = parse_json(&body)?;
            let who =
                Who::Http(remote.map_or_else(|| "unknown".to_string(), |a| a.ip().to_string()));
            io.write_point(&who, &tag, &b.value)
                .await
                .map_err(io_error)?;
            Ok(ok_message(
                format!("点位 {tag} 已写入"),
                Some(json!({"tag": tag, "value": b.value, "writer": who.to_string()})),
            ))
        }
        .await,
    )
}
