//! `VWED.task.create / get_status / stop / execute`: forwarded to the central task
//! server at `task_server_url`. The operator configured that address, so it is not
//! subject to `http_allow_hosts`.
//!
//! Paths on the task server (see docs/decisions.md):
//! - `POST {base}/api/tasks`                 `{task_label, input_params, source, script_id}`
//! - `GET  {base}/api/tasks/{task_id}`
//! - `POST {base}/api/tasks/{task_id}/stop`
//! - `POST {base}/api/tasks/{task_id}/execute` `{input_params, source, script_id}`

use std::time::Duration;

use hyper::Method;
use serde_json::{Value, json};
use url::Url;

use super::http_client::{self, HttpError, Outgoing};
use crate::Setup;

#[derive(Debug, thiserror::Error)]
pub enum TaskServerError {
    #[error("任务服务器未配置 (task_server_url)")]
    NotConfigured,
    #[error("task_server_url 无效: {0}")]
    BadBase(String),
    #[error("task_id 不能为空")]
    BadTaskId,
    #[error("任务服务器: {0}")]
    Http(#[from] HttpError),
    #[error("任务服务器返回 HTTP {status}: {body}")]
    Status { status: u16, body: String },
}

pub enum Op {
    Create {
        task_label: String,
        input_params: Value,
    },
    Status {
        task_id: String,
    },
    Stop {
        task_id: String,
    },
    Execute {
        task_id: String,
        input_params: Value,
    },
}

fn endpoint(base: &str, segments: &[&str]) -> Result<Url, TaskServerError> {
    if base.trim().is_empty() {
        return Err(TaskServerError::NotConfigured);
    }
    let mut url =
        http_client::parse_url(base.trim()).map_err(|e| TaskServerError::BadBase(e.to_string()))?;
    {
        let mut p = url
            .path_segments_mut()
            .map_err(|()| TaskServerError::BadBase(base.to_string()))?;
        p.pop_if_empty();
        // Each segment is percent-encoded, so a task id cannot add path levels.
        p.extend(segments);
    }
    Ok(url)
}

/// Performs `op` and returns the server's JSON answer (or its text as a string).
pub async fn call(cfg: &Setup, script_id: &str, op: Op) -> Result<Value, TaskServerError> {
    let (method, url, body) = request(cfg.settings.task_server_url.as_str(), script_id, &op)?;
    let f = http_client::send(
        cfg,
        Outgoing {
            method,
            url,
            headers: vec![("accept".into(), "application/json".into())],
            body: body.map(|b| (b.to_string().into_bytes(), "application/json")),
            timeout: Duration::from_millis(cfg.settings.task_server_timeout_ms.max(1)),
            max_bytes: cfg.settings.http_max_response_bytes,
        },
    )
    .await?;
    if !(200..300).contains(&f.status) {
        let mut text = f.text();
        if text.len() > 500 {
            let mut cut = 500;
            while !text.is_char_boundary(cut) {
                cut -= 1;
            }
            text.truncate(cut);
        }
        return Err(TaskServerError::Status {
            status: f.status,
            body: text,
        });
    }
    Ok(f.json().unwrap_or_else(|| Value::String(f.text())))
}

/// The method, URL and body of `op` on the task server at `base`.
fn request(
    base: &str,
    script_id: &str,
    op: &Op,
) -> Result<(Method, Url, Option<Value>), TaskServerError> {
    let check = |id: &str| {
        if id.is_empty() {
            Err(TaskServerError::BadTaskId)
        } else {
            Ok(())
        }
    };
    let (method, url, body) = match op {
        Op::Create {
            task_label,
            input_params,
        } => (
            Method::POST,
            endpoint(base, &["api", "tasks"])?,
            Some(json!({
                "task_label": task_label,
                "input_params": input_params,
                "source": "vwed-edge",
                "script_id": script_id,
            })),
        ),
        Op::Status { task_id } => {
            check(task_id)?;
            (
                Method::GET,
                endpoint(base, &["api", "tasks", task_id])?,
                None,
            )
        }
        Op::Stop { task_id } => {
            check(task_id)?;
            (
                Method::POST,
                endpoint(base, &["api", "tasks", task_id, "stop"])?,
                Some(json!({"source": "vwed-edge", "script_id": script_id})),
            )
        }
        Op::Execute {
            task_id,
            input_params,
        } => {
            check(task_id)?;
            (
                Method::POST,
                endpoint(base, &["api", "tasks", task_id, "execute"])?,
                Some(json!({
                    "input_params": input_params,
                    "source": "vwed-edge",
                    "script_id": script_id,
                })),
            )
        }
    };
    Ok((method, url, body))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn endpoints() {
        assert!(matches!(
            endpoint("", &["api"]),
            Err(TaskServerError::NotConfigured)
        ));
        assert_eq!(
            endpoint("http://h:9/base/", &["api", "tasks", "a/../b"])
                .expect("url")
                .as_str(),
            "http://h:9/base/api/tasks/a%2F..%2Fb"
        );
        assert_eq!(
            endpoint("http://h", &["api", "tasks"])
                .expect("url")
                .as_str(),
            "http://h/api/tasks"
        );
        assert!(matches!(
            endpoint("ftp://h", &[]),
            Err(TaskServerError::BadBase(_))
        ));
    }
}
