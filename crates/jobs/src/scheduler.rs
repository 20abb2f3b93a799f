//! Which executions run now: at most `job_max_concurrent` at once, and only while
//! service scripts and jobs together stay under `max_running_scripts`; the rest
//! wait in a bounded queue (a full queue refuses). A retry waits out its backoff
//! outside the queue and then goes to its front.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};
use vwed_base::sync::Locked;

use tokio::sync::watch;

use super::capture::Capture;

/// Who asked for a cancel when the runtime itself stops the run (shutdown): the
/// attempt counts as interrupted, as after a power cut.
pub const SHUTDOWN: &str = "\u{0}shutdown";

pub struct Slot {
    pub cancel: watch::Sender<Option<String>>,
    /// The running attempt's output, for a live look at the execution.
    pub capture: Option<Arc<Capture>>,
}

#[derive(Default)]
struct State {
    queue: VecDeque<String>,
    running: HashMap<String, Slot>,
    /// Retries waiting for their backoff to pass.
    backoff: HashMap<String, tokio::task::AbortHandle>,
    peak: usize,
    stopping: bool,
}

/// Why a new execution was not queued.
#[derive(Debug, PartialEq, Eq)]
pub enum Refusal {
    /// The queue holds this many already.
    Full(usize),
    Stopping,
}

/// Where a cancelled execution was.
#[derive(Debug, PartialEq, Eq)]
pub enum Found {
    Queued,
    Running,
    Backoff,
    Nowhere,
}

#[derive(Default)]
pub struct Scheduler {
    state: Mutex<State>,
}

/// Figures for the statistics.
pub struct Counts {
    pub queued: usize,
    pub running: usize,
    pub waiting_retry: usize,
    pub peak: usize,
}

impl Scheduler {
    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.locked()
    }

    /// Queues a new execution, unless the queue is full or the runtime stops.
    pub fn admit(&self, id: &str, cap: usize) -> Result<(), Refusal> {
        let mut s = self.state();
        if s.stopping {
            return Err(Refusal::Stopping);
        }
        if s.queue.len() >= cap {
            return Err(Refusal::Full(s.queue.len()));
        }
        s.queue.push_back(id.to_string());
        Ok(())
    }

    /// Queues an execution that was admitted before (a retry, or one that waited
    /// over a restart): never refused.
    pub fn readmit(&self, id: &str, front: bool) {
        let mut s = self.state();
        s.backoff.remove(id);
        if s.stopping || s.queue.iter().any(|q| q == id) || s.running.contains_key(id) {
            return;
        }
        if front {
            s.queue.push_front(id.to_string());
        } else {
            s.queue.push_back(id.to_string());
        }
    }

    pub fn hold_backoff(&self, id: &str, wait: tokio::task::AbortHandle) {
        self.state().backoff.insert(id.to_string(), wait);
    }

    /// Takes queued executions that may start now, each with its cancel switch.
    /// `others` are the workers service scripts use; `total` bounds both.
    pub fn take_ready(
        &self,
        limit: usize,
        others: usize,
        total: usize,
    ) -> Vec<(String, watch::Receiver<Option<String>>)> {
        let mut s = self.state();
        let mut out = Vec::new();
        while !s.stopping && s.running.len() < limit && s.running.len() + others < total {
            let Some(id) = s.queue.pop_front() else { break };
            let (tx, rx) = watch::channel(None);
            s.running.insert(
                id.clone(),
                Slot {
                    cancel: tx,
                    capture: None,
                },
            );
            s.peak = s.peak.max(s.running.len());
            out.push((id, rx));
        }
        out
    }

    /// Whether anything waits that the budget of service scripts holds back.
    pub fn has_queued(&self) -> bool {
        !self.state().queue.is_empty()
    }

    pub fn set_capture(&self, id: &str, capture: Arc<Capture>) {
        if let Some(slot) = self.state().running.get_mut(id) {
            slot.capture = Some(capture);
        }
    }

    pub fn capture(&self, id: &str) -> Option<Arc<Capture>> {
        self.state().running.get(id).and_then(|s| s.capture.clone())
    }

    pub fn done(&self, id: &str) {
        self.state().running.remove(id);
    }

    /// Takes a queued or waiting execution out, or tells a running one to stop.
    pub fn cancel(&self, id: &str, by: &str) -> Found {
        let mut s = self.state();
        if let Some(k) = s.queue.iter().position(|q| q == id) {
            s.queue.remove(k);
            return Found::Queued;
        }
        if let Some(wait) = s.backoff.remove(id) {
            wait.abort();
            return Found::Backoff;
        }
        match s.running.get(id) {
            Some(slot) => {
                slot.cancel.send_replace(Some(by.to_string()));
                Found::Running
            }
            None => Found::Nowhere,
        }
    }

    /// Stops taking work and tells every running execution to stop; they record
    /// themselves as interrupted.
    pub fn stop(&self) -> usize {
        let mut s = self.state();
        s.stopping = true;
        s.queue.clear();
        for (_, w) in s.backoff.drain() {
            w.abort();
        }
        for slot in s.running.values() {
            slot.cancel.send_replace(Some(SHUTDOWN.to_string()));
        }
        s.running.len()
    }

    pub fn running(&self) -> usize {
        self.state().running.len()
    }

    pub fn counts(&self) -> Counts {
        let s = self.state();
        Counts {
            queued: s.queue.len(),
            running: s.running.len(),
            waiting_retry: s.backoff.len(),
            peak: s.peak,
        }
    }
}
