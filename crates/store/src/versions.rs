//! Previous contents of files ("versions"), bounded: at most `keep` per file and
//! `max_bytes` in all, pruned oldest first inside the transaction that saves a
//! new one. How many were pruned is kept per file, so a list can say so.
//!
//! Besides the versions themselves (`FILE_VERSIONS`), two small tables order
//! them across files: `VERSION_INDEX` gives each version its place in saving
//! order and its size; `VERSION_ORDER` walks that order from the oldest.

use redb::{ReadableTable, Table, WriteTransaction};

use super::{StoreError, VersionRec};
use vwed_db::{self as db, FILE_VERSIONS, META, VERSION_INDEX, VERSION_ORDER, VERSIONS_PRUNED};

/// Bytes of stored versions, across files.
const BYTES: &str = "version_bytes";
/// Next place in saving order.
const SEQ: &str = "version_seq";
/// Present once every stored version is in `VERSION_INDEX`.
const INDEXED: &str = "version_index";

/// How much history is kept.
#[derive(Debug, Clone, Copy)]
pub struct VersionLimits {
    /// Versions kept per file (at least 1).
    pub keep: u64,
    /// Bytes of versions kept in all; the newest version is kept even above it.
    pub max_bytes: u64,
}

impl Default for VersionLimits {
    fn default() -> Self {
        VersionLimits {
            keep: 100,
            max_bytes: 64 * 1024 * 1024,
        }
    }
}

/// The tables of one write transaction that saving and pruning touch.
struct Tables<'t> {
    versions: Table<'t, (u64, u64), &'static [u8]>,
    index: Table<'t, (u64, u64), (u64, u64)>,
    order: Table<'t, u64, (u64, u64)>,
    pruned: Table<'t, u64, u64>,
    meta: Table<'t, &'static str, u64>,
}

impl<'t> Tables<'t> {
    fn open(tx: &'t WriteTransaction) -> Result<Tables<'t>, StoreError> {
        Ok(Tables {
            versions: tx.open_table(FILE_VERSIONS)?,
            index: tx.open_table(VERSION_INDEX)?,
            order: tx.open_table(VERSION_ORDER)?,
            pruned: tx.open_table(VERSIONS_PRUNED)?,
            meta: tx.open_table(META)?,
        })
    }

    fn counter(&self, name: &str) -> Result<u64, StoreError> {
        Ok(self.meta.get(name)?.map(|v| v.value()).unwrap_or(0))
    }

    /// Stores version `n` of `file` at the end of the saving order.
    fn insert(&mut self, file: u64, n: u64, bytes: &[u8]) -> Result<(), StoreError> {
        let seq = self.counter(SEQ)? + 1;
        self.meta.insert(SEQ, seq)?;
        let size = bytes.len() as u64;
        self.versions.insert((file, n), bytes)?;
        self.index.insert((file, n), (seq, size))?;
        self.order.insert(seq, (file, n))?;
        let total = self.counter(BYTES)? + size;
        self.meta.insert(BYTES, total)?;
        Ok(())
    }

    /// Removes version `n` of `file`; `counted` adds it to the file's pruned count.
    fn remove(&mut self, file: u64, n: u64, counted: bool) -> Result<(), StoreError> {
        let Some((seq, size)) = self.index.remove((file, n))?.map(|v| v.value()) else {
            return Ok(());
        };
        self.order.remove(seq)?;
        self.versions.remove((file, n))?;
        let total = self.counter(BYTES)?.saturating_sub(size);
        self.meta.insert(BYTES, total)?;
        if counted {
            let before = self.pruned.get(file)?.map(|v| v.value()).unwrap_or(0);
            self.pruned.insert(file, before + 1)?;
        }
        Ok(())
    }

    /// The numbers of the indexed versions of `file`, oldest first.
    fn numbers(&self, file: u64) -> Result<Vec<u64>, StoreError> {
        let mut all = Vec::new();
        for row in self.index.range((file, 0)..=(file, u64::MAX))? {
            all.push(row?.0.value().1);
        }
        Ok(all)
    }

    /// The oldest versions of `file` beyond the newest `keep` (at least 1).
    fn surplus(&self, file: u64, keep: u64) -> Result<Vec<u64>, StoreError> {
        let mut all = self.numbers(file)?;
        let extra = all.len().saturating_sub(keep.max(1) as usize);
        all.truncate(extra);
        Ok(all)
    }

    /// Prunes oldest first, across files, while over `max_bytes`; never `newest`.
    fn prune_to_budget(&mut self, max_bytes: u64, newest: (u64, u64)) -> Result<(), StoreError> {
        while self.counter(BYTES)? > max_bytes {
            let Some(oldest) = self.order.first()?.map(|(_, v)| v.value()) else {
                break;
            };
            if oldest == newest {
                break;
            }
            self.remove(oldest.0, oldest.1, true)?;
        }
        Ok(())
    }
}

/// Saves `rec` as version `n` of `file` and prunes what the limits no longer
/// allow; all in the caller's transaction.
pub fn save(
    tx: &WriteTransaction,
    file: u64,
    n: u64,
    rec: &VersionRec,
    limits: VersionLimits,
) -> Result<(), StoreError> {
    let mut t = Tables::open(tx)?;
    t.insert(file, n, &db::encode(rec)?)?;
    for old in t.surplus(file, limits.keep)? {
        t.remove(file, old, true)?;
    }
    t.prune_to_budget(limits.max_bytes, (file, n))
}

/// Forgets every version of `file` (the file is being deleted).
pub fn forget(tx: &WriteTransaction, file: u64) -> Result<(), StoreError> {
    let mut t = Tables::open(tx)?;
    for n in t.numbers(file)? {
        t.remove(file, n, false)?;
    }
    // Versions stored before the index existed are not in it.
    t.versions
        .retain_in((file, 0)..=(file, u64::MAX), |_, _| false)?;
    t.pruned.remove(file)?;
    Ok(())
}

/// Versions of `file` pruned so far.
pub fn pruned(tx: &redb::ReadTransaction, file: u64) -> Result<u64, StoreError> {
    let t = tx.open_table(VERSIONS_PRUNED)?;
    Ok(t.get(file)?.map(|v| v.value()).unwrap_or(0))
}

/// Puts versions saved before the index existed into it, oldest saving time
/// first, once; then applies `limits` to every file.
pub fn prepare(db: &redb::Database, limits: VersionLimits) -> Result<(), StoreError> {
    let tx = db.begin_write()?;
    {
        let mut t = Tables::open(&tx)?;
        if t.meta.get(INDEXED)?.is_none() {
            index_old(&mut t)?;
            t.meta.insert(INDEXED, 1)?;
        }
        // The limits may have been lowered since the last start.
        let mut files: Vec<u64> = Vec::new();
        for row in t.index.iter()? {
            let f = row?.0.value().0;
            if files.last() != Some(&f) {
                files.push(f);
            }
        }
        for f in files {
            for old in t.surplus(f, limits.keep)? {
                t.remove(f, old, true)?;
            }
        }
        t.prune_to_budget(limits.max_bytes, (u64::MAX, u64::MAX))?;
    }
    tx.commit()?;
    Ok(())
}

fn index_old(t: &mut Tables<'_>) -> Result<(), StoreError> {
    let mut old: Vec<(String, u64, u64, u64)> = Vec::new();
    for row in t.versions.iter()? {
        let (k, v) = row?;
        let (file, n) = k.value();
        let saved_at = db::decode::<VersionRec>(v.value())
            .map(|r| r.saved_at)
            .unwrap_or_default();
        old.push((saved_at, file, n, v.value().len() as u64));
    }
    old.sort();
    let mut seq = t.counter(SEQ)?;
    let mut total = t.counter(BYTES)?;
    for (_, file, n, size) in old {
        seq += 1;
        t.index.insert((file, n), (seq, size))?;
        t.order.insert(seq, (file, n))?;
        total += size;
    }
    t.meta.insert(SEQ, seq)?;
    t.meta.insert(BYTES, total)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{NewFile, ScriptStore};

    #[test]
    fn version_history_no_longer_grows_without_bound() {
        let dir = std::env::temp_dir().join(format!("vwed-versions-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("dir");
        let db_path = dir.join("vwed.redb");
        let db = vwed_db::open(&db_path, 1 << 20).expect("db");
        let limits = VersionLimits {
            keep: 10,
            max_bytes: 1 << 30,
        };
        let store = ScriptStore::new(db, &dir)
            .expect("store")
            .with_version_limits(limits);
        store.prepare().expect("prepare");
        let p = store.create_project("p", "", "t").expect("project");
        let page = "x".repeat(4096);
        let (_, f) = store
            .create_file(&NewFile {
                project_id: p.id,
                file_name: "a.txt",
                file_path: "a.txt",
                content: &page,
                file_type: "text",
                created_by: "t",
                has_boot_function: false,
            })
            .expect("file");
        let size = || std::fs::metadata(&db_path).map(|m| m.len()).unwrap_or(0);
        let mut largest = 0;
        for i in 0..300 {
            let content = format!("{i}{page}");
            store
                .update_file(f.id, &content, "t", false, None)
                .expect("update");
            largest = largest.max(size());
        }
        let (kept, pruned) = store.list_versions(f.id).expect("versions");
        assert_eq!(kept.len(), 10);
        assert_eq!(pruned, 290);
        assert_eq!(kept.first().map(|(n, _)| *n), Some(291));
        // Unbounded, 300 updates of 4 KiB took 2 MB (5,000 took 35.7 MB); ten
        // versions need some 50 KiB.
        assert!(
            largest <= 1024 * 1024 + 128 * 1024,
            "vwed.redb reached {largest} bytes"
        );
        let _ = std::fs::remove_dir_all(dir);
    }
}
