//! One MQTT connection (rumqttc), with its traps handled:
//! - it does not subscribe again after a reconnect: the link keeps the set of
//!   subscriptions and sends them with every CONNACK;
//! - its queue of unacknowledged publishes lives in RAM and is replayed or dropped
//!   at its own discretion: the link empties it at every disconnect, and whoever
//!   needs delivery (the outbox) sends again from redb when the link is back;
//! - its default maximum packet size is 10 KiB: set from the settings, and files
//!   travel in chunks below it;
//! - `publish` blocks when its request channel is full: only `try_publish` is used,
//!   and nothing is queued while the broker is unreachable.
//!
//! Acknowledgements: a publish may carry a tag; the link learns the packet id
//! rumqttc gave it from the `Outgoing::Publish` events, which come in the order of
//! the requests (all requests pass one lock), and reports `Acked(tag)` at PUBACK.

use std::collections::{BTreeSet, HashMap, VecDeque};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use vwed_base::sync::Locked;

use bytes::Bytes;
use rumqttc::{
    AsyncClient, ConnectionError, Event, EventLoop, Incoming, LastWill, MqttOptions, Outgoing, QoS,
    SubscribeFilter, TlsConfiguration, Transport,
};
use tokio::sync::mpsc;

use crate::broker::{BrokerAddr, BrokerLogin};

/// Requests (publishes, subscriptions) waiting for the connection at most.
const CHANNEL: usize = 128;
const BACKOFF_FIRST: Duration = Duration::from_millis(250);
/// A device that lost its broker tries again at least this often, so it is back
/// within seconds of the broker.
const BACKOFF_MAX: Duration = Duration::from_secs(3);

pub struct LinkOptions {
    pub client_id: String,
    pub broker: BrokerAddr,
    pub login: BrokerLogin,
    pub keep_alive: Duration,
    /// false: the broker keeps the subscriptions and queues QoS 1 messages while
    /// the client is away.
    pub clean_session: bool,
    pub max_packet_bytes: usize,
    /// Retained QoS 1 message the broker publishes when the connection dies.
    pub will: Option<(String, Vec<u8>)>,
}

#[derive(Debug)]
pub enum LinkEvent {
    Connected,
    Disconnected(String),
    Message { topic: String, payload: Bytes },
    Acked(u64),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum PublishError {
    #[error("not connected to the broker")]
    Offline,
    #[error("the MQTT request queue is full")]
    Full,
}

/// Which request got which packet id, and which packet ids wait for PUBACK.
#[derive(Default)]
struct Tracker {
    /// Tags of publishes handed to rumqttc, in order, not yet written out.
    queued: VecDeque<Option<u64>>,
    inflight: HashMap<u16, u64>,
    /// A publish rumqttc holds back because its packet id is still in use.
    collided: Option<(u16, Option<u64>)>,
}

impl Tracker {
    fn written(&mut self, pkid: u16) {
        let tag = match self.collided.take() {
            Some((p, tag)) if p == pkid => tag,
            other => {
                self.collided = other;
                self.queued.pop_front().flatten()
            }
        };
        if let Some(tag) = tag
            && pkid != 0
        {
            self.inflight.insert(pkid, tag);
        }
    }

    fn clear(&mut self) {
        self.queued.clear();
        self.inflight.clear();
        self.collided = None;
    }
}

struct Shared {
    tracker: Mutex<Tracker>,
    subscriptions: Mutex<BTreeSet<String>>,
    connected: AtomicBool,
    stopping: AtomicBool,
}

impl Shared {
    fn tracker(&self) -> std::sync::MutexGuard<'_, Tracker> {
        self.tracker.locked()
    }

    fn subscriptions(&self) -> std::sync::MutexGuard<'_, BTreeSet<String>> {
        self.subscriptions.locked()
    }
}

#[derive(Clone)]
pub struct Link {
    client: AsyncClient,
    shared: Arc<Shared>,
}

fn mqtt_options(o: &LinkOptions) -> MqttOptions {
    let mut m = MqttOptions::new(o.client_id.clone(), o.broker.host.clone(), o.broker.port);
    m.set_keep_alive(o.keep_alive)
        .set_clean_session(o.clean_session)
        .set_max_packet_size(o.max_packet_bytes, o.max_packet_bytes)
        .set_inflight(64);
    if !o.login.username.is_empty() {
        m.set_credentials(o.login.username.clone(), o.login.password.clone());
    }
    if let Some(cfg) = &o.login.tls {
        m.set_transport(Transport::tls_with_config(TlsConfiguration::Rustls(
            cfg.clone(),
        )));
    }
    if let Some((topic, payload)) = &o.will {
        m.set_last_will(LastWill::new(
            topic.clone(),
            payload.clone(),
            QoS::AtLeastOnce,
            true,
        ));
    }
    m
}

impl Link {
    /// Connects in the background (and again after every loss); events arrive on
    /// the receiver, which must be read promptly.
    pub fn start(o: &LinkOptions) -> (Link, mpsc::Receiver<LinkEvent>) {
        let (client, eventloop) = AsyncClient::new(mqtt_options(o), CHANNEL);
        let shared = Arc::new(Shared {
            tracker: Mutex::new(Tracker::default()),
            subscriptions: Mutex::new(BTreeSet::new()),
            connected: AtomicBool::new(false),
            stopping: AtomicBool::new(false),
        });
        let (tx, rx) = mpsc::channel(256);
        let link = Link { client, shared };
        tokio::spawn(link.clone().drive(eventloop, tx));
        (link, rx)
    }

    pub fn is_connected(&self) -> bool {
        self.shared.connected.load(Ordering::Acquire)
    }

    /// QoS 1. Refused while offline or when rumqttc's queue is full; never waits.
    pub fn publish(
        &self,
        topic: &str,
        payload: impl Into<Vec<u8>>,
        retain: bool,
        tag: Option<u64>,
    ) -> Result<(), PublishError> {
        if !self.is_connected() {
            return Err(PublishError::Offline);
        }
        let mut t = self.shared.tracker();
        match self
            .client
            .try_publish(topic, QoS::AtLeastOnce, retain, payload)
        {
            Ok(()) => {
                t.queued.push_back(tag);
                Ok(())
            }
            Err(_) => Err(PublishError::Full),
        }
    }

    /// Subscribes now (if connected) and after every reconnect.
    pub fn subscribe(&self, topics: &[String]) {
        let fresh: Vec<String> = {
            let mut s = self.shared.subscriptions();
            topics
                .iter()
                .filter(|t| s.insert((*t).clone()))
                .cloned()
                .collect()
        };
        if !fresh.is_empty() && self.is_connected() {
            // A full queue means a reconnect is coming or the link is busy; the
            // next CONNACK subscribes to everything in the set.
            let _ = self.client.try_subscribe_many(filters(&fresh));
        }
    }

    pub fn unsubscribe(&self, topics: &[String]) {
        let mut s = self.shared.subscriptions();
        for t in topics {
            if s.remove(t) && self.is_connected() {
                let _ = self.client.try_unsubscribe(t.clone());
            }
        }
    }

    /// Disconnects cleanly (no last will) and stops reconnecting.
    pub fn stop(&self) {
        self.shared.stopping.store(true, Ordering::Release);
        let _ = self.client.try_disconnect();
    }

    // long: one match over every event of the connection; each arm is short
    async fn drive(self, mut ev: EventLoop, tx: mpsc::Sender<LinkEvent>) {
        let mut backoff = BACKOFF_FIRST;
        loop {
            let event = ev.poll().await;
            let out = match event {
                Ok(Event::Incoming(Incoming::ConnAck(_))) => {
                    backoff = BACKOFF_FIRST;
                    self.on_connected();
                    Some(LinkEvent::Connected)
                }
                Ok(Event::Incoming(Incoming::Publish(p))) => Some(LinkEvent::Message {
                    topic: p.topic,
                    payload: p.payload,
                }),
                Ok(Event::Incoming(Incoming::PubAck(a))) => self
                    .shared
                    .tracker()
                    .inflight
                    .remove(&a.pkid)
                    .map(LinkEvent::Acked),
                Ok(Event::Outgoing(Outgoing::Publish(pkid))) => {
                    self.shared.tracker().written(pkid);
                    None
                }
                Ok(Event::Outgoing(Outgoing::AwaitAck(pkid))) => {
                    let mut t = self.shared.tracker();
                    let tag = t.queued.pop_front().flatten();
                    t.collided = Some((pkid, tag));
                    None
                }
                Ok(_) => None,
                Err(e) => {
                    let stopping = self.shared.stopping.load(Ordering::Acquire);
                    let was = self.on_lost(&mut ev);
                    if stopping || matches!(e, ConnectionError::RequestsDone) {
                        return;
                    }
                    if was {
                        let _ = tx.send(LinkEvent::Disconnected(e.to_string())).await;
                    }
                    tokio::time::sleep(jitter(backoff)).await;
                    backoff = (backoff * 2).min(BACKOFF_MAX);
                    None
                }
            };
            if let Some(o) = out
                && tx.send(o).await.is_err()
            {
                self.stop();
                return;
            }
        }
    }

    fn on_connected(&self) {
        let topics: Vec<String> = self.shared.subscriptions().iter().cloned().collect();
        // Nothing was queued while offline (publish refuses then), so there is room.
        if !topics.is_empty() {
            let _ = self.client.try_subscribe_many(filters(&topics));
        }
        self.shared.connected.store(true, Ordering::Release);
    }

    /// Forgets everything rumqttc would replay; tells whether the link was up.
    fn on_lost(&self, ev: &mut EventLoop) -> bool {
        let was = self.shared.connected.swap(false, Ordering::AcqRel);
        let mut t = self.shared.tracker();
        ev.clean();
        ev.pending.clear();
        // Events read or queued before the loss: publishes not yet acknowledged
        // come again from the broker, and stale `Outgoing::Publish` events would
        // pair packet ids with the wrong tags.
        ev.state.events.clear();
        ev.state.collision = None;
        t.clear();
        was
    }
}

fn filters(topics: &[String]) -> Vec<SubscribeFilter> {
    topics
        .iter()
        .map(|t| SubscribeFilter::new(t.clone(), QoS::AtLeastOnce))
        .collect()
}

/// ±25 %, so that a fleet that lost its broker does not come back in one burst.
fn jitter(d: Duration) -> Duration {
    let f = 0.75 + rand::random::<f64>() * 0.5;
    d.mul_f64(f)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A Mosquitto with a TLS listener whose certificate the test made.
    struct TlsBroker {
        child: std::process::Child,
        port: u16,
        dir: std::path::PathBuf,
    }

    impl Drop for TlsBroker {
        fn drop(&mut self) {
            let _ = self.child.kill();
            let _ = self.child.wait();
            let _ = std::fs::remove_dir_all(&self.dir);
        }
    }

    fn tls_broker() -> TlsBroker {
        let dir = std::env::temp_dir().join(format!("vwed-mqtts-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("dir");
        let made = rcgen::generate_simple_self_signed(vec!["127.0.0.1".to_string()]).expect("cert");
        std::fs::write(dir.join("cert.pem"), made.cert.pem()).expect("cert.pem");
        std::fs::write(dir.join("key.pem"), made.signing_key.serialize_pem()).expect("key.pem");
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("free port")
            .port();
        let d = dir.display();
        let conf = format!(
            "listener {port} 127.0.0.1\nallow_anonymous true\nuser root\n\
             certfile {d}/cert.pem\nkeyfile {d}/key.pem\n"
        );
        std::fs::write(dir.join("m.conf"), conf).expect("conf");
        let child = std::process::Command::new("mosquitto")
            .arg("-c")
            .arg(dir.join("m.conf"))
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("mosquitto (scripts/install-deps installs it)");
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(
                std::time::Instant::now() < deadline,
                "mosquitto did not listen"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        TlsBroker { child, port, dir }
    }

    async fn next(rx: &mut mpsc::Receiver<LinkEvent>) -> LinkEvent {
        tokio::time::timeout(Duration::from_secs(20), rx.recv())
            .await
            .expect("an event within the bound")
            .expect("the link runs")
    }

    #[tokio::test]
    async fn mqtts_works_with_rustls_on_ring_and_a_packet_above_rumqttcs_default() {
        let b = tls_broker();
        let ca = b.dir.join("cert.pem");
        let tls = crate::tls::client_config(Some(&ca), None, None).expect("TLS config");
        let (link, mut rx) = Link::start(&LinkOptions {
            client_id: "tls-test".into(),
            broker: BrokerAddr {
                host: "127.0.0.1".into(),
                port: b.port,
                tls: true,
            },
            login: BrokerLogin {
                tls: Some(tls),
                ..BrokerLogin::default()
            },
            keep_alive: Duration::from_secs(10),
            clean_session: true,
            max_packet_bytes: 1024 * 1024,
            will: None,
        });
        assert!(matches!(next(&mut rx).await, LinkEvent::Connected));
        link.subscribe(&["t/x".to_string()]);
        // 100 KiB: ten times rumqttc's default maximum packet size.
        let big = vec![7u8; 100 * 1024];
        link.publish("t/x", big.clone(), false, Some(1))
            .expect("publish");
        let (mut acked, mut got) = (false, None);
        while !(acked && got.is_some()) {
            match next(&mut rx).await {
                LinkEvent::Acked(1) => acked = true,
                LinkEvent::Message { topic, payload } if topic == "t/x" => got = Some(payload),
                _ => {}
            }
        }
        assert_eq!(got.map(|p| p.len()), Some(big.len()));
        link.stop();
    }
}
