//! Safe mode: a runtime that keeps dying soon after restoring scripts starts
//! without restoring them, so that a script that brings the runtime down cannot
//! hold it in a crash loop.
//!
//! A marker file in the data dir says "restoring since <time>": written before
//! scripts are restored, cleared once the runtime has run `stable_after_s` after
//! the restore (or shuts down cleanly). A start that finds the marker still there
//! follows an unclean end soon after a restore; `safe_mode_after` such starts in
//! a row, or `serve --safe`, start in safe mode: the scripts that were running
//! stay in the running set, are listed as held, and are not started until
//! someone starts them or leaves safe mode.

use std::path::{Path, PathBuf};
use std::sync::Mutex;
use vwed_base::sync::Locked;

use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use crate::supervision::SupervisionSettings;
use vwed_base::fsio::{self, Dir, FsError};

const MARKER_FILE: &str = "restore-marker.json";

#[derive(Debug, Default, Serialize, Deserialize)]
struct Marker {
    /// Set while a restore has not yet proven stable.
    restoring_since: Option<String>,
    /// Starts in a row that found the marker set.
    unclean_starts: u32,
}

/// What a start does with the scripts that were running.
#[derive(Debug, PartialEq, Eq)]
pub enum Plan {
    Restore,
    /// Safe mode, and why.
    Hold(String),
}

/// Safe mode as it stands: why, since when, and the scripts not restored.
#[derive(Debug, Clone)]
pub struct Held {
    pub since: String,
    pub reason: String,
    pub scripts: Vec<String>,
}

pub struct SafeMode {
    data_dir: PathBuf,
    held: Mutex<Option<Held>>,
}

impl SafeMode {
    pub fn new(data_dir: &Path) -> SafeMode {
        SafeMode {
            data_dir: data_dir.to_path_buf(),
            held: Mutex::new(None),
        }
    }

    /// The data dir, whose path the runtime trusts (it is in its settings).
    fn dir(&self) -> Result<Dir, FsError> {
        Dir::open(&self.data_dir).map_err(|source| FsError::Io {
            path: self.data_dir.display().to_string(),
            source,
        })
    }

    fn read(&self) -> Marker {
        self.dir()
            .and_then(|d| d.read(MARKER_FILE))
            .ok()
            .and_then(|b| serde_json::from_slice(&b).ok())
            .unwrap_or_default()
    }

    fn write(&self, m: &Marker) {
        let bytes = serde_json::to_vec(m).unwrap_or_default();
        if let Err(e) = self.dir().and_then(|d| d.write_atomic(MARKER_FILE, &bytes)) {
            tracing::error!("cannot write {MARKER_FILE}: {e}");
        }
    }

    /// Removes what a write of the marker cut short by a kill left.
    fn remove_temporaries(&self) {
        let prefix = format!(".{MARKER_FILE}.tmp-");
        let ours = |n: &str| fsio::is_temporary(n) && n.starts_with(&prefix);
        if let Err(e) = self.dir().and_then(|d| d.remove_where(ours)) {
            tracing::warn!("cannot remove temporary files of {MARKER_FILE}: {e}");
        }
    }

    /// At start, from what the previous run left: restore, or hold in safe mode.
    pub fn decide(&self, s: &SupervisionSettings, forced: bool) -> Plan {
        self.remove_temporaries();
        let before = self.read();
        let unclean = match before.restoring_since {
            Some(_) => before.unclean_starts.saturating_add(1),
            None => 0,
        };
        self.write(&Marker {
            restoring_since: None,
            unclean_starts: unclean,
        });
        if forced {
            return Plan::Hold("按要求以安全模式启动 (serve --safe)".into());
        }
        if s.safe_mode_after > 0 && unclean >= s.safe_mode_after {
            return Plan::Hold(format!(
                "运行时已连续 {unclean} 次在恢复脚本后 {} 秒内异常退出 (最近一次恢复始于 {}), 本次不恢复脚本",
                s.stable_after_s,
                before.restoring_since.unwrap_or_default()
            ));
        }
        Plan::Restore
    }

    /// Scripts are about to be restored.
    pub fn begin_restore(&self) {
        let mut m = self.read();
        m.restoring_since = Some(vwed_base::clock::local_now());
        self.write(&m);
    }

    /// The runtime ran long enough after restoring, or stops cleanly.
    pub fn settled(&self) {
        if self.read().restoring_since.is_some() {
            self.write(&Marker::default());
        }
    }

    pub fn hold(&self, reason: String, scripts: Vec<String>) {
        *self.lock() = Some(Held {
            since: vwed_base::clock::local_now(),
            reason,
            scripts,
        });
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Option<Held>> {
        self.held.locked()
    }

    pub fn held(&self) -> Option<Held> {
        self.lock().clone()
    }

    /// Leaves safe mode; what was held.
    pub fn leave(&self) -> Option<Held> {
        self.lock().take()
    }

    /// Someone started a held script: it is no longer held, and once none is,
    /// safe mode ends by itself unless it was asked for by hand.
    pub fn started(&self, script_path: &str) {
        let mut held = self.lock();
        if let Some(h) = held.as_mut() {
            let before = h.scripts.len();
            h.scripts.retain(|p| p != script_path);
            if before > 0 && h.scripts.is_empty() {
                *held = None;
            }
        }
    }

    /// `safe_mode`, and when on, why and what is held: for `/health` and the
    /// running list.
    pub fn to_json(&self) -> Value {
        match self.held() {
            None => json!({"safe_mode": false}),
            Some(h) => json!({
                "safe_mode": true,
                "safe_mode_reason": h.reason,
                "safe_mode_since": h.since,
                "held_scripts": h.scripts,
            }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings(after: u32) -> SupervisionSettings {
        SupervisionSettings {
            safe_mode_after: after,
            ..SupervisionSettings::default()
        }
    }

    #[test]
    fn starts_that_each_follow_a_death_soon_after_restore_lead_to_safe_mode() {
        let dir = std::env::temp_dir().join(format!("vwed-safe-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("dir");
        let s = settings(2);
        let sm = SafeMode::new(&dir);
        assert_eq!(sm.decide(&s, false), Plan::Restore);
        sm.begin_restore();
        // Died: the next start finds the marker.
        let sm = SafeMode::new(&dir);
        assert_eq!(sm.decide(&s, false), Plan::Restore);
        sm.begin_restore();
        let sm = SafeMode::new(&dir);
        assert!(matches!(sm.decide(&s, false), Plan::Hold(r) if r.contains("连续 2 次")));
        // Held, the runtime is stopped cleanly (never restored): back to normal.
        let sm = SafeMode::new(&dir);
        assert_eq!(sm.decide(&s, false), Plan::Restore);
        sm.begin_restore();
        sm.settled();
        let sm = SafeMode::new(&dir);
        assert_eq!(sm.decide(&s, false), Plan::Restore);
        assert!(matches!(sm.decide(&s, true), Plan::Hold(_)));
        assert_eq!(settings(0).safe_mode_after, 0);
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn starting_every_held_script_ends_safe_mode() {
        let sm = SafeMode::new(Path::new("/nonexistent"));
        sm.hold("x".into(), vec!["p/a.py".into(), "p/b.py".into()]);
        sm.started("p/a.py");
        assert_eq!(sm.to_json()["held_scripts"], json!(["p/b.py"]));
        sm.started("p/b.py");
        assert_eq!(sm.to_json(), json!({"safe_mode": false}));
        sm.hold("by hand".into(), vec![]);
        sm.started("p/c.py");
        assert_eq!(sm.to_json()["safe_mode"], json!(true));
    }
}
