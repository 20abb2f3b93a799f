//! Files below the data dir: reached one name at a time from an open directory,
//! never through a symbolic link, and written so that they survive a power cut.
//!
//! Every directory below the data dir is opened with `O_NOFOLLOW` relative to its
//! parent's descriptor (`openat`), so a link anywhere on the way (a project folder
//! replaced by a link, a link inside a project) stops the walk instead of leading
//! a read or write elsewhere, and nothing can be swapped between a check and the
//! use. Writes go to a temporary file in the same directory, which is fsynced,
//! renamed over the target, and the directory fsynced: a reader sees the old
//! content or the new, never a truncated file.

use std::ffi::{CStr, CString};
use std::fs::File;
use std::io::{self, Read, Write};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::path::Path;

/// Why a name below the data dir could not be reached.
#[derive(Debug, thiserror::Error)]
pub enum FsError {
    #[error("{0} 是符号链接, 不能经由链接读写 (数据目录之下不跟随链接)")]
    Link(String),
    #[error("{0} 不是目录")]
    NotDir(String),
    #[error("{0} 不是普通文件")]
    NotFile(String),
    #[error("{0} 不存在")]
    NotFound(String),
    #[error("文件读写失败 ({path}): {source}")]
    Io {
        path: String,
        #[source]
        source: io::Error,
    },
}

/// Writes `name` in a directory the runtime trusts (its data dir), like
/// [`Dir::write_atomic_mode`].
pub fn write_in(dir: &Path, name: &str, data: &[u8], mode: u32) -> Result<(), FsError> {
    open_trusted(dir)?.write_atomic_mode(name, data, mode)
}

/// Removes `name` from a directory the runtime trusts; nothing there is no error.
pub fn remove_in(dir: &Path, name: &str) -> Result<(), FsError> {
    match open_trusted(dir)?.remove(name) {
        Err(FsError::NotFound(_)) => Ok(()),
        other => other,
    }
}

fn open_trusted(dir: &Path) -> Result<Dir, FsError> {
    Dir::open(dir).map_err(|source| FsError::Io {
        path: dir.display().to_string(),
        source,
    })
}

/// An open directory.
#[derive(Debug)]
pub struct Dir {
    fd: OwnedFd,
    /// Where it is, relative to the directory the walk started from: for messages.
    shown: String,
}

fn cname(name: &str) -> io::Result<CString> {
    CString::new(name).map_err(|_| io::Error::from(io::ErrorKind::InvalidInput))
}

fn check(r: libc::c_int) -> io::Result<libc::c_int> {
    if r < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(r)
    }
}

impl Dir {
    /// Opens a directory the runtime trusts (the data dir, from its settings).
    pub fn open(path: &Path) -> io::Result<Dir> {
        let f = File::open(path)?;
        if !f.metadata()?.is_dir() {
            return Err(io::Error::from(io::ErrorKind::NotADirectory));
        }
        Ok(Dir {
            fd: OwnedFd::from(f),
            shown: String::new(),
        })
    }

    fn below(&self, name: &str) -> String {
        if self.shown.is_empty() {
            name.to_string()
        } else {
            format!("{}/{name}", self.shown)
        }
    }

    fn io_error(&self, name: &str, source: io::Error) -> FsError {
        let path = self.below(name);
        match source.raw_os_error() {
            Some(libc::ENOENT) => FsError::NotFound(path),
            _ => FsError::Io { path, source },
        }
    }

    /// What `name` in this directory is, without following a link; `None` when
    /// there is nothing by that name.
    pub fn kind(&self, name: &str) -> Result<Option<Kind>, FsError> {
        Ok(self.stat(name)?.map(|s| s.kind))
    }

    /// What `name` is, its size and when it was last modified, without following
    /// a link; `None` when there is nothing by that name.
    pub fn stat(&self, name: &str) -> Result<Option<Stat>, FsError> {
        let c = cname(name).map_err(|e| self.io_error(name, e))?;
        let mut st = std::mem::MaybeUninit::<libc::stat>::uninit();
        // SAFETY: a valid dir fd, a NUL-terminated name and a buffer for one stat.
        let r = unsafe {
            libc::fstatat(
                self.fd.as_raw_fd(),
                c.as_ptr(),
                st.as_mut_ptr(),
                libc::AT_SYMLINK_NOFOLLOW,
            )
        };
        if r < 0 {
            let e = io::Error::last_os_error();
            if e.raw_os_error() == Some(libc::ENOENT) {
                return Ok(None);
            }
            return Err(self.io_error(name, e));
        }
        // SAFETY: fstatat succeeded, so the buffer is initialised.
        let st = unsafe { st.assume_init() };
        let kind = match st.st_mode & libc::S_IFMT {
            libc::S_IFDIR => Kind::Dir,
            libc::S_IFREG => Kind::File,
            libc::S_IFLNK => Kind::Link,
            _ => Kind::Other,
        };
        let secs = u64::try_from(st.st_mtime).unwrap_or(0);
        let nanos = u64::try_from(st.st_mtime_nsec).unwrap_or(0);
        Ok(Some(Stat {
            kind,
            size: u64::try_from(st.st_size).unwrap_or(0),
            modified_ms: secs.saturating_mul(1000) + nanos / 1_000_000,
        }))
    }

    fn openat(&self, name: &str, flags: libc::c_int, mode: libc::mode_t) -> io::Result<OwnedFd> {
        let c = cname(name)?;
        // SAFETY: a valid dir fd and a NUL-terminated name; the result is a new fd
        // that we own.
        let fd = check(unsafe {
            libc::openat(
                self.fd.as_raw_fd(),
                c.as_ptr(),
                flags | libc::O_NOFOLLOW | libc::O_CLOEXEC,
                libc::c_uint::from(mode),
            )
        })?;
        // SAFETY: `fd` was just returned by openat and is owned by nobody else.
        Ok(unsafe { OwnedFd::from_raw_fd(fd) })
    }

    /// Why opening `name` failed, told apart: a link, not a directory, missing.
    fn refused(&self, name: &str, e: io::Error) -> FsError {
        match e.raw_os_error() {
            Some(libc::ELOOP) | Some(libc::ENOTDIR) | Some(libc::EMLINK) => match self.kind(name) {
                Ok(Some(Kind::Link)) => FsError::Link(self.below(name)),
                Ok(Some(Kind::Dir)) => self.io_error(name, e),
                Ok(Some(_)) => FsError::NotDir(self.below(name)),
                _ => self.io_error(name, e),
            },
            _ => self.io_error(name, e),
        }
    }

    /// The subdirectory `name`; with `create`, made if it is missing.
    pub fn child(&self, name: &str, create: bool) -> Result<Dir, FsError> {
        let flags = libc::O_RDONLY | libc::O_DIRECTORY;
        let fd = match self.openat(name, flags, 0) {
            Ok(fd) => fd,
            Err(e) if create && e.raw_os_error() == Some(libc::ENOENT) => {
                self.mkdir(name)?;
                self.openat(name, flags, 0)
                    .map_err(|e| self.refused(name, e))?
            }
            Err(e) => return Err(self.refused(name, e)),
        };
        Ok(Dir {
            fd,
            shown: self.below(name),
        })
    }

    fn mkdir(&self, name: &str) -> Result<(), FsError> {
        let c = cname(name).map_err(|e| self.io_error(name, e))?;
        // SAFETY: a valid dir fd and a NUL-terminated name.
        match check(unsafe { libc::mkdirat(self.fd.as_raw_fd(), c.as_ptr(), 0o755) }) {
            Ok(_) => self.sync().map_err(|e| self.io_error(name, e)),
            // Made meanwhile by another request: opened below like any folder.
            Err(e) if e.raw_os_error() == Some(libc::EEXIST) => Ok(()),
            Err(e) => Err(self.io_error(name, e)),
        }
    }

    /// Walks down `names`, one directory at a time.
    pub fn walk<'a>(
        &self,
        names: impl IntoIterator<Item = &'a str>,
        create: bool,
    ) -> Result<Dir, FsError> {
        let mut names = names.into_iter();
        let Some(first) = names.next() else {
            return self.dup();
        };
        let mut dir = self.child(first, create)?;
        for name in names {
            dir = dir.child(name, create)?;
        }
        Ok(dir)
    }

    fn dup(&self) -> Result<Dir, FsError> {
        let fd = self.fd.try_clone().map_err(|e| self.io_error(".", e))?;
        Ok(Dir {
            fd,
            shown: self.shown.clone(),
        })
    }

    /// The content of the regular file `name`.
    pub fn read(&self, name: &str) -> Result<Vec<u8>, FsError> {
        // Non-blocking, so that a FIFO planted under the name cannot hang the open.
        let fd = self
            .openat(name, libc::O_RDONLY | libc::O_NONBLOCK, 0)
            .map_err(|e| self.refused(name, e))?;
        let mut f = File::from(fd);
        let meta = f.metadata().map_err(|e| self.io_error(name, e))?;
        if !meta.is_file() {
            return Err(FsError::NotFile(self.below(name)));
        }
        let mut out = Vec::with_capacity(meta.len() as usize);
        f.read_to_end(&mut out)
            .map_err(|e| self.io_error(name, e))?;
        Ok(out)
    }

    /// Replaces `name` with `data` atomically and durably. A link by that name is
    /// replaced, never followed.
    pub fn write_atomic(&self, name: &str, data: &[u8]) -> Result<(), FsError> {
        self.write_atomic_mode(name, data, 0o644)
    }

    /// `write_atomic` with the file created with `mode` (before the umask): `0o600`
    /// for files that hold secrets, so that they are never readable by others, not
    /// even for a moment.
    pub fn write_atomic_mode(&self, name: &str, data: &[u8], mode: u32) -> Result<(), FsError> {
        let tmp = temporary_name(name);
        let result = self.write_then_rename(&tmp, name, data, mode);
        if result.is_err() {
            let _ = self.unlink(&tmp);
        }
        result.map_err(|e| self.io_error(name, e))
    }

    fn write_then_rename(&self, tmp: &str, name: &str, data: &[u8], mode: u32) -> io::Result<()> {
        let flags = libc::O_WRONLY | libc::O_CREAT | libc::O_EXCL;
        let mut f = File::from(self.openat(tmp, flags, mode)?);
        f.write_all(data)?;
        f.sync_all()?;
        drop(f);
        let (from, to) = (cname(tmp)?, cname(name)?);
        let fd = self.fd.as_raw_fd();
        // SAFETY: valid dir fds and NUL-terminated names.
        check(unsafe { libc::renameat(fd, from.as_ptr(), fd, to.as_ptr()) })?;
        self.sync()
    }

    fn unlink(&self, name: &str) -> io::Result<()> {
        let c = cname(name)?;
        // SAFETY: a valid dir fd and a NUL-terminated name.
        check(unsafe { libc::unlinkat(self.fd.as_raw_fd(), c.as_ptr(), 0) }).map(drop)
    }

    /// Removes `name` (a link is removed, not its target) durably.
    pub fn remove(&self, name: &str) -> Result<(), FsError> {
        self.unlink(name).map_err(|e| self.io_error(name, e))?;
        self.sync().map_err(|e| self.io_error(name, e))
    }

    /// Removes durably every regular file whose name `gone` picks; one fsync for
    /// all. Folders, links and anything else by such a name are not ours: they
    /// stay. Returns how many were removed.
    pub fn remove_where(&self, gone: impl Fn(&str) -> bool) -> Result<usize, FsError> {
        let mut removed = 0;
        for (name, kind) in self.names().map_err(|e| self.io_error(".", e))? {
            if kind == Kind::File && gone(&name) {
                self.unlink(&name).map_err(|e| self.io_error(&name, e))?;
                removed += 1;
            }
        }
        if removed > 0 {
            self.sync().map_err(|e| self.io_error(".", e))?;
        }
        Ok(removed)
    }

    /// Removes the folder `name` and everything below it, durably. Links inside
    /// are removed themselves, never followed.
    pub fn remove_tree(&self, name: &str) -> Result<(), FsError> {
        self.child(name, false)?.clear()?;
        self.rmdir(name)?;
        self.sync().map_err(|e| self.io_error(name, e))
    }

    /// Removes everything in this directory (not durably: the caller syncs).
    fn clear(&self) -> Result<(), FsError> {
        for (name, kind) in self.names().map_err(|e| self.io_error(".", e))? {
            if kind == Kind::Dir {
                self.child(&name, false)?.clear()?;
                self.rmdir(&name)?;
            } else {
                self.unlink(&name).map_err(|e| self.io_error(&name, e))?;
            }
        }
        Ok(())
    }

    fn rmdir(&self, name: &str) -> Result<(), FsError> {
        let c = cname(name).map_err(|e| self.io_error(name, e))?;
        // SAFETY: a valid dir fd and a NUL-terminated name.
        check(unsafe { libc::unlinkat(self.fd.as_raw_fd(), c.as_ptr(), libc::AT_REMOVEDIR) })
            .map(drop)
            .map_err(|e| self.io_error(name, e))
    }

    /// Moves `name` (a file or folder, or a link itself) to `to_name` in `to`,
    /// durably. Nothing at the destination is replaced: that is an error.
    pub fn rename(&self, name: &str, to: &Dir, to_name: &str) -> Result<(), FsError> {
        let from = cname(name).map_err(|e| self.io_error(name, e))?;
        let dest = cname(to_name).map_err(|e| to.io_error(to_name, e))?;
        // SAFETY: valid dir fds and NUL-terminated names.
        check(unsafe {
            libc::renameat2(
                self.fd.as_raw_fd(),
                from.as_ptr(),
                to.fd.as_raw_fd(),
                dest.as_ptr(),
                libc::RENAME_NOREPLACE,
            )
        })
        .map_err(|e| self.io_error(name, e))?;
        self.sync().map_err(|e| self.io_error(name, e))?;
        to.sync().map_err(|e| to.io_error(to_name, e))
    }

    pub fn sync(&self) -> io::Result<()> {
        // SAFETY: fsync on a descriptor we own.
        check(unsafe { libc::fsync(self.fd.as_raw_fd()) }).map(drop)
    }

    /// The names in this directory (without `.` and `..`).
    pub fn names(&self) -> io::Result<Vec<(String, Kind)>> {
        let mut out = Vec::new();
        let dup = self.fd.try_clone()?;
        let raw: RawFd = std::os::fd::IntoRawFd::into_raw_fd(dup);
        // SAFETY: fdopendir takes ownership of `raw`, a directory fd we own;
        // closedir below releases it.
        let dirp = unsafe { libc::fdopendir(raw) };
        if dirp.is_null() {
            let e = io::Error::last_os_error();
            // SAFETY: fdopendir failed, so `raw` is still ours to close.
            unsafe { libc::close(raw) };
            return Err(e);
        }
        // The duplicate shares its position with `self.fd`: start from the top.
        // SAFETY: `dirp` is a valid open DIR stream.
        unsafe { libc::rewinddir(dirp) };
        loop {
            // SAFETY: `dirp` is a valid open DIR stream.
            let ent = unsafe { libc::readdir(dirp) };
            if ent.is_null() {
                break;
            }
            // SAFETY: readdir returned an entry whose d_name is NUL-terminated.
            let name = unsafe { CStr::from_ptr((*ent).d_name.as_ptr()) };
            let Ok(name) = name.to_str() else { continue };
            if name == "." || name == ".." {
                continue;
            }
            if let Ok(Some(kind)) = self.kind(name) {
                out.push((name.to_string(), kind));
            }
        }
        // SAFETY: closes the stream fdopendir opened (and its fd).
        unsafe { libc::closedir(dirp) };
        Ok(out)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Dir,
    File,
    Link,
    Other,
}

/// What `Dir::stat` tells about a name.
#[derive(Debug, Clone, Copy)]
pub struct Stat {
    pub kind: Kind,
    pub size: u64,
    pub modified_ms: u64,
}

/// `.<name>.tmp-<pid>-<8 hex>`: where `write_atomic` writes before the rename.
fn temporary_name(name: &str) -> String {
    format!(
        ".{name}.tmp-{}-{:08x}",
        std::process::id(),
        rand::random::<u32>()
    )
}

/// Whether `name` is one of `write_atomic`'s temporary files.
pub fn is_temporary(name: &str) -> bool {
    let Some(rest) = name.strip_prefix('.') else {
        return false;
    };
    let Some((target, tail)) = rest.rsplit_once(".tmp-") else {
        return false;
    };
    let Some((pid, hex)) = tail.split_once('-') else {
        return false;
    };
    !target.is_empty()
        && !pid.is_empty()
        && pid.bytes().all(|b| b.is_ascii_digit())
        && hex.len() == 8
        && hex.bytes().all(|b| b.is_ascii_hexdigit())
}

/// Removes the temporary files a killed runtime left below `dir` (only ours, by
/// their name; links are not followed). Returns how many were removed.
pub fn remove_temporaries(dir: &Dir) -> Result<usize, FsError> {
    let mut removed = 0;
    let mut stack = vec![dir.dup()?];
    while let Some(d) = stack.pop() {
        for (name, kind) in d.names().map_err(|e| d.io_error(".", e))? {
            if kind == Kind::Dir {
                stack.push(d.child(&name, false)?);
            }
        }
        removed += d.remove_where(is_temporary)?;
    }
    Ok(removed)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::fs;
    use std::path::PathBuf;

    fn tmpdir(tag: &str) -> PathBuf {
        let d = std::env::temp_dir().join(format!("vwed-fsio-{tag}-{}", std::process::id()));
        let _ = fs::remove_dir_all(&d);
        fs::create_dir_all(&d).expect("mkdir");
        d
    }

    #[test]
    fn atomic_write_replaces_and_leaves_no_temporaries() {
        let d = tmpdir("w");
        let root = Dir::open(&d).expect("open");
        let sub = root.walk(["sub"], true).expect("sub");
        sub.write_atomic("a.py", b"one").expect("write");
        sub.write_atomic("a.py", b"two").expect("write");
        assert_eq!(sub.read("a.py").expect("read"), b"two");
        let names: Vec<_> = fs::read_dir(d.join("sub"))
            .expect("ls")
            .map(|e| e.expect("entry").file_name())
            .collect();
        assert_eq!(names.len(), 1, "{names:?}");
        let _ = fs::remove_dir_all(d);
    }

    #[test]
    fn a_link_anywhere_on_the_way_stops_the_walk() {
        let d = tmpdir("l");
        let outside = tmpdir("outside");
        fs::create_dir_all(outside.join("sub")).expect("mkdir");
        std::os::unix::fs::symlink(&outside, d.join("link")).expect("symlink");
        let root = Dir::open(&d).expect("open");
        for (names, create) in [(vec!["link"], false), (vec!["link", "sub"], true)] {
            match root.walk(names.iter().copied(), create) {
                Err(FsError::Link(p)) => assert_eq!(p, "link"),
                other => panic!("{names:?}: {other:?}"),
            }
        }
        // A file link is neither read nor written through.
        fs::write(outside.join("victim"), "ORIGINAL").expect("victim");
        std::os::unix::fs::symlink(outside.join("victim"), d.join("f")).expect("symlink");
        assert!(matches!(root.read("f"), Err(FsError::Link(_))));
        root.write_atomic("f", b"EVIL").expect("replaces the link");
        assert_eq!(fs::read(outside.join("victim")).expect("read"), b"ORIGINAL");
        assert_eq!(root.kind("f").expect("kind"), Some(Kind::File));
        let _ = fs::remove_dir_all(d);
        let _ = fs::remove_dir_all(outside);
    }

    #[test]
    fn temporaries_are_told_apart_by_their_name() {
        assert!(is_temporary(&temporary_name("main.py")));
        assert!(is_temporary(".a.b.py.tmp-12-0000abcd"));
        for not in [
            "main.py",
            ".main.py",
            ".main.py.tmp-",
            ".main.py.tmp-12-abc",
            ".main.py.tmp-x-0000abcd",
            ".tmp-12-0000abcd",
            "main.py.tmp-12-0000abcd",
        ] {
            assert!(!is_temporary(not), "{not}");
        }
    }
}
