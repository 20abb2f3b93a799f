//! `/api/v1/scripts` (seed 002): every endpoint of jobs, versions, templates and
//! statistics, and the errors each gives.

use vwed_e2e::{Opts, Runtime, TempDir, json, py};

use crate::jobs_util::{SCRIPTS, create, execute, execute_resp, finished, job, run};

const PY_JOB: &str = "def main(params):\n    return {\"greeting\": f\"hello {params['who']}\"}\n";

#[test]
fn scripts_crud_with_filters_and_errors() {
    let rt = Runtime::start();
    let a = create(
        &rt,
        json!({
            "name": "Hello World",
            "description": "简单的Hello World脚本",
            "category": "example",
            "tags": ["demo", "py"],
            "content": PY_JOB,
            "language": "python",
            "timeout": 60,
            "parameters": [{"name": "who", "type": "string", "default": "VSS"}],
        }),
    );
    let got = rt.get(&format!("{SCRIPTS}/{a}"));
    got.ok();
    let d = got.data();
    assert_eq!(d["status"], "draft");
    assert_eq!(d["version"], 1);
    assert_eq!(d["timeout"], 60.0);
    assert_eq!(d["content"], PY_JOB);
    assert_eq!(d["created_by"], "admin.token", "the caller's token");
    let b = job(
        &rt,
        "cleanup",
        "bash",
        "echo cleaning\n",
        json!({"category": "maint", "tags": ["ops"]}),
    );

    // The seed's create body, and a trailing slash, work as in the seed.
    let seed_body = json!({"name": "seed", "content": "print('Hello, World!')", "language": "python", "timeout": 60});
    rt.post(&format!("{SCRIPTS}/"), &seed_body).ok();

    let list = |q: &str| {
        let r = rt.get(&format!("{SCRIPTS}{q}"));
        r.ok();
        r.data()["total"].as_u64().expect("total")
    };
    assert_eq!(list(""), 3);
    assert_eq!(list("?category=example"), 1);
    assert_eq!(list("?tag=ops"), 1);
    assert_eq!(list("?language=bash"), 1);
    assert_eq!(list("?status=draft"), 3);
    assert_eq!(list("?status=active"), 0);
    assert_eq!(list("?search=hello"), 1);
    assert_eq!(list("?skip=1&limit=1"), 3);
    let page = rt.get(&format!("{SCRIPTS}?skip=1&limit=1"));
    assert_eq!(page.data()["items"].as_array().map(Vec::len), Some(1));
    assert!(
        page.data()["items"][0].get("content").is_none(),
        "lists leave the content out"
    );
    rt.get(&format!("{SCRIPTS}?status=running"))
        .fails(400, "status");
    rt.get(&format!("{SCRIPTS}?colour=red"))
        .fails(400, "colour");

    // Mistakes in a definition, each with its message.
    let bad = [
        (
            json!({"language": "python", "content": "x = 1"}),
            400,
            "name",
        ),
        (json!({"name": "n", "content": "x = 1"}), 400, "language"),
        (
            json!({"name": "n", "language": "ruby", "content": "x"}),
            400,
            "ruby",
        ),
        (json!({"name": "n", "language": "python"}), 400, "content"),
        (
            json!({"name": "n", "language": "python", "content": "x", "colour": 1}),
            400,
            "colour",
        ),
        (
            json!({"name": "n", "language": "python", "content": "def f(:\n"}),
            400,
            "语法",
        ),
        (
            json!({"name": "n", "language": "bash", "content": "if true; then\n"}),
            400,
            "语法",
        ),
        (
            json!({"name": "n", "language": "python", "content": "x", "timeout": 0}),
            400,
            "timeout",
        ),
        (
            json!({"name": "n", "language": "python", "content": "x", "triggers": {"cron": {"expression": "* * *"}}}),
            400,
            "cron",
        ),
        (
            json!({"name": "n", "language": "python", "content": "x", "triggers": {"cron": {"expression": "* * * * *", "timezone": "Mars/Base"}}}),
            400,
            "时区",
        ),
        (
            json!({"name": "n", "language": "python", "content": "x", "triggers": {"events": [{"event": "a", "filter": {"v": {"$regex": "x"}}}]}}),
            400,
            "$regex",
        ),
        (
            json!({"name": "n", "language": "python", "content": "x", "parameters": [{"name": "1x", "type": "string"}]}),
            400,
            "参数名",
        ),
        (
            json!({"name": "n", "language": "python", "content": "x", "parameters": [{"name": "x", "type": "integer", "default": "a"}]}),
            400,
            "integer",
        ),
        (
            json!({"name": "n", "language": "python", "content": "x", "retry_policy": {"max_retries": 99}}),
            400,
            "max_retries",
        ),
        (
            json!({"name": "Hello World", "language": "python", "content": "x"}),
            409,
            "已存在",
        ),
    ];
    for (body, status, needle) in bad {
        rt.post(SCRIPTS, &body).fails(status, needle);
    }

    rt.get(&format!("{SCRIPTS}/999")).fails(404, "999");
    rt.get(&format!("{SCRIPTS}/abc")).fails(404, "接口不存在");
    rt.put(&format!("{SCRIPTS}/999"), &json!({"name": "x"}))
        .fails(404, "999");
    rt.put(&format!("{SCRIPTS}/{a}"), &json!({"name": "cleanup"}))
        .fails(409, "已存在");
    rt.put(&format!("{SCRIPTS}/{a}"), &json!({"status": "paused"}))
        .fails(400, "paused");

    rt.delete(&format!("{SCRIPTS}/{b}")).ok();
    rt.get(&format!("{SCRIPTS}/{b}")).fails(404, "不存在");
    rt.delete(&format!("{SCRIPTS}/{b}")).fails(404, "不存在");
    assert_eq!(list(""), 2);
}

#[test]
fn every_update_is_a_version_with_diff_and_rollback() {
    let rt = Runtime::start();
    let id = job(
        &rt,
        "versioned",
        "python",
        "def main():\n    return 1\n",
        json!({}),
    );
    let put = |body| {
        let r = rt.put(&format!("{SCRIPTS}/{id}"), &body);
        r.ok();
        r.data().clone()
    };
    let v2 = put(json!({"content": "def main():\n    return 2\n", "description": "two"}));
    assert_eq!(v2["version"], 2);
    // A status change alone is not a version; saving the same definition neither.
    let active = put(json!({"status": "active"}));
    assert_eq!(
        (active["version"].clone(), active["status"].clone()),
        (json!(2), json!("active"))
    );
    assert_eq!(put(json!({"description": "two"}))["version"], 2);
    assert_eq!(run(&rt, id, json!({}))["result"], 2);

    let versions = rt.get(&format!("{SCRIPTS}/{id}/versions"));
    versions.ok();
    assert_eq!(versions.data()["current"], 2);
    let listed: Vec<u64> = versions.data()["versions"]
        .as_array()
        .expect("versions")
        .iter()
        .filter_map(|v| v["version"].as_u64())
        .collect();
    assert_eq!(listed, [1, 2]);
    let v1 = rt.get(&format!("{SCRIPTS}/{id}/versions/1"));
    v1.ok();
    assert_eq!(v1.data()["spec"]["content"], "def main():\n    return 1\n");
    rt.get(&format!("{SCRIPTS}/{id}/versions/9"))
        .fails(404, "版本 9");
    rt.get(&format!("{SCRIPTS}/77/versions")).fails(404, "77");

    let diff = rt.get(&format!("{SCRIPTS}/{id}/diff?from=1&to=2"));
    diff.ok();
    let d = diff.data();
    assert!(
        d["content_diff"]
            .as_str()
            .expect("diff")
            .contains("-    return 1\n+    return 2\n"),
        "{d}"
    );
    assert_eq!(d["changed_fields"][0]["field"], "description");
    assert_eq!(
        rt.get(&format!("{SCRIPTS}/{id}/diff?from=1")).data()["to"],
        2
    );
    rt.get(&format!("{SCRIPTS}/{id}/diff")).fails(400, "from");
    rt.get(&format!("{SCRIPTS}/{id}/diff?from=1&to=5"))
        .fails(404, "版本 5");

    let back = rt.post(&format!("{SCRIPTS}/{id}/rollback"), &json!({"version": 1}));
    back.ok();
    assert_eq!(back.data()["version"], 3);
    assert_eq!(back.data()["content"], "def main():\n    return 1\n");
    assert!(back.data()["history"].to_string().contains("回滚到版本 1"));
    assert_eq!(
        run(&rt, id, json!({}))["result"],
        1,
        "the rolled-back code runs"
    );
    rt.post(&format!("{SCRIPTS}/{id}/rollback"), &json!({"version": 1}))
        .fails(409, "无需回滚");
    rt.post(&format!("{SCRIPTS}/{id}/rollback"), &json!({"version": 8}))
        .fails(404, "版本 8");
    rt.post(&format!("{SCRIPTS}/{id}/rollback"), &json!({}))
        .fails(400, "version");
    let third = rt.get(&format!("{SCRIPTS}/{id}/versions/3"));
    assert_eq!(third.data()["note"], "回滚到版本 1");
}

#[test]
fn executions_are_listed_filtered_and_looked_up() {
    let rt = Runtime::start();
    let id = job(
        &rt,
        "greeter",
        "python",
        PY_JOB,
        json!({"parameters": [{"name": "who", "type": "string", "required": true}]}),
    );
    let e1 = execute(&rt, id, json!({"who": "a"}));
    let r = execute_resp(
        &rt,
        id,
        json!({"input_parameters": {"who": "b"}, "environment_vars": {"ENV": "production"}, "trigger": "manual"}),
    );
    r.expect_status(202);
    let e2 = r.data()["execution_id"].as_str().expect("id").to_string();
    let d1 = finished(&rt, &e1);
    assert_eq!(d1["status"], "succeeded");
    assert_eq!(d1["result"]["greeting"], "hello a");
    assert_eq!(d1["trigger"]["type"], "api");
    assert_eq!(d1["triggered_by"], "admin.token", "the caller's token");
    assert_eq!(d1["attempts"], 1);
    assert!(d1["duration_ms"].as_u64().is_some());
    let d2 = finished(&rt, &e2);
    assert_eq!(d2["trigger"]["type"], "manual");
    assert_eq!(d2["environment_var_names"], json!(["ENV"]));

    let count = |q: &str| {
        let r = rt.get(&format!("{SCRIPTS}/executions{q}"));
        r.ok();
        r.data()["total"].as_u64().expect("total")
    };
    assert_eq!(count(""), 2);
    assert_eq!(count("/"), 2, "the seed's trailing slash");
    assert_eq!(count("?status=succeeded"), 2);
    assert_eq!(count("?status=failed"), 0);
    assert_eq!(count("?trigger=manual"), 1);
    assert_eq!(count(&format!("?script_id={id}")), 2);
    rt.get(&format!("{SCRIPTS}/executions?script_id=42"))
        .fails(404, "42");
    assert_eq!(count("?since=2000-01-01T00:00:00&until=2999-01-01"), 2);
    assert_eq!(count("?until=946684800000"), 0);
    rt.get(&format!("{SCRIPTS}/executions?status=done"))
        .fails(400, "status");
    rt.get(&format!("{SCRIPTS}/executions?since=yesterday"))
        .fails(400, "since");
    let per_job = rt.get(&format!("{SCRIPTS}/{id}/executions?trigger=api"));
    per_job.ok();
    assert_eq!(per_job.data()["total"], 1);
    assert_eq!(per_job.data()["items"][0]["execution_id"], json!(e1));
    rt.get(&format!("{SCRIPTS}/4242/executions"))
        .fails(404, "4242");

    // Inputs that do not fit the job's parameters.
    let ex = |body| execute_resp(&rt, id, body);
    ex(json!({})).fails(400, "who");
    ex(json!({"input_parameters": {"who": 1}})).fails(400, "string");
    ex(json!({"input_parameters": {"who": "x", "whom": 1}})).fails(400, "whom");
    ex(json!({"input_parameters": [1]})).fails(400, "对象");
    ex(json!({"input_parameters": {"who": "x"}, "environment_vars": {"PATH": "/tmp"}}))
        .fails(400, "PATH");
    ex(json!({"input_parameters": {"who": "x"}, "environment_vars": {"LD_PRELOAD": "x.so"}}))
        .fails(400, "LD_PRELOAD");
    ex(json!({"input_parameters": {"who": "x"}, "trigger": "cron"})).fails(400, "trigger");
    ex(json!({"inputs": {}})).fails(400, "inputs");
    execute_resp(&rt, 999, json!({})).fails(404, "999");
    rt.get(&format!("{SCRIPTS}/executions/nope"))
        .fails(404, "nope");
    rt.post(&format!("{SCRIPTS}/executions/nope/cancel"), &json!({}))
        .fails(404, "nope");
    rt.post(&format!("{SCRIPTS}/executions/{e1}/cancel"), &json!({}))
        .fails(409, "已结束");

    rt.put(&format!("{SCRIPTS}/{id}"), &json!({"status": "archived"}))
        .ok();
    ex(json!({"input_parameters": {"who": "x"}})).fails(409, "归档");
}

const TEMPLATE: &str = r#"
def main(params):
    return {"text": " ".join([params["greeting"]] * params["times"]), "loud": params["loud"]}
"#;

#[test]
fn templates_with_typed_parameters_make_jobs_and_count_their_use() {
    let rt = Runtime::start();
    let list = rt.get(&format!("{SCRIPTS}/templates/"));
    list.ok();
    let builtins: Vec<String> = list.data()["items"]
        .as_array()
        .expect("templates")
        .iter()
        .map(|t| t["name"].as_str().unwrap_or("").to_string())
        .collect();
    assert_eq!(
        builtins,
        [
            "Modbus 读取并记录",
            "HTTP 健康检查",
            "日志清理",
            "夜间报告邮件"
        ]
    );
    assert!(
        list.data()["items"][0]["parameters"]
            .to_string()
            .contains("\"type\":\"integer\"")
    );

    let t = rt.post(
        &format!("{SCRIPTS}/templates/"),
        &json!({
            "name": "repeat",
            "language": "python",
            "content": py(TEMPLATE),
            "parameters": [
                {"name": "greeting", "type": "string", "required": true},
                {"name": "times", "type": "integer", "default": 2},
                {"name": "loud", "type": "boolean", "default": false, "choices": [true, false]},
            ],
        }),
    );
    t.ok();
    let tid = t.data()["id"].as_u64().expect("template id");
    rt.get(&format!("{SCRIPTS}/templates/{tid}")).ok();
    rt.post(
        &format!("{SCRIPTS}/templates"),
        &json!({"name": "repeat", "language": "python", "content": "x"}),
    )
    .fails(409, "已存在");
    rt.post(&format!("{SCRIPTS}/templates"), &json!({"name": "t2", "language": "python", "content": "x", "parameters": [{"name": "a", "type": "date"}]}))
        .fails(400, "date");

    let make = |body| rt.post(&format!("{SCRIPTS}/templates/{tid}/instantiate"), &body);
    make(json!({"values": {"times": "3"}})).fails(400, "integer");
    make(json!({"values": {"colour": 1}})).fails(400, "colour");
    rt.post(&format!("{SCRIPTS}/templates/99/instantiate"), &json!({}))
        .fails(404, "99");
    let made = make(json!({"name": "hi three times", "values": {"greeting": "hi", "times": 3}}));
    made.ok();
    let job_id = made.data()["id"].as_u64().expect("job id");
    assert_eq!(made.data()["template_id"], tid);
    assert_eq!(made.data()["status"], "draft");
    let done = run(&rt, job_id, json!({}));
    assert_eq!(done["result"], json!({"text": "hi hi hi", "loud": false}));
    let done = run(&rt, job_id, json!({"times": 1, "loud": true}));
    assert_eq!(done["result"], json!({"text": "hi", "loud": true}));
    execute_resp(&rt, job_id, json!({"input_parameters": {"loud": "yes"}})).fails(400, "boolean");

    let after = rt.get(&format!("{SCRIPTS}/templates/{tid}"));
    assert_eq!(after.data()["usage_count"], 1);
    let stats = rt.get(&format!("{SCRIPTS}/statistics/overview"));
    stats.ok();
    let by_template = stats.data()["templates"]
        .as_array()
        .expect("templates")
        .iter()
        .find(|t| t["template_id"] == json!(tid))
        .cloned()
        .expect("listed");
    assert_eq!(
        (
            by_template["usage_count"].clone(),
            by_template["scripts"].clone()
        ),
        (json!(1), json!(1))
    );

    rt.delete(&format!("{SCRIPTS}/templates/1"))
        .fails(409, "内置模板");
    rt.delete(&format!("{SCRIPTS}/templates/{tid}")).ok();
    rt.get(&format!("{SCRIPTS}/templates/{tid}"))
        .fails(404, "不存在");
}

#[test]
fn the_builtin_log_cleanup_template_runs_with_its_values() {
    // A Bash job writes only its own folder and what `_jobs` is granted; the
    // folder is the job user's to change (file permissions are a wall too).
    let logs = TempDir::new("applogs");
    let dir = logs.path().to_path_buf();
    std::fs::set_permissions(&dir, std::os::unix::fs::PermissionsExt::from_mode(0o777))
        .expect("chmod");
    let etc = TempDir::new("etc");
    let config = etc.path().join("config.toml");
    let grant = format!(
        "[sandbox.projects._jobs]\nwrite = [\"{}\"]\n",
        dir.display()
    );
    std::fs::write(&config, grant).expect("config");
    let rt = Runtime::with(Opts::default().env("VWED_CONFIG", config.display()));
    let old = std::time::SystemTime::now() - std::time::Duration::from_secs(10 * 86_400);
    for name in ["a.log", "b.log", "keep.txt", "new.log"] {
        let f = std::fs::File::create(dir.join(name)).expect("file");
        if name != "new.log" {
            f.set_modified(old).expect("mtime");
        }
    }
    let made = rt.post(
        &format!("{SCRIPTS}/templates/3/instantiate"),
        &json!({"values": {"directory": dir.display().to_string(), "max_age_days": 7}}),
    );
    made.ok();
    let id = made.data()["id"].as_u64().expect("id");
    assert_eq!(made.data()["danger"]["findings"], json!([]));
    let done = run(&rt, id, json!({}));
    assert_eq!(done["status"], "succeeded", "{done:#}");
    assert_eq!(done["result"], json!({"deleted": 2}));
    let mut left: Vec<String> = std::fs::read_dir(&dir)
        .expect("dir")
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    left.sort();
    assert_eq!(left, ["keep.txt", "new.log"]);
}

#[test]
fn statistics_overview_counts_what_happened() {
    let rt = Runtime::start();
    let ok = job(&rt, "ok", "bash", "exit 0\n", json!({"status": "active"}));
    let bad = job(&rt, "bad", "bash", "exit 3\n", json!({}));
    for _ in 0..3 {
        run(&rt, ok, json!({}));
    }
    assert_eq!(run(&rt, bad, json!({}))["exit_code"], 3);
    let s = rt.get(&format!("{SCRIPTS}/statistics/overview"));
    s.ok();
    let d = s.data();
    assert_eq!(d["scripts"]["total"], 2);
    assert_eq!(d["scripts"]["active"], 1);
    assert_eq!(d["executions"]["total"], 4);
    assert_eq!(d["executions"]["by_status"]["succeeded"], 3);
    assert_eq!(d["executions"]["by_status"]["failed"], 1);
    assert_eq!(d["executions"]["success_rate"], 0.75);
    assert!(d["executions"]["p95_duration_ms"].as_u64().is_some());
    assert!(d["executions"]["average_duration_ms"].as_f64().is_some());
    assert_eq!(d["executions"]["running"], 0);
    assert_eq!(d["executions"]["by_trigger"]["api"], 4);
    assert_eq!(d["templates"].as_array().map(Vec::len), Some(4));
}
