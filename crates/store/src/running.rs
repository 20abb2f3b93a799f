//! The set of scripts that should be running, so that a restart of the runtime,
//! even after `kill -9` or a power cut, starts them again.

use redb::{ReadableDatabase, ReadableTable};

use super::records::RunningRecV1;
use super::{RunningRec, StoreError};
use vwed_db::{self as db, Db, RUNNING};

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
            out.push((k.value().to_string(), decode(v.value())?));
        }
        Ok(out)
    }
}

fn decode(bytes: &[u8]) -> Result<RunningRec, StoreError> {
    match db::decode::<RunningRec>(bytes) {
        Ok(rec) => Ok(rec),
        Err(e) => db::decode::<RunningRecV1>(bytes)
            .map(RunningRec::from)
            .map_err(|_| e.into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(serde::Serialize)]
    struct OldLayout<'a>(&'a str, u64, &'a str, &'a str);

    #[test]
    fn records_written_before_restart_policies_are_still_read() {
        let old = db::encode(&OldLayout(
            "a.py_1_x",
            7,
            "{\"k\":1}",
            "2025-01-01T00:00:00",
        ))
        .expect("encode");
        let rec = decode(&old).expect("old record");
        assert_eq!(rec.file_id, 7);
        assert_eq!(rec.start_params, "{\"k\":1}");
        assert!(rec.restart_policy.is_none());
        let new = RunningRec {
            restart_policy: Some(crate::policy::RestartPolicy::default()),
            ..rec
        };
        let back = decode(&db::encode(&new).expect("encode")).expect("new record");
        assert_eq!(back.restart_policy, new.restart_policy);
    }
}
