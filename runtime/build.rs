//! Host builds link the worker against a shared libpython that may live outside the
//! loader's default path (a pyenv install, say). Record its directory as an rpath so
//! the binary runs as built. Cross builds configure Python themselves (static
//! libpython, `PYO3_CONFIG_FILE`) and get nothing from here.

use std::process::Command;

#[path = "build_ui.rs"]
mod build_ui;

fn main() {
    build_ui::embed();
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
