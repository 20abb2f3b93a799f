//! Live fan-out to WebSocket clients. Publishing never waits: every connection
//! has a queue bounded by messages and by bytes, and a connection that falls
//! behind skips lines and is told how many, so a slow client can never slow a
//! script nor fill the supervisor's memory.

use std::collections::{BTreeMap, HashMap, HashSet, VecDeque};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use vwed_base::sync::{Locked, RwLocked};

use serde_json::{Value, json};
use tokio::sync::Notify;
use vwed_ipc::Level;

use super::record::LogLine;

/// Subscribes to every script.
pub const ALL: &str = "*";

#[derive(Default)]
struct Subs {
    all: bool,
    scripts: HashSet<String>,
    /// Script paths: every run of the script, across restarts.
    paths: HashSet<String>,
}

/// What a connection wants of the log lines it is subscribed to: the lowest
/// level and a text the message or fields must hold, applied here so that lines
/// it does not want never cross the network.
#[derive(Default, Clone)]
pub struct LineFilter {
    pub min_level: Option<Level>,
    pub text: Option<String>,
}

impl LineFilter {
    fn accepts(&self, l: &LogLine) -> bool {
        self.min_level.is_none_or(|m| l.level >= m)
            && self
                .text
                .as_deref()
                .is_none_or(|t| l.message.contains(t) || l.fields.contains(t))
    }
}

#[derive(Default)]
struct Queue {
    items: VecDeque<Arc<str>>,
    /// Bytes of `items`.
    bytes: usize,
    /// Lines skipped since the client was last told.
    skipped: u64,
    closed: bool,
}

pub struct Conn {
    pub id: u64,
    pub connection_id: String,
    pub client_id: String,
    pub client_type: String,
    pub connected_at: String,
    subs: Mutex<Subs>,
    filter: Mutex<LineFilter>,
    queue: Mutex<Queue>,
    cap: usize,
    cap_bytes: usize,
    wake: Notify,
    pub skipped_total: AtomicU64,
    pub sent_total: AtomicU64,
}

impl Queue {
    fn push(&mut self, msg: Arc<str>) {
        self.bytes += msg.len();
        self.items.push_back(msg);
    }
}

fn skipped_notice(n: u64) -> Arc<str> {
    Arc::from(
        json!({
            "type": "notice",
            "event": "lines_skipped",
            "skipped": n,
            "level": "WARNING",
            "timestamp": vwed_base::clock::utc_now(),
            "message": format!("客户端接收过慢, 跳过了 {n} 条消息 ({n} lines skipped)"),
        })
        .to_string(),
    )
}

impl Conn {
    fn wants(&self, script_id: &str) -> bool {
        let s = self.subs.locked();
        s.all || s.scripts.contains(script_id)
    }

    fn wants_script(&self, script_id: &str, script_path: &str) -> bool {
        let s = self.subs.locked();
        s.all || s.scripts.contains(script_id) || s.paths.contains(script_path)
    }

    /// Named topics (e.g. `io:*`) are only for clients that asked for them by
    /// name: a `*` log subscriber must not be flooded with point changes.
    fn wants_topic(&self, topics: &[&str]) -> bool {
        let s = self.subs.locked();
        topics.iter().any(|t| s.scripts.contains(*t))
    }

    /// Queues a broadcast message; drops and counts it when the queue is full.
    fn offer(&self, msg: &Arc<str>) -> bool {
        let mut q = self.queue.locked();
        if q.closed {
            return false;
        }
        // A message alone in the queue always fits, whatever its size.
        let over_bytes = q.bytes > 0 && q.bytes + msg.len() > self.cap_bytes;
        if q.items.len() >= self.cap || over_bytes {
            q.skipped += 1;
            self.skipped_total.fetch_add(1, Ordering::Relaxed);
            return false;
        }
        if q.skipped > 0 {
            // Said where the gap is, in order.
            let n = std::mem::take(&mut q.skipped);
            q.push(skipped_notice(n));
        }
        q.push(msg.clone());
        drop(q);
        self.wake.notify_one();
        true
    }

    /// Queues an answer to the client's own request; never dropped.
    pub fn reply(&self, msg: Value) {
        let mut q = self.queue.locked();
        if q.closed {
            return;
        }
        q.push(Arc::from(msg.to_string()));
        drop(q);
        self.wake.notify_one();
    }

    /// Waits for queued messages and takes them all; `None` once closed.
    pub async fn next_batch(&self) -> Option<Vec<Arc<str>>> {
        loop {
            {
                let mut q = self.queue.locked();
                if q.closed {
                    return None;
                }
                if q.items.is_empty() && q.skipped > 0 {
                    let n = std::mem::take(&mut q.skipped);
                    q.push(skipped_notice(n));
                }
                if !q.items.is_empty() {
                    q.bytes = 0;
                    let v: Vec<_> = q.items.drain(..).collect();
                    self.sent_total.fetch_add(v.len() as u64, Ordering::Relaxed);
                    return Some(v);
                }
            }
            self.wake.notified().await;
        }
    }

    pub fn close(&self) {
        self.queue.locked().closed = true;
        self.wake.notify_one();
    }

    pub fn queued(&self) -> usize {
        self.queue.locked().items.len()
    }

    /// Sets the filter applied to this connection's log lines.
    pub fn set_filter(&self, f: LineFilter) {
        *self.filter.locked() = f;
    }

    /// Subscribes; `*` means every script.
    pub fn subscribe(&self, script_id: &str) {
        let mut s = self.subs.locked();
        if script_id == ALL {
            s.all = true;
        } else {
            s.scripts.insert(script_id.to_string());
        }
    }

    /// Unsubscribes; `*` ends the all-scripts subscription. Tells whether it had one.
    pub fn unsubscribe(&self, script_id: &str) -> bool {
        let mut s = self.subs.locked();
        if script_id == ALL {
            std::mem::take(&mut s.all)
        } else {
            s.scripts.remove(script_id)
        }
    }

    /// Subscribes to every run of the script at `script_path`.
    pub fn subscribe_path(&self, script_path: &str) {
        self.subs.locked().paths.insert(script_path.to_string());
    }

    pub fn unsubscribe_path(&self, script_path: &str) -> bool {
        self.subs.locked().paths.remove(script_path)
    }

    pub fn subscribed_paths(&self) -> Vec<String> {
        let mut v: Vec<String> = self.subs.locked().paths.iter().cloned().collect();
        v.sort();
        v
    }

    pub fn subscriptions(&self) -> Vec<String> {
        let s = self.subs.locked();
        let mut v: Vec<String> = s.scripts.iter().cloned().collect();
        v.sort();
        if s.all {
            v.insert(0, ALL.to_string());
        }
        v
    }

    pub fn to_json(&self) -> Value {
        json!({
            "connection_id": self.connection_id,
            "client_id": self.client_id,
            "client_type": self.client_type,
            "connected_at": self.connected_at,
            "subscribed_scripts": self.subscriptions(),
            "subscribed_paths": self.subscribed_paths(),
            "queued": self.queued(),
            "queue_capacity": self.cap,
            "queue_capacity_bytes": self.cap_bytes,
            "skipped": self.skipped_total.load(Ordering::Relaxed),
            "sent": self.sent_total.load(Ordering::Relaxed),
        })
    }
}

pub struct Hub {
    conns: RwLock<HashMap<u64, Arc<Conn>>>,
    count: AtomicUsize,
    next_id: AtomicU64,
    queue_cap: usize,
    queue_bytes: usize,
}

impl Hub {
    /// Each connection queues at most `queue_cap` messages and `queue_bytes`
    /// bytes of them.
    pub fn new(queue_cap: usize, queue_bytes: usize) -> Hub {
        Hub {
            conns: RwLock::new(HashMap::new()),
            count: AtomicUsize::new(0),
            next_id: AtomicU64::new(1),
            queue_cap: queue_cap.max(1),
            queue_bytes,
        }
    }

    pub fn connect(&self, client_id: &str, client_type: &str) -> Arc<Conn> {
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let conn = Arc::new(Conn {
            id,
            connection_id: format!("{client_type}_{client_id}_{}", vwed_base::clock::unix_ms()),
            client_id: client_id.to_string(),
            client_type: client_type.to_string(),
            connected_at: vwed_base::clock::utc_now(),
            subs: Mutex::new(Subs::default()),
            filter: Mutex::new(LineFilter::default()),
            queue: Mutex::new(Queue::default()),
            cap: self.queue_cap,
            cap_bytes: self.queue_bytes,
            wake: Notify::new(),
            skipped_total: AtomicU64::new(0),
            sent_total: AtomicU64::new(0),
        });
        self.conns.write_locked().insert(id, conn.clone());
        self.count.fetch_add(1, Ordering::Release);
        conn
    }

    pub fn disconnect(&self, conn: &Conn) {
        conn.close();
        if self.conns.write_locked().remove(&conn.id).is_some() {
            self.count.fetch_sub(1, Ordering::Release);
        }
    }

    /// Whether anyone listens at all: lets the log path skip building messages.
    pub fn has_clients(&self) -> bool {
        self.count.load(Ordering::Acquire) > 0
    }

    /// Sends to the subscribers of `script_id` and of `*`; the message is built
    /// only if someone wants it. Returns how many connections took it.
    pub fn publish(&self, script_id: &str, build: impl FnOnce() -> Value) -> usize {
        self.publish_where(|c| c.wants(script_id), build)
    }

    /// Like `publish`, also for the subscribers of the script's path.
    pub fn publish_script(
        &self,
        script_id: &str,
        script_path: &str,
        build: impl FnOnce() -> Value,
    ) -> usize {
        self.publish_where(|c| c.wants_script(script_id, script_path), build)
    }

    /// A script's log line, to the subscribers of the run, its path and `*`
    /// whose filter accepts it.
    pub fn publish_line(&self, l: &LogLine, build: impl FnOnce() -> Value) -> usize {
        self.publish_where(
            |c| c.wants_script(&l.script_id, &l.script_path) && c.filter.locked().accepts(l),
            build,
        )
    }

    /// Like `publish_script`, also for the subscribers of `topic` by name.
    pub fn publish_script_or_topic(
        &self,
        script_id: &str,
        script_path: &str,
        topic: &str,
        build: impl FnOnce() -> Value,
    ) -> usize {
        self.publish_where(
            |c| c.wants_script(script_id, script_path) || c.wants_topic(&[topic]),
            build,
        )
    }

    /// Like `publish`, for subscribers of any of `topics` by exact name only.
    pub fn publish_topic(&self, topics: &[&str], build: impl FnOnce() -> Value) -> usize {
        self.publish_where(|c| c.wants_topic(topics), build)
    }

    fn publish_where(&self, wants: impl Fn(&Conn) -> bool, build: impl FnOnce() -> Value) -> usize {
        if !self.has_clients() {
            return 0;
        }
        let conns = self.conns.read_locked();
        let mut msg: Option<Arc<str>> = None;
        let mut build = Some(build);
        let mut n = 0;
        for c in conns.values() {
            if !wants(c) {
                continue;
            }
            if msg.is_none() {
                msg = build.take().map(|b| Arc::from(b().to_string()));
            }
            if let Some(m) = &msg
                && c.offer(m)
            {
                n += 1;
            }
        }
        n
    }

    pub fn connections(&self) -> Vec<Arc<Conn>> {
        let mut v: Vec<_> = self.conns.read_locked().values().cloned().collect();
        v.sort_by_key(|c| c.id);
        v
    }

    /// The seed's `/ws/connections/status` data.
    pub fn status_json(&self) -> Value {
        let conns = self.connections();
        let mut per_script: BTreeMap<String, u64> = BTreeMap::new();
        for c in &conns {
            for s in c.subscriptions() {
                *per_script.entry(s).or_default() += 1;
            }
        }
        json!({
            "total_connections": conns.len(),
            "total_script_subscriptions": per_script.len(),
            "connections": conns.iter().map(|c| c.to_json()).collect::<Vec<_>>(),
            "script_subscriptions": per_script,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn text(v: &[Arc<str>]) -> Vec<Value> {
        v.iter()
            .map(|s| serde_json::from_str(s).expect("json"))
            .collect()
    }

    #[tokio::test]
    async fn subscribe_filters_and_star_gets_all() {
        let hub = Hub::new(16, 1 << 20);
        let a = hub.connect("a", "web");
        let b = hub.connect("b", "web");
        assert!(a.connection_id.starts_with("web_a_"));
        a.subscribe("s1");
        b.subscribe(ALL);
        assert_eq!(hub.publish("s1", || json!({"n": 1})), 2);
        assert_eq!(hub.publish("s2", || json!({"n": 2})), 1);
        let got_a = text(&a.next_batch().await.expect("a"));
        assert_eq!(got_a, vec![json!({"n": 1})]);
        let got_b = text(&b.next_batch().await.expect("b"));
        assert_eq!(got_b.len(), 2);
        assert!(a.unsubscribe("s1"));
        assert!(!a.unsubscribe("s1"));
        assert_eq!(hub.publish("s1", || json!({"n": 3})), 1);
        let st = hub.status_json();
        assert_eq!(st["total_connections"], 2);
        assert_eq!(st["script_subscriptions"]["*"], 1);
        hub.disconnect(&b);
        assert_eq!(hub.publish("s1", || panic!("nobody listens")), 0);
        assert!(b.next_batch().await.is_none());
    }

    #[tokio::test]
    async fn a_path_subscription_gets_every_run_of_the_script() {
        let hub = Hub::new(16, 1 << 20);
        let c = hub.connect("p", "web");
        c.subscribe_path("proj/main.py");
        assert_eq!(
            hub.publish_script("main.py_1_a", "proj/main.py", || json!({"n": 1})),
            1
        );
        assert_eq!(
            hub.publish_script("main.py_2_b", "proj/main.py", || json!({"n": 2})),
            1
        );
        assert_eq!(
            hub.publish_script("x.py_3_c", "proj/x.py", || json!({"n": 3})),
            0
        );
        // Messages that name only a script id do not reach path subscribers.
        assert_eq!(hub.publish("main.py_1_a", || json!({"n": 4})), 0);
        let got = text(&c.next_batch().await.expect("batch"));
        assert_eq!(got, vec![json!({"n": 1}), json!({"n": 2})]);
        assert_eq!(c.to_json()["subscribed_paths"], json!(["proj/main.py"]));
        assert!(c.unsubscribe_path("proj/main.py"));
        assert_eq!(
            hub.publish_script("main.py_4_d", "proj/main.py", || json!({})),
            0
        );
        hub.disconnect(&c);
        assert!(c.next_batch().await.is_none());
    }

    fn line(level: Level, message: &str) -> LogLine {
        LogLine {
            seq: 1,
            ts_ms: 0,
            script_id: Arc::from("s1"),
            script_path: Arc::from("p/a.py"),
            level,
            stream: "log",
            message: message.to_string(),
            fields: String::new(),
        }
    }

    #[tokio::test]
    async fn a_connection_gets_only_the_lines_its_filter_accepts() {
        let hub = Hub::new(16, 1 << 20);
        let c = hub.connect("f", "ui");
        c.subscribe(ALL);
        c.set_filter(LineFilter {
            min_level: Some(Level::Warning),
            text: Some("valve".into()),
        });
        assert_eq!(
            hub.publish_line(&line(Level::Info, "valve open"), || json!(1)),
            0
        );
        assert_eq!(
            hub.publish_line(&line(Level::Error, "pump down"), || json!(2)),
            0
        );
        assert_eq!(
            hub.publish_line(&line(Level::Error, "valve stuck"), || json!(3)),
            1
        );
        c.set_filter(LineFilter::default());
        assert_eq!(hub.publish_line(&line(Level::Debug, "x"), || json!(4)), 1);
        let got = text(&c.next_batch().await.expect("batch"));
        assert_eq!(got, vec![json!(3), json!(4)]);
    }

    #[tokio::test]
    async fn slow_client_is_bounded_and_told() {
        let hub = Hub::new(4, 1 << 20);
        let c = hub.connect("slow", "test");
        c.subscribe("s");
        for i in 0..100 {
            hub.publish("s", || json!({"i": i}));
        }
        assert_eq!(c.queued(), 4, "queue stays bounded");
        assert_eq!(c.skipped_total.load(Ordering::Relaxed), 96);
        let first = text(&c.next_batch().await.expect("batch"));
        assert_eq!(first.len(), 4);
        // With the queue drained, the client hears about the gap.
        let notice = text(&c.next_batch().await.expect("notice"));
        assert_eq!(notice[0]["type"], "notice");
        assert_eq!(notice[0]["skipped"], 96);
        // A gap followed by more lines is reported in place.
        for i in 0..10 {
            hub.publish("s", || json!({"i": i}));
        }
        let _ = c.next_batch().await;
        hub.publish("s", || json!({"i": "after"}));
        let v = text(&c.next_batch().await.expect("after"));
        assert_eq!(v[0]["skipped"], 6);
        assert_eq!(v[1]["i"], "after");
        // Replies bypass the bound.
        for _ in 0..10 {
            c.reply(json!({"type": "pong"}));
        }
        assert_eq!(c.queued(), 10);
    }

    #[tokio::test]
    async fn websocket_queues_have_a_byte_budget() {
        let hub = Hub::new(1_000, 10_000);
        let c = hub.connect("slow", "test");
        c.subscribe("s");
        let big = "x".repeat(4_000);
        for _ in 0..100 {
            hub.publish("s", || json!({"m": big}));
        }
        assert_eq!(c.queued(), 2, "bounded by bytes, not only messages");
        assert_eq!(c.skipped_total.load(Ordering::Relaxed), 98);
        assert_eq!(text(&c.next_batch().await.expect("batch")).len(), 2);
        // Alone in the queue, a message larger than the budget still passes.
        let huge = "y".repeat(20_000);
        assert_eq!(hub.publish("s", || json!({"m": huge})), 1);
    }
}
