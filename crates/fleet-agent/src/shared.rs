//! What an agent's tasks share: its settings, database, stores, host and the
//! link (`Core`, `Ctx`). Apart from the agent's loop, so that the apply, the
//! report and the calls do not import the agent.

use std::sync::Arc;

use tokio::sync::Notify;
use vwed_db::Db;
use vwed_fleet_proto::link::Link;
use vwed_fleet_proto::topics::{Source, Topics};
use vwed_store::ScriptStore;

use super::blobs::{BlobStore, Fetches};
use super::outbox::Stamp;
use super::settings::Settings;

/// The environment variable that makes the runtime SIGKILL itself right after
/// the named apply step (tests of power cuts at every step).
pub const CRASH_AT_ENV: &str = "VWED_FLEET_CRASH_AT";
/// Everything an agent's tasks share.
pub struct Core<H> {
    pub s: Settings,
    pub topics: Topics,
    pub db: Db,
    pub store: ScriptStore,
    pub blobs: BlobStore,
    pub host: H,
    pub fetches: Fetches,
    /// Set: the reported state may have changed, events may be waiting.
    pub changed: Notify,
    /// Random per start: tells a call this run took from one a dead run took.
    pub run_id: u64,
    /// `CRASH_AT_ENV`: the apply step after which to die (tests only).
    pub crash_at: Option<String>,
}

impl<H> Core<H> {
    pub fn stamp(&self) -> Stamp<'_> {
        Stamp {
            device: &self.s.device_id,
            max: self.s.outbox_max_events,
        }
    }

    /// The test hook: a power cut right here, when asked for by name.
    pub fn crash_point(&self, step: &str) {
        if self.crash_at.as_deref() == Some(step) {
            tracing::error!("{CRASH_AT_ENV}={step}: killing the runtime (test hook)");
            // SAFETY: kill(2) of our own process; SIGKILL, like a power cut.
            unsafe {
                libc::kill(libc::getpid(), libc::SIGKILL);
            }
        }
    }

    pub fn source_label(&self, s: &Source) -> String {
        match s {
            Source::Device => "device".into(),
            Source::Group(i) => format!(
                "group:{}",
                self.s.groups.get(*i).map(String::as_str).unwrap_or("?")
            ),
        }
    }

    pub fn source_of(&self, label: &str) -> Option<Source> {
        if label == "device" {
            return Some(Source::Device);
        }
        let g = label.strip_prefix("group:")?;
        self.s.groups.iter().position(|x| x == g).map(Source::Group)
    }
}

/// An agent's shared state and its link: what its tasks run with.
pub struct Ctx<H> {
    pub core: Arc<Core<H>>,
    pub link: Link,
}

impl<H> Clone for Ctx<H> {
    fn clone(&self) -> Self {
        Ctx {
            core: self.core.clone(),
            link: self.link.clone(),
        }
    }
}
