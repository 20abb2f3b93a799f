use std::collections::HashMap;
use std::sync::Arc;

use bytes::{Buf, Bytes};
use futures::TryStreamExt;
use serde::Deserialize;
use serde_json::{Value, json};
use warp::http::StatusCode;

use super::body::parse_json;
use super::reply::{ApiError, Resp, blocking, finish, ok_data, ok_message};
use super::{query_bool, query_u64};
use crate::engine::Engine;
use crate::store::{FileQuery, NewFile, StoreError};
use vwed_ipc::{Analysis, SyntaxError};

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
    if content.len() as u64 > engine.cfg.max_script_bytes {
        return Err(ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            format!(
                "脚本内容过大: {} 字节, 上限 {} 字节",
                content.len(),
                engine.cfg.max_script_bytes
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

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct CreateFile {
    project_id: u64,
    file_name: String,
    #[serde(default)]
    file_path: Option<String>,
    #[serde(default)]
    content: Option<String>,
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
    crate::paths::check_file_name(&req.file_name).map_err(ApiError::bad_request)?;
    let content = req.content.unwrap_or_else(|| template(&req.file_name));
    check_size(engine, &content)?;
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

pub async fn create(engine: Arc<Engine>, body: Bytes) -> Resp {
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

pub async fn get(id: u64, engine: Arc<Engine>) -> Resp {
    finish(
        async {
            let store = engine.store.clone();
            let (_, rec, content) = blocking(move || store.read_file(id)).await?;
            Ok(ok_data(json!({"file": rec.to_json(), "content": content})))
        }
        .await,
    )
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct UpdateFile {
    content: String,
    #[serde(default)]
    updated_by: Option<String>,
}

pub async fn update(id: u64, engine: Arc<Engine>, body: Bytes) -> Resp {
    finish(
        async {
            let req: UpdateFile = parse_json(&body)?;
            check_size(&engine, &req.content)?;
            let store = engine.store.clone();
            let current = blocking(move || store.get_file(id)).await?;
            let checked = check_saved(&engine, &current.file_type, &req.content).await?;
            let boot = checked.has_boot_function;
            let store = engine.store.clone();
            let content = req.content.clone();
            let by = req.updated_by.unwrap_or_default();
            let (rec, version) =
                blocking(move || store.update_file(id, &content, &by, boot)).await?;
            let mut file = rec.to_json();
            file["content"] = json!(req.content);
            Ok(ok_message(
                saved_message("文件内容更新成功".into(), &checked),
                Some(json!({
                    "file": file,
                    "backup_path": format!("/api/script/files/{id}/versions/{version}"),
                    "backup_version": version,
                    "syntax_error": checked.syntax_error.as_ref().map_or(Value::Null, syntax_json),
                })),
            ))
        }
        .await,
    )
}

pub async fn delete(id: u64, engine: Arc<Engine>) -> Resp {
    finish(
        async {
            let store = engine.store.clone();
            let rec = blocking(move || store.get_file(id)).await?;
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

pub async fn search(engine: Arc<Engine>, q: HashMap<String, String>) -> Resp {
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

#[derive(Deserialize)]
struct ValidateReq {
    content: String,
}

pub async fn validate(engine: Arc<Engine>, body: Bytes) -> Resp {
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

pub async fn versions(id: u64, engine: Arc<Engine>) -> Resp {
    finish(
        async {
            let store = engine.store.clone();
            let list = blocking(move || store.list_versions(id)).await?;
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
            Ok(ok_data(json!({"file_id": id, "versions": items})))
        }
        .await,
    )
}

pub async fn version(id: u64, n: u64, engine: Arc<Engine>) -> Resp {
    finish(
        async {
            let store = engine.store.clone();
            let list = blocking(move || store.list_versions(id)).await?;
            let (_, v) = list.into_iter().find(|(k, _)| *k == n).ok_or_else(|| {
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

pub async fn upload(engine: Arc<Engine>, form: warp::multipart::FormData) -> Resp {
    finish(
        async {
            let parts: Vec<(String, Option<String>, Vec<u8>)> = form
                .and_then(|mut part| async move {
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
                .map_err(|e| ApiError::bad_request(format!("表单解析失败: {e}")))?;
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
                        let filename = filename
                            .ok_or_else(|| ApiError::bad_request("上传的文件缺少文件名"))?;
                        file = Some((filename, data));
                    }
                    _ => {}
                }
            }
            let project_id =
                project_id.ok_or_else(|| ApiError::bad_request("缺少必填字段 project_id"))?;
            let (filename, data) =
                file.ok_or_else(|| ApiError::bad_request("缺少必填字段 file"))?;
            // Browsers may send a path; only its last part names the file.
            let filename = filename
                .rsplit(['/', '\\'])
                .next()
                .unwrap_or(&filename)
                .to_string();
            let content = String::from_utf8(data)
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
