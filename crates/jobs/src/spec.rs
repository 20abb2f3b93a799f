//! Checks on what a user sends: a job's definition, a template's parameters, the
//! input parameters and environment of an execution. Messages say what to fix.

use serde_json::{Map, Value};

use super::JobSettings;
use super::model::{JobSpec, ParamSpec, RetryPolicy, Triggers};
use super::triggers::{Zone, check_filter};
use vwed_base::cron::Schedule;

/// Longest name of a job or template, in characters.
const MAX_NAME: usize = 100;
const MAX_DESCRIPTION: usize = 4_000;
const MAX_TAGS: usize = 20;
const MAX_TAG: usize = 50;
const MAX_PARAMS: usize = 50;
const MAX_EVENT_TRIGGERS: usize = 20;
/// Bytes of an execution's input parameters, as JSON.
pub const MAX_INPUT_BYTES: usize = 64 * 1024;
const MAX_ENV_VARS: usize = 64;
const MAX_ENV_VALUE: usize = 4 * 1024;

fn identifier(s: &str) -> bool {
    let mut chars = s.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
        && s.len() <= 64
}

pub fn check_name(name: &str) -> Result<(), String> {
    let n = name.trim().chars().count();
    if n == 0 {
        return Err("name 不能为空".into());
    }
    if n > MAX_NAME {
        return Err(format!("name 最多 {MAX_NAME} 个字符, 得到 {n} 个"));
    }
    if name.chars().any(char::is_control) {
        return Err("name 不能包含控制字符".into());
    }
    Ok(())
}

/// The whole definition, as it would be saved.
pub fn check_spec(spec: &JobSpec, cfg: &JobSettings, max_script_bytes: u64) -> Result<(), String> {
    check_name(&spec.name)?;
    if spec.description.chars().count() > MAX_DESCRIPTION {
        return Err(format!("description 最多 {MAX_DESCRIPTION} 个字符"));
    }
    if spec.category.chars().count() > MAX_TAG {
        return Err(format!("category 最多 {MAX_TAG} 个字符"));
    }
    if spec.tags.len() > MAX_TAGS {
        return Err(format!("tags 最多 {MAX_TAGS} 个"));
    }
    if let Some(t) = spec
        .tags
        .iter()
        .find(|t| t.trim().is_empty() || t.chars().count() > MAX_TAG)
    {
        return Err(format!("标签 {t:?} 无效: 不能为空, 最多 {MAX_TAG} 个字符"));
    }
    if spec.content.trim().is_empty() {
        return Err("content 不能为空".into());
    }
    if spec.content.len() as u64 > max_script_bytes {
        return Err(format!(
            "content 过大: {} 字节, 上限 {} 字节",
            spec.content.len(),
            max_script_bytes
        ));
    }
    if spec.content.contains('\0') {
        return Err("content 不能包含 NUL 字符".into());
    }
    let max = cfg.job_max_timeout_s as f64;
    if !(spec.timeout.is_finite() && spec.timeout >= 0.1 && spec.timeout <= max) {
        return Err(format!(
            "timeout 必须在 0.1 到 {max} 秒之间, 得到 {}",
            spec.timeout
        ));
    }
    check_retry(&spec.retry_policy, cfg)?;
    check_params(&spec.parameters)?;
    check_triggers(&spec.triggers)
}

fn check_retry(r: &RetryPolicy, cfg: &JobSettings) -> Result<(), String> {
    if r.max_retries > cfg.job_max_retries {
        return Err(format!(
            "retry_policy.max_retries 最多 {}, 得到 {}",
            cfg.job_max_retries, r.max_retries
        ));
    }
    let in_range = |v: f64, lo: f64, hi: f64| v.is_finite() && v >= lo && v <= hi;
    if !in_range(r.backoff_seconds, 0.0, 3_600.0) {
        return Err("retry_policy.backoff_seconds 必须在 0 到 3600 之间".into());
    }
    if !in_range(r.backoff_factor, 1.0, 10.0) {
        return Err("retry_policy.backoff_factor 必须在 1 到 10 之间".into());
    }
    if !in_range(r.max_backoff_seconds, 0.0, 86_400.0) {
        return Err("retry_policy.max_backoff_seconds 必须在 0 到 86400 之间".into());
    }
    Ok(())
}

pub fn check_params(params: &[ParamSpec]) -> Result<(), String> {
    if params.len() > MAX_PARAMS {
        return Err(format!("parameters 最多 {MAX_PARAMS} 个"));
    }
    for (k, p) in params.iter().enumerate() {
        if !identifier(&p.name) {
            return Err(format!(
                "参数名 {:?} 无效: 须以字母或下划线开头, 只含字母、数字、下划线, 最多 64 个字符",
                p.name
            ));
        }
        if params[..k].iter().any(|q| q.name == p.name) {
            return Err(format!("参数名 {} 重复", p.name));
        }
        if let Some(d) = &p.default {
            check_value(p, d)?;
        }
        if let Some(c) = &p.choices
            && let Some(bad) = c.iter().find(|v| !p.kind.accepts(v))
        {
            return Err(format!(
                "参数 {} 的可选值 {bad} 不是 {}",
                p.name,
                p.kind.as_str()
            ));
        }
    }
    Ok(())
}

fn check_triggers(t: &Triggers) -> Result<(), String> {
    if let Some(c) = &t.cron {
        Schedule::parse(&c.expression).map_err(|e| format!("triggers.cron: {e}"))?;
        Zone::parse(&c.timezone).map_err(|e| format!("triggers.cron.timezone: {e}"))?;
    }
    if t.events.len() > MAX_EVENT_TRIGGERS {
        return Err(format!("triggers.events 最多 {MAX_EVENT_TRIGGERS} 个"));
    }
    for e in &t.events {
        let name = e.event.trim();
        if name.is_empty() || name.len() > 200 {
            return Err("triggers.events[].event 不能为空, 最多 200 字节".into());
        }
        if name.trim_end_matches('*').contains('*') {
            return Err(format!("事件名 {name} 无效: * 只能出现在末尾 (例如 io.*)"));
        }
        check_filter(&e.filter).map_err(|m| format!("事件 {name} 的 filter: {m}"))?;
    }
    Ok(())
}

pub fn check_value(p: &ParamSpec, v: &Value) -> Result<(), String> {
    if !p.kind.accepts(v) {
        return Err(format!(
            "参数 {} 必须是 {}, 得到 {v}",
            p.name,
            p.kind.as_str()
        ));
    }
    if let Some(c) = &p.choices
        && !c.contains(v)
    {
        return Err(format!(
            "参数 {} 只能取 {}, 得到 {v}",
            p.name,
            Value::Array(c.clone())
        ));
    }
    Ok(())
}

/// The parameters an execution runs with: the given ones checked against the
/// declared ones, defaults filled in. A name the job does not declare is refused;
/// `extra` (the trigger's own input, such as the event) is added as is.
pub fn resolve_params(
    declared: &[ParamSpec],
    given: &Value,
    extra: Option<(&str, Value)>,
) -> Result<Value, String> {
    let given = match given {
        Value::Null => Map::new(),
        Value::Object(m) => m.clone(),
        other => return Err(format!("input_parameters 必须是 JSON 对象, 得到 {other}")),
    };
    if serde_json::to_vec(&given).map_or(0, |v| v.len()) > MAX_INPUT_BYTES {
        return Err(format!(
            "input_parameters 过大, 上限 {MAX_INPUT_BYTES} 字节"
        ));
    }
    if let Some(k) = given
        .keys()
        .find(|k| !declared.iter().any(|p| &p.name == *k))
    {
        let known: Vec<&str> = declared.iter().map(|p| p.name.as_str()).collect();
        return Err(format!(
            "未知的参数 {k}, 此作业的参数: {}",
            if known.is_empty() {
                "无".to_string()
            } else {
                known.join(", ")
            }
        ));
    }
    let mut out = Map::new();
    for p in declared {
        match given.get(&p.name).or(p.default.as_ref()) {
            Some(v) => {
                check_value(p, v)?;
                out.insert(p.name.clone(), v.clone());
            }
            None if p.required => return Err(format!("缺少必填参数 {}", p.name)),
            None => {}
        }
    }
    if let Some((k, v)) = extra {
        out.insert(k.to_string(), v);
    }
    Ok(Value::Object(out))
}

/// Names a request may not set: they change how bash or the dynamic linker
/// behave before the job's first line, or are the runtime's own.
fn reserved_env(name: &str) -> bool {
    // `ENV` stays allowed (the seed's example sets it): a non-interactive bash
    // does not read the file it names.
    const EXACT: [&str; 8] = [
        "PATH",
        "BASH_ENV",
        "SHELLOPTS",
        "BASHOPTS",
        "IFS",
        "PS4",
        "HOME",
        "PYTHONHOME",
    ];
    EXACT.contains(&name)
        || ["LD_", "BASH_FUNC_", "VWED_", "PYTHON"]
            .iter()
            .any(|p| name.starts_with(p))
}

/// `environment_vars` of an execute request: an object of strings.
pub fn check_env(env: &Value) -> Result<Vec<(String, String)>, String> {
    let map = match env {
        Value::Null => return Ok(Vec::new()),
        Value::Object(m) => m,
        other => return Err(format!("environment_vars 必须是 JSON 对象, 得到 {other}")),
    };
    if map.len() > MAX_ENV_VARS {
        return Err(format!("environment_vars 最多 {MAX_ENV_VARS} 个"));
    }
    let mut out = Vec::with_capacity(map.len());
    for (k, v) in map {
        if !identifier(k) {
            return Err(format!("环境变量名 {k:?} 无效"));
        }
        if reserved_env(k) {
            return Err(format!(
                "环境变量 {k} 由运行时设置, 不能指定 (PATH, HOME, LD_*, BASH_ENV, VWED_* 等)"
            ));
        }
        let v = match v {
            Value::String(s) => s.clone(),
            Value::Number(_) | Value::Bool(_) => v.to_string(),
            other => return Err(format!("环境变量 {k} 的值必须是字符串, 得到 {other}")),
        };
        if v.len() > MAX_ENV_VALUE || v.contains('\0') {
            return Err(format!(
                "环境变量 {k} 的值无效: 最多 {MAX_ENV_VALUE} 字节, 不能含 NUL"
            ));
        }
        out.push((k.clone(), v));
    }
    Ok(out)
}

/// `PARAM_<NAME>` for a Bash job: the name upper-cased.
pub fn param_env_name(name: &str) -> String {
    format!("PARAM_{}", name.to_ascii_uppercase())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::ParamType;
    use serde_json::json;

    fn p(name: &str, kind: ParamType, required: bool, default: Option<Value>) -> ParamSpec {
        ParamSpec {
            name: name.into(),
            kind,
            required,
            default,
            description: String::new(),
            choices: None,
        }
    }

    #[test]
    fn parameters_are_checked_and_defaults_filled() {
        let declared = [
            p("host", ParamType::String, true, None),
            p("port", ParamType::Integer, false, Some(json!(502))),
            p("ratio", ParamType::Number, false, None),
        ];
        let v = resolve_params(&declared, &json!({"host": "plc"}), None).expect("ok");
        assert_eq!(v, json!({"host": "plc", "port": 502}));
        let e = resolve_params(&declared, &json!({}), None).expect_err("required");
        assert!(e.contains("host"), "{e}");
        let e =
            resolve_params(&declared, &json!({"host": "a", "port": "x"}), None).expect_err("type");
        assert!(e.contains("integer"), "{e}");
        let e = resolve_params(&declared, &json!({"host": "a", "porrt": 1}), None)
            .expect_err("unknown");
        assert!(e.contains("porrt") && e.contains("port"), "{e}");
        let v = resolve_params(
            &declared,
            &json!({"host": "a", "ratio": 1}),
            Some(("event", json!(1))),
        )
        .expect("int is a number");
        assert_eq!(v["event"], 1);
    }

    #[test]
    fn environment_names_that_change_the_shell_are_refused() {
        for bad in ["PATH", "LD_PRELOAD", "BASH_ENV", "VWED_EXECUTION_ID", "1X"] {
            assert!(check_env(&json!({bad: "x"})).is_err(), "{bad}");
        }
        // The seed's example.
        let ok = check_env(&json!({"ENV": "production", "N": 3})).expect("ok");
        assert_eq!(
            ok,
            vec![
                ("ENV".into(), "production".into()),
                ("N".into(), "3".into())
            ]
        );
    }
}
