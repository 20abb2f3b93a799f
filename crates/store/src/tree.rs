//! A project's folder as a tree: folders (which exist only on disk) and files
//! (on disk, with their records in redb). Create and delete folders, move and
//! copy files and folders, search inside file contents. Every path goes through
//! `paths.rs` and is reached through `fsio::Dir` (no link followed), like the
//! files API's own.

use std::collections::HashSet;

use super::{FileRec, NewFile, ProjectRec, ScriptStore, StoreError};
use vwed_base::clock::local_now;
use vwed_base::fsio::{self, Dir, FsError};
use vwed_base::paths::check_file_path;
use vwed_db::{self as db, FILES};

/// Most entries a tree lists, files a copy makes or a search reads.
pub const MAX_ENTRIES: usize = 10_000;
/// Deepest folder nesting walked.
const MAX_DEPTH: usize = 32;
/// Most bytes one copy writes.
pub const MAX_COPY_BYTES: u64 = 64 * 1024 * 1024;
/// Longest line text a search hit carries.
const MAX_HIT_CHARS: usize = 240;

#[derive(Debug, thiserror::Error)]
pub enum TreeError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("文件夹 {0} 不存在")]
    NoDir(String),
    #[error("{0} 不存在")]
    NotFound(String),
    #[error("{0} 已存在")]
    Exists(String),
    #[error("文件夹 {0} 不是空的; 要连同内容一起删除请加 recursive=true")]
    NotEmpty(String),
    #[error("{0} 正被运行中的脚本使用, 请先停止: {1}")]
    Running(String, String),
    #[error("不能把 {0} 移动或复制到它自己里面")]
    IntoItself(String),
    #[error("超出上限: {0}")]
    TooLarge(String),
}

impl From<std::io::Error> for TreeError {
    fn from(e: std::io::Error) -> Self {
        TreeError::Store(StoreError::Io(e))
    }
}

impl From<vwed_base::paths::PathError> for TreeError {
    fn from(e: vwed_base::paths::PathError) -> Self {
        TreeError::Store(StoreError::Path(e))
    }
}

vwed_db::from_redb_errors!(TreeError);

impl From<FsError> for TreeError {
    fn from(e: FsError) -> Self {
        TreeError::Store(StoreError::from(e))
    }
}

impl From<vwed_db::DbError> for TreeError {
    fn from(e: vwed_db::DbError) -> Self {
        TreeError::Store(StoreError::Db(e))
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Dir,
    File,
}

/// One folder or file of a project.
#[derive(Debug)]
pub struct Entry {
    pub path: String,
    pub kind: Kind,
    pub size: u64,
    pub modified_ms: u64,
    /// The file's record; `None` for folders and for files put there by hand.
    pub file: Option<FileRec>,
}

/// One line that holds what was searched for.
#[derive(Debug)]
pub struct Hit {
    pub file_id: u64,
    pub project_id: u64,
    pub project_name: String,
    pub file_path: String,
    /// 1-based.
    pub line: usize,
    /// 1-based, in characters.
    pub column: usize,
    pub text: String,
}

/// Which files a script that runs holds: their ids and `<project>/<path>` for the message.
pub type Busy = Vec<(u64, String)>;

/// `dir` and `path` below it: is `path` the same or inside?
fn under(path: &str, dir: &str) -> bool {
    path == dir || path.strip_prefix(dir).is_some_and(|r| r.starts_with('/'))
}

fn rebase(path: &str, from: &str, to: &str) -> String {
    format!("{to}{}", &path[from.len()..])
}

/// One end of a move or copy: the folder that holds it and its name there.
struct End<'a> {
    dir: Dir,
    name: &'a str,
}

impl ScriptStore {
    /// What is at `rel` in the project's folder; `None` when nothing (or no
    /// folder on the way) is there.
    fn stat_at(&self, project: &ProjectRec, rel: &str) -> Result<Option<fsio::Stat>, TreeError> {
        match self.locate(&project.project_name, rel, false) {
            Ok((dir, name)) => Ok(dir.stat(name)?),
            Err(StoreError::FileNotFound(_)) => Ok(None),
            Err(e) => Err(e.into()),
        }
    }

    /// The project's folder, `None` when it is not on disk.
    fn project_folder(&self, project: &ProjectRec) -> Result<Option<Dir>, TreeError> {
        match self.folder(&project.project_name, [], false) {
            Ok(d) => Ok(Some(d)),
            Err(StoreError::FileNotFound(_)) => Ok(None),
            Err(e) => Err(e.into()),
        }
    }

    /// Every folder and file of a project, folders first at each level, by name.
    pub fn tree(&self, project_id: u64) -> Result<(ProjectRec, Vec<Entry>), TreeError> {
        let (project, records) = self.project_files(project_id)?;
        let mut out = Vec::new();
        if let Some(base) = self.project_folder(&project)? {
            walk(&base, "", 0, &mut out)?;
        }
        let mut seen = HashSet::new();
        for e in &mut out {
            if e.kind == Kind::File {
                e.file = records.iter().find(|f| f.file_path == e.path).cloned();
                seen.insert(e.path.clone());
            }
        }
        // A record whose file is gone is listed too, so that it can be deleted.
        for f in records.into_iter().filter(|f| !seen.contains(&f.file_path)) {
            out.push(Entry {
                path: f.file_path.clone(),
                kind: Kind::File,
                size: 0,
                modified_ms: 0,
                file: Some(f),
            });
        }
        Ok((project, out))
    }

    pub fn make_dir(&self, project_id: u64, rel: &str) -> Result<ProjectRec, TreeError> {
        let project = self.get_project(project_id)?;
        let (parent, name) = self.locate(&project.project_name, rel, true)?;
        if parent.kind(name)?.is_some() {
            return Err(TreeError::Exists(format!("{}/{rel}", project.project_name)));
        }
        parent.child(name, true)?;
        Ok(project)
    }

    /// Deletes a folder: its files' records (and versions) first, then the folder.
    pub fn remove_dir(
        &self,
        project_id: u64,
        rel: &str,
        recursive: bool,
        busy: &Busy,
    ) -> Result<usize, TreeError> {
        let (project, records) = self.project_files(project_id)?;
        let no_dir = || TreeError::NoDir(format!("{}/{rel}", project.project_name));
        let (parent, name) = match self.locate(&project.project_name, rel, false) {
            Ok(found) => found,
            Err(StoreError::FileNotFound(_)) => return Err(no_dir()),
            Err(e) => return Err(e.into()),
        };
        if parent.kind(name)? != Some(fsio::Kind::Dir) {
            return Err(no_dir());
        }
        if !recursive && !parent.child(name, false)?.names()?.is_empty() {
            return Err(TreeError::NotEmpty(format!(
                "{}/{rel}",
                project.project_name
            )));
        }
        let mine: Vec<&FileRec> = records
            .iter()
            .filter(|f| under(&f.file_path, rel))
            .collect();
        check_busy(mine.iter().map(|f| f.id), busy, rel)?;
        for f in &mine {
            self.delete_file(f.id)?;
        }
        parent.remove_tree(name)?;
        Ok(mine.len())
    }

    /// Renames or moves a file or folder inside its project; records follow
    /// (same ids, so versions and history stay with the file).
    pub fn move_path(
        &self,
        project_id: u64,
        from: &str,
        to: &str,
        busy: &Busy,
    ) -> Result<usize, TreeError> {
        let (project, records) = self.project_files(project_id)?;
        let (src, dst) = self.endpoints(&project, from, &project, to)?;
        let moved: Vec<&FileRec> = records
            .iter()
            .filter(|f| under(&f.file_path, from))
            .collect();
        check_busy(moved.iter().map(|f| f.id), busy, from)?;
        src.dir.rename(src.name, &dst.dir, dst.name)?;
        let commit = || -> Result<(), TreeError> {
            let tx = self.db.begin_write()?;
            {
                let mut t = tx.open_table(FILES)?;
                for f in &moved {
                    let mut rec = (*f).clone();
                    rec.file_path = rebase(&f.file_path, from, to);
                    rec.file_name = rec.file_path.rsplit('/').next().unwrap_or("").to_string();
                    rec.updated_at = local_now();
                    t.insert(rec.id, db::encode(&rec)?.as_slice())?;
                }
            }
            tx.commit()?;
            Ok(())
        };
        if let Err(e) = commit() {
            // The records still name the old place: put the files back there.
            let _ = dst.dir.rename(dst.name, &src.dir, src.name);
            return Err(e);
        }
        Ok(moved.len())
    }

    /// Copies a file or folder, into the same or another project. Files that
    /// have records get new records (new ids, no versions); the rest is copied
    /// as is, and so are the folders.
    pub fn copy_path(
        &self,
        project_id: u64,
        from: &str,
        to_project: u64,
        to: &str,
    ) -> Result<usize, TreeError> {
        let (project, records) = self.project_files(project_id)?;
        let target = self.get_project(to_project)?;
        let (src, dst) = self.endpoints(&project, from, &target, to)?;
        let mut entries = Vec::new();
        if src.dir.kind(src.name)? == Some(fsio::Kind::Dir) {
            walk(&src.dir.child(src.name, false)?, "", 0, &mut entries)?;
            dst.dir.child(dst.name, true)?;
        } else {
            let size = src.dir.stat(src.name)?.map_or(0, |s| s.size);
            entries.push(Entry {
                path: String::new(),
                kind: Kind::File,
                size,
                modified_ms: 0,
                file: None,
            });
        }
        let bytes: u64 = entries.iter().map(|e| e.size).sum();
        if entries.len() > MAX_ENTRIES || bytes > MAX_COPY_BYTES {
            return Err(TreeError::TooLarge(format!(
                "{} 个文件, {bytes} 字节 (最多 {MAX_ENTRIES} 个文件, {MAX_COPY_BYTES} 字节)",
                entries.len()
            )));
        }
        let at = |base: &str, rel: &str| {
            if rel.is_empty() {
                base.to_string()
            } else {
                format!("{base}/{rel}")
            }
        };
        let mut files = 0;
        for e in &entries {
            let (a, b) = (at(from, &e.path), at(to, &e.path));
            if e.kind == Kind::Dir {
                let (parent, name) = self.locate(&target.project_name, &b, true)?;
                parent.child(name, true)?;
                continue;
            }
            let rec = records.iter().find(|f| f.file_path == a);
            self.copy_one(&project, rec, &a, &target, &b)?;
            files += 1;
        }
        Ok(files)
    }

    fn copy_one(
        &self,
        project: &ProjectRec,
        rec: Option<&FileRec>,
        from: &str,
        target: &ProjectRec,
        to: &str,
    ) -> Result<(), TreeError> {
        let data = self
            .read_at(&project.project_name, from)?
            .ok_or_else(|| TreeError::NotFound(format!("{}/{from}", project.project_name)))?;
        match (rec, String::from_utf8(data)) {
            (Some(f), Ok(content)) => {
                self.create_file(&NewFile {
                    project_id: target.id,
                    file_name: last_name(to),
                    file_path: to,
                    content: &content,
                    file_type: &f.file_type,
                    created_by: &f.created_by,
                    has_boot_function: f.has_boot_function,
                })?;
            }
            (_, text) => {
                let bytes = text.map_or_else(|e| e.into_bytes(), String::into_bytes);
                let (dir, name) = self.locate(&target.project_name, to, true)?;
                dir.write_atomic(name, &bytes)?;
            }
        }
        Ok(())
    }

    /// The source (which must exist) and the destination (which must not) of a
    /// move or copy, checked; the destination's folder is made.
    fn endpoints<'a>(
        &self,
        project: &ProjectRec,
        from: &'a str,
        target: &ProjectRec,
        to: &'a str,
    ) -> Result<(End<'a>, End<'a>), TreeError> {
        check_file_path(from)?;
        check_file_path(to)?;
        let missing = || TreeError::NotFound(format!("{}/{from}", project.project_name));
        let (dir, name) = match self.locate(&project.project_name, from, false) {
            Ok(found) => found,
            Err(StoreError::FileNotFound(_)) => return Err(missing()),
            Err(e) => return Err(e.into()),
        };
        if !matches!(dir.kind(name)?, Some(fsio::Kind::Dir | fsio::Kind::File)) {
            return Err(missing());
        }
        if self.stat_at(target, to)?.is_some() || self.has_record(target.id, to)? {
            return Err(TreeError::Exists(format!("{}/{to}", target.project_name)));
        }
        if project.id == target.id && under(to, from) {
            return Err(TreeError::IntoItself(from.to_string()));
        }
        let (to_dir, to_name) = self.locate(&target.project_name, to, true)?;
        Ok((
            End { dir, name },
            End {
                dir: to_dir,
                name: to_name,
            },
        ))
    }

    fn has_record(&self, project_id: u64, path: &str) -> Result<bool, TreeError> {
        Ok(self
            .all_files()?
            .iter()
            .any(|f| f.project_id == project_id && under(&f.file_path, path)))
    }

    /// Lines of the files (of one project, or all) that hold `needle`, ignoring
    /// case; at most `limit` hits. Returns the hits and whether there were more.
    pub fn grep(
        &self,
        project_id: Option<u64>,
        needle: &str,
        limit: usize,
        max_file_bytes: u64,
    ) -> Result<(Vec<Hit>, bool), TreeError> {
        let lower = needle.to_lowercase();
        let mut hits = Vec::new();
        let files: Vec<FileRec> = self
            .all_files()?
            .into_iter()
            .filter(|f| project_id.is_none_or(|p| p == f.project_id))
            .take(MAX_ENTRIES)
            .collect();
        for f in files {
            let project = self.get_project(f.project_id)?;
            // A file that is gone, too large or not text is not searched.
            match self.stat_at(&project, &f.file_path) {
                Ok(Some(st)) if st.kind == fsio::Kind::File && st.size <= max_file_bytes => {}
                _ => continue,
            }
            let Ok(Some(bytes)) = self.read_at(&project.project_name, &f.file_path) else {
                continue;
            };
            let Ok(text) = String::from_utf8(bytes) else {
                continue;
            };
            for (i, line) in text.lines().enumerate() {
                let Some(col) = find_ci(line, &lower) else {
                    continue;
                };
                if hits.len() >= limit {
                    return Ok((hits, true));
                }
                hits.push(Hit {
                    file_id: f.id,
                    project_id: f.project_id,
                    project_name: project.project_name.clone(),
                    file_path: f.file_path.clone(),
                    line: i + 1,
                    column: col + 1,
                    text: line.chars().take(MAX_HIT_CHARS).collect(),
                });
            }
        }
        Ok((hits, false))
    }
}

/// The last name of a checked path.
fn last_name(path: &str) -> &str {
    path.rsplit('/').next().unwrap_or(path)
}

/// The character column where `lower` (already lower case) starts in `line`.
fn find_ci(line: &str, lower: &str) -> Option<usize> {
    if lower.is_empty() {
        return None;
    }
    let hay = line.to_lowercase();
    let at = hay.find(lower)?;
    Some(hay[..at].chars().count())
}

fn check_busy(ids: impl Iterator<Item = u64>, busy: &Busy, what: &str) -> Result<(), TreeError> {
    let ids: HashSet<u64> = ids.collect();
    let running: Vec<&str> = busy
        .iter()
        .filter(|(id, _)| ids.contains(id))
        .map(|(_, s)| s.as_str())
        .collect();
    if running.is_empty() {
        Ok(())
    } else {
        Err(TreeError::Running(what.to_string(), running.join(", ")))
    }
}

/// Walks a folder: no links, no dot-names (temporaries of atomic writes, git),
/// bounded in depth and count.
fn walk(dir: &Dir, rel: &str, depth: usize, out: &mut Vec<Entry>) -> Result<(), TreeError> {
    if depth > MAX_DEPTH {
        return Ok(());
    }
    let mut items: Vec<(String, fsio::Stat)> = Vec::new();
    for (name, kind) in dir.names()? {
        if name.starts_with('.') || !matches!(kind, fsio::Kind::Dir | fsio::Kind::File) {
            continue;
        }
        if let Some(st) = dir.stat(&name)? {
            items.push((name, st));
        }
    }
    let is_dir = |s: &fsio::Stat| s.kind == fsio::Kind::Dir;
    items.sort_by(|a, b| is_dir(&b.1).cmp(&is_dir(&a.1)).then(a.0.cmp(&b.0)));
    for (name, st) in items {
        if out.len() >= MAX_ENTRIES {
            return Err(TreeError::TooLarge(format!(
                "超过 {MAX_ENTRIES} 个文件和文件夹"
            )));
        }
        let path = if rel.is_empty() {
            name.clone()
        } else {
            format!("{rel}/{name}")
        };
        let folder = is_dir(&st);
        out.push(Entry {
            path: path.clone(),
            kind: if folder { Kind::Dir } else { Kind::File },
            size: if folder { 0 } else { st.size },
            modified_ms: st.modified_ms,
            file: None,
        });
        if folder {
            walk(&dir.child(&name, false)?, &path, depth + 1, out)?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn under_means_the_same_or_inside() {
        assert!(under("a/b.py", "a"));
        assert!(under("a", "a"));
        assert!(!under("ab/c.py", "a"));
        assert!(!under("a.py", "a"));
        assert_eq!(rebase("a/b/c.py", "a/b", "x"), "x/c.py");
    }

    #[test]
    fn search_columns_count_characters() {
        assert_eq!(find_ci("打印 Hello", "hello"), Some(3));
        assert_eq!(find_ci("nothing", "x"), None);
        assert_eq!(find_ci("any", ""), None);
    }
}
