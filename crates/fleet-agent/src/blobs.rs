//! Files by content: the device's store of them (`<data-dir>/fleet/blobs/<sha256>`)
//! and the assembly of files that arrive in chunks. A file whose digest the device
//! already has is never fetched again.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::Path;
use std::sync::{Arc, Mutex};
use vwed_base::sync::Locked;

use bytes::Bytes;
use tokio::sync::Notify;

use vwed_base::fsio::{self, Dir, FsError, Kind};
use vwed_fleet_proto::crypto;

/// Files kept by their SHA-256, in a folder reached from the data dir without
/// following a link.
#[derive(Clone)]
pub struct BlobStore {
    dir: Arc<Dir>,
}

impl BlobStore {
    /// Opens (makes) `<data-dir>/fleet/blobs` and removes the temporary files a
    /// killed runtime left in it.
    pub fn open(data_dir: &Path) -> Result<BlobStore, FsError> {
        let data = Dir::open(data_dir).map_err(|source| FsError::Io {
            path: data_dir.display().to_string(),
            source,
        })?;
        let dir = data.walk(["fleet", "blobs"], true)?;
        dir.remove_where(fsio::is_temporary)?;
        Ok(BlobStore { dir: Arc::new(dir) })
    }

    /// `digest` as a file name, if it is one.
    fn name(digest: &str) -> Result<&str, FsError> {
        if crypto::is_digest(digest) {
            Ok(digest)
        } else {
            Err(FsError::NotFile(format!("{digest} (不是 SHA-256 摘要)")))
        }
    }

    pub fn has(&self, digest: &str) -> bool {
        Self::name(digest).is_ok_and(|n| matches!(self.dir.kind(n), Ok(Some(Kind::File))))
    }

    /// Stores `data` under its digest (durably: a switch may read it after a power cut).
    pub fn put(&self, data: &[u8]) -> Result<String, FsError> {
        let digest = crypto::sha256_hex(data);
        if !self.has(&digest) {
            self.dir.write_atomic(&digest, data)?;
        }
        Ok(digest)
    }

    /// The content of `digest`, checked: a blob damaged on disk is not used.
    pub fn get(&self, digest: &str) -> Result<Vec<u8>, FsError> {
        let data = self.dir.read(Self::name(digest)?)?;
        if crypto::sha256_hex(&data) != digest {
            return Err(FsError::Io {
                path: format!("fleet/blobs/{digest}"),
                source: std::io::Error::new(std::io::ErrorKind::InvalidData, "内容与摘要不符"),
            });
        }
        Ok(data)
    }

    /// Deletes every blob not in `keep`.
    pub fn retain(&self, keep: &BTreeSet<String>) -> Result<usize, FsError> {
        self.dir.remove_where(|name| !keep.contains(name))
    }
}

/// A file being assembled from its chunks.
struct Assembly {
    size: u64,
    chunk: u64,
    parts: BTreeMap<u32, Bytes>,
}

impl Assembly {
    fn count(&self) -> u32 {
        u32::try_from(self.size.div_ceil(self.chunk)).unwrap_or(u32::MAX)
    }

    fn complete(&self) -> bool {
        self.parts.len() as u64 >= u64::from(self.count())
    }

    fn join(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(usize::try_from(self.size).unwrap_or(0));
        for p in self.parts.values() {
            out.extend_from_slice(p);
        }
        out
    }
}

/// How a wanted file ended.
#[derive(Debug, PartialEq, Eq)]
pub enum Fetched {
    Ok(Vec<u8>),
    /// Its chunks joined do not hash to the digest the manifest names.
    Mismatch,
}

/// Files wanted from the broker: the link hands chunks in, the apply waits.
#[derive(Default)]
pub struct Fetches {
    wanted: Mutex<HashMap<String, Assembly>>,
    done: Mutex<HashMap<String, Fetched>>,
    pub progress: Notify,
}

impl Fetches {
    fn wanted(&self) -> std::sync::MutexGuard<'_, HashMap<String, Assembly>> {
        self.wanted.locked()
    }

    fn done(&self) -> std::sync::MutexGuard<'_, HashMap<String, Fetched>> {
        self.done.locked()
    }

    pub fn want(&self, digest: &str, size: u64, chunk: u64) {
        let a = Assembly {
            size,
            chunk: chunk.max(1),
            parts: BTreeMap::new(),
        };
        if a.complete() {
            // An empty file has no chunks.
            self.finish(digest, &a);
            return;
        }
        self.wanted().insert(digest.to_string(), a);
    }

    /// A chunk arrived. Chunks of files nobody waits for, beyond a file's count
    /// or longer than a chunk are ignored: they can only be noise or tampering, and
    /// the digest check catches what they would change.
    pub fn chunk(&self, digest: &str, index: u32, data: Bytes) {
        let finished = {
            let mut w = self.wanted();
            let Some(a) = w.get_mut(digest) else { return };
            if index >= a.count() || data.len() as u64 > a.chunk {
                return;
            }
            a.parts.insert(index, data);
            if a.complete() { w.remove(digest) } else { None }
        };
        if let Some(a) = finished {
            self.finish(digest, &a);
        }
    }

    fn finish(&self, digest: &str, a: &Assembly) {
        let data = a.join();
        let result = if data.len() as u64 == a.size && crypto::sha256_hex(&data) == digest {
            Fetched::Ok(data)
        } else {
            Fetched::Mismatch
        };
        self.done().insert(digest.to_string(), result);
        self.progress.notify_waiters();
    }

    pub fn take(&self, digest: &str) -> Option<Fetched> {
        self.done().remove(digest)
    }

    /// Stops waiting for everything (an apply ended).
    pub fn clear(&self) {
        self.wanted().clear();
        self.done().clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chunks_assemble_in_any_order_and_tampering_is_caught() {
        let f = Fetches::default();
        let data = b"0123456789abcdefXYZ".to_vec();
        let d = crypto::sha256_hex(&data);
        f.want(&d, data.len() as u64, 8);
        f.chunk(&d, 2, Bytes::copy_from_slice(&data[16..]));
        f.chunk(&d, 9, Bytes::from_static(b"ignored"));
        f.chunk(&d, 0, Bytes::copy_from_slice(&data[..8]));
        assert_eq!(f.take(&d), None);
        f.chunk(&d, 1, Bytes::copy_from_slice(&data[8..16]));
        assert_eq!(f.take(&d), Some(Fetched::Ok(data.clone())));

        f.want(&d, data.len() as u64, 8);
        f.chunk(&d, 0, Bytes::copy_from_slice(&data[..8]));
        f.chunk(&d, 1, Bytes::from_static(b"XXXXXXXX"));
        f.chunk(&d, 2, Bytes::copy_from_slice(&data[16..]));
        assert_eq!(f.take(&d), Some(Fetched::Mismatch));

        let empty = crypto::sha256_hex(b"");
        f.want(&empty, 0, 8);
        assert_eq!(f.take(&empty), Some(Fetched::Ok(Vec::new())));
    }
}
