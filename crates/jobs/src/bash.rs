//! A Bash job: `bash job.sh` in the execution's work dir, with a clean
//! environment (the job's parameters as `PARAM_<NAME>`, nothing of the
//! supervisor's), in its own process group that dies with the runtime, confined
//! like a script (Landlock, seccomp, no privileges; see `docs/sandbox.md`) with a
//! profile that lets it start programs: the confinement is prepared here
//! (`vwed_sandbox::job`, `vwed_sandbox::shell`) and put in force by the job's
//! process before it execs bash.

use std::os::unix::process::CommandExt as _;
use std::path::Path;
use std::process::Stdio;

use serde_json::Value;
use tokio::process::Command;
use vwed_ipc::{Level, SandboxReport};
use vwed_sandbox::shell::Prepared;

use super::attempt::AttemptRun;
use super::process::{Outcome, conclude, drain, supervise};
use vwed_base::pipe::read_lines;

/// Largest result file (`$VWED_RESULT`) read back.
const MAX_RESULT_BYTES: u64 = 1024 * 1024;

pub async fn run(a: &mut AttemptRun) -> Outcome {
    // Through the folder's descriptor: `job.sh` is never a link followed elsewhere.
    let written = vwed_base::fsio::Dir::open(&a.work_dir)
        .map_err(|e| e.to_string())
        .and_then(|d| {
            d.write_atomic("job.sh", a.spec.content.as_bytes())
                .map_err(|e| e.to_string())
        });
    if let Err(e) = written {
        return Outcome::failed(format!(
            "无法写入作业脚本 {}/job.sh: {e}",
            a.work_dir.display()
        ));
    }
    let bash = a.bash.clone();
    let confinement = match confinement(&a.engine.cfg, &a.work_dir, &bash).await {
        Ok(c) => c,
        Err(e) => return Outcome::failed(format!("作业沙箱无法准备: {e}")),
    };
    let report = confinement.report().clone();
    if a.engine.cfg.sandbox.required && !report.missing.is_empty() {
        let why = report.missing.join("; ");
        return Outcome::failed(format!(
            "作业沙箱不完整, 按配置 (sandbox.required) 拒绝运行: {why}"
        ))
        .under(report);
    }
    let limit = a.engine.cfg.engine.worker_memory_limit();
    let spawned =
        command(&bash, &a.work_dir, &a.env, limit, confinement).and_then(|mut c| c.spawn());
    let mut child = match spawned {
        Ok(c) => c,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            let why = format!("找不到 bash: {bash} (设置 job_bash_path / VWED_JOB_BASH_PATH)");
            return Outcome::failed(why).under(report);
        }
        Err(e) => return Outcome::failed(format!("bash 无法启动 ({bash}): {e}")).under(report),
    };
    let pid = child.id().unwrap_or(0);
    let limit = a.engine.cfg.engine.max_line_bytes;
    let mut readers = Vec::new();
    for (pipe, level, stream) in [
        (child.stdout.take().map(Pipe::Out), Level::Info, "stdout"),
        (child.stderr.take().map(Pipe::Err), Level::Error, "stderr"),
    ] {
        let Some(pipe) = pipe else { continue };
        let (capture, log) = (a.capture.clone(), a.log.clone());
        let on_line = move |line: String| {
            capture.push(&line);
            log.script_line(level, stream, line, None);
        };
        readers.push(match pipe {
            Pipe::Out(r) => tokio::spawn(read_lines(r, limit, on_line)),
            Pipe::Err(r) => tokio::spawn(read_lines(r, limit, on_line)),
        });
    }
    let never = std::future::pending::<Option<()>>();
    let ending = supervise(&mut child, never, a.timeout, &mut a.cancel).await;
    let mut outcome = conclude(ending, &mut child, pid, a.grace, a.timeout, |()| {
        Outcome::failed("bash 不会应答")
    })
    .await;
    drain(readers).await;
    // A process that left the job's process group (setsid, setpgid) is the
    // job's all the same: found by its execution id, as after a restart.
    let id = a.exec.id.clone();
    let _ =
        tokio::task::spawn_blocking(move || super::orphans::sweep(std::iter::once(id.as_str())))
            .await;
    outcome.result = read_result(&a.work_dir.join("result"));
    outcome.under(report)
}

/// What the job's process puts in force before it execs bash.
enum Confinement {
    /// `sandbox.enabled = false`: no_new_privs only.
    Off(SandboxReport),
    On(Box<Prepared>),
}

impl Confinement {
    fn report(&self) -> &SandboxReport {
        match self {
            Confinement::Off(r) => r,
            Confinement::On(p) => &p.report,
        }
    }

    /// In the forked child, before exec: system calls only.
    fn apply(&self) -> std::io::Result<()> {
        match self {
            Confinement::Off(_) => {
                // SAFETY: prctl(PR_SET_NO_NEW_PRIVS) sets a flag on this process.
                unsafe {
                    libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0);
                }
                Ok(())
            }
            Confinement::On(p) => p.apply(),
        }
    }
}

/// Hands the work dir (with its script) to the job's user and prepares the
/// confinement: ruleset, filter, user and process bound (it reads `/proc` to
/// count the user's tasks, so not on an executor thread).
async fn confinement(
    cfg: &std::sync::Arc<vwed_engine::EngineConfig>,
    work_dir: &Path,
    bash: &str,
) -> std::io::Result<Confinement> {
    if !cfg.sandbox.enabled {
        return Ok(Confinement::Off(vwed_sandbox::off()));
    }
    let (cfg, work_dir, bash) = (
        cfg.clone(),
        work_dir.to_path_buf(),
        Path::new(bash).to_path_buf(),
    );
    tokio::task::spawn_blocking(move || {
        vwed_sandbox::job::give_work_dir(&work_dir)?;
        let policy = vwed_sandbox::job::policy(&cfg.sandbox, &cfg.data_dir, &work_dir, &bash)?;
        Ok(Confinement::On(Box::new(vwed_sandbox::shell::prepare(
            &policy,
        ))))
    })
    .await
    .map_err(std::io::Error::other)?
}

enum Pipe {
    Out(tokio::process::ChildStdout),
    Err(tokio::process::ChildStderr),
}

fn command(
    bash: &str,
    work_dir: &Path,
    env: &[(String, String)],
    memory_limit: Option<u64>,
    confinement: Confinement,
) -> std::io::Result<Command> {
    let mut cmd = Command::new(bash);
    cmd.arg("job.sh");
    // The spawn-time part of worker confinement: limits, priority, cgroup leaf.
    let plan = vwed_engine::worker::prepare(&mut cmd)?;
    cmd.current_dir(work_dir)
        .env_clear()
        .envs(env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    let supervisor = std::process::id();
    // SAFETY: only system calls between fork and exec (`Prepared::apply` makes
    // nothing else either).
    unsafe {
        cmd.as_std_mut().pre_exec(move || {
            libc::setpgid(0, 0);
            vwed_engine::worker::in_child(&plan)?;
            if let Some(bytes) = memory_limit {
                vwed_engine::worker::limit_data_segment(bytes);
            }
            // While the process may still write its own /proc files.
            vwed_engine::worker::prefer_as_oom_victim();
            confinement.apply()?;
            // After the change of user, which clears it; a supervisor that ended
            // meanwhile would not send it any more.
            libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL);
            if libc::getppid() as u32 != supervisor {
                return Err(std::io::Error::from_raw_os_error(libc::ESRCH));
            }
            Ok(())
        });
    }
    Ok(cmd)
}

/// What the job wrote to `$VWED_RESULT`: JSON if it parses, else the text.
fn read_result(path: &Path) -> Option<Value> {
    let meta = std::fs::metadata(path).ok()?;
    if meta.len() > MAX_RESULT_BYTES {
        return Some(Value::String(format!(
            "结果文件过大 ({} 字节, 上限 {MAX_RESULT_BYTES})",
            meta.len()
        )));
    }
    let text = std::fs::read_to_string(path).ok()?;
    let trimmed = text.trim();
    Some(serde_json::from_str(trimmed).unwrap_or_else(|_| Value::String(trimmed.to_string())))
}

/// `bash -n`: whether the content parses. No bash at the configured path is not
/// an error here (an execution will say so); a check that hangs gives up.
pub async fn check_syntax(bash: &str, content: &str) -> Result<(), String> {
    use tokio::io::AsyncWriteExt;
    let child = Command::new(bash)
        .arg("-n")
        .env_clear()
        .env("PATH", "/usr/bin:/bin")
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn();
    let Ok(mut child) = child else {
        return Ok(());
    };
    if let Some(mut stdin) = child.stdin.take() {
        let text = content.as_bytes().to_vec();
        tokio::spawn(async move {
            let _ = stdin.write_all(&text).await;
        });
    }
    let out =
        tokio::time::timeout(std::time::Duration::from_secs(5), child.wait_with_output()).await;
    match out {
        Ok(Ok(o)) if !o.status.success() => {
            let text = String::from_utf8_lossy(&o.stderr);
            let first: Vec<&str> = text.lines().take(3).collect();
            Err(format!("Bash 语法错误: {}", first.join("; ")))
        }
        _ => Ok(()),
    }
}
