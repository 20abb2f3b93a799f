//! Time formats of the API: records use local wall-clock time as the seed shows
//! (`2025-09-11T12:00:00`); WebSocket messages use UTC with `Z`.

use std::time::{SystemTime, UNIX_EPOCH};

pub fn local_now() -> String {
    chrono::Local::now().format("%Y-%m-%dT%H:%M:%S").to_string()
}

pub fn utc_now() -> String {
    chrono::Utc::now()
        .format("%Y-%m-%dT%H:%M:%S%.3fZ")
        .to_string()
}

pub fn unix_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

/// `unix_ms` as local wall-clock time, in the records' format.
pub fn local_at(unix_ms: u64) -> String {
    match chrono::DateTime::from_timestamp_millis(i64::try_from(unix_ms).unwrap_or(i64::MAX)) {
        Some(t) => t
            .with_timezone(&chrono::Local)
            .format("%Y-%m-%dT%H:%M:%S")
            .to_string(),
        None => String::new(),
    }
}
