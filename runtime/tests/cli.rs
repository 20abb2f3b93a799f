//! The command line itself. These also make `cargo test --workspace` build the
//! `vwed-edge` binary that the end-to-end tests in `tests/` start.

use std::process::Command;

fn run(args: &[&str]) -> (bool, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_vwed-edge"))
        .args(args)
        .env_remove("VWED_CONFIG")
        .output()
        .expect("run vwed-edge");
    let mut text = String::from_utf8_lossy(&out.stdout).into_owned();
    text.push_str(&String::from_utf8_lossy(&out.stderr));
    (out.status.success(), text)
}

#[test]
fn help_explains_every_command() {
    let (ok, text) = run(&["--help"]);
    assert!(ok, "{text}");
    for cmd in ["serve", "config", "stubs"] {
        assert!(text.contains(cmd), "--help must mention {cmd}:\n{text}");
    }
    assert!(
        !text.lines().any(|l| l.trim_start().starts_with("worker ")),
        "the worker mode is internal:\n{text}"
    );
    let (ok, text) = run(&["serve", "--help"]);
    assert!(ok, "{text}");
    for flag in ["--listen", "--data-dir", "--config", "VWED_"] {
        assert!(
            text.contains(flag),
            "serve --help must mention {flag}:\n{text}"
        );
    }
}

#[test]
fn config_prints_defaults_and_env_overrides() {
    let out = Command::new(env!("CARGO_BIN_EXE_vwed-edge"))
        .args(["config"])
        .env("VWED_CALL_TIMEOUT_MS", "1234")
        .env_remove("VWED_CONFIG")
        .output()
        .expect("run");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success());
    assert!(text.contains("listen = \"127.0.0.1:8000\""), "{text}");
    assert!(text.contains("call_timeout_ms = 1234"), "{text}");
}

#[test]
fn bad_config_file_names_the_file_and_key() {
    let dir = std::env::temp_dir().join(format!("vwed-cli-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("dir");
    let f = dir.join("bad.toml");
    std::fs::write(&f, "call_timout_ms = 5\n").expect("write");
    let (ok, text) = run(&["config", "--config", f.to_str().expect("utf8")]);
    assert!(!ok);
    assert!(
        text.contains("bad.toml") && text.contains("call_timout_ms"),
        "{text}"
    );
}

#[test]
fn stubs_describe_the_vwed_object() {
    let (ok, text) = run(&["stubs"]);
    assert!(ok);
    assert!(
        text.contains("class _VWED") && text.contains("def register_route"),
        "{text}"
    );
}
