//! Files that must survive a power cut: write to a temporary file in the same
//! directory, fsync it, rename it over the target, fsync the directory. A reader
//! sees the old content or the new, never a truncated file.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};

pub fn write_atomic(path: &Path, data: &[u8]) -> io::Result<()> {
    write_atomic_mode(path, data, 0o666)
}

/// `write_atomic` with the file created with `mode` (before the umask): `0o600`
/// for files that hold secrets, so that they are never readable by others, not
/// even for a moment.
pub fn write_atomic_mode(path: &Path, data: &[u8], mode: u32) -> io::Result<()> {
    use std::os::unix::fs::OpenOptionsExt;
    let dir = path
        .parent()
        .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "path has no parent"))?;
    fs::create_dir_all(dir)?;
    let name = path
        .file_name()
        .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "path has no file name"))?;
    let tmp: PathBuf = dir.join(format!(
        ".{}.tmp-{}-{:08x}",
        name.to_string_lossy(),
        std::process::id(),
        rand::random::<u32>()
    ));
    let result = (|| {
        let mut f = OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(mode)
            .open(&tmp)?;
        f.write_all(data)?;
        f.sync_all()?;
        drop(f);
        fs::rename(&tmp, path)?;
        sync_dir(dir)
    })();
    if result.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    result
}

pub fn remove_durable(path: &Path) -> io::Result<()> {
    fs::remove_file(path)?;
    if let Some(dir) = path.parent() {
        sync_dir(dir)?;
    }
    Ok(())
}

pub fn sync_dir(dir: &Path) -> io::Result<()> {
    File::open(dir)?.sync_all()
}

/// True when `path` and every existing directory between it and `base` are real
/// (not symlinks) and inside `base`: a link placed in a project folder must not
/// lead a write outside it.
pub fn stays_inside(base: &Path, path: &Path) -> io::Result<bool> {
    let base = fs::canonicalize(base)?;
    let mut probe = path.to_path_buf();
    // Find the deepest existing ancestor and check that it resolves inside base.
    loop {
        match fs::symlink_metadata(&probe) {
            Ok(meta) => {
                if meta.file_type().is_symlink() {
                    return Ok(false);
                }
                let real = fs::canonicalize(&probe)?;
                return Ok(real.starts_with(&base));
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => match probe.parent() {
                Some(p) => probe = p.to_path_buf(),
                None => return Ok(false),
            },
            Err(e) => return Err(e),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tmpdir(tag: &str) -> PathBuf {
        let d = std::env::temp_dir().join(format!("vwed-fsio-{tag}-{}", std::process::id()));
        let _ = fs::remove_dir_all(&d);
        fs::create_dir_all(&d).expect("mkdir");
        d
    }

    #[test]
    fn atomic_write_replaces_and_leaves_no_temporaries() {
        let d = tmpdir("w");
        let f = d.join("sub/a.py");
        write_atomic(&f, b"one").expect("write");
        write_atomic(&f, b"two").expect("write");
        assert_eq!(fs::read(&f).expect("read"), b"two");
        let names: Vec<_> = fs::read_dir(d.join("sub"))
            .expect("ls")
            .map(|e| e.expect("entry").file_name())
            .collect();
        assert_eq!(names.len(), 1, "{names:?}");
    }

    #[test]
    fn symlink_out_of_the_project_is_not_inside() {
        let d = tmpdir("l");
        let outside = tmpdir("outside");
        std::os::unix::fs::symlink(&outside, d.join("link")).expect("symlink");
        assert!(!stays_inside(&d, &d.join("link/x.py")).expect("check"));
        assert!(stays_inside(&d, &d.join("new/x.py")).expect("check"));
    }
}
