//! First start on a new data dir: the `admin` account with a random password in
//! `<data-dir>/initial-admin-password` and an admin API token in
//! `<data-dir>/admin.token`, both mode 0600. Whoever can read them can already
//! read the database and use the admin socket, so they open nothing new; they
//! keep start-up at two commands (`scripts/run`, then `curl -H "Authorization:
//! Bearer $(cat vwed-data/admin.token)"`).

use std::path::Path;

use super::store::User;
use super::{Auth, AuthError, Role, admin, password};
use vwed_base::clock::unix_ms;

pub const INITIAL_PASSWORD_FILE: &str = "initial-admin-password";
pub const ADMIN_TOKEN_FILE: &str = "admin.token";
const ADMIN: &str = "admin";
const BOOTSTRAPPED: &str = "bootstrapped";

impl Auth {
    /// Creates the first admin account and token unless this data dir already
    /// had its first start. Returns whether it did.
    pub fn first_start(&self) -> Result<bool, AuthError> {
        if self.store.flag(BOOTSTRAPPED)? {
            return Ok(false);
        }
        let dir = self.data_dir.clone();
        let now = unix_ms();
        // An `admin` made with the offline CLI before the first start stays.
        let admin = if self.snapshot().users.contains_key(ADMIN) {
            None
        } else {
            let pw = password::generate()?;
            write_secret(&dir, INITIAL_PASSWORD_FILE, &pw)?;
            Some(User {
                name: ADMIN.into(),
                role: Role::Admin,
                hash: password::hash(&pw)?,
                disabled: false,
                created_ms: now,
                password_changed_ms: now,
                last_login_ms: None,
            })
        };
        let (value, token) = admin::new_token("admin.token", Role::Admin, None, "first start")?;
        // The files first: a crash before the commit leaves no account whose
        // password nobody has; the next start simply makes both again.
        write_secret(&dir, ADMIN_TOKEN_FILE, &value)?;
        self.change(false, |s| s.bootstrap(admin.as_ref(), token, now))?;
        if admin.is_some() {
            tracing::info!(
                "created the admin account; its password is in {} (readable only by this user; \
                 change it with `vwed-edge user passwd admin`)",
                dir.join(INITIAL_PASSWORD_FILE).display()
            );
        }
        tracing::info!(
            "created an admin API token in {}: curl -H \"Authorization: Bearer $(cat {})\" ...",
            dir.join(ADMIN_TOKEN_FILE).display(),
            dir.join(ADMIN_TOKEN_FILE).display()
        );
        Ok(true)
    }

    /// Once `admin` has a password someone chose, the first one's file goes.
    pub(super) fn forget_initial_password(&self, user: &str) {
        if user != ADMIN {
            return;
        }
        let path = self.data_dir.join(INITIAL_PASSWORD_FILE);
        if let Err(e) = vwed_base::fsio::remove_in(&self.data_dir, INITIAL_PASSWORD_FILE) {
            tracing::warn!("cannot remove {}: {e}", path.display());
        }
    }
}

/// `name` in the data dir, readable by the runtime's user only.
fn write_secret(data_dir: &Path, name: &str, value: &str) -> Result<(), AuthError> {
    vwed_base::fsio::write_in(data_dir, name, format!("{value}\n").as_bytes(), 0o600).map_err(|e| {
        AuthError::File(
            data_dir.join(name).display().to_string(),
            std::io::Error::other(e),
        )
    })
}
