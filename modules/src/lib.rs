//! The Python-facing side of VWED Edge.
//!
//! Only this crate touches Python, and only inside a worker process: the supervisor
//! starts `vwed-edge worker`, which calls [`worker::run`]. The `VWED` object itself is
//! written in Python (`python/vwed_runtime.py`) on top of the native `_vwed` module,
//! which owns the socket to the supervisor.

mod channel;
mod convert;
mod native;
pub mod sandbox;
pub mod worker;

/// The Python half of the worker, compiled into the binary.
pub const RUNTIME_PY: &str = include_str!("../python/vwed_runtime.py");

/// Type stubs for the `VWED` object, for editors.
pub const STUBS_PYI: &str = include_str!("../python/vwed.pyi");
