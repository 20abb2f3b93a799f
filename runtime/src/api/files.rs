//! `/api/script/files`, `/validate-syntax`, `/upload` (seed 001 §2) and the
//! type stubs of the `VWED` object for editors.

use std::collections::HashMap;
use std::sync::Arc;

use bytes::{Buf, Bytes};
use futures::TryStreamExt;
use serde::Deserialize;
use serde_json::{Value, json};
use utoipa::{IntoParams, ToSchema};
use warp::Filter;
use warp::http::StatusCode;

use super::answers;
use super::body::parse_json;
use super::query::{self, query_bool, query_u64};
use super::reply::{ApiError, Envelope, Failure, Resp, blocking, finish, ok_data, ok_message};
use super::route::{self, Route};
use super::{body, with_engine};
use vwed_auth::Role;
use vwed_engine::Engine;
use vwed_ipc::{Analysis, SyntaxError};
use vwed_store::{FileQuery, NewFile, StoreError};

pub fn routes(s: &super::Services) -> Vec<Route> {
    let engine = &s.engine;
    let (e, b) = (with_engine(engine), body(s));
    let form = warp::multipart::form().max_length(s.config.max_body_bytes);
    vec![
        route::get("/api/script/files/search", Role::Viewer).to(|at| {
            at.and(e.clone())
                .and(query::known::<SearchQuery>())
                .then(search)
        }),
        route::get("/api/script/files/{file_id}/versions", Role::Viewer)
            .to1(|at| at.and(e.clone()).then(versions)),
        route::get(
            "/api/script/files/{file_id}/versions/{version}",
            Role::Viewer,
        )
        .to2(|at| at.and(e.clone()).then(version)),
        route::get("/api/script/files/{file_id}", Role::Viewer)
            .to1(|at| at.and(e.clone()).then(get)),
        route::put("/api/script/files/{file_id}", Role::Engineer).to1(|at| {
            at.and(e.clone())
                .and(b.clone())
                .and(warp::header::optional::<String>("if-match"))
                .then(update)
        }),
        route::delete("/api/script/files/{file_id}", Role::Engineer)
            .to1(|at| at.and(e.clone()).then(delete)),
        route::post("/api/script/files", Role::Engineer)
            .to(|at| at.and(e.clone()).and(b.clone()).then(create)),
        route::post("/api/script/validate-syntax", Role::Engineer)
            .to(|at| at.and(e.clone()).and(b).then(validate)),
        route::post("/api/script/upload", Role::Engineer)
            .multipart()
            .to(|at| at.and(e).and(form).then(upload)),
        route::get("/api/script/stubs/vwed.pyi", Role::Viewer).to(|at| at.then(stubs)),
    ]
}

#[cfg(test)]
#[derive(utoipa::OpenApi)]
#[openapi(paths(
    search, versions, version, get, update, delete, create, validate, upload, stubs
))]
pub struct Doc;

#[derive(IntoParams)]
#[into_params(parameter_in = Query)]
#[allow(dead_code)]
struct SearchQuery {
    /// 搜索关键字 (文件名或内容), 必填
    keyword: String,
    /// 限制在指定项目中搜索
    project_id: Option<u64>,
    /// 文件类型过滤
    file_type: Option<String>,
    /// 是否包含 boot 函数
    has_boot: Option<bool>,
}

/// The seed's template for a new file created without content.
pub fn template(file_name: &str) -> String {
    format!(
        r#"def boot():
    """脚本入口函数"""
    VWED.log.info("script", "脚本 {file_name} 启动成功")

    # 在这里注册您的接口、函数和事件监听器
    # 示例:
    # VWED.api.register_route("/test", "GET", test_handler)
    # VWED.function.register("test_func", test_function)

    pass

def test_handler(request):
    """示例API处理函数"""
    return {{"message": "Hello from script API", "script": "{file_name}"}}

def test_function(args):
    """示例自定义函数"""
    return {{"result": "Function executed", "args": args}}
"#
    )
}

fn check_size(engine: &Engine, content: &str) -> Result<(), ApiError> {
    if content.len() as u64 > engine.cfg.engine.max_script_bytes {
        return Err(ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            format!(
                "脚本内容过大: {} 字节, 上限 {} 字节",
                content.len(),
                engine.cfg.engine.max_script_bytes
            ),
        ));
    }
    Ok(())
}

fn check_file_type(t: &str) -> Result<(), ApiError> {
    if t.is_empty() || t.len() > 20 || !t.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
        return Err(ApiError::bad_request(
            "file_type 只能是不超过 20 个字母数字, 例如 python",
        ));
    }
    Ok(())
}

/// Whether a saved source has `boot()`, and its syntax error if it has one (the
/// save goes ahead all the same: people save half-written code).
async fn check_saved(
    engine: &Engine,
    file_type: &str,
    content: &str,
) -> Result<Analysis, ApiError> {
    if file_type != "python" {
        return Ok(Analysis {
            syntax_error: None,
            has_boot_function: false,
        });
    }
    Ok(engine.analyzer.check_saved(content).await?)
}

/// Where the parser stopped, as `validate-syntax` and a save report it.
fn syntax_json(e: &SyntaxError) -> Value {
    json!({
        "error": format!("语法错误: {}", e.msg),
        "message": e.message,
        "line": e.line,
        "offset": e.offset,
    })
}

/// The answer's message, with the syntax error when the saved code has one.
fn saved_message(done: String, a: &Analysis) -> String {
    match &a.syntax_error {
        None => done,
        Some(e) => match e.line {
            Some(line) => format!("{done} (第 {line} 行有语法错误: {})", e.msg),
            None => format!("{done} (有语法错误: {})", e.msg),
        },
    }
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
struct CreateFile {
    project_id: u64,
    file_name: String,
    /// 文件相对路径 (项目内的子目录), 默认项目根目录
    #[serde(default)]
    file_path: Option<String>,
    /// 文件内容; 不给时使用带 boot() 的模板
    #[serde(default)]
    content: Option<String>,
    /// 默认 python
    #[serde(default)]
    file_type: Option<String>,
    #[serde(default)]
    created_by: Option<String>,
}

async fn create_inner(
    engine: &Arc<Engine>,
    req: CreateFile,
) -> Result<(Value, String, Analysis), ApiError> {
    let file_type = req.file_type.unwrap_or_else(|| "python".into());
    check_file_type(&file_type)?;
    vwed_base::paths::check_file_name(&req.file_name).map_err(ApiError::bad_request)?;
    let content = req.content.unwrap_or_else(|| template(&req.file_name));
    check_size(engine, &content)?;
    super::fleet::writable(&engine.store, req.project_id).await?;
    let checked = check_saved(engine, &file_type, &content).await?;
    let boot = checked.has_boot_function;
    let store = engine.store.clone();
    let file_path = req.file_path.unwrap_or_default();
    let created_by = req.created_by.unwrap_or_default();
    let name = req.file_name.clone();
    let body = content.clone();
    let (_, rec) = blocking(move || {
        store.create_file(&NewFile {
            project_id: req.project_id,
            file_name: &name,
            file_path: &file_path,
            content: &body,
            file_type: &file_type,
            created_by: &created_by,
            has_boot_function: boot,
        })
    })
    .await?;
    Ok((rec.to_json(), content, checked))
}

/// Creates a file; Python files are checked for a `boot()` function.
#[utoipa::path(
    post,
    path = "/api/script/files",
    tag = "files",
    request_body = CreateFile,
    responses(
        (status = 200, description = "message, data: the file with its content", body = Envelope<answers::FileView>),
        (status = 404, description = "项目不存在", body = Failure),
        (status = 409, description = "文件已存在", body = Failure),
        (status = 413, description = "脚本内容过大", body = Failure),
    )
)]
async fn create(engine: Arc<Engine>, body: Bytes) -> Resp {
    finish(
        async {
            let req: CreateFile = parse_json(&body)?;
            let (mut data, content, checked) = create_inner(&engine, req).await?;
            let name = data["file_name"].as_str().unwrap_or_default().to_string();
            data["content"] = json!(content);
            data["syntax_error"] = checked
                .syntax_error
                .as_ref()
                .map_or(Value::Null, syntax_json);
            let message = saved_message(format!("文件 {name} 创建成功"), &checked);
            Ok(ok_message(message, Some(data)))
        }
        .await,
    )
}

/// One file with its content. `data.file.version` and the `ETag` header carry
/// the version of the content, for `If-Match` / `base_version` on an update.
#[utoipa::path(
    get,
    path = "/api/script/files/{file_id}",
    tag = "files",
    params(("file_id" = u64, Path, description = "文件ID")),
    responses(
        (status = 200, description = "data: {file, content}; ETag: the file's version", body = Envelope<answers::FileWithContent>),
        (status = 404, description = "文件不存在", body = Failure),
    )
)]
async fn get(id: u64, engine: Arc<Engine>) -> Resp {
    finish(
        async {
            let store = engine.store.clone();
            let (_, rec, content) = blocking(move || store.read_file(id)).await?;
            let version = rec.version();
            let r = ok_data(json!({"file": rec.to_json(), "content": content}));
            Ok(with_etag(r, version))
        }
        .await,
    )
}

/// `ETag: "<version>"`.
fn with_etag(mut r: Resp, version: u64) -> Resp {
    if let Ok(v) = warp::http::HeaderValue::from_str(&format!("\"{version}\"")) {
        r.headers_mut().insert(warp::http::header::ETAG, v);
    }
    r
}

/// The version an update is based on, from `If-Match` (`"3"`, `W/"3"` or `*`)
/// and the body's `base_version`; when both are given they must agree.
fn base_version(if_match: Option<&str>, in_body: Option<u64>) -> Result<Option<u64>, ApiError> {
    let from_header = match if_match.map(str::trim) {
        None | Some("*") => None,
        Some(raw) => {
            let tag = raw.strip_prefix("W/").unwrap_or(raw);
            let tag = tag
                .strip_prefix('"')
                .and_then(|t| t.strip_suffix('"'))
                .unwrap_or(tag);
            Some(tag.parse::<u64>().map_err(|_| {
                ApiError::bad_request(format!(
                    "If-Match 无效: {raw} (应为文件的一个版本, 如 \"3\")"
                ))
            })?)
        }
    };
    match (from_header, in_body) {
        (Some(h), Some(b)) if h != b => Err(ApiError::bad_request(format!(
            "If-Match ({h}) 与 base_version ({b}) 不一致"
        ))),
        (h, b) => Ok(h.or(b)),
    }
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
struct UpdateFile {
    content: String,
    #[serde(default)]
    updated_by: Option<String>,
    /// 本次修改所基于的版本 (GET 返回的 file.version); 文件已被他人修改时 409。与 If-Match 头等价
    #[serde(default)]
    base_version: Option<u64>,
}

/// Replaces a file's content; the previous content is kept as a version. With
/// `If-Match` or `base_version`, only if the file is still at that version.
#[utoipa::path(
    put,
    path = "/api/script/files/{file_id}",
    tag = "files",
    params(
        ("file_id" = u64, Path, description = "文件ID"),
        ("If-Match" = Option<String>, Header, description = "文件版本 (GET 的 ETag); 版本已变时 409"),
    ),
    request_body = UpdateFile,
    responses(
        (status = 200, description = "message, data: {file, backup_path, backup_version}; ETag: the new version", body = Envelope<answers::FileUpdated>),
        (status = 400, description = "If-Match 无效", body = Failure),
        (status = 404, description = "文件不存在", body = Failure),
        (status = 409, description = "文件已被修改: data {file_id, current_version, base_version}", body = Failure),
        (status = 413, description = "脚本内容过大", body = Failure),
    )
)]
async fn update(id: u64, engine: Arc<Engine>, body: Bytes, if_match: Option<String>) -> Resp {
    finish(
        async {
            let req: UpdateFile = parse_json(&body)?;
            let base = base_version(if_match.as_deref(), req.base_version)?;
            check_size(&engine, &req.content)?;
            let store = engine.store.clone();
            let current = blocking(move || store.get_file(id)).await?;
            super::fleet::writable(&engine.store, current.project_id).await?;
            let checked = check_saved(&engine, &current.file_type, &req.content).await?;
            let boot = checked.has_boot_function;
            let store = engine.store.clone();
            let content = req.content.clone();
            let by = req.updated_by.unwrap_or_default();
            let done = tokio::task::spawn_blocking(move || {
                store.update_file(id, &content, &by, boot, base)
            })
            .await
            .map_err(|e| ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, e))?;
            let updated = match done {
                Ok(u) => u,
                Err(StoreError::VersionConflict {
                    file,
                    current,
                    base,
                }) => {
                    let e = StoreError::VersionConflict {
                        file,
                        current,
                        base,
                    };
                    let mut err = ApiError::from(e);
                    err.data = Some(json!({
                        "file_id": id, "current_version": current, "base_version": base,
                    }));
                    return Ok(with_etag(err.into_response(), current));
                }
                Err(e) => return Err(e.into()),
            };
            let (version, backup) = (updated.file.version(), updated.backup_version);
            let mut file = updated.file.to_json();
            file["content"] = json!(req.content);
            let r = ok_message(
                saved_message("文件内容更新成功".into(), &checked),
                Some(json!({
                    "file": file,
                    "backup_path": format!("/api/script/files/{id}/versions/{backup}"),
                    "backup_version": backup,
                    "syntax_error": checked.syntax_error.as_ref().map_or(Value::Null, syntax_json),
                })),
            );
            Ok(with_etag(r, version))
        }
        .await,
    )
}

/// Deletes a file that no running script uses.
#[utoipa::path(
    delete,
    path = "/api/script/files/{file_id}",
    tag = "files",
    params(("file_id" = u64, Path, description = "文件ID")),
    responses(
        (status = 200, description = "message", body = answers::Done),
        (status = 404, description = "文件不存在", body = Failure),
        (status = 409, description = "脚本正在运行", body = Failure),
    )
)]
async fn delete(id: u64, engine: Arc<Engine>) -> Resp {
    finish(
        async {
            let store = engine.store.clone();
            let rec = blocking(move || store.get_file(id)).await?;
            super::fleet::writable(&engine.store, rec.project_id).await?;
            if let Some(i) = engine
                .instances()
                .into_iter()
                .find(|i| i.file_id == id && i.state().occupies_path())
            {
                return Err(ApiError::from(StoreError::Running(format!(
                    "{} ({})",
                    i.script_path, i.script_id
                ))));
            }
            let store = engine.store.clone();
            blocking(move || store.delete_file(id)).await?;
            Ok(ok_message(format!("文件 {} 删除成功", rec.file_name), None))
        }
        .await,
    )
}

/// Files whose name or content holds the keyword.
#[utoipa::path(
    get,
    path = "/api/script/files/search",
    tag = "files",
    params(SearchQuery),
    responses((status = 200, description = "data: {count, files}", body = Envelope<answers::FileSearch>))
)]
async fn search(engine: Arc<Engine>, q: HashMap<String, String>) -> Resp {
    finish(
        async {
            let keyword = q
                .get("keyword")
                .cloned()
                .ok_or_else(|| ApiError::bad_request("缺少必填参数 keyword"))?;
            let project_id = query_u64(&q, "project_id")?;
            let has_boot = query_bool(&q, "has_boot")?;
            let file_type = q.get("file_type").cloned();
            let store = engine.store.clone();
            let found = blocking(move || {
                store.search(&FileQuery {
                    keyword: &keyword,
                    project_id,
                    file_type: file_type.as_deref(),
                    has_boot,
                })
            })
            .await?;
            let files: Vec<Value> = found
                .iter()
                .map(|(f, project_name)| {
                    json!({
                        "id": f.id,
                        "project_id": f.project_id,
                        "file_name": f.file_name,
                        "file_path": f.file_path,
                        "project_name": project_name,
                        "file_type": f.file_type,
                        "has_boot_function": f.has_boot_function,
                        "created_at": f.created_at,
                    })
                })
                .collect();
            Ok(ok_data(json!({"count": files.len(), "files": files})))
        }
        .await,
    )
}

#[derive(Deserialize, ToSchema)]
struct ValidateReq {
    content: String,
}

/// Checks Python syntax without saving anything. A syntax error is a success
/// with `data.valid = false`, line and offset.
#[utoipa::path(
    post,
    path = "/api/script/validate-syntax",
    tag = "files",
    request_body = ValidateReq,
    responses(
        (status = 200, description = "data: {valid, message, has_boot_function} or {valid: false, error, line, offset}", body = Envelope<answers::SyntaxCheck>),
        (status = 413, description = "脚本内容过大", body = Failure),
    )
)]
async fn validate(engine: Arc<Engine>, body: Bytes) -> Resp {
    finish(async {
        let req: ValidateReq = parse_json(&body)?;
        check_size(&engine, &req.content)?;
        let a = engine.analyzer.analyze(&req.content).await?;
        Ok(ok_data(match a.syntax_error {
            None => json!({"valid": true, "message": "语法检查通过", "has_boot_function": a.has_boot_function}),
            Some(e) => {
                let mut v = syntax_json(&e);
                v["valid"] = json!(false);
                v
            }
        }))
    }
    .await)
}

/// The kept versions of a file, newest last; `pruned` counts those removed by
/// the history limits (`file_versions_keep`, `file_versions_max_bytes`).
#[utoipa::path(
    get,
    path = "/api/script/files/{file_id}/versions",
    tag = "files",
    params(("file_id" = u64, Path, description = "文件ID")),
    responses((status = 200, description = "data: {file_id, versions, pruned}", body = Envelope<answers::FileVersions>))
)]
async fn versions(id: u64, engine: Arc<Engine>) -> Resp {
    finish(
        async {
            let store = engine.store.clone();
            let (list, pruned) = blocking(move || store.list_versions(id)).await?;
            let items: Vec<Value> = list
                .iter()
                .map(|(n, v)| {
                    json!({
                        "version": n,
                        "saved_at": v.saved_at,
                        "saved_by": v.saved_by,
                        "size": v.content.len(),
                        "path": format!("/api/script/files/{id}/versions/{n}"),
                    })
                })
                .collect();
            Ok(ok_data(
                json!({"file_id": id, "versions": items, "pruned": pruned}),
            ))
        }
        .await,
    )
}

/// One saved version with its content.
#[utoipa::path(
    get,
    path = "/api/script/files/{file_id}/versions/{version}",
    tag = "files",
    params(
        ("file_id" = u64, Path, description = "文件ID"),
        ("version" = u64, Path, description = "版本号"),
    ),
    responses(
        (status = 200, description = "data: {file_id, version, saved_at, saved_by, content}", body = Envelope<answers::FileVersion>),
        (status = 404, description = "没有此版本", body = Failure),
    )
)]
async fn version(id: u64, n: u64, engine: Arc<Engine>) -> Resp {
    finish(
        async {
            let store = engine.store.clone();
            let v = blocking(move || store.get_version(id, n))
                .await?
                .ok_or_else(|| {
                    ApiError::new(StatusCode::NOT_FOUND, format!("文件 {id} 没有版本 {n}"))
                })?;
            Ok(ok_data(json!({
                "file_id": id,
                "version": n,
                "saved_at": v.saved_at,
                "saved_by": v.saved_by,
                "content": v.content,
            })))
        }
        .await,
    )
}

/// The fields of an upload form.
#[derive(ToSchema)]
struct UploadForm {
    /// 项目ID
    project_id: u64,
    /// 脚本文件 (UTF-8 文本); 它的文件名 (不含目录) 即新文件的名字
    #[schema(value_type = String, format = Binary)]
    file: Uploaded,
}

struct Uploaded {
    name: String,
    data: Vec<u8>,
}

type Part = (String, Option<String>, Vec<u8>);

/// Every part of the form: field name, file name, content. The whole form is
/// bounded by the body limit.
async fn read_parts(form: warp::multipart::FormData) -> Result<Vec<Part>, ApiError> {
    form.and_then(|mut part| async move {
        let name = part.name().to_string();
        let filename = part.filename().map(str::to_string);
        let mut data = Vec::new();
        while let Some(chunk) = part.data().await {
            let mut chunk = chunk?;
            while chunk.has_remaining() {
                let c = chunk.chunk();
                data.extend_from_slice(c);
                let n = c.len();
                chunk.advance(n);
            }
        }
        Ok((name, filename, data))
    })
    .try_collect()
    .await
    .map_err(|e| ApiError::bad_request(format!("表单解析失败: {e}")))
}

fn upload_form(parts: Vec<Part>) -> Result<UploadForm, ApiError> {
    let mut project_id = None;
    let mut file = None;
    for (name, filename, data) in parts {
        match name.as_str() {
            "project_id" => {
                let text = String::from_utf8(data)
                    .map_err(|_| ApiError::bad_request("project_id 必须是数字"))?;
                project_id = Some(
                    text.trim()
                        .parse::<u64>()
                        .map_err(|_| ApiError::bad_request("project_id 必须是数字"))?,
                );
            }
            "file" => {
                let name = filename.ok_or_else(|| ApiError::bad_request("上传的文件缺少文件名"))?;
                file = Some(Uploaded { name, data });
            }
            _ => {}
        }
    }
    Ok(UploadForm {
        project_id: project_id.ok_or_else(|| ApiError::bad_request("缺少必填字段 project_id"))?,
        file: file.ok_or_else(|| ApiError::bad_request("缺少必填字段 file"))?,
    })
}

/// Creates a file from an uploaded one (seed 001 §2.7).
#[utoipa::path(
    post,
    path = "/api/script/upload",
    tag = "files",
    request_body(content = UploadForm, content_type = "multipart/form-data"),
    responses(
        (status = 200, description = "message, data: the new file", body = Envelope<answers::Uploaded>),
        (status = 409, description = "文件已存在", body = Failure),
        (status = 413, description = "请求体过大", body = Failure),
    )
)]
async fn upload(engine: Arc<Engine>, form: warp::multipart::FormData) -> Resp {
    finish(
        async {
            let UploadForm { project_id, file } = upload_form(read_parts(form).await?)?;
            // Browsers may send a path; only its last part names the file.
            let filename = file
                .name
                .rsplit(['/', '\\'])
                .next()
                .unwrap_or(&file.name)
                .to_string();
            let content = String::from_utf8(file.data)
                .map_err(|_| ApiError::bad_request("上传的文件不是 UTF-8 文本"))?;
            let file_type = if filename.ends_with(".py") {
                "python"
            } else {
                "text"
            };
            let (data, _, checked) = create_inner(
                &engine,
                CreateFile {
                    project_id,
                    file_name: filename.clone(),
                    file_path: None,
                    content: Some(content),
                    file_type: Some(file_type.into()),
                    created_by: None,
                },
            )
            .await?;
            Ok(ok_message(
                "文件上传成功",
                Some(json!({
                    "id": data["id"],
                    "project_id": data["project_id"],
                    "file_name": data["file_name"],
                    "file_path": data["file_path"],
                    "size": data["size"],
                    "has_boot_function": data["has_boot_function"],
                    "created_at": data["created_at"],
                    "syntax_error": checked.syntax_error.as_ref().map_or(Value::Null, syntax_json),
                })),
            ))
        }
        .await,
    )
}

/// Type stubs of the `VWED` object, for an editor's completion.
#[utoipa::path(
    get,
    path = "/api/script/stubs/vwed.pyi",
    tag = "files",
    responses((status = 200, description = "vwed.pyi", content_type = "text/x-python", body = String))
)]
async fn stubs() -> Resp {
    let mut r = warp::reply::Response::new(vwed_ipc::STUBS_PYI.into());
    r.headers_mut().insert(
        warp::http::header::CONTENT_TYPE,
        warp::http::HeaderValue::from_static("text/x-python; charset=utf-8"),
    );
    r
}
