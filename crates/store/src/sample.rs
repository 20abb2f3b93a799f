//! The sample project a new data dir starts with: one script that shows what the
//! `VWED` object can do, ready to start from the README's walk-through.

use crate::{NewFile, ScriptStore, StoreError};

pub const PROJECT: &str = "sample";
pub const SCRIPT: &str = include_str!("../sample/main.py");

pub fn ensure(store: &ScriptStore) -> Result<(), StoreError> {
    if !store.list_projects(Some("all"))?.is_empty() {
        return Ok(());
    }
    let p = store.create_project(PROJECT, "VWED Edge 示例项目", "vwed-edge")?;
    store.create_file(&NewFile {
        project_id: p.id,
        file_name: "main.py",
        file_path: "main.py",
        content: SCRIPT,
        file_type: "python",
        created_by: "vwed-edge",
        // Checked by the test that starts the sample.
        has_boot_function: true,
    })?;
    Ok(())
}
