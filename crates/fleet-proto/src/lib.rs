//! Fleet sync over MQTT, what both sides speak (docs/fleet.md): the signed
//! manifest and its checks, the topic tree, Ed25519 signatures and SHA-256
//! digests, one MQTT connection with its traps handled, and the broker's address,
//! login and TLS client. The device's agent (in `vwed-edge`) and the central
//! command line (`vwed-fleet`) are built on it; it knows neither, nor any
//! database, HTTP server or Python.

pub mod broker;
pub mod crypto;
pub mod link;
pub mod manifest;
pub mod tls;
pub mod topics;

pub use broker::{BrokerAddr, BrokerError, BrokerLogin, check_name, read_secret};
