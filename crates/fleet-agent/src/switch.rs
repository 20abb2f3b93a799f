//! The switch: makes a [`Target`] true in the project folders, the file records,
//! the managed set and the running set. Every part is idempotent, so a switch cut
//! short by a power cut is simply done again after the restart, and a rollback is
//! the same switch towards the snapshot taken before.

use std::collections::{BTreeMap, BTreeSet};

use super::blobs::BlobStore;
use super::state::{Target, TargetFile, TargetProject, TargetRun, in_projects};
use vwed_db::DbError;
use vwed_fleet_proto::crypto;
use vwed_fleet_proto::manifest::Manifest;
use vwed_store::{NewFile, ProjectRec, ScriptStore, StoreError};

#[derive(Debug, thiserror::Error)]
pub enum SwitchError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Db(#[from] DbError),
    #[error("文件 {path} 的内容 ({digest}) 无法读取: {source}")]
    Blob {
        path: String,
        digest: String,
        #[source]
        source: vwed_base::fsio::FsError,
    },
    #[error("文件 {0} 不是 UTF-8 文本, 无法保存以备回滚")]
    NotText(String),
}

vwed_db::from_redb_errors!(SwitchError);

pub const CREATED_BY: &str = "fleet";

/// The type a file gets in its record.
pub fn file_type(path: &str) -> &'static str {
    if path.ends_with(".py") {
        "python"
    } else {
        "text"
    }
}

/// What the manifest asks for: its projects with their files, the projects of
/// the deployment before that it no longer lists (released, files left as they
/// are, their scripts stopped), and its scripts.
pub fn plan(m: &Manifest, has_boot: &BTreeMap<String, bool>, previous: &[String]) -> Target {
    let mut projects: Vec<TargetProject> = m
        .projects
        .iter()
        .map(|p| TargetProject {
            name: p.name.clone(),
            managed: true,
            files: Some(
                p.files
                    .iter()
                    .map(|f| TargetFile {
                        path: f.path.clone(),
                        sha256: f.sha256.clone(),
                        has_boot: has_boot.get(&f.sha256).copied().unwrap_or(false),
                        file_type: file_type(&f.path).to_string(),
                    })
                    .collect(),
            ),
        })
        .collect();
    for name in previous {
        if !projects.iter().any(|p| &p.name == name) {
            projects.push(TargetProject {
                name: name.clone(),
                managed: false,
                files: None,
            });
        }
    }
    let run = m
        .run
        .iter()
        .map(|r| TargetRun {
            script: r.script.clone(),
            params: match &r.start_params {
                serde_json::Value::Null => "{}".to_string(),
                v => v.to_string(),
            },
        })
        .collect();
    Target { projects, run }
}

/// How the projects a plan touches are now: their files (kept as blobs), whether
/// fleet sync owns them, and which of their scripts are in the running set.
pub fn snapshot(
    store: &ScriptStore,
    blobs: &BlobStore,
    names: &[String],
    managed: &BTreeSet<String>,
) -> Result<Target, SwitchError> {
    let mut projects = Vec::new();
    for name in names {
        let files = match store.project_by_name(name) {
            Ok(p) => {
                let (_, recs) = store.project_files(p.id)?;
                let mut files = Vec::new();
                for f in recs {
                    // A record whose file is gone has nothing to keep.
                    let Some(data) = store.read_at(&p.project_name, &f.file_path)? else {
                        continue;
                    };
                    if std::str::from_utf8(&data).is_err() {
                        return Err(SwitchError::NotText(format!("{name}/{}", f.file_path)));
                    }
                    let sha256 = blobs.put(&data).map_err(StoreError::from)?;
                    files.push(TargetFile {
                        path: f.file_path,
                        sha256,
                        has_boot: f.has_boot_function,
                        file_type: f.file_type,
                    });
                }
                files
            }
            Err(StoreError::ProjectNotFound(_)) => Vec::new(),
            Err(e) => return Err(e.into()),
        };
        projects.push(TargetProject {
            name: name.clone(),
            managed: managed.contains(name),
            files: Some(files),
        });
    }
    let run = vwed_store::RunningSet::new(store.db().clone())
        .all()?
        .into_iter()
        .filter(|(path, _)| in_projects(path, names))
        .map(|(script, rec)| TargetRun {
            script,
            params: rec.start_params,
        })
        .collect();
    Ok(Target { projects, run })
}

/// Writes the target's files and records; `written` is told after each file.
pub fn write_files(
    store: &ScriptStore,
    blobs: &BlobStore,
    target: &Target,
    written: &dyn Fn(),
) -> Result<(), SwitchError> {
    for p in &target.projects {
        let Some(files) = &p.files else { continue };
        let project = match store.project_by_name(&p.name) {
            Ok(project) => project,
            Err(StoreError::ProjectNotFound(_)) if files.is_empty() => continue,
            Err(StoreError::ProjectNotFound(_)) => {
                store.create_project(&p.name, "fleet 部署的项目", CREATED_BY)?
            }
            Err(e) => return Err(e.into()),
        };
        let (_, existing) = store.project_files(project.id)?;
        for f in files {
            let data = blobs.get(&f.sha256).map_err(|source| SwitchError::Blob {
                path: format!("{}/{}", p.name, f.path),
                digest: f.sha256.clone(),
                source,
            })?;
            let text = String::from_utf8(data).map_err(|_| SwitchError::NotText(f.path.clone()))?;
            let rec = existing.iter().find(|r| r.file_path == f.path);
            // Unreadable (a link, a folder) counts as taken: it is replaced.
            let on_disk = store.read_at(&p.name, &f.path);
            let same = matches!(&on_disk, Ok(Some(d)) if crypto::sha256_hex(d) == f.sha256);
            if rec.is_some() && same {
                continue;
            }
            let taken = !matches!(on_disk, Ok(None));
            put_file(store, &project, rec.map(|r| r.id), f, &text, taken)?;
            written();
        }
        for r in existing
            .iter()
            .filter(|r| !files.iter().any(|f| f.path == r.file_path))
        {
            store.delete_file(r.id)?;
            written();
        }
    }
    Ok(())
}

/// Replaces or creates one file. A record whose file cannot be read as text (gone,
/// changed outside the API, replaced by a link) is replaced whole.
fn put_file(
    store: &ScriptStore,
    project: &ProjectRec,
    rec: Option<u64>,
    f: &TargetFile,
    text: &str,
    taken: bool,
) -> Result<(), SwitchError> {
    if let Some(id) = rec {
        match store.update_file(id, text, CREATED_BY, f.has_boot, None) {
            Ok(_) => return Ok(()),
            Err(
                StoreError::FileNotFound(_)
                | StoreError::Invalid(_)
                | StoreError::OutsideProject(_),
            ) => {
                store.delete_file(id)?;
            }
            Err(e) => return Err(e.into()),
        }
    } else if taken {
        // Left by a create cut short before its record committed.
        store.remove_at(&project.project_name, &f.path)?;
    }
    let name = f.path.rsplit('/').next().unwrap_or(&f.path);
    store.create_file(&NewFile {
        project_id: project.id,
        file_name: name,
        file_path: &f.path,
        content: text,
        file_type: &f.file_type,
        created_by: CREATED_BY,
        has_boot_function: f.has_boot,
    })?;
    Ok(())
}
