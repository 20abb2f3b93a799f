//! How jobs, executions and templates look in the API.

use serde_json::{Value, json};

use super::danger::{self, Finding};
use super::model::{ExecDetail, ExecRec, JobRec, Language, TemplateRec, VersionRec};
use vwed_base::clock::local_at;

/// Dangerous commands of a Bash job's content (none for Python).
pub fn findings(language: Language, content: &str) -> Vec<Finding> {
    match language {
        Language::Bash => danger::check(content),
        Language::Python => Vec::new(),
    }
}

/// Whether the findings of the job's current version still need an engineer.
pub fn unacknowledged(rec: &JobRec, found: &[Finding]) -> bool {
    !found.is_empty() && rec.ack.as_ref().is_none_or(|a| a.version != rec.version)
}

fn danger_json(rec: &JobRec) -> Value {
    let found = findings(rec.spec.language, &rec.spec.content);
    json!({
        "findings": found,
        "acknowledged": rec.ack.as_ref().filter(|a| a.version == rec.version),
        "blocks_activation": unacknowledged(rec, &found),
    })
}

/// A job; `full` adds the content and the job's own history.
pub fn job(rec: &JobRec, full: bool) -> Value {
    let s = &rec.spec;
    let mut v = json!({
        "id": rec.id,
        "name": s.name,
        "description": s.description,
        "category": s.category,
        "tags": s.tags,
        "language": s.language,
        "timeout": s.timeout,
        "retry_policy": s.retry_policy,
        "parameters": s.parameters,
        "triggers": s.triggers,
        "status": rec.status,
        "version": rec.version,
        "template_id": rec.template_id,
        "danger": danger_json(rec),
        "path": rec.path(),
        "created_by": rec.created_by,
        "created_at": rec.created_at,
        "updated_by": rec.updated_by,
        "updated_at": rec.updated_at,
        "content_bytes": s.content.len(),
    });
    if full {
        v["content"] = json!(s.content);
        v["history"] = json!(rec.history);
    }
    v
}

pub fn version(v: &VersionRec, full: bool) -> Value {
    let mut out = json!({
        "version": v.version,
        "by": v.by,
        "at": v.at,
        "note": v.note,
        "name": v.spec.name,
        "language": v.spec.language,
        "content_bytes": v.spec.content.len(),
    });
    if full {
        out["spec"] = json!(v.spec);
    }
    out
}

/// An execution; with its detail, the output, result and traceback too.
pub fn exec(e: &ExecRec, detail: Option<&ExecDetail>) -> Value {
    let last = e.last_attempt();
    let attempts: Vec<Value> = e
        .attempts
        .iter()
        .map(|a| {
            json!({
                "attempt": a.number,
                "status": a.status,
                "started_at": local_at(a.started_ms),
                "started_at_ms": a.started_ms,
                "finished_at": a.finished_ms.and_then(local_at),
                "finished_at_ms": a.finished_ms,
                "duration_ms": a.finished_ms.map(|f| f.saturating_sub(a.started_ms)),
                "exit_code": a.exit_code,
                "signal": a.signal,
                "exception": a.exception,
                "error": a.error,
                "sandbox": a.sandbox,
            })
        })
        .collect();
    let mut v = json!({
        "execution_id": e.id,
        "script_id": e.job_id,
        "script_name": e.job_name,
        "script_version": e.version,
        "language": e.language,
        "status": e.status,
        "trigger": e.trigger,
        "triggered_by": e.triggered_by,
        "input_parameters": e.params,
        "environment_var_names": e.env.iter().map(|(k, _)| k).collect::<Vec<_>>(),
        "attempts": e.attempts.len(),
        "max_attempts": e.max_attempts,
        "attempt_history": attempts,
        "exit_code": last.and_then(|a| a.exit_code),
        "signal": last.and_then(|a| a.signal),
        "exception": last.and_then(|a| a.exception.clone()),
        "error": e.error.clone().or_else(|| last.and_then(|a| a.error.clone())),
        "queued_at": local_at(e.queued_ms),
        "queued_at_ms": e.queued_ms,
        "started_at": e.started_ms.and_then(local_at),
        "started_at_ms": e.started_ms,
        "finished_at": e.finished_ms.and_then(local_at),
        "finished_at_ms": e.finished_ms,
        "duration_ms": e.duration_ms(),
        "next_attempt_at_ms": e.next_attempt_ms,
        "cancelled_by": e.cancelled_by,
        "event_depth": e.depth,
        // What the last attempt's process ran under, with the spawn-time limits.
        "sandbox": last
            .and_then(|a| a.sandbox.as_ref())
            .map(|r| vwed_sandbox::status_json(Some(r))),
    });
    if let Some(d) = detail {
        v["result"] = d.result.clone().unwrap_or(Value::Null);
        v["output"] = json!(d.output);
        v["output_truncated_bytes"] = json!(d.output_cut_bytes);
        v["traceback"] = json!(d.traceback);
    }
    v
}

pub fn template(t: &TemplateRec) -> Value {
    json!({
        "id": t.id,
        "name": t.spec.name,
        "description": t.spec.description,
        "category": t.spec.category,
        "language": t.spec.language,
        "content": t.spec.content,
        "parameters": t.spec.parameters,
        "triggers": t.spec.triggers,
        "timeout": t.spec.timeout,
        "builtin": t.builtin,
        "usage_count": t.usage_count,
        "danger": {"findings": findings(t.spec.language, &t.spec.content)},
        "created_by": t.created_by,
        "created_at": t.created_at,
    })
}
