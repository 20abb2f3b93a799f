//! Projects and script files. Sources are plain files under
//! `<data-dir>/projects/<project_name>/<file_path>`; their metadata, previous
//! versions and the set of running scripts live in redb.

mod files;
mod projects;
mod records;
mod running;
mod script_data;

use std::path::{Path, PathBuf};

pub use files::{FileQuery, NewFile};
pub use records::{FileRec, ProjectRec, RunningRec, VersionRec};
pub use running::RunningSet;
pub use script_data::{DataError, ScriptData};

use crate::db::{Db, DbError};
use crate::paths::PathError;

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error(transparent)]
    Db(#[from] DbError),
    #[error(transparent)]
    Path(#[from] PathError),
    #[error("文件读写失败: {0}")]
    Io(#[from] std::io::Error),
    #[error("项目 {0} 不存在")]
    ProjectNotFound(String),
    #[error("项目名称 {0} 已存在")]
    ProjectExists(String),
    #[error("文件 {0} 不存在")]
    FileNotFound(String),
    #[error("文件 {0} 已存在")]
    FileExists(String),
    #[error("路径 {0} 指向项目目录之外")]
    OutsideProject(String),
    #[error("{0}")]
    Invalid(String),
    #[error("脚本 {0} 正在运行, 请先停止后再删除")]
    Running(String),
}

crate::db::from_redb_errors!(StoreError);

#[derive(Clone)]
pub struct ScriptStore {
    db: Db,
    root: PathBuf,
}

impl ScriptStore {
    pub fn new(db: Db, data_dir: &Path) -> std::io::Result<ScriptStore> {
        let root = data_dir.join("projects");
        std::fs::create_dir_all(&root)?;
        Ok(ScriptStore { db, root })
    }

    pub fn db(&self) -> &Db {
        &self.db
    }

    pub fn projects_root(&self) -> &Path {
        &self.root
    }

    fn project_dir(&self, name: &str) -> PathBuf {
        self.root.join(name)
    }
}
