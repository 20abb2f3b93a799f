//! Three things before the runtime crate compiles:
//!
//! - The web UI's built assets (`ui/dist`) are embedded (`build_ui.rs`).
//! - The OpenAPI document the API serves (`src/api/openapi.json`, which a test
//!   writes from the code) is packed as gzip into the build's output: about 150 KB
//!   of JSON become about 15 KB of the controller's binary (15 MB budget).
//!   `api::doc` serves the packed bytes as they are to clients that accept gzip
//!   and inflates them for the others.
//! - Host builds link the worker against a shared libpython that may live outside
//!   the loader's default path (a pyenv install, say). Record its directory as an
//!   rpath so the binary runs as built. Cross builds configure Python themselves
//!   (static libpython, `PYO3_CONFIG_FILE`) and get nothing from here.

use std::path::PathBuf;
use std::process::Command;

const OPENAPI: &str = "src/api/openapi.json";

#[path = "build_ui.rs"]
mod build_ui;

fn main() {
    build_ui::embed();
    pack_openapi();
    python_rpath();
}

fn pack_openapi() {
    println!("cargo:rerun-if-changed={OPENAPI}");
    let json = std::fs::read(OPENAPI).unwrap_or_else(|e| panic!("read {OPENAPI}: {e}"));
    let out = PathBuf::from(std::env::var_os("OUT_DIR").expect("OUT_DIR set by cargo"));
    std::fs::write(out.join("openapi.json.gz"), gzip(&json)).expect("write openapi.json.gz");
}

/// A gzip member (RFC 1952) without name or time: header, deflate data, CRC-32
/// and length of the input.
fn gzip(data: &[u8]) -> Vec<u8> {
    let mut out = vec![0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 2, 255];
    out.extend(miniz_oxide::deflate::compress_to_vec(data, 10));
    out.extend(crc32(data).to_le_bytes());
    out.extend((data.len() as u32).to_le_bytes());
    out
}

fn crc32(data: &[u8]) -> u32 {
    let mut crc = !0u32;
    for &b in data {
        crc ^= u32::from(b);
        for _ in 0..8 {
            crc = (crc >> 1) ^ (0xedb8_8320 & (crc & 1).wrapping_neg());
        }
    }
    !crc
}

fn python_rpath() {
    println!("cargo:rerun-if-env-changed=PYO3_PYTHON");
    println!("cargo:rerun-if-env-changed=PYO3_CONFIG_FILE");
    let cross = std::env::var("TARGET").ok() != std::env::var("HOST").ok();
    if cross || std::env::var_os("PYO3_CONFIG_FILE").is_some() {
        return;
    }
    let python = std::env::var("PYO3_PYTHON").unwrap_or_else(|_| "python3".into());
    let probe = "import sysconfig; print(sysconfig.get_config_var('LIBDIR') or '')";
    let Ok(out) = Command::new(python).args(["-c", probe]).output() else {
        return;
    };
    let libdir = String::from_utf8_lossy(&out.stdout).trim().to_string();
    if !libdir.is_empty() {
        println!("cargo:rustc-link-arg-bins=-Wl,-rpath,{libdir}");
    }
}
