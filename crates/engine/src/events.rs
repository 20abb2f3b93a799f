//! `VWED.event`: emit from any script (or the central server, or the runtime itself)
//! to listeners in every running script.
//!
//! Each listener has a bounded queue and one delivery task, so one slow listener
//! delays only itself and its overflow is counted, not hidden. Listeners of one event
//! run in priority order (lower first): a listener waits for this event's
//! lower-priority tiers to finish before it gets the event, while different events
//! flow through each listener back to back (pipelined, in emit order).

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;
use vwed_base::sync::Locked;

use serde_json::Value;
use tokio::sync::{Semaphore, mpsc, watch};
use vwed_ipc::{Level, ToWorker};

use super::{Engine, ListenerEntry};
use crate::worker::{Answer, CallError};

/// Deliveries a listener may have in flight at once (sent, not yet finished).
const PIPELINE: usize = 256;

/// Orders one event's listeners by priority tier.
pub struct Gate {
    remaining: Vec<AtomicUsize>,
    tier: watch::Sender<usize>,
}

impl Gate {
    fn new(tier_sizes: &[usize]) -> Gate {
        Gate {
            remaining: tier_sizes.iter().map(|n| AtomicUsize::new(*n)).collect(),
            tier: watch::channel(0).0,
        }
    }

    async fn wait(&self, tier: usize) {
        let mut rx = self.tier.subscribe();
        let _ = rx.wait_for(|t| *t >= tier).await;
    }

    /// One listener of `tier` is done; opens the next tier when it was the last.
    fn done(&self, tier: usize) {
        if self.remaining[tier].fetch_sub(1, Ordering::AcqRel) != 1 {
            return;
        }
        self.tier.send_modify(|current| {
            while *current < self.remaining.len()
                && self.remaining[*current].load(Ordering::Acquire) == 0
            {
                *current += 1;
            }
        });
    }
}

pub struct Delivery {
    name: Arc<str>,
    data: Arc<str>,
    gate: Option<(Arc<Gate>, usize)>,
}

impl Delivery {
    fn finish(&self) {
        if let Some((g, t)) = &self.gate {
            g.done(*t);
        }
    }
}

/// The sending end of a listener's queue, plus its receiving end until the
/// delivery task takes it.
pub struct ListenerQueue {
    tx: mpsc::Sender<Delivery>,
    rx: Mutex<Option<mpsc::Receiver<Delivery>>>,
}

impl ListenerQueue {
    pub fn new(len: usize) -> ListenerQueue {
        let (tx, rx) = mpsc::channel(len);
        ListenerQueue {
            tx,
            rx: Mutex::new(Some(rx)),
        }
    }
}

/// Starts the delivery task of a freshly prepared listener. It ends by itself when
/// the registration is dropped (stop, crash, withdrawal).
pub fn spawn_listener(entry: &Arc<ListenerEntry>, timeout: Duration) {
    let Some(rx) = entry.queue.rx.locked().take() else {
        return;
    };
    tokio::spawn(deliver(Arc::downgrade(entry), rx, timeout));
}

async fn deliver(entry: Weak<ListenerEntry>, mut rx: mpsc::Receiver<Delivery>, timeout: Duration) {
    let window = Arc::new(Semaphore::new(PIPELINE));
    while let Some(d) = rx.recv().await {
        if let Some((gate, tier)) = &d.gate {
            gate.wait(*tier).await;
        }
        let Some(e) = entry.upgrade() else {
            d.finish();
            // Drain so that every gate waiting on this listener opens.
            while let Ok(d) = rx.try_recv() {
                d.finish();
            }
            return;
        };
        let Ok(permit) = window.clone().acquire_owned().await else {
            d.finish();
            continue;
        };
        let conn = e.target.conn.clone();
        let req = conn.next_req();
        let msg = ToWorker::Event {
            req,
            handlers: vec![e.target.handler],
            name: d.name.to_string(),
            data: d.data.to_string(),
        };
        let t0 = std::time::Instant::now();
        // Sent here, in queue order; only the wait runs concurrently.
        let sent = conn.send_request(req, &msg);
        drop(e);
        let weak = entry.clone();
        tokio::spawn(async move {
            let ok = match sent {
                Ok(rx) => matches!(
                    conn.wait_answer(req, rx, timeout).await,
                    Ok(Answer::Done(Ok(())))
                ),
                Err(CallError::Gone) | Err(_) => false,
            };
            if let Some(e) = weak.upgrade() {
                e.stats.record(ok, t0.elapsed().as_micros() as u64);
            }
            d.finish();
            drop(permit);
        });
    }
}

/// Sees every event the engine emits, before its listeners do (the jobs'
/// event triggers); must never wait.
pub trait EventTap: Send + Sync {
    fn on_event(&self, name: &str, data: &Value);
}

impl Engine {
    /// Emits an event to every listener; returns how many got it queued. Never
    /// waits: a full listener queue drops this event for that listener and counts it.
    pub fn emit(&self, name: &str, data: &Value) -> usize {
        if let Some(tap) = self.event_tap.get() {
            tap.on_event(name, data);
        }
        let listeners = self.registry.listeners(name);
        if listeners.is_empty() {
            return 0;
        }
        let name: Arc<str> = Arc::from(name);
        let data: Arc<str> = Arc::from(data.to_string());
        // Tiers of equal priority, in the registry's (priority, registration) order.
        let mut tiers: Vec<usize> = Vec::new();
        let mut tier_of = Vec::with_capacity(listeners.len());
        let mut last = None;
        for l in &listeners {
            if last != Some(l.priority) {
                tiers.push(0);
                last = Some(l.priority);
            }
            let t = tiers.len() - 1;
            tiers[t] += 1;
            tier_of.push(t);
        }
        let gate = (tiers.len() > 1).then(|| Arc::new(Gate::new(&tiers)));
        let mut queued = 0;
        for (l, tier) in listeners.iter().zip(tier_of) {
            let d = Delivery {
                name: name.clone(),
                data: data.clone(),
                gate: gate.clone().map(|g| (g, tier)),
            };
            match l.queue.tx.try_send(d) {
                Ok(()) => queued += 1,
                Err(e) => {
                    let d = match e {
                        mpsc::error::TrySendError::Full(d)
                        | mpsc::error::TrySendError::Closed(d) => d,
                    };
                    d.finish();
                    let n = l.dropped.fetch_add(1, Ordering::Relaxed) + 1;
                    // One line per power of two keeps a flood visible but bounded.
                    if n.is_power_of_two() {
                        if let Some(inst) = self.instance(&l.target.script_id) {
                            inst.note(
                                Level::Warning,
                                format!("事件 {name} 的监听器队列已满, 已丢弃 {n} 个事件"),
                            );
                        }
                        tracing::warn!(
                            "listener queue of {} for {name} full: {n} dropped",
                            l.target.script_id
                        );
                    }
                }
            }
        }
        queued
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn gate_opens_tiers_in_order() {
        let g = Arc::new(Gate::new(&[2, 1]));
        let g2 = g.clone();
        let waiter = tokio::spawn(async move { g2.wait(1).await });
        tokio::task::yield_now().await;
        assert!(!waiter.is_finished());
        g.done(0);
        tokio::task::yield_now().await;
        assert!(!waiter.is_finished(), "tier 1 must wait for both of tier 0");
        g.done(0);
        tokio::time::timeout(Duration::from_secs(1), waiter)
            .await
            .expect("opened")
            .expect("joined");
    }
}
