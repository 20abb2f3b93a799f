//! The split the crates exist for, checked on the dependency graph itself
//! (issue 18): the central side links no HTTP server, database or Python, and
//! the device library does not carry the central side. A new dependency that
//! breaks either fails here, in `cargo test --workspace` (scripts/test).

use std::collections::BTreeSet;
use std::process::Command;

const WORKSPACE: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../..");

/// The names of every crate `package` links (normal dependencies, this host).
fn linked(package: &str) -> BTreeSet<String> {
    let out = Command::new(env!("CARGO"))
        .args(["tree", "--quiet", "-e", "normal", "--prefix", "none", "-p"])
        .arg(package)
        .arg("--manifest-path")
        .arg(format!("{WORKSPACE}/Cargo.toml"))
        .output()
        .expect("run cargo tree");
    assert!(
        out.status.success(),
        "cargo tree -p {package} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let names: BTreeSet<String> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| l.split_whitespace().next())
        .map(str::to_string)
        .collect();
    // An empty or foreign answer would pass every "does not contain" below.
    assert!(
        names.contains(package),
        "cargo tree -p {package} does not list {package}: {names:?}"
    );
    names
}

#[test]
fn the_central_side_links_no_http_server_database_or_python() {
    let names = linked("vwed-fleet");
    assert!(names.contains("vwed-fleet-proto"), "{names:?}");
    let forbidden: Vec<&String> = names
        .iter()
        .filter(|n| {
            matches!(
                n.as_str(),
                "warp" | "redb" | "vwed-db" | "vwed-pyhost" | "vwed-edge"
            ) || n.starts_with("pyo3")
        })
        .collect();
    assert!(
        forbidden.is_empty(),
        "vwed-fleet links {forbidden:?}: the central side must stay apart from the device's \
         HTTP server (warp), database (redb) and Python (pyo3)"
    );
}

#[test]
fn the_device_library_does_not_carry_the_central_side() {
    let names = linked("vwed-edge");
    assert!(names.contains("vwed-fleet-proto"), "{names:?}");
    assert!(
        !names.contains("vwed-fleet"),
        "vwed-edge depends on vwed-fleet, the central side"
    );
    // The central side lived in the device library as `fleet::central` before
    // it had a crate of its own; the device side is now vwed-fleet-agent.
    let fleet = format!("{WORKSPACE}/crates/fleet-agent/src");
    let module = std::fs::read_to_string(format!("{fleet}/lib.rs")).expect("fleet agent's lib.rs");
    assert!(
        !module
            .lines()
            .any(|l| l.trim_start().starts_with("pub mod central")
                || l.trim_start().starts_with("mod central")),
        "crates/fleet-agent/src/lib.rs declares a central module again"
    );
    for leftover in ["central", "central.rs"] {
        assert!(
            !std::path::Path::new(&format!("{fleet}/{leftover}")).exists(),
            "crates/fleet-agent/src/{leftover} exists: the central side belongs in crates/fleet"
        );
    }
}

#[test]
fn the_binary_offers_every_command() {
    let out = Command::new(env!("CARGO_BIN_EXE_vwed-fleet"))
        .arg("--help")
        .output()
        .expect("run vwed-fleet --help");
    assert!(out.status.success(), "vwed-fleet --help failed");
    let help = String::from_utf8_lossy(&out.stdout);
    for cmd in ["keygen", "deploy", "status", "call", "rollback"] {
        assert!(help.contains(cmd), "--help does not list {cmd}: {help}");
    }
}
