//! Worker processes: spawning them and talking to them.

mod confine;
mod conn;
mod cpu;
pub mod priority;
mod spawn;
mod usage;

pub use confine::{in_child, prepare};
pub use conn::{Answer, CallError, FrameSink, WorkerConn};
pub use cpu::{clock_ticks_per_s, cpu_ticks};
pub use spawn::{SpawnedWorker, WorkerMode, rss_bytes, spawn_worker};
pub use spawn::{limit_data_segment, prefer_as_oom_victim};
pub use usage::CpuMeter;
