//! Task variables: the context of one task of the central task server, as script
//! blocks and `VWED.task.*` see it. Kept in redb so a restart of the runtime (or a
//! power cut) does not lose what a task block produced.
//!
//! The central server owns the task record; this is its working copy on the device.
//! So the store is bounded by evicting the least recently updated task rather than
//! by refusing new ones: a new task must never fail because old ones piled up.

use redb::{ReadableDatabase, ReadableTable, ReadableTableMetadata};
use serde_json::{Map, Value};

use vwed_db::{Db, DbError, TASK_VARS, TASK_VARS_AGE};

pub const MAX_TASK_ID_BYTES: usize = 128;
pub const MAX_NAME_BYTES: usize = 256;
/// One task's variables, as JSON text.
pub const MAX_TASK_BYTES: usize = 1024 * 1024;
pub const MAX_TASKS: u64 = 10_000;

#[derive(Debug, thiserror::Error)]
pub enum TaskVarsError {
    #[error(transparent)]
    Db(#[from] DbError),
    #[error("task_id 不能为空, 且不能超过 {MAX_TASK_ID_BYTES} 字节")]
    BadTaskId,
    #[error("变量名不能为空, 且不能超过 {MAX_NAME_BYTES} 字节")]
    BadName,
    #[error("任务变量过大: {0} 字节, 上限 {MAX_TASK_BYTES} 字节")]
    TooLarge(usize),
    #[error("内部错误: {0}")]
    Internal(String),
}

vwed_db::from_redb_errors!(TaskVarsError);

pub fn check_task_id(task_id: &str) -> Result<(), TaskVarsError> {
    if task_id.is_empty() || task_id.len() > MAX_TASK_ID_BYTES {
        return Err(TaskVarsError::BadTaskId);
    }
    Ok(())
}

/// Value layout: 8 bytes of little-endian update time (ms), then the JSON object.
/// The time is there so an update can find and move its row in `TASK_VARS_AGE`.
fn split(bytes: &[u8]) -> (u64, &[u8]) {
    match bytes.split_first_chunk::<8>() {
        Some((ts, rest)) => (u64::from_le_bytes(*ts), rest),
        None => (0, &[]),
    }
}

fn parse_object(json: &[u8]) -> Map<String, Value> {
    match serde_json::from_slice(json) {
        Ok(Value::Object(m)) => m,
        _ => Map::new(),
    }
}

#[derive(Clone)]
pub struct TaskVars {
    db: Db,
}

impl TaskVars {
    pub fn new(db: Db) -> Self {
        TaskVars { db }
    }

    /// The task's variables, or `None` when nothing was ever stored for it.
    pub fn get(&self, task_id: &str) -> Result<Option<Map<String, Value>>, TaskVarsError> {
        check_task_id(task_id)?;
        let rx = self.db.begin_read()?;
        let t = rx.open_table(TASK_VARS)?;
        Ok(t.get(task_id)?.map(|v| parse_object(split(v.value()).1)))
    }

    pub fn set(&self, task_id: &str, name: &str, value: Value) -> Result<(), TaskVarsError> {
        let mut m = Map::new();
        m.insert(name.to_string(), value);
        self.merge(task_id, m).map(|_| ())
    }

    /// Adds `updates` to the task's variables (later keys win) in one transaction
    /// and returns the whole set.
    pub fn merge(
        &self,
        task_id: &str,
        updates: Map<String, Value>,
    ) -> Result<Map<String, Value>, TaskVarsError> {
        check_task_id(task_id)?;
        if updates
            .keys()
            .any(|k| k.is_empty() || k.len() > MAX_NAME_BYTES)
        {
            return Err(TaskVarsError::BadName);
        }
        let now = vwed_base::clock::unix_ms();
        let tx = self.db.begin_write()?;
        let merged = {
            let mut vars = tx.open_table(TASK_VARS)?;
            let mut age = tx.open_table(TASK_VARS_AGE)?;
            let old = vars.get(task_id)?.map(|v| {
                let (ts, json) = split(v.value());
                (ts, parse_object(json))
            });
            let is_new = old.is_none();
            let mut merged = match old {
                Some((ts, m)) => {
                    age.remove((ts, task_id))?;
                    m
                }
                None => Map::new(),
            };
            merged.extend(updates);
            let json = serde_json::to_vec(&merged).map_err(|_| TaskVarsError::TooLarge(0))?;
            if json.len() > MAX_TASK_BYTES {
                return Err(TaskVarsError::TooLarge(json.len()));
            }
            if is_new && vars.len()? >= MAX_TASKS {
                let oldest = age.first()?.map(|(k, _)| {
                    let (ts, id) = k.value();
                    (ts, id.to_string())
                });
                if let Some((ts, id)) = oldest {
                    age.remove((ts, id.as_str()))?;
                    vars.remove(id.as_str())?;
                }
            }
            let mut row = now.to_le_bytes().to_vec();
            row.extend_from_slice(&json);
            vars.insert(task_id, row.as_slice())?;
            age.insert((now, task_id), ())?;
            merged
        };
        tx.commit()?;
        Ok(merged)
    }

    pub fn delete(&self, task_id: &str) -> Result<bool, TaskVarsError> {
        check_task_id(task_id)?;
        let tx = self.db.begin_write()?;
        let existed = {
            let mut vars = tx.open_table(TASK_VARS)?;
            let old = vars.remove(task_id)?.map(|v| split(v.value()).0);
            if let Some(ts) = old {
                tx.open_table(TASK_VARS_AGE)?.remove((ts, task_id))?;
            }
            old.is_some()
        };
        tx.commit()?;
        Ok(existed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn store(tag: &str) -> (TaskVars, std::path::PathBuf) {
        let dir = std::env::temp_dir().join(format!(
            "vwed-taskvars-{tag}-{}-{}",
            std::process::id(),
            vwed_base::clock::unix_ms()
        ));
        std::fs::create_dir_all(&dir).expect("dir");
        let db = vwed_db::open(&dir.join("t.redb"), 1 << 20).expect("db");
        (TaskVars::new(db), dir)
    }

    fn obj(v: Value) -> Map<String, Value> {
        v.as_object().cloned().expect("object")
    }

    #[test]
    fn merge_get_set_delete() {
        let (s, dir) = store("basic");
        assert!(s.get("t1").expect("get").is_none());
        let m = s
            .merge("t1", obj(json!({"a": 1, "b": "x"})))
            .expect("merge");
        assert_eq!(Value::Object(m), json!({"a": 1, "b": "x"}));
        s.set("t1", "b", json!({"deep": [1, 2]})).expect("set");
        s.set("t1", "c", Value::Null).expect("set");
        assert_eq!(
            Value::Object(s.get("t1").expect("get").expect("some")),
            json!({"a": 1, "b": {"deep": [1, 2]}, "c": null})
        );
        assert!(s.delete("t1").expect("delete"));
        assert!(!s.delete("t1").expect("delete"));
        assert!(s.get("t1").expect("get").is_none());
        let _ = std::fs::remove_dir_all(dir);
    }

    #[test]
    fn bounds_are_enforced() {
        let (s, dir) = store("bounds");
        assert!(matches!(s.get(""), Err(TaskVarsError::BadTaskId)));
        assert!(matches!(
            s.set(&"x".repeat(MAX_TASK_ID_BYTES + 1), "a", json!(1)),
            Err(TaskVarsError::BadTaskId)
        ));
        assert!(matches!(
            s.set("t", "", json!(1)),
            Err(TaskVarsError::BadName)
        ));
        let big = "y".repeat(MAX_TASK_BYTES);
        assert!(matches!(
            s.set("t", "big", json!(big)),
            Err(TaskVarsError::TooLarge(_))
        ));
        // A refused update leaves nothing behind.
        assert!(s.get("t").expect("get").is_none());
        let _ = std::fs::remove_dir_all(dir);
    }

    #[test]
    fn update_moves_the_age_row() {
        let (s, dir) = store("age");
        s.set("a", "v", json!(1)).expect("set");
        std::thread::sleep(std::time::Duration::from_millis(3));
        s.set("b", "v", json!(1)).expect("set");
        std::thread::sleep(std::time::Duration::from_millis(3));
        s.set("a", "v", json!(2)).expect("set");
        let rx = s.db.begin_read().expect("read");
        let age = rx.open_table(TASK_VARS_AGE).expect("age");
        let order: Vec<String> = age
            .iter()
            .expect("iter")
            .map(|r| r.expect("row").0.value().1.to_string())
            .collect();
        assert_eq!(order, vec!["b".to_string(), "a".to_string()]);
        let _ = std::fs::remove_dir_all(dir);
    }
}
