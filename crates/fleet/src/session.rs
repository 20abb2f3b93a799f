//! One connection of the command line to the broker: connect, publish and wait
//! for the broker to have it, read what is retained.

use std::collections::BTreeMap;
use std::time::Duration;

use bytes::Bytes;
use tokio::sync::mpsc;
use tokio::time::Instant;

use vwed_fleet_proto::link::{Link, LinkEvent, LinkOptions};
use vwed_fleet_proto::topics::Topics;
use vwed_fleet_proto::{BrokerAddr, BrokerLogin, read_secret, tls};

use crate::args::{BrokerArgs, CentralError};

/// Publishes in flight at once.
const WINDOW: usize = 16;
/// Large enough for the largest chunk and envelope a device accepts.
const MAX_PACKET: usize = 2 * 1024 * 1024;

pub struct Session {
    pub link: Link,
    events: mpsc::Receiver<LinkEvent>,
    pub topics: Topics,
    pub client_id: String,
    pub timeout: Duration,
    next_tag: u64,
    /// Messages that arrived while waiting for something else.
    pub inbox: Vec<(String, Bytes)>,
}

impl Session {
    pub async fn connect(args: &BrokerArgs) -> Result<Session, CentralError> {
        let broker = BrokerAddr::parse(&args.broker)?;
        let password = match &args.password_file {
            Some(p) => read_secret(p)?,
            None => String::new(),
        };
        let tls = if broker.tls {
            Some(tls::client_config(
                args.ca_file.as_deref(),
                args.client_cert_file.as_deref(),
                args.client_key_file.as_deref(),
            )?)
        } else {
            None
        };
        let client_id = format!(
            "vwed-central-{}-{:08x}",
            std::process::id(),
            rand::random::<u32>()
        );
        let (link, events) = Link::start(&LinkOptions {
            client_id: client_id.clone(),
            broker,
            login: BrokerLogin {
                username: args.username.clone(),
                password,
                tls,
            },
            keep_alive: Duration::from_secs(30),
            clean_session: true,
            max_packet_bytes: MAX_PACKET,
            will: None,
        });
        let mut s = Session {
            link,
            events,
            topics: Topics::new(&args.fleet),
            client_id,
            timeout: Duration::from_secs(args.timeout_s.max(1)),
            next_tag: 0,
            inbox: Vec::new(),
        };
        let deadline = Instant::now() + s.timeout;
        loop {
            match s.next(deadline).await? {
                LinkEvent::Connected => return Ok(s),
                LinkEvent::Message { topic, payload } => s.inbox.push((topic, payload)),
                _ => {}
            }
        }
    }

    /// The next event, or a timeout at `deadline`.
    pub async fn next(&mut self, deadline: Instant) -> Result<LinkEvent, CentralError> {
        match tokio::time::timeout_at(deadline, self.events.recv()).await {
            Ok(Some(ev)) => Ok(ev),
            Ok(None) => Err(CentralError::Link("the MQTT link ended".into())),
            Err(_) => Err(CentralError::Timeout(
                "the broker did not answer in time".into(),
            )),
        }
    }

    /// Publishes every message (QoS 1) and returns once the broker acknowledged
    /// all of them. A lost connection sends what was not acknowledged again.
    pub async fn publish_all(
        &mut self,
        msgs: &[(String, Vec<u8>, bool)],
    ) -> Result<(), CentralError> {
        let deadline = Instant::now() + self.timeout + Duration::from_secs(msgs.len() as u64 / 10);
        let mut unacked: BTreeMap<u64, usize> = BTreeMap::new();
        let mut todo: Vec<usize> = (0..msgs.len()).rev().collect();
        while !todo.is_empty() || !unacked.is_empty() {
            while unacked.len() < WINDOW {
                let Some(i) = todo.pop() else { break };
                let (topic, payload, retain) = &msgs[i];
                self.next_tag += 1;
                match self
                    .link
                    .publish(topic, payload.clone(), *retain, Some(self.next_tag))
                {
                    Ok(()) => {
                        unacked.insert(self.next_tag, i);
                    }
                    Err(_) => {
                        todo.push(i);
                        break;
                    }
                }
            }
            let wait = (Instant::now() + Duration::from_millis(50)).min(deadline);
            match self.next(wait).await {
                Ok(LinkEvent::Acked(tag)) => {
                    unacked.remove(&tag);
                }
                Ok(LinkEvent::Disconnected(_)) => {
                    todo.extend(std::mem::take(&mut unacked).into_values())
                }
                Ok(LinkEvent::Message { topic, payload }) => self.inbox.push((topic, payload)),
                Ok(LinkEvent::Connected) => {}
                Err(e) if Instant::now() >= deadline => return Err(e),
                Err(_) => {}
            }
        }
        Ok(())
    }

    /// What is retained on `topics` (filters allowed): subscribes, then sends a
    /// marker to itself; the broker delivers a subscription's retained messages
    /// before anything published after it.
    pub async fn retained(
        &mut self,
        topics: &[String],
    ) -> Result<BTreeMap<String, Bytes>, CentralError> {
        let marker = format!("{}/reply/{}", self.topics.root(), self.client_id);
        let mut subs = topics.to_vec();
        subs.push(marker.clone());
        self.link.subscribe(&subs);
        let token = format!("marker-{:016x}", rand::random::<u64>());
        self.publish_all(&[(marker.clone(), token.clone().into_bytes(), false)])
            .await?;
        let deadline = Instant::now() + self.timeout;
        let mut out = BTreeMap::new();
        let mut pending: Vec<(String, Bytes)> = std::mem::take(&mut self.inbox);
        loop {
            for (topic, payload) in pending.drain(..) {
                if topic == marker && payload.as_ref() == token.as_bytes() {
                    return Ok(out);
                }
                if !payload.is_empty() && topic != marker {
                    out.insert(topic, payload);
                }
            }
            if let LinkEvent::Message { topic, payload } = self.next(deadline).await? {
                pending.push((topic, payload));
            }
        }
    }

    /// Waits for messages until `done` says so or `deadline` passes (then
    /// `Ok(false)`).
    pub async fn watch(
        &mut self,
        deadline: Instant,
        mut done: impl FnMut(&str, &Bytes) -> bool,
    ) -> Result<bool, CentralError> {
        for (topic, payload) in std::mem::take(&mut self.inbox) {
            if done(&topic, &payload) {
                return Ok(true);
            }
        }
        loop {
            match self.next(deadline).await {
                Ok(LinkEvent::Message { topic, payload }) => {
                    if done(&topic, &payload) {
                        return Ok(true);
                    }
                }
                Ok(_) => {}
                Err(CentralError::Timeout(_)) => return Ok(false),
                Err(e) => return Err(e),
            }
        }
    }

    pub fn close(&self) {
        self.link.stop();
    }
}
