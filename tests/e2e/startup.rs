//! Start-up as a newcomer meets it: settings from the environment and the
//! runtime's own log.

use std::process::{Command, Stdio};

use vwed_e2e::{Opts, Runtime, TempDir, binary};

/// Runs `serve` with one `VWED_*` setting (and no other from the environment);
/// returns its stderr after checking that it refused to start.
fn refused_with(var: &str, value: &str, data: &TempDir) -> String {
    let mut cmd = Command::new(binary());
    cmd.arg("serve").arg("--data-dir").arg(data.path());
    for (k, _) in std::env::vars() {
        if k.starts_with("VWED_") {
            cmd.env_remove(k);
        }
    }
    let out = cmd
        .env(var, value)
        .stdin(Stdio::null())
        .output()
        .expect("run vwed-edge");
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(!out.status.success(), "must not start: {stderr}");
    stderr
}

#[test]
fn a_bad_environment_value_names_its_variable() {
    let data = TempDir::new("env");
    let stderr = refused_with("VWED_CALL_TIMEOUT_MS", "abc", &data);
    assert!(
        stderr.contains(r#"VWED_CALL_TIMEOUT_MS: invalid number "abc""#),
        "{stderr}"
    );
    // Refused before anything was created in the data dir.
    assert!(!data.path().join("vwed.redb").exists());
}

#[test]
fn a_bad_listen_address_in_the_environment_names_its_variable() {
    let data = TempDir::new("env");
    let stderr = refused_with("VWED_LISTEN", "localhost", &data);
    assert!(
        stderr.contains(r#"VWED_LISTEN: invalid value "localhost""#),
        "{stderr}"
    );
}

#[test]
fn the_runtime_log_has_no_colour_codes_when_stderr_is_a_file() {
    let rt = Runtime::with(Opts::default());
    let log = rt.stderr();
    assert!(
        log.contains("listening on"),
        "the log goes to stderr: {log}"
    );
    assert!(
        !log.contains('\u{1b}'),
        "no ANSI escapes in a file: {log:?}"
    );
}
