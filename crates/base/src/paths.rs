//! Names that become files. Every path that arrives through the API is checked
//! here before it touches the disk: nothing outside a project folder can be named.

use std::path::{Component, Path};

pub const MAX_PROJECT_NAME_CHARS: usize = 100;
pub const MAX_FILE_NAME_BYTES: usize = 255;
pub const MAX_FILE_PATH_CHARS: usize = 500;

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum PathError {
    #[error("{what}不能为空")]
    Empty { what: &'static str },
    #[error("{what}过长 (最多 {max} 个字符)")]
    TooLong { what: &'static str, max: usize },
    /// The filesystem's own limit on one name: 255 bytes of UTF-8, so about 85
    /// Chinese characters.
    #[error("{what}过长: 每一级名称最多 {max} 字节 (UTF-8, 约 85 个汉字)")]
    TooManyBytes { what: &'static str, max: usize },
    #[error("{what}不能是绝对路径")]
    Absolute { what: &'static str },
    #[error("{what}不能包含 '..' 或 '.' 段")]
    Traversal { what: &'static str },
    #[error("{what}包含非法字符 (NUL、反斜杠或控制字符)")]
    BadChar { what: &'static str },
    #[error("{what}不能以 '.' 开头")]
    Hidden { what: &'static str },
}

fn check_segment(seg: &str, what: &'static str) -> Result<(), PathError> {
    if seg.is_empty() {
        return Err(PathError::Empty { what });
    }
    if seg == "." || seg == ".." {
        return Err(PathError::Traversal { what });
    }
    if seg
        .chars()
        .any(|c| c == '\0' || c == '\\' || c.is_control())
    {
        return Err(PathError::BadChar { what });
    }
    // Dot-files are where atomic writes keep their temporaries (and where git
    // keeps its own data); the API never names them.
    if seg.starts_with('.') {
        return Err(PathError::Hidden { what });
    }
    if seg.len() > MAX_FILE_NAME_BYTES {
        return Err(PathError::TooManyBytes {
            what,
            max: MAX_FILE_NAME_BYTES,
        });
    }
    Ok(())
}

/// A project name is one directory under `<data-dir>/projects`.
pub fn check_project_name(name: &str) -> Result<(), PathError> {
    let what = "项目名称";
    if name.trim().is_empty() {
        return Err(PathError::Empty { what });
    }
    if name.chars().count() > MAX_PROJECT_NAME_CHARS {
        return Err(PathError::TooLong {
            what,
            max: MAX_PROJECT_NAME_CHARS,
        });
    }
    if name.contains('/') {
        return Err(PathError::Traversal { what });
    }
    check_segment(name, what)
}

/// A file path relative to its project folder, `/`-separated.
pub fn check_file_path(path: &str) -> Result<(), PathError> {
    let what = "文件路径";
    if path.is_empty() {
        return Err(PathError::Empty { what });
    }
    if path.chars().count() > MAX_FILE_PATH_CHARS {
        return Err(PathError::TooLong {
            what,
            max: MAX_FILE_PATH_CHARS,
        });
    }
    if path.starts_with('/') || Path::new(path).is_absolute() {
        return Err(PathError::Absolute { what });
    }
    for seg in path.split('/') {
        check_segment(seg, what)?;
    }
    // Belt and braces: the std parser must agree that this stays below its base.
    if Path::new(path)
        .components()
        .any(|c| !matches!(c, Component::Normal(_)))
    {
        return Err(PathError::Traversal { what });
    }
    Ok(())
}

pub fn check_file_name(name: &str) -> Result<(), PathError> {
    let what = "文件名";
    if name.contains('/') {
        return Err(PathError::BadChar { what });
    }
    check_segment(name, what)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn traversal_and_absolute_paths_are_refused() {
        for bad in [
            "../x.py",
            "a/../../x.py",
            "/etc/passwd",
            "a//b.py",
            "./a.py",
            "a/./b.py",
            "a\\..\\b.py",
            "a\0b.py",
            ".git/config",
            "",
        ] {
            assert!(check_file_path(bad).is_err(), "{bad:?} must be refused");
        }
        for good in [
            "main.py",
            "robot/dispatch.py",
            "测试/脚本.py",
            "a b/c-d_e.py",
        ] {
            assert!(check_file_path(good).is_ok(), "{good:?} must be accepted");
        }
    }

    #[test]
    fn over_long_names_are_refused() {
        let long_seg = "a".repeat(256);
        assert!(check_file_path(&long_seg).is_err());
        let long_path = vec!["abcd"; 120].join("/");
        assert!(check_file_path(&long_path).is_err());
        assert!(check_project_name(&"a".repeat(101)).is_err());
        assert!(check_project_name(&"a".repeat(100)).is_ok());
        // A folder name holds 255 bytes: 85 three-byte characters.
        assert!(check_project_name(&"项".repeat(85)).is_ok());
        assert!(matches!(
            check_project_name(&"项".repeat(86)),
            Err(PathError::TooManyBytes { .. })
        ));
    }

    #[test]
    fn project_names_are_single_segments() {
        assert!(check_project_name("a/b").is_err());
        assert!(check_project_name("..").is_err());
        assert!(check_project_name("  ").is_err());
        assert!(check_project_name("测试项目").is_ok());
    }
}
