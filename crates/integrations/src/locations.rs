//! Warehouse locations (库位) for `VWED.storage`: seeded by the operator or the
//! central server, locked by tasks. A lock is one redb write transaction that reads
//! and sets the holder, and redb runs write transactions one at a time, so two
//! scripts racing for one location cannot both win.

use redb::{ReadableDatabase, ReadableTable, ReadableTableMetadata};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use vwed_db::{self as db, Db, DbError, LOCATIONS};

pub const MAX_CODE_BYTES: usize = 128;
pub const MAX_TEXT_BYTES: usize = 256;
pub const MAX_ATTRIBUTES_BYTES: usize = 64 * 1024;
pub const MAX_LOCATIONS: u64 = 50_000;
/// Locations one seeding request may carry.
pub const MAX_BATCH: usize = 5_000;

#[derive(Debug, thiserror::Error)]
pub enum LocationError {
    #[error(transparent)]
    Db(#[from] DbError),
    #[error("库位编码不能为空, 不能超过 {MAX_CODE_BYTES} 字节, 且不能包含控制字符")]
    BadCode,
    #[error("task_id 不能为空, 且不能超过 {MAX_CODE_BYTES} 字节")]
    BadTaskId,
    #[error("{0} 过长 (上限 {MAX_TEXT_BYTES} 字节)")]
    TextTooLong(&'static str),
    #[error("库位 {0} 的 attributes 过大或不是 JSON 对象 (上限 {MAX_ATTRIBUTES_BYTES} 字节)")]
    BadAttributes(String),
    #[error("库位 {0} 不存在")]
    NotFound(String),
    #[error("库位数量已达上限 {MAX_LOCATIONS}")]
    TooMany,
    #[error("一次最多提交 {MAX_BATCH} 个库位")]
    BatchTooLarge,
    #[error("库位 {code} 被任务 {holder} 锁定, 任务 {by} 不能释放 (需要强制释放请传 force=True)")]
    NotHolder {
        code: String,
        holder: String,
        by: String,
    },
}

vwed_db::from_redb_errors!(LocationError);

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
struct LockRec {
    task_id: String,
    locked_at_ms: u64,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct LocationRec {
    name: String,
    area: String,
    attributes_json: String,
    lock: Option<LockRec>,
    updated_at_ms: u64,
}

/// One location as the operator describes it; absent fields keep their value.
#[derive(Debug, Clone, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct LocationSpec {
    pub location_code: String,
    #[serde(default)]
    pub name: Option<String>,
    #[serde(default)]
    pub area: Option<String>,
    #[serde(default)]
    pub attributes: Option<Value>,
}

/// How a lock attempt ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LockOutcome {
    Locked,
    AlreadyHeld,
    HeldByOther { task_id: String },
}

fn check_code(code: &str) -> Result<(), LocationError> {
    if code.is_empty() || code.len() > MAX_CODE_BYTES || code.chars().any(char::is_control) {
        return Err(LocationError::BadCode);
    }
    Ok(())
}

fn check_task_id(task_id: &str) -> Result<(), LocationError> {
    if task_id.is_empty() || task_id.len() > MAX_CODE_BYTES {
        return Err(LocationError::BadTaskId);
    }
    Ok(())
}

fn iso(ms: u64) -> Value {
    vwed_base::clock::local_ms_at(ms).map_or(Value::Null, Value::String)
}

fn to_json(code: &str, r: &LocationRec) -> Value {
    json!({
        "location_code": code,
        "name": r.name,
        "area": r.area,
        "attributes": serde_json::from_str::<Value>(&r.attributes_json).unwrap_or(json!({})),
        "locked": r.lock.is_some(),
        "locked_by": r.lock.as_ref().map(|l| l.task_id.clone()),
        "locked_at": r.lock.as_ref().map_or(Value::Null, |l| iso(l.locked_at_ms)),
        "updated_at": iso(r.updated_at_ms),
    })
}

#[derive(Clone)]
pub struct Locations {
    db: Db,
}

impl Locations {
    pub fn new(db: Db) -> Self {
        Locations { db }
    }

    /// Creates or updates locations; a lock held on an existing one is kept.
    /// Returns how many were new.
    pub fn upsert(&self, specs: &[LocationSpec]) -> Result<usize, LocationError> {
        if specs.len() > MAX_BATCH {
            return Err(LocationError::BatchTooLarge);
        }
        for s in specs {
            check_code(&s.location_code)?;
            if s.name.as_ref().is_some_and(|n| n.len() > MAX_TEXT_BYTES) {
                return Err(LocationError::TextTooLong("name"));
            }
            if s.area.as_ref().is_some_and(|a| a.len() > MAX_TEXT_BYTES) {
                return Err(LocationError::TextTooLong("area"));
            }
            if let Some(a) = &s.attributes
                && (!a.is_object() || a.to_string().len() > MAX_ATTRIBUTES_BYTES)
            {
                return Err(LocationError::BadAttributes(s.location_code.clone()));
            }
        }
        let now = vwed_base::clock::unix_ms();
        let tx = self.db.begin_write()?;
        let mut created = 0;
        {
            let mut t = tx.open_table(LOCATIONS)?;
            for s in specs {
                let old = match t.get(s.location_code.as_str())? {
                    Some(v) => Some(db::decode::<LocationRec>(v.value())?),
                    None => None,
                };
                let rec = match old {
                    Some(mut r) => {
                        if let Some(n) = &s.name {
                            r.name.clone_from(n);
                        }
                        if let Some(a) = &s.area {
                            r.area.clone_from(a);
                        }
                        if let Some(a) = &s.attributes {
                            r.attributes_json = a.to_string();
                        }
                        r.updated_at_ms = now;
                        r
                    }
                    None => {
                        if t.len()? >= MAX_LOCATIONS {
                            return Err(LocationError::TooMany);
                        }
                        created += 1;
                        LocationRec {
                            name: s.name.clone().unwrap_or_default(),
                            area: s.area.clone().unwrap_or_default(),
                            attributes_json: s
                                .attributes
                                .as_ref()
                                .map_or_else(|| "{}".to_string(), Value::to_string),
                            lock: None,
                            updated_at_ms: now,
                        }
                    }
                };
                t.insert(s.location_code.as_str(), db::encode(&rec)?.as_slice())?;
            }
        }
        tx.commit()?;
        Ok(created)
    }

    pub fn get(&self, code: &str) -> Result<Option<Value>, LocationError> {
        check_code(code)?;
        let rx = self.db.begin_read()?;
        let t = rx.open_table(LOCATIONS)?;
        match t.get(code)? {
            Some(v) => Ok(Some(to_json(code, &db::decode(v.value())?))),
            None => Ok(None),
        }
    }

    /// Locations in code order, optionally of one area or lock state; at most `limit`.
    pub fn list(
        &self,
        area: Option<&str>,
        locked: Option<bool>,
        limit: usize,
    ) -> Result<(Vec<Value>, u64), LocationError> {
        let rx = self.db.begin_read()?;
        let t = rx.open_table(LOCATIONS)?;
        let total = t.len()?;
        let mut out = Vec::new();
        for row in t.iter()? {
            if out.len() >= limit {
                break;
            }
            let (k, v) = row?;
            let rec: LocationRec = db::decode(v.value())?;
            if area.is_some_and(|a| a != rec.area)
                || locked.is_some_and(|l| l != rec.lock.is_some())
            {
                continue;
            }
            out.push(to_json(k.value(), &rec));
        }
        Ok((out, total))
    }

    /// Check-and-set in one write transaction.
    pub fn lock(&self, code: &str, task_id: &str) -> Result<LockOutcome, LocationError> {
        check_code(code)?;
        check_task_id(task_id)?;
        let tx = self.db.begin_write()?;
        let outcome = {
            let mut t = tx.open_table(LOCATIONS)?;
            let mut rec: LocationRec = match t.get(code)? {
                Some(v) => db::decode(v.value())?,
                None => return Err(LocationError::NotFound(code.to_string())),
            };
            match &rec.lock {
                Some(l) if l.task_id == task_id => LockOutcome::AlreadyHeld,
                Some(l) => LockOutcome::HeldByOther {
                    task_id: l.task_id.clone(),
                },
                None => {
                    let now = vwed_base::clock::unix_ms();
                    rec.lock = Some(LockRec {
                        task_id: task_id.to_string(),
                        locked_at_ms: now,
                    });
                    rec.updated_at_ms = now;
                    t.insert(code, db::encode(&rec)?.as_slice())?;
                    LockOutcome::Locked
                }
            }
        };
        tx.commit()?;
        Ok(outcome)
    }

    /// Releases a lock. `task_id` must be the holder unless `force`; with no
    /// `task_id` (the seed's `unlock_location(code)`) any holder's lock is released.
    /// Returns whether a lock was released.
    pub fn unlock(
        &self,
        code: &str,
        task_id: Option<&str>,
        force: bool,
    ) -> Result<bool, LocationError> {
        check_code(code)?;
        if let Some(id) = task_id {
            check_task_id(id)?;
        }
        let tx = self.db.begin_write()?;
        let released = {
            let mut t = tx.open_table(LOCATIONS)?;
            let mut rec: LocationRec = match t.get(code)? {
                Some(v) => db::decode(v.value())?,
                None => return Err(LocationError::NotFound(code.to_string())),
            };
            match (&rec.lock, task_id) {
                (None, _) => false,
                (Some(l), Some(by)) if l.task_id != by && !force => {
                    return Err(LocationError::NotHolder {
                        code: code.to_string(),
                        holder: l.task_id.clone(),
                        by: by.to_string(),
                    });
                }
                (Some(_), _) => {
                    rec.lock = None;
                    rec.updated_at_ms = vwed_base::clock::unix_ms();
                    t.insert(code, db::encode(&rec)?.as_slice())?;
                    true
                }
            }
        };
        tx.commit()?;
        Ok(released)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::{Arc, Barrier};

    fn store(tag: &str) -> (Locations, std::path::PathBuf) {
        let dir = std::env::temp_dir().join(format!(
            "vwed-locations-{tag}-{}-{}",
            std::process::id(),
            vwed_base::clock::unix_ms()
        ));
        std::fs::create_dir_all(&dir).expect("dir");
        let db = vwed_db::open(&dir.join("l.redb"), 1 << 20).expect("db");
        (Locations::new(db), dir)
    }

    fn spec(code: &str) -> LocationSpec {
        LocationSpec {
            location_code: code.to_string(),
            name: None,
            area: None,
            attributes: None,
        }
    }

    #[test]
    fn upsert_keeps_lock_and_unset_fields() {
        let (s, dir) = store("upsert");
        let mut a = spec("A001");
        a.name = Some("一号位".into());
        a.area = Some("A".into());
        a.attributes = Some(json!({"layer": 1}));
        assert_eq!(s.upsert(&[a, spec("B001")]).expect("upsert"), 2);
        assert_eq!(s.lock("A001", "T1").expect("lock"), LockOutcome::Locked);
        let mut again = spec("A001");
        again.attributes = Some(json!({"layer": 2}));
        assert_eq!(s.upsert(&[again]).expect("upsert"), 0);
        let got = s.get("A001").expect("get").expect("some");
        assert_eq!(got["name"], json!("一号位"));
        assert_eq!(got["area"], json!("A"));
        assert_eq!(got["attributes"], json!({"layer": 2}));
        assert_eq!(got["locked_by"], json!("T1"));
        assert!(got["locked_at"].is_string());
        let (list, total) = s.list(Some("A"), None, 10).expect("list");
        assert_eq!((list.len(), total), (1, 2));
        let (list, _) = s.list(None, Some(false), 10).expect("list");
        assert_eq!(list[0]["location_code"], json!("B001"));
        let _ = std::fs::remove_dir_all(dir);
    }

    #[test]
    fn lock_rules() {
        let (s, dir) = store("rules");
        s.upsert(&[spec("A")]).expect("upsert");
        assert!(matches!(
            s.lock("nope", "T1"),
            Err(LocationError::NotFound(_))
        ));
        assert_eq!(s.lock("A", "T1").expect("lock"), LockOutcome::Locked);
        assert_eq!(s.lock("A", "T1").expect("lock"), LockOutcome::AlreadyHeld);
        assert_eq!(
            s.lock("A", "T2").expect("lock"),
            LockOutcome::HeldByOther {
                task_id: "T1".into()
            }
        );
        assert!(matches!(
            s.unlock("A", Some("T2"), false),
            Err(LocationError::NotHolder { .. })
        ));
        assert!(s.unlock("A", Some("T2"), true).expect("forced"));
        assert!(!s.unlock("A", Some("T1"), false).expect("already free"));
        s.lock("A", "T3").expect("lock");
        assert!(s.unlock("A", None, false).expect("seed form"));
        let _ = std::fs::remove_dir_all(dir);
    }

    #[test]
    fn bounds() {
        let (s, dir) = store("bounds");
        assert!(matches!(s.upsert(&[spec("")]), Err(LocationError::BadCode)));
        assert!(matches!(
            s.upsert(&[spec("a\nb")]),
            Err(LocationError::BadCode)
        ));
        let mut bad = spec("X");
        bad.attributes = Some(json!([1]));
        assert!(matches!(
            s.upsert(&[bad]),
            Err(LocationError::BadAttributes(_))
        ));
        let many: Vec<_> = (0..=MAX_BATCH).map(|i| spec(&format!("L{i}"))).collect();
        assert!(matches!(s.upsert(&many), Err(LocationError::BatchTooLarge)));
        let _ = std::fs::remove_dir_all(dir);
    }

    #[test]
    fn racing_lockers_one_wins() {
        let (s, dir) = store("race");
        s.upsert(&[spec("R")]).expect("upsert");
        let n = 8;
        let barrier = Arc::new(Barrier::new(n));
        let handles: Vec<_> = (0..n)
            .map(|i| {
                let s = s.clone();
                let b = barrier.clone();
                std::thread::spawn(move || {
                    b.wait();
                    s.lock("R", &format!("T{i}")).expect("lock")
                })
            })
            .collect();
        let wins = handles
            .into_iter()
            .map(|h| h.join().expect("join"))
            .filter(|o| *o == LockOutcome::Locked)
            .count();
        assert_eq!(wins, 1);
        let _ = std::fs::remove_dir_all(dir);
    }
}
