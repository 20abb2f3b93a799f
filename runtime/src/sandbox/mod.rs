//! The supervisor links no Python: checked against the package graph itself.

#[cfg(test)]
mod tests {
    /// The packages `cargo tree` lists for `args`, one per line, without versions.
    fn tree(args: &[&str]) -> Vec<String> {
        let out = std::process::Command::new(env!("CARGO"))
            .args(["tree", "--offline", "-e", "normal", "--prefix", "none"])
            .args(["--format", "{p}"])
            .args(args)
            .current_dir(env!("CARGO_MANIFEST_DIR"))
            .output()
            .expect("cargo tree runs");
        assert!(
            out.status.success(),
            "cargo tree {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .filter_map(|l| l.split_whitespace().next())
            .map(str::to_string)
            .collect()
    }

    /// Only the Python host links pyo3: the supervisor's library (the package
    /// without its `worker` feature, which only main.rs's worker entry uses) and
    /// the confinement it shares with the worker do not.
    #[test]
    fn the_supervisor_links_no_python() {
        let edge = tree(&["-p", "vwed-edge", "--no-default-features"]);
        assert!(edge.iter().any(|p| p == "vwed-sandbox"), "{edge:?}");
        for package in ["pyo3", "vwed-pyhost"] {
            assert!(
                !edge.iter().any(|p| p == package),
                "vwed-edge's library links {package}"
            );
        }
        let sandbox = tree(&["-p", "vwed-sandbox"]);
        assert!(
            !sandbox.iter().any(|p| p.starts_with("pyo3")),
            "{sandbox:?}"
        );
        // The check sees pyo3 where it is: the binary's worker entry.
        let binary = tree(&["-p", "vwed-edge"]);
        assert!(binary.iter().any(|p| p == "pyo3"), "{binary:?}");
    }
}
