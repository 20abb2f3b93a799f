//! Projects and script files. Sources are plain files under
//! `<data-dir>/projects/<project_name>/<file_path>`; their metadata, previous
//! versions and the set of running scripts live in redb.

mod files;
pub mod policy;
mod projects;
mod records;
mod running;
pub mod sample;
mod script_data;
pub mod sources;
pub mod tree;
mod versions;

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};
use vwed_base::sync::Locked;

pub use files::{FileQuery, NewFile};
pub use records::{FileRec, ProjectRec, RunningRec, VersionRec};
pub use running::RunningSet;
pub use script_data::{DataError, ScriptData};
pub use versions::VersionLimits;

use vwed_base::fsio::{self, Dir, FsError};
use vwed_base::paths::PathError;
use vwed_db::{Db, DbError};

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
    /// An update based on a version that is no longer the file's current one.
    #[error(
        "文件 {file} 已被修改: 当前版本 {current}, 本次修改基于版本 {base}, 请重新读取后再保存"
    )]
    VersionConflict {
        file: String,
        current: u64,
        base: u64,
    },
    #[error("{0}")]
    Invalid(String),
    #[error("脚本 {0} 正在运行, 请先停止后再删除")]
    Running(String),
}

vwed_db::from_redb_errors!(StoreError);

impl From<FsError> for StoreError {
    fn from(e: FsError) -> Self {
        match e {
            FsError::Link(p) => StoreError::OutsideProject(format!("{p} (符号链接)")),
            FsError::NotDir(_) | FsError::NotFile(_) => StoreError::Invalid(e.to_string()),
            FsError::NotFound(p) => StoreError::FileNotFound(format!("{p} (磁盘上不存在)")),
            FsError::Io { source, .. } => StoreError::Io(source),
        }
    }
}

/// Folder of the project sources, below the data dir.
const PROJECTS: &str = "projects";
/// Updates and deletes of one file take turns on one of these, chosen by id.
const FILE_TURNS: usize = 16;

#[derive(Clone)]
pub struct ScriptStore {
    db: Db,
    data_dir: PathBuf,
    versions: VersionLimits,
    turns: Arc<[Mutex<()>; FILE_TURNS]>,
}

impl ScriptStore {
    pub fn new(db: Db, data_dir: &Path) -> std::io::Result<ScriptStore> {
        std::fs::create_dir_all(data_dir.join(PROJECTS))?;
        Ok(ScriptStore {
            db,
            data_dir: data_dir.to_path_buf(),
            versions: VersionLimits::default(),
            turns: Arc::new(std::array::from_fn(|_| Mutex::new(()))),
        })
    }

    pub fn with_version_limits(mut self, limits: VersionLimits) -> ScriptStore {
        self.versions = limits;
        self
    }

    /// Once at start: indexes and prunes stored versions, and removes the
    /// temporary files a killed runtime left in the project folders. Returns how
    /// many of those there were.
    pub fn prepare(&self) -> Result<usize, StoreError> {
        versions::prepare(&self.db, self.versions)?;
        Ok(fsio::remove_temporaries(&self.projects_dir(false)?)?)
    }

    /// `<data-dir>/projects`, reached without following a link.
    fn projects_dir(&self, create: bool) -> Result<Dir, StoreError> {
        let data = Dir::open(&self.data_dir)?;
        Ok(data.walk([PROJECTS], create)?)
    }

    /// The folder of a project, or a folder below it, reached without following
    /// a link; with `create`, made where missing.
    fn folder<'a>(
        &self,
        project: &'a str,
        below: impl IntoIterator<Item = &'a str>,
        create: bool,
    ) -> Result<Dir, StoreError> {
        let dirs = [project].into_iter().chain(below);
        Ok(self.projects_dir(create)?.walk(dirs, create)?)
    }

    /// Serialises the updates and the delete of one file.
    fn turn(&self, file_id: u64) -> MutexGuard<'_, ()> {
        self.turns[(file_id % FILE_TURNS as u64) as usize].locked()
    }

    pub fn db(&self) -> &Db {
        &self.db
    }
}
