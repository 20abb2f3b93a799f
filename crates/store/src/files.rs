use redb::{ReadableDatabase, ReadableTable};

use super::{FileRec, ProjectRec, ScriptStore, StoreError, VersionRec, versions};
use vwed_base::clock::local_now;
use vwed_base::fsio::{Dir, FsError, Kind};
use vwed_base::paths::{check_file_name, check_file_path, check_project_name};
use vwed_db::{self as db, FILE_VERSIONS, FILES, PROJECTS};

/// What a new file is made of; `has_boot_function` comes from Python's parser,
/// which the caller ran.
pub struct NewFile<'a> {
    pub project_id: u64,
    pub file_name: &'a str,
    pub file_path: &'a str,
    pub content: &'a str,
    pub file_type: &'a str,
    pub created_by: &'a str,
    pub has_boot_function: bool,
}

/// Search filters of `GET /files/search`.
#[derive(Default)]
pub struct FileQuery<'a> {
    pub keyword: &'a str,
    pub project_id: Option<u64>,
    pub file_type: Option<&'a str>,
    pub has_boot: Option<bool>,
}

/// Where a file's path goes when `file_path` names a folder (empty or ending in
/// `/`); otherwise `file_path` must end with `file_name`.
pub fn resolve_file_path(file_name: &str, file_path: &str) -> Result<String, StoreError> {
    check_file_name(file_name)?;
    let path = if file_path.is_empty() {
        file_name.to_string()
    } else if file_path.ends_with('/') {
        format!("{file_path}{file_name}")
    } else {
        file_path.to_string()
    };
    check_file_path(&path)?;
    let last = path.rsplit('/').next().unwrap_or(&path);
    if last != file_name {
        return Err(StoreError::Invalid(format!(
            "file_name ({file_name}) 与 file_path ({file_path}) 的文件名不一致"
        )));
    }
    Ok(path)
}

/// What an update did.
pub struct Updated {
    pub file: FileRec,
    /// The number of the version that holds the content before the update.
    pub backup_version: u64,
}

impl ScriptStore {
    /// The folder a file lives in (made with `create`) and its name in it; no
    /// link is followed anywhere below the data dir.
    pub(super) fn locate<'a>(
        &self,
        project: &str,
        file_path: &'a str,
        create: bool,
    ) -> Result<(Dir, &'a str), StoreError> {
        check_file_path(file_path)?;
        let (dirs, name) = match file_path.rsplit_once('/') {
            Some((dirs, name)) => (Some(dirs), name),
            None => (None, file_path),
        };
        let below = dirs.into_iter().flat_map(|d| d.split('/'));
        let dir = self.folder(project, below, create)?;
        Ok((dir, name))
    }

    /// The bytes at `file_path` in the project folder `project`, whether a file
    /// record names it or not; `None` when nothing is there. A link is an error,
    /// never read through.
    pub fn read_at(&self, project: &str, file_path: &str) -> Result<Option<Vec<u8>>, StoreError> {
        check_project_name(project)?;
        let (dir, name) = match self.locate(project, file_path, false) {
            Ok(found) => found,
            Err(StoreError::FileNotFound(_)) => return Ok(None),
            Err(e) => return Err(e),
        };
        match dir.read(name) {
            Ok(bytes) => Ok(Some(bytes)),
            Err(FsError::NotFound(_)) => Ok(None),
            Err(e) => Err(e.into()),
        }
    }

    /// Removes durably whatever is at `file_path` in the project folder (a link
    /// itself, not its target): for a file no record names, such as one a create
    /// cut short left behind.
    pub fn remove_at(&self, project: &str, file_path: &str) -> Result<(), StoreError> {
        check_project_name(project)?;
        let (dir, name) = self.locate(project, file_path, false)?;
        match dir.remove(name) {
            Ok(()) | Err(FsError::NotFound(_)) => Ok(()),
            Err(e) => Err(e.into()),
        }
    }

    pub fn create_file(&self, new: &NewFile<'_>) -> Result<(ProjectRec, FileRec), StoreError> {
        let project = self.get_project(new.project_id)?;
        let file_path = resolve_file_path(new.file_name, new.file_path)?;
        let exists = || StoreError::FileExists(format!("{}/{}", project.project_name, file_path));
        let (dir, name) = self.locate(&project.project_name, &file_path, true)?;
        let tx = self.db.begin_write()?;
        let rec = {
            let mut t = tx.open_table(FILES)?;
            for row in t.iter()? {
                let (_, v) = row?;
                let f: FileRec = db::decode(v.value())?;
                if f.project_id == new.project_id && f.file_path == file_path {
                    return Err(exists());
                }
            }
            match dir.kind(name)? {
                None => {}
                Some(Kind::Link) => {
                    return Err(
                        FsError::Link(format!("{}/{file_path}", project.project_name)).into(),
                    );
                }
                Some(_) => return Err(exists()),
            }
            let now = local_now();
            let rec = FileRec {
                id: db::next_id(&tx, "file_id")?,
                project_id: new.project_id,
                file_name: new.file_name.to_string(),
                file_path: file_path.clone(),
                file_type: new.file_type.to_string(),
                size: new.content.len() as u64,
                has_boot_function: new.has_boot_function,
                status: "active".into(),
                created_by: new.created_by.to_string(),
                created_at: now.clone(),
                updated_at: now,
                versions: 0,
                versions_pruned: 0,
            };
            t.insert(rec.id, db::encode(&rec)?.as_slice())?;
            rec
        };
        dir.write_atomic(name, new.content.as_bytes())?;
        tx.commit()?;
        Ok((project, rec))
    }

    pub fn get_file(&self, id: u64) -> Result<FileRec, StoreError> {
        let rx = self.db.begin_read()?;
        let t = rx.open_table(FILES)?;
        let v = t
            .get(id)?
            .ok_or_else(|| StoreError::FileNotFound(id.to_string()))?;
        let mut rec: FileRec = db::decode(v.value())?;
        rec.versions_pruned = versions::pruned(&rx, id)?;
        Ok(rec)
    }

    /// The file's record and its current content, read from disk.
    pub fn read_file(&self, id: u64) -> Result<(ProjectRec, FileRec, String), StoreError> {
        let mut rec = self.get_file(id)?;
        let project = self.get_project(rec.project_id)?;
        let (dir, name) = self.locate(&project.project_name, &rec.file_path, false)?;
        let bytes = dir.read(name).map_err(|e| match e {
            FsError::NotFound(_) => StoreError::FileNotFound(format!(
                "{}/{} (磁盘上不存在)",
                project.project_name, rec.file_path
            )),
            FsError::Link(_) => StoreError::OutsideProject(format!(
                "{}/{} (符号链接)",
                project.project_name, rec.file_path
            )),
            other => other.into(),
        })?;
        let content = String::from_utf8(bytes)
            .map_err(|_| StoreError::Invalid(format!("文件 {} 不是 UTF-8 文本", rec.file_path)))?;
        // The file may have been changed outside the API (git pull, an editor).
        rec.size = content.len() as u64;
        Ok((project, rec, content))
    }

    /// Replaces the content, keeping the previous one as a version. With `base`,
    /// only if the file is still at that version (see `FileRec::version`).
    /// Updates of one file take turns, so each one's previous content is the
    /// content the update before it wrote: none is lost from history.
    pub fn update_file(
        &self,
        id: u64,
        content: &str,
        updated_by: &str,
        has_boot_function: bool,
        base: Option<u64>,
    ) -> Result<Updated, StoreError> {
        let _turn = self.turn(id);
        let (project, _, old) = self.read_file(id)?;
        let tx = self.db.begin_write()?;
        let mut rec: FileRec = {
            let t = tx.open_table(FILES)?;
            let v = t
                .get(id)?
                .ok_or_else(|| StoreError::FileNotFound(id.to_string()))?;
            db::decode(v.value())?
        };
        if let Some(base) = base.filter(|b| *b != rec.version()) {
            return Err(StoreError::VersionConflict {
                file: format!("{}/{}", project.project_name, rec.file_path),
                current: rec.version(),
                base,
            });
        }
        let (dir, name) = self.locate(&project.project_name, &rec.file_path, false)?;
        let backup_version = rec.versions + 1;
        let saved = VersionRec {
            content: old,
            saved_at: local_now(),
            saved_by: updated_by.to_string(),
        };
        versions::save(&tx, id, backup_version, &saved, self.versions)?;
        rec.versions = backup_version;
        rec.size = content.len() as u64;
        rec.has_boot_function = has_boot_function;
        rec.updated_at = local_now();
        tx.open_table(FILES)?
            .insert(id, db::encode(&rec)?.as_slice())?;
        // The old content is durable before the file is replaced.
        tx.commit()?;
        dir.write_atomic(name, content.as_bytes())?;
        let rx = self.db.begin_read()?;
        rec.versions_pruned = versions::pruned(&rx, id)?;
        Ok(Updated {
            file: rec,
            backup_version,
        })
    }

    pub fn delete_file(&self, id: u64) -> Result<FileRec, StoreError> {
        let _turn = self.turn(id);
        let rec = self.get_file(id)?;
        let project = self.get_project(rec.project_id)?;
        let (dir, name) = self.locate(&project.project_name, &rec.file_path, false)?;
        let tx = self.db.begin_write()?;
        tx.open_table(FILES)?.remove(id)?;
        versions::forget(&tx, id)?;
        tx.commit()?;
        match dir.remove(name) {
            Ok(()) | Err(FsError::NotFound(_)) => Ok(rec),
            Err(e) => Err(e.into()),
        }
    }

    /// The kept versions of a file, oldest first, and how many were pruned.
    pub fn list_versions(&self, id: u64) -> Result<(Vec<(u64, VersionRec)>, u64), StoreError> {
        let file = self.get_file(id)?;
        let rx = self.db.begin_read()?;
        let t = rx.open_table(FILE_VERSIONS)?;
        let mut out = Vec::new();
        for row in t.range((id, 0)..=(id, u64::MAX))? {
            let (k, v) = row?;
            out.push((k.value().1, db::decode(v.value())?));
        }
        Ok((out, file.versions_pruned))
    }

    /// Version `n` of a file, if it is kept.
    pub fn get_version(&self, id: u64, n: u64) -> Result<Option<VersionRec>, StoreError> {
        self.get_file(id)?;
        let rx = self.db.begin_read()?;
        let t = rx.open_table(FILE_VERSIONS)?;
        match t.get((id, n))? {
            Some(v) => Ok(Some(db::decode(v.value())?)),
            None => Ok(None),
        }
    }

    pub fn all_files(&self) -> Result<Vec<FileRec>, StoreError> {
        let rx = self.db.begin_read()?;
        let t = rx.open_table(FILES)?;
        let mut out = Vec::new();
        for row in t.iter()? {
            let (_, v) = row?;
            out.push(db::decode(v.value())?);
        }
        Ok(out)
    }

    pub fn project_files(&self, project_id: u64) -> Result<(ProjectRec, Vec<FileRec>), StoreError> {
        let project = self.get_project(project_id)?;
        let files = self
            .all_files()?
            .into_iter()
            .filter(|f| f.project_id == project_id)
            .collect();
        Ok((project, files))
    }

    pub fn search(&self, q: &FileQuery<'_>) -> Result<Vec<(FileRec, String)>, StoreError> {
        let rx = self.db.begin_read()?;
        let pt = rx.open_table(PROJECTS)?;
        let kw = q.keyword.to_lowercase();
        let mut out = Vec::new();
        for f in self.all_files()? {
            if q.project_id.is_some_and(|p| p != f.project_id)
                || q.file_type.is_some_and(|t| t != f.file_type)
                || q.has_boot.is_some_and(|b| b != f.has_boot_function)
            {
                continue;
            }
            let project_name = match pt.get(f.project_id)? {
                Some(v) => db::decode::<ProjectRec>(v.value())?.project_name,
                None => continue,
            };
            if kw.is_empty()
                || f.file_name.to_lowercase().contains(&kw)
                || f.file_path.to_lowercase().contains(&kw)
            {
                out.push((f, project_name));
            }
        }
        Ok(out)
    }

    /// `<project_name>/<file_path>` → the file.
    pub fn resolve_script_path(
        &self,
        script_path: &str,
    ) -> Result<(ProjectRec, FileRec), StoreError> {
        let not_found = || StoreError::FileNotFound(script_path.to_string());
        let (project_name, file_path) = script_path.split_once('/').ok_or_else(not_found)?;
        check_file_path(file_path)?;
        let project = self
            .project_by_name(project_name)
            .map_err(|_| not_found())?;
        let file = self
            .all_files()?
            .into_iter()
            .find(|f| f.project_id == project.id && f.file_path == file_path)
            .ok_or_else(not_found)?;
        Ok((project, file))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn file_path_rules() {
        assert_eq!(resolve_file_path("a.py", "").expect("ok"), "a.py");
        assert_eq!(resolve_file_path("a.py", "dir/").expect("ok"), "dir/a.py");
        assert_eq!(
            resolve_file_path("a.py", "dir/a.py").expect("ok"),
            "dir/a.py"
        );
        assert!(resolve_file_path("a.py", "b.py").is_err());
        assert!(resolve_file_path("a.py", "../a.py").is_err());
        assert!(resolve_file_path("../a.py", "").is_err());
    }
}
