//! Remote calls over MQTT: execute a function, start, stop, restart, status,
//! fetch recent logs. Each call has an id and a deadline, and each that runs is
//! in the audit log before its answer leaves. The id is written to
//! redb before the call runs and its answer after, so a repeated id (a QoS 1
//! redelivery, a caller that asks again) runs once and gets the same answer.

use redb::{ReadableDatabase, ReadableTable, ReadableTableMetadata};
use serde::Deserialize;
use serde_json::{Value, json};

use super::host::ScriptHost;
use super::shared::Ctx;
use super::state::{CALLS, CALLS_AGE, CallRec};
use vwed_auth::audit::Entry;
use vwed_db::{self as db, Db, DbError};

pub use super::settings::Method;

/// Answers kept for repeated ids at most.
const KEEP: u64 = 1_000;
/// Longest a call may run, whatever its deadline says.
const MAX_RUN_MS: u64 = 600_000;
/// Lines of output a `logs` call returns at most.
const MAX_LOG_LINES: usize = 1_000;
/// Largest reply: the rest of a log is cut.
const MAX_REPLY_BYTES: usize = 256 * 1024;

#[derive(Debug, Deserialize)]
pub struct Call {
    pub id: String,
    pub method: String,
    #[serde(default)]
    pub function: String,
    #[serde(default)]
    pub args: Value,
    #[serde(default)]
    pub script: String,
    #[serde(default)]
    pub start_params: Value,
    #[serde(default)]
    pub lines: Option<usize>,
    pub deadline_ms: u64,
    #[serde(default)]
    pub reply_to: String,
}

/// What redb knew of an id when the call arrived.
enum Claim {
    New,
    /// Runs now (another delivery of it is being answered).
    Running,
    Answered(String),
}

/// `run` tells this process's claims from those of a runtime that died mid-call.
fn claim(db: &Db, id: &str, run: u64) -> Result<Claim, DbError> {
    let tx = db.begin_write()?;
    let claim = {
        let mut t = tx.open_table(CALLS)?;
        let found: Option<CallRec> = match t.get(id)? {
            Some(v) => Some(db::decode(v.value())?),
            None => None,
        };
        match found {
            Some(CallRec { reply: Some(r), .. }) => Claim::Answered(r),
            Some(rec) if rec.run == run => Claim::Running,
            Some(rec) => {
                // Cut short by a restart: it may have run; it must not run twice.
                let reply =
                    json!({"id": id, "ok": false, "error": "调用执行期间设备重启, 结果未知"});
                let done = CallRec {
                    reply: Some(reply.to_string()),
                    ..rec
                };
                t.insert(id, db::encode(&done)?.as_slice())?;
                Claim::Answered(reply.to_string())
            }
            None => {
                let now = vwed_base::clock::unix_ms();
                let rec = CallRec {
                    at_ms: now,
                    run,
                    reply: None,
                };
                t.insert(id, db::encode(&rec)?.as_slice())?;
                tx.open_table(CALLS_AGE)?.insert((now, id), ())?;
                Claim::New
            }
        }
    };
    prune(&tx)?;
    tx.commit()?;
    Ok(claim)
}

fn prune(tx: &redb::WriteTransaction) -> Result<(), DbError> {
    let mut age = tx.open_table(CALLS_AGE)?;
    let mut calls = tx.open_table(CALLS)?;
    while age.len()? > KEEP {
        let Some((k, _)) = age.pop_first()? else {
            break;
        };
        let (_, id) = k.value();
        calls.remove(id)?;
    }
    Ok(())
}

fn answer(db: &Db, id: &str, reply: &str) -> Result<(), DbError> {
    let tx = db.begin_write()?;
    {
        let mut t = tx.open_table(CALLS)?;
        let rec: Option<CallRec> = match t.get(id)? {
            Some(v) => Some(db::decode(v.value())?),
            None => None,
        };
        if let Some(rec) = rec {
            let done = CallRec {
                reply: Some(reply.to_string()),
                ..rec
            };
            t.insert(id, db::encode(&done)?.as_slice())?;
        }
    }
    tx.commit()?;
    Ok(())
}

/// The stored answer of `id`, once there is one.
fn answered(db: &Db, id: &str) -> Result<Option<String>, DbError> {
    let rx = db.begin_read()?;
    let t = rx.open_table(CALLS)?;
    match t.get(id)? {
        Some(v) => Ok(db::decode::<CallRec>(v.value())?.reply),
        None => Ok(None),
    }
}

fn reply_json(id: &str, device: &str, method: &str, result: Result<Value, String>) -> String {
    let (ok, result, error) = match result {
        Ok(v) => (true, v, Value::Null),
        Err(e) => (false, Value::Null, Value::String(e)),
    };
    json!({
        "id": id,
        "device": device,
        "method": method,
        "ok": ok,
        "result": result,
        "error": error,
        "at_ms": vwed_base::clock::unix_ms(),
    })
    .to_string()
}

impl<H: ScriptHost> Ctx<H> {
    /// Handles one call message: parse, claim, audit, run, answer.
    pub async fn on_call(&self, payload: &[u8]) {
        let core = &self.core;
        let call: Call = match serde_json::from_slice(payload) {
            Ok(c) => c,
            Err(e) => {
                tracing::warn!("fleet: unreadable call: {e}");
                return;
            }
        };
        if call.id.is_empty() || call.id.len() > 128 {
            tracing::warn!("fleet: call without a usable id");
            return;
        }
        let reply_to = if call.reply_to.is_empty() {
            core.topics.reply(&core.s.device_id)
        } else {
            call.reply_to.clone()
        };
        let inside = reply_to
            .strip_prefix(core.topics.root())
            .is_some_and(|r| r.starts_with('/'));
        if !inside || reply_to.contains(['+', '#']) {
            tracing::warn!(
                "fleet: call {} wants its answer outside the fleet: {reply_to}",
                call.id
            );
            return;
        }
        let (db, id, run) = (core.db.clone(), call.id.clone(), core.run_id);
        let claimed = tokio::task::spawn_blocking(move || claim(&db, &id, run)).await;
        let reply = match claimed {
            Ok(Ok(Claim::Answered(r))) => r,
            Ok(Ok(Claim::Running)) => match self.await_answer(&call).await {
                Some(r) => r,
                None => return,
            },
            Ok(Ok(Claim::New)) => {
                let result = self.run_call(&call).await;
                // Durably in the audit log before the answer can leave.
                let entry = audit_entry(&core.s.fleet, &core.s.device_id, &call, &result);
                core.host.audit(entry).await;
                let result = result.map_err(|Failed(_, why)| why);
                let text = reply_json(&call.id, &core.s.device_id, &call.method, result);
                let (db, id, t) = (core.db.clone(), call.id.clone(), text.clone());
                if let Ok(Err(e)) = tokio::task::spawn_blocking(move || answer(&db, &id, &t)).await
                {
                    tracing::error!("fleet: cannot keep the answer of call {}: {e}", call.id);
                }
                text
            }
            Ok(Err(e)) => {
                tracing::error!("fleet: cannot record call {}: {e}", call.id);
                reply_json(
                    &call.id,
                    &core.s.device_id,
                    &call.method,
                    Err(format!("设备存储错误: {e}")),
                )
            }
            Err(_) => return,
        };
        // Lost if the link dropped meanwhile: the caller asks again with the same
        // id and gets this same answer from redb.
        if let Err(e) = self
            .link
            .publish(&reply_to, reply.into_bytes(), false, None)
        {
            tracing::warn!("fleet: answer to call {} not sent: {e}", call.id);
        }
    }

    /// Another delivery of the same call runs now: this one gets its answer too.
    async fn await_answer(&self, call: &Call) -> Option<String> {
        while vwed_base::clock::unix_ms() < call.deadline_ms.saturating_add(1_000) {
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
            let (db, id) = (self.core.db.clone(), call.id.clone());
            if let Ok(Ok(Some(r))) = tokio::task::spawn_blocking(move || answered(&db, &id)).await {
                return Some(r);
            }
        }
        None
    }

    async fn run_call(&self, call: &Call) -> Result<Value, Failed> {
        let core = &self.core;
        let method = Method::parse(&call.method)
            .ok_or_else(|| Failed(400, format!("未知的调用方法 {}", call.method)))?;
        if !core.s.calls.contains(&method) {
            return Err(Failed(
                403,
                format!("本设备不接受 {} 调用 (见配置 fleet.calls)", method.as_str()),
            ));
        }
        let now = vwed_base::clock::unix_ms();
        if now >= call.deadline_ms {
            return Err(Failed(
                408,
                format!("调用已过期限 (deadline_ms {})", call.deadline_ms),
            ));
        }
        let budget = (call.deadline_ms - now).min(MAX_RUN_MS);
        let host = &core.host;
        let work = async {
            match method {
                Method::Execute => Ok(host.call(&call.function, &call.args, budget).await?),
                Method::Start => Ok(host
                    .start(&call.script, &call.start_params)
                    .await
                    .map(|id| json!({"script_id": id}))?),
                Method::Stop => Ok(host.stop(&call.script).await.map(|()| json!({}))?),
                Method::Restart => Ok(host
                    .restart(&call.script)
                    .await
                    .map(|id| json!({"script_id": id}))?),
                Method::Status => self.status_result().await.map_err(Failed::from),
                Method::Logs => {
                    let n = call.lines.unwrap_or(100).min(MAX_LOG_LINES);
                    Ok(host
                        .logs(&call.script, n)
                        .map(|l| json!({"lines": cut(l)}))?)
                }
            }
        };
        match tokio::time::timeout(std::time::Duration::from_millis(budget), work).await {
            Ok(done) => done,
            Err(_) => Err(Failed(504, "调用超过期限".into())),
        }
    }

    async fn status_result(&self) -> Result<Value, String> {
        let core = self.core.clone();
        let online = self.link.is_connected();
        let report = tokio::task::spawn_blocking(move || super::report::build(&core, online))
            .await
            .map_err(|e| e.to_string())?
            .map_err(|e| e.to_string())?;
        let scripts: Vec<Value> = self
            .core
            .host
            .statuses()
            .iter()
            .map(|s| s.to_json())
            .collect();
        Ok(json!({"state": report, "scripts": scripts}))
    }
}

/// The newest lines that fit in a reply.
fn cut(mut lines: Vec<Value>) -> Vec<Value> {
    let mut total = 0;
    let mut keep = 0;
    for l in lines.iter().rev() {
        total += l.to_string().len() + 1;
        if total > MAX_REPLY_BYTES {
            break;
        }
        keep += 1;
    }
    lines.split_off(lines.len() - keep)
}

/// A call that did not succeed: the status it is audited with (what an HTTP
/// call would have answered) and why.
struct Failed(u16, String);

impl From<crate::host::HostError> for Failed {
    fn from(e: crate::host::HostError) -> Failed {
        Failed(500, e.to_string())
    }
}

impl From<String> for Failed {
    /// What the host or the script answered.
    fn from(message: String) -> Failed {
        Failed(500, message)
    }
}

/// The audit record of a remote call: by the fleet (the broker's credentials
/// and the topic tree admitted it), what, on which script or function, how it
/// ended.
fn audit_entry(fleet: &str, device: &str, call: &Call, result: &Result<Value, Failed>) -> Entry {
    let target = match Method::parse(&call.method) {
        Some(Method::Execute) => format!("function:{}", call.function),
        Some(Method::Start | Method::Stop | Method::Restart | Method::Logs) => call.script.clone(),
        Some(Method::Status) | None => device.to_string(),
    };
    let action = format!("fleet.call.{}", call.method);
    let e = Entry::by(&format!("fleet:{fleet}"), "fleet", "mqtt", &action, &target);
    match result {
        Ok(_) => e.status(200).detail(format!("call {}", call.id)),
        Err(Failed(status, why)) => e.status(*status).detail(format!("call {}: {why}", call.id)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_repeated_id_is_claimed_once_and_a_dead_run_is_answered() {
        let dir = std::env::temp_dir().join(format!("vwed-fleet-calls-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("dir");
        let db = db::open(&dir.join("t.redb"), 1 << 20).expect("db");
        super::super::state::create_tables(&db).expect("tables");
        assert!(matches!(claim(&db, "c1", 7), Ok(Claim::New)));
        assert!(matches!(claim(&db, "c1", 7), Ok(Claim::Running)));
        answer(&db, "c1", "{\"ok\":true}").expect("answer");
        assert!(matches!(claim(&db, "c1", 7), Ok(Claim::Answered(r)) if r == "{\"ok\":true}"));
        assert!(matches!(claim(&db, "c2", 7), Ok(Claim::New)));
        assert!(matches!(claim(&db, "c2", 8), Ok(Claim::Answered(r)) if r.contains("重启")));
        for i in 0..(KEEP + 5) {
            claim(&db, &format!("x{i}"), 7).expect("claim");
        }
        let rx = db.begin_read().expect("read");
        assert_eq!(rx.open_table(CALLS).expect("t").len().expect("len"), KEEP);
        drop(rx);
        let _ = std::fs::remove_dir_all(&dir);
    }
}
