//! The set of scripts that should be running, so that a restart of the runtime,
//! even after `kill -9` or a power cut, starts them again.

use redb::{ReadableDatabase, ReadableTable};

use super::{RunningRec, StoreError};
use crate::db::{self, Db, RUNNING};

#[derive(Clone)]
pub struct RunningSet {
    db: Db,
}

impl RunningSet {
    pub fn new(db: Db) -> Self {
        RunningSet { db }
    }

    pub fn put(&self, script_path: &str, rec: &RunningRec) -> Result<(), StoreError> {
        let tx = self.db.begin_write()?;
        tx.open_table(RUNNING)?
            .insert(script_path, db::encode(rec)?.as_slice())?;
        tx.commit()?;
        Ok(())
    }

    pub fn remove(&self, script_path: &str) -> Result<(), StoreError> {
        let tx = self.db.begin_write()?;
        tx.open_table(RUNNING)?.remove(script_path)?;
        tx.commit()?;
        Ok(())
    }

    pub fn all(&self) -> Result<Vec<(String, RunningRec)>, StoreError> {
        let rx = self.db.begin_read()?;
        let t = rx.open_table(RUNNING)?;
        let mut out = Vec::new();
        for row in t.iter()? {
            let (k, v) = row?;
            out.push((k.value().to_string(), db::decode(v.value())?));
        }
        Ok(out)
    }
}
