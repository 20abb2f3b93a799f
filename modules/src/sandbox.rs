//! The worker's side of kernel confinement that needs Python: the interpreter's
//! search path (read-only for the script), the scratch folder as working
//! directory, `HOME` and `TMPDIR`, and `VWED.util.scratch_dir()`. The walls
//! themselves are `vwed_sandbox`'s, which the supervisor links without Python.

use std::path::{Path, PathBuf};
use std::sync::Mutex;

use pyo3::prelude::*;
use vwed_ipc::{BootOutcome, SandboxPolicy, SandboxReport};

static REPORT: Mutex<Option<SandboxReport>> = Mutex::new(None);
static SCRATCH: Mutex<Option<String>> = Mutex::new(None);

/// Confines this worker for the script in `policy`. Returns the outcome to report
/// instead of running the script when the policy requires a confinement that is
/// not complete.
pub fn enter(py: Python<'_>, policy: &SandboxPolicy) -> Option<BootOutcome> {
    let mut report = if policy.enabled {
        vwed_sandbox::worker::confine(policy, python_paths(py))
    } else {
        vwed_sandbox::off()
    };
    if !policy.scratch_dir.is_empty()
        && let Err(e) = make_home(py, &policy.scratch_dir)
    {
        report
            .missing
            .push(format!("scratch folder {}: {e}", policy.scratch_dir));
    }
    let refused = (policy.required && !report.missing.is_empty()).then(|| BootOutcome::Failed {
        message: format!(
            "脚本沙箱不完整, 按配置 (sandbox.required) 拒绝运行: {}",
            report.missing.join("; ")
        ),
        traceback: String::new(),
    });
    *REPORT.lock().unwrap_or_else(|p| p.into_inner()) = Some(report);
    refused
}

/// The analyzer parses sources and runs none: it gets Python and nothing else.
pub fn enter_analyzer(py: Python<'_>) {
    let policy = SandboxPolicy {
        enabled: std::env::var_os(vwed_sandbox::OFF_ENV).is_none(),
        ..SandboxPolicy::default()
    };
    let _ = enter(py, &policy);
}

/// What [`enter`] put in force (empty before it ran).
pub fn report() -> SandboxReport {
    REPORT
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .clone()
        .unwrap_or_default()
}

/// `VWED.util.scratch_dir()`: the one folder this script may write.
#[pyfunction]
pub fn scratch_dir() -> Option<String> {
    SCRATCH.lock().unwrap_or_else(|p| p.into_inner()).clone()
}

/// The scratch folder becomes the working directory, `HOME` and `TMPDIR`, so that
/// relative paths and `tempfile` land where writing is allowed.
fn make_home(py: Python<'_>, dir: &str) -> PyResult<()> {
    let os = py.import("os")?;
    os.call_method1("chdir", (dir,))?;
    let environ = os.getattr("environ")?;
    environ.set_item("HOME", dir)?;
    environ.set_item("TMPDIR", dir)?;
    *SCRATCH.lock().unwrap_or_else(|p| p.into_inner()) = Some(dir.to_string());
    Ok(())
}

/// Python's search path (standard library, lib-dynload, site-packages, a bundle's
/// zip), as real absolute paths.
fn python_paths(py: Python<'_>) -> Vec<PathBuf> {
    let Ok(entries) = py.import("sys").and_then(|s| s.getattr("path")) else {
        return Vec::new();
    };
    let Ok(iter) = entries.try_iter() else {
        return Vec::new();
    };
    iter.filter_map(|e| e.ok()?.extract::<String>().ok())
        .filter(|s| Path::new(s).is_absolute())
        .filter_map(|s| std::fs::canonicalize(s).ok())
        .collect()
}
