//! Supervisor/worker protocol.
