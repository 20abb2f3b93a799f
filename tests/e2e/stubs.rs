//! `vwed.pyi` and the real `VWED` object must describe the same API: every public
//! module and method of the object a script gets is in the stubs, and every stubbed
//! one exists.

use std::collections::{BTreeMap, BTreeSet};

use serde_json::Value;
use vwed_e2e::{Opts, Runtime};

const INTROSPECT: &str = r#"
def boot():
    @VWED.api.get("/introspect")
    def introspect(req):
        out = {"_VWED": sorted(n for n in dir(VWED) if not n.startswith("_"))}
        for name in out["_VWED"]:
            obj = getattr(VWED, name)
            if callable(obj) or isinstance(obj, type):
                continue
            out[name] = sorted(
                n for n in dir(obj) if not n.startswith("_") and callable(getattr(obj, n))
            )
        return out
"#;

/// `class X:` blocks of the stub file → their `def` names and annotated attributes.
fn parse_stubs(text: &str) -> BTreeMap<String, BTreeSet<String>> {
    let mut classes: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    let mut current: Option<String> = None;
    let mut in_doc = false;
    for line in text.lines() {
        // Docstrings may hold anything, including `name:` lines.
        let quotes = line.matches("\"\"\"").count();
        if in_doc {
            in_doc = quotes % 2 == 0;
            continue;
        }
        if quotes % 2 == 1 {
            in_doc = true;
            continue;
        }
        if quotes > 0 {
            continue;
        }
        if let Some(rest) = line.strip_prefix("class ") {
            let name: String = rest
                .chars()
                .take_while(|c| c.is_alphanumeric() || *c == '_')
                .collect();
            classes.entry(name.clone()).or_default();
            current = Some(name);
            continue;
        }
        if !line.starts_with("    ") {
            if !line.trim().is_empty() {
                current = None;
            }
            continue;
        }
        // Only members: continuation lines of a long signature are indented deeper.
        if line.starts_with("     ") {
            continue;
        }
        let Some(cls) = &current else { continue };
        let t = line.trim_start();
        let t = t.strip_prefix("async ").unwrap_or(t);
        let name = if let Some(rest) = t.strip_prefix("def ") {
            rest.split('(').next()
        } else if t.contains(':') && !t.starts_with('#') && !t.starts_with('"') {
            t.split(':').next()
        } else {
            None
        };
        let is_ident = |n: &&str| n.chars().all(|c| c.is_alphanumeric() || c == '_');
        if let Some(n) = name
            .map(str::trim)
            .filter(|n| !n.starts_with('_') && !n.is_empty())
            .filter(is_ident)
        {
            classes.get_mut(cls).map(|s| s.insert(n.to_string()));
        }
    }
    classes
}

/// `name: Type` lines directly inside `class _VWED:`.
fn vwed_annotations(text: &str) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    let mut inside = false;
    for line in text.lines() {
        if line.starts_with("class ") {
            inside = line.starts_with("class _VWED");
            continue;
        }
        if !inside {
            continue;
        }
        if !line.starts_with("    ") && !line.trim().is_empty() {
            inside = false;
            continue;
        }
        let t = line.trim();
        if t.starts_with("def ") || t.starts_with('#') {
            continue;
        }
        if let Some((name, ty)) = t.split_once(':') {
            out.insert(name.trim().to_string(), ty.trim().to_string());
        }
    }
    out
}

#[test]
fn stubs_match_the_vwed_object() {
    let rt = Runtime::with(Opts::default());
    rt.deploy("stubs", "introspect.py", INTROSPECT);
    let real = rt.call_route("GET", "/introspect", None);
    real.expect_status(200);
    let stubs_text = rt.get("/api/script/stubs/vwed.pyi").text;
    let stubs = parse_stubs(&stubs_text);
    let vwed = stubs.get("_VWED").expect("class _VWED in vwed.pyi");
    let real_top: BTreeSet<String> = real.json["_VWED"]
        .as_array()
        .expect("list")
        .iter()
        .filter_map(Value::as_str)
        .map(str::to_string)
        .collect();
    assert_eq!(&real_top, vwed, "VWED attributes: runtime vs vwed.pyi");
    for (module, methods) in real.json.as_object().expect("object") {
        if module == "_VWED" {
            continue;
        }
        let real_methods: BTreeSet<String> = methods
            .as_array()
            .expect("list")
            .iter()
            .filter_map(Value::as_str)
            .map(str::to_string)
            .collect();
        // The stub class of VWED.<module> is the annotation of that attribute.
        let ann = vwed_annotations(&stubs_text)
            .remove(module)
            .unwrap_or_else(|| {
                panic!("VWED.{module} has no annotation in class _VWED of vwed.pyi")
            });
        let stubbed = stubs
            .get(&ann)
            .unwrap_or_else(|| panic!("class {ann} (for VWED.{module}) missing in vwed.pyi"));
        assert_eq!(
            &real_methods, stubbed,
            "methods of VWED.{module} vs class {ann}"
        );
    }
}
