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
