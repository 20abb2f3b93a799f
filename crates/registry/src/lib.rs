//! What running scripts have registered: routes, functions, event listeners and
//! timers, each owned by one script_id. A start commits a script's registrations
//! all at once, and a stop or crash removes all of them at once.
//!
//! The registry only keeps and finds registrations. How a target is reached (a
//! worker connection) and how a listener is fed (an event queue) are the engine's
//! business: it plugs them in through [`Wiring`], so the registry depends on
//! neither and its rules can be tested on their own.

mod route;
#[cfg(test)]
mod tests;

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, RwLock};
use vwed_base::sync::RwLocked;

use serde_json::{Value, json};
use vwed_ipc::{RegKind, Registration, TimerSchedule};

pub use route::RouteMatch;
use route::{Routes, Seg, canonical, parse_route, same_shape};

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

/// What the registry stores for its owner without looking into it.
pub trait Wiring: Sized + Send + Sync + 'static {
    /// How the script that owns a registration is reached.
    type Conn: Send + Sync + 'static;
    /// A listener's bounded queue of events.
    type Queue: Send + Sync + 'static;
    fn listener_queue(len: usize) -> Self::Queue;
}

/// Who answers a registration: the owning script's worker and its handler id.
pub struct Target<W: Wiring> {
    pub script_id: Arc<str>,
    pub conn: Arc<W::Conn>,
    pub handler: u32,
}

impl<W: Wiring> Clone for Target<W> {
    fn clone(&self) -> Self {
        Target {
            script_id: self.script_id.clone(),
            conn: self.conn.clone(),
            handler: self.handler,
        }
    }
}

pub struct RouteEntry<W: Wiring> {
    pub method: String,
    pub path: String,
    segs: Vec<Seg>,
    pub description: String,
    /// Callable without a credential.
    pub public: bool,
    pub registered_at: String,
    pub target: Target<W>,
    pub stats: Stats,
}

pub struct FunctionEntry<W: Wiring> {
    pub name: String,
    pub description: String,
    pub parameters: Value,
    pub return_schema: Value,
    pub tags: Vec<String>,
    pub is_async: bool,
    pub registered_at: String,
    pub target: Target<W>,
    pub stats: Stats,
}

pub struct ListenerEntry<W: Wiring> {
    pub event: String,
    pub priority: i64,
    pub registered_at: String,
    pub target: Target<W>,
    /// Order of registration, so equal priorities keep it.
    pub seq: u64,
    pub stats: Stats,
    /// Events refused because this listener's queue was full.
    pub dropped: AtomicU64,
    /// This listener's bounded queue; its delivery task owns the receiving end.
    pub queue: W::Queue,
}

pub struct TimerEntry<W: Wiring> {
    pub name: String,
    pub schedule: TimerSchedule,
    pub registered_at: String,
    pub target: Target<W>,
    pub stats: Stats,
    pub skipped: AtomicU64,
    /// Set when the registration is committed: a timer never fires for a script
    /// whose boot has not succeeded.
    pub armed: tokio::sync::watch::Sender<bool>,
    pub running: AtomicBool,
    /// When the timer fires next (unix ms; 0: not scheduled), for the status.
    pub next_run_ms: AtomicU64,
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

type Functions<W> = HashMap<String, Arc<FunctionEntry<W>>>;

/// Does `p` clash with a live registration or with one of `staged` (the same
/// script's, not yet committed)? Routes clash when they match the same paths with
/// the same method; functions when they share a name.
fn clash<W: Wiring>(
    p: &Prepared<W>,
    routes: &Routes<W>,
    functions: &Functions<W>,
    staged: &[Prepared<W>],
) -> Result<(), RegError> {
    match p {
        Prepared::Route(r) => {
            let same = |o: &RouteEntry<W>| o.method == r.method && same_shape(&o.segs, &r.segs);
            let live = routes.iter().find(|o| same(o));
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

pub struct Registry<W: Wiring> {
    routes: RwLock<Routes<W>>,
    functions: RwLock<Functions<W>>,
    listeners: RwLock<HashMap<String, Vec<Arc<ListenerEntry<W>>>>>,
    timers: RwLock<HashMap<TimerKey, Arc<TimerEntry<W>>>>,
    listener_seq: AtomicU64,
    event_queue_len: usize,
}

/// A timer is named by its script and its handler id there.
type TimerKey = (Arc<str>, u32);

/// A registration checked and ready to commit.
pub enum Prepared<W: Wiring> {
    Route(Arc<RouteEntry<W>>),
    Function(Arc<FunctionEntry<W>>),
    Listener(Arc<ListenerEntry<W>>),
    Timer(Arc<TimerEntry<W>>),
}

impl<W: Wiring> Prepared<W> {
    pub fn kind(&self) -> RegKind {
        match self {
            Prepared::Route(_) => RegKind::Route,
            Prepared::Function(_) => RegKind::Function,
            Prepared::Listener(_) => RegKind::Listener,
            Prepared::Timer(_) => RegKind::Timer,
        }
    }

    pub fn handler(&self) -> u32 {
        self.target().handler
    }

    fn target(&self) -> &Target<W> {
        match self {
            Prepared::Route(e) => &e.target,
            Prepared::Function(e) => &e.target,
            Prepared::Listener(e) => &e.target,
            Prepared::Timer(e) => &e.target,
        }
    }
}

fn read<T>(l: &RwLock<T>) -> std::sync::RwLockReadGuard<'_, T> {
    l.read_locked()
}

fn write<T>(l: &RwLock<T>) -> std::sync::RwLockWriteGuard<'_, T> {
    l.write_locked()
}

/// Removes the entries `gone` picks; returns how many went.
fn drop_from<K, V>(map: &mut HashMap<K, V>, gone: impl Fn(&V) -> bool) -> usize {
    let before = map.len();
    map.retain(|_, v| !gone(v));
    before - map.len()
}

/// Longest function or event name.
const MAX_NAME: usize = 200;

impl<W: Wiring> Registry<W> {
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

    /// Checks a registration on its own (syntax, names) and builds its entry.
    pub fn prepare(&self, reg: Registration, target: Target<W>) -> Result<Prepared<W>, RegError> {
        let now = vwed_base::clock::local_now();
        match reg {
            Registration::Route {
                method,
                path,
                description,
                public,
                ..
            } => {
                let segs = parse_route(&path)?;
                Ok(Prepared::Route(Arc::new(RouteEntry {
                    method: method.to_ascii_uppercase(),
                    path: canonical(&segs),
                    segs,
                    description,
                    public,
                    registered_at: now,
                    target,
                    stats: Stats::default(),
                })))
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
                check_name(&name, "函数名")?;
                Ok(Prepared::Function(Arc::new(FunctionEntry {
                    name,
                    description,
                    parameters: serde_json::from_str(&parameters).unwrap_or(Value::Array(vec![])),
                    return_schema: serde_json::from_str(&return_schema).unwrap_or(Value::Null),
                    tags,
                    is_async,
                    registered_at: now,
                    target,
                    stats: Stats::default(),
                })))
            }
            Registration::Listener {
                event, priority, ..
            } => self.prepare_listener(event, priority, target, now),
            Registration::Timer { name, schedule, .. } => {
                prepare_timer(name, schedule, target, now)
            }
        }
    }

    fn prepare_listener(
        &self,
        event: String,
        priority: i64,
        target: Target<W>,
        now: String,
    ) -> Result<Prepared<W>, RegError> {
        check_name(&event, "事件名")?;
        Ok(Prepared::Listener(Arc::new(ListenerEntry {
            event,
            priority,
            registered_at: now,
            target,
            seq: self.listener_seq.fetch_add(1, Ordering::Relaxed),
            stats: Stats::default(),
            dropped: AtomicU64::new(0),
            queue: W::listener_queue(self.event_queue_len),
        })))
    }

    /// Would this clash with what is live, or with `staged` (the same script's
    /// registrations not yet committed)?
    pub fn conflict(&self, p: &Prepared<W>, staged: &[Prepared<W>]) -> Result<(), RegError> {
        clash(p, &read(&self.routes), &read(&self.functions), staged)
    }

    /// Commits all of a script's registrations, or none if one clashes with what
    /// another script committed meanwhile. (Clashes within the script were refused
    /// while it staged them.)
    pub fn commit(&self, items: Vec<Prepared<W>>) -> Result<(), RegError> {
        let mut routes = write(&self.routes);
        let mut functions = write(&self.functions);
        for p in &items {
            clash(p, &routes, &functions, &[])?;
        }
        let mut listeners = write(&self.listeners);
        let mut timers = write(&self.timers);
        for p in items {
            match p {
                Prepared::Route(r) => routes.insert(r),
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

    /// Removes the registrations of `kind` whose target `gone` picks; returns how
    /// many went.
    fn remove_where(&self, kind: RegKind, gone: impl Fn(&Target<W>) -> bool) -> usize {
        match kind {
            RegKind::Route => write(&self.routes).retain(|e| !gone(&e.target)),
            RegKind::Function => drop_from(&mut write(&self.functions), |e| gone(&e.target)),
            RegKind::Listener => {
                let mut l = write(&self.listeners);
                let mut removed = 0;
                for list in l.values_mut() {
                    let before = list.len();
                    list.retain(|e| !gone(&e.target));
                    removed += before - list.len();
                }
                l.retain(|_, v| !v.is_empty());
                removed
            }
            RegKind::Timer => drop_from(&mut write(&self.timers), |e| gone(&e.target)),
        }
    }

    /// Removes one registration by handler (a script withdrawing it).
    pub fn withdraw(&self, script_id: &str, kind: RegKind, handler: u32) -> bool {
        self.remove_where(kind, |t| &*t.script_id == script_id && t.handler == handler) > 0
    }

    /// Removes everything a script registered; returns what was removed.
    pub fn remove_script(&self, script_id: &str) -> Counts {
        let mine = |t: &Target<W>| &*t.script_id == script_id;
        Counts {
            apis: self.remove_where(RegKind::Route, mine),
            functions: self.remove_where(RegKind::Function, mine),
            events: self.remove_where(RegKind::Listener, mine),
            timers: self.remove_where(RegKind::Timer, mine),
        }
    }

    pub fn counts(&self, script_id: &str) -> Counts {
        let mine = |t: &Target<W>| &*t.script_id == script_id;
        Counts {
            apis: read(&self.routes)
                .iter()
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

    /// Finds the route for a request path given as its percent-decoded segments
    /// (decoded one by one, so `a%2Fb` is one segment holding a slash). Literal
    /// routes win over patterns; among patterns, the one with more literal segments.
    pub fn match_route(&self, method: &str, segs: &[String]) -> Option<RouteMatch<W>> {
        read(&self.routes).find(method, segs)
    }

    /// Did a script register this route as public (no credential needed)?
    /// Costs nothing while no route is public: the hot path of script routes
    /// called with a credential.
    pub fn is_public(&self, method: &str, segs: &[String]) -> bool {
        let routes = read(&self.routes);
        routes.public > 0 && routes.find(method, segs).is_some_and(|(r, _)| r.public)
    }

    /// Is any route registered for these segments under another method?
    pub fn path_known(&self, segs: &[String]) -> bool {
        ["GET", "POST", "PUT", "DELETE", "PATCH"]
            .iter()
            .any(|m| self.match_route(m, segs).is_some())
    }

    pub fn function(&self, name: &str) -> Option<Arc<FunctionEntry<W>>> {
        read(&self.functions).get(name).cloned()
    }

    pub fn functions(&self) -> Vec<Arc<FunctionEntry<W>>> {
        let mut v: Vec<_> = read(&self.functions).values().cloned().collect();
        v.sort_by(|a, b| a.name.cmp(&b.name));
        v
    }

    pub fn routes(&self) -> Vec<Arc<RouteEntry<W>>> {
        let mut v: Vec<_> = read(&self.routes).iter().cloned().collect();
        v.sort_by(|a, b| (&a.path, &a.method).cmp(&(&b.path, &b.method)));
        v
    }

    /// Listeners of an event across all scripts, lowest priority number first.
    pub fn listeners(&self, event: &str) -> Vec<Arc<ListenerEntry<W>>> {
        read(&self.listeners)
            .get(event)
            .cloned()
            .unwrap_or_default()
    }

    pub fn all_listeners(&self) -> Vec<(String, Vec<Arc<ListenerEntry<W>>>)> {
        let mut v: Vec<_> = read(&self.listeners)
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        v.sort_by(|a, b| a.0.cmp(&b.0));
        v
    }

    pub fn timers(&self) -> Vec<Arc<TimerEntry<W>>> {
        read(&self.timers).values().cloned().collect()
    }
}

/// Function and event names: not empty, not longer than [`MAX_NAME`].
fn check_name(name: &str, what: &str) -> Result<(), RegError> {
    if name.is_empty() || name.len() > MAX_NAME {
        return Err(RegError::Invalid(format!(
            "{what}不能为空且不超过 {MAX_NAME} 个字符"
        )));
    }
    Ok(())
}

fn prepare_timer<W: Wiring>(
    name: String,
    schedule: TimerSchedule,
    target: Target<W>,
    now: String,
) -> Result<Prepared<W>, RegError> {
    if let TimerSchedule::Cron { expr } = &schedule {
        vwed_base::cron::Schedule::parse(expr).map_err(|e| RegError::Invalid(e.to_string()))?;
    }
    Ok(Prepared::Timer(Arc::new(TimerEntry {
        name,
        schedule,
        registered_at: now,
        target,
        stats: Stats::default(),
        skipped: AtomicU64::new(0),
        armed: tokio::sync::watch::channel(false).0,
        running: AtomicBool::new(false),
        next_run_ms: AtomicU64::new(0),
    })))
}
