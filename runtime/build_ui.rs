//! Embeds the built web UI (`ui/dist`, committed) in the binary: writes
//! `$OUT_DIR/ui_assets.rs`, one entry per file with its bytes (`include_bytes!`),
//! content type and ETag. Assets are embedded gzipped only (`.gz`); index.html
//! as it is. A changed `ui/dist` rebuilds the runtime (`rerun-if-changed`).

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

fn content_type(name: &str) -> &'static str {
    let name = name.trim_end_matches(".gz");
    match name.rsplit('.').next() {
        Some("js") => "text/javascript; charset=utf-8",
        Some("css") => "text/css; charset=utf-8",
        Some("html") => "text/html; charset=utf-8",
        Some("json") => "application/json",
        Some("svg") => "image/svg+xml",
        Some("png") => "image/png",
        Some("woff2") => "font/woff2",
        _ => "application/octet-stream",
    }
}

/// FNV-1a, 64 bits: an ETag that changes with the content.
fn fnv(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |h, b| {
        (h ^ u64::from(*b)).wrapping_mul(0x0000_0100_0000_01b3)
    })
}

fn files(dir: &Path, rel: &str, out: &mut Vec<(String, PathBuf)>) {
    let Ok(rd) = std::fs::read_dir(dir) else {
        return;
    };
    let mut items: Vec<_> = rd.flatten().collect();
    items.sort_by_key(|e| e.file_name());
    for e in items {
        let name = e.file_name().to_string_lossy().into_owned();
        let path = e.path();
        let r = if rel.is_empty() {
            name.clone()
        } else {
            format!("{rel}/{name}")
        };
        if path.is_dir() {
            files(&path, &r, out);
        } else {
            out.push((r, path));
        }
    }
}

pub fn embed() {
    let manifest = PathBuf::from(std::env::var("CARGO_MANIFEST_DIR").unwrap_or_default());
    let dist = manifest.join("../ui/dist");
    println!("cargo:rerun-if-changed={}", dist.display());
    let mut list = Vec::new();
    files(&dist, "", &mut list);
    let mut code = String::from("&[\n");
    for (rel, path) in &list {
        let bytes = std::fs::read(path).unwrap_or_default();
        let _ = writeln!(
            code,
            "    UiFile {{ path: {rel:?}, bytes: include_bytes!({:?}), content_type: {:?}, etag: \"\\\"{:016x}\\\"\" }},",
            path.canonicalize()
                .unwrap_or(path.clone())
                .display()
                .to_string(),
            content_type(rel),
            fnv(&bytes)
        );
    }
    code.push(']');
    let out = PathBuf::from(std::env::var("OUT_DIR").unwrap_or_default()).join("ui_assets.rs");
    let _ = std::fs::write(out, code);
}
