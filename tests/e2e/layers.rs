//! The crate graph of ARCHITECTURE.md is the workspace's: every `vwed-*`
//! dependency in a member's `[dependencies]` is an arrow of the graph, and every
//! arrow of the graph is such a dependency. A crate that gains an arrow (say the
//! registry reaching for the engine) fails here until the architecture says so.

use std::collections::{BTreeMap, BTreeSet};

const ROOT: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/..");

type Graph = BTreeMap<String, BTreeSet<String>>;

/// The fenced block under "### Crate graph": `crate  dep, dep` or `crate  -`.
fn documented() -> Graph {
    let text = std::fs::read_to_string(format!("{ROOT}/ARCHITECTURE.md")).expect("ARCHITECTURE.md");
    let at = text.find("### Crate graph").expect("a Crate graph section");
    let block = text[at..].split("```text\n").nth(1).expect("a text block");
    let block = &block[..block.find("```").expect("the block's end")];
    let mut g = Graph::new();
    for line in block.lines().filter(|l| !l.trim().is_empty()) {
        let (name, deps) = line.split_once(char::is_whitespace).unwrap_or((line, "-"));
        let deps = deps.trim();
        let set = if deps == "-" {
            BTreeSet::new()
        } else {
            deps.split(',').map(|d| d.trim().to_string()).collect()
        };
        assert!(
            g.insert(name.to_string(), set).is_none(),
            "{name} listed twice"
        );
    }
    g
}

/// The `[dependencies]` of a manifest that are workspace crates.
fn manifest_deps(manifest: &str) -> (String, BTreeSet<String>) {
    let mut name = String::new();
    let mut deps = BTreeSet::new();
    let mut section = "";
    for line in manifest.lines().map(str::trim) {
        if line.starts_with('[') {
            section = line;
            continue;
        }
        if section == "[package]" && line.starts_with("name") {
            name = line.split('"').nth(1).unwrap_or_default().to_string();
        }
        if section == "[dependencies]" && line.starts_with("vwed-") {
            let dep = line.split(|c: char| c == '=' || c == '.' || c.is_whitespace());
            deps.insert(dep.into_iter().next().unwrap_or_default().to_string());
        }
    }
    (name, deps)
}

/// Every workspace member's manifest (the `members` globs are `dir` or `dir/*`).
fn built() -> Graph {
    let ws = std::fs::read_to_string(format!("{ROOT}/Cargo.toml")).expect("Cargo.toml");
    let line = ws
        .lines()
        .find(|l| l.starts_with("members"))
        .expect("members");
    let mut g = Graph::new();
    for member in line.split('"').skip(1).step_by(2) {
        let dirs: Vec<std::path::PathBuf> = match member.strip_suffix("/*") {
            Some(parent) => std::fs::read_dir(format!("{ROOT}/{parent}"))
                .expect("member dir")
                .filter_map(|e| e.ok().map(|e| e.path()))
                .filter(|p| p.join("Cargo.toml").exists())
                .collect(),
            None => vec![format!("{ROOT}/{member}").into()],
        };
        for dir in dirs {
            let m = std::fs::read_to_string(dir.join("Cargo.toml")).expect("manifest");
            let (name, deps) = manifest_deps(&m);
            g.insert(name, deps);
        }
    }
    g
}

#[test]
fn the_crate_graph_of_architecture_md_is_the_workspaces() {
    let (doc, real) = (documented(), built());
    assert!(
        real.len() >= 20,
        "only {} workspace crates found",
        real.len()
    );
    for (name, deps) in &real {
        let said = doc
            .get(name)
            .unwrap_or_else(|| panic!("ARCHITECTURE.md's crate graph has no line for {name}"));
        let extra: Vec<_> = deps.difference(said).collect();
        let gone: Vec<_> = said.difference(deps).collect();
        assert!(
            extra.is_empty() && gone.is_empty(),
            "{name}: depends on {extra:?} that the graph does not show, and the graph shows {gone:?} it does not depend on"
        );
    }
    for name in doc.keys() {
        assert!(
            real.contains_key(name),
            "the graph lists {name}, no workspace crate has that name"
        );
    }
}

#[test]
fn a_dependency_line_is_read_whatever_its_spelling() {
    let (name, deps) = manifest_deps(
        "[package]\nname = \"x\"\n[dependencies]\nvwed-a.workspace = true\nvwed-b = { workspace = true, optional = true }\nserde = \"1\"\n[dev-dependencies]\nvwed-c.workspace = true\n",
    );
    assert_eq!(name, "x");
    assert_eq!(
        deps,
        BTreeSet::from(["vwed-a".to_string(), "vwed-b".to_string()])
    );
}
