use std::collections::HashMap;
use std::sync::Arc;

use bytes::Bytes;
use serde::Deserialize;
use serde_json::json;
use warp::http::StatusCode;

use super::body::parse_json;
use super::query_bool;
use super::reply::{Resp, blocking, finish, json_response, ok_data};
use crate::engine::Engine;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct CreateProject {
    project_name: String,
    #[serde(default)]
    description: Option<String>,
    #[serde(default)]
    created_by: Option<String>,
}

pub async fn create(engine: Arc<Engine>, body: Bytes) -> Resp {
    finish(
        async {
            let req: CreateProject = parse_json(&body)?;
            let store = engine.store.clone();
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

pub async fn list(engine: Arc<Engine>, q: HashMap<String, String>) -> Resp {
    finish(
        async {
            let status = q.get("status").cloned().unwrap_or_else(|| "active".into());
            let store = engine.store.clone();
            let list = blocking(move || store.list_projects(Some(&status))).await?;
            Ok(ok_data(json!(
                list.iter().map(|p| p.to_json()).collect::<Vec<_>>()
            )))
        }
        .await,
    )
}

pub async fn files(id: u64, engine: Arc<Engine>, q: HashMap<String, String>) -> Resp {
    finish(
        async {
            let include = query_bool(&q, "include_content")?.unwrap_or(false);
            let store = engine.store.clone();
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
