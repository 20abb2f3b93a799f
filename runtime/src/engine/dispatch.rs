//! `VWED.*` calls that a worker asks the supervisor to perform.

use std::sync::Arc;

use serde::Deserialize;
use serde_json::{Value, json};

use super::Engine;
use super::instance::Instance;

#[derive(Deserialize)]
struct CallArgs {
    name: String,
    #[serde(default)]
    args: Value,
    timeout_ms: Option<u64>,
}

#[derive(Deserialize)]
struct KeyArgs {
    key: String,
    #[serde(default)]
    value: Value,
}

fn parse<T: for<'de> Deserialize<'de>>(args: &str) -> Result<T, String> {
    serde_json::from_str(args).map_err(|e| format!("参数错误: {e}"))
}

impl Engine {
    /// Performs one service call and answers with JSON text or an error message.
    pub async fn service(
        self: &Arc<Self>,
        inst: &Arc<Instance>,
        service: &str,
        args: &str,
    ) -> Result<String, String> {
        match service {
            "function.call" => {
                let a: CallArgs = parse(args)?;
                self.call_function(None, &a.name, &a.args, a.timeout_ms)
                    .await
                    .map(|v| v.to_string())
                    .map_err(|e| e.to_string())
            }
            "function.list" => Ok(Value::Array(self.functions_json()).to_string()),
            // Frames are handled in order, so every line this worker sent before
            // the request is already queued: the answer means they are on disk.
            "log.flush" => self
                .logs
                .store
                .flush()
                .await
                .map(|n| {
                    // Lines this run lost to its rate limit are not on disk: say so.
                    let dropped = inst
                        .log
                        .rate_dropped
                        .load(std::sync::atomic::Ordering::Relaxed);
                    json!({"committed": n, "rate_dropped": dropped}).to_string()
                })
                .map_err(|e| e.to_string()),
            s if s.starts_with("data.") => self.data_service(inst, s, args).await,
            s if crate::integrations::handles(s) => {
                crate::integrations::call(self, inst, s, args).await
            }
            s if s.starts_with("io.") || s.starts_with("device.") || s.starts_with("robot.") => {
                crate::io::services::call(self, inst, s, args).await
            }
            other => Err(format!("未知的服务调用: {other}")),
        }
    }

    async fn data_service(
        &self,
        inst: &Arc<Instance>,
        service: &str,
        args: &str,
    ) -> Result<String, String> {
        let data = self.data.clone();
        // Data belongs to the script file, not the run: it survives restarts.
        let script = inst.script_path.clone();
        let service = service.to_string();
        let args = args.to_string();
        tokio::task::spawn_blocking(move || -> Result<String, String> {
            let key = || parse::<KeyArgs>(&args);
            let r = match service.as_str() {
                "data.set" => {
                    let a = key()?;
                    data.set(&script, &a.key, &a.value.to_string())
                        .map(|()| Value::Null)
                }
                "data.get" => {
                    let a = key()?;
                    data.get(&script, &a.key).map(|v| match v {
                        Some(value) => json!({"found": true, "value": value}),
                        None => json!({"found": false}),
                    })
                }
                "data.has" => {
                    let a = key()?;
                    data.get(&script, &a.key).map(|v| Value::Bool(v.is_some()))
                }
                "data.delete" => {
                    let a = key()?;
                    data.delete(&script, &a.key).map(Value::Bool)
                }
                "data.keys" => data.keys(&script).map(|k| json!(k)),
                "data.clear" => data.clear(&script).map(|()| Value::Null),
                other => return Err(format!("未知的服务调用: {other}")),
            };
            r.map(|v| v.to_string()).map_err(|e| e.to_string())
        })
        .await
        .map_err(|e| e.to_string())?
    }
}
