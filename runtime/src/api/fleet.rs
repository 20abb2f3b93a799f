//! `/api/fleet`: fleet sync as the device sees it, and the switch an engineer
//! uses to take a project out of fleet control (and give it back). Projects under
//! fleet control are read-only through the rest of the API ([`writable`]).

use std::sync::Arc;

use serde_json::json;
use warp::Filter;
use warp::http::StatusCode;

use super::answers;
use super::integration::path_param;
use super::reply::{ApiError, Envelope, Failure, Resp, finish, ok_data, ok_message};
use super::route::{self, Route};
use vwed_auth::Role;
use vwed_store::ScriptStore;
use vwed_store::StoreError;

/// What the fleet endpoints use: the database and the `[fleet]` settings.
#[derive(Clone)]
struct Fleet {
    db: vwed_db::Db,
    settings: Arc<vwed_fleet_agent::FleetSettings>,
}

pub fn routes(s: &super::Services) -> Vec<Route> {
    let fleet = Fleet {
        db: s.engine.store.db().clone(),
        settings: Arc::new(s.config.fleet.clone()),
    };
    let e = warp::any().map(move || fleet.clone());
    vec![
        route::get("/api/fleet/status", Role::Viewer).to(|at| at.and(e.clone()).then(status)),
        route::post("/api/fleet/projects/{project_name}/detach", Role::Engineer)
            .no_body()
            .to1(|at| at.and(e.clone()).then(detach)),
        route::post("/api/fleet/projects/{project_name}/attach", Role::Engineer)
            .no_body()
            .to1(|at| at.and(e).then(attach)),
    ]
}

#[cfg(test)]
#[derive(utoipa::OpenApi)]
#[openapi(paths(status, detach, attach))]
pub struct Doc;

fn db_error(e: vwed_db::DbError) -> ApiError {
    ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, e)
}

/// 409 while fleet sync owns the project: called by every handler that changes a
/// project's files, before it changes anything.
pub async fn writable(store: &ScriptStore, project_id: u64) -> Result<(), ApiError> {
    let store = store.clone();
    let locked = tokio::task::spawn_blocking(move || -> Result<Option<String>, StoreError> {
        let p = store.get_project(project_id)?;
        Ok(vwed_fleet_agent::read_only(store.db(), &p.project_name)?.then_some(p.project_name))
    })
    .await
    .map_err(|e| ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, e))?;
    match locked {
        Ok(Some(name)) => Err(ApiError::new(
            StatusCode::CONFLICT,
            format!(
                "项目 {name} 由 fleet 同步管理, 本地只读; 如需在本地修改, 请先脱离: POST /api/fleet/projects/{name}/detach"
            ),
        )),
        // A missing project is the handler's own 404.
        Ok(None) | Err(StoreError::ProjectNotFound(_)) => Ok(()),
        Err(e) => Err(e.into()),
    }
}

/// Fleet sync on this device: settings, apply state, the projects it owns.
#[utoipa::path(
    get,
    path = "/api/fleet/status",
    tag = "fleet",
    responses((status = 200, description = "data: {enabled, device_id, fleet, groups, apply_state, revision, deployment_id, last_error, projects}", body = Envelope<answers::FleetStatus>))
)]
async fn status(fleet: Fleet) -> Resp {
    finish(
        async {
            let Fleet { db, settings } = fleet;
            let v =
                tokio::task::spawn_blocking(move || vwed_fleet_agent::local_status(&db, &settings))
                    .await
                    .map_err(|e| ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, e))?
                    .map_err(db_error)?;
            Ok(ok_data(v))
        }
        .await,
    )
}

async fn set_detached(name: String, fleet: Fleet, detached: bool) -> Result<Resp, ApiError> {
    let name = path_param(name);
    let Fleet { db, settings } = fleet;
    let project = name.clone();
    let found = tokio::task::spawn_blocking(move || {
        vwed_fleet_agent::set_detached(&db, &settings, &project, detached)
    })
    .await
    .map_err(|e| ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, e))?
    .map_err(db_error)?;
    if !found {
        return Err(ApiError::new(
            StatusCode::NOT_FOUND,
            format!("项目 {name} 不受 fleet 同步管理"),
        ));
    }
    let message = if detached {
        format!("项目 {name} 已脱离 fleet 同步: 可在本地修改, 设备上报为偏离 (drift)")
    } else {
        format!("项目 {name} 已重新由 fleet 同步管理: 本地只读, 下次部署覆盖本地修改")
    };
    Ok(ok_message(
        message,
        Some(json!({"project": name, "detached": detached})),
    ))
}

/// Takes a project out of fleet control: its files become writable here, the
/// device reports it as drift, and deployments that include it are refused
/// until it is attached again.
#[utoipa::path(
    post,
    path = "/api/fleet/projects/{project_name}/detach",
    tag = "fleet",
    params(("project_name" = String, Path, description = "项目名称")),
    responses(
        (status = 200, description = "message, data: {project, detached}", body = Envelope<answers::ProjectDetached>),
        (status = 404, description = "项目不受 fleet 同步管理", body = Failure),
    )
)]
async fn detach(name: String, fleet: Fleet) -> Resp {
    finish(set_detached(name, fleet, true).await)
}

/// Gives a detached project back to fleet control (read-only again).
#[utoipa::path(
    post,
    path = "/api/fleet/projects/{project_name}/attach",
    tag = "fleet",
    params(("project_name" = String, Path, description = "项目名称")),
    responses(
        (status = 200, description = "message, data: {project, detached}", body = Envelope<answers::ProjectDetached>),
        (status = 404, description = "项目不受 fleet 同步管理", body = Failure),
    )
)]
async fn attach(name: String, fleet: Fleet) -> Resp {
    finish(set_detached(name, fleet, false).await)
}
