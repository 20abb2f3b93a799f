//! What running scripts have registered: routes, functions, event listeners and
//! timers, each owned by one script_id. A start commits a script's registrations
//! all at once, and a stop or crash removes all of them at once.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};

use serde_json::{Value, json};
use vwed_ipc::{Registration, TimerSchedule};

use crate::worker::WorkerConn;

#[derive(Default)]
pub struct Stats {
    pub calls: AtomicU64,
    pub ok: AtomicU64,
    pub errors: AtomicU64,
    pub total_us: AtomicU64,
}

impl Stats {
    pub fn record(&self, ok: bool, us: u64) {
        self.calls.fetch_add(1, Ordering::Relaxed);
        if ok {
            self.ok.fetch_add(1, Ordering::Relaxed);
        } else {
            self.errors.fetch_add(1, Ordering::Relaxed);
        }
        self.total_us.fetch_add(us, Ordering::Relaxed);
    }

    pub fn average_ms(&self) -> f64 {
        let calls = self.calls.load(Ordering::Relaxed);
        if calls == 0 {
            return 0.0;
        }
        let avg = self.total_us.load(Ordering::Relaxed) as f64 / calls as f64 / 1000.0;
        (avg * 1000.0).round() / 1000.0
    }

    /// Adds these counters to a JSON object describing the registration.
    pub fn add_to(&self, v: &mut Value) {
        if let (Some(obj), Value::Object(stats)) = (v.as_object_mut(), self.to_json()) {
            obj.extend(stats);
        }
    }

    pub fn to_json(&self) -> Value {
        json!({
            "call_count": self.calls.load(Ordering::Relaxed),
            "success_count": self.ok.load(Ordering::Relaxed),
            "error_count": self.errors.load(Ordering::Relaxed),
            "average_execution_time_ms": self.average_ms(),
        })
    }
}

/// Who answers a registration: the owning script's worker and its handler id.
#[derive(Clone)]
pub struct Target {
    pub script_id: Arc<str>,
    pub conn: Arc<WorkerConn>,
    pub handler: u32,
}

#[derive(Clone, Debug, PartialEq, Eq)]
enum Seg {
    Lit(String),
    Param(String),
}

pub struct RouteEntry {
    pub method: String,
    pub path: String,
    segs: Vec<Seg>,
    pub description: String,
    pub registered_at: String,
    pub target: Target,
    pub stats: Stats,
}

pub struct FunctionEntry {
    pub name: String,
    pub description: String,
    pub parameters: Value,
    pub return_schema: Value,
    pub tags: Vec<String>,
    pub is_async: bool,
    pub registered_at: String,
    pub target: Target,
    pub stats: Stats,
}

pub struct ListenerEntry {
    pub event: String,
    pub priority: i64,
    pub registered_at: String,
    pub target: Target,
    /// Order of registration, so equal priorities keep it.
    pub seq: u64,
    pub stats: Stats,
    /// Events refused because this listener's queue was full.
    pub dropped: AtomicU64,
    /// This listener's bounded queue; its delivery task owns the receiving end.
    pub queue: crate::engine::events::ListenerQueue,
}

pub struct TimerEntry {
    pub name: String,
    pub schedule: TimerSchedule,
    pub registered_at: String,
    pub target: Target,
    pub stats: Stats,
    pub skipped: AtomicU64,
    /// Set when the registration is committed: a timer never fires for a script
    /// whose boot has not succeeded.
    pub armed: tokio::sync::watch::Sender<bool>,
    pub running: std::sync::atomic::AtomicBool,
}

#[derive(Default, Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
pub struct Counts {
    pub apis: usize,
    pub functions: usize,
    pub events: usize,
    pub timers: usize,
}

impl Counts {
    pub fn to_json(self) -> Value {
        json!({"apis": self.apis, "functions": self.functions, "events": self.events, "timers": self.timers})
    }
}

#[derive(Debug, thiserror::Error)]
pub enum RegError {
    #[error("接口 {method} {path} 已被脚本 {owner} 注册")]
    RouteTaken {
        method: String,
        path: String,
        owner: String,
    },
    #[error("函数 {name} 已被脚本 {owner} 注册")]
    FunctionTaken { name: String, owner: String },
    #[error("{0}")]
    Invalid(String),
}

impl RegError {
    /// The script that holds what was asked for, if that is why it failed.
    pub fn owner(&self) -> Option<&str> {
        match self {
            RegError::RouteTaken { owner, .. } | RegError::FunctionTaken { owner, .. } => {
                Some(owner)
            }
            RegError::Invalid(_) => None,
        }
    }
}

const MAX_ROUTE_PATH: usize = 500;

fn parse_route(path: &str) -> Result<Vec<Seg>, RegError> {
    if !path.starts_with('/') || path.len() > MAX_ROUTE_PATH {
        return Err(RegError::Invalid(format!(
            "接口路径必须以 / 开头且不超过 {MAX_ROUTE_PATH} 个字符: {path}"
        )));
    }
    if path.contains(['?', '#', '\0']) {
        return Err(RegError::Invalid(format!(
            "接口路径不能包含 ? # 或 NUL: {path}"
        )));
    }
    let trimmed = path.trim_end_matches('/');
    let mut segs = Vec::new();
    for s in trimmed.split('/').skip(1) {
        if s.is_empty() {
            return Err(RegError::Invalid(format!("接口路径含有空段: {path}")));
        }
        if let Some(name) = s.strip_prefix('{').and_then(|r| r.strip_suffix('}')) {
            let valid = !name.is_empty()
                && name.chars().all(|c| c.is_alphanumeric() || c == '_')
                && !name.starts_with(|c: char| c.is_ascii_digit());
            if !valid {
                return Err(RegError::Invalid(format!("路径参数名无效: {s}")));
            }
            segs.push(Seg::Param(name.to_string()));
        } else if s.contains(['{', '}']) {
            return Err(RegError::Invalid(format!(
                "路径段 {s} 只能是完整的 {{name}}"
            )));
        } else {
            segs.push(Seg::Lit(s.to_string()));
        }
    }
    Ok(segs)
}

/// Two patterns clash when they match the same paths: same literals, parameters in
/// the same places (their names don't matter).
fn same_shape(a: &[Seg], b: &[Seg]) -> bool {
    a.len() == b.len()
        && a.iter().zip(b).all(|(x, y)| match (x, y) {
            (Seg::Lit(p), Seg::Lit(q)) => p == q,
            (Seg::Param(_), Seg::Param(_)) => true,
            _ => false,
        })
}

fn canonical(segs: &[Seg]) -> String {
    if segs.is_empty() {
        return "/".into();
    }
    let mut s = String::new();
    for seg in segs {
        s.push('/');
        match seg {
            Seg::Lit(l) => s.push_str(l),
            Seg::Param(p) => {
                s.push('{');
                s.push_str(p);
                s.push('}');
            }
        }
    }
    s
}

#[derive(Default)]
struct Routes {
    /// "METHOD /literal/path" → entry, for the common case of no parameters.
    exact: HashMap<String, Arc<RouteEntry>>,
    patterns: Vec<Arc<RouteEntry>>,
}

fn exact_key(method: &str, path: &str) -> String {
    let mut k = String::with_capacity(method.len() + path.len() + 1);
    k.push_str(method);
    k.push(' ');
    k.push_str(path);
    k
}

/// Does `p` clash with a live registration or with one of `staged` (the same
/// script's, not yet committed)? Routes clash when they match the same paths with
/// the same method; functions when they share a name.
fn clash(
    p: &Prepared,
    routes: &Routes,
    functions: &HashMap<String, Arc<FunctionEntry>>,
    staged: &[Prepared],
) -> Result<(), RegError> {
    match p {
        Prepared::Route(r) => {
            let same = |o: &RouteEntry| o.method == r.method && same_shape(&o.segs, &r.segs);
            let live = routes
                .exact
                .values()
                .chain(routes.patterns.iter())
                .find(|o| same(o));
            let mine = staged.iter().find_map(|s| match s {
                Prepared::Route(o) if same(o) => Some(o),
                _ => None,
            });
            if let Some(o) = live.or(mine) {
                return Err(RegError::RouteTaken {
                    method: r.method.clone(),
                    path: r.path.clone(),
                    owner: o.target.script_id.to_string(),
                });
            }
        }
        Prepared::Function(f) => {
            let mine = staged.iter().find_map(|s| match s {
                Prepared::Function(o) if o.name == f.name => Some(o),
                _ => None,
            });
            if let Some(o) = functions.get(&f.name).or(mine) {
                return Err(RegError::FunctionTaken {
                    name: f.name.clone(),
                    owner: o.target.script_id.to_string(),
                });
            }
        }
        Prepared::Listener(_) | Prepared::Timer(_) => {}
    }
    Ok(())
}

pub struct Registry {
    routes: RwLock<Routes>,
    functions: RwLock<HashMap<String, Arc<FunctionEntry>>>,
    listeners: RwLock<HashMap<String, Vec<Arc<ListenerEntry>>>>,
    timers: RwLock<HashMap<TimerKey, Arc<TimerEntry>>>,
    listener_seq: AtomicU64,
    event_queue_len: usize,
}

impl Default for Registry {
    fn default() -> Self {
        Registry::new(1024)
    }
}

/// A timer is named by its script and its handler id there.
type TimerKey = (Arc<str>, u32);

/// A matched route and the values of its `{name}` segments.
pub type RouteMatch = (Arc<RouteEntry>, Vec<(String, String)>);

/// A registration checked and ready to commit.
pub enum Prepared {
    Route(Arc<RouteEntry>),
    Function(Arc<FunctionEntry>),
    Listener(Arc<ListenerEntry>),
    Timer(Arc<TimerEntry>),
}

impl Prepared {
    pub fn kind(&self) -> vwed_ipc::RegKind {
        match self {
            Prepared::Route(_) => vwed_ipc::RegKind::Route,
            Prepared::Function(_) => vwed_ipc::RegKind::Function,
            Prepared::Listener(_) => vwed_ipc::RegKind::Listener,
            Prepared::Timer(_) => vwed_ipc::RegKind::Timer,
        }
    }

    pub fn handler(&self) -> u32 {
        match self {
            Prepared::Route(e) => e.target.handler,
            Prepared::Function(e) => e.target.handler,
            Prepared::Listener(e) => e.target.handler,
            Prepared::Timer(e) => e.target.handler,
        }
    }
}

fn read<T>(l: &RwLock<T>) -> std::sync::RwLockReadGuard<'_, T> {
    l.read().unwrap_or_else(|p| p.into_inner())
}

fn write<T>(l: &RwLock<T>) -> std::sync::RwLockWriteGuard<'_, T> {
    l.write().unwrap_or_else(|p| p.into_inner())
}

impl Registry {
    pub fn new(event_queue_len: usize) -> Self {
        Registry {
            routes: RwLock::default(),
            functions: RwLock::default(),
            listeners: RwLock::default(),
            timers: RwLock::default(),
            listener_seq: AtomicU64::new(0),
            event_queue_len: event_queue_len.max(1),
        }
    }

    fn event_queue_len(&self) -> usize {
        self.event_queue_len
    }

    /// Checks a registration on its own (syntax, names) and builds its entry.
    pub fn prepare(&self, reg: Registration, target: Target) -> Result<Prepared, RegError> {
        let now = crate::clock::local_now();
        Ok(match reg {
            Registration::Route {
                method,
                path,
                description,
                ..
            } => {
                let segs = parse_route(&path)?;
                Prepared::Route(Arc::new(RouteEntry {
                    method: method.to_ascii_uppercase(),
                    path: canonical(&segs),
                    segs,
                    description,
                    registered_at: now,
                    target,
                    stats: Stats::default(),
                }))
            }
            Registration::Function {
                name,
                description,
                parameters,
                return_schema,
                tags,
                is_async,
                ..
            } => {
                if name.is_empty() || name.len() > 200 {
                    return Err(RegError::Invalid(
                        "函数名不能为空且不超过 200 个字符".into(),
                    ));
                }
                Prepared::Function(Arc::new(FunctionEntry {
                    name,
                    description,
                    parameters: serde_json::from_str(&parameters).unwrap_or(Value::Array(vec![])),
                    return_schema: serde_json::from_str(&return_schema).unwrap_or(Value::Null),
                    tags,
                    is_async,
                    registered_at: now,
                    target,
                    stats: Stats::default(),
                }))
            }
            Registration::Listener {
                event, priority, ..
            } => {
                if event.is_empty() || event.len() > 200 {
                    return Err(RegError::Invalid(
                        "事件名不能为空且不超过 200 个字符".into(),
                    ));
                }
                Prepared::Listener(Arc::new(ListenerEntry {
                    event,
                    priority,
                    registered_at: now,
                    target,
                    seq: self.listener_seq.fetch_add(1, Ordering::Relaxed),
                    stats: Stats::default(),
                    dropped: AtomicU64::new(0),
                    queue: crate::engine::events::ListenerQueue::new(self.event_queue_len()),
                }))
            }
            Registration::Timer { name, schedule, .. } => {
                if let TimerSchedule::Cron { expr } = &schedule {
                    crate::cron::Schedule::parse(expr)
                        .map_err(|e| RegError::Invalid(e.to_string()))?;
                }
                Prepared::Timer(Arc::new(TimerEntry {
                    name,
                    schedule,
                    registered_at: now,
                    target,
                    stats: Stats::default(),
                    skipped: AtomicU64::new(0),
                    armed: tokio::sync::watch::channel(false).0,
                    running: std::sync::atomic::AtomicBool::new(false),
                }))
            }
        })
    }

    /// Would this clash with what is live, or with `staged` (the same script's
    /// registrations not yet committed)?
    pub fn conflict(&self, p: &Prepared, staged: &[Prepared]) -> Result<(), RegError> {
        clash(p, &read(&self.routes), &read(&self.functions), staged)
    }

    /// Commits all of a script's registrations, or none if one clashes with what
    /// another script committed meanwhile. (Clashes within the script were refused
    /// while it staged them.)
    pub fn commit(&self, items: Vec<Prepared>) -> Result<(), RegError> {
        let mut routes = write(&self.routes);
        let mut functions = write(&self.functions);
        for p in &items {
            clash(p, &routes, &functions, &[])?;
        }
        let mut listeners = write(&self.listeners);
        let mut timers = write(&self.timers);
        for p in items {
            match p {
                Prepared::Route(r) => {
                    if r.segs.iter().all(|s| matches!(s, Seg::Lit(_))) {
                        routes.exact.insert(exact_key(&r.method, &r.path), r);
                    } else {
                        routes.patterns.push(r);
                    }
                }
                Prepared::Function(f) => {
                    functions.insert(f.name.clone(), f);
                }
                Prepared::Listener(l) => {
                    let list = listeners.entry(l.event.clone()).or_default();
                    list.push(l);
                    list.sort_by_key(|l| (l.priority, l.seq));
                }
                Prepared::Timer(t) => {
                    t.armed.send_replace(true);
                    timers.insert((t.target.script_id.clone(), t.target.handler), t);
                }
            }
        }
        Ok(())
    }

    /// Removes one registration by handler (a script withdrawing it).
    pub fn withdraw(&self, script_id: &str, kind: vwed_ipc::RegKind, handler: u32) -> bool {
        let mine = |t: &Target| &*t.script_id == script_id && t.handler == handler;
        match kind {
            vwed_ipc::RegKind::Route => {
                let mut r = write(&self.routes);
                let before = r.exact.len() + r.patterns.len();
                r.exact.retain(|_, e| !mine(&e.target));
                r.patterns.retain(|e| !mine(&e.target));
                before != r.exact.len() + r.patterns.len()
            }
            vwed_ipc::RegKind::Function => {
                let mut f = write(&self.functions);
                let before = f.len();
                f.retain(|_, e| !mine(&e.target));
                before != f.len()
            }
            vwed_ipc::RegKind::Listener => {
                let mut l = write(&self.listeners);
                let mut removed = false;
                for list in l.values_mut() {
                    let before = list.len();
                    list.retain(|e| !mine(&e.target));
                    removed |= before != list.len();
                }
                l.retain(|_, v| !v.is_empty());
                removed
            }
            vwed_ipc::RegKind::Timer => write(&self.timers)
                .remove(&(Arc::from(script_id), handler))
                .is_some(),
        }
    }

    pub fn counts(&self, script_id: &str) -> Counts {
        let mine = |t: &Target| &*t.script_id == script_id;
        let routes = read(&self.routes);
        Counts {
            apis: routes
                .exact
                .values()
                .chain(routes.patterns.iter())
                .filter(|r| mine(&r.target))
                .count(),
            functions: read(&self.functions)
                .values()
                .filter(|f| mine(&f.target))
                .count(),
            events: read(&self.listeners)
                .values()
                .flatten()
                .filter(|l| mine(&l.target))
                .count(),
            timers: read(&self.timers)
                .values()
                .filter(|t| mine(&t.target))
                .count(),
        }
    }

    /// Removes everything a script registered; returns what was removed.
    pub fn remove_script(&self, script_id: &str) -> Counts {
        let counts = self.counts(script_id);
        let mine = |t: &Target| &*t.script_id == script_id;
        {
            let mut r = write(&self.routes);
            r.exact.retain(|_, e| !mine(&e.target));
            r.patterns.retain(|e| !mine(&e.target));
        }
        write(&self.functions).retain(|_, e| !mine(&e.target));
        {
            let mut l = write(&self.listeners);
            for list in l.values_mut() {
                list.retain(|e| !mine(&e.target));
            }
            l.retain(|_, v| !v.is_empty());
        }
        write(&self.timers).retain(|_, e| !mine(&e.target));
        counts
    }

    /// Finds the route for a request path given as its percent-decoded segments
    /// (decoded one by one, so `a%2Fb` is one segment holding a slash). Literal
    /// routes win over patterns; among patterns, the one with more literal segments.
    pub fn match_route(&self, method: &str, segs: &[String]) -> Option<RouteMatch> {
        let routes = read(&self.routes);
        // A segment holding a slash can only fill a `{param}`.
        if segs.iter().all(|s| !s.contains('/')) {
            let path = format!("/{}", segs.join("/"));
            if let Some(r) = routes.exact.get(&exact_key(method, &path)) {
                return Some((r.clone(), Vec::new()));
            }
        }
        let mut best: Option<(usize, &Arc<RouteEntry>)> = None;
        for r in routes.patterns.iter().filter(|r| r.method == method) {
            if r.segs.len() != segs.len() {
                continue;
            }
            let ok = r.segs.iter().zip(segs).all(|(s, p)| match s {
                Seg::Lit(l) => l == p,
                Seg::Param(_) => true,
            });
            if ok {
                let lits = r.segs.iter().filter(|s| matches!(s, Seg::Lit(_))).count();
                if best.is_none_or(|(b, _)| lits > b) {
                    best = Some((lits, r));
                }
            }
        }
        let (_, r) = best?;
        let params = r
            .segs
            .iter()
            .zip(segs)
            .filter_map(|(s, p)| match s {
                Seg::Param(name) => Some((name.clone(), p.clone())),
                Seg::Lit(_) => None,
            })
            .collect();
        Some((r.clone(), params))
    }

    /// Is any route registered for these segments under another method?
    pub fn path_known(&self, segs: &[String]) -> bool {
        ["GET", "POST", "PUT", "DELETE", "PATCH"]
            .iter()
            .any(|m| self.match_route(m, segs).is_some())
    }

    pub fn function(&self, name: &str) -> Option<Arc<FunctionEntry>> {
        read(&self.functions).get(name).cloned()
    }

    pub fn functions(&self) -> Vec<Arc<FunctionEntry>> {
        let mut v: Vec<_> = read(&self.functions).values().cloned().collect();
        v.sort_by(|a, b| a.name.cmp(&b.name));
        v
    }

    pub fn routes(&self) -> Vec<Arc<RouteEntry>> {
        let r = read(&self.routes);
        let mut v: Vec<_> = r.exact.values().chain(r.patterns.iter()).cloned().collect();
        v.sort_by(|a, b| (&a.path, &a.method).cmp(&(&b.path, &b.method)));
        v
    }

    /// Listeners of an event across all scripts, lowest priority number first.
    pub fn listeners(&self, event: &str) -> Vec<Arc<ListenerEntry>> {
        read(&self.listeners)
            .get(event)
            .cloned()
            .unwrap_or_default()
    }

    pub fn all_listeners(&self) -> Vec<(String, Vec<Arc<ListenerEntry>>)> {
        let mut v: Vec<_> = read(&self.listeners)
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        v.sort_by(|a, b| a.0.cmp(&b.0));
        v
    }

    pub fn timers(&self) -> Vec<Arc<TimerEntry>> {
        read(&self.timers).values().cloned().collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn route_shapes() {
        let a = parse_route("/items/{id}").expect("ok");
        let b = parse_route("/items/{name}/").expect("ok");
        assert!(same_shape(&a, &b));
        assert!(!same_shape(&a, &parse_route("/items/x").expect("ok")));
        assert!(parse_route("items").is_err());
        assert!(parse_route("/a//b").is_err());
        assert!(parse_route("/a/{}").is_err());
        assert!(parse_route("/a/x{y}").is_err());
        assert_eq!(canonical(&parse_route("/").expect("ok")), "/");
        assert_eq!(canonical(&parse_route("/a/b/").expect("ok")), "/a/b");
    }
}
