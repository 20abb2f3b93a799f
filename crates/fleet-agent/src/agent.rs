//! The device agent: one MQTT link, the desired state it hears, the apply it
//! runs, the events and reported state it sends, the calls it answers. The agent
//! is a library type over a [`ScriptHost`]: the runtime runs one over its engine;
//! the benchmark runs many over hosts that start nothing.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::json;
use tokio::sync::{Notify, Semaphore, mpsc, watch};

use super::apply::End;
use super::blobs::{BlobStore, Fetches};
use super::host::ScriptHost;
use super::outbox;
use super::settings::Settings;
pub use super::shared::{CRASH_AT_ENV, Core, Ctx};
use super::{FleetError, report, state};
use vwed_db::{self as db, Db};
use vwed_fleet_proto::crypto;
use vwed_fleet_proto::link::{Link, LinkEvent, LinkOptions};
use vwed_fleet_proto::topics::{Inbound, Source, Topics};
use vwed_store::ScriptStore;

/// Remote calls that run at once; more wait for the broker to deliver them again.
const CALL_SLOTS: usize = 8;
const TICK: Duration = Duration::from_secs(1);
/// Every this many ticks the database is looked at too.
const SLOW_TICKS: u64 = 10;
/// If the device's own marker does not come back, it decides on what it has.
const SETTLE_AFTER: Duration = Duration::from_secs(3);
/// Events in flight to the broker at once.
const OUTBOX_WINDOW: usize = 32;

pub struct Agent<H> {
    core: Arc<Core<H>>,
}

/// A running agent; `shutdown` ends it.
pub struct AgentHandle {
    stop: watch::Sender<bool>,
    task: tokio::task::JoinHandle<()>,
}

impl AgentHandle {
    pub async fn shutdown(self) {
        let _ = self.stop.send(true);
        let _ = tokio::time::timeout(Duration::from_secs(2), self.task).await;
    }
}

impl<H: ScriptHost> Agent<H> {
    /// An agent with a data dir of its own (database, projects, blobs).
    pub fn open(settings: Settings, data_dir: &Path, host: H) -> Result<Agent<H>, FleetError> {
        std::fs::create_dir_all(data_dir).map_err(|source| FleetError::File {
            path: data_dir.to_path_buf(),
            source,
        })?;
        let db = db::open(&data_dir.join("vwed.redb"), 256 * 1024)?;
        let store = ScriptStore::new(db.clone(), data_dir).map_err(|source| FleetError::File {
            path: data_dir.to_path_buf(),
            source,
        })?;
        Agent::new(settings, db, store, data_dir, host)
    }

    pub fn new(
        settings: Settings,
        db: Db,
        store: ScriptStore,
        data_dir: &Path,
        host: H,
    ) -> Result<Agent<H>, FleetError> {
        state::create_tables(&db)?;
        let blobs = BlobStore::open(data_dir)?;
        Ok(Agent {
            core: Arc::new(Core {
                topics: Topics::new(&settings.fleet),
                s: settings,
                db,
                store,
                blobs,
                host,
                fetches: Fetches::default(),
                changed: Notify::new(),
                run_id: rand::random(),
                crash_at: std::env::var(CRASH_AT_ENV).ok().filter(|s| !s.is_empty()),
            }),
        })
    }

    /// Finishes a switch or a rollback a power cut interrupted. Call it before
    /// the running set is restored. Blocking.
    pub fn recover(&self) -> Result<(), FleetError> {
        super::apply::recover(&self.core)
    }

    /// Connects and syncs until the handle shuts it down.
    pub fn spawn(&self) -> AgentHandle {
        let s = &self.core.s;
        let topics = &self.core.topics;
        let offline = json!({"device": s.device_id, "online": false}).to_string();
        let (link, events) = Link::start(&LinkOptions {
            client_id: s.device_id.clone(),
            broker: s.broker.clone(),
            login: s.login.clone(),
            keep_alive: s.keep_alive,
            clean_session: false,
            max_packet_bytes: s.max_packet_bytes,
            will: Some((topics.presence(&s.device_id), offline.into_bytes())),
        });
        let mut subs = vec![
            topics.desired_device(&s.device_id),
            topics.call(&s.device_id),
            topics.sync(&s.device_id),
        ];
        subs.extend(s.groups.iter().map(|g| topics.desired_group(g)));
        link.subscribe(&subs);
        let (stop, stopped) = watch::channel(false);
        let ctx = Ctx {
            core: self.core.clone(),
            link,
        };
        let (done_tx, done_rx) = mpsc::channel(1);
        let task = tokio::spawn(Loop::new(ctx, done_tx).run(events, done_rx, stopped));
        AgentHandle { stop, task }
    }
}

/// Events on their way out: which are in flight, which the broker acknowledged.
#[derive(Default)]
struct OutboxPump {
    inflight: BTreeSet<u64>,
    last_sent: u64,
    acked: Vec<u64>,
}

impl OutboxPump {
    async fn pump<H: ScriptHost>(&mut self, ctx: &Ctx<H>) {
        self.flush(ctx).await;
        let room = OUTBOX_WINDOW.saturating_sub(self.inflight.len());
        if room == 0 || !ctx.link.is_connected() {
            return;
        }
        let (db, after) = (ctx.core.db.clone(), self.last_sent);
        let Ok(Ok(entries)) =
            tokio::task::spawn_blocking(move || outbox::after(&db, after, room)).await
        else {
            return;
        };
        let topic = ctx.core.topics.events(&ctx.core.s.device_id);
        for (seq, text) in entries {
            if ctx.link.publish(&topic, text, false, Some(seq)).is_err() {
                break;
            }
            self.inflight.insert(seq);
            self.last_sent = seq;
        }
    }

    fn acked(&mut self, seq: u64) {
        if self.inflight.remove(&seq) {
            self.acked.push(seq);
        }
    }

    async fn flush<H: ScriptHost>(&mut self, ctx: &Ctx<H>) {
        if self.acked.is_empty() {
            return;
        }
        let (db, seqs) = (ctx.core.db.clone(), std::mem::take(&mut self.acked));
        if let Ok(Err(e)) = tokio::task::spawn_blocking(move || outbox::remove(&db, &seqs)).await {
            // Sent again later: a repeat the receiver drops by its number.
            tracing::warn!("fleet: cannot clear sent events: {e}");
        }
    }

    /// The link dropped: what was in flight is sent again from redb.
    fn reset(&mut self) {
        self.inflight.clear();
        self.last_sent = 0;
    }
}

/// The agent's event loop.
struct Loop<H> {
    ctx: Ctx<H>,
    desired: BTreeMap<Source, Vec<u8>>,
    connection: u64,
    connected_at: Option<Instant>,
    settled: bool,
    apply: Option<tokio::task::JoinHandle<()>>,
    /// Digest of the envelope the device is done with.
    handled: Option<String>,
    /// A deployment refused because of detached projects, and which were detached.
    blocked: Option<(String, Vec<String>)>,
    outbox: OutboxPump,
    last_report: String,
    /// The scripts the last report listed, and how they were: a change is news.
    watched: Vec<String>,
    watched_states: String,
    ticks: u64,
    calls: Arc<Semaphore>,
    done: mpsc::Sender<Result<End, FleetError>>,
}

impl<H: ScriptHost> Loop<H> {
    fn new(ctx: Ctx<H>, done: mpsc::Sender<Result<End, FleetError>>) -> Loop<H> {
        Loop {
            ctx,
            desired: BTreeMap::new(),
            connection: 0,
            connected_at: None,
            settled: false,
            apply: None,
            handled: None,
            blocked: None,
            outbox: OutboxPump::default(),
            last_report: String::new(),
            watched: Vec::new(),
            watched_states: String::new(),
            ticks: 0,
            calls: Arc::new(Semaphore::new(CALL_SLOTS)),
            done,
        }
    }

    async fn run(
        mut self,
        mut events: mpsc::Receiver<LinkEvent>,
        mut done: mpsc::Receiver<Result<End, FleetError>>,
        mut stop: watch::Receiver<bool>,
    ) {
        match self.ctx.load().await {
            Ok(rec) => {
                self.handled = rec.handled.clone();
                if rec.step.in_progress() {
                    tracing::info!("fleet: resuming the apply from {}", rec.step.as_str());
                    let ctx = self.ctx.clone();
                    self.spawn_apply(async move { ctx.resume().await });
                }
            }
            Err(e) => tracing::error!("fleet: cannot read the apply state: {e}"),
        }
        let mut tick = tokio::time::interval(TICK);
        let core = self.ctx.core.clone();
        loop {
            tokio::select! {
                ev = events.recv() => match ev {
                    Some(ev) => self.on_event(ev).await,
                    None => break,
                },
                Some(end) = done.recv() => self.on_apply_end(end).await,
                _ = core.changed.notified() => {
                    self.publish_report().await;
                    self.outbox.pump(&self.ctx).await;
                }
                _ = tick.tick() => self.on_tick().await,
                _ = stop.changed() => break,
            }
        }
        self.leave();
    }

    fn leave(&mut self) {
        // Like a power cut for the apply: the next start goes on from its step.
        if let Some(a) = self.apply.take() {
            a.abort();
        }
        let c = &self.ctx.core;
        let offline = json!({"device": c.s.device_id, "online": false}).to_string();
        let _ = self
            .ctx
            .link
            .publish(&c.topics.presence(&c.s.device_id), offline, true, None);
        self.ctx.link.stop();
    }

    async fn on_event(&mut self, ev: LinkEvent) {
        match ev {
            LinkEvent::Connected => self.on_connected().await,
            LinkEvent::Disconnected(why) => {
                tracing::warn!("fleet: lost the broker: {why}");
                self.outbox.reset();
                self.connected_at = None;
            }
            LinkEvent::Message { topic, payload } => self.on_message(&topic, payload).await,
            LinkEvent::Acked(seq) => {
                self.outbox.acked(seq);
                if self.outbox.inflight.is_empty() {
                    self.outbox.pump(&self.ctx).await;
                }
            }
        }
    }

    async fn on_connected(&mut self) {
        let c = self.ctx.core.clone();
        tracing::info!(
            "fleet: connected to {}:{}",
            c.s.broker.host,
            c.s.broker.port
        );
        self.connection += 1;
        self.connected_at = Some(Instant::now());
        self.settled = false;
        // The broker sends every retained desired state again for the new
        // subscriptions; one deleted meanwhile does not come back.
        self.desired.clear();
        // What was waiting for files may find them over this connection.
        self.blocked = None;
        let online = json!({
            "device": c.s.device_id,
            "online": true,
            "at_ms": vwed_base::clock::unix_ms(),
            "runtime": env!("CARGO_PKG_VERSION"),
        });
        let link = &self.ctx.link;
        let _ = link.publish(
            &c.topics.presence(&c.s.device_id),
            online.to_string(),
            true,
            None,
        );
        let _ = link.publish(
            &c.topics.sync(&c.s.device_id),
            self.connection.to_string(),
            false,
            None,
        );
        self.outbox.reset();
        self.outbox.pump(&self.ctx).await;
        self.last_report.clear();
        self.publish_report().await;
    }

    async fn on_message(&mut self, topic: &str, payload: bytes::Bytes) {
        let c = self.ctx.core.clone();
        match c.topics.classify(topic, &c.s.device_id, &c.s.groups) {
            Inbound::Desired(src) => {
                if payload.is_empty() {
                    self.desired.remove(&src);
                } else {
                    self.desired.insert(src, payload.to_vec());
                }
                self.maybe_apply();
            }
            Inbound::Chunk { digest, index } => c.fetches.chunk(digest, index, payload),
            Inbound::Sync => {
                if payload.as_ref() == self.connection.to_string().as_bytes() {
                    self.settled = true;
                    self.maybe_apply();
                }
            }
            Inbound::Call => match self.calls.clone().try_acquire_owned() {
                Ok(slot) => {
                    let ctx = self.ctx.clone();
                    tokio::spawn(async move {
                        ctx.on_call(&payload).await;
                        drop(slot);
                    });
                }
                Err(_) => tracing::warn!("fleet: too many calls at once, one dropped"),
            },
            Inbound::Other => {}
        }
    }

    async fn on_tick(&mut self) {
        if !self.settled
            && self
                .connected_at
                .is_some_and(|t| t.elapsed() >= SETTLE_AFTER)
        {
            self.settled = true;
            self.maybe_apply();
        }
        if let Some((_, detached)) = &self.blocked {
            let db = self.ctx.core.db.clone();
            let now = tokio::task::spawn_blocking(move || detached_names(&db)).await;
            if now.ok().as_ref() != Some(detached) {
                self.blocked = None;
                self.maybe_apply();
            }
        }
        // Idle, a tick only looks at the scripts (in memory); the database is read
        // when they changed or every SLOW_TICKS (a project detached through the
        // local API, events it queued).
        self.ticks += 1;
        let slow = self.ticks.is_multiple_of(SLOW_TICKS);
        if slow || self.script_states() != self.watched_states {
            self.publish_report().await;
        }
        if slow {
            self.outbox.pump(&self.ctx).await;
        }
    }

    fn script_states(&self) -> String {
        let host = &self.ctx.core.host;
        self.watched
            .iter()
            .map(|s| host.status(s).state)
            .collect::<Vec<_>>()
            .join(",")
    }

    async fn on_apply_end(&mut self, end: Result<End, FleetError>) {
        self.apply = None;
        let blocked_digest = match end {
            Ok(End::Blocked(digest)) => Some(digest),
            Ok(_) => None,
            Err(e) => {
                tracing::error!("fleet: apply failed: {e}");
                None
            }
        };
        if let Ok(rec) = self.ctx.load().await {
            self.handled = rec.handled;
        }
        if let Some(d) = blocked_digest {
            let db = self.ctx.core.db.clone();
            let detached = tokio::task::spawn_blocking(move || detached_names(&db))
                .await
                .unwrap_or_default();
            self.blocked = Some((d, detached));
        }
        self.publish_report().await;
        self.outbox.pump(&self.ctx).await;
        self.maybe_apply();
    }

    /// The desired state that applies to this device: its own, else its first
    /// group's that has one. With its digest.
    fn candidate(&self) -> Option<(Source, String, Vec<u8>)> {
        let (src, payload) = self.desired.iter().next()?;
        Some((src.clone(), crypto::sha256_hex(payload), payload.clone()))
    }

    fn maybe_apply(&mut self) {
        if self.apply.is_some() || !self.settled {
            return;
        }
        let Some((src, digest, payload)) = self.candidate() else {
            return;
        };
        if self.handled.as_ref() == Some(&digest)
            || self.blocked.as_ref().is_some_and(|(d, _)| *d == digest)
        {
            return;
        }
        let ctx = self.ctx.clone();
        self.spawn_apply(async move { ctx.apply(&src, payload).await });
    }

    fn spawn_apply(
        &mut self,
        work: impl std::future::Future<Output = Result<End, FleetError>> + Send + 'static,
    ) {
        let done = self.done.clone();
        self.apply = Some(tokio::spawn(async move {
            let end = work.await;
            let _ = done.send(end).await;
        }));
    }

    async fn publish_report(&mut self) {
        let core = self.ctx.core.clone();
        let online = self.ctx.link.is_connected();
        if !online {
            return;
        }
        let built = tokio::task::spawn_blocking(move || report::build(&core, online)).await;
        let text = match built {
            Ok(Ok(v)) => {
                self.watched = v["scripts"]
                    .as_array()
                    .map(|l| {
                        l.iter()
                            .filter_map(|x| x["script"].as_str().map(String::from))
                            .collect()
                    })
                    .unwrap_or_default();
                self.watched_states = self.script_states();
                v.to_string()
            }
            Ok(Err(e)) => {
                tracing::warn!("fleet: cannot build the reported state: {e}");
                return;
            }
            Err(_) => return,
        };
        if text == self.last_report {
            return;
        }
        let c = &self.ctx.core;
        let topic = c.topics.state(&c.s.device_id);
        if self
            .ctx
            .link
            .publish(&topic, text.clone(), true, None)
            .is_ok()
        {
            self.last_report = text;
        }
    }
}

fn detached_names(db: &Db) -> Vec<String> {
    state::managed(db)
        .map(|m| {
            m.into_iter()
                .filter(|(_, r)| r.detached)
                .map(|(n, _)| n)
                .collect()
        })
        .unwrap_or_default()
}
