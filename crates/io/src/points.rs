//! Reading and writing named points, for scripts and HTTP alike.

use serde_json::{Value, json};

use super::error::IoOpError;
use super::json::{snapshot_json, to_value};
use super::{IoRuntime, Who};

impl IoRuntime {
    /// Is the caller behind this queue name still around?
    pub(super) fn alive(&self) -> impl Fn(&str) -> bool + '_ {
        let host = self.host.upgrade();
        move |name| name == "http" || host.as_ref().is_some_and(|h| h.is_running(name))
    }

    pub fn points_json(&self) -> Vec<Value> {
        self.io
            .poller()
            .snapshot()
            .iter()
            .map(snapshot_json)
            .collect()
    }

    /// The last polled value, or a live read when asked for (`live`) or when
    /// the table has no good value. With `detail` a bad point is answered with
    /// its quality instead of an error.
    pub async fn read_point(
        &self,
        who: &Who,
        tag: &str,
        live: bool,
        detail: bool,
    ) -> Result<Value, IoOpError> {
        let snap = self
            .io
            .poller()
            .point(tag)
            .ok_or_else(|| IoOpError::UnknownTag(tag.to_string()))?;
        if !live && snap.quality == vwed_hal::Quality::Good {
            return Ok(snapshot_json(&snap));
        }
        let writer = self
            .callers
            .writer(&self.io, &who.queue_name(), self.alive());
        match writer.read(tag).await {
            Ok(v) => {
                let mut j = snapshot_json(&snap);
                j["value"] = json!(v);
                j["quality"] = json!("good");
                j["error"] = Value::Null;
                j["live"] = json!(true);
                Ok(j)
            }
            Err(_) if detail && !live => Ok(snapshot_json(&snap)),
            Err(e) => {
                let e = IoOpError::from(e);
                Err(match e {
                    IoOpError::Hal(h) if !live => IoOpError::BadQuality {
                        tag: tag.to_string(),
                        reason: h.to_string(),
                    },
                    other => other,
                })
            }
        }
    }

    /// Writes a point by tag, refusing read-only points, and records who did.
    pub async fn write_point(&self, who: &Who, tag: &str, value: &Value) -> Result<(), IoOpError> {
        self.audited(who, tag, value, async {
            let spec = self
                .io
                .poller()
                .spec(tag)
                .ok_or_else(|| IoOpError::UnknownTag(tag.to_string()))?;
            // Checked here too so a refused write never creates a bus queue.
            if !spec.writable() {
                return Err(IoOpError::ReadOnly(tag.to_string()));
            }
            let v = to_value(value).ok_or_else(|| {
                IoOpError::BadValue(format!("点位 {tag} 需要布尔值或数字, 得到 {value}"))
            })?;
            let writer = self
                .callers
                .writer(&self.io, &who.queue_name(), self.alive());
            writer.write(tag, v).await.map_err(IoOpError::from)
        })
        .await
    }
}
