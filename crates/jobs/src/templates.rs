//! Templates: a job's content with typed parameters. A job made from a template
//! gets the template's content as is and its parameters, with the values given
//! as their defaults: values are never pasted into the code, so no value can
//! change what the code does beyond what the code reads from its parameters.

use serde_json::{Value, json};

use super::model::{
    CronTrigger, Language, MissedRuns, ParamSpec, ParamType, TemplateRec, TemplateSpec, Triggers,
};

fn param(
    name: &str,
    kind: ParamType,
    required: bool,
    default: Option<Value>,
    description: &str,
) -> ParamSpec {
    ParamSpec {
        name: name.to_string(),
        kind,
        required,
        default,
        description: description.to_string(),
        choices: None,
    }
}

const MODBUS_READ: &str = r#"# 读取 Modbus 寄存器并写入日志; 结果是读到的值。
def main(params):
    dev = VWED.device.modbus(params["target"])
    unit = params.get("unit")
    read = {
        "holding": dev.read_holding,
        "input": dev.read_input,
        "coils": dev.read_coils,
        "discrete": dev.read_discrete,
    }[params["kind"]]
    values = read(params["address"], count=params["count"], unit=unit)
    VWED.log.info("Modbus 读取", target=params["target"], address=params["address"], values=values)
    return {"target": params["target"], "address": params["address"], "values": values}
"#;

const HTTP_CHECK: &str = r#"# HTTP 健康检查: 状态码不符时作业失败。
import time


def main(params):
    t0 = time.monotonic()
    r = VWED.http.get(params["url"], timeout=params["timeout_s"])
    elapsed_ms = round((time.monotonic() - t0) * 1000, 1)
    ok = r.status == params["expect_status"]
    VWED.log.info("健康检查", url=params["url"], status=r.status, elapsed_ms=elapsed_ms)
    if not ok:
        raise RuntimeError(f"{params['url']} 返回 HTTP {r.status}, 期望 {params['expect_status']}")
    return {"url": params["url"], "status": r.status, "elapsed_ms": elapsed_ms}
"#;

const LOG_CLEANUP: &str = r#"#!/bin/bash
# 删除目录中超过保留天数的日志文件; 删除的文件逐行列出。
# 作业在沙箱中运行: 目录须在配置 [sandbox.projects._jobs] 的 write 中授权。
set -eu
dir="${PARAM_DIRECTORY:?缺少 directory}"
if [ ! -d "$dir" ]; then
    echo "目录不存在: $dir" >&2
    exit 2
fi
case "$(cd "$dir" && pwd -P)" in
    /|/bin|/boot|/dev|/etc|/lib|/proc|/sbin|/sys|/usr)
        echo "拒绝清理系统目录: $dir" >&2
        exit 2
        ;;
esac
count=0
while IFS= read -r -d '' f; do
    echo "删除 $f"
    rm -f -- "$f"
    count=$((count + 1))
done < <(find "$dir" -type f -name "$PARAM_PATTERN" -mtime +"$PARAM_MAX_AGE_DAYS" -print0)
echo "{\"deleted\": $count}" > "$VWED_RESULT"
echo "共删除 $count 个文件"
"#;

const NIGHTLY_REPORT: &str = r#"# 夜间报告: 汇总函数、I/O 点和作业统计, 通过邮件发送。
import datetime


def main(params):
    lines = [f"VWED Edge 报告 {datetime.datetime.now():%Y-%m-%d %H:%M}", ""]
    functions = VWED.function.list()
    lines.append(f"已注册函数: {len(functions)} 个")
    if params["include_io"]:
        try:
            points = VWED.io.points()
            bad = [p for p in points if p.get("quality") != "good"]
            lines.append(f"I/O 点: {len(points)} 个, 质量异常 {len(bad)} 个")
        except VWEDError as e:
            lines.append(f"I/O 不可用: {e}")
    body = "\n".join(lines)
    to = [a.strip() for a in params["to"].split(",") if a.strip()]
    VWED.mail.send(to, params["subject"], body)
    VWED.log.info("报告已发送", to=to)
    return {"sent_to": to, "lines": len(lines)}
"#;

/// The templates every runtime ships, in id order (1..=4 on a new data dir).
// long: the four templates' parameters, written out as data.
pub fn builtins() -> Vec<TemplateRec> {
    let now = vwed_base::clock::local_now();
    let t = |name: &str, description: &str, category: &str, language, content: &str| TemplateSpec {
        name: name.to_string(),
        description: description.to_string(),
        category: category.to_string(),
        language,
        content: content.to_string(),
        parameters: Vec::new(),
        triggers: Triggers::default(),
        timeout: None,
    };
    let mut modbus = t(
        "Modbus 读取并记录",
        "读取一个 Modbus 设备的寄存器或线圈, 写入日志, 返回读到的值",
        "io",
        Language::Python,
        MODBUS_READ,
    );
    modbus.parameters = vec![
        param(
            "target",
            ParamType::String,
            true,
            None,
            "设备名或总线名 (I/O 配置中的名字)",
        ),
        param("address", ParamType::Integer, true, None, "起始地址"),
        param("count", ParamType::Integer, false, Some(json!(1)), "数量"),
        param(
            "unit",
            ParamType::Integer,
            false,
            None,
            "从站号 (按总线访问时)",
        ),
        ParamSpec {
            choices: Some(vec![
                json!("holding"),
                json!("input"),
                json!("coils"),
                json!("discrete"),
            ]),
            ..param(
                "kind",
                ParamType::String,
                false,
                Some(json!("holding")),
                "读取类型",
            )
        },
    ];
    modbus.timeout = Some(30.0);
    let mut http = t(
        "HTTP 健康检查",
        "请求一个 URL, 状态码不符或无法连接时作业失败 (主机须在 http_allow_hosts 中)",
        "monitoring",
        Language::Python,
        HTTP_CHECK,
    );
    http.parameters = vec![
        param(
            "url",
            ParamType::String,
            true,
            None,
            "要检查的 URL (http://)",
        ),
        param(
            "expect_status",
            ParamType::Integer,
            false,
            Some(json!(200)),
            "期望的 HTTP 状态码",
        ),
        param(
            "timeout_s",
            ParamType::Number,
            false,
            Some(json!(5)),
            "请求超时 (秒)",
        ),
    ];
    http.timeout = Some(60.0);
    let mut cleanup = t(
        "日志清理",
        "删除目录中超过保留天数、名字匹配的文件 (不进入系统目录)",
        "maintenance",
        Language::Bash,
        LOG_CLEANUP,
    );
    cleanup.parameters = vec![
        param("directory", ParamType::String, true, None, "要清理的目录"),
        param(
            "max_age_days",
            ParamType::Integer,
            false,
            Some(json!(7)),
            "保留天数",
        ),
        param(
            "pattern",
            ParamType::String,
            false,
            Some(json!("*.log")),
            "文件名模式",
        ),
    ];
    cleanup.timeout = Some(600.0);
    let mut report = t(
        "夜间报告邮件",
        "每晚汇总运行状态并通过邮件发送 (需要配置 smtp_host)",
        "report",
        Language::Python,
        NIGHTLY_REPORT,
    );
    report.parameters = vec![
        param(
            "to",
            ParamType::String,
            true,
            None,
            "收件人, 多个用逗号分隔",
        ),
        param(
            "subject",
            ParamType::String,
            false,
            Some(json!("VWED Edge 日报")),
            "邮件主题",
        ),
        param(
            "include_io",
            ParamType::Boolean,
            false,
            Some(json!(true)),
            "包含 I/O 点状态",
        ),
    ];
    report.triggers = Triggers {
        cron: Some(CronTrigger {
            expression: "0 22 * * *".to_string(),
            timezone: "local".to_string(),
            missed_runs: MissedRuns::RunOnce,
        }),
        events: Vec::new(),
    };
    report.timeout = Some(120.0);
    [modbus, http, cleanup, report]
        .into_iter()
        .map(|spec| TemplateRec {
            id: 0,
            spec,
            builtin: true,
            usage_count: 0,
            created_by: "system".to_string(),
            created_at: now.clone(),
        })
        .collect()
}

/// The parameters of a job made from a template: the template's, with `values`
/// as defaults (a value given makes the parameter optional).
pub fn with_values(params: &[ParamSpec], values: &Value) -> Result<Vec<ParamSpec>, String> {
    let given = match values {
        Value::Null => serde_json::Map::new(),
        Value::Object(m) => m.clone(),
        other => return Err(format!("values 必须是 JSON 对象, 得到 {other}")),
    };
    for (k, v) in &given {
        let p = params.iter().find(|p| &p.name == k).ok_or_else(|| {
            let known: Vec<&str> = params.iter().map(|p| p.name.as_str()).collect();
            format!("未知的参数 {k}, 模板的参数: {}", known.join(", "))
        })?;
        super::spec::check_value(p, v)?;
    }
    Ok(params
        .iter()
        .map(|p| match given.get(&p.name) {
            Some(v) => ParamSpec {
                default: Some(v.clone()),
                required: false,
                ..p.clone()
            },
            None => p.clone(),
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn builtin_templates_are_valid_and_safe() {
        let all = builtins();
        assert_eq!(all.len(), 4);
        for t in all.iter().map(|t| &t.spec) {
            super::super::spec::check_params(&t.parameters).expect("parameters");
            if t.language == Language::Bash {
                let found = super::super::danger::check(&t.content);
                assert!(found.is_empty(), "{}: {found:?}", t.name);
            }
        }
    }

    #[test]
    fn values_become_defaults_and_are_checked() {
        let t = &builtins()[2].spec;
        let p = with_values(
            &t.parameters,
            &json!({"directory": "/var/log/app", "max_age_days": 3}),
        )
        .expect("values");
        let dir = p.iter().find(|p| p.name == "directory").expect("directory");
        assert_eq!(dir.default, Some(json!("/var/log/app")));
        assert!(!dir.required);
        assert!(with_values(&t.parameters, &json!({"max_age_days": "3"})).is_err());
        assert!(with_values(&t.parameters, &json!({"nope": 1})).is_err());
        // A required value left out stays required.
        let p = with_values(&t.parameters, &json!({})).expect("none");
        assert!(p.iter().any(|p| p.name == "directory" && p.required));
    }
}
