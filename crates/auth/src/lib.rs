//! Who may do what. Every API route names the lowest [`Role`] that may call it;
//! people log in with a password and get a session cookie, machines present an
//! API token, and every state-changing call lands in the audit log.
//!
//! [`Auth`] keeps accounts, tokens and sessions in `auth.redb` and a snapshot of
//! them in memory, so checking a credential costs one SHA-256 and a map lookup;
//! every change goes to redb first and then replaces the snapshot.

pub mod admin;
pub mod audit;
mod bootstrap;
pub mod checks;
pub mod cli;
mod password;
mod role;
mod secret;
pub mod socket;
mod store;
mod throttle;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};
use vwed_base::sync::{Locked, RwLocked};

use http::{HeaderMap, Method, StatusCode};
use tokio::sync::{Semaphore, watch};

pub use audit::AuditLog;
pub use bootstrap::{ADMIN_TOKEN_FILE, INITIAL_PASSWORD_FILE};
pub use checks::Denied;
pub use role::Role;
pub use store::StoreError;

use checks::{HostPolicy, OriginPolicy, Presented};
use secret::Digest;
use store::{AuthStore, Session};
use throttle::Throttle;

use serde::{Deserialize, Serialize};
use vwed_base::clock::unix_ms;
use vwed_base::lists::host_list;

pub const STORE_FILE: &str = "auth.redb";
/// Password hashes computed at once; each takes `password::M_COST_KIB` of memory.
const HASHING_AT_ONCE: usize = 2;
/// Logins waiting for a hashing slot; more are refused with 503 at once.
const HASHING_QUEUE: usize = 32;
/// Longest a long-lived connection goes without checking its credential.
const RECHECK_MS: u64 = 5_000;

#[derive(Debug, thiserror::Error)]
pub enum AuthError {
    #[error("{0}")]
    Store(#[from] StoreError),
    #[error("{0}")]
    Audit(#[from] audit::AuditError),
    #[error("{0}")]
    Random(#[from] secret::RandomError),
    #[error("{0}")]
    Password(#[from] password::PasswordError),
    #[error("cannot write {0}: {1}")]
    File(String, std::io::Error),
    #[error("{0}")]
    Admin(#[from] admin::AdminError),
    #[error("admin socket {0}: {1}")]
    Socket(String, std::io::Error),
}

/// Settings that shape the checks, from `Config`.
#[derive(Debug, Clone)]
pub struct Settings {
    /// `serve --no-auth`: every caller is admin (loopback only; see `main.rs`).
    pub no_auth: bool,
    /// Mark the session cookie `Secure` (the API is served over TLS).
    pub secure_cookie: bool,
    pub session_ttl_ms: u64,
    pub hosts: HostPolicy,
    pub origins: OriginPolicy,
    pub audit: audit::Limits,
}

impl Settings {
    pub fn resolve(cfg: &AuthSettings, tls: bool) -> Settings {
        Settings {
            no_auth: cfg.no_auth,
            secure_cookie: tls,
            session_ttl_ms: cfg.session_hours.clamp(1, 24 * 30) * 3_600_000,
            hosts: HostPolicy::new(&cfg.allowed_hosts),
            origins: OriginPolicy::new(&cfg.allowed_origins),
            audit: audit::Limits {
                max_bytes: cfg.audit_max_bytes,
                max_age_ms: cfg.audit_max_age_days.saturating_mul(86_400_000),
            },
        }
    }
}

/// How a caller proved who it is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Via {
    Session {
        digest: Digest,
        csrf: String,
        expires_ms: u64,
    },
    Token {
        id: u64,
        digest: Digest,
        expires_ms: Option<u64>,
    },
    /// `--no-auth`: nobody proved anything; allowed on loopback only.
    NoAuth,
    /// The owner of the data dir, through `admin.sock` or the store itself.
    Cli,
}

impl Via {
    pub fn label(&self) -> String {
        match self {
            Via::Session { .. } => "session".into(),
            Via::Token { id, .. } => format!("token#{id}"),
            Via::NoAuth => "no-auth".into(),
            Via::Cli => "cli".into(),
        }
    }
}

/// The caller of a request, once its credential checked out.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Principal {
    /// User name, or the token's name.
    pub name: String,
    pub role: Role,
    pub via: Via,
}

impl Principal {
    pub fn cli() -> Principal {
        Principal {
            name: "cli".into(),
            role: Role::Admin,
            via: Via::Cli,
        }
    }

    fn no_auth() -> Principal {
        Principal {
            name: "no-auth".into(),
            role: Role::Admin,
            via: Via::NoAuth,
        }
    }

    /// When the credential stops working by itself.
    pub fn expires_ms(&self) -> Option<u64> {
        match &self.via {
            Via::Session { expires_ms, .. } => Some(*expires_ms),
            Via::Token { expires_ms, .. } => *expires_ms,
            _ => None,
        }
    }
}

struct UserView {
    role: Role,
    disabled: bool,
    hash: String,
}

struct TokenView {
    id: u64,
    name: String,
    role: Role,
    expires_ms: Option<u64>,
}

/// What the checks read: rebuilt from redb after every change.
#[derive(Default)]
struct Snapshot {
    users: HashMap<String, UserView>,
    /// Tokens that are not revoked (expiry is checked on use).
    tokens: HashMap<Digest, TokenView>,
    sessions: HashMap<Digest, Session>,
}

impl Snapshot {
    fn load(store: &AuthStore) -> Result<Snapshot, StoreError> {
        let users = store
            .users()?
            .into_iter()
            .map(|u| {
                let v = UserView {
                    role: u.role,
                    disabled: u.disabled,
                    hash: u.hash,
                };
                (u.name, v)
            })
            .collect();
        let tokens = store
            .tokens()?
            .into_iter()
            .filter(|t| t.revoked_ms.is_none())
            .map(|t| {
                let v = TokenView {
                    id: t.id,
                    name: t.name,
                    role: t.role,
                    expires_ms: t.expires_ms,
                };
                (t.digest, v)
            })
            .collect();
        let sessions = store.sessions()?.into_iter().collect();
        Ok(Snapshot {
            users,
            tokens,
            sessions,
        })
    }
}

/// A successful login.
#[derive(Debug, Clone)]
pub struct LoginOk {
    pub user: String,
    pub role: Role,
    /// The cookie value; never stored.
    pub session_id: String,
    pub csrf: String,
    pub expires_ms: u64,
}

#[derive(Debug, thiserror::Error)]
pub enum LoginError {
    #[error("用户名或密码错误")]
    Invalid,
    #[error("登录失败次数过多, 请 {0} 秒后再试")]
    Throttled(u64),
    #[error("登录请求过多, 请稍后再试")]
    Busy,
    #[error("{0}")]
    BadPassword(String),
    #[error("{0}")]
    Internal(String),
}

impl LoginError {
    pub fn status(&self) -> StatusCode {
        match self {
            LoginError::Invalid => StatusCode::UNAUTHORIZED,
            LoginError::Throttled(_) => StatusCode::TOO_MANY_REQUESTS,
            LoginError::Busy => StatusCode::SERVICE_UNAVAILABLE,
            LoginError::BadPassword(_) => StatusCode::BAD_REQUEST,
            LoginError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }
}

pub struct Auth {
    store: AuthStore,
    snap: RwLock<Arc<Snapshot>>,
    /// Serialises change + reload, so that snapshots appear in commit order.
    write: Mutex<()>,
    /// token id → last use (ms), written to redb by `flush_usage`.
    used: Mutex<HashMap<u64, u64>>,
    throttle: Throttle,
    hashing: Semaphore,
    waiting: AtomicUsize,
    pub audit: Arc<AuditLog>,
    pub settings: Settings,
    /// Ticks on every change that can end a credential (revoke, logout,
    /// disable, delete, new password), so long-lived connections re-check.
    changes: watch::Sender<u64>,
    data_dir: PathBuf,
}

impl Auth {
    /// Opens (or creates) `<data_dir>/auth.redb`.
    pub fn open(data_dir: &Path, settings: Settings) -> Result<Arc<Auth>, AuthError> {
        let store = AuthStore::open(&data_dir.join(STORE_FILE))?;
        let audit = AuditLog::open(store.db().clone(), settings.audit.clone())?;
        let snap = Snapshot::load(&store)?;
        Ok(Arc::new(Auth {
            store,
            snap: RwLock::new(Arc::new(snap)),
            write: Mutex::new(()),
            used: Mutex::new(HashMap::new()),
            throttle: Throttle::default(),
            hashing: Semaphore::new(HASHING_AT_ONCE),
            waiting: AtomicUsize::new(0),
            audit,
            settings,
            changes: watch::Sender::new(0),
            data_dir: data_dir.to_path_buf(),
        }))
    }

    fn snapshot(&self) -> Arc<Snapshot> {
        self.snap.read_locked().clone()
    }

    /// Runs one change against the store, then publishes the new snapshot.
    /// `ends_credentials`: the change may have ended a session or token.
    fn change<T>(
        &self,
        ends_credentials: bool,
        f: impl FnOnce(&AuthStore) -> Result<T, StoreError>,
    ) -> Result<T, StoreError> {
        let _g = self.write.locked();
        let out = f(&self.store)?;
        let snap = Snapshot::load(&self.store)?;
        *self.snap.write_locked() = Arc::new(snap);
        if ends_credentials {
            self.changes.send_modify(|n| *n += 1);
        }
        Ok(out)
    }

    /// The principal behind the request's credential: 401 without one or with
    /// a bad one. The role is checked by the caller (`filters::guard`).
    pub fn authenticate(&self, headers: &HeaderMap) -> Result<Principal, Denied> {
        if self.settings.no_auth {
            return Ok(Principal::no_auth());
        }
        let now = unix_ms();
        let snap = self.snapshot();
        match checks::presented(headers)? {
            Presented::Bearer(t) => {
                let bad = || Denied::unauthorized("API 令牌无效或已吊销");
                let digest = secret::token_digest(t).ok_or_else(bad)?;
                let tok = snap.tokens.get(&digest).ok_or_else(bad)?;
                if tok.expires_ms.is_some_and(|e| e <= now) {
                    return Err(Denied::unauthorized("API 令牌已过期"));
                }
                self.note_use(tok.id, now);
                Ok(Principal {
                    name: tok.name.clone(),
                    role: tok.role,
                    via: Via::Token {
                        id: tok.id,
                        digest,
                        expires_ms: tok.expires_ms,
                    },
                })
            }
            Presented::Cookie(c) => {
                let gone = || Denied::unauthorized("会话无效或已过期, 请重新登录");
                let digest = secret::session_digest(c).ok_or_else(gone)?;
                let s = snap.sessions.get(&digest).ok_or_else(gone)?;
                let user = snap.users.get(&s.user).filter(|u| !u.disabled);
                match user {
                    Some(u) if s.expires_ms > now => Ok(Principal {
                        name: s.user.clone(),
                        role: u.role,
                        via: Via::Session {
                            digest,
                            csrf: s.csrf.clone(),
                            expires_ms: s.expires_ms,
                        },
                    }),
                    _ => Err(gone()),
                }
            }
            Presented::Nothing => Err(Denied::unauthorized(
                "需要登录或 API 令牌 (Authorization: Bearer <令牌>)",
            )),
        }
    }

    /// The request checks a route makes: Host, Origin, credential, role, CSRF
    /// (for cookie-authenticated changes) and, for JSON routes, the content type.
    pub fn check(
        &self,
        method: &Method,
        headers: &HeaderMap,
        need: Role,
        json_body: bool,
    ) -> Result<Principal, Denied> {
        self.check_public(method, headers, false)?;
        let p = self.authenticate(headers)?;
        if !p.role.includes(need) {
            return Err(Denied::forbidden(format!(
                "权限不足: 需要 {} 角色, 当前为 {}",
                need.as_str(),
                p.role.as_str()
            )));
        }
        if let Via::Session { csrf, .. } = &p.via
            && !checks::is_safe(method)
            && !checks::csrf_header(headers).is_some_and(|h| secret::same(h, csrf))
        {
            return Err(Denied::forbidden(
                "缺少或错误的 CSRF 令牌 (请求头 X-CSRF-Token, 见 /api/auth/me)",
            ));
        }
        if json_body {
            checks::check_json(headers)?;
        }
        Ok(p)
    }

    /// Checks for routes anyone may call (login, public script routes): Host,
    /// Origin and, for JSON routes, the content type.
    pub fn check_public(
        &self,
        method: &Method,
        headers: &HeaderMap,
        json_body: bool,
    ) -> Result<(), Denied> {
        checks::check_origin(
            &self.settings.hosts,
            &self.settings.origins,
            method,
            headers,
        )?;
        if json_body {
            checks::check_json(headers)?;
        }
        Ok(())
    }

    /// Is this principal's credential still good (not revoked, expired, logged
    /// out, disabled, deleted)?
    pub fn still_valid(&self, p: &Principal) -> bool {
        let now = unix_ms();
        let snap = self.snapshot();
        match &p.via {
            Via::Session { digest, .. } => snap.sessions.get(digest).is_some_and(|s| {
                s.expires_ms > now && snap.users.get(&s.user).is_some_and(|u| !u.disabled)
            }),
            Via::Token { digest, .. } => snap
                .tokens
                .get(digest)
                .is_some_and(|t| t.expires_ms.is_none_or(|e| e > now)),
            Via::NoAuth | Via::Cli => true,
        }
    }

    /// Resolves once `p`'s credential stops working: what a WebSocket selects
    /// on to close the connection of a revoked token or ended session (at
    /// once: every such change ticks `changes`) or of an expired one (at its
    /// expiry). Expiry is wall time while the wait is monotonic, so it checks
    /// again at least every `RECHECK_MS`: a wall-clock jump forward that ends
    /// the credential closes the socket within that.
    pub async fn until_invalid(&self, p: &Principal) {
        let mut rx = self.changes.subscribe();
        loop {
            if !self.still_valid(p) {
                return;
            }
            let left = p.expires_ms().map_or(RECHECK_MS, |e| {
                e.saturating_sub(unix_ms()).clamp(1, RECHECK_MS)
            });
            tokio::select! {
                r = rx.changed() => if r.is_err() { std::future::pending::<()>().await },
                _ = tokio::time::sleep(Duration::from_millis(left)) => {}
            }
        }
    }

    fn note_use(&self, token_id: u64, now: u64) {
        let mut m = self.used.locked();
        m.insert(token_id, now);
    }

    /// Writes token last-use times gathered since the last flush.
    pub fn flush_usage(&self) -> Result<(), StoreError> {
        let used: Vec<(u64, u64)> = {
            let mut m = self.used.locked();
            m.drain().collect()
        };
        self.store.touch_tokens(&used)
    }

    /// Last use of a token not yet flushed.
    fn pending_use(&self, token_id: u64) -> Option<u64> {
        let m = self.used.locked();
        m.get(&token_id).copied()
    }

    /// Once a minute: token use times to redb, expired sessions and long-dead
    /// tokens out.
    pub fn start_maintenance(self: &Arc<Self>) {
        let me = Arc::downgrade(self);
        tokio::spawn(async move {
            let mut every = tokio::time::interval(Duration::from_secs(60));
            every.tick().await;
            loop {
                every.tick().await;
                let Some(auth) = me.upgrade() else { return };
                let _ = tokio::task::spawn_blocking(move || {
                    if let Err(e) = auth.flush_usage() {
                        tracing::warn!("cannot record token use: {e}");
                    }
                    if let Err(e) = auth.change(true, |s| s.prune(unix_ms())) {
                        tracing::warn!("cannot prune sessions and tokens: {e}");
                    }
                })
                .await;
            }
        });
    }

    /// Checks a password and opens a session. Unknown and disabled users cost
    /// the same hashing time and get the same answer as a wrong password.
    pub async fn login(
        self: &Arc<Self>,
        name: &str,
        password: &str,
        addr: Option<SocketAddr>,
    ) -> Result<LoginOk, LoginError> {
        let ip = addr.map(|a| a.ip().to_string()).unwrap_or_default();
        let role = self.verify(name, password, &ip).await?;
        let (me, name) = (self.clone(), name.to_string());
        tokio::task::spawn_blocking(move || me.open_session(&name, role, &ip))
            .await
            .map_err(|e| LoginError::Internal(e.to_string()))?
    }

    /// A user changes their own password, proving the current one (throttled
    /// like a login). All their sessions end; the answer is a new one.
    pub async fn change_own_password(
        self: &Arc<Self>,
        name: &str,
        current: &str,
        new: &str,
        addr: Option<SocketAddr>,
    ) -> Result<LoginOk, LoginError> {
        password::check_policy(new).map_err(|e| LoginError::BadPassword(e.to_string()))?;
        let ip = addr.map(|a| a.ip().to_string()).unwrap_or_default();
        let role = self.verify(name, current, &ip).await?;
        let (me, name, new) = (self.clone(), name.to_string(), new.to_string());
        tokio::task::spawn_blocking(move || {
            let by = Principal {
                name: name.clone(),
                role,
                via: Via::Cli,
            };
            let cmd = admin::Command::UserPasswd {
                name: name.clone(),
                password: Some(new),
            };
            me.execute(cmd, &by)
                .map_err(|e| LoginError::Internal(e.to_string()))?;
            me.open_session(&name, role, &ip)
        })
        .await
        .map_err(|e| LoginError::Internal(e.to_string()))?
    }

    /// The throttled, bounded password check shared by login and password change.
    async fn verify(
        self: &Arc<Self>,
        name: &str,
        password: &str,
        ip: &str,
    ) -> Result<Role, LoginError> {
        if let Some(wait) = self.throttle.wait(name, ip, Instant::now()) {
            return Err(LoginError::Throttled(wait.as_secs().max(1)));
        }
        if self.waiting.fetch_add(1, Ordering::AcqRel) >= HASHING_QUEUE {
            self.waiting.fetch_sub(1, Ordering::AcqRel);
            return Err(LoginError::Busy);
        }
        let permit = self.hashing.acquire().await;
        self.waiting.fetch_sub(1, Ordering::AcqRel);
        let _permit = permit.map_err(|_| LoginError::Busy)?;
        let me = self.clone();
        let (user, pw) = (name.to_string(), password.to_string());
        let role = tokio::task::spawn_blocking(move || {
            let snap = me.snapshot();
            match snap.users.get(&user) {
                Some(u) if !u.disabled => password::verify(&pw, &u.hash).then_some(u.role),
                _ => {
                    password::verify_nothing(&pw);
                    None
                }
            }
        })
        .await
        .map_err(|e| LoginError::Internal(e.to_string()))?;
        match role {
            Some(role) => {
                self.throttle.succeeded(name);
                Ok(role)
            }
            None => {
                self.throttle.failed(name, ip, Instant::now());
                tracing::warn!(user = %name, addr = %ip, "login failed");
                Err(LoginError::Invalid)
            }
        }
    }

    fn open_session(&self, name: &str, role: Role, ip: &str) -> Result<LoginOk, LoginError> {
        let internal = |e: &dyn std::fmt::Display| LoginError::Internal(e.to_string());
        let session_id = secret::random_hex().map_err(|e| internal(&e))?;
        let csrf = secret::random_hex().map_err(|e| internal(&e))?;
        let now = unix_ms();
        let s = Session {
            user: name.to_string(),
            csrf: csrf.clone(),
            created_ms: now,
            expires_ms: now + self.settings.session_ttl_ms,
            addr: ip.to_string(),
        };
        let digest = secret::sha256(session_id.as_bytes());
        self.change(false, |st| st.add_session(&digest, &s))
            .map_err(|e| internal(&e))?;
        tracing::info!(user = %name, addr = %ip, "login");
        Ok(LoginOk {
            user: name.to_string(),
            role,
            session_id,
            csrf,
            expires_ms: s.expires_ms,
        })
    }

    /// Ends the caller's session (a token or no-auth caller has none).
    pub fn logout(&self, p: &Principal) -> Result<bool, StoreError> {
        match &p.via {
            Via::Session { digest, .. } => self.change(true, |s| s.delete_session(digest)),
            _ => Ok(false),
        }
    }

    pub fn data_dir(&self) -> &Path {
        &self.data_dir
    }

    /// Opens the store, makes the first admin on a new data dir, starts the
    /// maintenance task and the admin socket: everything `serve` needs.
    pub fn start(
        cfg: &AuthSettings,
        data_dir: &std::path::Path,
        tls: bool,
    ) -> Result<Arc<Auth>, AuthError> {
        let auth = Auth::open(data_dir, Settings::resolve(cfg, tls))?;
        auth.first_start()?;
        auth.start_maintenance();
        // Without the socket the runtime still serves; only the CLI cannot reach it.
        if let Err(e) = socket::serve(auth.clone()) {
            tracing::warn!("{e}; `vwed-edge user|token` cannot reach this runtime");
        }
        if auth.settings.no_auth {
            tracing::warn!("--no-auth: the API asks for no credentials (loopback only)");
        }
        Ok(auth)
    }

    /// At shutdown: pending token use to redb, audit writer stopped, socket gone.
    /// Blocking.
    pub fn stop(&self) {
        socket::remove(&self.data_dir);
        self.close();
    }

    /// Writes pending token use and stops the audit writer.
    pub fn close(&self) {
        if let Err(e) = self.flush_usage() {
            tracing::warn!("cannot record token use: {e}");
        }
        self.audit.close();
    }
}

#[cfg(any(test, feature = "testing"))]
pub mod testing;
#[cfg(test)]
mod tests;

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default)]
pub struct AuthSettings {
    /// `serve --no-auth`: no credentials asked, every caller is admin. For
    /// development only: refused unless `listen` is a loopback address.
    pub no_auth: bool,
    /// Lifetime of a browser session after login, in hours.
    pub session_hours: u64,
    /// Host names (besides IP addresses, `localhost` and this machine's name) the
    /// API answers to, e.g. `["edge-07.plant.example"]`. Others get 403: that is
    /// what stops DNS rebinding. As an environment variable, a comma-separated list.
    #[serde(deserialize_with = "host_list")]
    pub allowed_hosts: Vec<String>,
    /// Web origins (`https://ui.example`) besides the API's own that may send
    /// state-changing requests and open WebSockets.
    #[serde(deserialize_with = "host_list")]
    pub allowed_origins: Vec<String>,
    /// The audit log (in auth.redb) is pruned, oldest first, above this size.
    pub audit_max_bytes: u64,
    /// Audit entries older than this are pruned.
    pub audit_max_age_days: u64,
}

impl Default for AuthSettings {
    fn default() -> Self {
        AuthSettings {
            no_auth: false,
            session_hours: 12,
            allowed_hosts: Vec::new(),
            allowed_origins: Vec::new(),
            audit_max_bytes: 16 * 1024 * 1024,
            audit_max_age_days: 180,
        }
    }
}
