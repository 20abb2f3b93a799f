//! Time and the API's two time formats, in one place: records use local
//! wall-clock time as the seed shows (`2025-09-11T12:00:00`); WebSocket
//! messages, logs and the audit use UTC with milliseconds and `Z`
//! (`2025-09-11T12:00:00.000Z`).

use std::time::{SystemTime, UNIX_EPOCH};

use chrono::TimeZone;

const LOCAL: &str = "%Y-%m-%dT%H:%M:%S";
const LOCAL_MS: &str = "%Y-%m-%dT%H:%M:%S%.3f";
const UTC: &str = "%Y-%m-%dT%H:%M:%S%.3fZ";

pub fn unix_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

/// Now, as local wall-clock time in the records' format.
pub fn local_now() -> String {
    chrono::Local::now().format(LOCAL).to_string()
}

/// Now, in UTC with milliseconds.
pub fn utc_now() -> String {
    chrono::Utc::now().format(UTC).to_string()
}

/// `unix_ms` as local wall-clock time, in the records' format; None for a
/// time chrono cannot represent.
pub fn local_at(unix_ms: u64) -> Option<String> {
    let ms = i64::try_from(unix_ms).ok()?;
    chrono::Local
        .timestamp_millis_opt(ms)
        .single()
        .map(|t| t.format(LOCAL).to_string())
}

/// `unix_ms` as local wall-clock time with milliseconds (warehouse location
/// records); None for a time chrono cannot represent.
pub fn local_ms_at(unix_ms: u64) -> Option<String> {
    let ms = i64::try_from(unix_ms).ok()?;
    chrono::Local
        .timestamp_millis_opt(ms)
        .single()
        .map(|t| t.format(LOCAL_MS).to_string())
}

/// `unix_ms` in UTC with milliseconds; empty for a time chrono cannot represent.
pub fn iso_utc(unix_ms: u64) -> String {
    i64::try_from(unix_ms)
        .ok()
        .and_then(chrono::DateTime::from_timestamp_millis)
        .map(|t| t.format(UTC).to_string())
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn utc_has_milliseconds_and_z() {
        assert_eq!(iso_utc(1_726_059_000_123), "2024-09-11T12:50:00.123Z");
        assert_eq!(iso_utc(u64::MAX), "");
    }

    #[test]
    fn local_is_the_records_format() {
        let s = local_at(1_726_059_000_123).expect("representable");
        assert_eq!(s.len(), "2025-09-11T12:00:00".len());
        assert!(local_at(u64::MAX).is_none());
    }
}
