//! Warehouse locations over HTTP: list with lock state, seed or update, read one.
//!
//! `GET/POST /api/script/storage/locations`, `GET /api/script/storage/locations/{code}`,
//! `POST /api/script/storage/locations/{code}/unlock` `{task_id?, force?}`.

use std::collections::HashMap;
use std::sync::Arc;

use bytes::Bytes;
use serde::Deserialize;
use serde_json::json;
use utoipa::{IntoParams, ToSchema};
use warp::Filter;
use warp::http::StatusCode;

use super::answers;
use super::body::parse_json;
use super::query::{self, query_bool, query_u64};
use super::reply::{ApiError, Envelope, Failure, Resp, finish, ok_data, ok_message};
use super::route::{self, Route};
use super::{body, with_engine};
use vwed_auth::Role;
use vwed_engine::Engine;
use vwed_integrations::locations::{LocationError, LocationSpec, Locations};

pub fn routes(s: &super::Services) -> Vec<Route> {
    let engine = &s.engine;
    let (e, b) = (with_engine(engine), body(s));
    vec![
        route::get("/api/script/storage/locations", Role::Viewer).to(|at| {
            at.and(e.clone())
                .and(query::known::<ListQuery>())
                .then(list)
        }),
        route::post("/api/script/storage/locations", Role::Engineer)
            .to(|at| at.and(e.clone()).and(b.clone()).then(seed)),
        route::get(
            "/api/script/storage/locations/{location_code}",
            Role::Viewer,
        )
        .to1(|at| at.and(e.clone()).then(one)),
        route::post(
            "/api/script/storage/locations/{location_code}/unlock",
            Role::Operator,
        )
        .to1(|at| at.and(e).and(b).then(unlock)),
    ]
}

#[cfg(test)]
#[derive(utoipa::OpenApi)]
#[openapi(paths(list, seed, one, unlock))]
pub struct Doc;

#[derive(IntoParams)]
#[into_params(parameter_in = Query)]
#[allow(dead_code)]
struct ListQuery {
    /// 只要此区域的库位
    area: Option<String>,
    /// true: 只要已锁定的; false: 只要未锁定的
    locked: Option<bool>,
    /// 最多返回的库位数, 默认 1000, 上限 10000
    limit: Option<u64>,
}

fn loc_error(e: LocationError) -> ApiError {
    let status = match &e {
        LocationError::NotFound(_) => StatusCode::NOT_FOUND,
        LocationError::NotHolder { .. } => StatusCode::CONFLICT,
        LocationError::TooMany => StatusCode::INSUFFICIENT_STORAGE,
        LocationError::Db(_) => StatusCode::INTERNAL_SERVER_ERROR,
        _ => StatusCode::BAD_REQUEST,
    };
    ApiError::new(status, e)
}

async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, LocationError> + Send + 'static,
) -> Result<T, ApiError> {
    match tokio::task::spawn_blocking(f).await {
        Ok(r) => r.map_err(loc_error),
        Err(e) => Err(ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, e)),
    }
}

/// A list of locations, or `{"locations": [...]}`. Each location:
/// `{location_code, name?, area?, attributes?}`; absent fields keep their value.
#[derive(Deserialize, ToSchema)]
#[serde(untagged)]
enum SeedBody {
    List(Vec<LocationSpec>),
    Wrapped { locations: Vec<LocationSpec> },
}

/// Locations with their lock state.
#[utoipa::path(
    get,
    path = "/api/script/storage/locations",
    tag = "storage",
    params(ListQuery),
    responses((status = 200, description = "data: {locations, total}", body = Envelope<answers::Locations>))
)]
async fn list(engine: Arc<Engine>, q: HashMap<String, String>) -> Resp {
    finish(
        async {
            let locked = query_bool(&q, "locked")?;
            let limit = query_u64(&q, "limit")?.unwrap_or(1_000).min(10_000) as usize;
            let area = q.get("area").cloned();
            let db = engine.store.db().clone();
            let (list, total) =
                blocking(move || Locations::new(db).list(area.as_deref(), locked, limit)).await?;
            Ok(ok_data(json!({"locations": list, "total": total})))
        }
        .await,
    )
}

/// Creates or updates locations.
#[utoipa::path(
    post,
    path = "/api/script/storage/locations",
    tag = "storage",
    request_body = SeedBody,
    responses(
        (status = 200, description = "message, data: {saved, created}", body = Envelope<answers::LocationsSaved>),
        (status = 507, description = "库位数量已达上限", body = Failure),
    )
)]
async fn seed(engine: Arc<Engine>, body: Bytes) -> Resp {
    finish(
        async {
            let specs = match parse_json::<SeedBody>(&body)? {
                SeedBody::List(l) | SeedBody::Wrapped { locations: l } => l,
            };
            let n = specs.len();
            let db = engine.store.db().clone();
            let created = blocking(move || Locations::new(db).upsert(&specs)).await?;
            Ok(ok_message(
                format!("已保存 {n} 个库位 (新增 {created} 个)"),
                Some(json!({"saved": n, "created": created})),
            ))
        }
        .await,
    )
}

/// One location.
#[utoipa::path(
    get,
    path = "/api/script/storage/locations/{location_code}",
    tag = "storage",
    params(("location_code" = String, Path, description = "库位编码")),
    responses(
        (status = 200, description = "data: the location", body = Envelope<answers::Location>),
        (status = 404, description = "库位不存在", body = Failure),
    )
)]
async fn one(code: String, engine: Arc<Engine>) -> Resp {
    let code = super::integration::path_param(code);
    finish(
        async {
            let db = engine.store.db().clone();
            let c = code.clone();
            let loc = blocking(move || Locations::new(db).get(&c))
                .await?
                .ok_or_else(|| loc_error(LocationError::NotFound(code)))?;
            Ok(ok_data(loc))
        }
        .await,
    )
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
struct UnlockBody {
    /// 持有锁的任务; 不是它持有时 409
    #[serde(default)]
    task_id: Option<String>,
    /// 不论谁持有都释放
    #[serde(default)]
    force: bool,
}

/// An operator frees a location a dead task left locked.
#[utoipa::path(
    post,
    path = "/api/script/storage/locations/{location_code}/unlock",
    tag = "storage",
    params(("location_code" = String, Path, description = "库位编码")),
    request_body = UnlockBody,
    responses(
        (status = 200, description = "data: {location_code, released}", body = Envelope<answers::LocationUnlocked>),
        (status = 404, description = "库位不存在", body = Failure),
        (status = 409, description = "锁由其他任务持有", body = Failure),
    )
)]
async fn unlock(code: String, engine: Arc<Engine>, body: Bytes) -> Resp {
    let code = super::integration::path_param(code);
    finish(
        async {
            let b: UnlockBody = parse_json(&body)?;
            let db = engine.store.db().clone();
            let c = code.clone();
            let released =
                blocking(move || Locations::new(db).unlock(&c, b.task_id.as_deref(), b.force))
                    .await?;
            Ok(ok_data(
                json!({"location_code": code, "released": released}),
            ))
        }
        .await,
    )
}
