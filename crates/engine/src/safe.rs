//! Restoring at start, or holding the scripts back in safe mode (see
//! `crate::safe_mode`), and leaving safe mode.

use std::sync::Arc;
use std::time::Duration;

use super::Engine;
use crate::safe_mode::Plan;

impl Engine {
    /// Starts again the scripts that ran before, unless the runtime starts in
    /// safe mode; then they are listed as held.
    pub async fn restore_at_start(self: &Arc<Self>) {
        let paths = self.running_paths();
        match self
            .safe_mode
            .decide(&self.cfg.supervision, self.cfg.safe_start)
        {
            Plan::Hold(reason) => {
                tracing::warn!(
                    "safe mode: {reason}; not restored: {}",
                    if paths.is_empty() {
                        "none".to_string()
                    } else {
                        paths.join(", ")
                    }
                );
                self.safe_mode.hold(reason, paths);
            }
            Plan::Restore if paths.is_empty() || !self.cfg.engine.restore_on_start => {}
            Plan::Restore => self.restore_watched().await,
        }
    }

    /// Restores with the marker set, cleared once the runtime has run long enough.
    async fn restore_watched(self: &Arc<Self>) {
        self.safe_mode.begin_restore();
        self.restore().await;
        let engine = Arc::downgrade(self);
        let stable = Duration::from_secs(self.cfg.supervision.stable_after_s);
        tokio::spawn(async move {
            tokio::time::sleep(stable).await;
            if let Some(e) = engine.upgrade()
                && !e.is_shutting_down()
            {
                e.safe_mode.settled();
            }
        });
    }

    /// Leaves safe mode: restores the held scripts, or forgets them (they leave
    /// the running set). `None` when not in safe mode.
    pub async fn leave_safe_mode(self: &Arc<Self>, restore: bool) -> Option<Vec<String>> {
        let held = self.safe_mode.leave()?;
        tracing::info!(
            "leaving safe mode ({})",
            if restore { "restoring" } else { "forgetting" }
        );
        if restore {
            self.restore_watched().await;
        } else {
            let set = self.running_set.clone();
            let paths = held.scripts.clone();
            let _ = tokio::task::spawn_blocking(move || {
                for p in &paths {
                    let _ = set.remove(p);
                }
            })
            .await;
        }
        Some(held.scripts)
    }

    fn running_paths(&self) -> Vec<String> {
        match self.running_set.all() {
            Ok(all) => all.into_iter().map(|(p, _)| p).collect(),
            Err(e) => {
                tracing::error!("cannot read the set of running scripts: {e}");
                Vec::new()
            }
        }
    }
}
