//! A tar archive (POSIX ustar, with a PAX header for long names) built in
//! memory within a byte bound: a project's download. Files only; folders are
//! implied by the paths.

/// Why an archive was not made.
#[derive(Debug, thiserror::Error)]
pub enum ArchiveError {
    #[error("项目过大, 无法打包下载: 超过 {0} 字节")]
    TooLarge(u64),
    #[error("文件读写失败: {0}")]
    Io(#[from] std::io::Error),
}

const BLOCK: usize = 512;

pub struct Tar {
    buf: Vec<u8>,
    max: u64,
}

fn octal(field: &mut [u8], value: u64) {
    let n = field.len() - 1;
    let s = format!("{value:0n$o}");
    let bytes = s.as_bytes();
    // A value too large for its field keeps its low digits; sizes are bounded far below.
    let start = bytes.len().saturating_sub(n);
    field[..n].copy_from_slice(&bytes[start..]);
    field[n] = 0;
}

fn header(name: &[u8], size: u64, mtime: u64, kind: u8) -> [u8; BLOCK] {
    let mut h = [0u8; BLOCK];
    let n = name.len().min(100);
    h[..n].copy_from_slice(&name[..n]);
    octal(&mut h[100..108], 0o644);
    octal(&mut h[108..116], 0);
    octal(&mut h[116..124], 0);
    octal(&mut h[124..136], size);
    octal(&mut h[136..148], mtime);
    h[156] = kind;
    h[257..263].copy_from_slice(b"ustar\0");
    h[263..265].copy_from_slice(b"00");
    h[148..156].copy_from_slice(b"        ");
    let sum: u64 = h.iter().map(|b| u64::from(*b)).sum();
    octal(&mut h[148..155], sum);
    h[155] = b' ';
    h
}

/// A PAX record `"<len> path=<path>\n"`, whose length counts itself.
fn pax_path(path: &str) -> Vec<u8> {
    let body = format!(" path={path}\n");
    let mut len = body.len() + 1;
    while format!("{len}").len() + body.len() != len {
        len += 1;
    }
    format!("{len}{body}").into_bytes()
}

impl Tar {
    pub fn new(max: u64) -> Tar {
        Tar {
            buf: Vec::new(),
            max,
        }
    }

    fn push(&mut self, bytes: &[u8]) -> Result<(), ArchiveError> {
        let padded = bytes.len().div_ceil(BLOCK) * BLOCK;
        if (self.buf.len() + padded + 2 * BLOCK) as u64 > self.max {
            return Err(ArchiveError::TooLarge(self.max));
        }
        self.buf.extend_from_slice(bytes);
        self.buf.resize(self.buf.len() + (padded - bytes.len()), 0);
        Ok(())
    }

    pub fn add(&mut self, path: &str, data: &[u8], mtime: u64) -> Result<(), ArchiveError> {
        if path.len() > 100 {
            let pax = pax_path(path);
            self.push(&header(b"././@PaxHeader", pax.len() as u64, mtime, b'x'))?;
            self.push(&pax)?;
        }
        self.push(&header(path.as_bytes(), data.len() as u64, mtime, b'0'))?;
        self.push(data)
    }

    /// The archive with its two closing zero blocks.
    pub fn finish(mut self) -> Vec<u8> {
        self.buf.resize(self.buf.len() + 2 * BLOCK, 0);
        self.buf
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tar_is_read_back_by_the_system_tar() {
        let mut t = Tar::new(1 << 20);
        t.add("p/main.py", b"print(1)\n", 1_700_000_000)
            .expect("add");
        let long = format!("p/{}/x.py", "d".repeat(120));
        t.add(&long, b"x = 1\n", 1_700_000_000).expect("add long");
        t.add("p/测试.py", "# 中文\n".as_bytes(), 0)
            .expect("add utf8");
        let bytes = t.finish();
        assert_eq!(bytes.len() % BLOCK, 0);
        let dir = std::env::temp_dir().join(format!("vwed-tar-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("mkdir");
        let file = dir.join("a.tar");
        std::fs::write(&file, &bytes).expect("write");
        let out = std::process::Command::new("tar")
            .arg("-xf")
            .arg(&file)
            .arg("-C")
            .arg(&dir)
            .output()
            .expect("tar runs");
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert_eq!(
            std::fs::read(dir.join("p/main.py")).expect("main"),
            b"print(1)\n"
        );
        assert_eq!(std::fs::read(dir.join(&long)).expect("long"), b"x = 1\n");
        assert_eq!(
            std::fs::read_to_string(dir.join("p/测试.py")).expect("utf8"),
            "# 中文\n"
        );
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn an_archive_over_its_bound_is_refused() {
        let mut t = Tar::new(4 * BLOCK as u64);
        assert!(t.add("a", &[1; 100], 0).is_ok());
        assert!(matches!(
            t.add("b", &[1; 100], 0),
            Err(ArchiveError::TooLarge(_))
        ));
    }
}
