//! JSON shapes of point values, changes and snapshots, shared by events, the
//! HTTP API and the WebSocket stream so a script and a UI see the same thing.

use std::time::{SystemTime, UNIX_EPOCH};

use serde_json::{Value, json};
use vwed_hal::{Change, PointSnapshot, Quality};

/// Milliseconds since the Unix epoch (0 for times before it).
pub fn unix_ms(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH)
        .map(|d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
        .unwrap_or(0)
}

/// ISO-8601 UTC with milliseconds.
pub fn iso(t: SystemTime) -> String {
    vwed_base::clock::iso_utc(unix_ms(t))
}

fn opt_time(t: Option<SystemTime>) -> Value {
    t.map_or(Value::Null, |t| json!(iso(t)))
}

pub fn quality_str(q: Quality) -> &'static str {
    match q {
        Quality::Good => "good",
        Quality::Bad => "bad",
    }
}

/// The event data of `io.<tag>`.
pub fn change_json(c: &Change) -> Value {
    json!({
        "tag": &*c.tag,
        "value": c.value,
        "previous": c.previous,
        "quality": quality_str(c.quality),
        "timestamp": iso(c.timestamp),
        "ts_ms": unix_ms(c.timestamp),
        "error": c.error,
        "seq": c.seq,
    })
}

pub fn snapshot_json(s: &PointSnapshot) -> Value {
    json!({
        "tag": s.tag,
        "value": s.value,
        "quality": quality_str(s.quality),
        "error": s.error,
        "last_change": opt_time(s.last_change),
        "last_read": opt_time(s.last_read),
        "writable": s.writable,
    })
}

/// A point as `/api/io/points` lists it; serialized straight to bytes, since a
/// `serde_json::Value` tree of 10,000 points costs tens of megabytes that the
/// allocator keeps afterwards.
#[derive(serde::Serialize)]
struct PointOut<'a> {
    tag: &'a str,
    value: Option<vwed_hal::Value>,
    quality: &'static str,
    error: Option<&'a str>,
    last_change: Option<String>,
    last_read: Option<String>,
    writable: bool,
}

/// The `{"success": true, "data": [...]}` answer listing `snaps`.
pub fn points_envelope(snaps: &[PointSnapshot]) -> Vec<u8> {
    #[derive(serde::Serialize)]
    struct Envelope<'a> {
        success: bool,
        data: Vec<PointOut<'a>>,
    }
    let data = snaps
        .iter()
        .map(|s| PointOut {
            tag: &s.tag,
            value: s.value,
            quality: quality_str(s.quality),
            error: s.error.as_deref(),
            last_change: s.last_change.map(iso),
            last_read: s.last_read.map(iso),
            writable: s.writable,
        })
        .collect();
    serde_json::to_vec(&Envelope {
        success: true,
        data,
    })
    .unwrap_or_else(|_| b"{\"success\":false,\"error\":\"serialization failed\"}".to_vec())
}

/// A JSON value as a point value: booleans, integers and floats only.
pub fn to_value(v: &Value) -> Option<vwed_hal::Value> {
    match v {
        Value::Bool(b) => Some(vwed_hal::Value::Bool(*b)),
        Value::Number(n) => n
            .as_i64()
            .map(vwed_hal::Value::Int)
            .or_else(|| n.as_u64().map(vwed_hal::Value::UInt))
            .or_else(|| n.as_f64().map(vwed_hal::Value::Float)),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_values_map_to_point_values() {
        assert_eq!(to_value(&json!(true)), Some(vwed_hal::Value::Bool(true)));
        assert_eq!(to_value(&json!(-3)), Some(vwed_hal::Value::Int(-3)));
        assert_eq!(
            to_value(&json!(u64::MAX)),
            Some(vwed_hal::Value::UInt(u64::MAX))
        );
        assert_eq!(to_value(&json!(1.5)), Some(vwed_hal::Value::Float(1.5)));
        assert_eq!(to_value(&json!("1")), None);
        assert_eq!(to_value(&Value::Null), None);
    }

    #[test]
    fn points_envelope_matches_snapshot_json() {
        let snap = PointSnapshot {
            tag: "t".into(),
            value: Some(vwed_hal::Value::Float(1.5)),
            quality: Quality::Bad,
            error: Some("down".into()),
            last_change: Some(UNIX_EPOCH),
            last_read: None,
            writable: false,
        };
        let v: Value =
            serde_json::from_slice(&points_envelope(std::slice::from_ref(&snap))).expect("json");
        assert_eq!(v, json!({"success": true, "data": [snapshot_json(&snap)]}));
    }

    #[test]
    fn change_has_the_documented_fields() {
        let c = Change {
            seq: 7,
            tag: "a.b".into(),
            value: Some(vwed_hal::Value::UInt(3)),
            previous: None,
            quality: Quality::Good,
            timestamp: UNIX_EPOCH + std::time::Duration::from_millis(1_500),
            error: None,
        };
        let j = change_json(&c);
        assert_eq!(j["tag"], "a.b");
        assert_eq!(j["value"], 3);
        assert_eq!(j["previous"], Value::Null);
        assert_eq!(j["quality"], "good");
        assert_eq!(j["timestamp"], "1970-01-01T00:00:01.500Z");
        assert_eq!(j["ts_ms"], 1500);
    }
}
