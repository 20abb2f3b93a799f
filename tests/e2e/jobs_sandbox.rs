//! Bash jobs, tried as an attacker would: every escape fails inside the job, a
//! grant opens exactly what it names, a fork bomb stays inside its job while the
//! runtime answers, and ordinary shell work still works. (Python jobs are
//! confined like scripts: `sandbox.rs`, `jobs_run.rs`.)

use std::collections::BTreeMap;
use std::net::TcpListener;
use std::path::Path;
use std::time::{Duration, Instant};

use vwed_e2e::{Opts, Runtime, TempDir, Value, json, process_alive};

use crate::jobs_util::{SCRIPTS, execute, finished, job, printed_pid, run, wait_for};

/// `attempt NAME CODE`: runs CODE in a subshell, prints `NAME=ok` or
/// `NAME=denied: <first error line>`.
const ATTEMPT: &str = r#"
attempt() {
    local name=$1 err
    if err=$( (eval "$2") 2>&1 >/dev/null ); then
        echo "$name=ok"
    else
        echo "$name=denied: ${err%%$'\n'*}"
    fi
}
"#;

/// Everything a Bash job must not do, as `attempt` lines. `$PARAM_*` are the
/// targets (see [`Targets`]).
const ESCAPES: &[(&str, &str)] = &[
    ("read_passwd", "cat /etc/passwd"),
    ("read_other_project", "cat \"$PARAM_OTHER_SOURCE\""),
    ("list_projects", "ls \"$PARAM_PROJECTS\""),
    ("read_database", "head -c 16 \"$PARAM_DATABASE\""),
    ("read_config", "cat \"$PARAM_CONFIG\""),
    (
        "read_supervisor_environ",
        "cat /proc/$PARAM_SUPERVISOR/environ",
    ),
    ("list_proc", "ls /proc/$PARAM_SUPERVISOR/"),
    (
        "write_other_project",
        "echo '# pwned' >> \"$PARAM_OTHER_SOURCE\"",
    ),
    ("write_outside", "echo x >> \"$PARAM_OUTSIDE/notes.txt\""),
    ("write_tmp", "echo x > /tmp/vwed-job-escape-$$"),
    ("write_parent_of_work_dir", "echo x > \"$HOME/../escape\""),
    ("tcp_listener", "exec 3<>/dev/tcp/127.0.0.1/$PARAM_PORT"),
    ("tcp_api", "exec 3<>/dev/tcp/127.0.0.1/$PARAM_API_PORT"),
    ("kill_supervisor", "kill -9 $PARAM_SUPERVISOR"),
    ("kill_worker", "kill -9 $PARAM_WORKER"),
    ("kill_other_job", "kill -9 $PARAM_OTHER_JOB"),
    // Signal 0 where a success would hit more than the runtime (the test's own
    // process group, every process of the user): the permission is what counts.
    ("signal_everyone", "kill -0 -1"),
    (
        "signal_supervisor_group",
        "kill -0 -$PARAM_SUPERVISOR_GROUP",
    ),
];

/// What the job may do, so that the refusals above are not blanket ones.
const ALLOWED: &[(&str, &str)] = &[
    ("write_work_dir", "echo mine > notes.txt && cat notes.txt"),
    ("read_granted", "cat \"$PARAM_GRANTED/recipe.txt\""),
    ("write_granted", "echo out > \"$PARAM_GRANTED_W/out.txt\""),
    ("tcp_granted", "exec 3<>/dev/tcp/127.0.0.1/$PARAM_PORT"),
];

const SECRET: &str = "s3cret-smtp-password";

/// What the attacker aims at besides the runtime: the config file (with a
/// secret), a folder outside, a folder and a port a grant may name (with a
/// listener on the port), and a folder a grant may let it write.
struct Outside {
    config: std::path::PathBuf,
    outside: TempDir,
    granted: TempDir,
    granted_w: TempDir,
    listener: TcpListener,
    _etc: TempDir,
}

fn outside() -> Outside {
    let etc = TempDir::new("etc");
    let outside = TempDir::new("outside");
    std::fs::write(outside.path().join("notes.txt"), "x").expect("outside file");
    let granted = TempDir::new("granted");
    std::fs::write(granted.path().join("recipe.txt"), "recipe").expect("granted file");
    // File permissions are a second wall for a job that runs as its own user:
    // what a grant names must be open to that user too.
    let granted_w = TempDir::new("granted-w");
    make_public(granted_w.path());
    let listener = TcpListener::bind("127.0.0.1:0").expect("listener");
    Outside {
        config: etc.path().join("config.toml"),
        outside,
        granted,
        granted_w,
        listener,
        _etc: etc,
    }
}

fn make_public(dir: &Path) {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o777)).expect("chmod");
}

impl Outside {
    fn port(&self) -> u16 {
        self.listener.local_addr().expect("addr").port()
    }

    /// A runtime whose secrets sit in its config file and its environment, with
    /// `more` settings (TOML) and `env`.
    fn runtime(&self, more: &str, env: &[(&str, &str)]) -> Runtime {
        std::fs::write(
            &self.config,
            format!("smtp_password = \"{SECRET}\"\n\n{more}"),
        )
        .expect("write config");
        let mut opts = Opts::default()
            .env("VWED_CONFIG", self.config.display())
            .env("VWED_SMTP_USERNAME", SECRET);
        for (k, v) in env {
            opts = opts.env(k, v);
        }
        Runtime::with(opts)
    }

    /// `[sandbox.projects._jobs]` naming the granted folders and port.
    fn grants(&self) -> String {
        format!(
            "[sandbox.projects._jobs]\nread = [\"{}\"]\nwrite = [\"{}\"]\nnetwork = [\"tcp:{}\"]\n",
            self.granted.path().display(),
            self.granted_w.path().display(),
            self.port()
        )
    }
}

/// The attacker's targets, as the job's parameters.
fn targets(rt: &Runtime, out: &Outside, worker: u32, other_job: u32) -> Value {
    json!({
        "other_source": rt.project_dir("victim").join("secret.py"),
        "projects": rt.data_dir().join("projects"),
        "database": rt.data_dir().join("vwed.redb"),
        "config": out.config,
        "supervisor": rt.pid(),
        "supervisor_group": process_group(rt.pid()),
        "outside": out.outside.path(),
        "port": out.port(),
        "api_port": rt.port,
        "worker": worker,
        "other_job": other_job,
        "granted": out.granted.path(),
        "granted_w": out.granted_w.path(),
    })
}

/// The process group of `pid` (field 5 of its stat, after the name in brackets).
fn process_group(pid: u32) -> u32 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).expect("stat");
    let after_name = stat.rsplit_once(')').map_or("", |(_, rest)| rest);
    after_name
        .split_whitespace()
        .nth(2)
        .and_then(|g| g.parse().ok())
        .expect("process group")
}

/// A Bash job that makes every attempt in `checks` with `targets`, and what each
/// came to (`ok` or `denied: ...`).
fn attempts(
    rt: &Runtime,
    name: &str,
    checks: &[(&str, &str)],
    targets: &Value,
) -> BTreeMap<String, String> {
    let mut content = String::from(ATTEMPT);
    for (what, code) in checks {
        content.push_str(&format!(
            "attempt {what} '{}'\n",
            code.replace('\'', r"'\''")
        ));
    }
    let params: Vec<Value> = targets
        .as_object()
        .expect("targets")
        .keys()
        .map(|k| json!({"name": k, "type": "string"}))
        .collect();
    let id = job(rt, name, "bash", &content, json!({"parameters": params}));
    let as_text: serde_json::Map<String, Value> = targets
        .as_object()
        .expect("targets")
        .iter()
        .map(|(k, v)| {
            (
                k.clone(),
                json!(v.as_str().map_or_else(|| v.to_string(), String::from)),
            )
        })
        .collect();
    let d = run(rt, id, Value::Object(as_text));
    let out = d["output"].as_str().expect("output");
    let found: BTreeMap<String, String> = out
        .lines()
        .filter_map(|l| l.split_once('='))
        .filter(|(k, _)| checks.iter().any(|(c, _)| c == k))
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    assert_eq!(found.len(), checks.len(), "every attempt answered: {d:#}");
    found
}

/// A service script whose worker is a target; its pid.
fn victim_worker(rt: &Runtime) -> u32 {
    let victim = rt.create_project("victim");
    rt.create_file(
        victim,
        "secret.py",
        "TOKEN = 'victim'\ndef boot():\n    pass\n",
    );
    let id = rt.start_ok("victim/secret.py", None);
    let entry = rt.running_entry(&id).expect("victim runs");
    u32::try_from(entry["pid"].as_u64().expect("pid")).expect("pid")
}

/// Another Bash job, running until it is cancelled; its execution and pid.
fn other_bash_job(rt: &Runtime) -> (String, u32) {
    let id = job(
        rt,
        "bystander",
        "bash",
        "echo pid=$$\nsleep 300\n",
        json!({}),
    );
    let exec = execute(rt, id, json!({}));
    let d = wait_for(rt, &exec, Duration::from_secs(30), |d| {
        d["output"].as_str().is_some_and(|o| o.contains("pid="))
    });
    let pid = printed_pid(d["output"].as_str().unwrap_or(""));
    (exec, pid)
}

/// The escape suite against a runtime started with `env`.
fn every_escape_fails(env: &[(&str, &str)]) {
    let out = outside();
    let rt = out.runtime("", env);
    let worker = victim_worker(&rt);
    let (bystander, other_job) = other_bash_job(&rt);
    let t = targets(&rt, &out, worker, other_job);
    let found = attempts(&rt, "attacker", ESCAPES, &t);
    for (what, result) in &found {
        assert!(
            result.starts_with("denied"),
            "{what} succeeded ({env:?}): {found:#?}"
        );
    }
    let found = attempts(&rt, "ungranted", ALLOWED, &t);
    assert_eq!(found["write_work_dir"], "ok", "{found:#?}");
    for what in ["read_granted", "write_granted", "tcp_granted"] {
        assert!(
            found[what].starts_with("denied"),
            "{what} without a grant: {found:#?}"
        );
    }
    let victim =
        std::fs::read_to_string(rt.project_dir("victim").join("secret.py")).expect("victim");
    assert!(!victim.contains("pwned"), "{victim}");
    assert_eq!(
        std::fs::read_to_string(out.outside.path().join("notes.txt")).expect("outside"),
        "x"
    );
    // The supervisor, the script's worker and the other job are all still there.
    rt.get("/health").expect_status(200);
    assert!(process_alive(rt.pid()) && process_alive(worker) && process_alive(other_job));
    rt.post(
        &format!("{SCRIPTS}/executions/{bystander}/cancel"),
        &json!({}),
    )
    .ok();
}

#[test]
fn every_escape_from_a_bash_job_fails_inside_it() {
    every_escape_fails(&[]);
}

/// Without a user of its own (a root runtime with `job_user = ""` runs jobs as
/// root without capabilities), Landlock and seccomp alone hold every wall.
#[test]
fn every_escape_fails_for_a_bash_job_without_a_user_of_its_own() {
    every_escape_fails(&[("VWED_SANDBOX__JOB_USER", "")]);
}

#[test]
fn a_grant_opens_exactly_what_it_names_to_bash_jobs() {
    let out = outside();
    let rt = out.runtime(&out.grants(), &[]);
    let worker = victim_worker(&rt);
    let t = targets(&rt, &out, worker, 0);
    let found = attempts(&rt, "granted", ALLOWED, &t);
    for (what, result) in &found {
        assert_eq!(result, "ok", "{what} refused despite the grant: {found:#?}");
    }
    assert_eq!(
        std::fs::read_to_string(out.granted_w.path().join("out.txt")).expect("written"),
        "out\n"
    );
    // A grant is what it names: the runtime's API port, the folder next to the
    // granted one, the config and the databases stay out of reach.
    let checks: Vec<(&str, &str)> = ESCAPES
        .iter()
        .copied()
        .filter(|(w, _)| {
            [
                "tcp_api",
                "write_outside",
                "read_config",
                "read_database",
                "read_other_project",
            ]
            .contains(w)
        })
        .collect();
    let found = attempts(&rt, "beyond-the-grant", &checks, &t);
    for (what, result) in &found {
        assert!(
            result.starts_with("denied"),
            "{what} allowed by the grant: {found:#?}"
        );
    }
}

#[test]
fn ordinary_shell_work_still_works_in_a_bash_job() {
    let rt = Runtime::start();
    let content = r#"set -euo pipefail
printf 'b\na\nb\nc\n' > words.txt
echo "pipe=$(sort words.txt | uniq | tr '\n' ' ')"
echo "grep=$(grep -c b words.txt)"
echo "sed=$(sed 's/a/A/' words.txt | head -2 | tail -1)"
echo "awk=$(awk '{n++} END {print n}' words.txt)"
echo "subshell=$( (cd /; pwd) ) still=$(basename "$PWD")"
echo "date=$(date +%Y | grep -cE '^[0-9]{4}$')"
tmp=$(mktemp)
cat > "$tmp" <<EOF
here $((6 * 7))
EOF
echo "heredoc=$(cat "$tmp")"
echo "procsub=$(wc -l < <(seq 3))"
sleep 0.1 & wait $!
echo "background=$?"
mkdir -p sub/dir && cp words.txt sub/dir/ && echo "copy=$(ls sub/dir)"
echo "stderr works" >&2
echo '{"done": true}' > "$VWED_RESULT"
"#;
    let id = job(&rt, "ordinary", "bash", content, json!({}));
    let d = run(&rt, id, json!({}));
    assert_eq!(d["status"], "succeeded", "{d:#}");
    assert_eq!(d["result"], json!({"done": true}));
    let out = d["output"].as_str().expect("output");
    for line in [
        "pipe=a b c ",
        "grep=2",
        "sed=A",
        "awk=4",
        "subshell=/ still=",
        "date=1",
        "heredoc=here 42",
        "procsub=3",
        "background=0",
        "copy=words.txt",
        "stderr works",
    ] {
        assert!(out.contains(line), "{line:?} missing from {out}");
    }
    // What the attempt ran under is in its record.
    let s = &d["sandbox"];
    assert_eq!(s["complete"], true, "{s:#}");
    assert!(
        s["filesystem"]
            .as_str()
            .is_some_and(|f| f.starts_with("landlock v")),
        "{s:#}"
    );
    assert!(
        s["signals"]
            .as_str()
            .is_some_and(|f| f.contains("landlock scope")),
        "{s:#}"
    );
    assert!(
        s["privileges"]
            .as_str()
            .is_some_and(|p| p.contains("no capabilities")),
        "{s:#}"
    );
    assert_eq!(
        d["attempt_history"][0]["sandbox"]["filesystem"],
        s["filesystem"]
    );
}

#[test]
fn a_process_that_leaves_the_jobs_process_group_ends_with_the_job() {
    let rt = Runtime::start();
    let id = job(
        &rt,
        "escapee",
        "bash",
        "setsid sleep 300 &\necho pid=$!\nsleep 1\n",
        json!({}),
    );
    let d = run(&rt, id, json!({}));
    assert_eq!(d["status"], "succeeded", "{d:#}");
    let pid = printed_pid(d["output"].as_str().unwrap_or(""));
    vwed_e2e::wait_until(
        Duration::from_secs(10),
        "the escaped process is gone",
        || !process_alive(pid),
    );
}

#[test]
fn a_python_job_records_its_sandbox_too() {
    let rt = Runtime::start();
    let id = job(
        &rt,
        "py",
        "python",
        "def main():\n    return 1\n",
        json!({}),
    );
    let d = run(&rt, id, json!({}));
    assert_eq!(d["status"], "succeeded", "{d:#}");
    let s = &d["sandbox"];
    assert_eq!(s["complete"], true, "{s:#}");
    assert_eq!(s["processes"], "seccomp", "{s:#}");
}

#[test]
fn sandbox_required_refuses_a_bash_job_it_cannot_bound() {
    // No process limit at all: the one part of a Bash job's confinement that is
    // configuration, so the kernel cannot make this test pass by accident.
    let rt = Runtime::with(
        Opts::default()
            .env("VWED_SANDBOX__REQUIRED", "true")
            .env("VWED_SANDBOX__MAX_THREADS", "0"),
    );
    let id = job(
        &rt,
        "unbounded",
        "bash",
        "echo ran > \"$VWED_RESULT\"\n",
        json!({}),
    );
    let d = run(&rt, id, json!({}));
    assert_eq!(d["status"], "failed", "{d:#}");
    assert!(
        d["error"]
            .as_str()
            .is_some_and(|e| e.contains("sandbox.required")),
        "{d:#}"
    );
    assert_eq!(d["result"], Value::Null, "it never ran");
    let missing = d["sandbox"]["missing"].to_string();
    assert!(
        missing.contains("processes: sandbox.max_threads = 0"),
        "{missing}"
    );
    // Python jobs do not start processes: nothing is missing for them.
    let py = job(
        &rt,
        "py",
        "python",
        "def main():\n    return 2\n",
        json!({}),
    );
    assert_eq!(run(&rt, py, json!({}))["result"], 2);
}

/// Processes whose environment names execution `exec`.
fn processes_of(exec: &str) -> usize {
    let marker = format!("VWED_EXECUTION_ID={exec}");
    std::fs::read_dir("/proc")
        .map(|d| {
            d.flatten()
                .filter_map(|e| std::fs::read(e.path().join("environ")).ok())
                .filter(|env| env.split(|b| *b == 0).any(|v| v == marker.as_bytes()))
                .count()
        })
        .unwrap_or(0)
}

#[test]
fn a_fork_bomb_in_a_bash_job_fails_inside_it_and_the_runtime_answers() {
    const ALLOWANCE: usize = 32;
    let rt = Runtime::with(Opts::default().env("VWED_SANDBOX__MAX_THREADS", ALLOWANCE.to_string()));
    // Only where the job's processes are bounded: an unbounded bomb would take
    // the machine, not fail a test.
    let probe = job(&rt, "probe", "bash", "true\n", json!({}));
    let d = run(&rt, probe, json!({}));
    let processes = d["sandbox"]["processes"].as_str().unwrap_or("");
    assert!(
        processes.contains("pids.max") || processes.contains("RLIMIT_NPROC"),
        "a Bash job's processes are not bounded here, the bomb is not run: {d:#}"
    );
    let bomb = job(
        &rt,
        "bomb",
        "bash",
        // The FIFO is made first: waiting on it needs no new process.
        "mkfifo hold\nbomb() { bomb | bomb & }\nbomb\nread -t 300 <> hold\n",
        json!({"timeout": 8, "acknowledge_danger": true, "acknowledge_reason": "the bomb test"}),
    );
    let exec = execute(&rt, bomb, json!({}));
    wait_for(&rt, &exec, Duration::from_secs(30), |d| {
        d["output"]
            .as_str()
            .is_some_and(|o| o.contains("fork: retry"))
    });
    // While the bomb goes on: never more processes than its allowance (with room
    // for other jobs' processes of the same user that end meanwhile), and the
    // runtime answers and runs other jobs, Bash ones too.
    let mut most = 0;
    let until = Instant::now() + Duration::from_secs(2);
    while Instant::now() < until {
        most = most.max(processes_of(&exec));
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(most <= 2 * ALLOWANCE, "{most} processes in the bomb");
    rt.get("/health").expect_status(200);
    let py = job(
        &rt,
        "beside-py",
        "python",
        "def main():\n    return 'fine'\n",
        json!({}),
    );
    assert_eq!(run(&rt, py, json!({}))["result"], "fine");
    let sh = job(
        &rt,
        "beside-sh",
        "bash",
        "echo $(echo fine | tr a-z A-Z)\n",
        json!({}),
    );
    let d = run(&rt, sh, json!({}));
    assert!(
        d["output"].as_str().is_some_and(|o| o.contains("FINE")),
        "{d:#}"
    );
    // The timeout ends the bomb, all of it.
    let d = finished(&rt, &exec);
    assert_eq!(d["status"], "timeout", "{d:#}");
    vwed_e2e::wait_until(
        Duration::from_secs(15),
        "every process of the bomb is gone",
        || processes_of(&exec) == 0,
    );
    rt.get("/health").expect_status(200);
}
