//! `/api/script/projects`: projects group a script's files (seed 001 §1).

use std::collections::HashMap;

use bytes::Bytes;
use serde::Deserialize;
use serde_json::json;
use utoipa::{IntoParams, ToSchema};
use warp::Filter;
use warp::http::StatusCode;

use super::answers;
use super::body;
use super::body::parse_json;
use super::query::{self, query_bool};
use super::reply::{Envelope, Failure, Resp, blocking, finish, json_response, ok_data};
use super::route::{self, Route};
use vwed_auth::Role;
use vwed_store::ScriptStore;

pub fn routes(s: &super::Services) -> Vec<Route> {
    // The project store is all these handlers use.
    let store = s.engine.store.clone();
    let (e, b) = (warp::any().map(move || store.clone()), body(s));
    vec![
        route::post("/api/script/projects", Role::Engineer)
            .to(|at| at.and(e.clone()).and(b).then(create)),
        route::get("/api/script/projects", Role::Viewer).to(|at| {
            at.and(e.clone())
                .and(query::known::<ListQuery>())
                .then(list)
        }),
        route::get("/api/script/projects/{project_id}/files", Role::Viewer)
            .to1(|at| at.and(e).and(query::known::<FilesQuery>()).then(files)),
    ]
}

#[cfg(test)]
#[derive(utoipa::OpenApi)]
#[openapi(paths(create, list, files))]
pub struct Doc;

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
struct CreateProject {
    /// 项目名称, 也是项目目录名
    project_name: String,
    #[serde(default)]
    description: Option<String>,
    #[serde(default)]
    created_by: Option<String>,
}

#[derive(IntoParams)]
#[into_params(parameter_in = Query)]
#[allow(dead_code)]
struct ListQuery {
    /// 项目状态过滤, 默认 active
    status: Option<String>,
}

#[derive(IntoParams)]
#[into_params(parameter_in = Query)]
#[allow(dead_code)]
struct FilesQuery {
    /// 是否包含文件内容 (true/false), 默认 false
    include_content: Option<bool>,
}

/// Creates a project (and its directory).
#[utoipa::path(
    post,
    path = "/api/script/projects",
    tag = "projects",
    request_body = CreateProject,
    responses(
        (status = 200, description = "message, data: the project", body = Envelope<answers::ProjectView>),
        (status = 409, description = "项目已存在", body = Failure),
    )
)]
async fn create(store: ScriptStore, body: Bytes) -> Resp {
    finish(
        async {
            let req: CreateProject = parse_json(&body)?;
            let p = blocking(move || {
                store.create_project(
                    req.project_name.trim(),
                    req.description.as_deref().unwrap_or(""),
                    req.created_by.as_deref().unwrap_or(""),
                )
            })
            .await?;
            Ok(json_response(
                StatusCode::OK,
                &json!({
                    "success": true,
                    "message": format!("项目 {} 创建成功", p.project_name),
                    "data": p.to_json(),
                }),
            ))
        }
        .await,
    )
}

/// Lists projects.
#[utoipa::path(
    get,
    path = "/api/script/projects",
    tag = "projects",
    params(ListQuery),
    responses((status = 200, description = "data: list of projects", body = Envelope<Vec<answers::ProjectView>>))
)]
async fn list(store: ScriptStore, q: HashMap<String, String>) -> Resp {
    finish(
        async {
            let status = q.get("status").cloned().unwrap_or_else(|| "active".into());
            let list = blocking(move || store.list_projects(Some(&status))).await?;
            Ok(ok_data(json!(
                list.iter().map(|p| p.to_json()).collect::<Vec<_>>()
            )))
        }
        .await,
    )
}

/// The files of one project, optionally with their content.
#[utoipa::path(
    get,
    path = "/api/script/projects/{project_id}/files",
    tag = "projects",
    params(("project_id" = u64, Path, description = "项目ID"), FilesQuery),
    responses(
        (status = 200, description = "data: {project, files}", body = Envelope<answers::ProjectFiles>),
        (status = 404, description = "项目不存在", body = Failure),
    )
)]
async fn files(id: u64, store: ScriptStore, q: HashMap<String, String>) -> Resp {
    finish(
        async {
            let include = query_bool(&q, "include_content")?.unwrap_or(false);
            let (project, files) = blocking(move || {
                let (project, files) = store.project_files(id)?;
                let mut out = Vec::with_capacity(files.len());
                for f in files {
                    let mut v = f.to_json();
                    if include {
                        match store.read_file(f.id) {
                            Ok((_, rec, content)) => {
                                v["size"] = json!(rec.size);
                                v["content"] = json!(content);
                            }
                            Err(e) => v["content_error"] = json!(e.to_string()),
                        }
                    }
                    out.push(v);
                }
                Ok((project, out))
            })
            .await?;
            Ok(ok_data(json!({
                "project": {
                    "id": project.id,
                    "project_name": project.project_name,
                    "project_path": project.project_path(),
                },
                "files": files,
            })))
        }
        .await,
    )
}
