//! Accounts, API tokens and browser sessions in `<data-dir>/auth.redb`.
//!
//! A file of its own, apart from `vwed.redb`: the offline `vwed-edge user/token`
//! commands open only this small file (never the script store), it is created
//! with mode 0600, and a copy of the project data carries no credentials. The
//! audit log lives in the same file (see `audit.rs`) so that an offline change
//! and its audit record share one store.

use std::path::Path;
use std::sync::Arc;

use redb::{Database, ReadableDatabase, ReadableTable, ReadableTableMetadata, TableDefinition};
use serde::{Deserialize, Serialize};

use super::Role;
use super::password::PasswordError;
use super::secret::Digest;
use vwed_db::{DbError, decode, encode};

/// user name → `User`.
const USERS: TableDefinition<&str, &[u8]> = TableDefinition::new("users");
/// token id → `Token` (revoked ones are kept for the listing until pruned).
const TOKENS: TableDefinition<u64, &[u8]> = TableDefinition::new("tokens");
/// SHA-256 of the session id → `Session`.
const SESSIONS: TableDefinition<&[u8], &[u8]> = TableDefinition::new("sessions");
/// Counters and flags: "token_id", "bootstrapped".
const META: TableDefinition<&str, u64> = TableDefinition::new("auth_meta");

pub const MAX_USERS: usize = 1_000;
/// Tokens that are neither revoked nor expired.
pub const MAX_TOKENS: usize = 1_000;
pub const MAX_SESSIONS: usize = 1_024;
pub const MAX_SESSIONS_PER_USER: usize = 32;
/// Revoked and expired tokens stay listed this long, then go.
const KEEP_DEAD_TOKENS_MS: u64 = 30 * 86_400_000;

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("{0}")]
    Db(#[from] DbError),
    #[error("用户 {0} 已存在")]
    UserExists(String),
    #[error("用户 {0} 不存在")]
    UserNotFound(String),
    #[error("令牌 {0} 不存在")]
    TokenNotFound(u64),
    #[error("至少要保留一个启用的管理员账户")]
    LastAdmin,
    #[error("{0}数量已达上限 {1}")]
    TooMany(&'static str, usize),
    #[error("名称无效: {0}")]
    BadName(String),
    #[error("{0}")]
    Password(#[from] PasswordError),
    #[error("cannot set the permissions of {0}: {1}")]
    Permissions(String, std::io::Error),
}

vwed_db::from_redb_errors!(StoreError);

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct User {
    pub name: String,
    pub role: Role,
    /// Argon2id PHC string.
    pub hash: String,
    pub disabled: bool,
    pub created_ms: u64,
    pub password_changed_ms: u64,
    pub last_login_ms: Option<u64>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Token {
    pub id: u64,
    pub name: String,
    pub role: Role,
    pub digest: Digest,
    /// The first characters after the prefix, to tell tokens apart in a list.
    pub hint: String,
    pub created_ms: u64,
    pub created_by: String,
    pub expires_ms: Option<u64>,
    pub revoked_ms: Option<u64>,
    pub last_used_ms: Option<u64>,
}

impl Token {
    pub fn usable(&self, now_ms: u64) -> bool {
        self.revoked_ms.is_none() && self.expires_ms.is_none_or(|e| now_ms < e)
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Session {
    pub user: String,
    pub csrf: String,
    pub created_ms: u64,
    pub expires_ms: u64,
    pub addr: String,
}

/// What a new token needs besides its id.
pub struct NewToken {
    pub name: String,
    pub role: Role,
    pub digest: Digest,
    pub hint: String,
    pub created_by: String,
    pub expires_ms: Option<u64>,
}

/// User names: what fits in a log line and a URL path without escaping.
pub fn check_user_name(name: &str) -> Result<(), StoreError> {
    let ok = (1..=64).contains(&name.len())
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-' | b'@'));
    if ok {
        Ok(())
    } else {
        Err(StoreError::BadName(format!(
            "用户名须为 1-64 个字母、数字或 . _ - @, 得到 {name:?}"
        )))
    }
}

/// Token names are labels ("task server", "plc-webhook"): printable, bounded.
pub fn check_token_name(name: &str) -> Result<(), StoreError> {
    let n = name.chars().count();
    if (1..=64).contains(&n) && !name.chars().any(char::is_control) {
        Ok(())
    } else {
        Err(StoreError::BadName(format!(
            "令牌名称须为 1-64 个可打印字符, 得到 {name:?}"
        )))
    }
}

#[derive(Clone)]
pub struct AuthStore {
    db: Arc<Database>,
}

impl AuthStore {
    pub fn open(path: &Path) -> Result<AuthStore, StoreError> {
        let db = Database::builder()
            .set_cache_size(1024 * 1024)
            .create(path)?;
        restrict(path)?;
        let w = db.begin_write()?;
        w.open_table(USERS)?;
        w.open_table(TOKENS)?;
        w.open_table(SESSIONS)?;
        w.open_table(META)?;
        w.commit()?;
        Ok(AuthStore { db: Arc::new(db) })
    }

    pub fn db(&self) -> &Arc<Database> {
        &self.db
    }

    pub fn users(&self) -> Result<Vec<User>, StoreError> {
        self.values(USERS)
    }

    pub fn tokens(&self) -> Result<Vec<Token>, StoreError> {
        self.values(TOKENS)
    }

    fn values<K: redb::Key + 'static, T: serde::de::DeserializeOwned>(
        &self,
        def: TableDefinition<K, &[u8]>,
    ) -> Result<Vec<T>, StoreError> {
        let r = self.db.begin_read()?;
        let t = r.open_table(def)?;
        let mut out = Vec::new();
        for row in t.iter()? {
            out.push(decode(row?.1.value())?);
        }
        Ok(out)
    }

    pub fn sessions(&self) -> Result<Vec<(Digest, Session)>, StoreError> {
        let r = self.db.begin_read()?;
        let t = r.open_table(SESSIONS)?;
        let mut out = Vec::new();
        for row in t.iter()? {
            let (k, v) = row?;
            let Ok(d) = Digest::try_from(k.value()) else {
                continue;
            };
            out.push((d, decode(v.value())?));
        }
        Ok(out)
    }

    pub fn flag(&self, name: &str) -> Result<bool, StoreError> {
        let r = self.db.begin_read()?;
        Ok(r.open_table(META)?.get(name)?.is_some())
    }

    pub fn add_user(&self, user: &User) -> Result<(), StoreError> {
        let w = self.db.begin_write()?;
        insert_user(&w, user)?;
        w.commit()?;
        Ok(())
    }

    /// Changes one user with `f`; ends the user's sessions when `f` says so
    /// (new password, disabled, lower role). Refuses to leave no enabled admin.
    pub fn update_user(
        &self,
        name: &str,
        f: impl FnOnce(&mut User) -> bool,
    ) -> Result<User, StoreError> {
        let w = self.db.begin_write()?;
        let user = {
            let mut t = w.open_table(USERS)?;
            let before = enabled_admins(&t)?;
            let mut user: User = match t.get(name)? {
                Some(v) => decode(v.value())?,
                None => return Err(StoreError::UserNotFound(name.to_string())),
            };
            let end_sessions = f(&mut user);
            t.insert(name, encode(&user)?.as_slice())?;
            if before > 0 && enabled_admins(&t)? == 0 {
                return Err(StoreError::LastAdmin);
            }
            if end_sessions {
                drop_sessions_of(&w, name)?;
            }
            user
        };
        w.commit()?;
        Ok(user)
    }

    pub fn delete_user(&self, name: &str) -> Result<(), StoreError> {
        let w = self.db.begin_write()?;
        {
            let mut t = w.open_table(USERS)?;
            let before = enabled_admins(&t)?;
            if t.remove(name)?.is_none() {
                return Err(StoreError::UserNotFound(name.to_string()));
            }
            if before > 0 && enabled_admins(&t)? == 0 {
                return Err(StoreError::LastAdmin);
            }
            drop_sessions_of(&w, name)?;
        }
        w.commit()?;
        Ok(())
    }

    pub fn add_token(&self, new: NewToken, now_ms: u64) -> Result<Token, StoreError> {
        let w = self.db.begin_write()?;
        let token = insert_token(&w, new, now_ms)?;
        w.commit()?;
        Ok(token)
    }

    pub fn revoke_token(&self, id: u64, now_ms: u64) -> Result<Token, StoreError> {
        let w = self.db.begin_write()?;
        let token = {
            let mut t = w.open_table(TOKENS)?;
            let mut token: Token = match t.get(id)? {
                Some(v) => decode(v.value())?,
                None => return Err(StoreError::TokenNotFound(id)),
            };
            token.revoked_ms.get_or_insert(now_ms);
            t.insert(id, encode(&token)?.as_slice())?;
            token
        };
        w.commit()?;
        Ok(token)
    }

    /// Writes when tokens were last used (gathered in memory between flushes).
    pub fn touch_tokens(&self, used: &[(u64, u64)]) -> Result<(), StoreError> {
        if used.is_empty() {
            return Ok(());
        }
        let w = self.db.begin_write()?;
        {
            let mut t = w.open_table(TOKENS)?;
            for &(id, ms) in used {
                let Some(mut token) = t.get(id)?.map(|v| decode::<Token>(v.value())).transpose()?
                else {
                    continue;
                };
                if token.last_used_ms.is_none_or(|l| l < ms) {
                    token.last_used_ms = Some(ms);
                    t.insert(id, encode(&token)?.as_slice())?;
                }
            }
        }
        w.commit()?;
        Ok(())
    }

    /// Stores a session and the user's login time. Past the per-user or total
    /// bound the oldest sessions end.
    pub fn add_session(&self, digest: &Digest, s: &Session) -> Result<(), StoreError> {
        let w = self.db.begin_write()?;
        {
            let mut users = w.open_table(USERS)?;
            let mut user: User = match users.get(s.user.as_str())? {
                Some(v) => decode(v.value())?,
                None => return Err(StoreError::UserNotFound(s.user.clone())),
            };
            user.last_login_ms = Some(s.created_ms);
            users.insert(s.user.as_str(), encode(&user)?.as_slice())?;
            let mut t = w.open_table(SESSIONS)?;
            let mut all: Vec<(Vec<u8>, Session)> = Vec::new();
            for row in t.iter()? {
                let (k, v) = row?;
                all.push((k.value().to_vec(), decode(v.value())?));
            }
            all.sort_by_key(|(_, s)| s.created_ms);
            let mine = all.iter().filter(|(_, o)| o.user == s.user).count();
            let mut drop_mine = (mine + 1).saturating_sub(MAX_SESSIONS_PER_USER);
            let mut drop_any = (all.len() + 1).saturating_sub(MAX_SESSIONS);
            for (k, o) in &all {
                if drop_mine > 0 && o.user == s.user {
                    t.remove(k.as_slice())?;
                    drop_mine -= 1;
                    drop_any = drop_any.saturating_sub(1);
                } else if drop_any > 0 && drop_mine == 0 {
                    t.remove(k.as_slice())?;
                    drop_any -= 1;
                }
            }
            t.insert(digest.as_slice(), encode(s)?.as_slice())?;
        }
        w.commit()?;
        Ok(())
    }

    pub fn delete_session(&self, digest: &Digest) -> Result<bool, StoreError> {
        let w = self.db.begin_write()?;
        let found = w.open_table(SESSIONS)?.remove(digest.as_slice())?.is_some();
        w.commit()?;
        Ok(found)
    }

    /// Deletes expired sessions and long-dead tokens; returns how many.
    pub fn prune(&self, now_ms: u64) -> Result<usize, StoreError> {
        let w = self.db.begin_write()?;
        let mut n = 0;
        {
            let mut s = w.open_table(SESSIONS)?;
            let old: Vec<Vec<u8>> = s
                .iter()?
                .filter_map(Result::ok)
                .filter(|(_, v)| {
                    decode::<Session>(v.value()).map_or(true, |x| x.expires_ms <= now_ms)
                })
                .map(|(k, _)| k.value().to_vec())
                .collect();
            for k in &old {
                s.remove(k.as_slice())?;
            }
            n += old.len();
            let mut t = w.open_table(TOKENS)?;
            let dead: Vec<u64> = t
                .iter()?
                .filter_map(Result::ok)
                .filter_map(|(k, v)| decode::<Token>(v.value()).ok().map(|x| (k.value(), x)))
                .filter(|(_, x)| {
                    let died = x.revoked_ms.or(x.expires_ms.filter(|e| *e <= now_ms));
                    died.is_some_and(|d| d.saturating_add(KEEP_DEAD_TOKENS_MS) <= now_ms)
                })
                .map(|(k, _)| k)
                .collect();
            for k in &dead {
                t.remove(k)?;
            }
            n += dead.len();
        }
        w.commit()?;
        Ok(n)
    }

    /// First start: the admin account (unless one of that name exists), its
    /// token and the flag that this was done, in one transaction.
    pub fn bootstrap(
        &self,
        admin: Option<&User>,
        token: NewToken,
        now_ms: u64,
    ) -> Result<Token, StoreError> {
        let w = self.db.begin_write()?;
        if let Some(u) = admin {
            insert_user(&w, u)?;
        }
        let token = insert_token(&w, token, now_ms)?;
        w.open_table(META)?.insert("bootstrapped", now_ms)?;
        w.commit()?;
        Ok(token)
    }
}

fn insert_user(w: &redb::WriteTransaction, user: &User) -> Result<(), StoreError> {
    check_user_name(&user.name)?;
    let mut t = w.open_table(USERS)?;
    if t.get(user.name.as_str())?.is_some() {
        return Err(StoreError::UserExists(user.name.clone()));
    }
    if t.len()? as usize >= MAX_USERS {
        return Err(StoreError::TooMany("用户", MAX_USERS));
    }
    t.insert(user.name.as_str(), encode(user)?.as_slice())?;
    Ok(())
}

fn insert_token(
    w: &redb::WriteTransaction,
    new: NewToken,
    now_ms: u64,
) -> Result<Token, StoreError> {
    check_token_name(&new.name)?;
    let mut live = 0usize;
    for row in w.open_table(TOKENS)?.iter()? {
        let tok: Token = decode(row?.1.value())?;
        live += usize::from(tok.usable(now_ms));
    }
    if live >= MAX_TOKENS {
        return Err(StoreError::TooMany("令牌", MAX_TOKENS));
    }
    let token = Token {
        id: next_id(w)?,
        name: new.name,
        role: new.role,
        digest: new.digest,
        hint: new.hint,
        created_ms: now_ms,
        created_by: new.created_by,
        expires_ms: new.expires_ms,
        revoked_ms: None,
        last_used_ms: None,
    };
    w.open_table(TOKENS)?
        .insert(token.id, encode(&token)?.as_slice())?;
    Ok(token)
}

fn enabled_admins(t: &redb::Table<&str, &[u8]>) -> Result<usize, StoreError> {
    let mut n = 0;
    for row in t.iter()? {
        let u: User = decode(row?.1.value())?;
        n += usize::from(u.role == Role::Admin && !u.disabled);
    }
    Ok(n)
}

fn drop_sessions_of(w: &redb::WriteTransaction, name: &str) -> Result<(), StoreError> {
    let mut t = w.open_table(SESSIONS)?;
    let mine: Vec<Vec<u8>> = t
        .iter()?
        .filter_map(Result::ok)
        .filter(|(_, v)| decode::<Session>(v.value()).is_ok_and(|s| s.user == name))
        .map(|(k, _)| k.value().to_vec())
        .collect();
    for k in &mine {
        t.remove(k.as_slice())?;
    }
    Ok(())
}

fn next_id(w: &redb::WriteTransaction) -> Result<u64, StoreError> {
    let mut t = w.open_table(META)?;
    let next = t.get("token_id")?.map(|v| v.value()).unwrap_or(0) + 1;
    t.insert("token_id", next)?;
    Ok(next)
}

/// The store holds password hashes and token digests: owner only.
fn restrict(path: &Path) -> Result<(), StoreError> {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))
        .map_err(|e| StoreError::Permissions(path.display().to_string(), e))
}
