//! `VWED.data`: JSON values per script path, in redb, so they survive restarts and
//! power cuts. Bounded so that one script cannot fill the disk.

use redb::{ReadableDatabase, ReadableTable};
use serde_json::Value;

use vwed_db::{Db, DbError, SCRIPT_DATA};

pub const MAX_KEY_BYTES: usize = 256;
pub const MAX_VALUE_BYTES: usize = 1024 * 1024;
pub const MAX_KEYS: usize = 10_000;

#[derive(Debug, thiserror::Error)]
pub enum DataError {
    #[error(transparent)]
    Db(#[from] DbError),
    #[error("键不能为空, 且不能超过 {MAX_KEY_BYTES} 字节")]
    BadKey,
    #[error("值过大: {0} 字节, 上限 {MAX_VALUE_BYTES} 字节")]
    TooLarge(usize),
    #[error("键数量已达上限 {MAX_KEYS}")]
    TooManyKeys,
}

vwed_db::from_redb_errors!(DataError);

#[derive(Clone)]
pub struct ScriptData {
    db: Db,
}

fn check_key(key: &str) -> Result<(), DataError> {
    if key.is_empty() || key.len() > MAX_KEY_BYTES {
        return Err(DataError::BadKey);
    }
    Ok(())
}

impl ScriptData {
    pub fn new(db: Db) -> Self {
        ScriptData { db }
    }

    pub fn set(&self, script: &str, key: &str, value_json: &str) -> Result<(), DataError> {
        check_key(key)?;
        if value_json.len() > MAX_VALUE_BYTES {
            return Err(DataError::TooLarge(value_json.len()));
        }
        let tx = self.db.begin_write()?;
        {
            let mut t = tx.open_table(SCRIPT_DATA)?;
            if t.get((script, key))?.is_none()
                && t.range((script, "")..)?
                    .take_while(|r| r.as_ref().is_ok_and(|(k, _)| k.value().0 == script))
                    .count()
                    >= MAX_KEYS
            {
                return Err(DataError::TooManyKeys);
            }
            t.insert((script, key), value_json.as_bytes())?;
        }
        tx.commit()?;
        Ok(())
    }

    pub fn get(&self, script: &str, key: &str) -> Result<Option<Value>, DataError> {
        let rx = self.db.begin_read()?;
        let t = rx.open_table(SCRIPT_DATA)?;
        Ok(t.get((script, key))?
            .and_then(|v| serde_json::from_slice(v.value()).ok()))
    }

    pub fn delete(&self, script: &str, key: &str) -> Result<bool, DataError> {
        let tx = self.db.begin_write()?;
        let existed = tx.open_table(SCRIPT_DATA)?.remove((script, key))?.is_some();
        tx.commit()?;
        Ok(existed)
    }

    pub fn keys(&self, script: &str) -> Result<Vec<String>, DataError> {
        let rx = self.db.begin_read()?;
        let t = rx.open_table(SCRIPT_DATA)?;
        let mut out = Vec::new();
        for row in t.range((script, "")..)? {
            let (k, _) = row?;
            let (s, key) = k.value();
            if s != script {
                break;
            }
            out.push(key.to_string());
        }
        Ok(out)
    }

    pub fn clear(&self, script: &str) -> Result<(), DataError> {
        let tx = self.db.begin_write()?;
        tx.open_table(SCRIPT_DATA)?
            .retain(|(s, _), _| s != script)?;
        tx.commit()?;
        Ok(())
    }
}
