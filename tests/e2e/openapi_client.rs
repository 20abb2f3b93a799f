//! A client generated from the served OpenAPI document works against the real
//! binary: `openapi-python-client` (tests/requirements.txt) makes a Python
//! package from `/api/openapi.json`, and `openapi_client.py` drives endpoints
//! of every area through it, asserting the typed answers it parses. A document
//! that misnames a body or leaves a field out fails here the way it would fail
//! a user's client.

use std::path::Path;
use std::process::Command;

use vwed_e2e::{Opts, Runtime, TempDir};

const DRIVER: &str = include_str!("openapi_client.py");

/// Runs `cmd`, failing with its output (and `hint`) unless it succeeds.
fn run(cmd: &mut Command, hint: &str) -> String {
    let out = cmd
        .output()
        .unwrap_or_else(|e| panic!("cannot run {cmd:?}: {e}; {hint}"));
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "{cmd:?} failed: {text}\n{hint}");
    text
}

/// The generator, as installed by scripts/install-deps; not found is a
/// failure, not a skip, since this test is what proves the document usable.
fn generate(doc: &Path, into: &Path) {
    run(
        Command::new("openapi-python-client")
            .arg("generate")
            .arg("--path")
            .arg(doc)
            .arg("--output-path")
            .arg(into)
            .args(["--meta", "none", "--overwrite"]),
        "openapi-python-client==0.29.1 is needed: pip install -r tests/requirements.txt \
         (scripts/install-deps installs it)",
    );
}

#[test]
fn a_client_generated_from_the_document_drives_the_api() {
    let rt = Runtime::with(Opts::default().sample());
    let r = rt.get("/api/openapi.json");
    assert_eq!(r.status, 200, "{}", r.text);
    let dir = TempDir::new("openapi-client");
    let doc = dir.path().join("openapi.json");
    std::fs::write(&doc, &r.text).expect("write the document");
    generate(&doc, &dir.path().join("vwed_client"));
    let driver = dir.path().join("drive.py");
    std::fs::write(&driver, DRIVER).expect("write the driver");
    let out = run(
        Command::new("python3")
            .arg(&driver)
            .env("PYTHONPATH", dir.path())
            .env("VWED_URL", format!("http://127.0.0.1:{}", rt.port))
            .env("VWED_TOKEN", rt.token()),
        "the generated client failed against the runtime",
    );
    // The driver prints one line per endpoint it called.
    let called = out.lines().filter(|l| l.starts_with("ok ")).count();
    assert!(called >= 10, "only {called} endpoints driven:\n{out}");
}
