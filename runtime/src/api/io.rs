//! `/api/io/*`: points (value, quality, last change), devices (connection
//! state, error counters), writes by tag, robots and I/O counters.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;

use bytes::Bytes;
use serde::Deserialize;
use serde_json::{Value, json};
use warp::Filter;
use warp::filters::BoxedFilter;
use warp::http::StatusCode;

use super::body::parse_json;
use super::reply::{ApiError, Resp, finish, ok_data, ok_message};
use super::with_engine;
use crate::engine::Engine;
use crate::io::{IoOpError, IoRuntime, Who};

pub fn routes(engine: Arc<Engine>) -> BoxedFilter<(Resp,)> {
    let limit = engine.cfg.max_body_bytes;
    let e = with_engine(engine);
    let points = warp::path!("api" / "io" / "points")
        .and(warp::get())
        .and(e.clone())
        .and(super::query())
        .map(list_points);
    let point = warp::path!("api" / "io" / "points" / String)
        .and(warp::get())
        .and(e.clone())
        .then(read_point);
    let write = warp::path!("api" / "io" / "points" / String)
        .and(warp::post())
        .and(crate::server::client_addr())
        .and(e.clone())
        .and(super::body::limited(limit))
        .then(write_point);
    let devices = warp::path!("api" / "io" / "devices")
        .and(warp::get())
        .and(e.clone())
        .map(|e: Arc<Engine>| {
            ok_data(json!(
                e.io.get().map(|io| io.devices_json()).unwrap_or_default()
            ))
        });
    let robots = warp::path!("api" / "io" / "robots")
        .and(warp::get())
        .and(e.clone())
        .map(|e: Arc<Engine>| {
            ok_data(json!(
                e.io.get().map(|io| io.robots_json()).unwrap_or_default()
            ))
        });
    let writes = warp::path!("api" / "io" / "writes")
        .and(warp::get())
        .and(e.clone())
        .map(|e: Arc<Engine>| {
            ok_data(json!(
                e.io.get()
                    .map(|io| io.recent_writes.to_json())
                    .unwrap_or_default()
            ))
        });
    let status = warp::path!("api" / "io" / "status")
        .and(warp::get())
        .and(e)
        .map(|e: Arc<Engine>| match e.io.get() {
            Some(io) => ok_data(io.stats_json()),
            None => ok_data(
                json!({"configured": false, "message": IoOpError::NotConfigured.to_string()}),
            ),
        });
    points
        .or(point)
        .unify()
        .or(write)
        .unify()
        .or(devices)
        .unify()
        .or(robots)
        .unify()
        .or(writes)
        .unify()
        .or(status)
        .unify()
        .boxed()
}

/// All points, or those whose tag starts with `?prefix=`.
fn list_points(engine: Arc<Engine>, q: HashMap<String, String>) -> Resp {
    let mut snaps = engine
        .io
        .get()
        .map(|io| io.io.poller().snapshot())
        .unwrap_or_default();
    if let Some(p) = q.get("prefix").filter(|p| !p.is_empty()) {
        snaps.retain(|s| s.tag.starts_with(p.as_str()));
    }
    let mut r = warp::reply::Response::new(crate::io::points_envelope(&snaps).into());
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
            Ok(ok_data(crate::io::snapshot_json(&snap)))
        }
        .await,
    )
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct WriteBody {
    value: Value,
}

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
