//! An `Auth` on a temporary directory with users and tokens made on demand, for
//! the tests of this crate and of the API (feature `testing`).

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use http::{HeaderMap, HeaderValue};

use super::admin::Command;
use super::{Auth, AuthSettings, Principal, Role, Settings};

/// An `Auth` on a fresh directory, removed on drop.
pub struct TestAuth {
    pub auth: Arc<Auth>,
    pub dir: PathBuf,
}

impl TestAuth {
    pub fn new(tag: &str) -> TestAuth {
        Self::with(tag, |_| {})
    }

    pub fn with(tag: &str, f: impl FnOnce(&mut AuthSettings)) -> TestAuth {
        let dir = std::env::temp_dir().join(format!(
            "vwed-auth-{tag}-{}-{}",
            std::process::id(),
            vwed_base::clock::unix_ms()
        ));
        std::fs::create_dir_all(&dir).expect("temp dir");
        let mut cfg = AuthSettings::default();
        f(&mut cfg);
        let auth = Auth::open(&dir, Settings::resolve(&cfg, false)).expect("open auth");
        TestAuth { auth, dir }
    }

    /// A user with a known password.
    pub fn user(&self, name: &str, role: Role) -> String {
        let pw = format!("{name}-password-1");
        self.auth
            .execute(
                Command::UserAdd {
                    name: name.into(),
                    role,
                    password: Some(pw.clone()),
                },
                &Principal::cli(),
            )
            .expect("add user");
        pw
    }

    /// A token's value.
    pub fn token(&self, role: Role) -> String {
        let out = self
            .auth
            .execute(
                Command::TokenCreate {
                    name: format!("{}-token", role.as_str()),
                    role,
                    expires_days: None,
                },
                &Principal::cli(),
            )
            .expect("token");
        out["token"].as_str().expect("token value").to_string()
    }
}

impl Drop for TestAuth {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

pub fn addr() -> Option<SocketAddr> {
    Some(SocketAddr::from(([127, 0, 0, 1], 40000)))
}

/// Request headers with the Host the checks want, plus `pairs`.
pub fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
    let mut h = HeaderMap::new();
    h.insert("host", HeaderValue::from_static("127.0.0.1:8000"));
    for (k, v) in pairs {
        h.insert(*k, HeaderValue::from_str(v).expect("value"));
    }
    h
}

/// `Authorization` of a token.
pub fn bearer(t: &str) -> String {
    format!("Bearer {t}")
}
