//! Worker processes: spawning them and talking to them.

mod confine;
mod conn;
mod spawn;

pub use conn::{Answer, CallError, FrameSink, WorkerConn};
pub use spawn::{SpawnedWorker, WorkerMode, rss_bytes, spawn_worker};
