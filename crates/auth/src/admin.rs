//! Account and token management: one set of commands for the HTTP API
//! (`/api/auth/users`, `/api/auth/tokens`), the admin socket and the offline
//! `vwed-edge user|token` commands, so the three cannot drift apart.

use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use super::password::{self, PasswordError};
use super::store::{NewToken, StoreError, Token, User};
use super::{Auth, Principal, Role, audit, secret};
use vwed_base::clock::unix_ms;

/// Longest expiry a token may be given.
pub const MAX_EXPIRES_DAYS: u64 = 3_650;

/// One management command. No `Debug`: it may carry a password.
#[derive(Clone, Serialize, Deserialize)]
#[serde(tag = "cmd", rename_all = "snake_case", deny_unknown_fields)]
pub enum Command {
    UserList,
    /// Without a password, one is generated and shown once.
    UserAdd {
        name: String,
        role: Role,
        #[serde(default)]
        password: Option<String>,
    },
    UserPasswd {
        name: String,
        #[serde(default)]
        password: Option<String>,
    },
    UserSet {
        name: String,
        #[serde(default)]
        role: Option<Role>,
        #[serde(default)]
        disabled: Option<bool>,
    },
    UserDel {
        name: String,
    },
    TokenList,
    TokenCreate {
        name: String,
        role: Role,
        #[serde(default)]
        expires_days: Option<u64>,
    },
    TokenRevoke {
        id: u64,
    },
}

impl Command {
    /// The audit action name.
    pub fn action(&self) -> &'static str {
        match self {
            Command::UserList => "user.list",
            Command::UserAdd { .. } => "user.add",
            Command::UserPasswd { .. } => "user.passwd",
            Command::UserSet { .. } => "user.set",
            Command::UserDel { .. } => "user.del",
            Command::TokenList => "token.list",
            Command::TokenCreate { .. } => "token.create",
            Command::TokenRevoke { .. } => "token.revoke",
        }
    }

    pub fn target(&self) -> String {
        match self {
            Command::UserList | Command::TokenList => String::new(),
            Command::UserAdd { name, .. }
            | Command::UserPasswd { name, .. }
            | Command::UserSet { name, .. }
            | Command::UserDel { name } => format!("user:{name}"),
            Command::TokenCreate { name, .. } => format!("token:{name}"),
            Command::TokenRevoke { id } => format!("token#{id}"),
        }
    }

    /// Lists change nothing and are not audited.
    pub fn changes(&self) -> bool {
        !matches!(self, Command::UserList | Command::TokenList)
    }
}

#[derive(Debug, thiserror::Error)]
pub enum AdminError {
    #[error("{0}")]
    Store(#[from] StoreError),
    #[error("{0}")]
    Password(#[from] PasswordError),
    #[error("{0}")]
    Random(#[from] secret::RandomError),
    #[error("{0}")]
    BadRequest(String),
}

impl AdminError {
    pub fn status(&self) -> u16 {
        match self {
            AdminError::Store(StoreError::UserNotFound(_) | StoreError::TokenNotFound(_)) => 404,
            AdminError::Store(StoreError::UserExists(_) | StoreError::LastAdmin) => 409,
            AdminError::Store(StoreError::BadName(_) | StoreError::TooMany(..))
            | AdminError::Password(PasswordError::Length)
            | AdminError::BadRequest(_) => 400,
            _ => 500,
        }
    }
}

fn iso(ms: Option<u64>) -> Value {
    ms.map_or(Value::Null, |m| Value::String(vwed_base::clock::iso_utc(m)))
}

pub fn user_json(u: &User) -> Value {
    json!({
        "name": u.name,
        "role": u.role.as_str(),
        "disabled": u.disabled,
        "created_at": iso(Some(u.created_ms)),
        "password_changed_at": iso(Some(u.password_changed_ms)),
        "last_login_at": iso(u.last_login_ms),
    })
}

pub fn token_json(t: &Token, last_used_ms: Option<u64>, now_ms: u64) -> Value {
    let state = if t.revoked_ms.is_some() {
        "revoked"
    } else if t.expires_ms.is_some_and(|e| e <= now_ms) {
        "expired"
    } else {
        "active"
    };
    json!({
        "id": t.id,
        "name": t.name,
        "role": t.role.as_str(),
        "hint": format!("{}{}…", secret::TOKEN_PREFIX, t.hint),
        "state": state,
        "created_at": iso(Some(t.created_ms)),
        "created_by": t.created_by,
        "expires_at": iso(t.expires_ms),
        "revoked_at": iso(t.revoked_ms),
        "last_used_at": iso(last_used_ms),
    })
}

/// A password given, or a new one generated (then shown once in the answer).
fn password_or_new(given: Option<String>) -> Result<(String, bool), AdminError> {
    match given {
        Some(p) => {
            password::check_policy(&p)?;
            Ok((p, false))
        }
        None => Ok((password::generate()?, true)),
    }
}

impl Auth {
    /// Runs one command (blocking: redb and Argon2). `by` is recorded as the
    /// creator of tokens; auditing is the caller's (`run_audited`, the HTTP routes).
    pub fn execute(&self, cmd: Command, by: &Principal) -> Result<Value, AdminError> {
        let now = unix_ms();
        match cmd {
            Command::UserList => {
                let mut users = self.store.users()?;
                users.sort_by(|a, b| a.name.cmp(&b.name));
                Ok(Value::Array(users.iter().map(user_json).collect()))
            }
            Command::UserAdd {
                name,
                role,
                password,
            } => self.user_add(name, role, password, by, now),
            Command::UserPasswd { name, password } => self.user_passwd(name, password, by, now),
            Command::UserSet {
                name,
                role,
                disabled,
            } => self.user_set(name, role, disabled, by),
            Command::UserDel { name } => {
                self.change(true, |s| s.delete_user(&name))?;
                tracing::info!(user = %name, by = %by.name, "user deleted");
                Ok(json!({"name": name}))
            }
            Command::TokenList => {
                let mut tokens = self.store.tokens()?;
                tokens.sort_by_key(|t| t.id);
                Ok(Value::Array(
                    tokens
                        .iter()
                        .map(|t| {
                            let used = self.pending_use(t.id).max(t.last_used_ms);
                            token_json(t, used, now)
                        })
                        .collect(),
                ))
            }
            Command::TokenCreate {
                name,
                role,
                expires_days,
            } => {
                let (value, token) = self.create_token(&name, role, expires_days, &by.name)?;
                tracing::info!(token = %name, id = token.id, role = role.as_str(), by = %by.name, "API token created");
                let mut out = token_json(&token, None, now);
                out["token"] = json!(value);
                Ok(out)
            }
            Command::TokenRevoke { id } => {
                let token = self.change(true, |s| s.revoke_token(id, now))?;
                tracing::info!(token = %token.name, id, by = %by.name, "API token revoked");
                Ok(token_json(&token, token.last_used_ms, now))
            }
        }
    }

    fn user_add(
        &self,
        name: String,
        role: Role,
        password: Option<String>,
        by: &Principal,
        now: u64,
    ) -> Result<Value, AdminError> {
        let (pw, generated) = password_or_new(password)?;
        let user = User {
            name: name.clone(),
            role,
            hash: password::hash(&pw)?,
            disabled: false,
            created_ms: now,
            password_changed_ms: now,
            last_login_ms: None,
        };
        self.change(false, |s| s.add_user(&user))?;
        tracing::info!(user = %name, role = role.as_str(), by = %by.name, "user added");
        let mut out = user_json(&user);
        out["password"] = json!(generated.then_some(pw));
        Ok(out)
    }

    fn user_passwd(
        &self,
        name: String,
        password: Option<String>,
        by: &Principal,
        now: u64,
    ) -> Result<Value, AdminError> {
        let (pw, generated) = password_or_new(password)?;
        let hash = password::hash(&pw)?;
        let user = self.change(true, |s| {
            s.update_user(&name, |u| {
                u.hash = hash;
                u.password_changed_ms = now;
                true
            })
        })?;
        self.forget_initial_password(&name);
        tracing::info!(user = %name, by = %by.name, "password changed; sessions ended");
        let mut out = user_json(&user);
        out["password"] = json!(generated.then_some(pw));
        Ok(out)
    }

    /// A lower role or a disabled account ends the user's sessions.
    fn user_set(
        &self,
        name: String,
        role: Option<Role>,
        disabled: Option<bool>,
        by: &Principal,
    ) -> Result<Value, AdminError> {
        if role.is_none() && disabled.is_none() {
            return Err(AdminError::BadRequest(
                "没有要修改的内容 (role, disabled)".into(),
            ));
        }
        let user = self.change(true, |s| {
            s.update_user(&name, |u| {
                let lower = role.is_some_and(|r| r < u.role);
                let disabling = disabled == Some(true) && !u.disabled;
                if let Some(r) = role {
                    u.role = r;
                }
                if let Some(d) = disabled {
                    u.disabled = d;
                }
                lower || disabling
            })
        })?;
        tracing::info!(user = %name, by = %by.name, "user changed");
        Ok(user_json(&user))
    }

    /// A new token: its value (shown once) and its stored record.
    pub(super) fn create_token(
        &self,
        name: &str,
        role: Role,
        expires_days: Option<u64>,
        by: &str,
    ) -> Result<(String, Token), AdminError> {
        let new = new_token(name, role, expires_days, by)?;
        let token = self.change(false, |s| s.add_token(new.1, unix_ms()))?;
        Ok((new.0, token))
    }

    /// Runs `cmd` for the owner of the data dir (admin socket, offline CLI) and
    /// records changes in the audit log before answering.
    pub fn run_audited(&self, cmd: Command, addr: &str) -> Result<Value, AdminError> {
        let by = Principal::cli();
        let entry = cmd
            .changes()
            .then(|| audit::Entry::new(Some(&by), addr, cmd.action(), &cmd.target()));
        let result = self.execute(cmd, &by);
        if let Some(e) = entry {
            let status = result.as_ref().map_or_else(AdminError::status, |_| 200);
            let e = match &result {
                Err(err) => e.status(status).detail(err.to_string()),
                Ok(_) => e.status(status),
            };
            if let Err(err) = self.audit.record_blocking(e) {
                tracing::error!("audit record lost: {err}");
            }
        }
        result
    }
}

/// The value of a new token and what is stored of it.
pub(super) fn new_token(
    name: &str,
    role: Role,
    expires_days: Option<u64>,
    by: &str,
) -> Result<(String, NewToken), AdminError> {
    let expires_ms = match expires_days {
        None => None,
        Some(d) if (1..=MAX_EXPIRES_DAYS).contains(&d) => Some(unix_ms() + d * 86_400_000),
        Some(_) => {
            return Err(AdminError::BadRequest(format!(
                "expires_days 须在 1 到 {MAX_EXPIRES_DAYS} 之间"
            )));
        }
    };
    let (value, digest) = secret::new_token()?;
    let hint = value[secret::TOKEN_PREFIX.len()..][..6].to_string();
    Ok((
        value,
        NewToken {
            name: name.to_string(),
            role,
            digest,
            hint,
            created_by: by.to_string(),
            expires_ms,
        },
    ))
}
