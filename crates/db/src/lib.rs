//! The runtime's redb database: the schema (every table of `vwed.redb`) and small
//! typed helpers. Values are
//! postcard-encoded records; JSON payloads are kept as JSON text inside them.

use std::path::Path;
use std::sync::Arc;

use redb::{Database, ReadableDatabase, ReadableTable, TableDefinition};
use serde::{Serialize, de::DeserializeOwned};

pub const META: TableDefinition<&str, u64> = TableDefinition::new("meta");
pub const PROJECTS: TableDefinition<u64, &[u8]> = TableDefinition::new("projects");
pub const FILES: TableDefinition<u64, &[u8]> = TableDefinition::new("files");
/// (file id, version number) → previous content.
pub const FILE_VERSIONS: TableDefinition<(u64, u64), &[u8]> = TableDefinition::new("file_versions");
/// (file id, version number) → (place in saving order, stored bytes); see
/// `store/versions.rs`.
pub const VERSION_INDEX: TableDefinition<(u64, u64), (u64, u64)> =
    TableDefinition::new("file_version_index");
/// Place in saving order → (file id, version number): versions oldest first.
pub const VERSION_ORDER: TableDefinition<u64, (u64, u64)> =
    TableDefinition::new("file_version_order");
/// File id → versions of it pruned so far.
pub const VERSIONS_PRUNED: TableDefinition<u64, u64> = TableDefinition::new("file_versions_pruned");
/// script_path → the running script's start record.
pub const RUNNING: TableDefinition<&str, &[u8]> = TableDefinition::new("running");
/// (script_path, key) → JSON text.
pub const SCRIPT_DATA: TableDefinition<(&str, &str), &[u8]> = TableDefinition::new("script_data");
/// task_id → update time (8 bytes LE, ms) + the task's variables as a JSON object.
pub const TASK_VARS: TableDefinition<&str, &[u8]> = TableDefinition::new("task_vars");
/// (update time ms, task_id): task variables in update order, for eviction.
pub const TASK_VARS_AGE: TableDefinition<(u64, &str), ()> = TableDefinition::new("task_vars_age");
/// location_code → the warehouse location's record, lock included.
pub const LOCATIONS: TableDefinition<&str, &[u8]> = TableDefinition::new("locations");

#[derive(Debug, thiserror::Error)]
pub enum DbError {
    #[error("database error: {0}")]
    Redb(#[from] redb::Error),
    #[error("stored record is corrupt: {0}")]
    Corrupt(#[from] postcard::Error),
}

/// `From` each of redb's per-operation errors for an error type that converts
/// from `DbError`, so that `?` takes any of them.
#[macro_export]
macro_rules! from_redb_errors {
    ($target:ty) => {
        $crate::from_redb_errors!($target: $crate::redb::DatabaseError,
            $crate::redb::TransactionError, $crate::redb::TableError,
            $crate::redb::StorageError, $crate::redb::CommitError, $crate::redb::Error);
    };
    ($target:ty: $($t:ty),+) => {$(
        impl From<$t> for $target {
            fn from(e: $t) -> Self {
                <$target>::from($crate::DbError::Redb(e.into()))
            }
        }
    )+};
}
/// redb as the schema uses it, for `from_redb_errors!` in other crates.
pub use redb;

// `redb::Error` itself converts through `#[from]` above.
from_redb_errors!(DbError: redb::DatabaseError, redb::TransactionError, redb::TableError,
    redb::StorageError, redb::CommitError);

pub type Db = Arc<Database>;

pub fn open(path: &Path, cache_bytes: usize) -> Result<Db, DbError> {
    let db = Database::builder()
        .set_cache_size(cache_bytes)
        .create(path)?;
    // Create every table up front so that readers never meet a missing table.
    let tx = db.begin_write()?;
    tx.open_table(META)?;
    tx.open_table(PROJECTS)?;
    tx.open_table(FILES)?;
    tx.open_table(FILE_VERSIONS)?;
    tx.open_table(VERSION_INDEX)?;
    tx.open_table(VERSION_ORDER)?;
    tx.open_table(VERSIONS_PRUNED)?;
    tx.open_table(RUNNING)?;
    tx.open_table(SCRIPT_DATA)?;
    tx.open_table(TASK_VARS)?;
    tx.open_table(TASK_VARS_AGE)?;
    tx.open_table(LOCATIONS)?;
    tx.commit()?;
    Ok(Arc::new(db))
}

pub fn encode<T: Serialize>(v: &T) -> Result<Vec<u8>, DbError> {
    Ok(postcard::to_allocvec(v)?)
}

pub fn decode<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, DbError> {
    Ok(postcard::from_bytes(bytes)?)
}

/// Next value of a named counter, inside the caller's transaction.
pub fn next_id(tx: &redb::WriteTransaction, counter: &str) -> Result<u64, DbError> {
    let mut t = tx.open_table(META)?;
    let next = t.get(counter)?.map(|v| v.value()).unwrap_or(0) + 1;
    t.insert(counter, next)?;
    Ok(next)
}

/// A read and a commit both work: what the watchdog checks before it says alive.
pub fn health_check(db: &Database) -> Result<(), DbError> {
    let tx = db.begin_write()?;
    {
        let mut t = tx.open_table(META)?;
        let n = t.get("health_checks")?.map(|v| v.value()).unwrap_or(0);
        t.insert("health_checks", n.wrapping_add(1))?;
    }
    tx.commit()?;
    let rx = db.begin_read()?;
    rx.open_table(META)?.get("health_checks")?;
    Ok(())
}
