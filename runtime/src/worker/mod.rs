//! Worker processes: spawning them and talking to them.

mod confine;
mod conn;
mod cpu;
mod spawn;

pub use conn::{Answer, CallError, FrameSink, WorkerConn};
pub use cpu::{clock_ticks_per_s, cpu_ticks};
pub use spawn::{SpawnedWorker, WorkerMode, rss_bytes, spawn_worker};
