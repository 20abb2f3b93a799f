//! Warehouse locations over HTTP: list with lock state, seed or update, read one.
//!
//! `GET/POST /api/script/storage/locations`, `GET /api/script/storage/locations/{code}`,
//! `POST /api/script/storage/locations/{code}/unlock` `{task_id?, force?}`.

use std::collections::HashMap;
use std::sync::Arc;

use bytes::Bytes;
use serde::Deserialize;
use serde_json::json;
use warp::Filter;
use warp::filters::BoxedFilter;
use warp::http::StatusCode;

use super::body::parse_json;
use super::reply::{ApiError, Resp, finish, ok_data, ok_message};
use super::{query_bool, query_u64};
use crate::engine::Engine;
use crate::integrations::locations::{LocationError, LocationSpec, Locations};

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

/// A list, or `{"locations": [...]}`.
#[derive(Deserialize)]
#[serde(untagged)]
enum SeedBody {
    List(Vec<LocationSpec>),
    Wrapped { locations: Vec<LocationSpec> },
}

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

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct UnlockBody {
    #[serde(default)]
    task_id: Option<String>,
    #[serde(default)]
    force: bool,
}

/// An operator frees a location a dead task left locked.
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

pub fn routes(engine: Arc<Engine>, limit: u64) -> BoxedFilter<(Resp,)> {
    let e = warp::any().map(move || engine.clone());
    let api = || warp::path("api").and(warp::path("script"));
    let root = move || api().and(warp::path!("storage" / "locations"));
    let get_list = root()
        .and(warp::get())
        .and(e.clone())
        .and(warp::query::<HashMap<String, String>>())
        .then(list);
    let post = root()
        .and(warp::post())
        .and(e.clone())
        .and(super::body::limited(limit))
        .then(seed);
    let get_one = api()
        .and(warp::path!("storage" / "locations" / String))
        .and(warp::get())
        .and(e.clone())
        .then(one);
    let unlock = api()
        .and(warp::path!("storage" / "locations" / String / "unlock"))
        .and(warp::post())
        .and(e)
        .and(super::body::limited(limit))
        .then(unlock);
    get_list
        .or(post)
        .unify()
        .or(get_one)
        .unify()
        .or(unlock)
        .unify()
        .boxed()
}
