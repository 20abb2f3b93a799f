//! What starts an active job besides a request: its cron schedule, in its own
//! time zone, with a policy for runs missed while the device was off; and VWED
//! events (`VWED.event.emit`, `io.<tag>` changes, lifecycle events) whose data
//! passes the trigger's filter.

use std::cell::Cell;
use std::collections::HashMap;
use std::sync::{Arc, Mutex, RwLock, Weak};
use std::time::Duration;
use vwed_base::sync::{Locked, RwLocked};

use chrono::{DateTime, FixedOffset, Local, TimeZone, Utc};
use serde_json::{Map, Value, json};

use super::Jobs;
use super::model::{
    CronTrigger, EventTrigger, JobRec, JobStatus, MissedRuns, TriggerInfo, TriggerKind,
};
use vwed_base::cron::Schedule;

/// The time zone of a cron trigger.
#[derive(Clone, Debug)]
pub enum Zone {
    Local,
    Utc,
    Fixed(FixedOffset),
    Named(tzfile::ArcTz),
}

impl Zone {
    pub fn parse(s: &str) -> Result<Zone, String> {
        let s = s.trim();
        match s {
            "" | "local" | "Local" => return Ok(Zone::Local),
            "UTC" | "utc" | "Z" | "Etc/UTC" => return Ok(Zone::Utc),
            _ => {}
        }
        if let Some(off) = fixed_offset(s) {
            return Ok(Zone::Fixed(off));
        }
        let plain = s
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '+' | '/'));
        if !plain || s.starts_with('/') || s.len() > 64 {
            return Err(format!("时区 {s:?} 无效"));
        }
        tzfile::ArcTz::named(s).map(Zone::Named).map_err(|e| {
            format!("时区 {s} 不可用 (系统时区数据库 /usr/share/zoneinfo 中读不到: {e}); 可用 local, UTC 或 +08:00 这样的偏移")
        })
    }

    /// The first time after `after_ms` (unix ms) that `sched` names, in this zone.
    pub fn next_after(&self, sched: &Schedule, after_ms: u64) -> Option<u64> {
        let utc = Utc
            .timestamp_millis_opt(i64::try_from(after_ms).ok()?)
            .single()?;
        fn ms<T: TimeZone>(t: DateTime<T>) -> Option<u64> {
            u64::try_from(t.timestamp_millis()).ok()
        }
        match self {
            Zone::Local => ms(sched.next_after(utc.with_timezone(&Local))?),
            Zone::Utc => ms(sched.next_after(utc)?),
            Zone::Fixed(o) => ms(sched.next_after(utc.with_timezone(o))?),
            Zone::Named(z) => ms(sched.next_after(utc.with_timezone(z))?),
        }
    }
}

/// `+08:00`, `-0530`, `UTC+8`.
fn fixed_offset(s: &str) -> Option<FixedOffset> {
    let s = s
        .strip_prefix("UTC")
        .or_else(|| s.strip_prefix("GMT"))
        .unwrap_or(s);
    let (sign, rest) = match s.chars().next()? {
        '+' => (1, &s[1..]),
        '-' => (-1, &s[1..]),
        _ => return None,
    };
    let (h, m) = match rest.split_once(':') {
        Some((h, m)) => (h, m),
        None if rest.len() == 4 => rest.split_at(2),
        None => (rest, "0"),
    };
    let (h, m): (i32, i32) = (h.parse().ok()?, m.parse().ok()?);
    if !(0..=14).contains(&h) || !(0..60).contains(&m) {
        return None;
    }
    FixedOffset::east_opt(sign * (h * 3600 + m * 60))
}

// ------------------------------------------------------------------ filters

const OPERATORS: [&str; 8] = ["$eq", "$ne", "$gt", "$gte", "$lt", "$lte", "$in", "$exists"];
const MAX_FILTER_KEYS: usize = 20;

pub fn check_filter(filter: &Map<String, Value>) -> Result<(), String> {
    if filter.len() > MAX_FILTER_KEYS {
        return Err(format!("最多 {MAX_FILTER_KEYS} 个条件"));
    }
    for (path, cond) in filter {
        if path.is_empty() || path.split('.').count() > 10 {
            return Err(format!("路径 {path:?} 无效"));
        }
        let Value::Object(ops) = cond else { continue };
        if !ops.keys().any(|k| k.starts_with('$')) {
            continue;
        }
        for (op, arg) in ops {
            if !OPERATORS.contains(&op.as_str()) {
                return Err(format!(
                    "{path}: 未知的运算符 {op}, 可用: {}",
                    OPERATORS.join(" ")
                ));
            }
            let ok = match op.as_str() {
                "$in" => arg.is_array(),
                "$exists" => arg.is_boolean(),
                "$gt" | "$gte" | "$lt" | "$lte" => arg.is_number() || arg.is_string(),
                _ => true,
            };
            if !ok {
                return Err(format!("{path}: {op} 的参数类型不对: {arg}"));
            }
        }
    }
    Ok(())
}

fn at<'a>(data: &'a Value, path: &str) -> Option<&'a Value> {
    path.split('.').try_fold(data, |v, seg| match v {
        Value::Object(m) => m.get(seg),
        Value::Array(a) => a.get(seg.parse::<usize>().ok()?),
        _ => None,
    })
}

fn compare(a: &Value, b: &Value) -> Option<std::cmp::Ordering> {
    match (a, b) {
        (Value::Number(x), Value::Number(y)) => x.as_f64()?.partial_cmp(&y.as_f64()?),
        (Value::String(x), Value::String(y)) => Some(x.cmp(y)),
        _ => None,
    }
}

fn equal(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Number(_), Value::Number(_)) => compare(a, b) == Some(std::cmp::Ordering::Equal),
        _ => a == b,
    }
}

/// Whether `data` passes every condition of `filter`.
pub fn filter_matches(filter: &Map<String, Value>, data: &Value) -> bool {
    use std::cmp::Ordering::{Greater, Less};
    filter.iter().all(|(path, cond)| {
        let v = at(data, path);
        let ops = match cond {
            Value::Object(o) if o.keys().any(|k| k.starts_with('$')) => o,
            _ => return v.is_some_and(|v| equal(v, cond)),
        };
        ops.iter().all(|(op, arg)| match (op.as_str(), v) {
            ("$exists", v) => v.is_some() == (arg == &Value::Bool(true)),
            ("$ne", v) => !v.is_some_and(|v| equal(v, arg)),
            (_, None) => false,
            ("$eq", Some(v)) => equal(v, arg),
            ("$gt", Some(v)) => compare(v, arg) == Some(Greater),
            ("$gte", Some(v)) => matches!(compare(v, arg), Some(o) if o != Less),
            ("$lt", Some(v)) => compare(v, arg) == Some(Less),
            ("$lte", Some(v)) => matches!(compare(v, arg), Some(o) if o != Greater),
            ("$in", Some(v)) => arg
                .as_array()
                .is_some_and(|a| a.iter().any(|x| equal(v, x))),
            _ => false,
        })
    })
}

/// `io.*` matches `io.press.temp`; a name without `*` matches only itself.
pub fn event_matches(pattern: &str, name: &str) -> bool {
    match pattern.strip_suffix('*') {
        Some(prefix) => name.starts_with(prefix),
        None => pattern == name,
    }
}

// -------------------------------------------------------------- event loops

/// Event-triggered executions that may lead to one another (A emits what starts
/// B, which emits what starts A): beyond this depth the chain stops.
pub const MAX_EVENT_DEPTH: u8 = 8;

thread_local! {
    /// The job execution whose `VWED.event.emit` is being delivered on this thread.
    static EMITTING: Cell<Option<(u64, u8)>> = const { Cell::new(None) };
}

/// Runs `emit` as an emit of job `job` at chain depth `depth`: a job never
/// triggers itself, and chains stop at [`MAX_EVENT_DEPTH`].
pub fn emitting_from<R>(job: u64, depth: u8, emit: impl FnOnce() -> R) -> R {
    let before = EMITTING.with(|e| e.replace(Some((job, depth))));
    let r = emit();
    EMITTING.with(|e| e.set(before));
    r
}

// ------------------------------------------------------------------ the set

#[derive(Default)]
pub struct TriggerSet {
    cron: Mutex<HashMap<u64, tokio::task::JoinHandle<()>>>,
    events: RwLock<Vec<(u64, EventTrigger)>>,
}

impl TriggerSet {
    /// Installs the triggers of `rec` (replacing any it had). `fresh`: the job was
    /// just activated or changed, so no run counts as missed before now.
    pub fn arm(&self, jobs: &Arc<Jobs>, rec: &JobRec, fresh: bool) {
        self.disarm(rec.id);
        if rec.status != JobStatus::Active {
            return;
        }
        let t = &rec.spec.triggers;
        if let Some(c) = &t.cron
            && let (Ok(sched), Ok(zone)) =
                (Schedule::parse(&c.expression), Zone::parse(&c.timezone))
        {
            let task = tokio::spawn(cron_loop(
                Arc::downgrade(jobs),
                rec.id,
                c.clone(),
                sched,
                zone,
                fresh,
            ));
            self.cron.locked().insert(rec.id, task);
        }
        if !t.events.is_empty() {
            let mut ev = self.events.write_locked();
            ev.extend(t.events.iter().map(|e| (rec.id, e.clone())));
        }
    }

    pub fn disarm(&self, job: u64) {
        if let Some(t) = self.cron.locked().remove(&job) {
            t.abort();
        }
        self.events.write_locked().retain(|(j, _)| *j != job);
    }

    pub fn disarm_all(&self) {
        for (_, t) in self.cron.locked().drain() {
            t.abort();
        }
        self.events.write_locked().clear();
    }

    /// The jobs an event starts, with the event chain depth of the new executions.
    pub fn matching(&self, name: &str, data: &Value) -> Vec<(u64, u8)> {
        let (source, depth) = match EMITTING.with(Cell::get) {
            Some((job, d)) => (Some(job), d.saturating_add(1)),
            None => (None, 0),
        };
        if depth > MAX_EVENT_DEPTH {
            return Vec::new();
        }
        let ev = self.events.read_locked();
        let mut out: Vec<(u64, u8)> = Vec::new();
        for (job, t) in ev.iter() {
            if Some(*job) == source || out.iter().any(|(j, _)| j == job) {
                continue;
            }
            if event_matches(&t.event, name) && filter_matches(&t.filter, data) {
                out.push((*job, depth));
            }
        }
        out
    }
}

/// The jobs' event triggers as the engine's event tap.
pub struct TriggerTap(pub Arc<Jobs>);

impl vwed_engine::events::EventTap for TriggerTap {
    fn on_event(&self, name: &str, data: &Value) {
        self.0.on_event(name, data);
    }
}

impl Jobs {
    /// Called for every event the runtime emits; never waits.
    pub fn on_event(self: &Arc<Self>, name: &str, data: &Value) {
        let hits = self.triggers.matching(name, data);
        if hits.is_empty() {
            return;
        }
        let Ok(rt) = tokio::runtime::Handle::try_current() else {
            return;
        };
        let event = json!({"name": name, "data": data});
        for (job, depth) in hits {
            let jobs = self.clone();
            let event = event.clone();
            let name = name.to_string();
            rt.spawn(async move {
                let trigger = TriggerInfo {
                    kind: TriggerKind::Event,
                    detail: Some(name),
                    scheduled_ms: None,
                    missed: false,
                };
                if let Err(e) = jobs.trigger(job, trigger, Some(event), depth, None).await {
                    tracing::warn!("event trigger of job {job}: {e}");
                }
            });
        }
    }
}

/// Sleeps until each time the schedule names and queues a run; first makes up
/// for runs missed while the runtime was not running, as the trigger says.
async fn cron_loop(
    jobs: Weak<Jobs>,
    job: u64,
    trigger: CronTrigger,
    sched: Schedule,
    zone: Zone,
    fresh: bool,
) {
    let now = vwed_base::clock::unix_ms();
    let Some(j) = jobs.upgrade() else { return };
    let mark = if fresh { None } else { j.cron_mark(job).await };
    let mut last = match mark {
        None => {
            j.set_cron_mark(job, now).await;
            now
        }
        Some(m) => m,
    };
    let missed = zone.next_after(&sched, last).filter(|t| *t <= now);
    if let Some(due) = missed {
        if trigger.missed_runs == MissedRuns::RunOnce {
            let info = cron_info(&trigger, due, true);
            if let Err(e) = j.trigger(job, info, None, 0, Some(now)).await {
                tracing::warn!("missed cron run of job {job}: {e}");
            }
        } else {
            j.set_cron_mark(job, now).await;
        }
        last = now;
    }
    drop(j);
    let mut previous: Option<String> = None;
    loop {
        let Some(due) = zone.next_after(&sched, last) else {
            return;
        };
        sleep_until_ms(due).await;
        last = due;
        let Some(j) = jobs.upgrade() else { return };
        if let Some(prev) = &previous
            && !j.is_finished(prev).await
        {
            tracing::warn!("cron run of job {job} skipped: the previous one has not finished");
            j.set_cron_mark(job, due).await;
            continue;
        }
        match j
            .trigger(job, cron_info(&trigger, due, false), None, 0, Some(due))
            .await
        {
            Ok(id) => previous = Some(id),
            Err(e) => tracing::warn!("cron run of job {job}: {e}"),
        }
    }
}

fn cron_info(trigger: &CronTrigger, due: u64, missed: bool) -> TriggerInfo {
    TriggerInfo {
        kind: TriggerKind::Cron,
        detail: Some(trigger.expression.clone()),
        scheduled_ms: Some(due),
        missed,
    }
}

/// Sleeps until the wall clock reaches `ms`; a clock set back meanwhile only
/// makes it sleep again.
async fn sleep_until_ms(ms: u64) {
    loop {
        let now = vwed_base::clock::unix_ms();
        if now >= ms {
            return;
        }
        tokio::time::sleep(Duration::from_millis((ms - now).min(60_000))).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn filters_compare_paths_of_the_event_data() {
        let data =
            json!({"value": 42, "quality": "good", "point": {"tag": "press.temp"}, "list": [1, 2]});
        let f = |v: Value| v.as_object().cloned().expect("object");
        assert!(filter_matches(&f(json!({"quality": "good"})), &data));
        assert!(!filter_matches(&f(json!({"quality": "bad"})), &data));
        assert!(filter_matches(
            &f(json!({"value": {"$gt": 40, "$lte": 42}})),
            &data
        ));
        assert!(!filter_matches(&f(json!({"value": {"$gt": 42}})), &data));
        assert!(filter_matches(&f(json!({"value": 42.0})), &data));
        assert!(filter_matches(
            &f(json!({"point.tag": {"$in": ["press.temp"]}})),
            &data
        ));
        assert!(filter_matches(
            &f(json!({"list.1": 2, "missing": {"$exists": false}})),
            &data
        ));
        assert!(!filter_matches(&f(json!({"missing": 1})), &data));
        assert!(filter_matches(&f(json!({"missing": {"$ne": 1}})), &data));
        assert!(check_filter(&f(json!({"value": {"$regex": "x"}}))).is_err());
        assert!(check_filter(&f(json!({"value": {"$in": 3}}))).is_err());
        assert!(check_filter(&f(json!({"value": {"a": 1}}))).is_ok());
    }

    #[test]
    fn zones_and_patterns() {
        assert!(
            matches!(Zone::parse("+08:00"), Ok(Zone::Fixed(o)) if o.local_minus_utc() == 8 * 3600)
        );
        assert!(
            matches!(Zone::parse("UTC-0530"), Ok(Zone::Fixed(o)) if o.local_minus_utc() == -(5 * 3600 + 1800))
        );
        assert!(Zone::parse("../../etc/passwd").is_err());
        assert!(Zone::parse("Mars/Olympus").is_err());
        let s = Schedule::parse("0 8 * * *").expect("cron");
        // 2026-01-01T00:00:00Z; 08:00 at +08:00 is 00:00Z the next day.
        let t0 = 1_767_225_600_000;
        let z = Zone::parse("+08:00").expect("zone");
        assert_eq!(z.next_after(&s, t0), Some(t0 + 86_400_000));
        assert_eq!(Zone::Utc.next_after(&s, t0), Some(t0 + 8 * 3_600_000));
        if let Ok(sh) = Zone::parse("Asia/Shanghai") {
            assert_eq!(sh.next_after(&s, t0), Some(t0 + 86_400_000));
        }
        assert!(event_matches("io.*", "io.press.temp"));
        assert!(!event_matches("io.*", "iox"));
        assert!(event_matches("order_ready", "order_ready"));
        assert!(!event_matches("order_ready", "order_ready2"));
    }
}
