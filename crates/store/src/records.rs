use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ProjectRec {
    pub id: u64,
    pub project_name: String,
    pub description: String,
    pub status: String,
    pub created_by: String,
    pub created_at: String,
    pub updated_at: String,
}

impl ProjectRec {
    pub fn project_path(&self) -> String {
        format!("projects/{}", self.project_name)
    }

    pub fn to_json(&self) -> Value {
        json!({
            "id": self.id,
            "project_name": self.project_name,
            "project_path": self.project_path(),
            "description": self.description,
            "status": self.status,
            "created_by": self.created_by,
            "created_at": self.created_at,
            "updated_at": self.updated_at,
        })
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct FileRec {
    pub id: u64,
    pub project_id: u64,
    pub file_name: String,
    pub file_path: String,
    pub file_type: String,
    pub size: u64,
    pub has_boot_function: bool,
    pub status: String,
    pub created_by: String,
    pub created_at: String,
    pub updated_at: String,
    /// The number of the newest saved version (0: never updated). Versions are
    /// numbered in saving order; pruning removes the oldest, never renumbers.
    pub versions: u64,
    /// Versions of this file pruned so far; filled in when read, kept in its own
    /// table (records are positional, so a stored field cannot be added).
    #[serde(skip)]
    pub versions_pruned: u64,
}

impl FileRec {
    /// The version of the current content: 1 for a new file, one more with each
    /// update. Version n is what `versions/{n}` holds once the file moves on.
    pub fn version(&self) -> u64 {
        self.versions + 1
    }

    pub fn to_json(&self) -> Value {
        json!({
            "id": self.id,
            "project_id": self.project_id,
            "file_name": self.file_name,
            "file_path": self.file_path,
            "file_type": self.file_type,
            "size": self.size,
            "has_boot_function": self.has_boot_function,
            "status": self.status,
            "created_by": self.created_by,
            "created_at": self.created_at,
            "updated_at": self.updated_at,
            "version": self.version(),
            "versions_pruned": self.versions_pruned,
        })
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct VersionRec {
    pub content: String,
    pub saved_at: String,
    pub saved_by: String,
}

/// A script that should be running: what a restart of the runtime starts again.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RunningRec {
    pub script_id: String,
    pub file_id: u64,
    /// JSON text of the start parameters.
    pub start_params: String,
    pub started_at: String,
    /// The policy it was started with (`None` in records written before there
    /// were policies: the configured default then applies).
    pub restart_policy: Option<crate::policy::RestartPolicy>,
}

/// A running-set record as written before restart policies (postcard has no
/// optional trailing fields, so such a record is read in its own layout).
#[derive(Debug, Clone, Deserialize)]
pub struct RunningRecV1 {
    pub script_id: String,
    pub file_id: u64,
    pub start_params: String,
    pub started_at: String,
}

impl From<RunningRecV1> for RunningRec {
    fn from(v: RunningRecV1) -> RunningRec {
        RunningRec {
            script_id: v.script_id,
            file_id: v.file_id,
            start_params: v.start_params,
            started_at: v.started_at,
            restart_policy: None,
        }
    }
}
