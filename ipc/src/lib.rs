//! The protocol between the supervisor and a script worker.
//!
//! Every message is a postcard-encoded enum behind a 4-byte little-endian length. JSON
//! values travel as JSON text inside the frame: postcard cannot carry self-describing
//! values, and JSON is what both ends need anyway (HTTP bodies, function arguments).
//!
//! Requests carry a `req` id chosen by the side that asks; the answer names the same id.
//! The supervisor numbers its requests upwards from 1, the worker its own; the two
//! spaces never mix because each answer type travels only one way.

mod frame;
pub mod lines;
mod messages;
mod service;

pub use frame::{FrameDecoder, FrameError, MAX_FRAME, encode, encode_into};
pub use messages::*;
pub use service::*;

/// Environment variable through which the supervisor names itself to a worker
/// it spawns, so that a worker whose parent is already gone exits instead of
/// running orphaned.
pub const SUPERVISOR_PID_ENV: &str = "VWED_SUPERVISOR_PID";

/// Type stubs of the `VWED` object scripts call these services through, for
/// editors. The file lives beside the Python facade it describes
/// (`modules/python`); it is embedded here so that the supervisor serves it
/// without linking the Python host.
pub const STUBS_PYI: &str = include_str!("../../modules/python/vwed.pyi");
