//! One worker started ahead of need. Its interpreter is up and the runtime module
//! is loaded, so a start only has to run the script: the interpreter's start-up
//! (tens of milliseconds on a controller) is paid while nobody waits.

use std::sync::Arc;
use vwed_base::sync::Locked;

use super::Engine;
use crate::worker::{SpawnedWorker, WorkerMode, spawn_worker};

impl Engine {
    /// A worker for a new script: the spare if it is still alive, else a fresh one.
    /// The caller refills the spare once its start is over, so that the new spare's
    /// interpreter start-up does not compete with this boot.
    pub(super) fn take_worker(self: &Arc<Self>) -> std::io::Result<SpawnedWorker> {
        let spare = self.spare.locked().take();
        let alive = spare.and_then(|mut w| matches!(w.child.try_wait(), Ok(None)).then_some(w));
        let worker = match alive {
            Some(w) => w,
            None => spawn_worker(
                &self.exe,
                WorkerMode::Script,
                self.lock.as_ref(),
                self.cfg.engine.worker_memory_limit(),
            )?,
        };
        Ok(worker)
    }

    /// Starts a new spare in the background, unless disabled or shutting down.
    pub fn refill_spare(self: &Arc<Self>) {
        if !self.cfg.engine.spare_worker || self.is_shutting_down() {
            return;
        }
        let engine = Arc::downgrade(self);
        tokio::spawn(async move {
            let Some(e) = engine.upgrade() else { return };
            if e.is_shutting_down() {
                return;
            }
            match spawn_worker(
                &e.exe,
                WorkerMode::Script,
                e.lock.as_ref(),
                e.cfg.engine.worker_memory_limit(),
            ) {
                // A spare replaced here is killed on drop.
                Ok(w) => drop(e.spare.locked().replace(w)),
                Err(err) => tracing::warn!("cannot start a spare worker: {err}"),
            }
        });
    }

    pub(super) fn drop_spare(&self) {
        drop(self.spare.locked().take());
    }
}

impl Engine {
    /// A worker that has run nothing yet, for a one-shot job. Never the spare: a
    /// script start is waiting for that one.
    pub fn fresh_worker(&self) -> std::io::Result<SpawnedWorker> {
        spawn_worker(
            &self.exe,
            WorkerMode::Script,
            self.lock.as_ref(),
            self.cfg.engine.worker_memory_limit(),
        )
    }
}
