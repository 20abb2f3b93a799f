//! A project as a tree: `GET .../tree`, folders (`POST`/`DELETE .../dirs`),
//! move/rename and copy of files and folders, search inside file contents with
//! line numbers (`GET /api/script/grep`), and the project as a tar archive.
//! Paths are relative to the project folder and checked like every other.

use std::collections::HashMap;
use std::sync::Arc;

use bytes::Bytes;
use serde::Deserialize;
use serde_json::{Value, json};
use utoipa::{IntoParams, ToSchema};
use warp::Filter;
use warp::http::{HeaderValue, StatusCode, header};

use super::answers;
use super::body::parse_json;
use super::query::{self, query_bool, query_u64};
use super::reply::{
    ApiError, Envelope, Failure, Resp, finish, off_thread as run, ok_data, ok_message,
};
use super::route::{self, Route};
use super::{body, with_engine};
use crate::archive::{ArchiveError, Tar};
use vwed_auth::Role;
use vwed_engine::Engine;
use vwed_store::StoreError;
use vwed_store::tree::{Busy, Kind, TreeError};

/// Largest project archive, in bytes.
pub const MAX_ARCHIVE_BYTES: u64 = 32 * 1024 * 1024;
/// Most hits one search returns.
const MAX_HITS: u64 = 1000;

pub fn routes(s: &super::Services) -> Vec<Route> {
    let engine = &s.engine;
    let (e, b) = (with_engine(engine), body(s));
    vec![
        route::get("/api/script/projects/{project_id}/tree", Role::Viewer)
            .to1(|at| at.and(e.clone()).then(tree)),
        route::post("/api/script/projects/{project_id}/dirs", Role::Engineer)
            .to1(|at| at.and(e.clone()).and(b.clone()).then(make_dir)),
        route::delete("/api/script/projects/{project_id}/dirs", Role::Engineer).to1(|at| {
            at.and(e.clone())
                .and(query::known::<DirQuery>())
                .then(remove_dir)
        }),
        route::post("/api/script/projects/{project_id}/move", Role::Engineer)
            .to1(|at| at.and(e.clone()).and(b.clone()).then(move_path)),
        route::post("/api/script/projects/{project_id}/copy", Role::Engineer)
            .to1(|at| at.and(e.clone()).and(b).then(copy_path)),
        route::get("/api/script/projects/{project_id}/archive", Role::Viewer)
            .to1(|at| at.and(e.clone()).then(archive)),
        route::get("/api/script/grep", Role::Viewer)
            .to(|at| at.and(e).and(query::known::<GrepQuery>()).then(grep)),
    ]
}

#[cfg(test)]
#[derive(utoipa::OpenApi)]
#[openapi(paths(tree, make_dir, remove_dir, move_path, copy_path, archive, grep))]
pub struct Doc;

impl From<TreeError> for ApiError {
    fn from(e: TreeError) -> Self {
        match e {
            TreeError::Store(StoreError::Io(io)) if io.kind() == std::io::ErrorKind::NotFound => {
                ApiError::new(StatusCode::NOT_FOUND, StoreError::Io(io))
            }
            TreeError::Store(s) => ApiError::from(s),
            other => {
                let status = match &other {
                    TreeError::NoDir(_) | TreeError::NotFound(_) => StatusCode::NOT_FOUND,
                    TreeError::IntoItself(_) => StatusCode::BAD_REQUEST,
                    TreeError::TooLarge(_) => StatusCode::PAYLOAD_TOO_LARGE,
                    _ => StatusCode::CONFLICT,
                };
                ApiError::new(status, other)
            }
        }
    }
}

/// The files running scripts hold: they may not be moved or deleted.
fn busy(engine: &Engine) -> Busy {
    engine
        .instances()
        .into_iter()
        .filter(|i| i.state().occupies_path())
        .map(|i| (i.file_id, format!("{} ({})", i.script_path, i.script_id)))
        .collect()
}

/// The folders and files of a project. Files carry their record (`file`), or
/// `null` when they were put there by hand; `missing` marks a record whose file is gone.
#[utoipa::path(
    get,
    path = "/api/script/projects/{project_id}/tree",
    tag = "files",
    params(("project_id" = u64, Path, description = "项目ID")),
    responses(
        (status = 200, description = "data: {project, entries: [{path, kind: dir|file, size, modified_ms, file, missing}]}", body = Envelope<answers::ProjectTree>),
        (status = 404, description = "项目不存在", body = Failure),
    )
)]
async fn tree(project_id: u64, engine: Arc<Engine>) -> Resp {
    finish(
        async {
            let store = engine.store.clone();
            let (project, entries) = run(move || store.tree(project_id)).await?;
            let entries: Vec<Value> = entries
                .iter()
                .map(|e| {
                    json!({
                        "path": e.path,
                        "kind": if e.kind == Kind::Dir { "dir" } else { "file" },
                        "size": e.size,
                        "modified_ms": e.modified_ms,
                        "missing": e.kind == Kind::File && e.modified_ms == 0 && e.file.is_some(),
                        "file": e.file.as_ref().map(|f| f.to_json()),
                    })
                })
                .collect();
            Ok(ok_data(
                json!({"project": project.to_json(), "entries": entries}),
            ))
        }
        .await,
    )
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
struct DirBody {
    /// 文件夹路径 (项目内), 例如 lib/robots
    path: String,
}

/// Creates a folder (and the folders above it).
#[utoipa::path(
    post,
    path = "/api/script/projects/{project_id}/dirs",
    tag = "files",
    params(("project_id" = u64, Path, description = "项目ID")),
    request_body = DirBody,
    responses(
        (status = 200, description = "message, data: {project_id, path}", body = Envelope<answers::DirMade>),
        (status = 400, description = "路径无效", body = Failure),
        (status = 409, description = "已存在, 或项目由 fleet 同步管理 (本地只读)", body = Failure),
    )
)]
async fn make_dir(project_id: u64, engine: Arc<Engine>, body: Bytes) -> Resp {
    finish(
        async {
            let b: DirBody = parse_json(&body)?;
            super::fleet::writable(&engine.store, project_id).await?;
            let store = engine.store.clone();
            let path = b.path.clone();
            run(move || store.make_dir(project_id, &path)).await?;
            Ok(ok_message(
                format!("文件夹 {} 创建成功", b.path),
                Some(json!({"project_id": project_id, "path": b.path})),
            ))
        }
        .await,
    )
}

#[derive(IntoParams)]
#[into_params(parameter_in = Query)]
#[allow(dead_code)]
struct DirQuery {
    /// 文件夹路径 (项目内), 必填
    path: String,
    /// 连同其中的文件 (及其版本) 一起删除, 默认 false
    recursive: Option<bool>,
}

/// Deletes a folder; with `recursive=true` also the files in it (and their
/// versions), unless a running script uses one of them.
#[utoipa::path(
    delete,
    path = "/api/script/projects/{project_id}/dirs",
    tag = "files",
    params(("project_id" = u64, Path, description = "项目ID"), DirQuery),
    responses(
        (status = 200, description = "message, data: {project_id, path, files_deleted}", body = Envelope<answers::DirRemoved>),
        (status = 404, description = "文件夹不存在", body = Failure),
        (status = 409, description = "文件夹不是空的, 或脚本正在运行", body = Failure),
    )
)]
async fn remove_dir(project_id: u64, engine: Arc<Engine>, q: HashMap<String, String>) -> Resp {
    finish(
        async {
            let path = q
                .get("path")
                .cloned()
                .ok_or_else(|| ApiError::bad_request("缺少必填参数 path"))?;
            let recursive = query_bool(&q, "recursive")?.unwrap_or(false);
            super::fleet::writable(&engine.store, project_id).await?;
            let (store, busy, p) = (engine.store.clone(), busy(&engine), path.clone());
            let n = run(move || store.remove_dir(project_id, &p, recursive, &busy)).await?;
            Ok(ok_message(
                format!("文件夹 {path} 删除成功"),
                Some(json!({"project_id": project_id, "path": path, "files_deleted": n})),
            ))
        }
        .await,
    )
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
struct MoveBody {
    /// 现在的路径 (文件或文件夹)
    from: String,
    /// 新路径; 不能已存在
    to: String,
}

/// Renames or moves a file or folder inside its project. File ids stay, with
/// their versions; a file a running script uses cannot move.
#[utoipa::path(
    post,
    path = "/api/script/projects/{project_id}/move",
    tag = "files",
    params(("project_id" = u64, Path, description = "项目ID")),
    request_body = MoveBody,
    responses(
        (status = 200, description = "message, data: {project_id, from, to, files_moved}", body = Envelope<answers::PathMoved>),
        (status = 404, description = "不存在", body = Failure),
        (status = 409, description = "目标已存在, 或脚本正在运行", body = Failure),
    )
)]
async fn move_path(project_id: u64, engine: Arc<Engine>, body: Bytes) -> Resp {
    finish(
        async {
            let b: MoveBody = parse_json(&body)?;
            super::fleet::writable(&engine.store, project_id).await?;
            let (store, busy) = (engine.store.clone(), busy(&engine));
            let (from, to) = (b.from.clone(), b.to.clone());
            let n = run(move || store.move_path(project_id, &from, &to, &busy)).await?;
            Ok(ok_message(
                format!("已将 {} 移动到 {}", b.from, b.to),
                Some(
                    json!({"project_id": project_id, "from": b.from, "to": b.to, "files_moved": n}),
                ),
            ))
        }
        .await,
    )
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
struct CopyBody {
    from: String,
    to: String,
    /// 目标项目, 默认同一项目
    #[serde(default)]
    to_project_id: Option<u64>,
}

/// Copies a file or folder, into the same or another project; copied files
/// get new ids and start without versions.
#[utoipa::path(
    post,
    path = "/api/script/projects/{project_id}/copy",
    tag = "files",
    params(("project_id" = u64, Path, description = "项目ID")),
    request_body = CopyBody,
    responses(
        (status = 200, description = "message, data: {project_id, to_project_id, from, to, files_copied}", body = Envelope<answers::PathCopied>),
        (status = 404, description = "不存在", body = Failure),
        (status = 409, description = "目标已存在", body = Failure),
        (status = 413, description = "超出上限", body = Failure),
    )
)]
async fn copy_path(project_id: u64, engine: Arc<Engine>, body: Bytes) -> Resp {
    finish(
        async {
            let b: CopyBody = parse_json(&body)?;
            let to_project = b.to_project_id.unwrap_or(project_id);
            // Copying out of a fleet project is reading it; into one is changing it.
            super::fleet::writable(&engine.store, to_project).await?;
            let store = engine.store.clone();
            let (from, to) = (b.from.clone(), b.to.clone());
            let n = run(move || store.copy_path(project_id, &from, to_project, &to)).await?;
            Ok(ok_message(
                format!("已将 {} 复制到 {}", b.from, b.to),
                Some(json!({
                    "project_id": project_id, "to_project_id": to_project,
                    "from": b.from, "to": b.to, "files_copied": n,
                })),
            ))
        }
        .await,
    )
}

/// The project's files as a tar archive (`<project>/<path>`), at most 32 MiB.
#[utoipa::path(
    get,
    path = "/api/script/projects/{project_id}/archive",
    tag = "files",
    params(("project_id" = u64, Path, description = "项目ID")),
    responses(
        (status = 200, description = "<project>.tar", content_type = "application/x-tar", body = String),
        (status = 404, description = "项目不存在", body = Failure),
        (status = 413, description = "项目过大", body = Failure),
    )
)]
async fn archive(project_id: u64, engine: Arc<Engine>) -> Resp {
    finish(
        async {
            let store = engine.store.clone();
            let (name, bytes) = run(move || {
                let (project, entries) = store.tree(project_id)?;
                let name = project.project_name;
                let mut tar = Tar::new(MAX_ARCHIVE_BYTES);
                for e in entries.into_iter().filter(|e| e.kind == Kind::File) {
                    if e.size > MAX_ARCHIVE_BYTES {
                        return Err(tar_error(ArchiveError::TooLarge(MAX_ARCHIVE_BYTES)));
                    }
                    // A record whose file is gone has nothing to archive.
                    let Some(data) = store.read_at(&name, &e.path)? else {
                        continue;
                    };
                    tar.add(&format!("{name}/{}", e.path), &data, e.modified_ms / 1000)
                        .map_err(tar_error)?;
                }
                Ok((name, tar.finish()))
            })
            .await?;
            let mut r = warp::reply::Response::new(bytes.into());
            r.headers_mut().insert(
                header::CONTENT_TYPE,
                HeaderValue::from_static("application/x-tar"),
            );
            let disposition = format!(
                "attachment; filename=\"project-{project_id}.tar\"; filename*=UTF-8''{}.tar",
                percent_encode(&name)
            );
            if let Ok(v) = HeaderValue::from_str(&disposition) {
                r.headers_mut().insert(header::CONTENT_DISPOSITION, v);
            }
            Ok(r)
        }
        .await,
    )
}

fn tar_error(e: ArchiveError) -> TreeError {
    match e {
        ArchiveError::TooLarge(_) => TreeError::TooLarge(e.to_string()),
        ArchiveError::Io(io) => TreeError::from(io),
    }
}

fn percent_encode(s: &str) -> String {
    s.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

#[derive(IntoParams)]
#[into_params(parameter_in = Query)]
#[allow(dead_code)]
struct GrepQuery {
    /// 要查找的文字 (不区分大小写), 必填
    q: String,
    /// 只在这个项目中查找
    project_id: Option<u64>,
    /// 最多返回的匹配行数, 默认 200, 上限 1000
    limit: Option<u64>,
}

/// Lines of the script files that hold a text, with file, line and column.
#[utoipa::path(
    get,
    path = "/api/script/grep",
    tag = "files",
    params(GrepQuery),
    responses(
        (status = 200, description = "data: {hits: [{file_id, project_id, project_name, file_path, line, column, text}], count, truncated}", body = Envelope<answers::GrepHits>),
        (status = 400, description = "缺少 q", body = Failure),
    )
)]
async fn grep(engine: Arc<Engine>, q: HashMap<String, String>) -> Resp {
    finish(
        async {
            let needle = q
                .get("q")
                .filter(|s| !s.is_empty())
                .cloned()
                .ok_or_else(|| ApiError::bad_request("缺少必填参数 q"))?;
            let project_id = query_u64(&q, "project_id")?;
            let limit = query_u64(&q, "limit")?.unwrap_or(200).clamp(1, MAX_HITS) as usize;
            let (store, max) = (engine.store.clone(), engine.cfg.engine.max_script_bytes);
            let (hits, truncated) =
                run(move || store.grep(project_id, &needle, limit, max)).await?;
            let hits: Vec<Value> = hits
                .iter()
                .map(|h| {
                    json!({
                        "file_id": h.file_id, "project_id": h.project_id,
                        "project_name": h.project_name, "file_path": h.file_path,
                        "line": h.line, "column": h.column, "text": h.text,
                    })
                })
                .collect();
            Ok(ok_data(
                json!({"count": hits.len(), "truncated": truncated, "hits": hits}),
            ))
        }
        .await,
    )
}
